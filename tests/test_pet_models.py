"""PET models: units, decay, frame windows, SUV and SUVR against hand-worked numbers."""

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.models import pet

EXAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "bids-examples"
needs_examples = pytest.mark.skipif(
    not (EXAMPLES / "pet005").is_dir(),
    reason=f"PET-BIDS example sidecars not found at {EXAMPLES} (../shared/data/bids-examples)",
)


# --- units -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "unit, bq",
    [
        ("Bq", 1),
        ("kBq", 1e3),
        ("MBq", 1e6),
        ("GBq", 1e9),
        ("Ci", 3.7e10),
        ("mCi", 3.7e7),
        ("uCi", 3.7e4),
        ("µCi", 3.7e4),
        ("μCi", 3.7e4),
        ("nCi", 37),
        (" MBq ", 1e6),
        ("MBQ", 1e6),
    ],
)
def test_radioactivity_units(unit, bq):
    assert pet.radioactivity_scale(unit) == pytest.approx(bq, rel=1e-15)
    assert pet.to_bq(2.0, unit) == pytest.approx(2 * bq, rel=1e-15)


@pytest.mark.parametrize(
    "unit, bq_per_ml",
    [
        ("Bq/mL", 1),
        ("Bq/ml", 1),
        ("kBq/mL", 1e3),
        ("MBq/mL", 1e6),
        ("Bq/cc", 1),
        ("kBq/cc", 1e3),
        ("uCi/mL", 3.7e4),
        ("µCi/mL", 3.7e4),
        ("mCi/mL", 3.7e7),
        ("nCi/mL", 37),
        ("Bq/cm3", 1),
        ("kBq/L", 1),
    ],
)
def test_concentration_units(unit, bq_per_ml):
    assert pet.concentration_scale(unit) == pytest.approx(bq_per_ml, rel=1e-15)


@pytest.mark.parametrize(
    "unit, kg", [("kg", 1), ("g", 1e-3), ("lb", 0.45359237), ("lbs", 0.45359237)]
)
def test_weight_units(unit, kg):
    assert pet.to_kg(10.0, unit) == pytest.approx(10 * kg, rel=1e-15)


@pytest.mark.parametrize(
    "func, unit, accepted",
    [
        (pet.radioactivity_scale, "mg", "MBq"),
        (pet.radioactivity_scale, "counts", "mCi"),
        (pet.concentration_scale, "SUV", "Bq/mL"),
        (pet.concentration_scale, "Bq/kg", "cc"),
        (pet.concentration_scale, "kBq", "Bq/mL"),
        (pet.weight_scale, "stone", "lb"),
    ],
)
def test_unknown_units_name_the_unit_and_accepted_ones(func, unit, accepted):
    with pytest.raises(ValueError) as err:  # noqa: PT011
        func(unit)
    assert repr(unit) in str(err.value) and accepted in str(err.value)


# --- SUV, hand-worked ----------------------------------------------------------------------


def test_suv_hand_worked_example():
    # Dose 10 mCi = 10 * 3.7e7 Bq = 3.7e8 Bq = 370 MBq; weight 70 kg = 70 000 g;
    # concentration 5.3 kBq/mL = 5300 Bq/mL.
    # SUV = 5300 / (3.7e8 / 70 000) = 5300 * 70 000 / 3.7e8 = 3.71e8 / 3.7e8
    #     = 1.0027027027027027 (= 1 + 1/370)
    expected = 1.0027027027027027
    c = pet.to_bq_per_ml(5.3, "kBq/mL")
    for dose in (pet.to_bq(10, "mCi"), pet.to_bq(370, "MBq")):
        assert pet.suv(c, dose, pet.to_kg(70, "kg")) == pytest.approx(expected, abs=1e-6)
        assert pet.suv(c, dose, pet.to_kg(70, "kg")) == pytest.approx(1 + 1 / 370, rel=1e-12)
    # Same dose, weight 165 lb = 165 * 0.45359237 kg = 74.84274105 kg = 74 842.74105 g:
    # SUV = 5300 * 74 842.74105 / 3.7e8 = 396 666 527.565 / 370 000 000 = 1.0720716961216...
    for dose in (pet.to_bq(10, "mCi"), pet.to_bq(370, "MBq")):
        assert pet.suv(c, dose, pet.to_kg(165, "lb")) == pytest.approx(1.0720716961216, abs=1e-6)
    # the factor is weight[g] / dose[Bq]
    assert pet.suv_factor(3.7e8, 70) == pytest.approx(70_000 / 3.7e8, rel=1e-15)


def test_suv_is_vectorised_and_rejects_bad_dose_or_weight():
    c = np.full((2, 3, 4), 5300.0)
    np.testing.assert_allclose(pet.suv(c, 3.7e8, 70), 1 + 1 / 370, rtol=1e-12)
    with pytest.raises(ValueError, match="injected dose"):
        pet.suv(c, 0, 70)
    with pytest.raises(ValueError, match="body weight"):
        pet.suv(c, 3.7e8, -1)
    with pytest.raises(ValueError, match="body weight"):
        pet.suv(c, 3.7e8, float("nan"))


