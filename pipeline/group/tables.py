"""Tidy TSV tables with JSON sidecars (the group level's outputs)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..utils import atomic_write_text

NIFTI = ".nii.gz"


def write_table(df: pd.DataFrame, path: Path, sidecar: dict) -> Path:
    """A tidy TSV (``n/a`` for missing) and its JSON sidecar beside it."""
    atomic_write_text(df.to_csv(sep="\t", index=False, na_rep="n/a"), path)
    atomic_write_text(_dumps(sidecar), path.with_name(path.name[: -len(".tsv")] + ".json"))
    return path


def _json_safe(obj):
    """NaN/inf → None recursively (JSON has no NaN)."""
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (float, np.floating)) and not np.isfinite(obj):
        return None
    return obj


def _dumps(obj) -> str:
    return json.dumps(_json_safe(obj), indent=2, default=_json_default)


def _json_default(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return None if not np.isfinite(obj) else float(obj)
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


def _sidecar_path(nifti: Path) -> Path:
    return nifti.with_name(nifti.name[: -len(NIFTI)] + ".json")
