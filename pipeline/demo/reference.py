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
from ..models.pharmacokinetics import parker_aif
from ..models.signal import spgr_signal
from ..utils import atomic_write_text
from .anatomy import (
    ACA_BIT,
    LOBES,
    TISSUE,
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
    PET_FWHM_MM,
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
from .head import Head, acquisition_grid, codes_of, fractions, region_counts
from .physiology import (
    _BILATERAL,
    CODE_STRIDE,
    EFFECTS,
    PARAM_NAMES,
    SPREAD,
    TISSUE_PARAMS,
    TRUTH_ROIS,
    Physiology,
    gad_conc,
    participant_spread,
    pet_curves,
    pet_values,
    spect_values,
    t1w_values,
)


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


# ----------------------------------------------------------------------------- writing
def make_reference(
    out_dir,
    participants: int = 6,
    resolution: float = 3.0,
    seed: int = 0,
    progress=None,
    n_procs: int = 1,
) -> Path:
    """Write the reference demo dataset (BIDS, truth, configuration) to ``out_dir``.

    Every participant draws from its own random stream (spawned from ``seed``), so the
    dataset is the same whether its participants are written one after the other or
    ``n_procs`` side by side (separate processes).
    """
    bids, truth_dir = demo_folders(out_dir, participants, resolution)
    say = progress or (lambda msg: None)
    out_dir = Path(out_dir)
    root = np.random.SeedSequence(seed)
    rng = np.random.default_rng(root)
    n_ma = participants // 2
    groups = ["HC"] * (participants - n_ma) + ["MA"] * n_ma
    rng.shuffle(groups)
    truth = {
        "generator": f"inflamap {__version__} reference demo",
        "anatomy": "Colin27 (mricron-data), segmented by pipeline.demo.anatomy",
        "seed": seed,
        "random_streams": "one per participant: numpy SeedSequence(seed).spawn(participants)",
        "resolution_mm": resolution,
        "subvoxels_per_axis": _subvoxels(resolution),
        "hematocrit": HEMATOCRIT,
        "gadolinium_r1_per_mM_s": R1_GAD,
        "tissues": {t: dict(zip(PARAM_NAMES, v)) for t, v in TISSUE_PARAMS.items()},
        "between_participant_sd_log": SPREAD,
        "effects": EFFECTS,
        "participants": {},
    }
    jobs = [
        (f"sub-{i:02d}", group, stream, resolution, bids, truth_dir)
        for i, (group, stream) in enumerate(zip(groups, root.spawn(participants)), start=1)
    ]
    results = {}
    if n_procs > 1 and participants > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        # spawned workers: the caller may hold threads (ITK, BLAS) that a fork would copy
        with ProcessPoolExecutor(
            min(n_procs, participants), mp_context=mp.get_context("spawn")
        ) as pool:
            futures = {pool.submit(_write_participant, *job): job[:2] for job in jobs}
            for fut in as_completed(futures):
                pid, group = futures[fut]
                results[pid] = fut.result()
                say(f"{pid} ({group}) written")
    else:
        for job in jobs:
            results[job[0]] = _write_participant(*job)
            say(f"{job[0]} ({job[1]}) written")
    part_rows = []
    for pid, _, _, _, _, _ in jobs:
        row, ptruth = results[pid]
        part_rows.append(row)
        truth["participants"][pid] = ptruth
    write_dataset_files(bids, pd.DataFrame(part_rows), seed)
    atomic_write_text(json.dumps(truth, indent=1), truth_dir / "groundtruth.json")
    atomic_write_text(CONFIG, out_dir / "inflamap-demo.yml")
    return out_dir


def _subvoxels(resolution: float) -> int:
    """Sub-voxels per axis of the fine grid an image is simulated on (at most 1 mm)."""
    return max(1, int(np.ceil(resolution - 1e-6))) if resolution > 1 else 2


def _write_participant(pid, group, stream, resolution, bids, truth_dir) -> tuple:
    """Write one participant's sessions and truth tables from its own random ``stream``;
    returns its ``participants.tsv`` row and its ground-truth entry."""
    rng = np.random.default_rng(stream)
    anatomy = load_anatomy()
    k = _subvoxels(resolution)
    shape, aff = acquisition_grid(resolution)
    row = participant_row(rng, pid, group)
    side, weight = row.pop("headache_side"), row["body_weight"]
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
            "treatment": str(rng.choice(["none", "sumatriptan"])) if phase == "ictal" else "n/a",
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
            rng, head, phys, side, weight, (shape, aff), k, bids, pid, ses, truth_dir / pid / ses
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
    return row, ptruth


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
