"""PET sidecars (PET-BIDS): radionuclide, dose, body weight, frame timing, decay
correction and units, checked and turned into SI-like values."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..errors import DataError
from ..models import pet as pet_models
from .common import (
    _as_float,
    _fmt_list,
    _is_missing,
    _number,
    _number_list,
    _parse_bool,
)

#: Radionuclide half-lives (s). Evaluated nuclear data: C11 20.334 min, N13 9.965 min,
#: O15 122.24 s, Rb82 1.2575 min, Cu64 12.701 h, Ga68 67.71 min, Zr89 78.41 h,
#: I124 4.1760 d (ENSDF evaluations as tabulated by NNDC NuDat); F18 109.77 min,
#: Tc99m 6.0067 h, In111 2.8047 d (DDEP/LNHB recommended data, BIPM-5 Table of
#: Radionuclides). Scanner software often uses older values (the Siemens factors in the
#: PET-BIDS examples imply C11 1223 s and 1224 s, 0.3 % longer: about 1 % in a decay
#: correction over 90 min); ``pet_metadata(..., half_life_s=...)`` overrides the table.
HALF_LIVES_S = {
    "C11": 1220.04,
    "N13": 597.9,
    "O15": 122.24,
    "F18": 6586.2,
    "Cu64": 45723.6,
    "Ga68": 4062.6,
    "Rb82": 75.45,
    "Zr89": 282276.0,
    "I124": 360806.4,
    "Tc99m": 21624.12,
    "In111": 242326.08,
}

#: PET-BIDS fields the PET maps need (all REQUIRED by PET-BIDS), with what they mean
PET_REQUIRED = {
    "Units": "unit of the image values, e.g. Bq/mL",
    "TracerName": "tracer, e.g. PBR28",
    "TracerRadionuclide": "radionuclide, e.g. C11 or F18",
    "InjectedRadioactivity": "injected dose",
    "InjectedRadioactivityUnits": "unit of InjectedRadioactivity, e.g. MBq",
    "InjectionStart": "injection time in s relative to TimeZero",
    "FrameTimesStart": "frame start times in s relative to TimeZero",
    "FrameDuration": "frame durations in s",
    "ImageDecayCorrected": "true or false",
    "ImageDecayCorrectionTime": "decay-correction reference in s relative to TimeZero",
}

#: injected doses outside this range (Bq) are taken as a unit mistake
DOSE_RANGE_BQ = (1e5, 1e11)
#: body weights above this (kg) are taken as a unit mistake (grams or pounds given as kg)
MAX_BODY_WEIGHT_KG = 500.0


def radionuclide_key(name) -> str | None:
    """Canonical radionuclide label (``C11``, ``F18``, ``Tc99m``) of a PET-BIDS
    ``TracerRadionuclide`` spelled ``C11``, ``11C``, ``[11C]``, ``C-11``, ``^18F``,
    ``99mTc``, ``Tc-99m`` ..., or None if it cannot be read."""
    if not isinstance(name, str):
        return None
    s = re.sub(r"[\[\]\^\s_-]", "", name)
    m = re.fullmatch(r"(\d+)(m?)([A-Za-z]{1,2})", s)
    if m:
        mass, meta, element = m.groups()
    else:
        m = re.fullmatch(r"([A-Za-z]{1,2})(\d+)(m?)", s)
        if not m:
            return None
        element, mass, meta = m.groups()
    return f"{element.capitalize()}{int(mass)}{meta.lower()}"


@dataclass(frozen=True)
class PETMetadata:
    """Normalised PET-BIDS metadata of one PET series.

    Times are seconds relative to ``TimeZero`` (as in PET-BIDS); activities Bq.
    """

    path: str
    tracer_name: str
    radionuclide: str
    half_life_s: float
    frame_start_s: np.ndarray
    frame_duration_s: np.ndarray
    injected_dose_bq: float  #: at InjectionStart
    injection_start_s: float
    units: str  #: ``Units`` as written in the sidecar
    activity_scale_bq_per_ml: float  #: multiply image values by this to get Bq/mL
    decay_corrected: bool
    decay_correction_time_s: float
    body_weight_kg: float
    body_weight_source: str  #: "participants/sessions table" or "sidecar BodyWeight"
    time_zero: str | None = None
    frame_duration_repaired: bool = False  #: FrameDuration held end times (converted)

    @property
    def n_frames(self) -> int:
        return int(self.frame_start_s.size)

    @property
    def frame_mid_s(self) -> np.ndarray:
        return self.frame_start_s + self.frame_duration_s / 2

    def dose_bq_at(self, time_s: float) -> float:
        """Injected dose decayed (or brought back) to ``time_s`` (s relative to TimeZero)."""
        return float(
            pet_models.decay_to(
                self.injected_dose_bq, self.injection_start_s, time_s, self.half_life_s
            )
        )

    @property
    def suv_dose_bq(self) -> float:
        """Dose for SUV: the injected dose at the images' decay-correction reference time
        when ``ImageDecayCorrected``; otherwise at injection, which requires the frames to
        be decay-corrected to ``InjectionStart`` first (``frame_decay_factors``)."""
        if self.decay_corrected:
            return self.dose_bq_at(self.decay_correction_time_s)
        return self.injected_dose_bq


def pet_metadata(
    meta: dict,
    path,
    body_weight=None,
    body_weight_unit: str = "kg",
    n_volumes: int | None = None,
    half_life_s: float | None = None,
    max_overlap_s: float = 1.0,
    repair_end_times: bool = False,
) -> PETMetadata:
    """Check and normalise the metadata of a PET series.

    Parameters
    ----------
    meta : dict
        the PET sidecar (merged metadata) of ``*_pet.nii[.gz]``.
    path : str or Path
        the sidecar, for messages.
    body_weight : number, str or None
        body weight from ``participants.tsv``/``sessions.tsv``; when given (not None, NaN
        or ``n/a``) it overrides ``BodyWeight`` in the sidecar.
    body_weight_unit : str
        unit of ``body_weight`` (``kg``, ``g``, ``lb``). A sidecar ``BodyWeight`` is in
        ``BodyWeightUnits`` if present, else kg.
    n_volumes : int, optional
        number of frames of the image, checked against the frame timing.
    half_life_s : float, optional
        radionuclide half-life overriding :data:`HALF_LIVES_S` (e.g. to match the scanner).
    max_overlap_s : float
        frames may overlap the next one by at most this much (rounding of frame times).
    repair_end_times : bool
        ``FrameDuration`` holding frame end times (a known converter error,
        bids-standard/bids-examples#220: every value equals the next ``FrameTimesStart``)
        is an error naming the corrected durations; with True it is converted to durations
        and ``frame_duration_repaired`` is set (recorded in the derivatives' sidecars).

    Returns
    -------
    PETMetadata

    Raises
    ------
    DataError
        a required field missing or unreadable (one line naming the file and field),
        unknown units or radionuclide, inconsistent frame timing, implausible dose, no body
        weight.
    """
    path = str(path)
    missing = [k for k in PET_REQUIRED if k not in meta or _is_missing(meta[k])]
    if missing:
        raise DataError(
            f"{path}: PET sidecar lacks required field(s) "
            + "; ".join(f"{k} ({PET_REQUIRED[k]})" for k in missing)
            + "; add them as PET-BIDS describes"
        )

    units = str(meta["Units"])
    try:
        scale = pet_models.concentration_scale(units)
    except ValueError as exc:
        raise DataError(f"{path}: Units: {exc}") from None

    dose_units = str(meta["InjectedRadioactivityUnits"])
    dose_value = _number(meta, "InjectedRadioactivity", path, "injected dose")
    try:
        dose_bq = float(pet_models.to_bq(dose_value, dose_units))
    except ValueError as exc:
        raise DataError(f"{path}: InjectedRadioactivityUnits: {exc}") from None
    if not DOSE_RANGE_BQ[0] <= dose_bq <= DOSE_RANGE_BQ[1]:
        raise DataError(
            f"{path}: InjectedRadioactivity {dose_value:g} {dose_units} = {dose_bq:.4g} Bq is "
            f"outside {DOSE_RANGE_BQ[0]:g}–{DOSE_RANGE_BQ[1]:g} Bq; check the value and "
            "InjectedRadioactivityUnits"
        )

    nuclide = radionuclide_key(meta["TracerRadionuclide"])
    if half_life_s is not None:
        t_half = _as_float(half_life_s)
        if t_half is None or t_half <= 0:
            raise ValueError(
                f"pet_metadata: half_life_s must be a positive number, got {half_life_s!r}"
            )
    elif nuclide in HALF_LIVES_S:
        t_half = HALF_LIVES_S[nuclide]
    else:
        raise DataError(
            f"{path}: TracerRadionuclide {meta['TracerRadionuclide']!r} is not "
            f"a known radionuclide; use one of {', '.join(HALF_LIVES_S)} "
            "(e.g. C11, F18)"
        )

    start = _number_list(meta, "FrameTimesStart", path, "frame start times in s")
    duration = _number_list(meta, "FrameDuration", path, "frame durations in s")
    repaired = False
    if repair_end_times and _durations_are_end_times(start, duration, max_overlap_s):
        duration, repaired = _end_times_to_durations(start, duration), True
    _check_frames(start, duration, path, n_volumes, max_overlap_s)

    injection = _number(meta, "InjectionStart", path, "injection time in s")
    _check_timing(start, duration, injection, t_half, path)
    corrected = _parse_bool(meta, "ImageDecayCorrected", path)
    dc_time = _number(
        meta,
        "ImageDecayCorrectionTime",
        path,
        "decay-correction reference time in s relative to TimeZero",
    )

    weight_kg, source = _body_weight(meta, path, body_weight, body_weight_unit)
    tz = meta.get("TimeZero")
    start.setflags(write=False)
    duration.setflags(write=False)
    return PETMetadata(
        path=path,
        tracer_name=str(meta["TracerName"]),
        radionuclide=nuclide or str(meta["TracerRadionuclide"]),
        half_life_s=float(t_half),
        frame_start_s=start,
        frame_duration_s=duration,
        injected_dose_bq=dose_bq,
        injection_start_s=injection,
        units=units,
        activity_scale_bq_per_ml=scale,
        decay_corrected=corrected,
        decay_correction_time_s=dc_time,
        body_weight_kg=weight_kg,
        body_weight_source=source,
        time_zero=None if _is_missing(tz) else str(tz),
        frame_duration_repaired=repaired,
    )


def _durations_are_end_times(start, duration, max_overlap_s) -> bool:
    """FrameDuration holding frame end times: frames overlap and every "duration" but the
    last equals the next frame's start (impossible for real durations, which never let
    frames overlap)."""
    if start.size < 3 or start.size != duration.size:
        return False
    overlap = start[:-1] + duration[:-1] - start[1:]
    return bool(np.any(overlap > max_overlap_s) and np.allclose(duration[:-1], start[1:]))


def _end_times_to_durations(start, ends):
    """Durations from end times (the last frame ends at its end time if after its start)."""
    return np.diff(np.append(start, ends[-1])) if ends[-1] > start[-1] else np.diff(start)


def _check_frames(start, duration, path, n_volumes, max_overlap_s):
    if start.size != duration.size:
        raise DataError(
            f"{path}: FrameTimesStart has {start.size} entries but FrameDuration "
            f"{duration.size}; give one start and one duration per frame"
        )
    if n_volumes is not None and start.size != int(n_volumes):
        raise DataError(
            f"{path}: FrameTimesStart/FrameDuration describe {start.size} frames "
            f"but the image has {int(n_volumes)}; fix the sidecar or the image"
        )
    if np.any(duration <= 0):
        i = int(np.argmax(duration <= 0))
        raise DataError(
            f"{path}: FrameDuration[{i}] is {duration[i]:g}; frame durations must "
            "be positive seconds"
        )
    if np.any(np.diff(start) <= 0):
        i = int(np.argmax(np.diff(start) <= 0)) + 1
        raise DataError(
            f"{path}: FrameTimesStart must increase frame by frame (frame {i} "
            f"starts at {start[i]:g} s, frame {i - 1} at {start[i - 1]:g} s)"
        )
    overlap = start[:-1] + duration[:-1] - start[1:]
    if np.any(overlap > max_overlap_s):
        if _durations_are_end_times(start, duration, max_overlap_s):
            # durations written as frame end times (bids-standard/bids-examples#220)
            raise DataError(
                f"{path}: FrameDuration looks like frame end times (each equals the next "
                f"FrameTimesStart, so the frames overlap); give each frame's length, i.e. "
                f"the differences of the end times: "
                f"{_fmt_list(_end_times_to_durations(start, duration))} (or set "
                "pet.repair_frame_end_times: true)"
            )
        i = int(np.argmax(overlap > max_overlap_s))
        raise DataError(
            f"{path}: frame {i} (FrameTimesStart {start[i]:g} s + FrameDuration "
            f"{duration[i]:g} s) overlaps frame {i + 1} starting at {start[i + 1]:g} s; "
            "fix FrameTimesStart/FrameDuration"
        )


#: frames starting further from the injection than this many half-lives of the
#: radionuclide, and than :data:`MAX_FRAME_START_S`, are in the wrong unit or on another clock
MAX_HALF_LIVES = 10
MAX_FRAME_START_S = 2 * 86400.0


def _check_timing(start, duration, injection, half_life, path):
    """Frame starts within max(2 days, :data:`MAX_HALF_LIVES` half-lives) of the injection:
    milliseconds given as seconds (×1000) put any scan of a few minutes days away."""
    limit = max(MAX_FRAME_START_S, MAX_HALF_LIVES * half_life)
    first, last = float(start[0]) - injection, float(start[-1]) - injection
    if last > limit or first < -limit:
        raise DataError(
            f"{path}: frames start {first:g}–{last:g} s from InjectionStart ({injection:g} s), "
            f"more than {limit:g} s (no activity left to measure); FrameTimesStart and "
            "InjectionStart look like milliseconds (BIDS uses seconds) or are not on one clock"
        )


def _body_weight(meta, path, body_weight, unit):
    if not _is_missing(body_weight):
        value, source, where = (
            body_weight,
            "participants/sessions table",
            "the body_weight column of participants.tsv or sessions.tsv",
        )
    elif "BodyWeight" in meta and not _is_missing(meta["BodyWeight"]):
        value, source, where = meta["BodyWeight"], "sidecar BodyWeight", "BodyWeight"
        unit = meta.get("BodyWeightUnits", "kg")
    else:
        raise DataError(
            f"{path}: no body weight for SUV; add a body_weight column (kg) to "
            "participants.tsv or sub-<label>_sessions.tsv"
        )
    number = _as_float(value)
    try:
        kg = None if number is None else float(pet_models.to_kg(number, str(unit)))
    except ValueError as exc:
        raise DataError(f"{path}: body weight: {exc}") from None
    if kg is None or kg <= 0:
        raise DataError(f"{path}: body weight {value!r} is not a positive number; fix {where}")
    if kg > MAX_BODY_WEIGHT_KG:
        raise DataError(
            f"{path}: body weight {value!r} {unit} = {kg:g} kg is implausible; "
            f"fix {where} (kg expected)"
        )
    return kg, source
