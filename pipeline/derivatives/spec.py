"""The vocabulary of the output registry: :class:`Output` (one derivative), :class:`Ctx`
placeholders filled when a participant is wired, and the constructors shared by the
declarations (transforms, ROI label images, regional tables)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Ctx:
    """A value filled in from the wiring context (see :func:`resolve`)."""

    key: str


T = Ctx("template")
A = Ctx("atlas")  # the anatomical (ROI) atlas of every regional table
SIDE = ("HeadacheSide", Ctx("headache_side"))

#: merge a dictionary of the context into the sidecar (e.g. the fit settings)
MERGE = "**"

#: sinks: the modality's workflow whose fields they store, and the report section
SECTIONS = {
    "anat": "anat",
    "nt1w": "anat",
    "gadolinium": "gadolinium",
    "dce": "dce",
    "uspio": "uspio",
    "uspio_pre": "uspio",
    "pet": "pet",
    "spect": "spect",
}


@dataclass(frozen=True)
class Output:
    """One derivative.

    ``sink`` groups the outputs written from one source file (:data:`SECTIONS`); ``field``
    is the workflow field stored (``outputnode.x`` or ``inputnode.x``); ``entities`` are
    ``(name, value)`` pairs (a literal, a :class:`Ctx`, or ``None`` to drop an entity the
    source file has); ``meta`` are further sidecar fields after ``Description`` and
    ``Units``. ``sidecar=False`` for label tables (``.tsv`` beside a ``dseg``).
    ``report``: ``"map"`` (a quantitative map drawn in the participant report),
    ``"reference"`` (an image the report uses to check a registration), or ``None``.
    ``qc_reference``: rank among the images that check the modality's registration.
    ``bidsignore``: patterns hiding it from the validator (BIDS has no name for it yet).
    ``requires``: a context key that must be true for the output to be written (e.g. ``ve``
    only from a model that estimates it).
    ``kind``: what the file holds when BIDS has no suffix for it and it is written as a
    ``desc-`` of a standard suffix (``desc-delta_R2starmap`` is the ``dR2star`` map;
    ``desc-percent_T1w`` an ``enhancement`` map): the report, the group level and the
    evaluation read it by this name; ``None``: the suffix says what it is.
    """

    sink: str
    field: str
    suffix: str
    entities: tuple = ()
    units: str | None = None
    description: str | None = None
    meta: tuple = ()
    sidecar: bool = True
    report: str | None = None
    qc_reference: int | None = None
    bidsignore: tuple = ()
    requires: str | None = None
    kind: str | None = None

    @property
    def label(self) -> str:
        """What the file holds: its ``kind``, else its suffix."""
        return self.kind or self.suffix

    @property
    def key(self) -> str:
        """The field's name without its node (``outputnode.ktrans`` → ``ktrans``)."""
        return self.field.split(".", 1)[1]

    @property
    def section(self) -> str:
        return SECTIONS[self.sink]

    @property
    def template_space(self) -> bool:
        return any(k == "space" and v == T for k, v in self.entities)

    def entity(self, name):
        return dict(self.entities).get(name)

    @property
    def ending(self) -> str:
        """File-name ending in template space: ``desc-percent_enhancement``, ``Ktrans``."""
        fixed = [
            f"{k}-{v}"
            for k, v in self.entities
            if isinstance(v, str) and k not in ("from", "to", "mode")
        ]
        return "_".join([*fixed, self.suffix])


XFM = ("*_xfm.h5", "*_xfm.mat", "*_xfm.txt", "*_xfm.json")  # transforms (BEP014, not yet merged)
REGIONS = ("*_regions.tsv", "*_regions.json")
ROIS_DESC = (
    "the ROIs of the {table} table (atlas regions, meningeal and calvarial bands, dural "
    "sinuses) on the {grid} grid"
)


def _xfm(sink, field, frm, to, description, meta=()):
    return Output(
        sink,
        field,
        "xfm",
        (("from", frm), ("to", to), ("mode", "image")),
        description=description,
        meta=meta,
        bidsignore=XFM,
    )


def _rois(sink, field, table, grid, atlas=A, **extra):
    """The ROI label image of a regional table and its label table."""
    ents = (("atlas", atlas), *extra.pop("entities", ()), ("desc", "extracerebral"))
    desc = ROIS_DESC.format(table=table, grid=grid)
    meta = (("Atlas", atlas), *extra.pop("meta", ()))
    return (
        Output(sink, field, "dseg", ents, description=desc, meta=meta, **extra),
        Output(sink, "inputnode.rois_lut", "dseg", ents, sidecar=False),
    )


def _regions(sink, field, desc, units, description, atlas=A, entities=()):
    """A regional table (``units``: those of its value columns)."""
    return Output(
        sink,
        field,
        "regions",
        (*entities, ("atlas", atlas), ("desc", desc)),
        units=units,
        description=description,
        meta=(("Atlas", atlas), SIDE),
        bidsignore=REGIONS,
    )
