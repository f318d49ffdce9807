"""PET quantification: frame windows, unit conversion, decay, SUV and SUVR.

Frame arrays have the frame dimension last: ``(..., n_frame)``; a whole volume is one call.
Times are seconds, activities becquerel (Bq), activity concentrations Bq/mL, body weights kg.

Frame times in PET-BIDS (``FrameTimesStart``, ``ImageDecayCorrectionTime``, ``InjectionStart``)
are relative to ``TimeZero``; the time windows here are relative to the injection, so pass
``injection_s=InjectionStart`` when the two differ.
"""

from __future__ import annotations

import math

import numpy as np

LN2 = math.log(2.0)

#: becquerel per unit of radioactivity (1 Ci = 3.7e10 Bq exactly)
RADIOACTIVITY_UNITS = {
    "Bq": 1.0,
    "kBq": 1e3,
    "MBq": 1e6,
    "GBq": 1e9,
    "nCi": 37.0,
    "uCi": 3.7e4,
    "mCi": 3.7e7,
    "Ci": 3.7e10,
}
#: millilitres per unit of volume
VOLUME_UNITS = {"mL": 1.0, "cc": 1.0, "cm3": 1.0, "cm^3": 1.0, "L": 1000.0}
#: kilograms per unit of mass (1 lb = 0.45359237 kg exactly)
WEIGHT_UNITS = {"kg": 1.0, "g": 1e-3, "lb": 0.45359237, "lbs": 0.45359237}

_MICRO = ("\u00b5", "\u03bc")  # micro sign and Greek small mu, both written for "micro"


def _normalise_unit(unit) -> str:
    if not isinstance(unit, str):
        raise ValueError(f"unit {unit!r} is not a string")
    u = unit.strip().replace(" ", "")
    for mu in _MICRO:
        u = u.replace(mu, "u")
    return u


def _lookup(u: str, table: dict):
    """Exact spelling first, then case-insensitive (all accepted units differ in lower case:
    there is no milli-becquerel or mega-curie in the tables, so ``MBQ``/``mbq`` is MBq)."""
    if u in table:
        return table[u]
    lower = {k.lower(): v for k, v in table.items()}
    return lower.get(u.lower())


def radioactivity_scale(unit: str) -> float:
    """Becquerel per ``unit`` of radioactivity.

    Parameters
    ----------
    unit : str
        one of ``Bq, kBq, MBq, GBq, nCi, uCi (µCi), mCi, Ci`` (case-insensitive; ``µ``/``μ``
        read as ``u``).

    Returns
    -------
    float
        multiply a value in ``unit`` by this to get Bq.

    Raises
    ------
    ValueError
        unknown unit (the message names it and the accepted ones).
    """
    u = _normalise_unit(unit)
    scale = _lookup(u, RADIOACTIVITY_UNITS)
    if scale is None:
        raise ValueError(
            f"unknown radioactivity unit {unit!r}; accepted: "
            f"{', '.join(RADIOACTIVITY_UNITS)} (µCi = uCi)"
        )
    return scale


def to_bq(value, unit: str):
    """Radioactivity ``value`` in ``unit`` converted to Bq (see :func:`radioactivity_scale`)."""
    return np.asarray(value, dtype=float) * radioactivity_scale(unit)


def concentration_scale(unit: str) -> float:
    """Bq/mL per ``unit`` of activity concentration.

    Parameters
    ----------
    unit : str
        ``<radioactivity>/<volume>``: any unit of :func:`radioactivity_scale` over ``mL``
        (``ml``), ``cc``, ``cm3`` or ``L``, e.g. ``Bq/mL``, ``Bq/ml``, ``kBq/mL``, ``kBq/cc``,
        ``MBq/mL``, ``uCi/mL``, ``mCi/mL``, ``nCi/mL``, ``Bq/L``.

    Returns
    -------
    float
        multiply a value in ``unit`` by this to get Bq/mL.

    Raises
    ------
    ValueError
        not of the form activity/volume, or an unknown part.
    """
    u = _normalise_unit(unit)
    parts = u.split("/")
    accepted = (
        "accepted: <activity>/<volume> with activity in "
        f"{', '.join(RADIOACTIVITY_UNITS)} and volume in {', '.join(VOLUME_UNITS)} "
        "(e.g. Bq/mL, kBq/cc, uCi/mL)"
    )
    if len(parts) != 2:
        raise ValueError(f"unknown activity concentration unit {unit!r}; {accepted}")
    num = _lookup(parts[0], RADIOACTIVITY_UNITS)
    den = _lookup(parts[1], VOLUME_UNITS)
    if num is None or den is None:
        raise ValueError(f"unknown activity concentration unit {unit!r}; {accepted}")
    return num / den


