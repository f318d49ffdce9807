"""The template phantom's acquisitions (the e2e tests' demo, ``anatomy="template"``):
sampling the phantom on a scanner grid in a given pose, planting the effects, and writing
each series with its truth: multi-echo GRE pre/post ferumoxytol, VFA and DCE, PET, SPECT."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..models.dce import patlak
from ..models.pharmacokinetics import extended_tofts_concentration, parker_aif
from ..models.signal import multiecho_signal, spgr_signal
from .common import (
    DCE,
    GAD_AGENT,
    HEMATOCRIT,
    IRON_AGENT,
    MEGRE,
    PET_FRAMES,
    R1_GAD,
    SPECT,
    VFA,
    bias_field,
    dce_meta,
    megre_meta,
    pet_meta,
    rician,
    spect_counts,
    spect_meta,
    vfa_meta,
)
from .common import save_image as _save
from .phantom import TISSUES, Phantom, region_mask, tissue_param

ALBUMIN_EXTRAVASATION = {"dura": 0.02, "marrow": 0.03, "scalp": 0.02}

# Planted effects (MA patients). Regions are geometric regions of the template (MNI mm).
EFFECTS = [
    {
        "id": "gad_meningeal_occipital",
        "modality": "gadolinium",
        "group": "MA",
        "phase": "ictal",
        "region": "occipital",
        "side": "headache",
        "tissues": ["dura", "csf"],
        "parameter": ["ktrans", "ve"],
        "change": "+",
        "size": [0.01, 0.3],
        "units": ["1/min", "fraction"],
        "expect": "post-contrast enhancement of the occipital meningeal band (dura and "
        "subarachnoid space: leptomeningeal/sulcal leakage) on the headache side",
    },
    {
        "id": "dce_ktrans_occipital",
        "modality": "dce",
        "group": "MA",
        "phase": "ictal",
        "region": "occipital",
        "side": "headache",
        "tissues": ["gm"],
        "parameter": "ktrans",
        "change": "+",
        "size": 0.01,
        "units": "1/min",
        "expect": "Ktrans increase in occipital cortex on the headache side",
    },
    {
        "id": "uspio_dr2star_aca",
        "modality": "uspio",
        "group": "MA",
        "phase": "ictal",
        "region": "aca",
        "side": "headache",
        "tissues": ["gm", "wm"],
        "parameter": "uspio_dr2star",
        "change": "+",
        "size": 3.0,
        "units": "1/s",
        "expect": "ΔR2* increase (ferumoxytol uptake) in the anterior cerebral artery territory "
        "on the headache side",
    },
    {
        "id": "spect_late_meningeal_occipital",
        "modality": "spect",
        "group": "MA",
        "phase": "ictal",
        "region": "occipital",
        "side": "headache",
        "tissues": ["dura"],
        "parameter": "albumin_extravasation",
        "change": "+",
        "size": 0.08,
        "units": "fraction",
        "expect": "late 99mTc-albumin uptake in the occipital meningeal band on the headache "
        "side (late/early ratio up)",
    },
    {
        "id": "pet_suvr_occipital",
        "modality": "pet",
        "group": "MA",
        "phase": "any",
        "region": "occipital",
        "side": "both",
        "tissues": ["gm", "dura", "marrow"],
        "parameter": "suv",
        "change": "x",
        "size": 1.15,
        "units": "ratio",
        "expect": "SUV(R) +15 % in occipital cortex and occipital parameningeal tissue",
    },
]


# --------------------------------------------------------------------------------------------
# geometry
def grid_affine(res: float, template_affine, template_shape):
    """Scanner grid covering the template's field of view at ``res`` mm (RAS, axis-aligned)."""
    lo = template_affine[:3, 3]
    hi = lo + np.diag(template_affine)[:3] * (np.asarray(template_shape) - 1)
    shape = tuple(int(np.ceil((b - a) / res)) + 1 for a, b in zip(lo, hi))
    aff = np.diag([res, res, res, 1.0])
    aff[:3, 3] = lo
    return shape, aff


