"""Gadolinium enhancement: post − pre subtraction and percent enhancement, with regional
tables over brain, meningeal, calvarial and sinus ROIs and "enhancement present" findings.

.. autofunction:: init_gadolinium_wf
"""

from __future__ import annotations

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from .utils import first, listify, merge_dicts, rigid_registration, to_template


def init_gadolinium_wf(
    agent: str,
    template: str,
    template_file: str,
    settings,
    participant_id: str,
    session_id: str,
    headache_side=None,
    covariates=None,
    min_voxels: int = 1,
    omp_nthreads: int = 1,
    mem_gb: float = 1.0,
    name: str = "gadolinium_wf",
):
    r"""
    Map contrast enhancement from a pre- and a post-gadolinium T1w of one session.

    #. The post-contrast T1w is divided by the bias field estimated on the pre-contrast T1w
       (the receive field is the same; estimating it again would remove enhancement).
    #. Rigid registration post → pre (``antsRegistration``, mutual information, metric in the
       dilated brain mask); the post image is resampled once, onto the pre grid.
    #. Intensity normalisation of post to pre (``reference-tissue``: median pre/post over
       non-enhancing white matter; ``global-median``; ``none``).
    #. Subtraction ``post − pre`` and percent enhancement ``100 (post − pre)/max(pre, floor)``,
       in native space and in template space.
    #. Regional table over the atlas and extra-cerebral ROIs (ipsi/contra and asymmetry index
       against the headache side) and the clusters above the finding threshold.

    Parameters
    ----------
    agent : :obj:`str`
        contrast agent (``ce-`` label)
    template, template_file : :obj:`str`
        template identifier and its T1w (reference grid of the template-space maps)
    settings : :class:`pipeline.config.GadoliniumSettings`
        the ``gadolinium`` section of the configuration
    participant_id, session_id : :obj:`str`
        identifiers written in the tables
    headache_side : :obj:`str` or None
        from ``sessions.tsv``
    covariates : :obj:`dict` or None
        columns carried into the regional tables (``regional.carry_columns``)
    min_voxels : :obj:`int`
        ROIs with fewer valid voxels get n/a statistics
    omp_nthreads : :obj:`int`
        maximum number of threads an individual process may use
    mem_gb : :obj:`float`
        memory of the largest node, GB
    name : :obj:`str`
        name of workflow (default: ``gadolinium_wf``)

    Inputs
    ------
    post
        the post-contrast T1w (raw)
    t1w_preproc, bias_field, brain_mask, wm_prob
        from the anatomical workflow (pre-contrast T1w grid)
    rois, rois_lut
        atlas + extra-cerebral ROIs (native) and their label table
    anat2tpl_xfm
        T1w → template composite transform
    pre_invalid
        mask of the pre-contrast T1w's non-finite voxels (the post-contrast image's are
        found here); both have no value (NaN) in the maps

    Outputs
    -------
    post_preproc
        post-contrast T1w, bias-corrected, registered and normalised (pre grid)
    subtraction, percent
        enhancement maps (native)
    subtraction_tpl, percent_tpl
        enhancement maps (template)
    post2pre_xfm
        rigid post → pre transform
    regions, findings
        regional table and findings table (TSV)
    provenance
        normalisation method and factor, floor, QC (sidecar fields)
    """
    from niworkflows.engine.workflows import LiterateWorkflow as Workflow
    from niworkflows.interfaces.morphology import BinaryDilation

    from pipeline.interfaces.ants import ApplyTransforms
    from pipeline.interfaces.gadolinium import (
        ApplyBiasField,
        EnhancementFindings,
        EnhancementMaps,
        RefineSinuses,
    )
    from pipeline.interfaces.images import NonFiniteMask

    from .regional import init_regional_wf

    reg = settings.registration
    workflow = Workflow(name=name)
    workflow.__desc__ = f"""\
The post-contrast ({agent}) T1w image was divided by the bias field estimated on the
pre-contrast T1w, rigidly registered to the pre-contrast T1w with `antsRegistration`
(mutual information) and resampled once onto its grid. {
        "A residual post/pre intensity field (a polynomial of degree "
        + str(settings.post_bias_degree)
        + " fitted robustly to log(post/pre) over the reference white matter) was divided out. "
        if settings.post_bias_degree
        else ""
    }Its intensities were normalised to
the pre-contrast image ({settings.normalisation}{
        " over white matter with template probability ≥ "
        + format(settings.reference_wm_threshold, "g")
        if settings.normalisation == "reference-tissue"
        else ""
    }); the subtraction
(post − pre) and the percent enhancement 100·(post − pre)/max(pre, floor), with the floor at
{settings.floor_fraction:g} × the brain median of the pre-contrast image, were computed
and brought to *{template}* space (linear interpolation). Regional means were computed over
the atlas, meningeal, calvarial and dural-sinus regions; clusters of voxels above {
        settings.finding_threshold_percent:g} %
enhancement{
        f" whose subtraction also exceeded {settings.finding_noise_sd:g} times its noise (the "
        "robust SD of the subtraction in the reference white matter)"
        if settings.finding_noise_sd
        else ""
    }{
        f" and whose enhancement exceeded the median of their compartment (brain or meningeal "
        f"band: the dura enhances in everyone) by {settings.finding_spread_sd:g} robust SDs"
        if settings.finding_spread_sd
        else ""
    }, with a volume of at least {settings.finding_min_volume_mm3:g} mm³{
        ", not shaped like a vessel (principal SDs s1 ≥ 3 s2, s2 ≤ "
        + format(settings.finding_vessel_radius_mm, "g")
        + " mm: large cortical veins)"
        if settings.finding_vessel_radius_mm
        else ""
    } within the
brain and the meningeal band (the sinuses, the pituitary, the choroid plexus in the
intracerebral CSF and the skull marrow enhance in everyone and were not searched) were
reported as enhancement findings.
"""
    inputnode = pe.Node(
        niu.IdentityInterface(
            fields=[
                "post",
                "t1w_preproc",
                "bias_field",
                "brain_mask",
                "wm_prob",
                "rois",
                "rois_lut",
                "anat2tpl_xfm",
                "pre_invalid",
                "pv_weights",
            ]
        ),
        name="inputnode",
    )
    outputnode = pe.Node(
        niu.IdentityInterface(
            fields=[
                "post_preproc",
                "subtraction",
                "percent",
                "subtraction_tpl",
                "percent_tpl",
                "post2pre_xfm",
                "regions",
                "findings",
                "rois",
                "provenance",
            ]
        ),
        name="outputnode",
    )

    nonfinite = pe.Node(NonFiniteMask(), name="nonfinite_post")
    unbias = pe.Node(ApplyBiasField(), name="apply_pre_bias")
    invalid_to_pre = pe.Node(
        ApplyTransforms(interpolation="NearestNeighbor", dimension=3), name="nonfinite_post_to_pre"
    )
    invalid = pe.Node(niu.Merge(2), name="invalid_voxels")
    dilate = pe.Node(BinaryDilation(radius=2), name="dilate_brain_mask")
    post2pre = pe.Node(
        rigid_registration(
            reg,
            omp_nthreads,
            sampling_percentage=0.5,
            initial_moving_transform_com=0,
            write_composite_transform=False,
        ),
        name="post_to_pre",
        n_procs=omp_nthreads,
        mem_gb=mem_gb,
    )
    # one resampling onto the pre grid; voxels outside the post image's field of view are NaN
    # (not 0, which would read as -100 % enhancement) and left out of maps and tables
    post_on_pre = pe.Node(
        ApplyTransforms(
            interpolation="LanczosWindowedSinc",
            dimension=3,
            float=True,
            outside_nan=True,
            num_threads=omp_nthreads,
        ),
        name="post_on_pre",
        n_procs=omp_nthreads,
        mem_gb=mem_gb,
    )
    maps = pe.Node(
        EnhancementMaps(
            method=settings.normalisation,
            wm_threshold=settings.reference_wm_threshold,
            floor_fraction=settings.floor_fraction,
            post_bias_degree=settings.post_bias_degree,
        ),
        name="enhancement_maps",
    )
    regional_wf = init_regional_wf(
        participant_id,
        session_id,
        "gadolinium",
        "enhancement",
        headache_side=headache_side,
        covariates=covariates,
        min_voxels=min_voxels,
        name="regional_wf",
    )
    sinuses = pe.Node(RefineSinuses(), name="refine_sinuses")
    provenance = pe.Node(
        niu.Function(function=merge_dicts, input_names=["a", "b"], output_names=["out"]),
        name="provenance",
    )
    findings = pe.Node(
        EnhancementFindings(
            threshold=settings.finding_threshold_percent,
            min_volume_mm3=settings.finding_min_volume_mm3,
            n_sd=settings.finding_noise_sd,
            vessel_radius_mm=settings.finding_vessel_radius_mm,
            n_spread=settings.finding_spread_sd,
            participant_id=participant_id,
            session_id=session_id,
        ),
        name="findings",
    )
    # onto the template linearly, like every value map: no ringing beside the sinuses and
    # the dura for the voxelwise group level to read as (negative) enhancement
    to_tpl = {}
    for key in ("percent", "subtraction"):
        to_tpl[key] = to_template(
            f"{key}_to_template",
            template_file,
            "Linear",
            num_threads=omp_nthreads,
            mem_gb=mem_gb,
        )
        workflow.connect([
            (maps, to_tpl[key], [(key, "input_image")]),
            (inputnode, to_tpl[key], [("anat2tpl_xfm", "transforms")]),
            (to_tpl[key], outputnode, [("output_image", f"{key}_tpl")]),
        ])  # fmt:skip

    workflow.connect([
        (inputnode, nonfinite, [("post", "in_file")]),
        (nonfinite, unbias, [("out_file", "in_file")]),
        (inputnode, unbias, [("bias_field", "bias_field")]),
        (nonfinite, invalid_to_pre, [("mask", "input_image")]),
        (inputnode, invalid_to_pre, [("t1w_preproc", "reference_image")]),
        (post2pre, invalid_to_pre, [("forward_transforms", "transforms")]),
        (inputnode, invalid, [("pre_invalid", "in1")]),
        (invalid_to_pre, invalid, [("output_image", "in2")]),
        (invalid, maps, [("out", "exclude")]),
        (inputnode, dilate, [("brain_mask", "in_mask")]),
        (inputnode, post2pre, [("t1w_preproc", "fixed_image")]),
        (unbias, post2pre, [("out_file", "moving_image")]),
        (dilate, post2pre, [(("out_mask", listify), "fixed_image_masks")]),
        (inputnode, maps, [("t1w_preproc", "pre"), ("brain_mask", "brain_mask"),
                           ("wm_prob", "wm_prob")]),
        (unbias, post_on_pre, [("out_file", "input_image")]),
        (inputnode, post_on_pre, [("t1w_preproc", "reference_image")]),
        (post2pre, post_on_pre, [("forward_transforms", "transforms")]),
        (post_on_pre, maps, [("output_image", "post")]),
        (maps, regional_wf, [("percent", "inputnode.in_file")]),
        (inputnode, sinuses, [("rois", "labels"), ("rois_lut", "lut")]),
        (maps, sinuses, [("subtraction", "subtraction"), ("noise_sd", "noise_sd")]),
        (sinuses, regional_wf, [("out_labels", "inputnode.labels")]),
        (inputnode, regional_wf, [("rois_lut", "inputnode.lut"),
                                  ("pv_weights", "inputnode.weights")]),
        (maps, provenance, [("provenance", "a")]),
        (sinuses, provenance, [("provenance", "b")]),
        (sinuses, outputnode, [("out_labels", "rois")]),
        (maps, findings, [("percent", "percent"), ("subtraction", "subtraction"),
                          ("noise_sd", "noise_sd")]),
        (sinuses, findings, [("out_labels", "labels")]),
        (inputnode, findings, [("rois_lut", "lut")]),
        (maps, outputnode, [("post_normalised", "post_preproc"),
                            ("subtraction", "subtraction"), ("percent", "percent")]),
        (provenance, outputnode, [("out", "provenance")]),
        (post2pre, outputnode, [(("forward_transforms", first), "post2pre_xfm")]),
        (regional_wf, outputnode, [("outputnode.out_table", "regions")]),
        (findings, outputnode, [("out_table", "findings")]),
    ])  # fmt:skip
    return workflow