def to_bq_per_ml(value, unit: str):
    """Activity concentration ``value`` in ``unit`` converted to Bq/mL."""
    return np.asarray(value, dtype=float) * concentration_scale(unit)


def weight_scale(unit: str) -> float:
    """Kilograms per ``unit`` of body weight (``kg``, ``g``, ``lb``/``lbs``).

    Raises
    ------
    ValueError
        unknown unit (the message names it and the accepted ones).
    """
    u = _normalise_unit(unit)
    scale = _lookup(u, WEIGHT_UNITS)
    if scale is None:
        raise ValueError(f"unknown body weight unit {unit!r}; accepted: {', '.join(WEIGHT_UNITS)}")
    return scale


def to_kg(value, unit: str):
    """Body weight ``value`` in ``unit`` converted to kg."""
    return np.asarray(value, dtype=float) * weight_scale(unit)


def _check_timing(name, start, duration):
    start = np.asarray(start, dtype=float)
    duration = np.asarray(duration, dtype=float)
    if start.ndim != 1 or duration.ndim != 1 or start.size == 0:
        raise ValueError(f"{name}: frame starts and durations must be non-empty 1-D arrays")
    if start.size != duration.size:
        raise ValueError(
            f"{name}: {start.size} frame starts but {duration.size} frame "
            "durations; give one of each per frame"
        )
    if not (np.all(np.isfinite(start)) and np.all(np.isfinite(duration))):
        raise ValueError(f"{name}: frame starts and durations must be finite numbers")
    if np.any(duration <= 0):
        i = int(np.argmax(duration <= 0))
        raise ValueError(
            f"{name}: frame {i} has duration {duration[i]:g} s; durations must be positive"
        )
    if np.any(np.diff(start) <= 0):
        i = int(np.argmax(np.diff(start) <= 0)) + 1
        raise ValueError(
            f"{name}: frame starts must increase (frame {i} starts at "
            f"{start[i]:g} s, frame {i - 1} at {start[i - 1]:g} s)"
        )
    return start, duration


def frame_overlap(
    frame_start_s, frame_duration_s, window_s=(3600.0, 5400.0), injection_s: float = 0.0
):
    """Fraction of each frame's duration that lies inside a time window after injection.

    Parameters
    ----------
    frame_start_s, frame_duration_s : array (n_frame,)
        frame starts (s, same clock as ``injection_s``, e.g. relative to ``TimeZero``)
        and durations (s).
    window_s : (float, float)
        window start and end, seconds after injection.
    injection_s : float
        injection time on the frames' clock.

    Returns
    -------
    ndarray (n_frame,)
        overlap of ``[start, start + duration)`` with the window, divided by the duration
        (0 to 1).
    """
    start, duration = _check_timing("frame_overlap", frame_start_s, frame_duration_s)
    lo, hi = _check_window(window_s)
    s = start - float(injection_s)
    inside = np.clip(np.minimum(s + duration, hi) - np.maximum(s, lo), 0.0, None)
    return inside / duration


def _check_window(window_s):
    try:
        lo, hi = (float(w) for w in window_s)
    except (TypeError, ValueError):
        raise ValueError("window_s must be two numbers (start, end) in seconds") from None
    if not hi > lo:
        raise ValueError(f"window_s: end ({hi:g} s) must be after start ({lo:g} s)")
    return lo, hi


