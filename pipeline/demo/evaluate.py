"""Compare inflamap's outputs on the demo with the demo's ground truth.

Used by the tests and available to users who want to check an installation
(``python -m pipeline.demo.evaluate DEMO_DIR OUTPUT_DIR``; after the group level,
``python -m pipeline.demo.evaluate --group DEMO_DIR OUTPUT_DIR``).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from ..utils import same_grid
from .truth import JOIN, dice


def label_dice(truth, estimate, voxel_volume_mm3: float, min_volume_cm3: float = 2.0) -> dict:
    """Dice per label present in ``truth`` with at least ``min_volume_cm3``."""
    truth = np.asarray(truth).astype(int)
    estimate = np.asarray(estimate).astype(int)
    out = {}
    for lab in np.unique(truth[truth > 0]):
        vol = (truth == lab).sum() * voxel_volume_mm3 / 1000.0
        if vol >= min_volume_cm3:
            out[int(lab)] = dice(truth == lab, estimate == lab)
    return out


def rigid_difference(estimated, truth, center_mm):
    """Rotation (degrees) and translation (mm, at ``center_mm``) between two affine maps.

    Both are 4x4 point mappings template → subject (RAS mm). The rotation is that of the
    polar decomposition of each linear part (scaling removed); the translation is the
    distance between the images of ``center_mm`` (the template brain centroid).
    """

    def rotation(m):
        u, _, vt = np.linalg.svd(np.asarray(m)[:3, :3])
        return u @ vt

    r = rotation(estimated).T @ rotation(truth)
    angle = float(np.degrees(np.arccos(np.clip((np.trace(r) - 1) / 2, -1, 1))))
    c = np.r_[np.asarray(center_mm, float), 1.0]
    shift = float(np.linalg.norm((np.asarray(estimated) @ c - np.asarray(truth) @ c)[:3]))
    return angle, shift


def affine_from_xfm(h5_path):
    """The affine part (RAS 4x4, template → T1w points) of an ANTs composite transform."""
    from nitransforms.manip import load

    chain = load(str(h5_path), fmt="itk")
    affines = [t for t in chain.transforms if type(t).__name__ == "Affine"]
    if len(affines) != 1:
        raise ValueError(f"{h5_path}: expected one affine in the composite transform")
    return affines[0].matrix


def evaluate(demo_dir, output_dir, template_mask=None) -> list[dict]:
    """Per session: brain-mask Dice, label Dice (ROIs >= 2 cm3) and rigid-motion error."""
    import nibabel as nb

    demo_dir, output_dir = Path(demo_dir), Path(output_dir)
    truth = json.loads((demo_dir / "groundtruth" / "groundtruth.json").read_text())
    template = truth["template"]
    if template_mask is None:
        from ..templates import get_template_file

        template_mask = get_template_file(template, 2, desc="brain", suffix="mask")
    mimg = nb.load(template_mask)
    ijk = np.argwhere(np.asarray(mimg.dataobj) > 0).mean(axis=0)
    center = mimg.affine[:3, :3] @ ijk + mimg.affine[:3, 3]
    rows = []
    for pid, p in truth["participants"].items():
        for ses, s in p["sessions"].items():
            anat = output_dir / pid / ses / "anat"
            stem = f"{pid}_{ses}"
            if not (anat / f"{stem}_desc-brain_mask.nii.gz").exists():
                continue
            gt = demo_dir / "groundtruth" / pid / ses
            tmask = nb.load(gt / f"{stem}_desc-brain_mask.nii.gz")
            emask = nb.load(anat / f"{stem}_desc-brain_mask.nii.gz")
            tlab = nb.load(gt / f"{stem}_atlas-{truth['atlas']}_dseg.nii.gz")
            elab = nb.load(anat / f"{stem}_atlas-{truth['atlas']}_dseg.nii.gz")
            vox = float(np.prod(tmask.header.get_zooms()[:3]))
            ld = label_dice(np.asarray(tlab.dataobj), np.asarray(elab.dataobj), vox)
            world = np.asarray(
                s["files"][f"{pid}/{ses}/anat/{stem}_T1w.nii.gz"]["world_from_template"]
            )
            est = affine_from_xfm(anat / f"{stem}_from-T1w_to-{template}_mode-image_xfm.h5")
            angle, shift = rigid_difference(est, world, center)
            rows.append(
                {
                    "participant_id": pid,
                    "session_id": ses,
                    "mask_dice": dice(
                        np.asarray(tmask.dataobj) > 0, np.asarray(emask.dataobj) > 0
                    ),
                    "label_dice_mean": float(np.mean(list(ld.values()))),
                    "label_dice_min": float(np.min(list(ld.values()))),
                    "rotation_error_deg": angle,
                    "translation_error_mm": shift,
                }
            )
    return rows


#: what a participant-level run of the demo must reach, per session (column: (kind, bound));
#: the tests hold the demo run to the same numbers
CRITERIA = {
    "mask_dice": (">=", 0.90),
    "label_dice_mean": (">=", 0.80),
    "rotation_error_deg": ("<=", 1.0),
    "translation_error_mm": ("<=", 1.0),
}


def verdict(rows) -> list[dict]:
    """Per criterion of :data:`CRITERIA`: the threshold, the worst session's value and
    ``PASS``/``FAIL`` (``FAIL`` also when no session was evaluated)."""
    out = []
    for column, (kind, bound) in CRITERIA.items():
        values = [float(r[column]) for r in rows]
        worst = (min if kind == ">=" else max)(values) if values else float("nan")
        ok = bool(values) and (worst >= bound if kind == ">=" else worst <= bound)
        out.append(
            {
                "criterion": column,
                "threshold": f"{kind} {bound:g}",
                "worst": worst,
                "sessions": len(values),
                "result": "PASS" if ok else "FAIL",
            }
        )
    return out


def main_participant(argv=None) -> int:
    """``python -m pipeline.demo.evaluate DEMO_DIR OUTPUT_DIR``: the table per session, then
    PASS/FAIL per criterion; exit 0 when every criterion passes, else 1."""
    demo_dir, output_dir = argv
    rows = evaluate(demo_dir, output_dir)
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(pd.DataFrame(rows).to_string(index=False) if rows else "no session evaluated")
    checks = verdict(rows)
    for c in checks:
        print(
            f"{c['result']}  {c['criterion']} {c['threshold']}: worst {c['worst']:.4g} "
            f"over {c['sessions']} session(s)"
        )
    return 0 if all(c["result"] == "PASS" for c in checks) else 1


# ----------------------------------------------------------------------------- group level
# Where the truth of each kind of regional table is (file names relative to the session's
# derivatives folder and to its ground-truth folder; {s} = sub-X_ses-Y). ``labels`` are the
# ROI maps the pipeline computed the table on (first one found), ``measured`` the map the
# table summarises (its finite voxels are the table's voxels), ``truth`` the demo's truth on
# the same grid. Gadolinium, DCE and USPIO truths are the planted *effect* maps (the planted
# change is added to the baseline, so unplanted ROIs have a true effect of exactly 0; for a
# Patlak DCE analysis, the change Patlak gives on noise-free data, which backflux makes
# smaller than the planted Ktrans; for extended Tofts the planted Ktrans change); PET
# truth is the noise-free SUV divided by its mean over the pipeline's brain mask (SUVR with
# the whole-brain reference); SPECT truth is the noise-free late/early ratio on the T1w grid
# (the table is on the SPECT grid: approximate).
TRUTH_SOURCES = [
    (
        r"ce-(?P<agent>[A-Za-z0-9]+)_atlas-(?P<atlas>[A-Za-z0-9]+)_desc-percent_regions",
        ["anat/{s}_atlas-{atlas}_desc-extracerebral_dseg"],
        "anat/{s}_ce-{agent}_desc-percent_T1w",
        "{s}_ce-{agent}_desc-effect_percent",
        "effect",
    ),
    (
        r"ce-(?P<agent>[A-Za-z0-9]+)_atlas-(?P<atlas>[A-Za-z0-9]+)_desc-Ktrans_regions",
        ["anat/{s}_ce-{agent}_space-dce_atlas-{atlas}_desc-extracerebral_dseg"],
        "anat/{s}_ce-{agent}_Ktrans",
        "{s}_ce-{agent}_desc-{dce_effect}_Ktrans",
        "effect",
    ),
    (
        r"ce-(?P<agent>[A-Za-z0-9]+)_atlas-(?P<atlas>[A-Za-z0-9]+)_desc-dR2star_regions",
        [
            "anat/{s}_ce-{agent}_atlas-{atlas}_desc-extracerebral_dseg",
            "anat/{s}_ce-{agent}_atlas-{atlas}_dseg",
        ],
        "anat/{s}_ce-{agent}_desc-delta_R2starmap",
        "{s}_ce-{agent}_desc-effect_dR2star",
        "effect",
    ),
    (
        r"trc-(?P<trc>[A-Za-z0-9]+)_atlas-(?P<atlas>[A-Za-z0-9]+)_desc-SUVR_regions",
        [
            "anat/{s}_atlas-{atlas}_desc-extracerebral_dseg",
            "pet/{s}_trc-{trc}_space-T1w_atlas-{atlas}_dseg",
        ],
        "pet/{s}_trc-{trc}_space-T1w_desc-SUVR_pet",
        "{s}_trc-{trc}_desc-true_SUV",
        "suvr",
    ),
    (
        r"trc-(?P<trc>[A-Za-z0-9]+)_atlas-(?P<atlas>[A-Za-z0-9]+)_desc-lateEarlyRatio_regions",
        ["anat/{s}_atlas-{atlas}_desc-extracerebral_dseg"],
        None,
        "{s}_trc-{trc}_desc-true_ratio",
        "ratio",
    ),
]


def truth_regional_table(demo_dir, output_dir, source_table: str, dce_model="patlak"):
    """The regional table ``source_table`` (relative to ``output_dir``) recomputed on the
    demo's truth over the pipeline's own ROIs, or ``None`` for tables without a truth
    (e.g. the normalised T1w). ``dce_model``: the run's ``dce.model``."""
    import nibabel as nb
    import pandas as pd

    from ..interfaces.regional import read_lut
    from ..models.regional import regional_table

    demo_dir, output_dir = Path(demo_dir), Path(output_dir)
    measured_table = output_dir / source_table
    name = measured_table.name
    pid, ses = name.split("_")[:2]
    s = f"{pid}_{ses}"
    rest = name[len(s) + 1 :].removesuffix(".tsv")
    for pattern, label_names, measured_name, truth_name, kind in TRUTH_SOURCES:  # noqa: B007 - used after the break
        m = re.fullmatch(pattern, rest)
        if m:
            break
    else:
        return None
    fill = {
        "s": s,
        **m.groupdict(),
        "dce_effect": "patlakEffect" if dce_model == "patlak" else "effect",
    }
    sesdir = output_dir / pid / ses
    labels_path = next(
        (
            sesdir / (n.format(**fill) + ".nii.gz")
            for n in label_names
            if (sesdir / (n.format(**fill) + ".nii.gz")).exists()
        ),
        None,
    )
    truth_path = demo_dir / "groundtruth" / pid / ses / (truth_name.format(**fill) + ".nii.gz")
    if labels_path is None or not truth_path.exists():
        raise FileNotFoundError(
            f"{measured_table}: no ROI map ({', '.join(label_names)}) or no truth map {truth_path}"
        )
    lab_img, truth_img = nb.load(labels_path), nb.load(truth_path)
    if not same_grid(lab_img, truth_img):
        raise ValueError(f"{truth_path}: not on the grid of {labels_path}")
    labels = np.asarray(lab_img.dataobj).astype(int)
    truth = truth_img.get_fdata()
    if "_desc-effect_" in truth_path.name:
        # effect = true - baseline, written in float32: rounding leaves ~1e-8 where nothing
        # was planted; below 1e-4 of the map's largest true value is no effect
        full = nb.load(str(truth_path).replace("_desc-effect_", "_desc-true_")).get_fdata()
        truth[np.abs(truth) < 1e-4 * np.nanmax(np.abs(full))] = 0.0
    mask = np.isfinite(truth)
    if measured_name is not None:
        measured_img = nb.load(sesdir / (measured_name.format(**fill) + ".nii.gz"))
        if not same_grid(measured_img, lab_img):
            raise ValueError(f"{measured_img.get_filename()}: not on the grid of {labels_path}")
        mask &= np.isfinite(measured_img.get_fdata())
    if kind == "suvr":
        brain = np.asarray(nb.load(sesdir / "anat" / f"{s}_desc-brain_mask.nii.gz").dataobj) > 0
        truth = truth / truth[brain & mask].mean()
    measured = pd.read_csv(measured_table, sep="\t", na_values=["n/a"], keep_default_na=False)
    gt = json.loads((demo_dir / "groundtruth" / "groundtruth.json").read_text())
    side = gt["participants"][pid]["headache_side"]  # as in the demo's sessions.tsv
    lut = read_lut(labels_path.with_name(labels_path.name.replace(".nii.gz", ".tsv")))
    modality, metric = measured["modality"].iloc[0], measured["metric"].iloc[0]
    table = regional_table(
        truth,
        labels,
        lut,
        participant_id=pid,
        session_id=ses,
        modality=modality,
        metric=metric,
        headache_side=side if side in ("left", "right") else None,
        mask=mask,
    )
    if kind == "effect":  # an asymmetry index of added effects is not that of the values
        table.loc[table["hemisphere"] == "AI", ["mean", "median"]] = np.nan
    key = ["roi", "hemisphere"]
    both = measured.merge(
        table[[*key, "mean", "median"]], on=key, how="left", suffixes=("_measured", "")
    )
    # a row the pipeline left empty (too few voxels) is empty in the truth as well
    for col in ("mean", "median"):
        both.loc[both[f"{col}_measured"].isna(), col] = np.nan
    return both.drop(columns=["mean_measured", "median_measured", "sd"])


