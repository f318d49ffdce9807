"""The demo's reference dataset: a real head, warped per participant, imaged with partial volume.

Independent of the pipeline by construction: the anatomy is Colin27 segmented into tissues
(:mod:`pipeline.demo.anatomy`, shipped), not the template inflamap registers to, and nothing
here uses inflamap's ROIs, atlases, templates or registration (a test checks the imports).

* **Participants**: a smooth random diffeomorphism of that anatomy (stationary velocity
  field, scaling and squaring; displacements of a few mm over 20-40 mm) and a size scaling
  (0.94-1.06 per axis), so registration has real work to do. Every tissue parameter varies
  between participants (log-normal, :data:`SPREAD`). Sessions share the participant's warp
  and differ in head position (every image has its own), coil bias and noise.
* **Acquisition**: each image is simulated on a fine grid (its voxels divided into
  ``k^3`` sub-voxels of at most 1 mm) where every sub-voxel holds one tissue of the warped
  head, then averaged over the acquisition voxel (box point spread function): partial
  volume between cortex, CSF, dura, bone, marrow and scalp is real. PET and SPECT are then
  blurred by their resolution (Gaussian, :data:`~pipeline.demo.common.PET_FWHM_MM`).
* **Signals** from tissue properties (:data:`TISSUE_PARAMS`): proton density, T1, R2*,
  gadolinium kinetics (extended Tofts with a population input), ferumoxytol ΔR2*, TSPO SUV
  and albumin extravasation, per class. Venous blood (sinuses, cortical veins, cavernous
  sinus), choroid plexus and pituitary enhance in everyone.
* **Truth on true anatomy**: planted effects (:data:`EFFECTS`) are defined on tissue classes
  and regions of the anatomy. For every regional number inflamap reports, the truth is the
  tissue-level value (no partial volume, no noise) averaged over the true tissue of that
  region in the participant's warped head (:data:`TRUTH_ROIS`), written per session to
  ``groundtruth/<sub>/<ses>/<sub>_<ses>_desc-truth_regions.tsv``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from .. import __version__
from ..models.pharmacokinetics import extended_tofts_concentration, parker_aif
from ..models.signal import spgr_signal
from ..utils import atomic_write_text
from .anatomy import (
    ACA_BIT,
    LOBES,
    TISSUE,
    TISSUE_NAMES,
    load_anatomy,
    region_value,
)
from .common import (
    DCE,
    ENHANCEMENT_FLOOR,
    GAD_AGENT,
    HEMATOCRIT,
    IRON_AGENT,
    MEGRE,
    PET_FRAMES,
    PET_FWHM_MM,
    POST_GAD_TIME_S,
    R1_GAD,
    SPECT,
    T1W,
    VFA,
    bias_field,
    dce_meta,
    demo_folders,
    megre_meta,
    participant_row,
    pet_meta,
    random_rigid,
    rician,
    save_image,
    spect_counts,
    spect_meta,
    t1w_meta,
    vfa_meta,
    write_dataset_files,
)

PARAM_NAMES = ("pd", "t1", "r2star", "vp", "ve", "ktrans", "uspio_dr2star", "suv", "albumin")
_SKULL = (0.08, 0.50, 200.0, 0.005, 0.05, 0.005, 0.0, 0.30, 0.0)
_BLOOD = (0.85, 1.90, 30.0, 0.550, 0.00, 0.0, 100.0, -1.0, 0.0)  # SUV -1: the blood curve
_CSF = (1.00, 4.00, 4.0, 0.000, 0.00, 0.0, 0.0, 0.10, 0.0)
#: tissue parameters at 3 T: PD (relative), T1 (s), R2* (1/s), vp, ve (fractions), Ktrans
#: (1/min), ferumoxytol ΔR2* at ~24 h (1/s), [11C]PBR28 SUV at 60-90 min, extravasated
#: albumin at the late SPECT (fraction of the voxel, plasma units). Choroid plexus and
#: pituitary have no blood-brain barrier (fenestrated capillaries): they enhance.
TISSUE_PARAMS = {
    "air": (0.0, 1.0, 100.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
    "gm": (0.80, 1.40, 17.0, 0.040, 0.20, 0.0005, 2.5, 1.20, 0.0),
    "wm": (0.70, 0.85, 21.0, 0.020, 0.20, 0.0003, 1.2, 0.90, 0.0),
    "csf": _CSF,
    "csf_ext": _CSF,
    "dura": (0.60, 1.10, 25.0, 0.050, 0.30, 0.10, 5.0, 0.80, 0.02),
    "inner_table": _SKULL,
    "marrow": (0.90, 0.37, 60.0, 0.030, 0.20, 0.05, 8.0, 1.50, 0.03),
    "outer_table": _SKULL,
    "scalp": (0.80, 0.60, 40.0, 0.030, 0.20, 0.08, 3.0, 0.50, 0.02),
    "sinus": _BLOOD,
    "vein": _BLOOD,
    "choroid_plexus": (0.85, 1.60, 20.0, 0.200, 0.30, 0.30, 20.0, 1.00, 0.05),
    "pituitary": (0.75, 1.00, 20.0, 0.100, 0.30, 0.40, 6.0, 1.00, 0.05),
    "cavernous_sinus": _BLOOD,
}
#: between-participant SD (log scale) of every tissue parameter but PD and blood's
SPREAD = 0.05
BLOOD = ("sinus", "vein", "cavernous_sinus")

#: planted effects (MA patients); regions of the anatomy (:mod:`.anatomy`): an AAL lobe or
#: the ACA territory, on the headache side or both sides
EFFECTS = [
    {
        "id": "gad_meningeal_occipital",
        "modality": "gadolinium",
        "phase": "ictal",
        "region": "occipital",
        "side": "headache",
        "tissues": ["dura", "csf_ext"],
        "parameter": ["ktrans", "ve"],
        "size": [0.01, 0.3],
        "change": "+",
        "expect": "enhancement of the dura and subarachnoid space over the occipital lobe on "
        "the headache side",
    },
    {
        "id": "dce_ktrans_occipital",
        "modality": "dce",
        "phase": "ictal",
        "region": "occipital",
        "side": "headache",
        "tissues": ["gm"],
        "parameter": ["ktrans"],
        "size": [0.01],
        "change": "+",
        "expect": "Ktrans +0.01/min in occipital cortex on the headache side",
    },
    {
        "id": "uspio_dr2star_aca",
        "modality": "uspio",
        "phase": "ictal",
        "region": "aca",
        "side": "headache",
        "tissues": ["gm", "wm"],
        "parameter": ["uspio_dr2star"],
        "size": [3.0],
        "change": "+",
        "expect": "ΔR2* +3/s in the ACA territory (AAL medial frontal/parietal) on the "
        "headache side",
    },
    {
        "id": "spect_late_meningeal_occipital",
        "modality": "spect",
        "phase": "ictal",
        "region": "occipital",
        "side": "headache",
        "tissues": ["dura"],
        "parameter": ["albumin"],
        "size": [0.08],
        "change": "+",
        "expect": "late albumin extravasation in the occipital dura on the headache side",
    },
    {
        "id": "pet_suv_occipital",
        "modality": "pet",
        "phase": "any",
        "region": "occipital",
        "side": "both",
        "tissues": ["gm", "dura", "marrow"],
        "parameter": ["suv"],
        "size": [1.15],
        "change": "x",
        "expect": "SUV x1.15 in occipital cortex, dura and diploic marrow",
    },
]
N_EFFECT_BITS = len(EFFECTS)
CODE_STRIDE = 16  # code = tissue + CODE_STRIDE * effect bits

#: truth of inflamap's regional names: roi -> (tissues, region kind, lobe/territory)
_PARENCHYMA = ("gm", "wm")
TRUTH_ROIS = {
    **{lobe: (_PARENCHYMA, "lobe", lobe) for lobe in LOBES},
    **{f"meningeal_{lobe}": (("dura", "csf_ext"), "lobe", lobe) for lobe in LOBES},
    **{
        f"calvarial_{lobe}": (("inner_table", "marrow", "outer_table"), "lobe", lobe)
        for lobe in LOBES
    },
    "aca": (_PARENCHYMA, "aca", None),
    "superior_sagittal_sinus": (("sinus",), "any", None),
    "transverse_sinus": (("sinus",), "any", None),
    "straight_sinus": (("sinus",), "any", None),
    "sigmoid_sinus": (("sinus",), "any", None),
    "cavernous_sinus_pituitary": (("pituitary", "cavernous_sinus"), "any", None),
    "intracerebral_csf": (("csf", "choroid_plexus"), "any", None),
}
_BILATERAL = {"superior_sagittal_sinus", "straight_sinus", "cavernous_sinus_pituitary"}
_BILATERAL |= {"intracerebral_csf"}

#: scanner field of view (mm, RAS): lower corner and size
FOV_LO = np.array([-96.0, -132.0, -80.0])
FOV_MM = np.array([192.0, 228.0, 184.0])


# ----------------------------------------------------------------------------- geometry
def acquisition_grid(res: float):
    shape = tuple(int(np.ceil(s / res)) for s in FOV_MM)
    aff = np.diag([res, res, res, 1.0])
    aff[:3, 3] = FOV_LO + res / 2
    return shape, aff


class Head:
    """One participant: the anatomy under a smooth random diffeomorphism and a scaling.

    ``anatomy_mm(subject_mm)`` maps a point of the participant's head (its own frame,
    before any head motion) to the anatomy: ``a = u + d(u)``, ``u = subject / scale``, with
    ``d`` the displacement of ``exp(v)`` (scaling and squaring of a stationary velocity
    field ``v`` on a coarse grid).
    """

    SPACING = 6.0  # mm, coarse grid of the velocity field

    def __init__(self, rng, anatomy, warp_mm=3.0, smooth_mm=14.0, squarings=6):
        self.anatomy = anatomy
        self.scale = rng.uniform(0.94, 1.06, 3)
        lo = FOV_LO - 20
        shape = tuple(int(np.ceil((FOV_MM[i] + 40) / self.SPACING)) + 1 for i in range(3))
        self.grid_lo = lo
        v = rng.normal(size=(3, *shape))
        sigma = smooth_mm / self.SPACING
        v = np.stack([ndi.gaussian_filter(c, sigma) for c in v])
        v *= warp_mm / np.sqrt((v**2).sum(0)).mean()  # mean |v| = warp_mm
        d = v / 2**squarings
        idx = np.indices(shape, dtype=float)
        for _ in range(squarings):
            at = idx + d / self.SPACING
            d = d + np.stack([ndi.map_coordinates(c, at, order=1, mode="nearest") for c in d])
        self.disp = d.astype(np.float32)
        grads = [np.gradient(d[i], self.SPACING) for i in range(3)]
        jac = np.array([[grads[i][j] for j in range(3)] for i in range(3)])
        jac = jac + np.eye(3)[:, :, None, None, None]
        self.min_jacobian = float(np.linalg.det(np.moveaxis(jac, (0, 1), (-2, -1))).min())
        self.max_displacement_mm = float(np.sqrt((d**2).sum(0)).max())

    def anatomy_mm(self, pts):
        """(3, n) participant mm -> (3, n) anatomy mm."""
        u = pts / self.scale[:, None]
        at = (u - self.grid_lo[:, None]) / self.SPACING
        return u + np.stack(
            [ndi.map_coordinates(c, at, order=1, mode="nearest") for c in self.disp]
        )

    def sample(self, world_from_subject, shape, affine, k, chunk=16):
        """Tissue and region labels of the fine grid (``shape * k``) of an acquisition grid
        ``(shape, affine)``, with the head at ``world_from_subject``.

        The warp is evaluated at the acquisition voxel centres and carried to the sub-voxels
        by the pose and scaling alone (its gradient is below 0.2: < 0.3 mm at 3 mm voxels).
        """
        inv_a = np.linalg.inv(self.anatomy.affine)
        subj_from_world = np.linalg.inv(world_from_subject)
        packed = self.packed
        fshape = tuple(s * k for s in shape)
        out = np.zeros(fshape, np.uint16)
        sub = (np.arange(k) + 0.5) / k - 0.5
        offs = np.stack(np.meshgrid(sub, sub, sub, indexing="ij")).reshape(3, -1)
        # sub-voxel offsets in anatomy voxels (pose rotation, scaling, grid spacing)
        lin = inv_a[:3, :3] @ np.diag(1 / self.scale) @ subj_from_world[:3, :3] @ affine[:3, :3]
        doff = lin @ offs  # (3, k^3)
        jy, jz = np.arange(shape[1]), np.arange(shape[2])
        for i0 in range(0, shape[0], chunk):
            i1 = min(shape[0], i0 + chunk)
            grid = np.stack(np.meshgrid(np.arange(i0, i1), jy, jz, indexing="ij")).reshape(3, -1)
            world = affine[:3, :3] @ grid + affine[:3, 3:4]
            subj = subj_from_world[:3, :3] @ world + subj_from_world[:3, 3:4]
            avox = inv_a[:3, :3] @ self.anatomy_mm(subj) + inv_a[:3, 3:4]
            pts = (avox[:, :, None] + doff[:, None, :]).reshape(3, -1)
            lab = ndi.map_coordinates(packed, pts, order=0, cval=0)
            # (vox, sub) -> fine grid
            lab = lab.reshape(i1 - i0, shape[1], shape[2], k, k, k)
            out[i0 * k : i1 * k] = lab.transpose(0, 3, 1, 4, 2, 5).reshape(
                (i1 - i0) * k, fshape[1], fshape[2]
            )
        return (out % 256).astype(np.uint8), (out // 256).astype(np.uint8)

    @property
    def packed(self):
        if getattr(self, "_packed", None) is None:
            self._packed = self.anatomy.tissues + 256 * self.anatomy.regions.astype(np.uint16)
        return self._packed


def region_match(regions, region: str, side: str):
    """Fine voxels of ``region`` (a lobe or ``aca``) on ``side`` (left, right, both)."""
    lobe_val = regions % ACA_BIT
    sides = ("left", "right") if side == "both" else (side,)
    if region == "aca":
        sel = regions >= ACA_BIT
        hemi = np.isin(lobe_val, [region_value(lb, s) for lb in LOBES for s in sides])
        return sel & hemi
    return np.isin(lobe_val, [region_value(region, s) for s in sides])


def codes_of(tissues, regions, headache_side: str):
    """Per fine voxel: tissue + CODE_STRIDE x (bits of the planted effects covering it)."""
    code = tissues.astype(np.uint16)
    for b, eff in enumerate(EFFECTS):
        side = headache_side if eff["side"] == "headache" else "both"
        sel = region_match(regions, eff["region"], side)
        sel &= np.isin(tissues, [TISSUE[t] for t in eff["tissues"]])
        code[sel] += CODE_STRIDE << b
    return code


def _compact(code):
    """``np.unique(code, return_inverse=True)`` for small non-negative integers, fast."""
    present = np.flatnonzero(np.bincount(code.ravel()))
    lut = np.zeros(int(present[-1]) + 1, np.int64)
    lut[present] = np.arange(len(present))
    return present, lut[code]


def fractions(code, shape, k):
    """``(present codes, (n_voxels, n_codes) volume fractions)`` of each acquisition voxel."""
    present, inverse = _compact(code)
    vox = (
        np.arange(int(np.prod(shape)))
        .reshape(shape)
        .repeat(k, 0)
        .repeat(k, 1)
        .repeat(k, 2)
        .ravel()
    )
    counts = np.bincount(
        vox * len(present) + inverse.ravel(), minlength=int(np.prod(shape)) * len(present)
    )
    frac = counts.reshape(-1, len(present)).astype(np.float32) / k**3
    return present, frac


# ----------------------------------------------------------------------------- tissue values
class Physiology:
    """Parameters of every code for one participant and session (planted effects applied)."""

    def __init__(self, spread: dict, active: set):
        self.spread = spread
        self.active = active

    def param(self, codes, name):
        codes = np.asarray(codes, int)
        tissue = codes % CODE_STRIDE
        bits = codes // CODE_STRIDE
        j = PARAM_NAMES.index(name)
        val = np.array([TISSUE_PARAMS[TISSUE_NAMES[t]][j] for t in tissue], float)
        val = val * np.array([self.spread[TISSUE_NAMES[t]][j] for t in tissue])
        for b, eff in enumerate(EFFECTS):
            if eff["id"] not in self.active or name not in eff["parameter"]:
                continue
            size = eff["size"][eff["parameter"].index(name)]
            on = (bits >> b) & 1 == 1
            val = np.where(on, val + size if eff["change"] == "+" else val * size, val)
        return val


def participant_spread(rng) -> dict:
    out = {}
    for t in TISSUE_NAMES:
        f = np.exp(rng.normal(scale=SPREAD, size=len(PARAM_NAMES)))
        f[0] = 1.0  # PD: the scale of the images
        if t in BLOOD or t == "air":
            f[:] = 1.0
        out[t] = f
    return out


def gad_conc(phys, codes, t_s, cp):
    """Tissue gadolinium concentration (mM), (n_codes, n_times)."""
    kt = phys.param(codes, "ktrans")
    ve = phys.param(codes, "ve")
    vp = phys.param(codes, "vp")
    out = np.zeros((len(codes), len(t_s)))
    for i in range(len(codes)):
        if kt[i] > 0 or vp[i] > 0:
            out[i] = extended_tofts_concentration(cp, t_s, kt[i], max(ve[i], 1e-6), vp[i])
    return out


def t1w_values(phys, codes, post: bool):
    r1 = 1.0 / phys.param(codes, "t1")
    if post:
        t = np.array([0.0, 60.0, 120.0, 240.0, POST_GAD_TIME_S])
        r1 = r1 + R1_GAD * gad_conc(phys, codes, t, parker_aif(t, 0.0, HEMATOCRIT))[:, -1]
    wm = spgr_signal(0.7, 1 / 0.85, T1W["fa"], T1W["tr"])
    return spgr_signal(phys.param(codes, "pd"), r1, T1W["fa"], T1W["tr"]) / wm * 1000.0


def pet_curves():
    start = np.asarray(PET_FRAMES["start"], float)
    dur = np.asarray(PET_FRAMES["duration"], float)
    mid = (start + dur / 2) / 60.0
    uptake = 1 - np.exp(-mid / 12.0)
    blood = 3.0 * np.exp(-mid / 2.0) + 0.8
    window = (start >= 3600) & (start < 5400)
    return uptake, blood, window, dur


def pet_values(phys, codes):
    """SUV per code and frame, (n_codes, n_frames)."""
    uptake, blood, _, _ = pet_curves()
    suv = phys.param(codes, "suv")
    out = suv[:, None] * uptake[None]
    is_blood = suv < 0
    out[is_blood] = blood[None]
    return out


def spect_values(phys, codes):
    """Early and late albumin concentration per code (plasma units)."""
    tissue = np.asarray(codes) % CODE_STRIDE
    vp = np.where(np.isin(tissue, [TISSUE[b] for b in BLOOD]), 1.0, phys.param(codes, "vp"))
    early = vp
    late = vp * SPECT["late_blood"] + phys.param(codes, "albumin")
    return early, late


# ----------------------------------------------------------------------------- truth
def truth_table(phys, present, counts) -> pd.DataFrame:
    """Tissue-level value of every metric over each :data:`TRUTH_ROIS` region.

    ``present``/``counts``: codes of the participant's fine head and, per code, the voxel
    count in each (lobe value, aca) region: ``counts[(region_value, code)]``.
    """
    codes = np.asarray(present)
    tissue = codes % CODE_STRIDE
    pre = t1w_values(phys, codes, False)
    post = t1w_values(phys, codes, True)
    brain_codes = np.isin(tissue, [TISSUE[t] for t in ("gm", "wm", "csf", "choroid_plexus")])
    # the percent-enhancement floor of the pipeline, from the true brain's median pre signal
    n_code = counts.sum(axis=0)
    order = np.argsort(pre[brain_codes])
    cum = np.cumsum(n_code[brain_codes][order])
    median_pre = pre[brain_codes][order][np.searchsorted(cum, cum[-1] / 2)]
    enh = 100 * (post - pre) / np.maximum(pre, ENHANCEMENT_FLOOR * median_pre)  # per tissue
    uptake, blood, window, dur = pet_curves()
    suv = (pet_values(phys, codes)[:, window] * dur[window]).sum(1) / dur[window].sum()
    suv_ref = (suv * n_code)[brain_codes].sum() / n_code[brain_codes].sum()
    early, late = spect_values(phys, codes)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(early > 0, late / early, np.nan)
    # the same without the planted effects
    base = Physiology(phys.spread, set())
    pre_b, post_b = t1w_values(base, codes, False), t1w_values(base, codes, True)
    suv_b = (pet_values(base, codes)[:, window] * dur[window]).sum(1) / dur[window].sum()
    suv_b_ref = (suv_b * n_code)[brain_codes].sum() / n_code[brain_codes].sum()
    eb, lb = spect_values(base, codes)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio_b = np.where(eb > 0, lb / eb, np.nan)
    values = {  # (with, without the effects) per code; gadolinium: enhancement() below
        ("gadolinium", "enhancement"): (enh, enh),
        ("dce", "Ktrans"): (phys.param(codes, "ktrans"), base.param(codes, "ktrans")),
        ("uspio", "dR2star"): (
            phys.param(codes, "uspio_dr2star"),
            base.param(codes, "uspio_dr2star"),
        ),
        ("pet", "SUVR"): (suv / suv_ref, suv_b / suv_b_ref),
        ("spect", "lateEarlyRatio"): (ratio, ratio_b),
    }
    floor = ENHANCEMENT_FLOOR * median_pre

    def enhancement(w, post_v, pre_v):
        """Percent enhancement of the region's tissue as a whole: of its mean signals."""
        pre_m = (w * pre_v).sum()
        return 100 * ((w * post_v).sum() - pre_m) / max(pre_m, floor)

    rows = []
    lobe_vals = np.arange(counts.shape[0]) % ACA_BIT
    is_aca = np.arange(counts.shape[0]) >= ACA_BIT
    for roi, (tissues, kind, lobe) in TRUTH_ROIS.items():
        tsel = np.isin(tissue, [TISSUE[t] for t in tissues])
        hemis = ("bilateral",) if roi in _BILATERAL else ("left", "right", "bilateral")
        for hemi in hemis:
            sides = ("left", "right") if hemi == "bilateral" else (hemi,)
            if kind == "lobe":
                rsel = np.isin(lobe_vals, [region_value(lobe, s) for s in sides])
            elif kind == "aca":
                rsel = is_aca & np.isin(
                    lobe_vals, [region_value(lb, s) for lb in LOBES for s in sides]
                )
            else:
                rsel = np.isin(lobe_vals, [region_value(lb, s) for lb in LOBES for s in sides])
            n = counts[rsel].sum(axis=0) * tsel
            if n.sum() == 0:
                continue
            for (modality, metric), (val, baseline) in values.items():
                ok = np.isfinite(val) & (n > 0)
                if not ok.any():
                    continue
                w = n[ok] / n[ok].sum()
                if modality == "gadolinium":
                    true_v = enhancement(w, post[ok], pre[ok])
                    base_v = enhancement(w, post_b[ok], pre_b[ok])
                else:
                    true_v = float((val[ok] * w).sum())
                    base_v = float((baseline[ok] * w).sum())
                rows.append(
                    {
                        "modality": modality,
                        "metric": metric,
                        "roi": roi,
                        "hemisphere": hemi,
                        "tissues": "+".join(tissues),
                        "volume_ml": float(n[ok].sum()) / 1000.0,
                        "true": float(true_v),
                        "baseline": float(base_v),
                    }
                )
    return pd.DataFrame(rows)


