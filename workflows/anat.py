"""Anatomical workflow: bias correction, template registration, brain mask and atlas ROIs.

.. autofunction:: init_anat_wf
"""

from __future__ import annotations

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from pipeline.atlas import BUILTIN

from .utils import atlas_source, listify, pick


def atlas_files(
    template: str, resolution: int, atlas: str, atlas_desc=None, key: str = "atlas"
) -> dict:
    """``{key: dseg, key_lut: tsv}`` of a TemplateFlow atlas; ``{}`` for a built-in one."""
    from pipeline.templates import get_template_file

    if atlas in BUILTIN:
        return {}
    return {
        key: str(
            get_template_file(
                template,
                resolution,
                atlas=atlas,
                desc=atlas_desc,
                suffix="dseg",
                extension=".nii.gz",
            )
        ),
        f"{key}_lut": str(
            get_template_file(
                template, None, atlas=atlas, desc=atlas_desc, suffix="dseg", extension=".tsv"
            )
        ),
    }


def template_inputs(template: str, resolution: int, atlas: str, atlas_desc=None) -> dict:
    """Files the anatomical workflow needs from TemplateFlow (resolved before the run)."""
    from pipeline.templates import get_template_file

    files = {
        "template": get_template_file(template, resolution, desc="brain", suffix="T1w"),
        "template_mask": get_template_file(template, resolution, desc="brain", suffix="mask"),
        "gm_probseg": get_template_file(template, resolution, label="GM", suffix="probseg"),
        "wm_probseg": get_template_file(template, resolution, label="WM", suffix="probseg"),
    }
    files = {k: str(v) for k, v in files.items()}
    return {**files, **atlas_files(template, resolution, atlas, atlas_desc)}


