"""Every derivative inflamap writes, declared once.

Each :class:`Output` says which workflow field it stores, its BIDS suffix and entities, its
units and description, whether the participant report draws it, and what ``.bidsignore``
must hide. The sinks (:mod:`workflows.outputs`), the participant report
(:mod:`pipeline.reports.index`), the group level (voxelwise map endings, checked when the
settings load) and ``.bidsignore`` (:mod:`pipeline.derivatives`) read this table; none of them
declares a derivative of its own.

The declarations live in :mod:`pipeline.derivatives.mri` (anatomy, gadolinium, DCE, USPIO)
and :mod:`pipeline.derivatives.nuclear` (PET, SPECT); this module assembles them and answers
the readers' questions.

Values known only when a participant is wired (the template, the atlas, the headache side,
the settings that made a map) are :class:`Ctx` placeholders filled from a context dictionary
(:func:`resolve`). An output whose *entity* placeholder resolves to ``None`` is not written
(e.g. no territory atlas configured); a *sidecar* placeholder missing from the context is
left out of the sidecar.
"""

from __future__ import annotations

from .mri import ANAT, DCE, GADOLINIUM, USPIO
from .nuclear import PET, SPECT
from .spec import MERGE, SECTIONS, Ctx, Output

OUTPUTS = ANAT + GADOLINIUM + DCE + USPIO + PET + SPECT

#: folders and files of the derivatives that are not BIDS files at all
NON_BIDS_FOLDERS = (
    "/sub-*/ses-*/spect",
    "/sub-*/spect",  # SPECT (no BIDS datatype)
    "/group",
    "/logs",  # group tables, logs
    "/sub-*.html",
    "/sub-*/figures",  # participant reports
)


def outputs(sink: str) -> tuple:
    """The outputs written from one source file of a sink group (``"dce"``...)."""
    if sink not in SECTIONS:
        raise KeyError(f"unknown sink {sink!r}; known: {', '.join(SECTIONS)}")
    return tuple(o for o in OUTPUTS if o.sink == sink)


def _fill(value, context: dict):
    return context.get(value.key, _MISSING) if isinstance(value, Ctx) else value


_MISSING = object()


def resolve(output: Output, context: dict):
    """``(entities, sidecar)`` of ``output`` for a wiring ``context``, or ``None`` when an
    entity placeholder resolves to ``None`` or its ``requires`` key is not true in the
    context (the output does not apply)."""
    if output.requires is not None and not context.get(output.requires):
        return None
    entities = {}
    for name, value in output.entities:
        filled = _fill(value, context)
        if filled is _MISSING:
            raise KeyError(f"{output.field}: no {value.key!r} in the wiring context")
        if filled is None and value is not None:
            return None
        entities[name] = filled
    if not output.sidecar:
        return entities, None
    meta = {}
    description = _fill(output.description, context)
    if description not in (None, _MISSING):
        meta["Description"] = description
    if output.units is not None:
        meta["Units"] = output.units
    for key, value in output.meta:
        filled = _fill(value, context)
        if filled is _MISSING:
            continue
        if key == MERGE:
            meta.update(filled or {})
        else:
            meta[key] = filled
    return entities, meta


def bidsignore_patterns() -> tuple:
    """``.bidsignore`` lines: the outputs' patterns, then non-BIDS folders and files."""
    lines = []
    for out in OUTPUTS:
        lines += [p for p in out.bidsignore if p not in lines]
    return (*lines, *NON_BIDS_FOLDERS)


def voxelwise_endings() -> tuple:
    """File-name endings of the quantitative template-space maps (group voxelwise maps)."""
    seen = []
    for out in OUTPUTS:
        if out.template_space and out.units is not None and out.ending not in seen:
            seen.append(out.ending)
    return tuple(seen)


# --- what the participant report reads ----------------------------------------------------
# (by ``label``: the kind of a map written as a ``desc-`` of a standard BIDS suffix, else its
# suffix; :func:`kind_of` turns a file's suffix and ``desc`` into it)


def kind_of(suffix: str, desc: str | None) -> str:
    """What a file of ``suffix`` and ``desc`` holds (``R2starmap``, ``delta`` →
    ``dR2star``); its suffix when no output declares a kind for that pair."""
    return _KINDS.get((suffix, desc), suffix)


_KINDS = {(o.suffix, o.entity("desc")): o.kind for o in OUTPUTS if o.kind}


def desc_names_kind(kind: str, desc: str | None) -> bool:
    """Whether ``desc`` only says which kind a file is (``dR2star``'s ``delta``), not which
    of several maps of the kind (``enhancement``'s ``percent``/``subtraction``)."""
    descs = {d for (_, d), k in _KINDS.items() if k == kind}
    return descs == {desc}


