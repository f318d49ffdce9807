"""Helpers shared by the sidecar parsers: missing values, numbers, lists, booleans, reading
a JSON sidecar."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..errors import DataError

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


def _parse_bool(meta, key, path):
    value = meta[key]
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise DataError(f"{path}: {key} is {value!r}; write true or false (JSON booleans)")


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
