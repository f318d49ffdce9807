"""The PET and SPECT derivatives (declared once; read through
:mod:`pipeline.derivatives.registry`)."""

from __future__ import annotations

from .spec import Ctx, Output, T, _regions, _xfm

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
        # BIDS has label images for anat/func/dwi only, not beside a PET series
        # (the validator ignores it by folder: a name pattern with trc- does not match)
        bidsignore=("**/pet/*_dseg.*",),
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
