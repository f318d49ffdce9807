"""Sidecar parsing: the real PET-BIDS and MEGRE example sidecars, and one-line errors."""

import copy
import csv
import json
import random
from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import EX_DATAERR, DataError
from pipeline.metadata import (
    HALF_LIVES_S,
    PET_REQUIRED,
    megre_metadata,
    pet_metadata,
    radionuclide_key,
    read_sidecar,
)

EXAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "bids-examples"
PET_SIDECARS = sorted(EXAMPLES.glob("pet00[1-6]/**/*_pet.json"))
needs_examples = pytest.mark.skipif(
    not PET_SIDECARS,
    reason=f"PET-BIDS example sidecars not found at {EXAMPLES} (../shared/data/bids-examples)",
)
# pet001, pet003 and pet004 write frame END times in FrameDuration (each "duration" equals
# the next FrameTimesStart; bids-standard/bids-examples#220): the frames would overlap.
END_TIME_DATASETS = {"pet001", "pet003", "pet004"}
# the independent table of the tests: Bq per unit as written in the examples
MBQ = 1e6


def _dataset(sidecar: Path) -> str:
    return sidecar.relative_to(EXAMPLES).parts[0]


def _participant_weight(sidecar: Path):
    """``weight`` of the participant in the dataset's participants.tsv (examples call the
    column ``weight``, not ``body_weight``), or None."""
    sub = next(p for p in sidecar.relative_to(EXAMPLES).parts if p.startswith("sub-"))
    with open(EXAMPLES / _dataset(sidecar) / "participants.tsv", newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            if row["participant_id"] == sub and row.get("weight") not in (None, "", "n/a"):
                return float(row["weight"])
    return None


def _repaired(meta):
    """The sidecar with FrameDuration turned from end times into durations."""
    meta = copy.deepcopy(meta)
    ends = np.asarray(meta["FrameDuration"], float)
    meta["FrameDuration"] = np.diff(np.append(meta["FrameTimesStart"], ends[-1])).tolist()
    return meta


def _ids(paths):
    return [str(p.relative_to(EXAMPLES)) for p in paths]


@needs_examples
def test_all_six_pet_datasets_are_present():
    assert {_dataset(p) for p in PET_SIDECARS} == {f"pet00{i}" for i in range(1, 7)}


@needs_examples
@pytest.mark.parametrize("sidecar", PET_SIDECARS, ids=_ids(PET_SIDECARS))
def test_real_pet_sidecars_parse(sidecar):
    meta = json.loads(sidecar.read_text())
    weight = _participant_weight(sidecar)
    body_weight = 70.0 if weight is None else weight  # pet003 has no weight column
    if _dataset(sidecar) in END_TIME_DATASETS:
        with pytest.raises(DataError) as err:
            pet_metadata(meta, sidecar, body_weight=body_weight)
        msg = str(err.value)
        assert str(sidecar) in msg and "FrameDuration looks like frame end times" in msg
        assert "\n" not in msg
        meta = _repaired(meta)
    m = pet_metadata(
        meta, sidecar, body_weight=body_weight, n_volumes=len(meta["FrameTimesStart"])
    )
    assert meta["InjectedRadioactivityUnits"] == "MBq"  # all six examples
    assert m.injected_dose_bq == pytest.approx(meta["InjectedRadioactivity"] * MBQ, rel=1e-12)
    assert meta["Units"] in ("Bq/mL", "Bq/ml")  # pet001 writes "Bq/ml"
    assert m.units == meta["Units"] and m.activity_scale_bq_per_ml == 1.0
    np.testing.assert_array_equal(m.frame_start_s, meta["FrameTimesStart"])
    np.testing.assert_array_equal(m.frame_duration_s, meta["FrameDuration"])
    np.testing.assert_array_equal(
        m.frame_start_s[1:], m.frame_start_s[:-1] + m.frame_duration_s[:-1]
    )
    assert m.tracer_name == meta["TracerName"]
    assert m.radionuclide == meta["TracerRadionuclide"]  # "C11" or "F18" as written
    assert m.half_life_s == HALF_LIVES_S[meta["TracerRadionuclide"]]
    assert m.decay_corrected is meta["ImageDecayCorrected"] is True
    assert m.decay_correction_time_s == meta["ImageDecayCorrectionTime"] == 0
    assert m.injection_start_s == meta["InjectionStart"] == 0
    # injection at the decay-correction reference: the SUV dose is the injected dose
    assert m.suv_dose_bq == pytest.approx(m.injected_dose_bq, rel=1e-14)
    assert m.body_weight_kg == body_weight
    assert m.body_weight_source == "participants/sessions table"
    assert m.time_zero == meta["TimeZero"]
    assert m.frame_start_s.flags.writeable is False


@needs_examples
def test_real_pet_sidecar_values_spot_checks():
    m = pet_metadata(
        read_sidecar(EXAMPLES / "pet006/sub-01/pet/sub-01_pet.json"), "pet006.json", body_weight=4
    )
    assert (m.radionuclide, m.half_life_s, m.n_frames) == ("F18", 6586.2, 1)
    assert m.injected_dose_bq == 75.85e6 and m.frame_duration_s.tolist() == [98000]
    sidecar = EXAMPLES / "pet001/sub-01/ses-01/pet/sub-01_ses-01_trc-CIMBI36_pet.json"
    m = pet_metadata(_repaired(read_sidecar(sidecar)), sidecar, body_weight=21)
    assert m.frame_duration_s[:7].tolist() == [10, 10, 10, 10, 10, 10, 20]
    assert m.frame_duration_s[-1] == 300 and m.frame_mid_s[-1] == 7050
    assert m.injected_dose_bq == 573e6 and m.units == "Bq/ml"


def _parseable():
    return [p for p in PET_SIDECARS if _dataset(p) not in END_TIME_DATASETS] + [
        p for p in PET_SIDECARS if _dataset(p) in END_TIME_DATASETS
    ][:1]


@needs_examples
@pytest.mark.parametrize("field", list(PET_REQUIRED))
@pytest.mark.parametrize("sidecar", _parseable(), ids=_ids(_parseable()))
def test_missing_required_field_names_field_and_file(sidecar, field):
    meta = json.loads(sidecar.read_text())
    if _dataset(sidecar) in END_TIME_DATASETS:
        meta = _repaired(meta)
    pet_metadata(meta, sidecar, body_weight=70)  # complete: parses
    for broken in (lambda m: m.pop(field), lambda m: m.__setitem__(field, "n/a")):
        bad = copy.deepcopy(meta)
        broken(bad)
        with pytest.raises(DataError) as err:
            pet_metadata(bad, sidecar, body_weight=70)
        msg = str(err.value)
        assert msg.startswith(f"{sidecar}: ") and field in msg and "\n" not in msg
        assert err.value.code == EX_DATAERR == 65


# --- synthetic variations of a real sidecar ------------------------------------------------

BASE = {  # pet006's required fields (F18 phantom), with a dynamic frame timing
    "Units": "Bq/mL",
    "TracerName": "FDG",
    "TracerRadionuclide": "F18",
    "InjectedRadioactivity": 75.85,
    "InjectedRadioactivityUnits": "MBq",
    "InjectionStart": 0,
    "TimeZero": "12:44:31",
    "FrameTimesStart": [0, 600, 1200, 3600],
    "FrameDuration": [600, 600, 2400, 1800],
    "ImageDecayCorrected": True,
    "ImageDecayCorrectionTime": 0,
}


def _meta(**changes):
    meta = copy.deepcopy(BASE)
    for k, v in changes.items():
        if v is None:
            meta.pop(k)
        else:
            meta[k] = v
    return meta


def _error(meta, path="sub-01_pet.json", **kw):
    with pytest.raises(DataError) as err:
        pet_metadata(meta, path, **kw)
    msg = str(err.value)
    assert msg.startswith(f"{path}: ") and "\n" not in msg
    return msg


def test_mci_and_other_units_are_converted():
    m = pet_metadata(
        _meta(InjectedRadioactivity=2.05, InjectedRadioactivityUnits="mCi", Units="kBq/cc"),
        "x.json",
        body_weight=154,
        body_weight_unit="lb",
    )
    assert m.injected_dose_bq == pytest.approx(2.05 * 3.7e7, rel=1e-14)  # 75.85 MBq
    assert m.activity_scale_bq_per_ml == 1000.0
    assert m.body_weight_kg == pytest.approx(154 * 0.45359237, rel=1e-14)
    m = pet_metadata(
        _meta(InjectedRadioactivity=2050, InjectedRadioactivityUnits="µCi", Units="uCi/mL"),
        "x.json",
        body_weight=70,
    )
    assert m.injected_dose_bq == pytest.approx(75.85e6, rel=1e-14)
    assert m.activity_scale_bq_per_ml == 3.7e4


@pytest.mark.parametrize(
    "field, value", [("Units", "counts"), ("Units", "SUV"), ("InjectedRadioactivityUnits", "mg")]
)
def test_unknown_units_are_errors(field, value):
    msg = _error(_meta(**{field: value}), body_weight=70)
    assert field in msg and repr(value) in msg and "accepted" in msg


def test_implausible_dose_suggests_the_units():
    msg = _error(_meta(InjectedRadioactivityUnits="Bq"), body_weight=70)
    assert "InjectedRadioactivityUnits" in msg
    msg = _error(_meta(InjectedRadioactivity="lots"), body_weight=70)
    assert "InjectedRadioactivity" in msg and "not a number" in msg


def test_dose_is_decay_corrected_to_the_reference_time():
    # injection 10 min before TimeZero, images decay-corrected to TimeZero: the SUV dose is
    # 75.85 MBq * 2^(-600 / 6586.2) = 75.85 * 0.938807 MBq = 71.2085 MBq
    m = pet_metadata(_meta(InjectionStart=-600), "x.json", body_weight=70)
    assert m.injected_dose_bq == 75.85e6
    assert m.suv_dose_bq == pytest.approx(75.85e6 * 0.5 ** (600 / 6586.2), rel=1e-14)
    assert m.suv_dose_bq / 1e6 == pytest.approx(71.2085, abs=1e-3)
    # reference one half-life after injection: half the dose
    m = pet_metadata(_meta(ImageDecayCorrectionTime=6586.2), "x.json", body_weight=70)
    assert m.suv_dose_bq == pytest.approx(75.85e6 / 2, rel=1e-14)
    assert m.dose_bq_at(2 * 6586.2) == pytest.approx(75.85e6 / 4, rel=1e-14)
    # images not decay-corrected: the dose at injection (frames corrected to it first)
    m = pet_metadata(
        _meta(ImageDecayCorrected=False, ImageDecayCorrectionTime=6586.2), "x.json", body_weight=70
    )
    assert m.decay_corrected is False and m.suv_dose_bq == 75.85e6


def test_decay_corrected_flag_spelling():
    assert (
        pet_metadata(_meta(ImageDecayCorrected="false"), "x", body_weight=1).decay_corrected
        is False
    )
    msg = _error(_meta(ImageDecayCorrected="yes"), body_weight=70)
    assert "ImageDecayCorrected" in msg and "true or false" in msg


@pytest.mark.parametrize(
    "spelling, key",
    [
        ("C11", "C11"),
        ("11C", "C11"),
        ("[11C]", "C11"),
        ("C-11", "C11"),
        ("^18F", "F18"),
        ("18F", "F18"),
        ("F-18", "F18"),
        ("O15", "O15"),
        ("15O", "O15"),
        ("99mTc", "Tc99m"),
        ("Tc-99m", "Tc99m"),
        ("tc99m", "Tc99m"),
        ("89Zr", "Zr89"),
    ],
)
def test_radionuclide_spellings(spelling, key):
    assert radionuclide_key(spelling) == key
    m = pet_metadata(_meta(TracerRadionuclide=spelling), "x.json", body_weight=70)
    assert m.radionuclide == key and m.half_life_s == HALF_LIVES_S[key]


def test_half_lives():
    assert HALF_LIVES_S["C11"] == 1220.04 and HALF_LIVES_S["F18"] == 6586.2
    assert HALF_LIVES_S["Tc99m"] == 21624.12 and HALF_LIVES_S["O15"] == 122.24
    msg = _error(_meta(TracerRadionuclide="Xx999"), body_weight=70)
    assert "TracerRadionuclide" in msg and "'Xx999'" in msg and "F18" in msg
    m = pet_metadata(_meta(TracerRadionuclide="Xx999"), "x", body_weight=70, half_life_s=100)
    assert m.half_life_s == 100


def test_frame_timing_errors():
    msg = _error(_meta(FrameDuration=[600, 600, 2400]), body_weight=70)
    assert "FrameTimesStart has 4 entries but FrameDuration 3" in msg
    msg = _error(_meta(FrameDuration=[600, -600, 2400, 1800]), body_weight=70)
    assert "FrameDuration[1]" in msg and "positive" in msg
    msg = _error(_meta(FrameTimesStart=[0, 600, 600, 3600]), body_weight=70)
    assert "FrameTimesStart must increase" in msg
    msg = _error(_meta(FrameDuration=[600, 900, 2400, 1800]), body_weight=70)
    assert "frame 1" in msg and "overlaps frame 2" in msg
    msg = _error(_meta(FrameTimesStart=[0, "x", 1200, 3600]), body_weight=70)
    assert "FrameTimesStart must be a list of numbers" in msg
    msg = _error(BASE, body_weight=70, n_volumes=5)
    assert "describe 4 frames but the image has 5" in msg
    # a single frame may be a scalar; small rounding overlaps are accepted
    m = pet_metadata(_meta(FrameTimesStart=0, FrameDuration=1800), "x", body_weight=70)
    assert m.n_frames == 1
    m = pet_metadata(_meta(FrameDuration=[600.4, 600, 2400, 1800]), "x", body_weight=70)
    assert m.n_frames == 4


def test_end_times_in_frame_duration_are_detected():
    msg = _error(
        _meta(FrameTimesStart=[0, 10, 30, 60], FrameDuration=[10, 30, 60, 120]), body_weight=70
    )
    assert "FrameDuration looks like frame end times" in msg and "[10, 20, 30, 60]" in msg
    assert "pet.repair_frame_end_times" in msg


def test_end_times_repaired_on_request():
    meta = _meta(FrameTimesStart=[0, 10, 30, 60], FrameDuration=[10, 30, 60, 120])
    m = pet_metadata(meta, "x", body_weight=70, repair_end_times=True)
    np.testing.assert_array_equal(m.frame_duration_s, [10, 20, 30, 60])
    assert m.frame_duration_repaired
    # real durations are never touched, and a real overlap is still an error
    m = pet_metadata(_meta(), "x", body_weight=70, repair_end_times=True)
    assert not m.frame_duration_repaired
    msg = _error(
        _meta(FrameTimesStart=[0, 10, 30, 60], FrameDuration=[10, 25, 60, 120]),
        body_weight=70,
        repair_end_times=True,
    )
    assert "overlaps frame" in msg


@needs_examples
@pytest.mark.parametrize("sidecar", PET_SIDECARS, ids=_ids(PET_SIDECARS))
def test_real_pet_sidecars_parse_with_repair(sidecar):
    """Every real example parses as it is when end times are repaired on request."""
    meta = json.loads(sidecar.read_text())
    weight = _participant_weight(sidecar)
    m = pet_metadata(
        meta,
        sidecar,
        body_weight=70.0 if weight is None else weight,
        repair_end_times=True,
        n_volumes=len(meta["FrameTimesStart"]),
    )
    assert m.frame_duration_repaired == (_dataset(sidecar) in END_TIME_DATASETS)
    np.testing.assert_allclose(
        m.frame_duration_s,
        _repaired(meta)["FrameDuration"] if m.frame_duration_repaired else meta["FrameDuration"],
    )


def test_body_weight_sources():
    # the participants/sessions value overrides the sidecar's BodyWeight
    m = pet_metadata(_meta(BodyWeight=80), "x", body_weight=72.5)
    assert (m.body_weight_kg, m.body_weight_source) == (72.5, "participants/sessions table")
    for missing in (None, "n/a", float("nan")):
        m = pet_metadata(_meta(BodyWeight=80), "x", body_weight=missing)
        assert (m.body_weight_kg, m.body_weight_source) == (80, "sidecar BodyWeight")
    m = pet_metadata(_meta(BodyWeight=176.4, BodyWeightUnits="lb"), "x")
    assert m.body_weight_kg == pytest.approx(176.4 * 0.45359237)
    m = pet_metadata(BASE, "x", body_weight="70")  # a TSV string
    assert m.body_weight_kg == 70
    m = pet_metadata(BASE, "x", body_weight=70000, body_weight_unit="g")
    assert m.body_weight_kg == 70


@pytest.mark.parametrize(
    "kw, expected",
    [
        ({}, "add a body_weight column (kg) to participants.tsv or sub-<label>_sessions.tsv"),
        ({"body_weight": "n/a"}, "add a body_weight column"),
        ({"body_weight": -3}, "not a positive number; fix the body_weight column"),
        ({"body_weight": "heavy"}, "not a positive number"),
        ({"body_weight": 70000}, "70000 kg is implausible"),
        ({"body_weight": 70, "body_weight_unit": "stone"}, "unknown body weight unit 'stone'"),
    ],
)
def test_body_weight_errors(kw, expected):
    assert expected in _error(BASE, **kw)


def test_read_sidecar(tmp_path):
    p = tmp_path / "a_pet.json"
    p.write_text('{"Units": "Bq/mL"')
    with pytest.raises(DataError, match="cannot read as a JSON sidecar"):
        read_sidecar(p)
    p.write_text("[1, 2]")
    with pytest.raises(DataError, match="JSON object"):
        read_sidecar(p)


# --- MEGRE ---------------------------------------------------------------------------------

MEGRE = EXAMPLES / "qmri_megre"
MEGRE_SIDECARS = sorted((MEGRE / "sub-01" / "anat").glob("*_MEGRE.json"))
needs_megre = pytest.mark.skipif(
    not MEGRE_SIDECARS, reason=f"qmri_megre example not found at {MEGRE}"
)


def _inherited(path):
    """The echo sidecar merged over the dataset-level MEGRE.json (BIDS inheritance)."""
    return {**json.loads((MEGRE / "MEGRE.json").read_text()), **read_sidecar(path)}


@needs_megre
def test_real_megre_sidecars():
    paths = list(MEGRE_SIDECARS)
    random.Random(3).shuffle(paths)  # order of the inputs does not matter
    m = megre_metadata([_inherited(p) for p in paths], paths)
    np.testing.assert_allclose(m.echo_times_s, [0.02, 0.04, 0.06, 0.08, 0.10, 0.12, 0.14, 0.16])
    assert np.all(np.diff(m.echo_times_s) > 0) and m.n_echoes == 8
    assert [Path(p).name for p in m.paths] == [p.name for p in MEGRE_SIDECARS]
    assert [paths[i] for i in m.order] == MEGRE_SIDECARS
    assert m.magnetic_field_strength_t == 3
    assert m.repetition_time_s is None and m.flip_angle_deg is None
    # the echo sidecars alone (without inheritance) give the echo times too
    m = megre_metadata([read_sidecar(p) for p in MEGRE_SIDECARS], MEGRE_SIDECARS)
    assert m.magnetic_field_strength_t is None and m.echo_times_s[0] == 0.02


def _megre_error(metas, paths=None):
    paths = paths or [f"sub-01_echo-{i + 1}_MEGRE.json" for i in range(len(metas))]
    with pytest.raises(DataError) as err:
        megre_metadata(metas, paths)
    assert "\n" not in str(err.value) and err.value.code == 65
    return str(err.value)


def test_megre_errors():
    ok = [
        {
            "EchoTime": 0.005 * (i + 1),
            "RepetitionTime": 0.05,
            "FlipAngle": 15,
            "MagneticFieldStrength": 3,
        }
        for i in range(4)
    ]
    m = megre_metadata(ok, [f"e{i}.json" for i in range(4)])
    assert (m.repetition_time_s, m.flip_angle_deg, m.magnetic_field_strength_t) == (0.05, 15, 3)

    bad = copy.deepcopy(ok)
    del bad[2]["EchoTime"]
    msg = _megre_error(bad)
    assert msg.startswith("sub-01_echo-3_MEGRE.json: ") and "EchoTime" in msg

    bad = copy.deepcopy(ok)
    bad[1]["EchoTime"] = 10  # 10 ms written as 10
    msg = _megre_error(bad)
    assert msg.startswith("sub-01_echo-2_MEGRE.json: ") and "milliseconds" in msg and "0.01" in msg

    bad = copy.deepcopy(ok)
    bad[3]["EchoTime"] = bad[0]["EchoTime"]
    msg = _megre_error(bad)
    assert (
        "sub-01_echo-4_MEGRE.json" in msg and "sub-01_echo-1_MEGRE.json" in msg and "same" in msg
    )

    for value in (-0.01, 0, "n/a", [0.01, 0.02], True):
        bad = copy.deepcopy(ok)
        bad[0]["EchoTime"] = value
        assert "EchoTime" in _megre_error(bad)

    bad = copy.deepcopy(ok)
    bad[2]["MagneticFieldStrength"] = 1.5
    msg = _megre_error(bad)
    assert msg.startswith("sub-01_echo-3_MEGRE.json: MagneticFieldStrength 1.5 differs")

    bad = copy.deepcopy(ok)
    for b in bad:
        b["RepetitionTime"] = 50  # ms
    assert "RepetitionTime 50 looks like milliseconds" in _megre_error(bad)

    bad = copy.deepcopy(ok)
    for b in bad:
        b["RepetitionTime"] = 0.018
    assert "not shorter than RepetitionTime" in _megre_error(bad)

    bad = copy.deepcopy(ok)
    bad[0]["FlipAngle"] = 400
    assert "FlipAngle 400 must be in degrees" in _megre_error(bad)

    assert "at least 2 are needed" in _megre_error(ok[:1])
    with pytest.raises(ValueError, match="sidecars but"):
        megre_metadata(ok, ["a.json"])
