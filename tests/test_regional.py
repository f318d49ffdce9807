"""Regional statistics and laterality on arrays with known answers."""

import numpy as np
import pandas as pd
import pytest

from pipeline.models.regional import (
    TABLE_COLUMNS,
    asymmetry_index,
    laterality_rows,
    regional_table,
    roi_statistics,
)

LUT = pd.DataFrame(
    {
        "index": [1, 2, 3],
        "name": ["occipital", "occipital", "brainstem"],
        "hemisphere": ["left", "right", "bilateral"],
    }
)


def _image():
    labels = np.zeros((10, 10, 10), int)
    labels[:5, :, :5] = 1  # left: 250 voxels
    labels[5:, :, :5] = 2  # right: 250 voxels
    labels[:, :2, 5:] = 3  # brainstem: 100 voxels
    values = np.where(labels == 1, 3.0, 0.0) + np.where(labels == 2, 1.0, 0.0)
    values[labels == 3] = np.arange(100)
    return values, labels


def test_roi_statistics_values():
    values, labels = _image()
    values[0, 0, 0] = np.nan  # excluded and not counted
    t = roi_statistics(values, labels, LUT).set_index("hemisphere")
    assert t.loc["left", "n_voxels"] == 249 and t.loc["left", "mean"] == 3.0
    assert t.loc["right", "n_voxels"] == 250 and t.loc["right", "sd"] == 0.0
    assert t.loc["bilateral", "median"] == pytest.approx(49.5)
    assert t.loc["bilateral", "sd"] == pytest.approx(np.std(np.arange(100), ddof=1))


def test_mask_and_empty_roi():
    values, labels = _image()
    t = roi_statistics(values, labels, LUT, mask=labels != 1)
    left = t[t.hemisphere == "left"].iloc[0]
    assert left.n_voxels == 0 and np.isnan(left["mean"])


@pytest.mark.parametrize("side,ipsi,contra", [("left", 3.0, 1.0), ("right", 1.0, 3.0)])
def test_laterality_follows_headache_side(side, ipsi, contra):
    values, labels = _image()
    t = regional_table(
        values,
        labels,
        LUT,
        participant_id="sub-01",
        session_id="ses-02",
        modality="pet",
        metric="SUVR",
        headache_side=side,
    )
    assert list(t.columns) == TABLE_COLUMNS
    occ = t[t.roi == "occipital"].set_index("hemisphere")
    assert occ.loc["ipsi", "mean"] == ipsi and occ.loc["contra", "mean"] == contra
    assert occ.loc["AI", "mean"] == pytest.approx((ipsi - contra) / ((ipsi + contra) / 2))
    assert "brainstem" not in set(t[t.hemisphere.isin(["ipsi", "contra", "AI"])].roi)


@pytest.mark.parametrize("side", ["bilateral", "none", None, np.nan])
def test_no_laterality_without_a_side(side):
    values, labels = _image()
    t = roi_statistics(values, labels, LUT)
    assert laterality_rows(t, side).empty


def test_errors_name_the_problem():
    values, labels = _image()
    with pytest.raises(ValueError, match="headache_side must be one of"):
        laterality_rows(roi_statistics(values, labels, LUT), "up")
    with pytest.raises(ValueError, match="resample the labels"):
        roi_statistics(values[:5], labels, LUT)
    with pytest.raises(ValueError, match="hemisphere values"):
        roi_statistics(values, labels, LUT.assign(hemisphere="middle"))


def test_asymmetry_index_zero_denominator():
    assert np.isnan(asymmetry_index(0.0, 0.0))
    assert asymmetry_index(1.1, 0.9) == pytest.approx(0.2)


def test_partial_volume_weights_take_cortex_out_of_a_band_mean():
    """A meningeal-band ROI of 4 voxels: two pure dura (value 10), two half cortex (the value
    mixes 5 and 10 -> 7.5). Weighted by 1 - (GM + WM) the mean leans to the dura (9.17
    instead of 8.75); an ROI inside the brain mask is unchanged."""
    from pipeline.models.regional import partial_volume_weights, roi_statistics

    values = np.array([10.0, 10.0, 7.5, 7.5, 3.0, 4.0])
    labels = np.array([2, 2, 2, 2, 1, 1])
    brain = np.array([0, 0, 0, 0, 1, 1])
    gm = np.array([0.0, 0.0, 0.5, 0.5, 0.7, 0.4])
    wm = np.array([0.0, 0.0, 0.0, 0.0, 0.3, 0.6])
    w = partial_volume_weights(brain, gm, wm)
    assert np.allclose(w, [1, 1, 0.5, 0.5, 1, 1])
    lut = pd.DataFrame(
        {"index": [1, 2], "name": ["parietal", "meningeal_parietal"], "hemisphere": ["left"] * 2}
    )
    plain = roi_statistics(values, labels, lut).set_index("roi")
    weighted = roi_statistics(values, labels, lut, weights=w).set_index("roi")
    assert plain.loc["meningeal_parietal", "mean"] == pytest.approx(8.75)
    assert weighted.loc["meningeal_parietal", "mean"] == pytest.approx(55 / 6)
    assert weighted.loc["parietal", "mean"] == plain.loc["parietal", "mean"] == 3.5
    assert weighted.loc["meningeal_parietal", "n_voxels"] == 4
    with pytest.raises(ValueError, match="weights must share"):
        roi_statistics(values, labels, lut, weights=w[:3])
