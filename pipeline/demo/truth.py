"""Judge a run on the reference demo (:mod:`pipeline.demo.reference`) against true anatomy.

The truth of every regional number is the tissue-level value averaged over the true tissue
of the region in the participant's warped head (``groundtruth/.../*_desc-truth_regions.tsv``),
never over the pipeline's own label maps. Three views:

* :func:`regional_bias` — every row of every regional table beside its truth;
* :func:`bias_summary` — per modality × ROI family: median relative bias, its spread across
  participants, and for the planted effects the recovered change against the true change;
* :func:`group_truth` — the group tests rerun on the truth (same participants, sessions,
  contrasts): planted effects found (FDR, sign, CI covering the true estimate) and
  FDR-significant tests where nothing was planted (incl. regions next to a planted one and
  the normal enhancing structures).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..bids.tables import read_tsv

#: ROI families (by name) for the summary
FAMILIES = (
    ("meningeal", lambda r: r.startswith("meningeal_")),
    ("calvarial", lambda r: r.startswith("calvarial_")),
    (
        "normal enhancing",
        lambda r: r.endswith("_sinus") or r in ("cavernous_sinus_pituitary", "intracerebral_csf"),
    ),
    ("territory", lambda r: r in ("aca", "mca", "pca")),
    ("parenchyma", lambda r: True),
)
_SIDES = ("left", "right", "bilateral")
PLANTED_MIN = 0.02


def dice(a, b) -> float:
    """Dice coefficient of two boolean arrays (1.0 when both are empty)."""
    a = np.asarray(a, bool)
    b = np.asarray(b, bool)
    if a.shape != b.shape:
        raise ValueError(f"dice: shapes differ {a.shape} vs {b.shape}")
    den = a.sum() + b.sum()
    return 1.0 if den == 0 else float(2.0 * np.logical_and(a, b).sum() / den)


#: the tests designed to find each planted effect (effect id, contrast, modality, metric,
#: atlas, roi, hemisphere, test)
PRIMARY_TESTS = [
    *[
        (e, c, mod, met, atlas, roi, hemi, "paired_t")
        for e, mod, met, atlas, roi in (
            (
                "gad_meningeal_occipital",
                "gadolinium",
                "enhancement",
                "HarvardOxfordLobes",
                "meningeal_occipital",
            ),
            ("dce_ktrans_occipital", "dce", "Ktrans", "HarvardOxfordLobes", "occipital"),
            ("uspio_dr2star_aca", "uspio", "dR2star", "inflamapTerritories", "aca"),
        )
        for c, hemi in (("ictalVsInterictal", "ipsi"), ("ipsiVsContraIctal", "ipsi-contra"))
    ],
    (
        "spect_late_meningeal_occipital",
        "ipsiVsContraIctal",
        "spect",
        "lateEarlyRatio",
        "HarvardOxfordLobes",
        "meningeal_occipital",
        "ipsi-contra",
        "paired_t",
    ),
    *[
        (
            "pet_suv_occipital",
            "patientsVsHC",
            "pet",
            "SUVR",
            "HarvardOxfordLobes",
            roi,
            hemi,
            "welch",
        )
        for roi in ("occipital", "meningeal_occipital", "calvarial_occipital")
        for hemi in ("left", "right")
    ],
]

#: the columns that identify a group test
JOIN = ["contrast", "modality", "metric", "atlas", "roi", "hemisphere", "test"]


def family(roi: str) -> str:
    return next(name for name, test in FAMILIES if test(roi))


def is_reference(demo_dir) -> bool:
    gt = Path(demo_dir) / "groundtruth" / "groundtruth.json"
    return "reference" in json.loads(gt.read_text()).get("generator", "")


def truth_tables(demo_dir) -> pd.DataFrame:
    files = sorted(Path(demo_dir, "groundtruth").glob("sub-*/ses-*/*_desc-truth_regions.tsv"))
    return pd.concat([read_tsv(f) for f in files], ignore_index=True)


def measured_tables(output_dir) -> pd.DataFrame:
    """Every participant-level regional table, with its atlas (from the file name)."""
    frames = []
    for f in sorted(Path(output_dir).glob("sub-*/ses-*/*/*_regions.tsv")):
        t = read_tsv(f)
        if not {"modality", "metric", "roi", "hemisphere", "mean"} <= set(t.columns):
            continue
        atlas = next((p[6:] for p in f.name.split("_") if p.startswith("atlas-")), "n/a")
        frames.append(t.assign(atlas=atlas, source_table=str(f.relative_to(output_dir))))
    if not frames:
        raise FileNotFoundError(f"{output_dir}: no regional tables (run the participant level)")
    return pd.concat(frames, ignore_index=True)


def regional_bias(demo_dir, output_dir) -> pd.DataFrame:
    """Measured left/right/bilateral rows joined with their truth (rows without a truth —
    ROIs the reference does not define, e.g. ``mca`` — are dropped)."""
    truth = truth_tables(demo_dir)
    measured = measured_tables(output_dir)
    measured = measured[measured["hemisphere"].isin(_SIDES)]
    key = ["participant_id", "session_id", "modality", "metric", "roi", "hemisphere"]
    both = measured[[*key, "atlas", "mean", "n_voxels"]].merge(
        truth[[*key, "true", "baseline", "volume_ml", "tissues"]], on=key, how="inner"
    )
    both = both.rename(columns={"mean": "measured"})
    both["family"] = [family(r) for r in both["roi"]]
    with np.errstate(divide="ignore", invalid="ignore"):
        both["bias_percent"] = 100 * (both["measured"] - both["true"]) / both["true"].abs()
    return both


def planted_recovery(joined: pd.DataFrame, demo_dir) -> pd.DataFrame:
    """Per planted effect and ROI row where it was planted (true != baseline): the change
    measured against the change planted, per participant — ictal minus interictal for the
    session effects, measured minus the truth's own baseline otherwise."""
    gt = json.loads((Path(demo_dir) / "groundtruth" / "groundtruth.json").read_text())
    rows = []
    # planted: the truth moves by more than PLANTED_MIN of its baseline (a whole-brain
    # reference moves every SUVR a little when one region rises: not a planted change)
    planted = joined[
        (joined["true"] - joined["baseline"]).abs() > PLANTED_MIN * joined["baseline"].abs()
    ]
    for (pid, mod, met, atlas, roi, hemi), g in planted.groupby(
        ["participant_id", "modality", "metric", "atlas", "roi", "hemisphere"]
    ):
        sessions = gt["participants"][pid]["sessions"]
        base_ses = [s for s, v in sessions.items() if v["phase"] == "interictal"]
        all_rows = joined[
            (joined["participant_id"] == pid)
            & (joined["modality"] == mod)
            & (joined["metric"] == met)
            & (joined["atlas"] == atlas)
            & (joined["roi"] == roi)
            & (joined["hemisphere"] == hemi)
        ].set_index("session_id")
        for ses, r in g.set_index("session_id").iterrows():
            if base_ses and base_ses[0] in all_rows.index and base_ses[0] != ses:
                b = all_rows.loc[base_ses[0]]
                measured_change = r["measured"] - b["measured"]
                true_change = r["true"] - b["true"]
            else:  # no attack-free session of this modality (PET): against the baseline
                measured_change = r["measured"] - r["measured"] / r["true"] * r["baseline"]
                true_change = r["true"] - r["baseline"]
            if true_change == 0:  # planted alike in both sessions: no change to recover
                continue
            rows.append(
                {
                    "participant_id": pid,
                    "session_id": ses,
                    "modality": mod,
                    "metric": met,
                    "atlas": atlas,
                    "roi": roi,
                    "hemisphere": hemi,
                    "family": family(roi),
                    "volume_ml": r["volume_ml"],
                    "true_change": true_change,
                    "measured_change": measured_change,
                    "change_bias_percent": 100
                    * (measured_change - true_change)
                    / abs(true_change),
                }
            )
    return pd.DataFrame(rows)


