"""What each derivative is in the report: its section, whether and how it is drawn, its
units and title, and the QC values its sidecar holds (every rule from the output registry,
:mod:`pipeline.derivatives.registry`, through :mod:`pipeline.reports.index`)."""

from __future__ import annotations

import json
import math

from pipeline.derivatives.registry import desc_names_kind, undrawn_native

from .index import (
    MAP_ORDER,
    NATIVE_ONLY,
    NOT_DRAWN,
    QC_KEYS,
    QC_PATTERN,
    SUFFIX_MODALITY,
    TITLES,
    XFM_FROM,
    Deriv,
    SessionFiles,
)


def _fmt(value, spec="") -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int) and spec in ("", "d"):
        return f"{value:d}"
    if isinstance(value, (int, float)):
        if not math.isfinite(float(value)):
            return str(value)
        try:
            return format(float(value), spec if spec and spec != "d" and spec != "s" else ".4g")
        except ValueError:
            return str(value)
    if isinstance(value, (list, tuple)):
        return ", ".join(_fmt(v) for v in value)
    return str(value)


#: readable names of the registration QC values (pipeline.models.brain.registration_qc)
QC_NAMES = {
    "mask_dice": "Dice of the template brain mask in the T1w with the brain mask",
    "volume_ratio": "template brain volume in the T1w / in the template",
    "brain_volume_ml": "brain volume (ml)",
}


def _sidecar_qc(files) -> list[dict]:
    """QC fields of the sidecars of ``files``, each value once (first file that has it)."""
    seen, out = set(), []
    for f in files:
        for key, value in f.sidecar().items():
            if key not in QC_KEYS and not QC_PATTERN.search(key):
                continue
            if isinstance(value, (dict, list)) and key not in QC_KEYS:
                continue
            sig = (key, json.dumps(value, sort_keys=True, default=str))
            if sig in seen:
                continue
            seen.add(sig)
            label, spec = QC_KEYS.get(key, (key, ""))
            out.append({"name": label, "key": key, "value": _fmt(value, spec), "source": f.name})
    return out


def _modality(f: Deriv, session: SessionFiles) -> str | None:
    if f.suffix in SUFFIX_MODALITY:
        return SUFFIX_MODALITY[f.suffix]
    if f.suffix == "residual":
        same = {k: f.get(k) for k in ("ce", "trc")}
        for suffix in ("Ktrans", "R2starmap", "dR2star", "SUV", "SUVR"):
            if any(all(g.get(k) == v for k, v in same.items()) for g in session.find(suffix)):
                return SUFFIX_MODALITY[suffix]
        return "uspio" if f.get("ce") is None and session.find("R2starmap") else "other"
    return None


def _section_label(f: Deriv):
    return f.get("ce") or f.get("trc")


def _xfm_for(f: Deriv, modality: str, sessions: dict, session: SessionFiles):
    """The rigid transform (``from-X_to-T1w``) and the session whose T1w it maps to."""
    meta = f.sidecar()
    ref_ses = session
    pre = meta.get("PreSession")
    if isinstance(pre, str) and pre.startswith("ses-") and pre[4:] in sessions:
        ref_ses = sessions[pre[4:]]
    froms = XFM_FROM.get(modality, [])
    for ses in (ref_ses, session):
        for frm in froms:
            for x in ses.files:
                if x.suffix != "xfm" or x.get("to") != "T1w" or x.get("from") != frm:
                    continue
                if x.ext not in (".mat", ".h5", ".txt"):
                    continue
                extra = {
                    k: v
                    for k, v in x.entities.items()
                    if k not in ("sub", "ses", "from", "to", "mode")
                }
                if all(f.get(k) == v for k, v in extra.items()):
                    return x, ses
    return None, ref_ses


def _drawn(f: Deriv, modality: str) -> bool:
    """Whether a map gets a figure: every quantitative map in native space (or on the T1w
    grid), the main ones also in template space; not fit residuals or the post R2*."""
    if f.suffix in NOT_DRAWN:
        return False
    space = f.get("space")
    if space is None and undrawn_native(modality, f.suffix, f.get("ce") is not None):
        return False  # e.g. the post-agent R2* (its ΔR2* is drawn)
    if space in (None, "T1w"):
        return True
    return f.suffix not in NATIVE_ONLY and (f.suffix, f.get("desc")) not in NATIVE_ONLY


def _map_sort_key(f: Deriv):
    """Maps by kind, each in native then template space (side by side in the report)."""
    try:
        i = MAP_ORDER.index(f.suffix)
    except ValueError:
        i = len(MAP_ORDER)
    return (i, f.get("desc") or "", f.get("ce") or "", f.get("space") is not None, f.name)


def _units(f: Deriv) -> str:
    u = f.sidecar().get("Units")
    if u in ("arbitrary", "a.u."):  # e.g. a subtraction: the scanner's signal scale
        return "a.u."
    return str(u) if u not in (None, "") else "units not recorded"


def _map_title(f: Deriv) -> str:
    desc = f.get("desc")
    if desc_names_kind(f.suffix, desc):
        desc = None  # desc-delta_R2starmap is titled dR2star
    return f"{f.suffix}" + (
        f" ({desc})" if desc and desc != "fit" else " (fit residual)" if desc == "fit" else ""
    )


def new_section(key: str, agent=None, notes=()) -> dict:
    """An empty report section of ``key`` (a modality or ``anat``), filled by the builder."""
    return {
        "key": key,
        "title": TITLES.get(key, key),
        "agent": agent,
        "figures": [],
        "charts": [],
        "qc": [],
        "tables": [],
        "notes": list(notes),
        "other_files": [],
    }