def sample(phantom: Phantom, world_from_template, shape, affine, order=1):
    """Fractions (dict) and labels of the phantom moved to ``world_from_template``, sampled on
    the grid ``(shape, affine)``; also the template-mm coordinates of every voxel."""
    from scipy import ndimage

    # voxel (scanner grid) -> template voxel
    vox2tpl = np.linalg.inv(phantom.affine) @ np.linalg.inv(world_from_template) @ affine
    coords = np.indices(shape, dtype=np.float32).reshape(3, -1)
    tcoords = vox2tpl[:3, :3] @ coords + vox2tpl[:3, 3:4]
    out = {}
    for t, f in phantom.fractions.items():
        out[t] = ndimage.map_coordinates(f, tcoords, order=order, cval=0.0).reshape(shape)
    labels = ndimage.map_coordinates(phantom.labels, tcoords, order=0, cval=0).reshape(shape)
    brain = (
        ndimage.map_coordinates(
            phantom.brain.astype(np.float32), tcoords, order=1, cval=0
        ).reshape(shape)
        >= 0.5
    )
    tmm = phantom.affine[:3, :3] @ tcoords + phantom.affine[:3, 3:4]
    xyz = tuple(c.reshape(shape) for c in tmm)
    return out, labels.astype(np.uint8), brain, xyz


def effects_for(participant: dict, session: dict):
    """The planted effects that apply to this participant and session."""
    out = []
    for eff in EFFECTS:
        if participant["group"] != eff["group"]:
            continue
        if eff["phase"] != "any" and session["phase"] != eff["phase"]:
            continue
        out.append(eff)
    return out


def _effect_masks(effects, modality, xyz, headache_side):
    """{(tissue, parameter): (mask, change, size)} for the modality's planted effects."""
    res = []
    for eff in effects:
        if eff["modality"] != modality:
            continue
        side = {"headache": headache_side, "both": "both"}[eff["side"]]
        mask = region_mask(eff["region"], side, xyz)
        params = eff["parameter"] if isinstance(eff["parameter"], list) else [eff["parameter"]]
        sizes = eff["size"] if isinstance(eff["size"], list) else [eff["size"]] * len(params)
        for t in eff["tissues"]:
            for p, size in zip(params, sizes):
                res.append((t, p, mask, eff["change"], size))
    return res


def voxel_param(tissue, name, shape, masks):
    """Parameter ``name`` of ``tissue`` as a voxel map with the planted changes applied."""
    base = (
        ALBUMIN_EXTRAVASATION.get(tissue, 0.0)
        if name == "albumin_extravasation"
        else tissue_param(tissue, name)
    )
    val = np.full(shape, base, dtype=float)
    for t, p, mask, change, size in masks:
        if t == tissue and p == name:
            val = np.where(mask, val + size if change == "+" else val * size, val)
    return val


def gad_concentration(tissue, t_s, shape, masks, cp):
    """Tissue Gd concentration (mM) over ``t_s`` for every voxel: (..., n)."""
    if not any(t == tissue for t, *_ in masks):  # no planted change: one curve for all
        curve = extended_tofts_concentration(
            cp,
            t_s,
            tissue_param(tissue, "ktrans"),
            tissue_param(tissue, "ve"),
            tissue_param(tissue, "vp"),
        )
        return np.broadcast_to(curve, shape + (len(t_s),))
    ktrans = voxel_param(tissue, "ktrans", shape, masks)
    ve = voxel_param(tissue, "ve", shape, masks)
    vp = tissue_param(tissue, "vp")
    pairs = np.stack([ktrans, ve], axis=-1)
    out = np.empty(shape + (len(t_s),))
    for k, v in np.unique(pairs.reshape(-1, 2), axis=0):  # few distinct values
        out[(ktrans == k) & (ve == v)] = extended_tofts_concentration(cp, t_s, k, v, vp)
    return out