def bias_summary(joined: pd.DataFrame, recovery: pd.DataFrame) -> pd.DataFrame:
    """Modality × metric × ROI family: rows, median bias % and its spread (SD across
    participants of their median), planted ROI rows and the median bias of their change."""
    out = []
    for (mod, met, fam), g in joined.groupby(["modality", "metric", "family"]):
        ok = g[np.isfinite(g["bias_percent"])]
        per_part = ok.groupby("participant_id")["bias_percent"].median()
        rec = (
            recovery[
                (recovery["modality"] == mod)
                & (recovery["metric"] == met)
                & (recovery["family"] == fam)
            ]
            if len(recovery)
            else recovery
        )
        out.append(
            {
                "modality": mod,
                "metric": met,
                "family": fam,
                "rows": int(len(ok)),
                "bias_percent": float(ok["bias_percent"].median()) if len(ok) else np.nan,
                "spread_percent": float(per_part.std(ddof=1)) if len(per_part) > 1 else np.nan,
                "planted_rows": int(len(rec)),
                "planted_change_bias_percent": float(rec["change_bias_percent"].median())
                if len(rec)
                else np.nan,
            }
        )
    return pd.DataFrame(out)


# ----------------------------------------------------------------------------- group level
def truth_group_table(demo_dir, output_dir) -> pd.DataFrame:
    """``group/desc-all_regions.tsv`` with ``mean``/``median`` replaced by the truth on true
    anatomy (ipsi/contra/AI rows from the true left/right); rows without a truth dropped.
    A ``baseline`` column holds the same without planted effects."""
    from ..models.regional import laterality_rows

    output_dir = Path(output_dir)
    measured = read_tsv(output_dir / "group" / "desc-all_regions.tsv")
    truth = truth_tables(demo_dir)
    gt = json.loads((Path(demo_dir) / "groundtruth" / "groundtruth.json").read_text())
    frames = []
    for (pid, ses, mod, met), t in truth.groupby(
        ["participant_id", "session_id", "modality", "metric"]
    ):
        side = gt["participants"][pid]["headache_side"]
        side = side if side in ("left", "right") else "none"
        for col in ("true", "baseline"):
            base = t[["roi", "hemisphere"]].assign(
                mean=t[col].to_numpy(), median=t[col].to_numpy(), sd=np.nan, n_voxels=1
            )
            lat = laterality_rows(base, side)
            full = pd.concat([base, lat], ignore_index=True) if len(lat) else base
            frames.append(
                full.assign(participant_id=pid, session_id=ses, modality=mod, metric=met, kind=col)
            )
    tt = pd.concat(frames, ignore_index=True)
    key = ["participant_id", "session_id", "modality", "metric", "roi", "hemisphere"]
    true = tt[tt["kind"] == "true"].set_index(key)
    base = tt[tt["kind"] == "baseline"].set_index(key)
    idx = pd.MultiIndex.from_frame(measured[key])
    out = measured.assign(
        mean=true["mean"].reindex(idx).to_numpy(),
        median=true["median"].reindex(idx).to_numpy(),
        baseline=base["mean"].reindex(idx).to_numpy(),
    )
    return out[out["mean"].notna()]