# --- decay --------------------------------------------------------------------------------


def test_decay_factor_and_dose_correction():
    # one half-life halves, two quarter, a negative interval goes back in time
    assert pet.decay_factor(6586.2, 6586.2) == pytest.approx(0.5, rel=1e-15)
    np.testing.assert_allclose(
        pet.decay_factor([0, 1220.04, 2440.08, -1220.04], 1220.04), [1, 0.5, 0.25, 2], rtol=1e-14
    )
    # F18 dose of 370 MBq at injection (t = -600 s, i.e. 10 min before TimeZero) brought to
    # the decay-correction reference at TimeZero (t = 0): 370e6 * 2^(-600/6586.2)
    # = 370e6 * exp(-0.0631449...) = 370e6 * 0.938807... = 347.3587 MBq
    dose = pet.decay_to(370e6, -600.0, 0.0, 6586.2)
    assert dose == pytest.approx(370e6 * 0.5 ** (600 / 6586.2), rel=1e-14)
    assert dose / 1e6 == pytest.approx(347.3587, abs=1e-3)
    # back again
    assert pet.decay_to(dose, 0.0, -600.0, 6586.2) == pytest.approx(370e6, rel=1e-14)
    with pytest.raises(ValueError, match="half-life"):
        pet.decay_factor(10, 0)
    with pytest.raises(ValueError, match="half-life"):
        pet.decay_to(1.0, 0, 10, "F18")


def test_frame_decay_factors_limits():
    t_half = 6586.2
    # a very short frame: factor -> 2^((t - ref)/T)
    f = pet.frame_decay_factors([0.0, 6586.2], [1e-6, 1e-6], t_half)
    np.testing.assert_allclose(f, [1, 2], rtol=1e-9)
    # it is the inverse of the mean decay over the frame (numerical integral)
    u = np.linspace(600, 900, 200001)
    y = 0.5 ** (u / t_half)
    mean_decay = np.sum((y[1:] + y[:-1]) / 2 * np.diff(u)) / 300  # trapezoids
    f = pet.frame_decay_factors([600.0], [300.0], t_half)
    assert f[0] == pytest.approx(1 / mean_decay, rel=1e-9)


@needs_examples
@pytest.mark.parametrize(
    "sidecar, t_half, reference",
    [
        # Siemens Biograph mMR (pet005): the factors follow C11 T½ = 1223 s, reference TimeZero
        ("pet005/sub-01/ses-baseline/pet/sub-01_ses-baseline_pet.json", 1223.0, 0.0),
        # Siemens HRRT (pet002): T½ = 1224 s, reference 28 s before TimeZero
        ("pet002/sub-01/ses-rescan/pet/sub-01_ses-rescan_pet.json", 1224.0, -28.0),
    ],
)
def test_frame_decay_factors_reproduce_vendor_factors(sidecar, t_half, reference):
    meta = json.loads((EXAMPLES / sidecar).read_text())
    f = pet.frame_decay_factors(
        meta["FrameTimesStart"], meta["FrameDuration"], t_half, reference_s=reference
    )
    # the sidecars round to 6 significant digits (pet005)
    np.testing.assert_allclose(f, meta["DecayCorrectionFactor"], rtol=2e-5)
    # with the C11 half-life of the table (1220.04 s) the 90-min factor differs by ~1 %
    f_table = pet.frame_decay_factors(
        meta["FrameTimesStart"], meta["FrameDuration"], 1220.04, reference_s=reference
    )
    assert 0.003 < f_table[-1] / meta["DecayCorrectionFactor"][-1] - 1 < 0.02


# --- frame windows and averages ------------------------------------------------------------


def test_frame_window_hand_worked():
    # frames (s): [0,600) [600,3300) [3300,3900) [3900,4500) [4500,5100) [5100,5700) [5700,6300)
    start = np.array([0, 600, 3300, 3900, 4500, 5100, 5700], float)
    dur = np.array([600, 2700, 600, 600, 600, 600, 600], float)
    # window 3600-5400 s: overlaps 0, 0, 300/600, 1, 1, 300/600, 0
    np.testing.assert_allclose(pet.frame_overlap(start, dur), [0, 0, 0.5, 1, 1, 0.5, 0])
    sel = pet.frame_window(start, dur)
    assert sel.tolist() == [False, False, True, True, True, True, False]
    sel = pet.frame_window(start, dur, min_overlap=0.6)
    assert sel.tolist() == [False, False, False, True, True, False, False]
    # injection 300 s after TimeZero shifts the window to 3900-5700 s on the frames' clock
    sel = pet.frame_window(start, dur, injection_s=300)
    assert sel.tolist() == [False, False, False, True, True, True, False]
    # a long frame containing the window but mostly outside it is not selected
    assert pet.frame_overlap([0.0], [98000.0])[0] == pytest.approx(1800 / 98000)