# --------------------------------------------------------------------------------------------
def _mix(fr, per_tissue):
    """Partial-volume mixing: sum_t fraction_t * signal_t (signal may have a trailing axis)."""
    total = None
    for t in TISSUES:
        s = np.asarray(per_tissue[t])
        f = fr[t][..., None] if s.ndim > fr[t].ndim else fr[t]
        total = f * s if total is None else total + f * s
    return total


def megre_pair(rng, ph, pose, shape, aff, effects, side, bias, bids, gt, stem, files):
    """Pre- and post-ferumoxytol multi-echo GRE (each in its own pose) and the true ΔR2* on
    the pre grid."""
    anat = bids / Path(*stem.split("_")) / "anat"
    for post in (False, True):
        w = pose(True)
        fr, _, _, xyz = sample(ph, w, shape, aff)
        masks = _effect_masks(effects, "uspio", xyz, side)
        if not post:  # truth on the pre grid: fraction-weighted dR2* (1/s)
            true_d = _mix(fr, {t: voxel_param(t, "uspio_dr2star", shape, masks) for t in TISSUES})
            base_d = _mix(
                fr, {t: np.full(shape, tissue_param(t, "uspio_dr2star")) for t in TISSUES}
            )
            _save(
                true_d,
                aff,
                gt / f"{stem}_ce-{IRON_AGENT}_desc-true_dR2star.nii.gz",
                dtype=np.float32,
            )
            _save(
                true_d - base_d,
                aff,
                gt / f"{stem}_ce-{IRON_AGENT}_desc-effect_dR2star.nii.gz",
                dtype=np.float32,
            )
        sig = {}
        for t in TISSUES:
            r2s = np.full(shape, tissue_param(t, "r2star"))
            if post:
                r2s = r2s + voxel_param(t, "uspio_dr2star", shape, masks)
            s0 = spgr_signal(
                tissue_param(t, "pd"), 1 / tissue_param(t, "t1"), MEGRE["fa"], MEGRE["tr"]
            )
            sig[t] = multiecho_signal(np.broadcast_to(s0, shape), r2s, MEGRE["te"])
        ref = spgr_signal(0.7, 1 / 0.85, MEGRE["fa"], MEGRE["tr"])
        echoes = rician(rng, _mix(fr, sig) * bias[..., None] / ref * 1000.0, 1000.0 / MEGRE["snr"])
        ce = f"ce-{IRON_AGENT}_" if post else ""
        for e, te in enumerate(MEGRE["te"], start=1):
            path = anat / f"{stem}_{ce}echo-{e}_MEGRE.nii.gz"
            _save(
                echoes[..., e - 1],
                aff,
                path,
                meta=megre_meta(te),
            )
            files[str(path.relative_to(bids))] = {"world_from_template": w.tolist()}