def frame_window(
    frame_start_s,
    frame_duration_s,
    window_s=(3600.0, 5400.0),
    min_overlap: float = 0.5,
    injection_s: float = 0.0,
):
    """Frames that belong to a time window after injection (e.g. 60–90 min for SUV).

    Rule: a frame is selected when at least ``min_overlap`` of its duration lies inside the
    window (default 0.5: the frame is *mostly* inside). A frame that only grazes the window
    is left out, and a long frame that contains the whole window but mostly lies outside it
    is left out too, since its counts mostly come from other times.

    Parameters
    ----------
    frame_start_s, frame_duration_s : array (n_frame,)
        frame starts (strictly increasing) and durations (positive), seconds.
    window_s : (float, float)
        window start and end in seconds after injection.
    min_overlap : float
        in (0, 1]: the fraction of a frame's duration that must fall inside the window.
    injection_s : float
        injection time on the frames' clock (PET-BIDS ``InjectionStart``).

    Returns
    -------
    ndarray of bool (n_frame,)
        the selection, to pass to :func:`weighted_average`.

    Raises
    ------
    ValueError
        inconsistent timing (lengths differ, non-positive durations, starts not increasing)
        or no frame in the window (the message gives the frames' time range).
    """
    if not 0.0 < float(min_overlap) <= 1.0:
        raise ValueError(f"frame_window: min_overlap must be in (0, 1], got {min_overlap}")
    frac = frame_overlap(frame_start_s, frame_duration_s, window_s, injection_s)
    selection = frac >= float(min_overlap) - 1e-12
    if not selection.any():
        start = np.asarray(frame_start_s, float) - float(injection_s)
        end = start + np.asarray(frame_duration_s, float)
        lo, hi = _check_window(window_s)
        raise ValueError(
            f"frame_window: no frame lies at least {100 * float(min_overlap):g} % inside "
            f"{lo:g}–{hi:g} s after injection; the {start.size} frame(s) cover "
            f"{start.min():g}–{end.max():g} s after injection"
        )
    return selection


def weighted_average(frames_4d, durations, selection):
    """Duration-weighted mean image over the selected frames.

    Parameters
    ----------
    frames_4d : array (..., n_frame)
        frame values (e.g. Bq/mL), the frame axis last.
    durations : array (n_frame,)
        frame durations (s), positive.
    selection : array (n_frame,)
        booleans (from :func:`frame_window`) or non-negative weights multiplying the
        durations.

    Returns
    -------
    ndarray (...)
        ``sum_i w_i d_i x_i / sum_i w_i d_i``: for decay-corrected frames the mean
        activity concentration over the selected time.

    Raises
    ------
    ValueError
        shapes disagree, negative weights or durations, or nothing selected.
    """
    x = np.asanyarray(frames_4d)
    d = np.asarray(durations, dtype=float)
    w = np.asarray(selection)
    w = w.astype(float) if w.dtype == bool else np.asarray(w, dtype=float)
    if d.ndim != 1 or w.shape != d.shape:
        raise ValueError(
            f"weighted_average: durations {d.shape} and selection {w.shape} "
            "must be 1-D of the same length"
        )
    if x.ndim == 0 or x.shape[-1] != d.size:
        raise ValueError(
            f"weighted_average: frames have {x.shape[-1] if x.ndim else 0} "
            f"samples on the last axis, expected {d.size}"
        )
    if np.any(d <= 0) or np.any(w < 0) or not np.all(np.isfinite(w * d)):
        raise ValueError("weighted_average: durations must be positive and weights non-negative")
    weights = w * d
    total = weights.sum()
    if total <= 0:
        raise ValueError("weighted_average: no frame selected")
    # frame by frame: memory of one volume in float64, whatever the number of frames
    out = np.zeros(x.shape[:-1])
    for i in np.flatnonzero(weights > 0):
        out += np.asarray(x[..., i], dtype=float) * (weights[i] / total)
    return out


def decay_factor(delta_t_s, half_life_s):
    """Fraction of activity left after ``delta_t_s`` seconds: ``2 ** (-Δt / T½)``.

    Parameters
    ----------
    delta_t_s : float or array
        elapsed time (s); negative gives the factor > 1 that brings an activity back in time.
    half_life_s : float
        radionuclide half-life (s).

    Returns
    -------
    ndarray
        ``exp(-ln2 Δt / T½)``, the shape of ``delta_t_s``.

    Raises
    ------
    ValueError
        non-positive or non-finite half-life.
    """
    t_half = _check_half_life("decay_factor", half_life_s)
    return np.exp(-LN2 * np.asarray(delta_t_s, dtype=float) / t_half)


def _check_half_life(name, half_life_s):
    try:
        t_half = float(half_life_s)
    except (TypeError, ValueError):
        t_half = float("nan")
    if not (math.isfinite(t_half) and t_half > 0):
        raise ValueError(
            f"{name}: half-life must be a positive number of seconds, got {half_life_s!r}"
        )
    return t_half


