"""The demo's group-level truth (pipeline.demo.evaluate): truth regional tables built over
the pipeline's own ROIs, for every kind of table with a truth, from the shared 2-participant
demo run. (The full group acceptance needs more participants: see the README.)"""

import json

import numpy as np
import pandas as pd
import pytest

from pipeline.demo.evaluate import PLANTED_TESTS, evaluate_group, truth_group_table


@pytest.fixture(scope="module")
def truth(demo_run):
    assert demo_run["group"].returncode == 0, demo_run["group"].stderr[-2000:]
    return truth_group_table(demo_run["demo"], demo_run["out"])


def _gt(demo_run):
    return json.loads((demo_run["demo"] / "groundtruth" / "groundtruth.json").read_text())


def _row(t, pid, ses, modality, atlas, roi, hemi):
    r = t[
        (t.participant_id == pid)
        & (t.session_id == ses)
        & (t.modality == modality)
        & (t.atlas == atlas)
        & (t.roi == roi)
        & (t.hemisphere == hemi)
    ]
    assert len(r) == 1, (pid, ses, modality, atlas, roi, hemi)
    return float(r["mean"].iloc[0])


def test_truth_tables_cover_every_modality_with_a_truth(demo_run, truth):
    measured = pd.read_csv(demo_run["out"] / "group" / "desc-all_regions.tsv", sep="\t")
    kinds = set(zip(truth.modality, truth.atlas))
    assert kinds == {
        ("gadolinium", "inflamapLobes"),
        ("dce", "inflamapLobes"),
        ("uspio", "inflamapLobes"),
        ("uspio", "inflamapTerritories"),
        ("pet", "inflamapLobes"),
        ("pet", "inflamapTSPO"),
        ("spect", "inflamapLobes"),
    }
    # row for row the measured tables (same ROIs, sessions, covariates), not the anat one
    m = measured[measured.modality != "anat"]
    assert len(truth) == len(m)
    assert list(truth.columns) == list(measured.columns)
    # an ROI the pipeline left empty is empty in the truth too
    keys = ["source_table", "roi", "hemisphere"]
    both = m.merge(truth, on=keys, suffixes=("", "_t"))
    assert not (both["mean"].isna() & both["mean_t"].notna()).any()


def test_truth_holds_the_planted_effects_and_zero_elsewhere(demo_run, truth):
    for pid, p in _gt(demo_run)["participants"].items():
        eff = truth[
            (truth.participant_id == pid)
            & truth.modality.isin(["gadolinium", "dce", "uspio"])
            & truth.hemisphere.isin(["left", "right", "bilateral"])
        ]
        if p["group"] == "HC":  # no effect planted in controls: exactly 0 everywhere
            assert (eff["mean"].dropna() == 0).all()
            continue
        side = p["headache_side"]
        other = "right" if side == "left" else "left"
        # ictal session: the planted side carries the effect, the other side (almost) not
        gad = _row(
            truth, pid, "ses-02", "gadolinium", "inflamapLobes", "meningeal_occipital", "ipsi"
        )
        assert gad > 5.0 and gad == _row(
            truth, pid, "ses-02", "gadolinium", "inflamapLobes", "meningeal_occipital", side
        )
        assert (
            abs(
                _row(
                    truth,
                    pid,
                    "ses-02",
                    "gadolinium",
                    "inflamapLobes",
                    "meningeal_occipital",
                    other,
                )
            )
            < 1.0
        )
        assert _row(truth, pid, "ses-02", "dce", "inflamapLobes", "occipital", side) > 1e-3
        aca = _row(truth, pid, "ses-02", "uspio", "inflamapTerritories", "aca", side)
        assert 2.0 < aca <= 3.0  # +3 1/s in GM and WM, diluted by the ROI's CSF
        assert abs(_row(truth, pid, "ses-02", "uspio", "inflamapTerritories", "aca", other)) < 0.3
        # interictal session: nothing planted
        assert (eff[eff.session_id == "ses-01"]["mean"].dropna() == 0).all()
        # the measured ictal - interictal change of the ACA is near its truth
        m = pd.read_csv(demo_run["out"] / "group" / "desc-all_regions.tsv", sep="\t")
        m = m[
            (m.participant_id == pid)
            & (m.modality == "uspio")
            & (m.roi == "aca")
            & (m.atlas == "inflamapTerritories")
            & (m.hemisphere == side)
        ]
        change = float(
            m[m.session_id == "ses-02"]["mean"].iloc[0]
            - m[m.session_id == "ses-01"]["mean"].iloc[0]
        )
        assert change == pytest.approx(aca, rel=0.15)


def test_pet_truth_is_a_whole_brain_suvr(truth):
    pet = truth[
        (truth.modality == "pet")
        & (truth.atlas == "inflamapLobes")
        & truth.hemisphere.isin(["left", "right"])
    ]
    brain = pet[~pet.roi.str.contains("meningeal|calvarial|sinus")]
    assert brain["mean"].between(0.3, 2.0).all()
    assert np.isfinite(brain["mean"]).all()


def test_evaluate_group_reports_every_planted_test(demo_run):
    """With one patient no paired test has its 3 pairs: every planted test is reported,
    none passes; the summary counts are consistent."""
    planted, summary, joined = evaluate_group(demo_run["demo"], demo_run["out"])
    assert len(planted) == len(PLANTED_TESTS) == summary["planted_total"]
    assert planted["found"].all()
    assert summary["planted_pass"] == 0
    assert summary["null_significant"] <= summary["null_tests"]
    assert {"true_estimate", "null_roi"} <= set(joined.columns)