def group_truth(demo_dir, output_dir, config=None):
    """Group tests of the run against the same tests on the truth.

    Returns ``(planted, summary, joined)``: the tests of ROIs where an effect was planted
    (significant after FDR, sign, CI covering the true estimate), summary counts, and every
    test with its truth. A test is *null* when the truth of its ROI equals its baseline in
    every participant and session (nothing planted there).
    """
    from ..config import load_workflow_config
    from ..group.models import group_statistics

    demo_dir, output_dir = Path(demo_dir), Path(output_dir)
    workflow = load_workflow_config(config or demo_dir / "inflamap-demo.yml")
    g = workflow.group
    measured = read_tsv(output_dir / "group" / "desc-roistats_stats.tsv")
    tt = truth_group_table(demo_dir, output_dir)
    truth = group_statistics(tt.drop(columns=["baseline"]), **g.statistics_options())
    joined = measured.merge(
        truth[[*JOIN, "estimate"]].rename(columns={"estimate": "true_estimate"}),
        on=JOIN,
        how="inner",
    )
    unit = ["modality", "metric", "atlas", "roi"]
    planted_units = {
        k
        for k, v in tt.groupby(unit)
        if ((v["mean"] - v["baseline"]).abs() > PLANTED_MIN * v["baseline"].abs()).any()
    }
    joined["planted"] = [k in planted_units for k in zip(*(joined[c] for c in unit))]
    joined["family"] = [family(r) for r in joined["roi"]]
    tested = joined[joined["p"].notna()].copy()
    tested["sig"] = tested["significant"].astype(str).str.lower().isin(["true", "1"])
    # planted: the primary test of each planted effect (PRIMARY_TESTS)
    keys = pd.MultiIndex.from_frame(tested[JOIN])
    primary = {tuple(t[1:]): t[0] for t in PRIMARY_TESTS}
    is_primary = np.array([k in primary for k in keys])
    planted = tested[is_primary].assign(
        effect=[primary[k] for k in keys[is_primary]],
        right_sign=lambda d: np.sign(d["estimate"]) == np.sign(d["true_estimate"]),
        ci_covers_truth=lambda d: (
            (d["estimate_ci_low"] <= d["true_estimate"])
            & (d["true_estimate"] <= d["estimate_ci_high"])
        ),
    )
    missing = [t for t in PRIMARY_TESTS if tuple(t[1:]) not in set(keys)]
    planted["pass"] = planted["sig"] & planted["right_sign"] & planted["ci_covers_truth"]
    null = tested[~tested["planted"]]
    per_family = []
    for (mod, met, fam), grp in tested.groupby(["modality", "metric", "family"]):
        pl = planted[
            (planted["modality"] == mod) & (planted["metric"] == met) & (planted["family"] == fam)
        ]
        nl = grp[~grp["planted"]]
        per_family.append(
            {
                "modality": mod,
                "metric": met,
                "family": fam,
                "planted_found": f"{int(pl['pass'].sum())}/{len(pl)}",
                "false_positives": f"{int(nl['sig'].sum())}/{len(nl)}",
            }
        )
    summary = {
        "alpha": g.alpha,
        "tests": int(len(tested)),
        "planted_tests": int(len(planted)) + len(missing),
        "planted_not_tested": [t[0] + ": " + " ".join(t[1:]) for t in missing],
        "planted_pass": int(planted["pass"].sum()),
        "null_tests": int(len(null)),
        "null_significant": int(null["sig"].sum()),
        "null_significant_normal_enhancing": int(
            null[null["family"] == "normal enhancing"]["sig"].sum()
        ),
    }
    summary["per_family"] = per_family
    return planted, summary, joined