def decay_to(activity, time_measured_s, time_target_s, half_life_s):
    """Activity measured at ``time_measured_s`` as it is (or was) at ``time_target_s``.

    E.g. the injected dose, measured at ``InjectionStart``, brought to the image's
    decay-correction reference ``ImageDecayCorrectionTime`` when the two differ:
    ``decay_to(dose, InjectionStart, ImageDecayCorrectionTime, T½)``. A later target gives
    less activity, an earlier one more.

    Parameters
    ----------
    activity : float or array
        activity (any unit) at ``time_measured_s``.
    time_measured_s, time_target_s : float or array
        the two times on one clock (s).
    half_life_s : float
        radionuclide half-life (s).

    Returns
    -------
    ndarray
        the activity at ``time_target_s``, same unit.
    """
    dt = np.asarray(time_target_s, dtype=float) - np.asarray(time_measured_s, dtype=float)
    return np.asarray(activity, dtype=float) * decay_factor(dt, half_life_s)


def frame_decay_factors(frame_start_s, frame_duration_s, half_life_s, reference_s: float = 0.0):
    """Factors that decay-correct each frame's mean activity to ``reference_s``.

    A frame ``[t, t + Δ)`` measures the time-average of ``A0 2^(-(u - t_ref)/T½)``; dividing
    by that average gives ``λΔ exp(λ (t - t_ref)) / (1 - exp(-λΔ))`` with ``λ = ln2 / T½``:
    decay to the frame start and during the frame. This is the PET-BIDS
    ``DecayCorrectionFactor`` (it reproduces the vendor factors of the bids-examples
    datasets to rounding when given the vendor's half-life).

    Returns
    -------
    ndarray (n_frame,)
        multiply non-corrected frames by these (the inverse undoes a correction).
    """
    start, duration = _check_timing("frame_decay_factors", frame_start_s, frame_duration_s)
    lam = LN2 / _check_half_life("frame_decay_factors", half_life_s)
    x = lam * duration
    return x * np.exp(lam * (start - float(reference_s))) / -np.expm1(-x)


def suv_factor(injected_dose_bq, body_weight_kg):
    """Factor turning an activity concentration (Bq/mL) into SUV: ``weight[g] / dose[Bq]``.

    ``SUV = C / (dose / weight)``: with C in Bq/mL, dose in Bq and weight in g the result is
    in g/mL, reported as dimensionless under the usual convention that tissue density is
    1 g/mL. The dose must be the one at the image's decay-correction reference time (see
    :func:`decay_to`).

    Raises
    ------
    ValueError
        non-positive or non-finite dose or weight.
    """
    dose = np.asarray(injected_dose_bq, dtype=float)
    weight = np.asarray(body_weight_kg, dtype=float)
    if not (np.all(np.isfinite(dose)) and np.all(dose > 0)):
        raise ValueError(
            f"suv: injected dose must be a positive number of Bq, got {injected_dose_bq}"
        )
    if not (np.all(np.isfinite(weight)) and np.all(weight > 0)):
        raise ValueError(f"suv: body weight must be a positive number of kg, got {body_weight_kg}")
    return weight * 1000.0 / dose


def suv(activity_bq_per_ml, injected_dose_bq, body_weight_kg):
    """Standardised uptake value ``C[Bq/mL] / (dose[Bq] / weight[g])`` (see :func:`suv_factor`)."""
    return np.asarray(activity_bq_per_ml, dtype=float) * suv_factor(
        injected_dose_bq, body_weight_kg
    )


def suvr(suv_map, reference_mask, return_reference: bool = False):
    """SUV ratio: the map divided by its mean over a reference region.

    Parameters
    ----------
    suv_map : array
        SUV (or any uptake) map.
    reference_mask : array of bool, same shape
        reference region; non-finite map values inside it are ignored.
    return_reference : bool
        also return the reference mean.

    Returns
    -------
    ndarray, or (ndarray, float)
        ``suv_map / mean(suv_map[reference_mask])`` (and the mean).

    Raises
    ------
    ValueError
        shapes differ, the reference has no finite voxel, or its mean is not positive.
    """
    m = np.asarray(suv_map, dtype=float)
    mask = np.asarray(reference_mask)
    if mask.shape != m.shape:
        raise ValueError(f"suvr: reference mask shape {mask.shape} differs from the map {m.shape}")
    values = m[mask.astype(bool)]
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise ValueError(
            "suvr: the reference region is empty (no voxel with a finite "
            "value); check the reference mask"
        )
    ref = float(values.mean())
    if not ref > 0:
        raise ValueError(
            f"suvr: the reference region's mean is {ref:g} (<= 0); the ratio "
            "is undefined; check the reference mask and the SUV map"
        )
    out = m / ref
    return (out, ref) if return_reference else out