def truth_group_table(demo_dir, output_dir, dce_model="patlak") -> pd.DataFrame:
    """``group/desc-all_regions.tsv`` of a finished group run with ``mean``/``median``
    replaced by their truth (rows of tables without a truth are dropped)."""
    import pandas as pd

    output_dir = Path(output_dir)
    measured = pd.read_csv(
        output_dir / "group" / "desc-all_regions.tsv",
        sep="\t",
        na_values=["n/a"],
        keep_default_na=False,
        dtype={"participant_id": str, "session_id": str},
    )
    frames = []
    for source, rows in measured.groupby("source_table", sort=True):
        truth = truth_regional_table(demo_dir, output_dir, source, dce_model)
        if truth is None:
            continue
        t = truth.set_index(["roi", "hemisphere"])
        r = rows.set_index(["roi", "hemisphere"])
        r = r.assign(
            mean=t["mean"].reindex(r.index).to_numpy(),
            median=t["median"].reindex(r.index).to_numpy(),
        )
        frames.append(r.reset_index()[rows.columns])
    return pd.concat(frames, ignore_index=True)


# The planted effects of the demo (generate.EFFECTS) and the group tests that must find
# them: (effect id, contrast, modality, metric, atlas, roi, hemisphere, test).
PLANTED_TESTS = [
    *[
        (e, c, mod, met, atlas, roi, hemi, "paired_t")
        for e, mod, met, atlas, roi in (
            (
                "gad_meningeal_occipital",
                "gadolinium",
                "enhancement",
                "inflamapLobes",
                "meningeal_occipital",
            ),
            ("dce_ktrans_occipital", "dce", "Ktrans", "inflamapLobes", "occipital"),
            ("uspio_dr2star_aca", "uspio", "dR2star", "inflamapTerritories", "aca"),
        )
        for c, hemi in (("ictalVsInterictal", "ipsi"), ("ipsiVsContraIctal", "ipsi-contra"))
    ],
    (
        "spect_late_meningeal_occipital",
        "ipsiVsContraIctal",
        "spect",
        "lateEarlyRatio",
        "inflamapLobes",
        "meningeal_occipital",
        "ipsi-contra",
        "paired_t",
    ),
    *[
        ("pet_suvr_occipital", "MAVsHC", "pet", "SUVR", "inflamapLobes", roi, hemi, "welch")
        for roi in ("occipital", "meningeal_occipital", "calvarial_occipital")
        for hemi in ("left", "right")
    ],
]


