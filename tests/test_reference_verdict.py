"""The reference demo's verdicts (pipeline.demo.truth): which lines are judged, how the
pre-declared family of planted-effect tests is corrected, and when each line fails."""

import numpy as np
import pandas as pd
import pytest

from pipeline.demo.truth import (
    CONFIRMATORY,
    JOIN,
    PRIMARY_TESTS,
    group_verdict,
    judge_confirmatory,
    true_estimates,
    verdict,
)


def planted_table(p_values, right_sign=True):
    rows = [dict(zip(["effect", *JOIN], t)) for t in PRIMARY_TESTS]
    t = pd.DataFrame(rows)
    return t.assign(
        p=p_values,
        sig=False,
        right_sign=right_sign,
        ci_covers_truth=False,
    )


def test_confirmatory_family_is_the_primary_tests_without_pet_bands():
    assert len(PRIMARY_TESTS) == 13 and len(CONFIRMATORY) == 9
    dropped = [t for t in PRIMARY_TESTS if t not in CONFIRMATORY]
    assert {t[5] for t in dropped} == {"meningeal_occipital", "calvarial_occipital"}
    assert {t[2] for t in dropped} == {"pet"}


def test_benjamini_hochberg_over_the_confirmatory_tests_only():
    # 9 confirmatory p values; the largest (0.045) passes BH at rank 9 (0.045 <= 9/9 * 0.05)
    # only because the 4 PET band tests (p = 0.9) are not in the family
    p = np.full(len(PRIMARY_TESTS), 0.9)
    conf_idx = [i for i, t in enumerate(PRIMARY_TESTS) if t in CONFIRMATORY]
    p[conf_idx] = [0.001, 0.002, 0.003, 0.004, 0.005, 0.006, 0.007, 0.008, 0.045]
    out = judge_confirmatory(planted_table(p), 0.05)
    assert out["confirmatory"].sum() == 9
    assert out.loc[conf_idx, "pass"].all()
    assert not out.loc[~out["confirmatory"], "pass"].any()
    assert np.isclose(out.loc[conf_idx[-1], "p_confirmatory"], 0.045)
    # BH's step-up: p_(k) <= k/m alpha; 0.045 at rank 9 of 13 would need <= 0.0346
    p13 = np.sort(p)
    assert not (p13[8] <= 9 / 13 * 0.05)


def test_a_wrong_sign_or_a_missed_effect_fails_the_group_check():
    p = np.full(len(PRIMARY_TESTS), 0.001)
    wrong = planted_table(p, right_sign=[i != 0 for i in range(len(PRIMARY_TESTS))])
    counts = {"alpha": 0.05, "tests": 100, "null_tests": 80, "null_significant": 2}
    lines = group_verdict(judge_confirmatory(wrong, 0.05), counts)
    judged = {c["criterion"]: c for c in lines if c["result"] != "REPORT"}
    assert judged["planted_effects_found"]["result"] == "FAIL"
    assert judged["planted_effects_found"]["shown"] == "8/9"
    assert judged["false_positives"]["result"] == "PASS"  # 2 of 80 = 2.5 % <= 5 %
    p[0] = 0.2  # missed (alone above every BH bound)
    lines = group_verdict(judge_confirmatory(planted_table(p), 0.05), counts)
    assert lines[0]["result"] == "FAIL" and lines[0]["shown"] == "8/9"
    counts["null_significant"] = 5  # 6.25 % of the null tests
    lines = group_verdict(judge_confirmatory(planted_table(np.full(13, 0.001)), 0.05), counts)
    assert [c["result"] for c in lines[:2]] == ["PASS", "FAIL"]


def _joined(bias_by_roi):
    rows = []
    for roi, b in bias_by_roi.items():
        for pid in ("sub-01", "sub-02"):
            rows.append(
                {
                    "participant_id": pid,
                    "session_id": "ses-01",
                    "modality": "uspio",
                    "metric": "dR2star",
                    "atlas": "HO",
                    "roi": roi,
                    "hemisphere": "left",
                    "family": "parenchyma",
                    "volume_ml": 50.0,
                    "measured": 1 + b / 100,
                    "true": 1.0,
                    "bias_percent": b,
                }
            )
    return pd.DataFrame(rows)


def test_participant_verdict_judges_lobes_and_reports_the_worst_roi():
    masks = pd.DataFrame({"mask_dice": [0.97, 0.96]})
    detection = pd.DataFrame({"found": [True, True, True]})
    recovery = pd.DataFrame(
        {"modality": ["gadolinium"], "family": ["meningeal"], "change_bias_percent": [-70.0]}
    )
    lines = verdict(masks, _joined({"a": -2, "b": -4, "c": -6, "d": -22}), recovery, detection)
    by = {c["criterion"]: c for c in lines}
    assert by["mask_dice"]["result"] == "PASS"
    assert by["meningeal_leak_detected"]["result"] == "PASS"
    assert by["meningeal_leak_detected"]["shown"] == "3/3 patients"
    assert by["dR2star_lobes"]["result"] == "PASS" and np.isclose(by["dR2star_lobes"]["value"], -5)
    assert by["dR2star_worst_roi"]["result"] == "REPORT"
    assert by["dR2star_worst_roi"]["shown"].startswith("-22 % (d left")
    assert by["meningeal_change_size"]["result"] == "REPORT"
    assert by["Ktrans_means"]["result"] == "FAIL"  # no Ktrans rows: not judged as a pass
    # one patient whose leak is not found fails; so does a systematic ΔR2* bias of -12 %
    detection.loc[1, "found"] = False
    lines = verdict(masks, _joined({"a": -11, "b": -12, "c": -13}), recovery, detection)
    by = {c["criterion"]: c for c in lines}
    assert by["meningeal_leak_detected"]["result"] == "FAIL"
    assert by["dR2star_lobes"]["result"] == "FAIL"


def test_true_estimate_is_the_estimand_where_the_truths_own_test_cannot_run():
    """Exact truth can change by the same planted amount in every patient (ΔR2* +3/s in the
    ACA of three right-sided patients): the paired test on it has no variance and gives no
    estimate, but the true change is the mean difference, and the planted effect is judged
    against it (the quick-start demo, seed 0, failed 8/9 on this before)."""
    from pipeline.group.inference import paired_t_test

    a, b = np.array([4.88702, 4.76729, 4.76311]), np.array([1.88702, 1.76729, 1.76311])
    res = paired_t_test(a, b)
    assert np.isnan(res["estimate"]) and "no variance" in res["reason"]
    rows = pd.DataFrame(
        [
            {
                "test": "paired_t",
                "estimate": res["estimate"],
                "mean_a": a.mean(),
                "mean_b": b.mean(),
            },
            {"test": "welch", "estimate": 0.5, "mean_a": 2.0, "mean_b": 1.0},
            {"test": "spearman", "estimate": np.nan, "mean_a": np.nan, "mean_b": np.nan},
            {"test": "ols", "estimate": np.nan, "mean_a": 2.0, "mean_b": 1.0},
        ]
    )
    est = true_estimates(rows)
    assert est[0] == pytest.approx(3.0, abs=1e-9)
    assert est[1] == 0.5  # a test that ran keeps its own estimate
    assert np.isnan(est[2]) and np.isnan(est[3])  # r and adjusted coefficients: no fallback
