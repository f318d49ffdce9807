"""TSPO PET: SUV and SUVR maps from PET-BIDS, regional tables in the TSPO regions, the
meningeal and calvarial bands.

.. autofunction:: init_pet_wf
"""

from __future__ import annotations

from pathlib import Path

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe


def init_pet_wf(
    meta,
    template: str,
    template_files: dict,
    settings,
    participant_id: str,
    session_id: str,
    headache_side=None,
    covariates=None,
    min_voxels: int = 1,
    omp_nthreads: int = 1,
    reuse=None,
    name: str = "pet_wf",
):
    r"""
    SUV and SUVR of a (TSPO) PET series.

    #. Frames mostly inside the configured window after injection (default 60–90 min for
       [11C]PBR28) are selected; frames not decay-corrected are corrected to injection.
    #. Frame-to-frame motion correction: every selected frame rigidly registered to their
       duration-weighted mean (``antsRegistration``, mutual information); the aligned frames
       averaged with their durations as weights.
    #. PET → T1w rigid registration (mutual information).
    #. SUV = C / (dose / body weight) on the PET grid, with the dose at the images'
       decay-correction time; SUV brought to the T1w grid (one resampling).
    #. SUVR = SUV / mean SUV of the reference (whole brain, or atlas ROIs).
    #. Regional SUVR tables: the TSPO atlas regions, and the anatomical atlas with the
       meningeal and calvarial bands by lobe; ipsi/contra rows.
    #. SUV and SUVR in template space.
    #. Non-finite (NaN/Inf) voxels of any frame: 0 for ANTs, no value (NaN) in the SUV and
       SUVR maps on every grid (``NonFiniteVoxels`` in the sidecars).

    Parameters
    ----------
    meta : :class:`pipeline.metadata.PETMetadata`
        validated PET-BIDS metadata (dose, units, frames, body weight)
    template : :obj:`str`
        template identifier
    template_files : :obj:`dict`
        ``template`` (grid of template-space maps), ``gm_probseg``/``wm_probseg`` (built-in
        atlas) or ``pet_atlas``/``pet_atlas_lut`` (TemplateFlow atlas)
    settings : :class:`pipeline.config.PETSettings`
        the ``pet`` section of the configuration
    participant_id, session_id : :obj:`str`
        identifiers written in the tables
    headache_side : :obj:`str` or None
        from ``sessions.tsv``
    covariates : :obj:`dict` or None
        columns carried into the tables (e.g. ``tspo_genotype``)
    min_voxels : :obj:`int`
        ROIs with fewer valid voxels get n/a statistics
    omp_nthreads : :obj:`int`
        maximum number of threads an individual process may use
    reuse : :class:`pipeline.bids.reuse.PETReuse` or None
        PETPrep's motion correction of this series (``--derivatives``): its per-frame
        transforms and reference replace steps 2's registrations (one resampling per frame
        onto PETPrep's reference, as before); its transform to the T1w, when given, replaces
        step 3
    name : :obj:`str`
        name of workflow (default: ``pet_wf``)

    Inputs
    ------
    pet
        the PET series
    t1w_preproc, t1w_mask, rois, rois_lut, anat2tpl_xfm, tpl2anat_xfm
        from the anatomical workflow

    Outputs
    -------
    suv, suvr
        maps on the PET grid
    suv_t1w, suvr_t1w
        on the T1w grid
    suv_tpl, suvr_tpl
        in template space
    pet_ref
        motion-corrected mean PET (image units)
    pet2t1w_xfm
        rigid transform
    atlas_t1w, atlas_lut
        the TSPO atlas on the T1w grid (labels of ``regions_atlas``) and its table
    regions_atlas, regions_rois
        regional SUVR tables (TSPO atlas; anatomical atlas + bands)
    provenance
        frames used, reference, dose (sidecar fields)
    """
    from niworkflows.engine.workflows import LiterateWorkflow as Workflow

    from pipeline.interfaces.ants import ApplyTransforms
    from pipeline.interfaces.images import MaskMap, NonFiniteMask
    from pipeline.interfaces.pet import (
        FrameTransforms,
        SelectFrames,
        SUVMap,
        SUVRMap,
        WeightedAverage,
    )
    from pipeline.models.pet import frame_decay_factors

    from .regional import init_regional_wf
    from .utils import (
        FRAME_SAMPLING,
        atlas_source,
        first,
        frame_motion_correction,
        frames_on_reference,
        listify,
        merge_dicts,
        rigid_registration,
        to_template,
    )

    lo, hi = settings.window_min
    atlas = settings.atlas
    workflow = Workflow(name=name)
    reference = settings.suvr_reference.replace("_", " ")
    decay_note = (
        ""
        if meta.decay_corrected
        else " The frames, not decay-corrected by the scanner, were corrected to the "
        f"injection time ({meta.radionuclide}, half-life {meta.half_life_s:g} s)."
    )
    motion = (
        "Each selected frame was rigidly registered to their duration-weighted mean "
        f"(`antsRegistration`, mutual information on a regular {FRAME_SAMPLING:.0%} sample of "
        "the voxels) and the aligned frames were averaged with "
        "their durations as weights."
        if reuse is None
        else "The head-motion correction of "
        f"{reuse.generated_by} was reused: each selected frame was resampled once onto its "
        f"reference (`{Path(reuse.petref).name}`) with its frame's transform "
        f"(`{Path(reuse.hmc_xfm).name}`), and the aligned frames were averaged with their "
        "durations as weights."
    )
    coreg = (
        f"The transform of {reuse.generated_by} from that reference to the same T1w "
        f"(`{Path(reuse.pet2t1w_xfm).name}`) was reused."
        if reuse is not None and reuse.pet2t1w_xfm
        else "The average was rigidly registered to the T1w (mutual information)."
    )
    workflow.__desc__ = f"""\
The {meta.tracer_name} PET frames lying mostly within {lo:g}–{hi:g} min after injection
were selected.{decay_note} {motion} {coreg}
Standardised uptake values (SUV) were computed as the activity concentration divided by
the injected dose per body weight (dose at the images' decay-correction time)
[@boellaard2009], and SUV ratios (SUVR) relative to the {reference} mean on the T1w grid
[@lyoo2015]; the acquisition metadata were read as PET-BIDS [@petbids]. Regional SUVR was
summarised in the *{atlas}* regions and in the meningeal and calvarial bands by lobe, with
ipsilateral/contralateral labels for a lateralised headache; SUV and SUVR maps were brought
to *{template}* space.
"""
    inputnode = pe.Node(
        niu.IdentityInterface(
            fields=[
                "pet",
                "t1w_preproc",
                "t1w_mask",
                "rois",
                "rois_lut",
                "pv_weights",
                "anat2tpl_xfm",
                "tpl2anat_xfm",
            ]
        ),
        name="inputnode",
    )
    outputnode = pe.Node(
        niu.IdentityInterface(
            fields=[
                "suv",
                "suvr",
                "suv_t1w",
                "suvr_t1w",
                "suv_tpl",
                "suvr_tpl",
                "pet_ref",
                "pet2t1w_xfm",
                "atlas_t1w",
                "atlas_lut",
                "regions_atlas",
                "regions_rois",
                "provenance",
            ]
        ),
        name="outputnode",
    )

    select = pe.Node(
        SelectFrames(
            frame_start=meta.frame_start_s.tolist(),
            frame_duration=meta.frame_duration_s.tolist(),
            injection_start=meta.injection_start_s,
            window=(lo * 60.0, hi * 60.0),
            min_overlap=settings.min_frame_overlap,
        ),
        name="select_frames",
    )
    if not meta.decay_corrected:
        select.inputs.decay_factors = frame_decay_factors(
            meta.frame_start_s,
            meta.frame_duration_s,
            meta.half_life_s,
            reference_s=meta.injection_start_s,
        ).tolist()
    reg = settings.registration
    on_ref = frames_on_reference(omp_nthreads=omp_nthreads)
    if reuse is None:
        mc = frame_motion_correction(reg, omp_nthreads)
        workflow.connect([
            (select, mc, [("reference", "fixed_image"), ("frames", "moving_image")]),
            (select, on_ref, [("reference", "reference_image")]),
            (mc, on_ref, [("forward_transforms", "transforms")]),
        ])  # fmt:skip
    else:  # PETPrep's motion correction: its per-frame transforms onto its reference
        hmc = pe.Node(FrameTransforms(in_file=reuse.hmc_xfm), name="reused_hmc")
        on_ref.inputs.reference_image = reuse.petref
        workflow.connect([
            (select, hmc, [("selected", "selected")]),
            (hmc, on_ref, [("transforms", "transforms")]),
        ])  # fmt:skip
    average = pe.Node(WeightedAverage(), name="weighted_average")
    if reuse is not None and reuse.pet2t1w_xfm:
        to_t1w = pe.Node(
            niu.IdentityInterface(fields=["forward_transforms"]), name="reused_to_t1w"
        )
        to_t1w.inputs.forward_transforms = [reuse.pet2t1w_xfm]
    else:
        to_t1w = pe.Node(
            rigid_registration(reg, omp_nthreads, initial_moving_transform_com=1),
            name="pet_to_t1w",
            n_procs=omp_nthreads,
        )
        workflow.connect([
            (inputnode, to_t1w, [("t1w_preproc", "fixed_image")]),
            (average, to_t1w, [("out_file", "moving_image")]),
        ])  # fmt:skip
    suv = pe.Node(
        SUVMap(
            activity_scale=meta.activity_scale_bq_per_ml,
            dose_bq=meta.suv_dose_bq,
            body_weight_kg=meta.body_weight_kg,
        ),
        name="suv",
    )
    # voxels of the T1w grid outside the PET field of view: NaN, out of SUVR and tables
    suv_t1w = pe.Node(
        ApplyTransforms(interpolation="Linear", dimension=3, float=True, outside_nan=True),
        name="suv_to_t1w",
    )
    suvr = pe.Node(SUVRMap(reference=settings.suvr_reference), name="suvr")
    # NaN/Inf voxels (any frame): 0 for ANTs, NaN in the SUV maps on both grids
    nonfinite = pe.Node(NonFiniteMask(), name="nonfinite_pet")
    suv_masked = pe.Node(MaskMap(), name="suv_nonfinite")
    invalid_to_t1w = pe.Node(
        ApplyTransforms(interpolation="NearestNeighbor", dimension=3), name="nonfinite_to_t1w"
    )
    suv_t1w_masked = pe.Node(MaskMap(), name="suv_t1w_nonfinite")
    provenance = pe.Node(
        niu.Function(
            function=merge_dicts, input_names=["a", "b", "n_outside"], output_names=["out"]
        ),
        name="provenance",
    )
    atlas_src = atlas_source(atlas, template_files, key="pet_atlas", name="pet_atlas")
    atlas_to_t1w = pe.Node(
        ApplyTransforms(interpolation="NearestNeighbor", dimension=3), name="atlas_to_t1w"
    )
    tables = dict(headache_side=headache_side, covariates=covariates, min_voxels=min_voxels)
    regional_atlas = init_regional_wf(
        participant_id, session_id, "pet", "SUVR", **tables, name="regional_atlas_wf"
    )
    regional_rois = init_regional_wf(
        participant_id, session_id, "pet", "SUVR", **tables, name="regional_rois_wf"
    )
    tpl_xfms = pe.Node(niu.Merge(2), name="pet_to_template_xfms")
    workflow.connect([
        (inputnode, nonfinite, [("pet", "in_file")]),
        (nonfinite, select, [("out_file", "in_file")]),
        (suv, suv_masked, [("out_file", "in_file")]),
        (nonfinite, suv_masked, [(("mask", listify), "exclude")]),
        (nonfinite, invalid_to_t1w, [("mask", "input_image")]),
        (inputnode, invalid_to_t1w, [("t1w_preproc", "reference_image")]),
        (to_t1w, invalid_to_t1w, [("forward_transforms", "transforms")]),
        (suv_t1w, suv_t1w_masked, [("output_image", "in_file")]),
        (invalid_to_t1w, suv_t1w_masked, [(("output_image", listify), "exclude")]),
        (suvr, provenance, [("provenance", "a")]),
        (nonfinite, provenance, [("provenance", "b")]),
        (suv_t1w, provenance, [("n_outside", "n_outside")]),
        (select, on_ref, [("frames", "input_image")]),
        (on_ref, average, [("output_image", "in_files")]),
        (select, average, [("durations", "durations")]),
        (average, suv, [("out_file", "in_file")]),
        (suv_masked, suv_t1w, [("out_file", "input_image")]),
        (inputnode, suv_t1w, [("t1w_preproc", "reference_image")]),
        (to_t1w, suv_t1w, [("forward_transforms", "transforms")]),
        (suv_t1w_masked, suvr, [("out_file", "in_file")]),
        (suv_masked, suvr, [("out_file", "native")]),
        (inputnode, suvr, [("t1w_mask", "brain_mask"), ("rois", "rois"),
                           ("rois_lut", "lut")]),
        (atlas_src, atlas_to_t1w, [("atlas", "input_image")]),
        (inputnode, atlas_to_t1w, [("t1w_preproc", "reference_image"),
                                   ("tpl2anat_xfm", "transforms")]),
        (suvr, regional_atlas, [("out_file", "inputnode.in_file")]),
        (atlas_to_t1w, regional_atlas, [("output_image", "inputnode.labels")]),
        (atlas_src, regional_atlas, [("lut", "inputnode.lut")]),
        (suvr, regional_rois, [("out_file", "inputnode.in_file")]),
        (inputnode, regional_rois, [("pv_weights", "inputnode.weights"),
                                    ("rois", "inputnode.labels"),
                                    ("rois_lut", "inputnode.lut")]),
        (inputnode, tpl_xfms, [("anat2tpl_xfm", "in1")]),
        (to_t1w, tpl_xfms, [(("forward_transforms", first), "in2")]),
        (suv_masked, outputnode, [("out_file", "suv")]),
        (suv_t1w_masked, outputnode, [("out_file", "suv_t1w")]),
        (suvr, outputnode, [("native", "suvr"), ("out_file", "suvr_t1w")]),
        (provenance, outputnode, [("out", "provenance")]),
        (average, outputnode, [("out_file", "pet_ref")]),
        (to_t1w, outputnode, [(("forward_transforms", first), "pet2t1w_xfm")]),
        (atlas_to_t1w, outputnode, [("output_image", "atlas_t1w")]),
        (atlas_src, outputnode, [("lut", "atlas_lut")]),
        (regional_atlas, outputnode, [("outputnode.out_table", "regions_atlas")]),
        (regional_rois, outputnode, [("outputnode.out_table", "regions_rois")]),
    ])  # fmt:skip
    for src, field, out in ((suv_masked, "out_file", "suv_tpl"), (suvr, "native", "suvr_tpl")):
        node = to_template(f"{out}_to_template", template_files["template"])
        workflow.connect([
            (src, node, [(field, "input_image")]),
            (tpl_xfms, node, [("out", "transforms")]),
            (node, outputnode, [("output_image", out)]),
        ])  # fmt:skip
    return workflow