def evaluate_group(demo_dir, output_dir, config=None):
    """Judge a group run on the demo against the truth.

    The truth of every test is the same test run on :func:`truth_group_table` (the same
    participants, sessions, ROIs and contrasts). Returns ``(planted, summary, joined)``:
    one row per :data:`PLANTED_TESTS` entry (significant after FDR, sign, CI coverage of
    the true estimate), a dict of summary numbers (share of FDR-significant tests in null
    ROIs — ROIs whose true value is exactly 0 for every participant and session — and
    significant tests whose sign contradicts the truth) and all tests with their truth.
    """
    import pandas as pd

    from ..config import load_workflow_config
    from ..group.models import group_statistics

    demo_dir, output_dir = Path(demo_dir), Path(output_dir)
    if config is None:
        config = demo_dir / "inflamap-demo.yml"
    workflow = load_workflow_config(config)
    g = workflow.group
    measured = pd.read_csv(
        output_dir / "group" / "desc-roistats_stats.tsv",
        sep="\t",
        na_values=["n/a"],
        keep_default_na=False,
    )
    truth_table = truth_group_table(demo_dir, output_dir, workflow.dce.model)
    truth = group_statistics(truth_table, **g.statistics_options())
    joined = measured.merge(
        truth[[*JOIN, "estimate", "effect_size"]].rename(
            columns={"estimate": "true_estimate", "effect_size": "true_effect_size"}
        ),
        on=JOIN,
        how="inner",
    )
    vals = truth_table.groupby(["modality", "metric", "atlas", "roi"])[g.value]
    null_rois = vals.apply(lambda v: bool(np.all(v.dropna().to_numpy() == 0)) and v.notna().any())
    null_rois = {k for k, v in null_rois.items() if v}
    joined["null_roi"] = [
        k in null_rois
        for k in zip(joined["modality"], joined["metric"], joined["atlas"], joined["roi"])
    ]
    tested = joined[joined["p"].notna()]
    sig = tested["significant"].astype(str).str.lower().isin(["true", "1"])
    null = tested[tested["null_roi"]]
    null_sig = sig[tested["null_roi"]]
    wrong_sign = tested[
        sig
        & ~tested["null_roi"]
        & (np.sign(tested["estimate"]) != np.sign(tested["true_estimate"]))
    ]
    rows = []
    idx = joined.set_index(JOIN)
    for effect, *key in PLANTED_TESTS:
        k = tuple(key)
        if k not in idx.index:
            rows.append({"effect": effect, **dict(zip(JOIN, key)), "found": False})
            continue
        r = idx.loc[k]
        r = r.iloc[0] if isinstance(r, pd.DataFrame) else r
        is_sig = str(r["significant"]).lower() in ("true", "1")
        rows.append(
            {
                "effect": effect,
                **dict(zip(JOIN, key)),
                "found": True,
                "n1": r["n1"],
                "n2": r["n2"],
                "estimate": r["estimate"],
                "ci_low": r["estimate_ci_low"],
                "ci_high": r["estimate_ci_high"],
                "true_estimate": r["true_estimate"],
                "p_fdr": r["p_fdr"],
                "significant": is_sig,
                "right_sign": bool(np.sign(r["estimate"]) == np.sign(r["true_estimate"])),
                "ci_covers_truth": bool(
                    r["estimate_ci_low"] <= r["true_estimate"] <= r["estimate_ci_high"]
                ),
            }
        )
    planted = pd.DataFrame(rows)
    planted["pass"] = (
        planted["found"]
        & planted.get("significant", False)
        & planted.get("right_sign", False)
        & planted.get("ci_covers_truth", False)
    )
    summary = {
        "alpha": g.alpha,
        "tests": int(len(tested)),
        "null_tests": int(len(null)),
        "null_significant": int(null_sig.sum()),
        "null_share": float(null_sig.mean()) if len(null) else float("nan"),
        "wrong_sign_significant": int(len(wrong_sign)),
        "planted_pass": int(planted["pass"].sum()),
        "planted_total": int(len(planted)),
    }
    return planted, summary, joined


def main_group(argv=None) -> int:  # pragma: no cover - command-line wrapper
    """``python -m pipeline.demo.evaluate --group DEMO_DIR OUTPUT_DIR``."""
    import pandas as pd

    demo_dir, output_dir = argv
    planted, summary, joined = evaluate_group(demo_dir, output_dir)
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(planted.drop(columns=["found"]).to_string(index=False))
    print(json.dumps(summary, indent=1))
    ok = summary["planted_pass"] == summary["planted_total"] and (
        not summary["null_tests"] or summary["null_share"] <= summary["alpha"]
    )
    return 0 if ok else 1


if __name__ == "__main__":  # pragma: no cover
    from .truth import is_reference
    from .truth import main as reference_main

    group = sys.argv[1:2] == ["--group"]
    args = sys.argv[2:] if group else sys.argv[1:]
    if len(args) == 2 and is_reference(args[0]):  # the reference demo: truth on true anatomy
        sys.exit(reference_main(*args, group=group))
    if group:
        sys.exit(main_group(sys.argv[2:]))
    sys.exit(main_participant(sys.argv[1:]))