def mask_dice(demo_dir, output_dir) -> pd.DataFrame:
    """Per session: Dice of the pipeline's brain mask with the true brain (T1w grid)."""
    import nibabel as nb

    rows = []
    for tmask in sorted(
        Path(demo_dir, "groundtruth").glob("sub-*/ses-*/*_desc-brain_mask.nii.gz")
    ):
        pid, ses = tmask.name.split("_")[:2]
        emask = Path(output_dir) / pid / ses / "anat" / tmask.name
        if emask.exists():
            d = dice(
                np.asarray(nb.load(tmask).dataobj) > 0, np.asarray(nb.load(emask).dataobj) > 0
            )
            rows.append({"participant_id": pid, "session_id": ses, "mask_dice": d})
    return pd.DataFrame(rows, columns=["participant_id", "session_id", "mask_dice"])


#: acceptance of a participant-level run on the reference demo (issue #15)
CRITERIA = {
    "mask_dice": ">= 0.95 in every session",
    "meningeal_enhancement_change": "|median bias| < 25 % of the planted change",
    "dR2star_means": "|median bias| <= 10 % in parenchymal ROIs of >= 5 ml",
    "Ktrans_means": "|median bias| <= 0.001/min (10 % of the planted change) in ROIs >= 5 ml",
}


