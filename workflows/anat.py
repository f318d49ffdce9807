"""Anatomical workflow: bias correction, template registration, brain mask and atlas ROIs.

.. autofunction:: init_anat_wf
"""

from __future__ import annotations

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from pipeline.atlas import BUILTIN
from pipeline.published_atlas import ATLASES as PUBLISHED

from .anat_nodes import mask_on_grid, passthrough, reused_transforms, template_registration
from .carry_rois import carry_rois
from .utils import atlas_source, listify, pick


def init_anat_wf(
    template: str,
    template_files: dict,
    settings,
    omp_nthreads: int,
    mem_gb: float = 1.0,
    label: str = "",
    reference_session: str | None = None,
    reuse=None,
    name: str = "anat_wf",
):
    r"""
    Bias-correct the T1w, extract and segment the brain, register it to a template and bring
    the atlas to native space, with quality control that fails loudly.

    #. N4 bias-field correction of the T1w head.
    #. Brain extraction of the head (deepbet, a convolutional network; any pose, storage
       order and field of view), or the non-zero voxels of an already extracted T1w
       (``skull_strip: skip``).
    #. Tissue segmentation (CSF, GM, WM; ANTs Atropos, k-means initialised, Markov random
       field) inside the extraction mask; the brain mask is GM+WM closed at the pial hull.
    #. Registration of the extracted brain to the template brain (rigid, affine, SyN; ANTs
       ``antsRegistration``) with the metric restricted to the dilated template brain mask.
    #. Quality control: the template brain mask brought to the T1w must overlap the
       participant's brain mask, its volume ratio (the registration's scaling) and the brain
       volume must be plausible; otherwise the step fails with one line (or, with
       ``qc.fail: false``, the outputs carry the failure).
    #. Atlas labels brought to the T1w by the inverse transform (nearest neighbour).
    #. Extra-cerebral ROIs in native space: meningeal and calvarial bands outside the brain
       mask split by lobe and hemisphere after the nearest atlas region, and the dural venous
       sinuses (template prior brought to the T1w), removed from both bands.
    #. Non-finite (NaN/Inf) T1w voxels are set to 0 for N4 and ANTs and removed from the
       brain mask and every label image.

    Parameters
    ----------
    template : :obj:`str`
        TemplateFlow identifier (e.g. ``MNI152NLin2009cAsym``)
    template_files : :obj:`dict`
        paths from :func:`pipeline.templates.template_inputs` (``template``,
        ``template_mask``, ``gm_probseg``, ``wm_probseg`` and, for a TemplateFlow atlas,
        ``atlas``/``atlas_lut``)
    settings : :class:`pipeline.config.AnatSettings`
        the ``anat`` section of the configuration
    omp_nthreads : :obj:`int`
        maximum number of threads an individual process may use
    mem_gb : :obj:`float`
        memory of the largest node, GB
    label : :obj:`str`
        participant/session named in a quality-control failure
    reference_session : :obj:`str` or None
        another session of the participant whose atlas labels and extra-cerebral ROIs this
        session takes, through a rigid within-subject registration of the extracted brains
        (inputs ``ref_*``), so that a band is the same tissue in every session; ``None``:
        this session's own (the reference, or a single session)
    reuse : :class:`pipeline.bids.reuse.AnatomyReuse` or None
        sMRIPrep/fMRIPrep anatomy of this T1w (``--derivatives``): its bias-corrected T1w,
        brain mask, tissue classes and template transforms are used; N4, Atropos and the
        template registration are not run (the registration QC is, on the reused
        transforms); ``inputnode.t1w`` is then the reused preprocessed T1w
    name : :obj:`str`
        name of workflow (default: ``anat_wf``)

    Inputs
    ------
    t1w
        the T1w image (NIfTI)
    ref_t1w_brain, ref_atlas, ref_rois, ref_rois_lut
        with ``reference_session``: the reference session's extracted brain, atlas labels,
        extra-cerebral ROIs and their table

    Outputs
    -------
    t1w_preproc
        bias-corrected T1w head (native space)
    t1w_mask
        brain mask at the pial hull (native space)
    t1w_dseg
        tissue labels (1 CSF, 2 GM, 3 WM)
    t1w_probseg
        CSF, GM and WM probability maps (``csf_prob``, ``gm_prob``, ``wm_prob`` one by one)
    t1w_brain
        bias-corrected, extracted brain (native space)
    t1w_tpl
        bias-corrected, extracted brain resampled to the template
    anat2tpl_xfm
        composite transform T1w → template (ITK HDF5)
    tpl2anat_xfm
        composite transform template → T1w (ITK HDF5)
    atlas_native
        atlas labels in native space
    atlas_lut
        label table (TSV)
    rois_native
        atlas labels plus meningeal/calvarial bands and sinuses (native space)
    rois_lut
        their label table (TSV)
    wm_prob
        the participant's white-matter probability (native space)
    pv_weights
        partial-volume weights of the regional means: 1 − (GM + WM) outside the brain mask
    bias_field
        the estimated bias field
    t1w_invalid
        mask of the T1w's non-finite input voxels (excluded from mask and labels)
    qc_report
        registration QC (JSON: values, ranges, failures)
    provenance
        ``NonFiniteVoxels`` when there are any, and ``RegistrationQC`` (sidecar fields)
    """
    from niworkflows.engine.workflows import LiterateWorkflow as Workflow
    from niworkflows.interfaces.nibabel import ApplyMask

    from pipeline.interfaces.anat import (
        BiasFieldFromPair,
        BrainExtraction,
        NonZeroMask,
        RegistrationQC,
        ReusedSegmentation,
        TissueSegmentation,
        deepbet_version,
    )
    from pipeline.interfaces.ants import (
        ANTS_VERSION,
        ApplyTransforms,
        N4BiasFieldCorrection,
    )
    from pipeline.interfaces.images import ExcludeVoxels, NonFiniteMask
    from pipeline.interfaces.regional import (
        ExtracerebralROIs,
        PartialVolumeWeights,
        SinusPrior,
        TemplateZ,
    )

    from .utils import merge_dicts

    n4s = settings.n4
    reg = settings.registration
    seg = settings.segmentation
    qc = settings.qc
    atlas = settings.atlas
    workflow = Workflow(name=name)
    if settings.atlas_file:
        atlas_text = f"The *{atlas}* atlas (the study's own file, in template space)"
    elif atlas in PUBLISHED:
        atlas_text = (
            f"The *{atlas}* atlas (Harvard–Oxford cortical and subcortical probabilistic "
            "atlases [@harvardoxford] merged into lobes and structures by a documented table, "
            "with the cerebellum and white matter completed on FSL's MNI152 brain, and placed "
            "on the template by an ANTs SyN registration of FSL's MNI152 brain to it)"
        )
    elif atlas in BUILTIN:
        atlas_text = f"The *{atlas}* atlas (approximate: geometric regions in MNI millimetres)"
    else:
        atlas_text = f"The *{atlas}* atlas (TemplateFlow)"
    calvarium_text = (
        "; outside the intracranial mask, at least "
        f"{settings.scalp_mm:g} mm inside the skin, and over the vault only: the direction "
        "from the nearest brain voxel not more than 60° below the template's horizontal, "
        "which leaves out the orbits, the petrous bone and the skull base"
        if settings.skull_strip != "skip"
        else ""
    )
    if settings.skull_strip == "deepbet":
        extraction = (
            f"The brain was extracted from the head with *deepbet* {deepbet_version()} "
            "[@deepbet], a pair of convolutional networks run on the CPU"
        )
    else:
        extraction = (
            "The T1w was already brain-extracted (`skull_strip: skip`): its non-zero voxels "
            "(holes filled, largest component) were taken as the extraction mask"
        )
    if reuse is not None:
        steps = f"""\
The anatomical preprocessing of the T1-weighted (T1w) image was reused from
*{reuse.generated_by}* (BIDS derivatives; files {", ".join(f"`{f}`" for f in reuse.relative())}):
its bias-corrected T1w, brain mask, tissue classes (relabelled to CSF, GM, WM) and
tissue probabilities, and its composite transforms to and from the *{template}* template;
inflamap did not rerun bias correction, segmentation or the template registration. The
bias field that tool removed was recovered as the ratio of the T1w as acquired to the reused
one (a Gaussian-smoothed field, 5 mm, where they disagree by more than 5 % and outside
the head), for the correction of the post-contrast T1w below.
{extraction} (on the T1w as acquired, its mask then taken to the reused T1w's grid), for
the intracranial extent of the calvarial band.
The reused registration was checked: the template brain mask"""
    else:
        steps = None
    workflow.__desc__ = f"""\
The T1-weighted (T1w) image was corrected for intensity non-uniformity with
`N4BiasFieldCorrection` [@n4] (ANTs {ANTS_VERSION}, run in-process through antspyx).
{extraction}. Within that mask the tissues were segmented into cerebrospinal fluid (CSF),
grey matter (GM) and white matter (WM) with `Atropos` [@atropos] (k-means initialisation,
Markov random field weight {seg.mrf_smoothing:g}, {seg.iterations} iterations); the brain mask
is the union of GM and WM closed with a {seg.closing_mm:g} mm radius and with holes filled.
The extracted brain was spatially normalised to the *{template}* template (TemplateFlow
[@templateflow]) by nonlinear registration with `antsRegistration` [@ants] (rigid, affine
and symmetric normalisation (SyN) stages, {reg.syn_metric} metric for SyN, with the
similarity restricted to the template brain mask dilated by
{reg.fixed_mask_dilation_mm:g} mm). Every registration was checked: the template brain mask
brought to the T1w had to overlap the participant's brain mask (Dice ≥ {qc.min_mask_dice:g}),
its volume ratio (the registration's scaling) to lie in [{qc.volume_ratio[0]:g},
{qc.volume_ratio[1]:g}] and the brain volume in [{qc.brain_volume_ml[0]:g},
{qc.brain_volume_ml[1]:g}] ml. {atlas_text} was brought to the T1w with
nearest-neighbour interpolation and restricted to the brain mask; the CSF inside the brain
mask (ventricles with the choroid plexus, deep sulci) formed its own region. Extra-cerebral
regions were defined in native space: a meningeal band
({settings.meningeal_band_mm[0]:g}–{settings.meningeal_band_mm[1]:g} mm outside the brain
mask) and a calvarial band ({settings.calvarial_band_mm[0]:g}–{settings.calvarial_band_mm[1]:g}
mm{calvarium_text}), each split by lobe and hemisphere after the nearest atlas region, and
the dural venous sinuses (superior sagittal, transverse, straight, sigmoid) and the cavernous
sinuses with the pituitary (geometric priors in template space brought to the T1w), which
were excluded from both bands. Voxels without a finite
value in the input images, if any, were set to zero for registration and excluded from the
brain mask, every region and every quantitative map (their number is in the sidecars).
"""
    if steps:  # the reused steps replace N4, Atropos and the registration
        marker = "Every registration was checked: the template brain mask"
        workflow.__desc__ = steps + workflow.__desc__.split(marker, 1)[1]
    if reference_session:
        workflow.__desc__ += f"""\
To make every region the same tissue in every session, the atlas labels and extra-cerebral
regions of this session were those of session *{reference_session}*, brought to this T1w by a
rigid registration of the extracted brains (mutual information; nearest-neighbour
interpolation).
"""
    inputnode = pe.Node(
        niu.IdentityInterface(
            fields=["t1w", "ref_t1w_brain", "ref_atlas", "ref_rois", "ref_rois_lut"]
        ),
        name="inputnode",
    )
    outputnode = pe.Node(
        niu.IdentityInterface(
            fields=[
                "t1w_preproc",
                "t1w_mask",
                "t1w_dseg",
                "t1w_probseg",
                "t1w_brain",
                "csf_prob",
                "pv_weights",
                "gm_prob",
                "t1w_tpl",
                "anat2tpl_xfm",
                "tpl2anat_xfm",
                "atlas_native",
                "atlas_lut",
                "rois_native",
                "rois_lut",
                "wm_prob",
                "bias_field",
                "t1w_invalid",
                "qc_report",
                "provenance",
            ]
        ),
        name="outputnode",
    )

    # NaN/Inf voxels of the T1w: 0 for N4 and ANTs, then removed from the brain mask and
    # every label image (so from every regional table on this T1w and the grids it feeds)
    nonfinite = pe.Node(NonFiniteMask(), name="nonfinite_t1w")
    labels = pe.Node(niu.Merge(4), name="masks_and_labels")
    exclude = pe.Node(ExcludeVoxels(), name="exclude_nonfinite")

    if reuse is not None:  # the reused T1w is already bias-corrected
        n4 = passthrough("reused_t1w")
    else:
        n4 = pe.Node(
            N4BiasFieldCorrection(
                dimension=3,
                save_bias=True,
                copy_header=True,
                n_iterations=n4s.iterations,
                convergence_threshold=n4s.convergence_threshold,
                shrink_factor=n4s.shrink_factor,
                bspline_fitting_distance=n4s.bspline_fitting_distance,
                num_threads=omp_nthreads,
            ),
            name="n4",
            n_procs=omp_nthreads,
            mem_gb=mem_gb,
        )
    if settings.skull_strip == "deepbet":
        brain_extraction = pe.Node(
            BrainExtraction(num_threads=omp_nthreads),
            name="brain_extraction",
            n_procs=omp_nthreads,
            mem_gb=mem_gb * 3,
        )
    else:
        brain_extraction = pe.Node(NonZeroMask(), name="brain_extraction")
    if reuse is not None:
        segmentation = pe.Node(
            ReusedSegmentation(
                dseg=reuse.dseg, probseg=list(reuse.probseg), brain_mask=reuse.brain_mask
            ),
            name="reused_segmentation",
        )
    else:
        segmentation = pe.Node(
            TissueSegmentation(
                mrf_smoothing=seg.mrf_smoothing,
                iterations=seg.iterations,
                closing_mm=seg.closing_mm,
                num_threads=omp_nthreads,
            ),
            name="segmentation",
            n_procs=omp_nthreads,
            mem_gb=mem_gb * 2,
        )
    skull_stripped = pe.Node(ApplyMask(), name="skull_stripped")

    if reuse is not None:  # the reused transforms stand in for the registration's outputs
        registration, to_template = reused_transforms(reuse, template_files, omp_nthreads, mem_gb)
    else:
        dilate, linear_registration, registration = template_registration(
            reg, template_files, omp_nthreads, mem_gb
        )

    mask_to_t1w = pe.Node(
        ApplyTransforms(
            input_image=template_files["template_mask"],
            interpolation="Linear",
            dimension=3,
            float=True,
            num_threads=omp_nthreads,
        ),
        name="mask_to_t1w",
        mem_gb=mem_gb,
    )
    registration_qc = pe.Node(
        RegistrationQC(
            template_mask=template_files["template_mask"],
            ranges=qc.ranges(),
            threshold=settings.brain_mask_threshold,
            ignore_failures=not qc.fail,
            label=label,
        ),
        name="registration_qc",
    )
    provenance = pe.Node(
        niu.Function(function=merge_dicts, input_names=["a", "b"], output_names=["out"]),
        name="provenance",
    )
    atlas_to_t1w = pe.Node(
        ApplyTransforms(interpolation="NearestNeighbor", dimension=3, num_threads=omp_nthreads),
        name="atlas_to_t1w",
        mem_gb=mem_gb,
    )
    atlas_src = atlas_source(atlas, template_files)

    sinus_tpl = pe.Node(SinusPrior(brain_mask=template_files["template_mask"]), name="sinus_prior")
    sinus_to_t1w = pe.Node(
        ApplyTransforms(interpolation="NearestNeighbor", dimension=3, num_threads=omp_nthreads),
        name="sinus_to_t1w",
        mem_gb=mem_gb,
    )
    extracerebral = pe.Node(
        ExtracerebralROIs(
            meningeal_mm=tuple(settings.meningeal_band_mm),
            calvarial_mm=tuple(settings.calvarial_band_mm),
            sinus_margin_mm=settings.sinus_margin_mm,
            scalp_mm=settings.scalp_mm,
        ),
        name="extracerebral_rois",
    )
    pv_weights = pe.Node(PartialVolumeWeights(), name="pv_weights")
    # the template's vertical in the T1w: keeps the calvarial band on the vault
    template_z = pe.Node(TemplateZ(brain_mask=template_files["template_mask"]), name="template_z")
    template_z_to_t1w = pe.Node(
        ApplyTransforms(
            interpolation="Linear",
            dimension=3,
            float=True,
            outside_nan=True,
            num_threads=omp_nthreads,
        ),
        name="template_z_to_t1w",
        mem_gb=mem_gb,
    )

    if reuse is not None:
        # the reused T1w is the image labelled; the raw one gives the bias field and, as in
        # a run of its own, the head the brain extraction sees (its mask on the reused grid)
        nonfinite.inputs.in_file = reuse.t1w_preproc
        raw_finite = pe.Node(NonFiniteMask(), name="nonfinite_raw_t1w")
        field = pe.Node(BiasFieldFromPair(), name="reused_bias_field", mem_gb=mem_gb)
        extraction = mask_on_grid("extraction_on_reused_grid")
        workflow.connect([
            (inputnode, raw_finite, [("t1w", "in_file")]),
            (raw_finite, field, [("out_file", "raw")]),
            (nonfinite, field, [("out_file", "corrected")]),
            (field, outputnode, [("bias_image", "bias_field")]),
            (raw_finite, brain_extraction, [("out_file", "in_file")]),
            (brain_extraction, extraction, [("out_mask", "mask")]),
            (nonfinite, extraction, [("out_file", "reference")]),
        ])  # fmt:skip
    else:
        extraction = brain_extraction
        workflow.connect([
            (inputnode, nonfinite, [("t1w", "in_file")]),
            (nonfinite, brain_extraction, [("out_file", "in_file")]),
        ])  # fmt:skip
    workflow.connect([
        (nonfinite, n4, [("out_file", "input_image")]),
        (nonfinite, exclude, [("mask", "exclude")]),
        (n4, skull_stripped, [("output_image", "in_file")]),
        (segmentation, skull_stripped, [("brain_mask", "in_mask")]),
        (n4, mask_to_t1w, [("output_image", "reference_image")]),
        (registration, mask_to_t1w, [("inverse_composite_transform", "transforms")]),
        (segmentation, registration_qc, [("brain_mask", "brain_mask")]),
        (segmentation, pv_weights, [("brain_mask", "brain_mask"),
                                    (("out_probseg", pick, 1), "gm_prob"),
                                    (("out_probseg", pick, 2), "wm_prob")]),
        (pv_weights, outputnode, [("out_file", "pv_weights")]),
        (mask_to_t1w, registration_qc, [("output_image", "template_mask_native")]),
        (nonfinite, provenance, [("provenance", "a")]),
        (registration_qc, provenance, [("provenance", "b")]),
        (segmentation, labels, [("brain_mask", "in1"), ("out_dseg", "in4")]),
        (labels, exclude, [("out", "in_files")]),
        (skull_stripped, outputnode, [("out_file", "t1w_brain")]),
        (exclude, outputnode, [(("out_files", pick, 0), "t1w_mask"),
                               (("out_files", pick, 1), "atlas_native"),
                               (("out_files", pick, 2), "rois_native"),
                               (("out_files", pick, 3), "t1w_dseg")]),
        (nonfinite, outputnode, [("mask", "t1w_invalid")]),
        (provenance, outputnode, [("out", "provenance")]),
        (registration_qc, outputnode, [("out_report", "qc_report")]),
        (segmentation, outputnode, [("out_probseg", "t1w_probseg"),
                                    (("out_probseg", pick, 0), "csf_prob"),
                                    (("out_probseg", pick, 1), "gm_prob"),
                                    (("out_probseg", pick, 2), "wm_prob")]),
        (n4, outputnode, [("output_image", "t1w_preproc")]),
        (registration, outputnode, [("warped_image", "t1w_tpl"),
                                    ("composite_transform", "anat2tpl_xfm"),
                                    ("inverse_composite_transform", "tpl2anat_xfm")]),
        (atlas_src, outputnode, [("lut", "atlas_lut")]),
    ])  # fmt:skip
    if reuse is not None:
        workflow.connect([
            (skull_stripped, to_template, [("out_file", "input_image")]),
            (to_template, registration, [("output_image", "warped_image")]),
        ])  # fmt:skip
    else:
        workflow.connect([
            (n4, segmentation, [("output_image", "in_file")]),
            (brain_extraction, segmentation, [("out_mask", "mask")]),
            (skull_stripped, linear_registration, [("out_file", "moving_image")]),
            (dilate, linear_registration, [(("out_mask", listify), "fixed_image_masks")]),
            (skull_stripped, registration, [("out_file", "moving_image")]),
            (linear_registration, registration,
             [("forward_transforms", "initial_moving_transform")]),
            (dilate, registration, [(("out_mask", listify), "fixed_image_masks")]),
            (n4, outputnode, [("bias_image", "bias_field")]),
        ])  # fmt:skip
    if reference_session:
        carry_rois(workflow, reg, omp_nthreads, mem_gb)
        return workflow
    workflow.connect([
        (extracerebral, labels, [("out_atlas", "in2"), ("out_labels", "in3")]),
        (sinus_tpl, sinus_to_t1w, [("out_file", "input_image")]),
        (n4, sinus_to_t1w, [("output_image", "reference_image")]),
        (registration, sinus_to_t1w, [("inverse_composite_transform", "transforms")]),
        (segmentation, extracerebral, [("brain_mask", "brain_mask"), ("out_dseg", "tissue")]),
        (atlas_to_t1w, extracerebral, [("output_image", "atlas")]),
        (atlas_src, extracerebral, [("lut", "lut")]),
        (sinus_to_t1w, extracerebral, [("output_image", "sinus")]),
        (template_z, template_z_to_t1w, [("out_file", "input_image")]),
        (n4, template_z_to_t1w, [("output_image", "reference_image")]),
        (registration, template_z_to_t1w, [("inverse_composite_transform", "transforms")]),
        (extracerebral, outputnode, [("out_lut", "rois_lut")]),
        (n4, atlas_to_t1w, [("output_image", "reference_image")]),
        (atlas_src, atlas_to_t1w, [("atlas", "input_image")]),
        (registration, atlas_to_t1w, [("inverse_composite_transform", "transforms")]),
    ])  # fmt:skip
    if settings.skull_strip != "skip":  # the T1w shows the skull: the band follows it
        workflow.connect([
            (n4, extracerebral, [("output_image", "t1w")]),
            (extraction, extracerebral, [("out_mask", "intracranial")]),
            (template_z_to_t1w, extracerebral, [("output_image", "template_z")]),
        ])  # fmt:skip
    return workflow
