"""Multi-echo GRE sidecars: echo times, their order, flip angle and what may differ
between echoes."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import DataError
from .common import (
    _as_float,
    _is_missing,
)


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