def verdict(masks, joined, recovery) -> list[dict]:
    out = []
    worst = float(masks["mask_dice"].min()) if len(masks) else float("nan")
    out.append(("mask_dice", worst, bool(len(masks)) and worst >= 0.95))
    rec = (
        recovery[(recovery["modality"] == "gadolinium") & (recovery["family"] == "meningeal")]
        if len(recovery)
        else recovery
    )
    med = float(rec["change_bias_percent"].median()) if len(rec) else float("nan")
    out.append(("meningeal_enhancement_change", med, bool(len(rec)) and abs(med) < 25))
    big = joined[(joined["volume_ml"] >= 5) & joined["family"].isin(["parenchyma", "territory"])]
    r2 = big[big["metric"] == "dR2star"]
    per = r2.groupby(["atlas", "roi", "hemisphere"])["bias_percent"].median()
    w = float(per.abs().max()) if len(per) else float("nan")
    out.append(("dR2star_means", w, bool(len(per)) and w <= 10))
    kt = big[big["metric"] == "Ktrans"]
    per = (
        (kt["measured"] - kt["true"]).groupby([kt["atlas"], kt["roi"], kt["hemisphere"]]).median()
    )
    w = float(per.abs().max()) if len(per) else float("nan")
    out.append(("Ktrans_means", w, bool(len(per)) and w <= 0.001))
    return [
        {"criterion": c, "threshold": CRITERIA[c], "value": v, "result": "PASS" if ok else "FAIL"}
        for c, v, ok in out
    ]


def main(demo_dir, output_dir, group=False) -> int:
    """Print (and write beside the outputs) the bias table; with ``group``, the group check."""
    joined = regional_bias(demo_dir, output_dir)
    recovery = planted_recovery(joined, demo_dir)
    summary = bias_summary(joined, recovery)
    out = Path(output_dir) / "logs"
    out.mkdir(parents=True, exist_ok=True)
    summary.to_csv(out / "reference-bias.tsv", sep="\t", index=False, float_format="%.4g")
    joined.to_csv(out / "reference-regions.tsv", sep="\t", index=False, float_format="%.6g")
    recovery.to_csv(out / "reference-planted.tsv", sep="\t", index=False, float_format="%.6g")
    masks = mask_dice(demo_dir, output_dir)
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(summary.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    checks = verdict(masks, joined, recovery)
    pd.DataFrame(checks).to_csv(out / "reference-verdict.tsv", sep="\t", index=False)
    for c in checks:
        print(f"{c['result']}  {c['criterion']} ({c['threshold']}): {c['value']:.4g}")
    ok = all(c["result"] == "PASS" for c in checks)
    if not group:
        return 0 if ok else 1
    planted, counts, _ = group_truth(demo_dir, output_dir)
    fam = pd.DataFrame(counts.pop("per_family"))
    if len(fam):
        summary = summary.merge(fam, on=["modality", "metric", "family"], how="outer")
        summary.to_csv(out / "reference-bias.tsv", sep="\t", index=False, float_format="%.4g")
        with pd.option_context("display.width", 250, "display.max_columns", 30):
            print(summary.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    cols = ["effect", *("contrast", "modality", "metric", "atlas", "roi", "hemisphere", "test")]
    cols += ["estimate", "true_estimate", "p_fdr", "sig", "right_sign", "ci_covers_truth"]
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print(planted[cols].to_string(index=False))
    print(json.dumps(counts, indent=1))
    group_ok = counts["planted_pass"] == counts["planted_tests"] and not counts["null_significant"]
    return 0 if ok and group_ok else 1
