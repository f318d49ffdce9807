"""DCE and variable-flip-angle sidecars: frame times, injection time, flip angle and
repetition time, each with a plausible range (units mistakes are refused)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import DataError
from .common import (
    _as_float,
    _short,
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
