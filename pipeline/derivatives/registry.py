"""Every derivative inflamap writes, declared once.

Each :class:`Output` says which workflow field it stores, its BIDS suffix and entities, its
units and description, whether the participant report draws it, and what ``.bidsignore``
must hide. The sinks (:mod:`workflows.outputs`), the participant report
(:mod:`pipeline.reports.index`), the group level (voxelwise map endings, checked when the
settings load) and ``.bidsignore`` (:mod:`pipeline.derivatives`) read this table; none of them
declares a derivative of its own.

Values known only when a participant is wired (the template, the atlas, the headache side,
the settings that made a map) are :class:`Ctx` placeholders filled from a context dictionary
(:func:`resolve`). An output whose *entity* placeholder resolves to ``None`` is not written
(e.g. no territory atlas configured); a *sidecar* placeholder missing from the context is
left out of the sidecar.
"""

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


XFM = ("*_xfm.h5", "*_xfm.mat", "*_xfm.json")  # transforms (BEP014, not yet merged)
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
    return (
        Output(sink, field, "dseg", ents, description=desc, meta=(("Atlas", atlas),), **extra),
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


ANAT = (
    Output(
        "anat",
        "outputnode.t1w_preproc",
        "T1w",
        (("desc", "preproc"),),
        description="T1w corrected for intensity non-uniformity (N4), in its own space",
        meta=(("SkullStripped", False), ("BiasCorrection", Ctx("bias_correction"))),
    ),
    Output(
        "anat",
        "outputnode.t1w_mask",
        "mask",
        (("desc", "brain"),),
        description="brain mask of the T1w",
        meta=(
            ("Type", "Brain"),
            ("Method", Ctx("mask_method")),
            ("Segmentation", Ctx("segmentation")),
        ),
    ),
    Output(
        "anat",
        "outputnode.t1w_dseg",
        "dseg",
        description="tissue classes of the T1w",
        meta=(("Labels", {"1": "CSF", "2": "GM", "3": "WM"}), ("Method", "ANTs Atropos")),
    ),
    *(
        Output(
            "anat",
            f"outputnode.{tissue.lower()}_prob",
            "probseg",
            (("label", tissue),),
            description=f"{tissue} probability of the T1w",
            meta=(("Method", "ANTs Atropos posterior probability"),),
        )
        for tissue in ("CSF", "GM", "WM")
    ),
    Output(
        "anat",
        "outputnode.t1w_tpl",
        "T1w",
        (("space", T), ("desc", "preproc")),
        description="brain-extracted T1w resampled to the template",
        meta=(("SkullStripped", True), ("Registration", Ctx("registration"))),
    ),
    _xfm(
        "anat",
        "outputnode.anat2tpl_xfm",
        "T1w",
        T,
        "T1w to template (ANTs composite transform)",
        (("Software", Ctx("ants")), ("Direction", "T1w to template")),
    ),
    _xfm(
        "anat",
        "outputnode.tpl2anat_xfm",
        T,
        "T1w",
        "template to T1w (ANTs composite transform)",
        (("Software", Ctx("ants")), ("Direction", "template to T1w")),
    ),
    Output(
        "anat",
        "outputnode.atlas_native",
        "dseg",
        (("atlas", A),),
        description="the template atlas carried to the T1w (nearest neighbour)",
        meta=(("Atlas", A), ("Template", T), ("Interpolation", "NearestNeighbor")),
    ),
    Output("anat", "outputnode.atlas_lut", "dseg", (("atlas", A),), sidecar=False),
    Output(
        "anat",
        "outputnode.rois_native",
        "dseg",
        (("atlas", A), ("desc", "extracerebral")),
        description="atlas labels plus meningeal and calvarial bands (by nearest atlas "
        "region) and dural venous sinuses",
        meta=(
            ("Atlas", A),
            ("ReferenceSession", Ctx("reference_session")),
            ("MeningealBandMM", Ctx("meningeal_band_mm")),
            ("CalvarialBandMM", Ctx("calvarial_band_mm")),
        ),
    ),
    Output(
        "anat",
        "outputnode.rois_lut",
        "dseg",
        (("atlas", A), ("desc", "extracerebral")),
        sidecar=False,
    ),  # fmt:skip
    _regions(
        "nt1w",
        "outputnode.out_table",
        "nT1w",
        "ratio to the brain median",
        "Per-ROI statistics of the T1w normalised to its median within the brain mask (nT1w)",
    ),
)

GADOLINIUM = (
    Output(
        "gadolinium",
        "outputnode.post_preproc",
        "T1w",
        (("desc", "preproc"),),
        description="bias-corrected with the pre-contrast field, registered to and "
        "normalised to the pre-contrast T1w",
        meta=(("SkullStripped", False), ("SpatialReference", Ctx("t1w_ref"))),
    ),
    Output(
        "gadolinium",
        "outputnode.subtraction",
        "enhancement",
        (("desc", "subtraction"),),
        "arbitrary",
        "post - pre (normalised)",
        report="map",
        bidsignore=("*_enhancement.nii.gz", "*_enhancement.json"),
    ),
    Output(
        "gadolinium",
        "outputnode.percent",
        "enhancement",
        (("desc", "percent"),),
        "%",
        "100 (post - pre) / max(pre, floor)",
        report="map",
    ),
    Output(
        "gadolinium",
        "outputnode.subtraction_tpl",
        "enhancement",
        (("space", T), ("desc", "subtraction")),
        "arbitrary",
        "post - pre (normalised), in template space",
    ),
    Output(
        "gadolinium",
        "outputnode.percent_tpl",
        "enhancement",
        (("space", T), ("desc", "percent")),
        "%",
        "100 (post - pre) / max(pre, floor), in template space",
        report="map",
    ),
    _xfm(
        "gadolinium",
        "outputnode.post2pre_xfm",
        "postcontrast",
        "T1w",
        "post-contrast T1w to the pre-contrast T1w",
        (("Software", Ctx("ants")), ("Type", "rigid")),
    ),
    _regions(
        "gadolinium",
        "outputnode.regions",
        "percent",
        "%",
        "per-ROI percent enhancement (atlas, meningeal and calvarial bands, sinuses); "
        "ipsi/contra/AI rows for a lateral headache",
    ),
    *_rois(
        "gadolinium",
        "outputnode.rois",
        "percent",
        "T1w",
    ),
    Output(
        "gadolinium",
        "outputnode.findings",
        "findings",
        (("desc", "enhancement"),),
        description="connected clusters above the threshold and minimum volume, attributed "
        "to the ROI holding most of their voxels",
        bidsignore=("*_findings.tsv", "*_findings.json"),
    ),
)


def _dce_map(field, suffix, units, description, drawn_tpl=True):
    native = Output(
        "dce",
        f"outputnode.{field}",
        suffix,
        (),
        units,
        description,
        report="map",
        qc_reference=1 if suffix == "Ktrans" else None,
        bidsignore=(f"*_{suffix}.*",),
    )
    tpl = Output(
        "dce",
        f"outputnode.{field}_tpl",
        suffix,
        (("space", T),),
        units,
        f"{description}, in template space",
        report="map" if drawn_tpl else None,
    )
    return native, tpl


T1_META = (("Method", "VFA (DESPOT1)"), ("SkullStripped", False))

DCE = (
    *_dce_map("ktrans", "Ktrans", "1/min", "volume transfer constant Ktrans"),
    *_dce_map("vp", "vp", "fraction", "plasma volume fraction"),
    *_dce_map("ve", "ve", "fraction", "extravascular extracellular volume fraction", False),
    Output(
        "dce",
        "outputnode.t1",
        "T1map",
        (),
        "s",
        "pre-contrast T1 from the variable-flip-angle images",
        T1_META,
        report="map",
        qc_reference=0,
        bidsignore=("*_ce-*_T1map.*",),  # ce is not a T1map entity
    ),
    Output(
        "dce",
        "outputnode.t1_tpl",
        "T1map",
        (("space", T),),
        "s",
        "pre-contrast T1 from the variable-flip-angle images, in template space",
        T1_META,
    ),
    Output(
        "dce",
        "outputnode.residual",
        "residual",
        (("desc", "fit"),),
        "mM",
        "root-mean-square fit residual",
        bidsignore=("*_residual.*",),
    ),
    Output(
        "dce",
        "outputnode.residual_tpl",
        "residual",
        (("space", T), ("desc", "fit")),
        "mM",
        "root-mean-square fit residual, in template space",
    ),
    Output(
        "dce",
        "outputnode.vif",
        "timeseries",
        (("desc", "vif"),),
        description=Ctx("vif_description"),
        meta=(("Columns", ["time_s", "blood_mM", "plasma_mM"]),),
        bidsignore=("*_timeseries.*",),
    ),
    _xfm(
        "dce",
        "outputnode.dce2t1w_xfm",
        "dce",
        "T1w",
        "DCE series to the T1w",
        (("Type", "rigid"),),
    ),  # fmt:skip
    _regions("dce", "outputnode.regions", "Ktrans", "1/min", "per-ROI Ktrans on the DCE grid"),
    # on the DCE grid: space-dce keeps it apart from the post-contrast T1w's ROIs (same ce-)
    *_rois("dce", "outputnode.rois", "regional Ktrans", "DCE", entities=(("space", "dce"),)),
)

TA = Ctx("territory_atlas")
FIT = (MERGE, Ctx("fit"))

USPIO = (
    Output(
        "uspio",
        "outputnode.dr2star",
        "dR2star",
        (),
        "1/s",
        "R2*post - R2*pre on the pre-infusion grid (valid fits only)",
        (FIT,),
        report="map",
        qc_reference=1,
        bidsignore=("*_dR2star.*",),
    ),
    Output(
        "uspio",
        "outputnode.dr2star_tpl",
        "dR2star",
        (("space", T),),
        "1/s",
        "R2*post - R2*pre, in template space",
        (FIT,),
        report="map",
    ),
    Output(
        "uspio",
        "outputnode.r2star_post",
        "R2starmap",
        (),
        "1/s",
        "post-infusion R2*, resampled once onto the pre-infusion grid",
        (FIT,),
        bidsignore=("*_ce-*_R2starmap.*",),  # ce is not an R2starmap entity
    ),
    Output(
        "uspio",
        "outputnode.r2star_post_tpl",
        "R2starmap",
        (("space", T),),
        "1/s",
        "post-infusion R2*, in template space",
        (FIT,),
    ),
    Output(
        "uspio",
        "outputnode.nrmse_post",
        "residual",
        (("desc", "fit"),),
        "fraction",
        "fit residual RMS / S0 of the post series (its own grid)",
        (FIT,),
    ),
    _xfm(
        "uspio",
        "outputnode.post2pre_xfm",
        "post",
        "pre",
        "post-infusion MEGRE to the pre-infusion MEGRE",
        (("Type", "rigid"),),
    ),  # fmt:skip
    Output(
        "uspio",
        "outputnode.territories",
        "dseg",
        (("atlas", TA),),
        description="vascular-territory atlas on the pre-infusion MEGRE grid",
        meta=(("Atlas", TA),),
    ),
    Output("uspio", "outputnode.territories_lut", "dseg", (("atlas", TA),), sidecar=False),
    *_rois("uspio", "outputnode.rois", "atlas regional dR2star", "pre-infusion MEGRE"),
    _regions(
        "uspio",
        "outputnode.regions_territories",
        "dR2star",
        "1/s",
        "per-ROI dR2star (1/s): vascular territories, vessels, pons, thalamus; "
        "ipsi/contra/AI rows for a lateral headache",
        atlas=TA,
    ),
    _regions(
        "uspio",
        "outputnode.regions_rois",
        "dR2star",
        "1/s",
        "per-ROI dR2star (1/s): atlas regions, meningeal and calvarial bands, dural sinuses",
    ),
    # the pre series' own maps, named after it (they may belong to another session)
    Output(
        "uspio_pre",
        "outputnode.r2star_pre",
        "R2starmap",
        (),
        "1/s",
        "pre-infusion R2*",
        (FIT,),
        report="map",
        qc_reference=0,
    ),
    Output(
        "uspio_pre",
        "outputnode.r2star_pre_tpl",
        "R2starmap",
        (("space", T),),
        "1/s",
        "pre-infusion R2*, in template space",
        (FIT,),
    ),
    Output(
        "uspio_pre",
        "outputnode.nrmse_pre",
        "residual",
        (("desc", "fit"),),
        "fraction",
        "fit residual RMS / S0",
        (FIT,),
    ),
    _xfm(
        "uspio_pre",
        "outputnode.pre2t1w_xfm",
        "MEGRE",
        "T1w",
        "pre-infusion MEGRE to the T1w",
        (("Type", "rigid"), ("SpatialReference", Ctx("t1w_ref"))),
    ),
)

PA = Ctx("pet_atlas")
SUV = "standardised uptake value, duration-weighted mean of the window's frames"
SUVR = "SUV divided by the reference region's SUV"
ON_T1W = (("SpatialReference", Ctx("t1w_ref")),)

PET = (
    Output(
        "pet",
        "outputnode.suvr",
        "SUVR",
        (),
        "ratio",
        SUVR,
        report="map",
        qc_reference=2,
        bidsignore=("*_SUVR.*",),
    ),  # fmt:skip
    Output(
        "pet",
        "outputnode.suv",
        "SUV",
        (),
        "g/mL",
        SUV,
        report="map",
        qc_reference=1,
        bidsignore=("*_SUV.*",),
    ),  # fmt:skip
    Output(
        "pet",
        "outputnode.suvr_t1w",
        "SUVR",
        (("space", "T1w"),),
        "ratio",
        f"{SUVR}, on the T1w grid",
        ON_T1W,
        report="map",
    ),  # fmt:skip
    Output(
        "pet",
        "outputnode.suv_t1w",
        "SUV",
        (("space", "T1w"),),
        "g/mL",
        f"{SUV}, on the T1w grid",
        ON_T1W,
        report="map",
    ),  # fmt:skip
    Output(
        "pet",
        "outputnode.suvr_tpl",
        "SUVR",
        (("space", T),),
        "ratio",
        f"{SUVR}, in template space",
        report="map",
    ),  # fmt:skip
    Output(
        "pet", "outputnode.suv_tpl", "SUV", (("space", T),), "g/mL", f"{SUV}, in template space"
    ),  # fmt:skip
    Output(
        "pet",
        "outputnode.pet_ref",
        "pet",
        (("desc", "mean"),),
        description="motion-corrected, duration-weighted mean of the window's frames "
        "(image units)",
        report="reference",
        qc_reference=0,
        bidsignore=("*_desc-mean_pet.*",),
    ),
    _xfm("pet", "outputnode.pet2t1w_xfm", "pet", "T1w", "PET to the T1w", (("Type", "rigid"),)),
    _regions(
        "pet",
        "outputnode.regions_atlas",
        "SUVR",
        "ratio",
        "per-ROI SUVR on the T1w grid (TSPO regions)",
        atlas=PA,
    ),
    Output(
        "pet",
        "outputnode.atlas_t1w",
        "dseg",
        (("atlas", PA), ("space", "T1w")),
        description="the TSPO-region atlas on the T1w grid (labels of the regional table)",
        meta=(("Atlas", PA), *ON_T1W),
    ),
    Output(
        "pet", "outputnode.atlas_lut", "dseg", (("atlas", PA), ("space", "T1w")), sidecar=False
    ),  # fmt:skip
    _regions(
        "pet",
        "outputnode.regions_rois",
        "SUVR",
        "ratio",
        "per-ROI SUVR on the T1w grid: atlas regions, meningeal and calvarial bands, dural "
        "sinuses",
    ),
)

NO_ACQ = ("acq", None)  # early and late differ by acq-: the pair's outputs drop it

SPECT = (
    Output(
        "spect",
        "outputnode.ratio",
        "ratio",
        (NO_ACQ, ("desc", "lateEarly")),
        "ratio",
        "late / early uptake (decay-corrected count rates) on the early grid",
        report="map",
        qc_reference=0,
    ),
    Output(
        "spect",
        "outputnode.ratio_tpl",
        "ratio",
        (NO_ACQ, ("space", T), ("desc", "lateEarly")),
        "ratio",
        "late / early uptake (decay-corrected count rates), in template space",
        report="map",
    ),
    Output(
        "spect",
        "outputnode.early2t1w_xfm",
        "xfm",
        (NO_ACQ, ("from", "spect"), ("to", "T1w"), ("mode", "image")),
        description="early SPECT to the T1w",
        meta=(("Type", "rigid"),),
    ),
    Output(
        "spect",
        "outputnode.late2early_xfm",
        "xfm",
        (NO_ACQ, ("from", "late"), ("to", "early"), ("mode", "image")),
        description="late SPECT to the early SPECT",
        meta=(("Type", "rigid"),),
    ),
    _regions(
        "spect",
        "outputnode.regions",
        "lateEarlyRatio",
        "ratio",
        "per-ROI late/early ratio (atlas regions, meningeal and calvarial bands, dural sinuses)",
        entities=(NO_ACQ,),
    ),
)

#: every derivative, in the order the report draws maps
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
    entity placeholder resolves to ``None`` (the output does not apply)."""
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


def map_sections() -> dict:
    """Suffix of every map or registration reference → its report section."""
    out = {}
    for o in OUTPUTS:
        if o.report is not None:
            out.setdefault(o.suffix, o.section)
    return out


def reference_only() -> set:
    """Suffixes used only to check a registration (never drawn as a map)."""
    drawn = {o.suffix for o in OUTPUTS if o.report == "map"}
    return {o.suffix for o in OUTPUTS if o.report == "reference"} - drawn


def _map_key(o: Output):
    """Suffix, or ``(suffix, desc)`` when maps of that suffix differ by ``desc``."""
    descs = {x.entity("desc") for x in OUTPUTS if x.suffix == o.suffix and x.report}
    return (o.suffix, o.entity("desc")) if len(descs) > 1 else o.suffix


def native_only() -> set:
    """Maps drawn in their own space but not in template space."""
    keys = {_map_key(o) for o in OUTPUTS if o.report == "map" and not o.template_space}
    drawn_tpl = {_map_key(o) for o in OUTPUTS if o.report == "map" and o.template_space}
    return keys - drawn_tpl


def not_drawn() -> set:
    """Image suffixes of the modalities that the report never draws (fit residuals...)."""
    drawn = {o.suffix for o in OUTPUTS if o.report}
    return {
        o.suffix
        for o in OUTPUTS
        if o.sink not in ("anat", "nt1w") and o.suffix not in drawn and o.sidecar
        and o.suffix not in ("xfm", "regions", "dseg", "findings", "timeseries", "T1w")
    }  # fmt:skip


def undrawn_native(section: str, suffix: str, with_ceagent: bool) -> bool:
    """Whether a native-space ``suffix`` map of ``section`` is not drawn; ``with_ceagent``:
    the file carries ``ce-`` (named after a contrast-agent series, e.g. the post R2*)."""
    agent_sinks = ("gadolinium", "dce", "uspio")
    for o in OUTPUTS:
        if o.section != section or o.suffix != suffix or o.template_space:
            continue
        if o.entity("space") is not None or (o.sink in agent_sinks) != with_ceagent:
            continue
        return o.report is None
    return False


def map_order() -> list:
    """Suffixes of the drawn maps, in the order the report shows them."""
    order = []
    for o in OUTPUTS:
        if o.report == "map" and o.suffix not in order:
            order.append(o.suffix)
    return order


def registration_references() -> dict:
    """Section → suffixes of the images that check its registration to the T1w, in order."""
    refs = {}
    for o in sorted((o for o in OUTPUTS if o.qc_reference is not None),
                    key=lambda o: o.qc_reference):  # fmt:skip
        refs.setdefault(o.section, [])
        if o.suffix not in refs[o.section]:
            refs[o.section].append(o.suffix)
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
