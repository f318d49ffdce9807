"""Benchmark: ROI-level group statistics over synthetic participants.

    python benchmarks/bench_group.py                      # 200 participants x 4 modalities
    python benchmarks/bench_group.py --participants 50    # quick look

Builds a gathered group table in the shape of the participant level (regional tables with
ipsi/contra/AI rows for lateral headaches, ``participants.tsv`` and ``sessions.tsv``
columns), runs every default contrast of ``configs/defaults.yml`` (``group`` section) and
prints the time and its ratio to the issue's target (60 s on 2 cores), and to a naive
baseline: the same Welch tests, Hedges g and power run row by row through pandas boolean
selection and statsmodels' ``solve_power`` without caching, timed on a sample of units and
extrapolated.

:func:`synthetic_group_table` is also used by ``tests/test_group_stats.py``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LOBES = ["frontal", "parietal", "temporal", "occipital", "thalamus", "cerebellum"]
BANDS = [f"meningeal_{lobe}" for lobe in LOBES[:4]] + [f"calvarial_{lobe}" for lobe in LOBES[:4]]
MIDLINE = ["brainstem", "superior_sagittal_sinus"]
MODALITIES = [
    ("gadolinium", "enhancement", 5.0, 1.0),
    ("dce", "Ktrans", 0.002, 0.0008),
    ("uspio", "dR2star", 8.0, 1.5),
    ("pet", "SUVR", 1.0, 0.08),
]
TARGET_S = 60.0


def synthetic_group_table(
    n_participants=200,
    *,
    modalities=MODALITIES,
    lateral_rois=None,
    midline_rois=MIDLINE,
    effects=(),
    seed=0,
    pet_first_session_only=True,
    person_sd=0.6,
):
    """A gathered group table with planted effects, and the participants' covariates.

    ``effects``: dicts ``{modality, roi, size, who: patients|MA|..., phase: ictal|interictal|
    any, side: ipsi|both}`` adding ``size`` (metric units) to ``mean``/``median``. Controls
    are ~40 %, the rest MO/MA/HM; patients have ``ses-01`` interictal and ``ses-02`` ictal
    (side left/right, ``hours_since_onset``, ``treatment``), controls two sessions without a
    phase. PET is in ``ses-01`` only. Values are ROI baseline + a participant effect shared
    by all ROIs and sessions (SD ``person_sd`` x the modality SD; it makes ROIs correlated,
    and a chance group imbalance of it a real global difference in the sample) + noise
    (0.8 x SD). Returns ``(table, participants, sessions)``.
    """
    rng = np.random.default_rng(seed)
    lateral_rois = list(LOBES + BANDS if lateral_rois is None else lateral_rois)
    groups = np.array(["HC", "MO", "MA", "HM"])
    n_hc = round(0.4 * n_participants)
    grp = groups[np.r_[np.zeros(n_hc, int), rng.integers(1, 4, n_participants - n_hc)]]
    grp[-3:] = ["MO", "MA", "HM"][: min(3, n_participants)]
    parts = pd.DataFrame(
        {
            "participant_id": [f"sub-{i:03d}" for i in range(1, n_participants + 1)],
            "group": grp,
            "age": rng.integers(20, 60, n_participants).astype(float),
            "sex": rng.choice(["F", "M"], n_participants, p=[0.7, 0.3]),
            "attacks_per_month": np.where(grp == "HC", 0, rng.integers(1, 15, n_participants)),
            "body_weight": np.round(rng.uniform(55, 95, n_participants), 1),
            "tspo_genotype": rng.choice(["HAB", "MAB", "LAB"], n_participants, p=[0.5, 0.4, 0.1]),
        }
    )
    sess_rows = []
    for pid, g in zip(parts["participant_id"], parts["group"]):
        side = str(rng.choice(["left", "right"]))
        for ses, phase in (("ses-01", "interictal"), ("ses-02", "ictal")):
            patient = g != "HC"
            sess_rows.append(
                {
                    "participant_id": pid,
                    "session_id": ses,
                    "phase": phase if patient else np.nan,
                    "headache_side": side if patient else "none",
                    "hours_since_onset": float(np.round(rng.uniform(1, 24), 1))
                    if patient and phase == "ictal"
                    else np.nan,
                    "treatment": str(rng.choice(["none", "sumatriptan"]))
                    if patient and phase == "ictal"
                    else np.nan,
                }
            )
    sessions = pd.DataFrame(sess_rows)
    info = sessions.merge(parts, on="participant_id")
    frames = []
    for mod, metric, base, sd in modalities:
        roi_base = {r: base * rng.uniform(0.7, 1.3) for r in lateral_rois + list(midline_rois)}
        person = rng.normal(0, sd * person_sd, n_participants)
        pidx = {p: i for i, p in enumerate(parts["participant_id"])}
        for row in info.itertuples(index=False):
            if mod == "pet" and pet_first_session_only and row.session_id != "ses-01":
                continue
            hemi_vals = {}
            for roi in lateral_rois:
                for h in ("left", "right"):
                    hemi_vals[(roi, h)] = (
                        roi_base[roi] + person[pidx[row.participant_id]] + rng.normal(0, sd * 0.8)
                    )
            for roi in midline_rois:
                hemi_vals[(roi, "bilateral")] = (
                    roi_base[roi] + person[pidx[row.participant_id]] + rng.normal(0, sd * 0.8)
                )
            lateral = row.headache_side in ("left", "right")
            for eff in effects:
                if eff["modality"] != mod or not _who(eff.get("who", "patients"), row.group):
                    continue
                if eff.get("phase", "any") != "any" and row.phase != eff["phase"]:
                    continue
                for roi, h in hemi_vals:
                    if roi != eff["roi"]:
                        continue
                    ipsi_only = eff.get("side", "both") == "ipsi"
                    if ipsi_only and (not lateral or h != row.headache_side):
                        continue
                    hemi_vals[(roi, h)] += eff["size"]
            recs = [(roi, h, v) for (roi, h), v in hemi_vals.items()]
            if lateral:
                other = "right" if row.headache_side == "left" else "left"
                for roi in lateral_rois:
                    a, b = hemi_vals[(roi, row.headache_side)], hemi_vals[(roi, other)]
                    recs += [
                        (roi, "ipsi", a),
                        (roi, "contra", b),
                        (roi, "AI", (a - b) / ((a + b) / 2)),
                    ]
            frames.append(
                pd.DataFrame(
                    {
                        "participant_id": row.participant_id,
                        "session_id": row.session_id,
                        "modality": mod,
                        "metric": metric,
                        "roi": [r[0] for r in recs],
                        "hemisphere": [r[1] for r in recs],
                        "n_voxels": 100,
                        "mean": [r[2] for r in recs],
                        "median": [r[2] for r in recs],
                        "sd": sd,
                    }
                )
            )
    table = pd.concat(frames, ignore_index=True)
    table = table.merge(sessions, on=["participant_id", "session_id"], how="left")
    table = table.merge(parts, on="participant_id", how="left")
    return table, parts, sessions


def _who(who, group):
    if who == "patients":
        return group != "HC"
    return group in (who if isinstance(who, (list, tuple)) else [who])


def naive_welch(table, contrast_rows, value="mean"):
    """Baseline: Welch t + Hedges g + power per unit via pandas selection, no caching."""
    from scipy import stats
    from statsmodels.stats.power import TTestIndPower

    out = []
    for mod, met, roi, hemi in contrast_rows:
        sel = table[
            (table["modality"] == mod)
            & (table["metric"] == met)
            & (table["roi"] == roi)
            & (table["hemisphere"] == hemi)
            & ((table["phase"] == "interictal") | table["phase"].isna())
        ]
        per = sel.groupby(["participant_id", "group"])[value].mean().reset_index()
        a = per.loc[per["group"] != "HC", value].to_numpy()
        b = per.loc[per["group"] == "HC", value].to_numpy()
        t = stats.ttest_ind(a, b, equal_var=False)
        ci = t.confidence_interval()
        sp = np.sqrt(
            ((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / (len(a) + len(b) - 2)
        )
        g = (a.mean() - b.mean()) / sp * (1 - 3 / (4 * (len(a) + len(b)) - 9))
        pw = TTestIndPower()
        power = pw.power(abs(g), len(a), 0.05, ratio=len(b) / len(a))
        n80 = pw.solve_power(abs(g), None, 0.05, 0.8, ratio=1.0)
        mde = pw.solve_power(None, len(a), 0.05, 0.8, ratio=len(b) / len(a))
        out.append((t.pvalue, ci.low, g, power, n80, mde))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--participants", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--baseline-sample",
        type=int,
        default=40,
        help="units timed for the naive baseline (extrapolated)",
    )
    args = ap.parse_args(argv)
    from pipeline.config import default_config
    from pipeline.group.models import group_statistics

    cfg = default_config().group
    t0 = time.perf_counter()
    table, _, _ = synthetic_group_table(
        args.participants,
        seed=args.seed,
        effects=[
            {"modality": "pet", "roi": "occipital", "size": 0.1, "who": "MA"},
            {
                "modality": "dce",
                "roi": "occipital",
                "size": 0.001,
                "phase": "ictal",
                "side": "ipsi",
            },
        ],
    )
    t_build = time.perf_counter() - t0
    print(
        f"synthetic table: {len(table):,} rows, {args.participants} participants x "
        f"{table['modality'].nunique()} modalities ({t_build:.1f} s to build)"
    )
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    t0 = time.perf_counter()
    res = group_statistics(table, **cfg.statistics_options())
    elapsed = time.perf_counter() - t0
    n_tests = int(res["p"].notna().sum())
    print(
        f"group statistics: {len(res):,} result rows ({n_tests:,} tests, "
        f"{res['contrast'].nunique()} contrasts) in {elapsed:.1f} s on {cores} core(s)"
    )
    print(
        f"target {TARGET_S:.0f} s: ratio time/target = {elapsed / TARGET_S:.2f} "
        f"({'met' if elapsed < TARGET_S else 'MISSED'})"
    )
    units = res.loc[
        (res["contrast"] == "patientsVsHC") & (res["test"] == "welch"),
        ["modality", "metric", "roi", "hemisphere"],
    ].drop_duplicates()
    sample = list(units.itertuples(index=False, name=None))[: args.baseline_sample]
    if sample:
        t0 = time.perf_counter()
        naive_welch(table, sample)
        per_unit = (time.perf_counter() - t0) / len(sample)
        per_unit_ours = elapsed / max(n_tests, 1)
        print(
            f"naive baseline (pandas selection + scipy + uncached solve_power per unit): "
            f"{1000 * per_unit:.1f} ms per Welch unit vs {1000 * per_unit_ours:.2f} ms per "
            f"test here; extrapolated to {n_tests:,} tests: {per_unit * n_tests:.0f} s "
            f"(speed-up {per_unit * n_tests / elapsed:.1f}x)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
