"""The MRI derivatives: anatomy, gadolinium enhancement, DCE and USPIO (declared once; read
through :mod:`pipeline.derivatives.registry`)."""

from __future__ import annotations

from .spec import MERGE, A, Ctx, Output, T, _regions, _rois, _xfm

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
        meta=(
            ("Labels", {"1": "CSF", "2": "GM", "3": "WM"}),
            ("Method", Ctx("segmentation_method")),
        ),
    ),
    *(
        Output(
            "anat",
            f"outputnode.{tissue.lower()}_prob",
            "probseg",
            (("label", tissue),),
            description=f"{tissue} probability of the T1w",
            meta=(("Method", Ctx("segmentation_method")),),
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

#: the enhancement maps are T1w-derived images (``desc-subtraction_T1w``, ``desc-percent_T1w``):
#: BIDS has no suffix for enhancement; derived anatomical images must say whether the skull
#: was stripped
ENH_META = (("SkullStripped", False),)

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
        "T1w",
        (("desc", "subtraction"),),
        "arbitrary",
        "post - pre (normalised)",
        ENH_META,
        report="map",
        kind="enhancement",
    ),
    Output(
        "gadolinium",
        "outputnode.percent",
        "T1w",
        (("desc", "percent"),),
        "%",
        "percent enhancement 100 (post - pre) / max(pre, floor)",
        ENH_META,
        report="map",
        kind="enhancement",
    ),
    Output(
        "gadolinium",
        "outputnode.subtraction_tpl",
        "T1w",
        (("space", T), ("desc", "subtraction")),
        "arbitrary",
        "post - pre (normalised), in template space",
        ENH_META,
        kind="enhancement",
    ),
    Output(
        "gadolinium",
        "outputnode.percent_tpl",
        "T1w",
        (("space", T), ("desc", "percent")),
        "%",
        "percent enhancement 100 (post - pre) / max(pre, floor), in template space",
        ENH_META,
        report="map",
        kind="enhancement",
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


def _dce_map(field, suffix, units, description, drawn_tpl=True, requires=None):
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
        requires=requires,
    )
    tpl = Output(
        "dce",
        f"outputnode.{field}_tpl",
        suffix,
        (("space", T),),
        units,
        f"{description}, in template space",
        report="map" if drawn_tpl else None,
        requires=requires,
    )
    return native, tpl


T1_META = (("Method", "VFA (DESPOT1)"), ("SkullStripped", False))

DCE = (
    *_dce_map("ktrans", "Ktrans", "1/min", "volume transfer constant Ktrans"),
    *_dce_map("vp", "vp", "fraction", "plasma volume fraction"),
    # ve only from a model that estimates it (Patlak has no backflux term: no ve)
    *_dce_map(
        "ve",
        "ve",
        "fraction",
        "extravascular extracellular volume fraction",
        False,
        requires="ve_estimated",
    ),
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
    *_rois(
        "dce",
        "outputnode.rois",
        "regional Ktrans",
        "DCE",
        entities=(("space", "dce"),),
        meta=(("SpatialReference", Ctx("dce_ref")),),  # a non-template space: its image
    ),
)

TA = Ctx("territory_atlas")
FIT = (MERGE, Ctx("fit"))
#: the R2* maps: the fit settings, and not skull-stripped (required of derived images)
FIT_META = (FIT, ("SkullStripped", False))

USPIO = (
    Output(
        "uspio",
        "outputnode.dr2star",
        "R2starmap",
        (("desc", "delta"),),
        "1/s",
        "change of R2* with the agent (post-infusion R2* minus pre-infusion R2*) on the "
        "pre-infusion grid (valid fits only)",
        FIT_META,
        report="map",
        qc_reference=1,
        kind="dR2star",
    ),
    Output(
        "uspio",
        "outputnode.dr2star_tpl",
        "R2starmap",
        (("space", T), ("desc", "delta")),
        "1/s",
        "change of R2* with the agent (post-infusion R2* minus pre-infusion R2*), in "
        "template space",
        FIT_META,
        report="map",
        kind="dR2star",
    ),
    Output(
        "uspio",
        "outputnode.r2star_post",
        "R2starmap",
        (),
        "1/s",
        "post-infusion R2*, resampled once onto the pre-infusion grid",
        FIT_META,
    ),
    Output(
        "uspio",
        "outputnode.r2star_post_tpl",
        "R2starmap",
        (("space", T),),
        "1/s",
        "post-infusion R2*, in template space",
        FIT_META,
    ),
    Output(
        "uspio",
        "outputnode.nrmse_post",
        "residual",
        (("desc", "fit"),),
        "fraction",
        "fit residual RMS / S0 of the post series (its own grid)",
        FIT_META,
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
        FIT_META,
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
        FIT_META,
    ),
    Output(
        "uspio_pre",
        "outputnode.nrmse_pre",
        "residual",
        (("desc", "fit"),),
        "fraction",
        "fit residual RMS / S0",
        FIT_META,
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