def region_counts(regions, code):
    """``(present codes, counts[region value, code index])`` of a fine sampling."""
    present, inverse = _compact(code)
    flat = regions.astype(np.int64).ravel() * len(present) + inverse.ravel()
    counts = np.bincount(flat, minlength=128 * len(present)).reshape(128, len(present))
    return present, counts


# ----------------------------------------------------------------------------- writing
def make_reference(
    out_dir,
    participants: int = 6,
    resolution: float = 3.0,
    seed: int = 0,
    progress=None,
) -> Path:
    """Write the reference demo dataset (BIDS, truth, configuration) to ``out_dir``."""
    bids, truth_dir = demo_folders(out_dir, participants, resolution)
    say = progress or (lambda msg: None)
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    anatomy = load_anatomy()
    k = max(1, int(np.ceil(resolution - 1e-6))) if resolution > 1 else 2
    shape, aff = acquisition_grid(resolution)
    n_ma = participants // 2
    groups = ["HC"] * (participants - n_ma) + ["MA"] * n_ma
    rng.shuffle(groups)
    truth = {
        "generator": f"inflamap {__version__} reference demo",
        "anatomy": "Colin27 (mricron-data), segmented by pipeline.demo.anatomy",
        "seed": seed,
        "resolution_mm": resolution,
        "subvoxels_per_axis": k,
        "hematocrit": HEMATOCRIT,
        "gadolinium_r1_per_mM_s": R1_GAD,
        "tissues": {t: dict(zip(PARAM_NAMES, v)) for t, v in TISSUE_PARAMS.items()},
        "between_participant_sd_log": SPREAD,
        "effects": EFFECTS,
        "participants": {},
    }
    part_rows = []
    for i, group in enumerate(groups, start=1):
        pid = f"sub-{i:02d}"
        say(f"{pid} ({group})")
        row = participant_row(rng, pid, group)
        side, weight = row.pop("headache_side"), row["body_weight"]
        part_rows.append(row)
        head = Head(rng, anatomy)
        spread = participant_spread(rng)
        # the participant's true anatomy, 1 mm, in its own frame (for the truth tables)
        t_shape, t_aff = acquisition_grid(1.0)
        tt, tr = head.sample(np.eye(4), t_shape, t_aff, 1)
        codes_t = codes_of(tt, tr, side if side != "none" else "left")
        present_t, counts_t = region_counts(tr, codes_t)
        del tt, tr, codes_t
        ptruth = {
            "group": group,
            "headache_side": side,
            "anatomical_scale": head.scale.tolist(),
            "warp_min_jacobian": head.min_jacobian,
            "warp_max_displacement_mm": head.max_displacement_mm,
            "sessions": {},
        }
        sess_rows = []
        for s, phase in ((1, "interictal"), (2, "ictal")):
            ses = f"ses-{s:02d}"
            phase = phase if group != "HC" else "n/a"
            srow = {
                "session_id": ses,
                "phase": phase,
                "headache_side": side,
                "hours_since_onset": float(np.round(rng.uniform(2, 12), 1))
                if phase == "ictal"
                else "n/a",
                "treatment": str(rng.choice(["none", "sumatriptan"]))
                if phase == "ictal"
                else "n/a",
            }
            sess_rows.append(srow)
            active = {
                e["id"]
                for e in EFFECTS
                if group == "MA" and (e["phase"] == "any" or e["phase"] == phase)
            }
            phys = Physiology(spread, active)
            stem = f"{pid}_{ses}"
            files = _session_images(
                rng,
                head,
                phys,
                side,
                weight,
                (shape, aff),
                k,
                bids,
                pid,
                ses,
                truth_dir / pid / ses,
            )
            table = truth_table(phys, present_t, counts_t)
            table.insert(0, "session_id", ses)
            table.insert(0, "participant_id", pid)
            (truth_dir / pid / ses).mkdir(parents=True, exist_ok=True)
            table.to_csv(
                truth_dir / pid / ses / f"{stem}_desc-truth_regions.tsv",
                sep="\t",
                index=False,
                float_format="%.6g",
            )
            ptruth["sessions"][ses] = {
                "phase": phase,
                "headache_side": side,
                "effects": sorted(active),
                "files": files,
            }
        pd.DataFrame(sess_rows).to_csv(bids / pid / f"{pid}_sessions.tsv", sep="\t", index=False)
        truth["participants"][pid] = ptruth
    write_dataset_files(bids, pd.DataFrame(part_rows), seed)
    atomic_write_text(json.dumps(truth, indent=1), truth_dir / "groundtruth.json")
    atomic_write_text(CONFIG, out_dir / "inflamap-demo.yml")
    return out_dir