def init_anat_wf(
    template: str,
    template_files: dict,
    settings,
    omp_nthreads: int,
    mem_gb: float = 1.0,
    name: str = "anat_wf",
):
    r"""
    Bias-correct the T1w, register it to a template and bring the atlas to native space.

    #. N4 bias-field correction of the T1w.
    #. Registration T1w → template (rigid, affine, SyN; ANTs ``antsRegistration``) with the
       metric restricted to the dilated template brain mask.
    #. Brain mask: the template brain mask brought to the T1w by the inverse transform
       (linear interpolation, thresholded).
    #. Atlas labels brought to the T1w by the inverse transform (nearest neighbour).
    #. Extra-cerebral ROIs in native space: meningeal and calvarial bands split by lobe and
       hemisphere after the nearest atlas region, and the dural venous sinuses (template
       prior brought to the T1w), removed from both bands.
    #. The template white-matter probability map brought to the T1w (reference tissue).
    #. Non-finite (NaN/Inf) T1w voxels are set to 0 for N4 and ANTs and removed from the
       brain mask and every label image.

    Parameters
    ----------
    template : :obj:`str`
        TemplateFlow identifier (e.g. ``MNI152NLin2009cAsym``)
    template_files : :obj:`dict`
        paths from :func:`template_inputs` (``template``, ``template_mask``, ``gm_probseg``,
        ``wm_probseg`` and, for a TemplateFlow atlas, ``atlas``/``atlas_lut``)
    settings : :class:`pipeline.config.AnatSettings`
        the ``anat`` section of the configuration
    omp_nthreads : :obj:`int`
        maximum number of threads an individual process may use
    mem_gb : :obj:`float`
        memory of the largest node, GB
    name : :obj:`str`
        name of workflow (default: ``anat_wf``)

    Inputs
    ------
    t1w
        the T1w image (NIfTI)

    Outputs
    -------
    t1w_preproc
        bias-corrected T1w (native space)
    t1w_mask
        brain mask (native space)
    t1w_tpl
        bias-corrected T1w resampled to the template
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
        white-matter probability (native space)
    bias_field
        the estimated bias field
    t1w_invalid
        mask of the T1w's non-finite input voxels (excluded from mask and labels)
    provenance
        ``NonFiniteVoxels`` when there are any (sidecar fields)
    """
    from niworkflows.engine.workflows import LiterateWorkflow as Workflow
    from niworkflows.interfaces.morphology import BinaryDilation
    from niworkflows.interfaces.nibabel import Binarize

    from pipeline.interfaces.ants import (
        ANTS_VERSION,
        ApplyTransforms,
        N4BiasFieldCorrection,
        Registration,
    )
    from pipeline.interfaces.images import ExcludeVoxels, NonFiniteMask
    from pipeline.interfaces.regional import ExtracerebralROIs, SinusPrior

    n4s = settings.n4
    reg = settings.registration
    atlas = settings.atlas
    workflow = Workflow(name=name)
    workflow.__desc__ = f"""\
The T1-weighted (T1w) image was corrected for intensity non-uniformity with
`N4BiasFieldCorrection` [@n4] (ANTs {ANTS_VERSION}, run in-process through antspyx). It was then
spatially normalised to the *{template}* template (TemplateFlow [@templateflow]) by
nonlinear registration with `antsRegistration` [@ants] (rigid, affine and symmetric
normalisation (SyN) stages, {reg.syn_metric} metric for SyN, with the similarity restricted
to the template brain mask dilated by {reg.fixed_mask_dilation_mm:g} mm). A brain mask was
obtained by bringing the template brain mask to the T1w through the inverse transform
(linear interpolation, threshold {settings.brain_mask_threshold:g}), and the
*{atlas}* atlas labels were brought to the T1w with nearest-neighbour interpolation.
Extra-cerebral regions were defined in native space: a meningeal band
({settings.meningeal_band_mm[0]:g}–{settings.meningeal_band_mm[1]:g} mm outside the
brain mask) and a calvarial band ({settings.calvarial_band_mm[0]:g}–
{settings.calvarial_band_mm[1]:g} mm), each split by lobe and hemisphere after the nearest
atlas region, and the superior sagittal and transverse sinuses (a geometric prior in template
space brought to the T1w), which were excluded from both bands. Voxels without a finite
value in the input images, if any, were set to zero for registration and excluded from the
brain mask, every region and every quantitative map (their number is in the sidecars).
"""
    inputnode = pe.Node(niu.IdentityInterface(fields=["t1w"]), name="inputnode")
    outputnode = pe.Node(
        niu.IdentityInterface(
            fields=[
                "t1w_preproc",
                "t1w_mask",
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
                "provenance",
            ]
        ),
        name="outputnode",
    )

    # NaN/Inf voxels of the T1w: 0 for N4 and ANTs, then removed from the brain mask and
    # every label image (so from every regional table on this T1w and the grids it feeds)
    nonfinite = pe.Node(NonFiniteMask(), name="nonfinite_t1w")
    labels = pe.Node(niu.Merge(3), name="masks_and_labels")
    exclude = pe.Node(ExcludeVoxels(), name="exclude_nonfinite")

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

    import nibabel as nb

    zoom = float(min(nb.load(template_files["template_mask"]).header.get_zooms()[:3]))
    dilate = pe.Node(
        BinaryDilation(
            in_mask=template_files["template_mask"],
            radius=max(1, int(round(reg.fixed_mask_dilation_mm / zoom))),
        ),
        name="dilate_tpl_mask",
    )

    registration = pe.Node(
        Registration(
            fixed_image=template_files["template"],
            dimension=3,
            initial_moving_transform_com=1,
            transforms=["Rigid", "Affine", "SyN"],
            transform_parameters=[(0.1,), (0.1,), (reg.syn_gradient_step, 3.0, 0.0)],
            metric=["MI", "MI", reg.syn_metric],
            metric_weight=[1.0] * 3,
            radius_or_number_of_bins=[32, 32, 32 if reg.syn_metric == "MI" else 4],
            sampling_strategy=["Regular", "Regular", "None"],
            sampling_percentage=[0.25, 0.25, 1.0],
            number_of_iterations=[reg.rigid_iterations, reg.affine_iterations, reg.syn_iterations],
            shrink_factors=[reg.shrink_factors] * 3,
            smoothing_sigmas=[reg.smoothing_sigmas] * 3,
            sigma_units=["vox"] * 3,
            convergence_threshold=[1e-6] * 3,
            convergence_window_size=[10] * 3,
            winsorize_lower_quantile=0.005,
            winsorize_upper_quantile=0.995,
            write_composite_transform=True,
            collapse_output_transforms=True,
            output_warped_image=True,
            float=True,
            num_threads=omp_nthreads,
        ),
        name="registration",
        n_procs=omp_nthreads,
        mem_gb=mem_gb * 2,
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
    binarize = pe.Node(Binarize(thresh_low=settings.brain_mask_threshold), name="binarize")
    atlas_to_t1w = pe.Node(
        ApplyTransforms(interpolation="NearestNeighbor", dimension=3, num_threads=omp_nthreads),
        name="atlas_to_t1w",
        mem_gb=mem_gb,
    )
    atlas_src = atlas_source(atlas, template_files)

    wm_to_t1w = pe.Node(
        ApplyTransforms(
            input_image=template_files["wm_probseg"],
            interpolation="Linear",
            dimension=3,
            float=True,
            num_threads=omp_nthreads,
        ),
        name="wm_to_t1w",
        mem_gb=mem_gb,
    )
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
        ),
        name="extracerebral_rois",
    )

    workflow.connect([
        (inputnode, nonfinite, [("t1w", "in_file")]),
        (nonfinite, n4, [("out_file", "input_image")]),
        (nonfinite, exclude, [("mask", "exclude")]),
        (binarize, labels, [("out_mask", "in1")]),
        (atlas_to_t1w, labels, [("output_image", "in2")]),
        (extracerebral, labels, [("out_labels", "in3")]),
        (labels, exclude, [("out", "in_files")]),
        (exclude, outputnode, [(("out_files", pick, 0), "t1w_mask"),
                               (("out_files", pick, 1), "atlas_native"),
                               (("out_files", pick, 2), "rois_native")]),
        (nonfinite, outputnode, [("mask", "t1w_invalid"), ("provenance", "provenance")]),
        (n4, wm_to_t1w, [("output_image", "reference_image")]),
        (registration, wm_to_t1w, [("inverse_composite_transform", "transforms")]),
        (sinus_tpl, sinus_to_t1w, [("out_file", "input_image")]),
        (n4, sinus_to_t1w, [("output_image", "reference_image")]),
        (registration, sinus_to_t1w, [("inverse_composite_transform", "transforms")]),
        (binarize, extracerebral, [("out_mask", "brain_mask")]),
        (atlas_to_t1w, extracerebral, [("output_image", "atlas")]),
        (atlas_src, extracerebral, [("lut", "lut")]),
        (sinus_to_t1w, extracerebral, [("output_image", "sinus")]),
        (extracerebral, outputnode, [("out_lut", "rois_lut")]),
        (wm_to_t1w, outputnode, [("output_image", "wm_prob")]),
        (n4, registration, [("output_image", "moving_image")]),
        (dilate, registration, [(("out_mask", listify), "fixed_image_masks")]),
        (n4, mask_to_t1w, [("output_image", "reference_image")]),
        (registration, mask_to_t1w, [("inverse_composite_transform", "transforms")]),
        (mask_to_t1w, binarize, [("output_image", "in_file")]),
        (n4, atlas_to_t1w, [("output_image", "reference_image")]),
        (atlas_src, atlas_to_t1w, [("atlas", "input_image")]),
        (registration, atlas_to_t1w, [("inverse_composite_transform", "transforms")]),
        (n4, outputnode, [("output_image", "t1w_preproc"), ("bias_image", "bias_field")]),
        (registration, outputnode, [("warped_image", "t1w_tpl"),
                                    ("composite_transform", "anat2tpl_xfm"),
                                    ("inverse_composite_transform", "tpl2anat_xfm")]),
        (atlas_src, outputnode, [("lut", "atlas_lut")]),
    ])  # fmt:skip
    return workflow