def vfa_dce(rng, ph, pose, dshape, daff, effects, side, bids, gt, stem, files):
    """VFA images and the DCE series in one pose (same slab, back to back), with the true
    Ktrans/vp, the planted change and the change a Patlak analysis of noise-free data
    gives."""
    anat = bids / Path(*stem.split("_")) / "anat"
    w = pose(True)
    fr, _, dce_brain, xyz = sample(ph, w, dshape, daff)
    _save(
        dce_brain.astype(np.uint8),
        daff,
        gt / f"{stem}_ce-{GAD_AGENT}_desc-brain_mask.nii.gz",
        dtype=np.uint8,
    )
    dbias = bias_field(rng, dshape, daff)
    ref = spgr_signal(0.7, 1 / 0.85, 15.0, VFA["tr"])
    for k, fa in enumerate(VFA["fa"], start=1):
        sig = {
            t: spgr_signal(
                np.full(dshape, tissue_param(t, "pd")),
                1 / tissue_param(t, "t1"),
                fa,
                VFA["tr"],
            )
            for t in TISSUES
        }
        img = rician(rng, _mix(fr, sig) * dbias / ref * 1000.0, 1000.0 / VFA["snr"])
        path = anat / f"{stem}_flip-{k}_VFA.nii.gz"
        _save(
            img,
            daff,
            path,
            meta=vfa_meta(fa),
        )
        files[str(path.relative_to(bids))] = {"world_from_template": w.tolist()}
    t_dce = np.arange(DCE["n"]) * DCE["dt"]
    cp = parker_aif(t_dce, DCE["injection"], HEMATOCRIT)
    masks = _effect_masks(effects, "dce", xyz, side)
    sig = {}
    for t in TISSUES:
        conc = gad_concentration(t, t_dce, dshape, masks, cp)
        sig[t] = spgr_signal(
            tissue_param(t, "pd"),
            1 / tissue_param(t, "t1") + R1_GAD * conc,
            DCE["fa"],
            DCE["tr"],
        )
    # truth on the DCE grid: partial-volume weighted Ktrans and vp of the voxel
    base_kt = sum(fr[t] * tissue_param(t, "ktrans") for t in TISSUES)
    eff_kt = sum(fr[t] * voxel_param(t, "ktrans", dshape, masks) for t in TISSUES)
    _save(
        eff_kt - base_kt,
        daff,
        gt / f"{stem}_ce-{GAD_AGENT}_desc-effect_Ktrans.nii.gz",
        dtype=np.float32,
    )
    # the truth of a Patlak analysis (the default model): Patlak fitted to the
    # voxel's noise-free added tissue concentration with the true plasma input.
    # Patlak ignores backflux, so where ve is finite it is below the added Ktrans
    # (GM, ve 0.2, +0.01/min over 6 min: ~-15 %); the fit is linear in the curve.
    added = sum(
        fr[t][..., None]
        * (
            gad_concentration(t, t_dce, dshape, masks, cp)
            - gad_concentration(t, t_dce, dshape, [], cp)
        )
        for t in {t for t, *_ in masks}
    )
    patlak_effect = patlak(added, cp, t_dce)["ktrans"] if masks else np.zeros(dshape)
    _save(
        patlak_effect,
        daff,
        gt / f"{stem}_ce-{GAD_AGENT}_desc-patlakEffect_Ktrans.nii.gz",
        dtype=np.float32,
    )
    for pname in ("ktrans", "vp"):
        true_map = sum(fr[t] * voxel_param(t, pname, dshape, masks) for t in TISSUES)
        _save(
            true_map,
            daff,
            gt / f"{stem}_ce-{GAD_AGENT}_desc-true_{'Ktrans' if pname == 'ktrans' else 'vp'}"
            ".nii.gz",
            dtype=np.float32,
        )
    ref = spgr_signal(0.7, 1 / 0.85, DCE["fa"], DCE["tr"])
    series = rician(rng, _mix(fr, sig) * dbias[..., None] / ref * 1000.0, 1000.0 / DCE["snr"])
    path = anat / f"{stem}_ce-{GAD_AGENT}_dce.nii.gz"
    _save(
        series,
        daff,
        path,
        meta=dce_meta(t_dce),
    )
    files[str(path.relative_to(bids))] = {
        "world_from_template": w.tolist(),
        "aif_plasma_mM": cp.tolist(),
        "frame_times_s": t_dce.tolist(),
    }