#: the configuration of a demo run: the defaults (published atlases) but the offline template
CONFIG = (
    "# Configuration of the demo run (template bundled for offline use; published atlases)\n"
    "anat:\n"
    "  template: MNI152NLin2009aSym\n"
    "  template_resolution: 2\n"
    "# the ACA territory (ferumoxytol effect) is measured in the built-in approximate\n"
    "# territories: no published territory atlas is available offline\n"
    "uspio:\n"
    "  atlas: inflamapTerritories\n"
)


def _session_images(rng, head, phys, side, weight, grid, k, bids, pid, ses, gt) -> dict:
    """Write one session's images; returns ``{file: truth of its position}``."""
    files = {}
    shape, aff = grid
    stem = f"{pid}_{ses}"
    sdir = bids / pid / ses
    session_pose = random_rigid(rng)
    bias = bias_field(rng, shape, aff)
    hside = side if side != "none" else "left"

    def pose(small=True):
        return session_pose @ (random_rigid(rng, 1.0, 1.0) if small else np.eye(4))

    def acquire(w):
        t, r = head.sample(w, shape, aff, k)
        code = codes_of(t, r, hside)
        present, frac = fractions(code, shape, k)
        return present, frac

    def image(frac, values):
        """(n_vox, n_codes) @ (n_codes[, n]) -> image (shape[, n])."""
        v = np.asarray(values, np.float32)
        out = frac @ v
        return out.reshape(shape + v.shape[1:])

    def put(data, rel, meta, w, dtype=np.int16, **extra):
        path = sdir / rel
        save_image(data, aff, path, dtype=dtype, meta=meta)
        files[f"{pid}/{ses}/{rel}"] = {
            "world_from_subject": w.tolist(),
            **extra,
        }

    # ---- T1w pre / post gadolinium; the true brain mask on the pre grid ---------------
    w_pre = pose(False)
    present, frac = acquire(w_pre)
    tissue = present % CODE_STRIDE
    brain_cols = np.isin(tissue, [TISSUE[t] for t in ("gm", "wm", "csf", "choroid_plexus")])
    brain = frac[:, brain_cols].sum(1).reshape(shape) >= 0.5
    save_image(brain.astype(np.uint8), aff, gt / f"{stem}_desc-brain_mask.nii.gz", np.uint8)
    pre = image(frac, t1w_values(phys, present, False))
    put(
        rician(rng, pre * bias, 1000.0 / T1W["snr"]),
        f"anat/{stem}_T1w.nii.gz",
        t1w_meta(False),
        w_pre,
    )
    w = pose()
    present, frac = acquire(w)
    post = image(frac, t1w_values(phys, present, True))
    put(
        rician(rng, post * bias, 1000.0 / T1W["snr"]),
        f"anat/{stem}_ce-{GAD_AGENT}_T1w.nii.gz",
        t1w_meta(True),
        w,
    )

    # ---- multi-echo GRE pre / post ferumoxytol -------------------------------------------
    te = np.asarray(MEGRE["te"])
    ref = spgr_signal(0.7, 1 / 0.85, MEGRE["fa"], MEGRE["tr"])
    for post_fe in (False, True):
        w = pose()
        present, frac = acquire(w)
        s0 = spgr_signal(
            phys.param(present, "pd"), 1 / phys.param(present, "t1"), MEGRE["fa"], MEGRE["tr"]
        )
        r2s = phys.param(present, "r2star") + (
            phys.param(present, "uspio_dr2star") if post_fe else 0
        )
        echoes = image(frac, s0[:, None] * np.exp(-te[None] * r2s[:, None]))
        echoes = rician(rng, echoes * bias[..., None] / ref * 1000.0, 1000.0 / MEGRE["snr"])
        ce = f"ce-{IRON_AGENT}_" if post_fe else ""
        for e, t_e in enumerate(te, start=1):
            put(
                echoes[..., e - 1],
                f"anat/{stem}_{ce}echo-{e}_MEGRE.nii.gz",
                megre_meta(float(t_e)),
                w,
            )

    # ---- VFA and DCE (one position) ------------------------------------------------------
    w = pose()
    present, frac = acquire(w)
    dbias = bias_field(rng, shape, aff)
    ref = spgr_signal(0.7, 1 / 0.85, 15.0, VFA["tr"])
    for j, fa in enumerate(VFA["fa"], start=1):
        sig = spgr_signal(phys.param(present, "pd"), 1 / phys.param(present, "t1"), fa, VFA["tr"])
        img = rician(rng, image(frac, sig) * dbias / ref * 1000.0, 1000.0 / VFA["snr"])
        put(img, f"anat/{stem}_flip-{j}_VFA.nii.gz", vfa_meta(fa), w)
    t_dce = np.arange(DCE["n"]) * DCE["dt"]
    cp = parker_aif(t_dce, DCE["injection"], HEMATOCRIT)
    conc = gad_conc(phys, present, t_dce, cp)
    sig = spgr_signal(
        phys.param(present, "pd")[:, None],
        1 / phys.param(present, "t1")[:, None] + R1_GAD * conc,
        DCE["fa"],
        DCE["tr"],
    )
    ref = spgr_signal(0.7, 1 / 0.85, DCE["fa"], DCE["tr"])
    series = rician(rng, image(frac, sig) * dbias[..., None] / ref * 1000.0, 1000.0 / DCE["snr"])
    put(
        series,
        f"anat/{stem}_ce-{GAD_AGENT}_dce.nii.gz",
        dce_meta(t_dce),
        w,
        aif_plasma_mM=cp.tolist(),
        frame_times_s=t_dce.tolist(),
    )

    # ---- TSPO PET (first session) --------------------------------------------------------
    if ses == "ses-01":
        w = pose()
        present, frac = acquire(w)
        dose = float(np.round(rng.uniform(330, 420), 1))
        to_bq = dose * 1e6 / (weight * 1000.0)
        act = image(frac, pet_values(phys, present)) * to_bq
        sigma = PET_FWHM_MM / 2.3548 / np.abs(np.diag(aff)[:3])
        act = np.stack(
            [ndi.gaussian_filter(act[..., f], sigma) for f in range(act.shape[-1])], axis=-1
        )
        act = act + rng.normal(size=act.shape) * (0.03 * act + 0.05 * to_bq)
        put(
            np.clip(act, 0, None),
            f"pet/{stem}_trc-PBR28_pet.nii.gz",
            pet_meta(dose),
            w,
            dtype=np.float32,
            injected_MBq=dose,
            body_weight_kg=weight,
        )

    # ---- 99mTc-albumin SPECT early / late (second session) ----------------------------
    if ses == "ses-02":
        w = pose()
        present, frac = acquire(w)
        early, late = spect_values(phys, present)
        sigma = SPECT["fwhm"] / 2.3548 / np.abs(np.diag(aff)[:3])
        for acq, conc_v in (("early", early), ("late", late)):
            img = ndi.gaussian_filter(image(frac, conc_v), sigma)
            put(
                spect_counts(rng, img, acq),
                f"spect/{stem}_trc-{SPECT['tracer']}_acq-{acq}_spect.nii.gz",
                spect_meta(acq),
                w,
                dtype=np.float32,
            )
    return files