@needs_examples
def test_frame_window_on_real_timing():
    meta = json.loads(
        (EXAMPLES / "pet005/sub-01/ses-baseline/pet/sub-01_ses-baseline_pet.json").read_text()
    )
    start, dur = np.array(meta["FrameTimesStart"]), np.array(meta["FrameDuration"])
    sel = pet.frame_window(start, dur, (3600, 5400))
    # 300-s frames from 3660 to 5160 s: 3360-3660 is 20 % inside, 5160-5460 is 80 % inside
    assert start[sel].tolist() == [3660, 3960, 4260, 4560, 4860, 5160]


def test_frame_window_errors():
    with pytest.raises(ValueError, match=r"cover 0–600 s after injection"):
        pet.frame_window([0, 300], [300, 300])
    with pytest.raises(ValueError, match="2 frame starts but 3 frame durations"):
        pet.frame_window([0, 300], [300, 300, 300])
    with pytest.raises(ValueError, match="duration -300 s"):
        pet.frame_window([0, 300], [300, -300])
    with pytest.raises(ValueError, match="must increase"):
        pet.frame_window([0, 300, 300], [300, 300, 300])
    with pytest.raises(ValueError, match="must increase"):
        pet.frame_window([0, 600, 300], [300, 300, 300])
    with pytest.raises(ValueError, match="min_overlap"):
        pet.frame_window([0], [300], min_overlap=0)
    with pytest.raises(ValueError, match="end"):
        pet.frame_window([0], [300], window_s=(600, 300))


def test_weighted_average():
    rng = np.random.default_rng(0)
    frames = rng.uniform(1, 10, size=(3, 4, 5, 4))
    dur = np.array([60.0, 120.0, 300.0, 300.0])
    sel = np.array([False, True, True, False])
    got = pet.weighted_average(frames, dur, sel)
    expected = (frames[..., 1] * 120 + frames[..., 2] * 300) / 420
    np.testing.assert_allclose(got, expected, rtol=1e-14)
    assert got.shape == (3, 4, 5)
    # a constant activity averages to itself whatever the weights
    np.testing.assert_allclose(
        pet.weighted_average(np.full((2, 4), 7.0), dur, [0.5, 1, 0, 1]), 7.0
    )
    with pytest.raises(ValueError, match="no frame selected"):
        pet.weighted_average(frames, dur, np.zeros(4, bool))
    with pytest.raises(ValueError, match="expected 4"):
        pet.weighted_average(frames[..., :3], dur, sel)
    with pytest.raises(ValueError, match="same length"):
        pet.weighted_average(frames, dur, sel[:3])


def test_suv_window_pipeline_on_synthetic_frames():
    # decay-corrected frames of a constant 5300 Bq/mL: SUV over 60-90 min is 1 + 1/370
    start = np.arange(0, 6000, 300.0)
    dur = np.full(start.size, 300.0)
    frames = np.full((2, 2, 2, start.size), 5300.0)
    frames[..., :5] = 99.0  # early frames outside the window do not matter
    mean = pet.weighted_average(frames, dur, pet.frame_window(start, dur))
    np.testing.assert_allclose(pet.suv(mean, pet.to_bq(10, "mCi"), 70), 1 + 1 / 370, rtol=1e-12)


# --- SUVR ---------------------------------------------------------------------------------


def test_suvr():
    m = np.arange(1.0, 9.0).reshape(2, 2, 2)  # 1..8
    mask = np.zeros(m.shape, bool)
    mask[0, 0, :] = True  # values 1 and 2: mean 1.5
    out, ref = pet.suvr(m, mask, return_reference=True)
    assert ref == pytest.approx(1.5)
    np.testing.assert_allclose(out, m / 1.5)
    # non-finite values inside the reference are ignored
    m2 = m.copy()
    m2[0, 0, 0] = np.nan
    assert pet.suvr(m2, mask, return_reference=True)[1] == pytest.approx(2.0)


def test_suvr_errors():
    m = np.ones((2, 2))
    with pytest.raises(ValueError, match="empty"):
        pet.suvr(m, np.zeros((2, 2), bool))
    with pytest.raises(ValueError, match="<= 0"):
        pet.suvr(-m, np.ones((2, 2), bool))
    with pytest.raises(ValueError, match="<= 0"):
        pet.suvr(np.zeros((2, 2)), np.ones((2, 2), bool))
    with pytest.raises(ValueError, match="shape"):
        pet.suvr(m, np.ones((3, 2), bool))
    nan = np.full((2, 2), np.nan)
    with pytest.raises(ValueError, match="empty"):
        pet.suvr(nan, np.ones((2, 2), bool))
