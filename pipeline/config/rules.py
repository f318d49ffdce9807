"""The rules of the settings: each key's type, range, allowed values and unit
(:func:`rule`), the coercion that checks a YAML value against them, and the error naming the
key, the value and what is allowed."""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import asdict, field
from pathlib import Path


class ConfigError(ValueError):
    """A configuration file is invalid (exit code 64)."""


# --------------------------------------------------------------------------- the rules


def rule(
    *,
    ge=None,
    gt=None,
    le=None,
    lt=None,
    choices=None,
    length=None,
    min_length=None,
    pattern=None,
    unit="",
    doc="",
):
    """A dataclass field (no default: the defaults are in ``configs/defaults.yml``) with its
    allowed values. Ranges apply to a number or to every number of a list."""
    return field(
        metadata=dict(
            ge=ge,
            gt=gt,
            le=le,
            lt=lt,
            choices=choices,
            length=length,
            min_length=min_length,
            pattern=pattern,
            unit=unit,
            doc=doc,
        )
    )


_LABEL = r"[A-Za-z0-9]+"


def _allowed_text(meta) -> str:
    """The allowed range of a field in words (for messages)."""
    parts = []
    if meta.get("choices") is not None:
        parts.append("one of " + ", ".join(map(str, meta["choices"])))
    lo = (
        f"≥ {meta['ge']:g}"
        if meta.get("ge") is not None
        else f"> {meta['gt']:g}"
        if meta.get("gt") is not None
        else None
    )
    hi = (
        f"≤ {meta['le']:g}"
        if meta.get("le") is not None
        else f"< {meta['lt']:g}"
        if meta.get("lt") is not None
        else None
    )
    rng = " and ".join(p for p in (lo, hi) if p)
    if rng:
        parts.append(rng + (f" {meta['unit']}" if meta.get("unit") else ""))
    if meta.get("length") is not None:
        parts.append(f"a list of {meta['length']}")
    elif meta.get("min_length") is not None:
        parts.append(f"a list of at least {meta['min_length']}")
    if meta.get("pattern") == _LABEL:
        parts.append("letters and digits")
    text = "; ".join(parts) or "see configs/defaults.yml"
    return text + (f" ({meta['doc']})" if meta.get("doc") else "")


def _atlas_file(section):
    """``atlas_file``: an existing NIfTI label image with its ``.tsv`` label table beside it,
    named by ``atlas`` (not a built-in or published atlas name)."""
    path = getattr(section, "atlas_file", None)
    if path is None:
        return
    from ..atlas import BUILTIN
    from ..published_atlas import ATLASES

    p = Path(path)
    stem = p.name.removesuffix(".gz").removesuffix(".nii")
    tsv = p.with_name(stem + ".tsv")
    if not p.name.endswith((".nii", ".nii.gz")) or not p.is_file() or not tsv.is_file():
        raise _Bad(
            "atlas_file",
            path,
            "an existing NIfTI label image in template space with its label table "
            f"(index, name[, hemisphere]) beside it as {tsv.name}",
        )
    if section.atlas is None or section.atlas in BUILTIN or section.atlas in ATLASES:
        raise _Bad("atlas", section.atlas, "a name of your own for the atlas_file (a label)")


class _Bad(Exception):
    """A bad value: its key, the value and what is allowed (or a whole ``message``)."""

    def __init__(self, key, value, allowed, message=None):
        super().__init__(key)
        self.key, self.value, self.allowed, self.message = key, value, allowed, message


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _in_range(x, meta) -> bool:
    return not (
        (meta["ge"] is not None and x < meta["ge"])
        or (meta["gt"] is not None and x <= meta["gt"])
        or (meta["le"] is not None and x > meta["le"])
        or (meta["lt"] is not None and x >= meta["lt"])
    )


def _coerce(value, tp, key, meta):
    """``value`` as type ``tp`` (the annotation), checked against ``meta``; ``_Bad``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(value, inner, key, meta)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise _Bad(key, value, "a mapping of settings")
        return _build(tp, value, key + ".")
    if origin is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise _Bad(key, value, "a list" + (f": {_allowed_text(meta)}" if meta else ""))
        if meta.get("length") is not None and len(value) != meta["length"]:
            raise _Bad(key, value, _allowed_text(meta))
        if meta.get("min_length") is not None and len(value) < meta["min_length"]:
            raise _Bad(key, value, _allowed_text(meta))
        return [_coerce(v, item, f"{key}[{i}]", meta) for i, v in enumerate(value)]
    if tp is dict:
        if not isinstance(value, dict):
            raise _Bad(key, value, "a mapping")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise _Bad(key, value, "true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Bad(
                key,
                value,
                "a whole number"
                + (
                    f", {_allowed_text(meta)}"
                    if any(meta.get(k) is not None for k in ("ge", "gt", "le", "lt", "choices"))
                    else ""
                ),
            )
    elif tp is float:
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
        ):
            raise _Bad(key, value, f"a number, {_allowed_text(meta)}")
        # a whole number stays as written (60, not 60.0, in the sidecars that quote it)
    elif tp is str:
        if not isinstance(value, str):
            raise _Bad(
                key,
                value,
                "a text value" + (f", {_allowed_text(meta)}" if meta.get("choices") else ""),
            )
        if meta.get("pattern") and not re.fullmatch(meta["pattern"], value):
            raise _Bad(key, value, _allowed_text(meta))
    else:  # pragma: no cover - a programming error in the dataclasses below
        raise TypeError(f"{key}: unsupported setting type {tp}")
    if meta.get("choices") is not None and value not in meta["choices"]:
        raise _Bad(key, value, _allowed_text(meta))
    if tp in (int, float) and not _in_range(value, meta):
        raise _Bad(key, value, _allowed_text(meta))
    return value


def _build(cls, data: dict, where: str = ""):
    """The dataclass ``cls`` from the (merged, complete) mapping ``data``."""
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        key = f"{where}{f.name}"
        if f.name not in data:
            raise _Bad(key, None, "a value: the key is missing")
        values[f.name] = _coerce(data[f.name], hints[f.name], key, dict(f.metadata))
    obj = cls(**values)
    check = getattr(obj, "check", None)
    if check is not None:
        try:
            check()
        except _Bad as bad:
            raise _Bad(where + bad.key, bad.value, bad.allowed, bad.message) from None
    return obj


class _Section:
    """Base of the sections: plain dictionaries out (sidecars, dumps)."""

    def to_dict(self) -> dict:
        return asdict(self)


def _levels_match(obj, names, where=""):
    """Registration schedules: one value per level in every list."""
    lengths = {n: len(getattr(obj, n)) for n in names}
    first = names[0]
    for n in names[1:]:
        if lengths[n] != lengths[first]:
            raise _Bad(
                n, getattr(obj, n), f"one value per level, like {first} ({lengths[first]} levels)"
            )
