"""The PET and SPECT derivatives (declared once; read through
:mod:`pipeline.derivatives.registry`)."""

from __future__ import annotations

from .spec import Ctx, Output, T, _regions, _xfm

PA = Ctx("pet_atlas")
SUV = "standardised uptake value, duration-weighted mean of the window's frames"
SUVR = "SUV divided by the reference region's SUV"
ON_T1W = (("SpatialReference", Ctx("t1w_ref")),)

#: PET maps are PET derivatives (``desc-SUV_pet``, ``desc-SUVR_pet``, like PETPrep's
#: ``desc-preproc_pet``): BIDS has no suffix for SUV(R); derived images say whether the skull
#: was stripped (it is not)
PET_META = (("SkullStripped", False),)


def _pet_map(field, kind, space, units, description, report, qc=None):
    entities = (("space", space),) if space is not None else ()
    meta = PET_META + (ON_T1W if space == "T1w" else ())
    return Output(
        "pet",
        f"outputnode.{field}",
        "pet",
        (*entities, ("desc", kind)),
        units,
        description,
        meta,
        report="map" if report else None,
        qc_reference=qc,
        kind=kind,
    )


PET = (
    _pet_map("suvr", "SUVR", None, "ratio", SUVR, True, qc=2),
    _pet_map("suv", "SUV", None, "g/mL", SUV, True, qc=1),
    _pet_map("suvr_t1w", "SUVR", "T1w", "ratio", f"{SUVR}, on the T1w grid", True),
    _pet_map("suv_t1w", "SUV", "T1w", "g/mL", f"{SUV}, on the T1w grid", True),
    _pet_map("suvr_tpl", "SUVR", T, "ratio", f"{SUVR}, in template space", True),
    _pet_map("suv_tpl", "SUV", T, "g/mL", f"{SUV}, in template space", False),
    Output(
        "pet",
        "outputnode.pet_ref",
        "pet",
        (("desc", "mean"),),
        description="motion-corrected, duration-weighted mean of the window's frames "
        "(image units)",
        meta=PET_META,
        report="reference",
        qc_reference=0,
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