def metric_label(ending: str) -> str:
    """The group level's name for the template-space maps of ``ending``: the kind, or the
    ``desc-`` label where one kind has several (``desc-percent_T1w`` → ``percent``;
    ``desc-delta_R2starmap`` → ``dR2star``; ``Ktrans`` → ``Ktrans``), else the ``desc-``
    label or the suffix."""
    for o in OUTPUTS:
        if o.template_space and o.ending == ending:
            if o.kind:
                descs = {x.entity("desc") for x in OUTPUTS if x.kind == o.kind}
                return o.entity("desc") if len(descs) > 1 else o.kind
            return o.entity("desc") or o.suffix
    raise KeyError(f"no template-space output ends with {ending!r}")


def map_sections() -> dict:
    """Suffix of every map or registration reference → its report section."""
    out = {}
    for o in OUTPUTS:
        if o.report is not None:
            out.setdefault(o.label, o.section)
    return out


def reference_only() -> set:
    """Suffixes used only to check a registration (never drawn as a map)."""
    drawn = {o.label for o in OUTPUTS if o.report == "map"}
    return {o.label for o in OUTPUTS if o.report == "reference"} - drawn


def _map_key(o: Output):
    """Suffix, or ``(suffix, desc)`` when maps of that suffix differ by ``desc``."""
    descs = {x.entity("desc") for x in OUTPUTS if x.label == o.label and x.report}
    return (o.label, o.entity("desc")) if len(descs) > 1 else o.label


def native_only() -> set:
    """Maps drawn in their own space but not in template space."""
    keys = {_map_key(o) for o in OUTPUTS if o.report == "map" and not o.template_space}
    drawn_tpl = {_map_key(o) for o in OUTPUTS if o.report == "map" and o.template_space}
    return keys - drawn_tpl


def not_drawn() -> set:
    """Image suffixes of the modalities that the report never draws (fit residuals...)."""
    drawn = {o.label for o in OUTPUTS if o.report}
    return {
        o.label
        for o in OUTPUTS
        if o.sink not in ("anat", "nt1w") and o.label not in drawn and o.sidecar
        and o.label not in ("xfm", "regions", "dseg", "findings", "timeseries", "T1w")
    }  # fmt:skip


def undrawn_native(section: str, suffix: str, with_ceagent: bool) -> bool:
    """Whether a native-space ``suffix`` map of ``section`` is not drawn; ``with_ceagent``:
    the file carries ``ce-`` (named after a contrast-agent series, e.g. the post R2*)."""
    agent_sinks = ("gadolinium", "dce", "uspio")
    for o in OUTPUTS:
        if o.section != section or o.label != suffix or o.template_space:
            continue
        if o.entity("space") is not None or (o.sink in agent_sinks) != with_ceagent:
            continue
        return o.report is None
    return False


def map_order() -> list:
    """Suffixes of the drawn maps, in the order the report shows them."""
    order = []
    for o in OUTPUTS:
        if o.report == "map" and o.label not in order:
            order.append(o.label)
    return order


def registration_references() -> dict:
    """Section → suffixes of the images that check its registration to the T1w, in order."""
    refs = {}
    for o in sorted((o for o in OUTPUTS if o.qc_reference is not None),
                    key=lambda o: o.qc_reference):  # fmt:skip
        refs.setdefault(o.section, [])
        if o.label not in refs[o.section]:
            refs[o.section].append(o.label)
    return refs


def xfm_from() -> dict:
    """Section → ``from-`` labels of its rigid transforms to the T1w."""
    out = {}
    for o in OUTPUTS:
        if o.suffix == "xfm" and o.entity("to") == "T1w" and isinstance(o.entity("from"), str):
            out.setdefault(o.section, []).append(o.entity("from"))
    return out


def table_sections() -> dict:
    """Regional tables: ``modality`` column or ``desc-`` label → report section."""
    out = {s: s for s in dict.fromkeys(SECTIONS.values())}
    out["iron_oxide"] = "uspio"  # the USPIO tables' modality column is the agent class
    for o in OUTPUTS:
        if o.suffix == "regions":
            out.setdefault(o.entity("desc"), o.section)
    return out


def table_units() -> dict:
    """Regional tables: section (the tables' ``modality`` column) → units of their values."""
    out = {}
    for o in OUTPUTS:
        if o.suffix == "regions" and o.units:
            out.setdefault(o.section, o.units)
    return out
