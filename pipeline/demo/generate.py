"""Write the demo BIDS dataset (digital reference object) and its ground truth.

Layout written under ``DIR``::

    DIR/bids/                 a valid BIDS dataset (the input of the demo run)
    DIR/groundtruth/          machine-readable truth: groundtruth.json, and per session the
                              true brain mask and atlas labels on the T1w grid
    DIR/inflamap-demo.yml     the configuration the demo is run with

Every participant has two sessions. Patients (MA) have ``ses-01`` interictal and ``ses-02``
ictal with a headache side; controls (HC) have two attack-free sessions. Each session has a
pre- and post-gadolinium T1w, pre/post-ferumoxytol multi-echo GRE, VFA and a DCE series;
``ses-01`` also has a [11C]PBR28 PET, ``ses-02`` an early/late 99mTc-albumin SPECT pair.
Every image has its own true rigid head position. The truth of each planted effect is
written beside the data (``groundtruth/``): effect maps on the acquisition grids
(gadolinium percent, DCE Ktrans, USPIO ΔR2*; for DCE also the change a Patlak analysis of
noise-free data gives, ``desc-patlakEffect``) and noise-free PET SUV (with and without the
effects) and SPECT late/early ratio maps on the T1w grid of the session, so that tests can
evaluate them over the pipeline's own ROIs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from .. import __version__
from ..models.pharmacokinetics import parker_aif
from ..models.signal import spgr_signal
from ..utils import atomic_write_text
from .common import (
    ENHANCEMENT_FLOOR,
    GAD_AGENT,
    HEMATOCRIT,
    PET_FWHM_MM,
    POST_GAD_TIME_S,
    R1_GAD,
    SPECT,
    T1W,
    bias_field,
    demo_folders,
    participant_row,
    random_rigid,
    rician,
    t1w_meta,
    write_dataset_files,
)
from .common import save_image as _save
from .phantom import TISSUES, build_phantom, tissue_param
from .phantom_series import (
    EFFECTS,
    _effect_masks,
    _mix,
    effects_for,
    gad_concentration,
    grid_affine,
    megre_pair,
    pet_series,
    sample,
    spect_pair,
    vfa_dce,
)

TEMPLATE = "MNI152NLin2009aSym"
# extravasated albumin at the late scan (fraction of the voxel, plasma-concentration units)


def make_demo(
    out_dir,
    participants: int = 6,
    resolution: float = 3.0,
    seed: int = 0,
    templateflow_home=None,
    progress=None,
) -> Path:
    """Write the demo dataset to ``out_dir`` (see module docstring). Returns ``out_dir``."""
    import nibabel as nb

    from ..templates import build_offline_home, get_template_file

    bids, truth_dir = demo_folders(out_dir, participants, resolution)
    say = progress or (lambda msg: None)
    out_dir = Path(out_dir)
    if templateflow_home is not None:
        build_offline_home(templateflow_home)
    rng = np.random.default_rng(seed)

    say("building the template-space head phantom")
    mask_img = nb.load(get_template_file(TEMPLATE, 1, desc="brain", suffix="mask"))
    gm = nb.load(get_template_file(TEMPLATE, 1, label="GM", suffix="probseg")).get_fdata()
    wm = nb.load(get_template_file(TEMPLATE, 1, label="WM", suffix="probseg")).get_fdata()
    base = build_phantom(mask_img.get_fdata(), gm, wm, mask_img.affine)
    ph_anat = base.smoothed(resolution)
    dce_res = resolution  # DCE on the anatomical grid: the sinus must hold pure-blood voxels
    ph_dce = ph_anat
    ph_pet = base.smoothed(float(np.hypot(resolution, PET_FWHM_MM)))
    ph_spect = base.smoothed(float(np.hypot(resolution, SPECT["fwhm"])))
    truth_dir.mkdir(parents=True, exist_ok=True)
    shape, aff = grid_affine(resolution, base.affine, base.labels.shape)
    dshape, daff = grid_affine(dce_res, base.affine, base.labels.shape)

    n_ma = participants // 2
    groups = ["HC"] * (participants - n_ma) + ["MA"] * n_ma
    rng.shuffle(groups)
    part_rows, truth = (
        [],
        {
            "generator": f"inflamap {__version__} demo",
            "seed": seed,
            "resolution_mm": resolution,
            "template": TEMPLATE,
            "atlas": "inflamapLobes",
            "hematocrit": HEMATOCRIT,
            "gadolinium_r1_per_mM_s": R1_GAD,
            "tissues": {
                t: dict(
                    zip(
                        (
                            "pd",
                            "t1_s",
                            "r2star_per_s",
                            "vp",
                            "ve",
                            "ktrans_per_min",
                            "uspio_dr2star_per_s",
                            "suv",
                        ),
                        v,
                    )
                )
                for t, v in __import__("pipeline.demo.phantom", fromlist=["PARAMS"]).PARAMS.items()
            },
            "effects": EFFECTS,
            "participants": {},
        },
    )
    for i, group in enumerate(groups, start=1):
        pid = f"sub-{i:02d}"
        say(f"{pid} ({group})")
        row = participant_row(rng, pid, group)
        side, weight = row.pop("headache_side"), row["body_weight"]
        part_rows.append(row)
        scale = np.diag(np.r_[rng.uniform(0.94, 1.06, 3), 1.0])
        ptruth = {
            "group": group,
            "headache_side": side,
            "anatomical_scale": np.diag(scale)[:3].tolist(),
            "sessions": {},
        }
        sess_rows = []
        for s, phase in ((1, "interictal"), (2, "ictal")):
            ses = f"ses-{s:02d}"
            phase = phase if group != "HC" else "n/a"
            srow = {
                "session_id": ses,
                "phase": phase,
                "headache_side": side if group != "HC" else "none",
                "hours_since_onset": float(np.round(rng.uniform(2, 12), 1))
                if phase == "ictal"
                else "n/a",
                "treatment": str(rng.choice(["none", "sumatriptan"]))
                if phase == "ictal"
                else "n/a",
            }
            sess_rows.append(srow)
            effects = effects_for(part_rows[-1], srow)
            session_pose = random_rigid(rng)
            files = {}
            stem = f"{pid}_{ses}"
            anat = bids / pid / ses / "anat"
            bias = bias_field(rng, shape, aff)

            def pose(small):
                m = session_pose @ (random_rigid(rng, 1.0, 1.0) if small else np.eye(4))
                return m @ scale

            # ---- T1w pre and post gadolinium (same coil bias) --------------------------
            t_gad = np.array([0.0, 60.0, 120.0, 240.0, POST_GAD_TIME_S])
            cp_t = parker_aif(t_gad, 0.0, HEMATOCRIT)
            wm_level = spgr_signal(0.7, 1 / 0.85, T1W["fa"], T1W["tr"])

            def t1w_signal(fr, xyz, post, with_effects=True):
                masks = _effect_masks(effects if with_effects else [], "gadolinium", xyz, side)
                sig = {}
                for t in TISSUES:
                    r1 = 1.0 / tissue_param(t, "t1")
                    if post:
                        r1 = r1 + R1_GAD * gad_concentration(t, t_gad, shape, masks, cp_t)[..., -1]
                    sig[t] = spgr_signal(tissue_param(t, "pd"), r1, T1W["fa"], T1W["tr"])
                return _mix(fr, sig) / wm_level * 1000.0

            meta = t1w_meta(False)
            w_pre, w_post = pose(False), pose(True)
            fr, labels, brain, xyz = sample(ph_anat, w_pre, shape, aff)
            pre_clean = t1w_signal(fr, xyz, False)
            path = anat / f"{stem}_T1w.nii.gz"
            _save(rician(rng, pre_clean * bias, 1000.0 / T1W["snr"]), aff, path, meta=meta)
            files[str(path.relative_to(bids))] = {"world_from_template": w_pre.tolist()}
            gt = truth_dir / pid / ses
            _save(labels, aff, gt / f"{stem}_atlas-inflamapLobes_dseg.nii.gz", dtype=np.uint8)
            _save(
                brain.astype(np.uint8), aff, gt / f"{stem}_desc-brain_mask.nii.gz", dtype=np.uint8
            )
            # truth on the pre grid: noise- and bias-free percent enhancement, and the part of
            # it due to the planted effects (floor: ENHANCEMENT_FLOOR x brain median of pre)
            floor = ENHANCEMENT_FLOOR * np.median(pre_clean[brain])
            post_eff = t1w_signal(fr, xyz, True)
            post_base = t1w_signal(fr, xyz, True, with_effects=False)
            den = np.maximum(pre_clean, floor)
            _save(
                100 * (post_eff - pre_clean) / den,
                aff,
                gt / f"{stem}_ce-{GAD_AGENT}_desc-true_percent.nii.gz",
                dtype=np.float32,
            )
            _save(
                100 * (post_eff - post_base) / den,
                aff,
                gt / f"{stem}_ce-{GAD_AGENT}_desc-effect_percent.nii.gz",
                dtype=np.float32,
            )
            fr, _, _, xyz = sample(ph_anat, w_post, shape, aff)
            path = anat / f"{stem}_ce-{GAD_AGENT}_T1w.nii.gz"
            _save(
                rician(rng, t1w_signal(fr, xyz, True) * bias, 1000.0 / T1W["snr"]),
                aff,
                path,
                meta=t1w_meta(True),
            )
            files[str(path.relative_to(bids))] = {"world_from_template": w_post.tolist()}

            megre_pair(rng, ph_anat, pose, shape, aff, effects, side, bias, bids, gt, stem, files)
            vfa_dce(rng, ph_dce, pose, dshape, daff, effects, side, bids, gt, stem, files)
            if s == 1:  # TSPO PET in the first session only
                pet_series(
                    rng,
                    ph_pet,
                    pose,
                    w_pre,
                    shape,
                    aff,
                    effects,
                    side,
                    weight,
                    bids,
                    gt,
                    stem,
                    files,
                )

            # ---- 99mTc-albumin SPECT, early and late (second session only) -------------
            if s == 2:
                spect_pair(
                    rng, ph_spect, pose, w_pre, shape, aff, effects, side, bids, gt, stem, files
                )
            ptruth["sessions"][ses] = {
                "phase": phase,
                "headache_side": srow["headache_side"],
                "effects": [e["id"] for e in effects],
                "files": files,
            }
        pd.DataFrame(sess_rows).to_csv(bids / pid / f"{pid}_sessions.tsv", sep="\t", index=False)
        truth["participants"][pid] = ptruth

    write_dataset_files(bids, pd.DataFrame(part_rows), seed)
    atomic_write_text(json.dumps(truth, indent=1), truth_dir / "groundtruth.json")
    config = (
        "# Configuration of the demo run (template bundled for offline use)\n"
        "anat:\n"
        f"  template: {TEMPLATE}\n"
        "  template_resolution: 2\n"
        "  atlas: inflamapLobes\n"
        "# the demo plants its effects in the built-in (approximate) regions\n"
        "uspio:\n"
        "  atlas: inflamapTerritories\n"
        "pet:\n"
        "  atlas: inflamapTSPO\n"
    )
    atomic_write_text(config, out_dir / "inflamap-demo.yml")
    return out_dir