def pet_series(rng, ph, pose, w_t1w, shape, aff, effects, side, weight, bids, gt, stem, files):
    """A dynamic [11C]PBR28 PET series and the noise-free 60–90 min SUV (with and without
    the effects) on the T1w grid and pose of the session."""
    pid, ses = stem.split("_")
    w_pre = w_t1w
    w = pose(True)
    fr, _, _, xyz = sample(ph, w, shape, aff)
    masks = _effect_masks(effects, "pet", xyz, side)
    dose_mbq = float(np.round(rng.uniform(330, 420), 1))
    to_bq = dose_mbq * 1e6 / (weight * 1000.0)
    start = np.asarray(PET_FRAMES["start"], float)
    mid = (start + np.asarray(PET_FRAMES["duration"]) / 2) / 60.0
    uptake = 1 - np.exp(-mid / 12.0)
    blood_tac = 3.0 * np.exp(-mid / 2.0) + 0.8

    def pet_frames(frac, m):
        out = []
        for j in range(len(mid)):
            sig = {
                t: (
                    blood_tac[j] * np.ones(shape)
                    if t == "blood"
                    else voxel_param(t, "suv", shape, m) * uptake[j]
                )
                for t in TISSUES
            }
            out.append(_mix(frac, sig))
        return np.stack(out, axis=-1)  # SUV units

    act = pet_frames(fr, masks) * to_bq
    # truth on the T1w grid and pose of this session (so that a test can use the
    # pipeline's own ROIs): noise-free 60-90 min SUV with and without the effects
    win = (start >= 3600) & (start < 5400)
    dur = np.asarray(PET_FRAMES["duration"], float)[win]
    fr_t, _, _, xyz_t = sample(ph, w_pre, shape, aff)
    masks_t = _effect_masks(effects, "pet", xyz_t, side)
    for desc, m in (("true", masks_t), ("baseline", [])):
        _save(
            (pet_frames(fr_t, m)[..., win] * dur).sum(-1) / dur.sum(),
            aff,
            gt / f"{stem}_trc-PBR28_desc-{desc}_SUV.nii.gz",
            dtype=np.float32,
        )
    act = act + rng.normal(size=act.shape) * (0.03 * act + 0.05 * to_bq)
    path = bids / pid / ses / "pet" / f"{stem}_trc-PBR28_pet.nii.gz"
    _save(
        np.clip(act, 0, None),
        aff,
        path,
        meta=pet_meta(dose_mbq),
    )
    files[str(path.relative_to(bids))] = {
        "world_from_template": w.tolist(),
        "injected_MBq": dose_mbq,
        "body_weight_kg": weight,
    }


def spect_pair(rng, ph, pose, w_t1w, shape, aff, effects, side, bids, gt, stem, files):
    """Early and late 99mTc-albumin SPECT (counts, not decay-corrected), and the true
    late/early ratio on the T1w grid and pose of the session (noise-free, same floor rule
    as the pipeline: no ratio where early < 5 % of its 99th percentile)."""

    vp = {t: tissue_param(t, "vp") if t != "blood" else 1.0 for t in TISSUES}

    def early_late(w):
        fr, _, _, xyz = sample(ph, w, shape, aff)
        masks = _effect_masks(effects, "spect", xyz, side)
        early = _mix(fr, {t: np.full(shape, vp[t]) for t in TISSUES})
        late = _mix(
            fr,
            {
                t: vp[t] * SPECT["late_blood"]
                + voxel_param(t, "albumin_extravasation", shape, masks)
                for t in TISSUES
            },
        )
        return early, late

    e_t, l_t = early_late(w_t1w)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(e_t > 0.05 * np.percentile(e_t, 99), l_t / e_t, np.nan)
    _save(
        ratio, aff, gt / f"{stem}_trc-{SPECT['tracer']}_desc-true_ratio.nii.gz", dtype=np.float32
    )
    w = pose(True)
    early, late = early_late(w)
    pid, ses = stem.split("_")
    for acq, conc in (("early", early), ("late", late)):
        counts = spect_counts(rng, conc, acq)
        path = bids / pid / ses / "spect" / f"{stem}_trc-{SPECT['tracer']}_acq-{acq}_spect.nii.gz"
        _save(
            counts,
            aff,
            path,
            dtype=np.float32,
            meta=spect_meta(acq),
        )
        files[str(path.relative_to(bids))] = {"world_from_template": w.tolist()}
