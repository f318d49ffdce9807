"""Sidecar parsers: BIDS JSON metadata of PET and multi-echo GRE turned into checked values.

Each parser takes the sidecar dictionary (for PET the merged metadata of the image, i.e.
after BIDS inheritance) and the sidecar path for messages, and returns a frozen dataclass
in SI-like units (s, Bq, Bq/mL, kg). Bad or missing metadata raise
:class:`pipeline.errors.DataError` (exit 65) with one line naming the file, the field and
what to fix.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DataError
from .models import pet as pet_models

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

_NA = ("n/a", "na", "")


def _is_missing(value) -> bool:
    if value is None or type(value).__name__ == "NAType":  # pandas.NA
        return True
    if isinstance(value, str) and value.strip().lower() in _NA:
        return True
    return isinstance(value, (float, np.floating)) and bool(np.isnan(value))


def _as_float(value):
    """``value`` as a finite float, or None (bools are not numbers here)."""
    if isinstance(value, bool) or _is_missing(value):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: a huge JSON integer
        return None
    return out if math.isfinite(out) else None


def _number(meta, key, path, what):
    out = _as_float(meta[key])
    if out is None:
        raise DataError(f"{path}: {key} is {meta[key]!r}, not a number; give the {what}")
    return out


def _number_list(meta, key, path, what):
    raw = meta[key]
    values = raw if isinstance(raw, (list, tuple)) else [raw]
    out = [_as_float(v) for v in values]
    if not out or any(v is None for v in out):
        raise DataError(f"{path}: {key} must be a list of numbers ({what}), got {_short(raw)}")
    return np.asarray(out, dtype=float)


def _short(value, n=6):
    if isinstance(value, (list, tuple)) and len(value) > n:
        return "[" + ", ".join(f"{v!r}" for v in value[:n]) + ", ...]"
    return repr(value)


def _fmt_list(values, n=6):
    text = ", ".join(f"{v:g}" for v in values[:n])
    return f"[{text}{', ...' if len(values) > n else ''}]"


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


def _parse_bool(meta, key, path):
    value = meta[key]
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise DataError(f"{path}: {key} is {value!r}; write true or false (JSON booleans)")


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


@dataclass(frozen=True)
class MEGREMetadata:
    """Echo times and acquisition parameters of a multi-echo gradient-echo series.

    ``order`` gives, for each echo in ascending echo time, its index in the inputs:
    stack the echo images as ``[images[i] for i in order]``.
    """

    paths: tuple
    echo_times_s: np.ndarray
    order: tuple
    magnetic_field_strength_t: float | None = None
    repetition_time_s: float | None = None
    flip_angle_deg: float | None = None

    @property
    def n_echoes(self) -> int:
        return int(self.echo_times_s.size)


#: optional MEGRE fields: (name, unit, check(value) -> message or None)
_MEGRE_OPTIONAL = {
    "MagneticFieldStrength": ("T", lambda v: None if 0 < v <= 21 else "must be in tesla (0–21)"),
    "RepetitionTime": (
        "s",
        lambda v: (
            None
            if 0 < v <= 10
            else (
                "looks like milliseconds; BIDS RepetitionTime is in seconds"
                if v > 10
                else "must be positive seconds"
            )
        ),
    ),
    "FlipAngle": ("deg", lambda v: None if 0 < v <= 180 else "must be in degrees (0–180]"),
}


def megre_metadata(metas, paths, min_echoes: int = 2) -> MEGREMetadata:
    """Check and normalise the echo sidecars of a multi-echo GRE series.

    Parameters
    ----------
    metas : list of dict
        one (merged) sidecar per echo file.
    paths : list of str or Path
        the sidecars, same order, for messages.
    min_echoes : int
        fewest echoes accepted (R2* needs two).

    Returns
    -------
    MEGREMetadata
        echo times in seconds, ascending, with the order of the inputs; the field
        strength (T), repetition time (s) and flip angle (deg) when the sidecars give them
        (they must agree across echoes).

    Raises
    ------
    DataError
        ``EchoTime`` missing or not a positive number (names the file), an echo time
        above 1 (milliseconds instead of seconds), two echoes with the same echo time,
        too few echoes, optional fields that disagree between echoes or are implausible.
    """
    metas = list(metas)
    paths = [str(p) for p in paths]
    if len(metas) != len(paths):
        raise ValueError(f"megre_metadata: {len(metas)} sidecars but {len(paths)} paths")
    if len(metas) < min_echoes:
        where = paths[0] if paths else "MEGRE series"
        raise DataError(
            f"{where}: {len(metas)} echo(es) found, at least {min_echoes} are "
            "needed; add the other echo-<n>_MEGRE files"
        )
    te = []
    for meta, path in zip(metas, paths):
        if "EchoTime" not in meta or _is_missing(meta["EchoTime"]):
            raise DataError(f"{path}: sidecar lacks EchoTime; add the echo time in seconds")
        value = _as_float(meta["EchoTime"])
        if value is None or value <= 0:
            raise DataError(
                f"{path}: EchoTime is {meta['EchoTime']!r}; give one positive number of seconds"
            )
        if value > 1:
            raise DataError(
                f"{path}: EchoTime {value:g} looks like milliseconds; BIDS "
                f"EchoTime is in seconds (write {value / 1000:g})"
            )
        te.append(value)
    te = np.asarray(te)
    order = np.argsort(te, kind="stable")
    sorted_te = te[order]
    dup = np.flatnonzero(np.diff(sorted_te) < 1e-7)
    if dup.size:
        a, b = order[dup[0]], order[dup[0] + 1]
        raise DataError(
            f"{paths[b]}: EchoTime {te[b]:g} s is the same as in {paths[a]}; "
            "each echo needs its own echo time"
        )
    found = {}
    for key, (unit, check) in _MEGRE_OPTIONAL.items():
        first = None
        for meta, path in zip(metas, paths):
            if key not in meta or _is_missing(meta[key]):
                continue
            value = _as_float(meta[key])
            if value is None:
                raise DataError(f"{path}: {key} is {meta[key]!r}, not a number ({unit})")
            problem = check(value)
            if problem:
                raise DataError(f"{path}: {key} {value:g} {problem}")
            if first is None:
                first = (value, path)
            elif not math.isclose(value, first[0], rel_tol=1e-6, abs_tol=1e-9):
                raise DataError(
                    f"{path}: {key} {value:g} differs from {first[0]:g} in "
                    f"{first[1]}; the echoes must come from one acquisition"
                )
        found[key] = None if first is None else first[0]
    tr = found["RepetitionTime"]
    if tr is not None and sorted_te[-1] >= tr:
        raise DataError(
            f"{paths[order[-1]]}: EchoTime {sorted_te[-1]:g} s is not shorter "
            f"than RepetitionTime {tr:g} s; check the units (seconds)"
        )
    sorted_te.setflags(write=False)
    return MEGREMetadata(
        paths=tuple(paths[i] for i in order),
        echo_times_s=sorted_te,
        order=tuple(int(i) for i in order),
        magnetic_field_strength_t=found["MagneticFieldStrength"],
        repetition_time_s=tr,
        flip_angle_deg=found["FlipAngle"],
    )


def read_sidecar(path) -> dict:
    """A JSON sidecar as a dict (DataError naming the file if it is not valid JSON)."""
    import json

    path = Path(path)
    try:
        with path.open(encoding="utf-8") as fh:
            meta = json.load(fh)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read as a JSON sidecar ({exc})") from None
    if not isinstance(meta, dict):
        raise DataError(f"{path}: a sidecar must be a JSON object")
    return meta


@dataclass(frozen=True)
class SPECTMetadata:
    """Timing and units of one SPECT acquisition (inflamap's PET-BIDS-like convention)."""

    path: str
    radionuclide: str
    half_life_s: float
    start_s: float  #: acquisition start, on the InjectionStart clock
    duration_s: float
    injection_start_s: float
    units: str
    scale: float  #: image units to counts (``counts``) or Bq/mL
    counts: bool  #: True: images hold counts (divide by the duration)
    decay_corrected: bool

    @property
    def decay_factor(self) -> float:
        """Factor bringing the acquisition to injection time (1 if already corrected)."""
        if self.decay_corrected:
            return 1.0
        from .models.pet import frame_decay_factors

        return float(
            frame_decay_factors(
                [self.start_s],
                [self.duration_s],
                self.half_life_s,
                reference_s=self.injection_start_s,
            )[0]
        )


def spect_metadata(meta: dict, path) -> SPECTMetadata:
    """Check and normalise a SPECT sidecar: ``TracerRadionuclide``, ``Units`` (``counts`` or
    an activity concentration), ``InjectionStart``, ``FrameTimesStart`` and
    ``FrameDuration`` (one frame), ``ImageDecayCorrected``. One-line :class:`DataError`
    naming the file and the field."""
    from .models.pet import concentration_scale

    path = str(path)
    need = (
        "TracerRadionuclide",
        "Units",
        "InjectionStart",
        "FrameTimesStart",
        "FrameDuration",
        "ImageDecayCorrected",
    )
    missing = [k for k in need if k not in meta or _is_missing(meta[k])]
    if missing:
        raise DataError(
            f"{path}: SPECT sidecar lacks {', '.join(missing)}; see the README's SPECT convention"
        )
    key = radionuclide_key(meta["TracerRadionuclide"])
    if key is None or key not in HALF_LIVES_S:
        raise DataError(
            f"{path}: TracerRadionuclide {meta['TracerRadionuclide']!r} is not "
            f"known; use one of {', '.join(sorted(HALF_LIVES_S))}"
        )
    start = _number_list(meta, "FrameTimesStart", path, "seconds")
    duration = _number_list(meta, "FrameDuration", path, "seconds")
    if len(start) != 1 or len(duration) != 1:
        raise DataError(
            f"{path}: a SPECT acquisition is one frame: FrameTimesStart and "
            "FrameDuration need one value each"
        )
    if duration[0] <= 0:
        raise DataError(f"{path}: FrameDuration must be positive seconds")
    _check_timing(
        start,
        duration,
        _number(meta, "InjectionStart", path, "injection time in s"),
        HALF_LIVES_S[key],
        path,
    )
    units = str(meta["Units"]).strip()
    counts = units.lower() in ("counts", "count", "cnts")
    if counts:
        scale = 1.0
    else:
        try:
            scale = concentration_scale(units)
        except ValueError:
            raise DataError(
                f"{path}: Units {units!r} unknown; use counts or an activity "
                "concentration such as Bq/mL or kBq/mL"
            ) from None
    return SPECTMetadata(
        path=path,
        radionuclide=key,
        half_life_s=HALF_LIVES_S[key],
        start_s=float(start[0]),
        duration_s=float(duration[0]),
        injection_start_s=float(_number(meta, "InjectionStart", path, "seconds")),
        units=units,
        scale=scale,
        counts=counts,
        decay_corrected=_parse_bool(meta, "ImageDecayCorrected", path),
    )


# --------------------------------------------------------------------------- DCE and VFA

#: spoiled-gradient-echo TRs above this (s) are taken as milliseconds given as seconds
MAX_SPGR_TR_S = 0.1
#: flip angles below this (degrees) are taken as radians given as degrees
MIN_FLIP_ANGLE_DEG = 1.0
#: a DCE series longer than this (s, first to last frame start) has its times in ms
MAX_DCE_SPAN_S = 3 * 3600.0
#: DCE frames further apart than this (s, median) have their times in ms
MAX_DCE_FRAME_STEP_S = 300.0


def _flip_angle_and_tr(meta: dict, path, example_tr: str) -> tuple:
    """``FlipAngle`` (degrees) and ``RepetitionTimeExcitation`` (s) of a spoiled-gradient-echo
    sidecar, checked for presence, type and units (one-line :class:`DataError`)."""
    fa, tr = _as_float(meta["FlipAngle"]), _as_float(meta["RepetitionTimeExcitation"])
    if fa is None or not 0 < fa <= 180:
        raise DataError(
            f"{path}: FlipAngle is {_short(meta['FlipAngle'])}; give the flip angle "
            "in degrees (0–180]"
        )
    if fa < MIN_FLIP_ANGLE_DEG:
        raise DataError(
            f"{path}: FlipAngle {fa:g} looks like radians; BIDS uses degrees "
            f"({fa:g} rad = {math.degrees(fa):.3g}°)"
        )
    if tr is None or not 0 < tr < 10:
        raise DataError(
            f"{path}: RepetitionTimeExcitation is "
            f"{_short(meta['RepetitionTimeExcitation'])}; give the TR between "
            f"excitations in seconds (e.g. {example_tr})"
        )
    if tr > MAX_SPGR_TR_S:
        raise DataError(
            f"{path}: RepetitionTimeExcitation {tr:g} s is implausible for a "
            f"spoiled gradient echo (≤ {MAX_SPGR_TR_S:g} s); it looks like "
            f"milliseconds: BIDS uses seconds ({tr:g} ms = {tr / 1000:g} s)"
        )
    return fa, tr


@dataclass(frozen=True)
class DCEMetadata:
    """Acquisition of a DCE series (s, degrees)."""

    path: str
    flip_angle: float
    tr: float  #: RepetitionTimeExcitation, s
    times: tuple  #: FrameTimesStart, s
    injection_start: float  #: s, on the clock of ``times``
    n_baseline: int  #: frames starting before the injection

    @property
    def n_frames(self) -> int:
        return len(self.times)


def dce_metadata(meta: dict, path) -> DCEMetadata:
    """Check the sidecar of a DCE series: presence, types, ordering and units of
    ``FlipAngle``, ``RepetitionTimeExcitation``, ``FrameTimesStart``, ``InjectionStart``
    (one-line :class:`DataError` naming the file and the fix)."""
    path = str(path)
    need = {
        "FlipAngle": "flip angle in degrees",
        "RepetitionTimeExcitation": "TR between excitations in s",
        "FrameTimesStart": "frame start times in s",
        "InjectionStart": "injection time in s, on the clock of FrameTimesStart",
    }
    missing = [k for k in need if k not in meta or meta[k] is None]
    if missing:
        hint = ""
        if "RepetitionTimeExcitation" in missing and "RepetitionTime" in meta:
            hint = (
                " (RepetitionTime is in the sidecar: copy it to RepetitionTimeExcitation if "
                "it is the TR between excitations)"
            )
        raise DataError(
            f"{path}: DCE sidecar lacks {', '.join(missing)}; add "
            + "; ".join(f"{k} ({need[k]})" for k in missing)
            + hint
        )
    fa, tr = _flip_angle_and_tr(meta, path, "0.004")
    raw = meta["FrameTimesStart"]
    times = [_as_float(t) for t in raw] if isinstance(raw, list) else [None]
    if len(times) < 3 or any(t is None for t in times):
        raise DataError(
            f"{path}: FrameTimesStart is {_short(raw)}; give one start time (s) per "
            "frame of the 4-D series (at least 3 frames)"
        )
    steps = np.diff(times)
    if np.any(steps <= 0):
        i = int(np.argmax(steps <= 0)) + 1
        raise DataError(
            f"{path}: FrameTimesStart must increase frame by frame (frame {i} "
            f"starts at {times[i]:g} s, frame {i - 1} at {times[i - 1]:g} s); fix "
            "the frame times"
        )
    span = times[-1] - times[0]
    if span > MAX_DCE_SPAN_S:
        raise DataError(
            f"{path}: FrameTimesStart spans {span:g} s (> {MAX_DCE_SPAN_S / 3600:g} "
            "h) for a DCE series; it looks like milliseconds: BIDS uses seconds"
        )
    step = float(np.median(steps))
    if step > MAX_DCE_FRAME_STEP_S:
        raise DataError(
            f"{path}: FrameTimesStart has frames {step:g} s apart (> "
            f"{MAX_DCE_FRAME_STEP_S:g} s) for a DCE series; it looks like "
            "milliseconds: BIDS uses seconds"
        )
    injection = _as_float(meta["InjectionStart"])
    if injection is None:
        raise DataError(
            f"{path}: InjectionStart is {_short(meta['InjectionStart'])}; give the "
            "injection time in s on the clock of FrameTimesStart"
        )
    if abs(injection - times[0]) > MAX_DCE_SPAN_S:
        raise DataError(
            f"{path}: InjectionStart {injection:g} s is hours away from the frames "
            f"({times[0]:g}–{times[-1]:g} s); milliseconds, or another clock? BIDS "
            "uses seconds on the clock of FrameTimesStart"
        )
    n_base = sum(t < injection for t in times)
    if n_base < 2:
        raise DataError(
            f"{path}: {n_base} frame(s) start before InjectionStart ({injection:g} "
            "s); the baseline signal needs at least 2: check InjectionStart and "
            "FrameTimesStart (one clock, seconds)"
        )
    return DCEMetadata(
        path=path,
        flip_angle=fa,
        tr=tr,
        times=tuple(times),
        injection_start=injection,
        n_baseline=int(n_base),
    )


def vfa_metadata(metas, paths) -> tuple:
    """Flip angles (degrees, in the order given) and the common ``RepetitionTimeExcitation``
    (s) of the VFA images. :class:`DataError`: a field missing, not a number or in the wrong
    unit, fewer than two different flip angles, different TRs."""
    paths = [str(p) for p in paths]
    if not paths:
        raise DataError("VFA: no flip-<n>_VFA images; a T1 map needs at least two")
    angles, trs = [], []
    for meta, path in zip(metas, paths):
        for key, what in (
            ("FlipAngle", "flip angle in degrees"),
            ("RepetitionTimeExcitation", "TR between excitations in s"),
        ):
            if key not in meta:
                raise DataError(f"{path}: VFA sidecar lacks {key}; add the {what}")
        fa, tr = _flip_angle_and_tr(meta, path, "0.005")
        angles.append(fa)
        trs.append(tr)
    if len({round(a, 6) for a in angles}) < 2:
        raise DataError(
            f"{paths[0]}: the VFA images have one flip angle ({angles[0]:g}°, "
            f"{len(paths)} image(s)); a T1 map needs at least two different flip "
            "angles: add the other flip-<n>_VFA images"
        )
    if max(trs) - min(trs) > 1e-6:
        raise DataError(
            f"{paths[int(np.argmax(trs))]}: RepetitionTimeExcitation "
            f"{max(trs):g} s differs from {min(trs):g} s in "
            f"{paths[int(np.argmin(trs))]}; the VFA images must share one TR"
        )
    return angles, trs[0]
