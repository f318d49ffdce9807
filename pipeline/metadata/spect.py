"""SPECT sidecars (inflamap's PET-BIDS-like convention): acquisition start relative to
injection, duration, radionuclide and decay factor."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import DataError
from .common import (
    _is_missing,
    _number,
    _number_list,
    _parse_bool,
)
from .pet import HALF_LIVES_S, _check_timing, radionuclide_key


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
        from ..models.pet import frame_decay_factors

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
    from ..models.pet import concentration_scale

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
