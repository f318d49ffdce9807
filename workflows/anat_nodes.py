"""Node factories of the anatomical workflow (:mod:`workflows.anat`): the T1w → template
registration, and the nodes that stand in for N4, the registration and the brain-extraction
grid when sMRIPrep/fMRIPrep anatomy is reused (``--derivatives``)."""

from __future__ import annotations

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe


def template_registration(reg, template_files: dict, omp_nthreads: int, mem_gb: float):
    """``(dilate, linear_registration, registration)``: the template brain mask dilated by
    ``reg.fixed_mask_dilation_mm`` (the similarity's support), rigid and affine stages
    (sampled MI; the one-thread helper process, so that reruns agree), then SyN (dense
    sampling: the same result with any thread count) started from them; the composite
    transforms of the second call include the first's affine."""
    import nibabel as nb
    from niworkflows.interfaces.morphology import BinaryDilation

    from pipeline.interfaces.ants import Registration

    zoom = float(min(nb.load(template_files["template_mask"]).header.get_zooms()[:3]))
    dilate = pe.Node(
        BinaryDilation(
            in_mask=template_files["template_mask"],
            radius=max(1, int(round(reg.fixed_mask_dilation_mm / zoom))),
        ),
        name="dilate_tpl_mask",
    )

    # Rigid and affine stages (sampled MI; the one-thread helper process, so that reruns
    # agree), then SyN (dense sampling: the same result with any thread count) started from
    # them; the composite transforms of the second call include the first's affine.
    common = dict(
        fixed_image=template_files["template"],
        dimension=3,
        sigma_units=["vox"],
        convergence_threshold=[1e-6],
        convergence_window_size=[10],
        winsorize_lower_quantile=0.005,
        winsorize_upper_quantile=0.995,
        collapse_output_transforms=True,
        float=True,
        num_threads=omp_nthreads,
    )
    linear_registration = pe.Node(
        Registration(
            initial_moving_transform_com=1,
            transforms=["Rigid", "Affine"],
            transform_parameters=[(0.1,), (0.1,)],
            metric=["MI", "MI"],
            metric_weight=[1.0] * 2,
            radius_or_number_of_bins=[32, 32],
            sampling_strategy=["Regular", "Regular"],
            sampling_percentage=[0.25, 0.25],
            number_of_iterations=[reg.rigid_iterations, reg.affine_iterations],
            shrink_factors=[reg.shrink_factors] * 2,
            smoothing_sigmas=[reg.smoothing_sigmas] * 2,
            **{**common, "sigma_units": ["vox"] * 2, "convergence_threshold": [1e-6] * 2,
               "convergence_window_size": [10] * 2},
        ),
        name="linear_registration",
        mem_gb=mem_gb * 2,
    )  # fmt: skip
    registration = pe.Node(
        Registration(
            transforms=["SyN"],
            transform_parameters=[(reg.syn_gradient_step, 3.0, 0.0)],
            metric=[reg.syn_metric],
            metric_weight=[1.0],
            radius_or_number_of_bins=[32 if reg.syn_metric == "MI" else 4],
            sampling_strategy=["None"],
            sampling_percentage=[1.0],
            number_of_iterations=[reg.syn_iterations],
            shrink_factors=[reg.shrink_factors],
            smoothing_sigmas=[reg.smoothing_sigmas],
            write_composite_transform=True,
            output_warped_image=True,
            **common,
        ),
        name="registration",
        n_procs=omp_nthreads,
        mem_gb=mem_gb * 2,
    )
    return dilate, linear_registration, registration


def reused_transforms(reuse, template_files: dict, omp_nthreads: int, mem_gb: float):
    """``(transforms, to_template)``: an identity node with the registration's output names
    (``composite_transform``, ``inverse_composite_transform``, ``warped_image``) holding the
    reused transforms, and the node that brings the extracted T1w to the template with them
    (to be connected to ``transforms.warped_image``)."""
    from pipeline.interfaces.ants import ApplyTransforms

    transforms = pe.Node(
        niu.IdentityInterface(
            fields=["composite_transform", "inverse_composite_transform", "warped_image"]
        ),
        name="reused_transforms",
    )
    transforms.inputs.composite_transform = reuse.anat2tpl_xfm
    transforms.inputs.inverse_composite_transform = reuse.tpl2anat_xfm
    to_template = pe.Node(
        ApplyTransforms(
            reference_image=template_files["template"],
            transforms=[reuse.anat2tpl_xfm],
            interpolation="Linear",
            dimension=3,
            float=True,
            num_threads=omp_nthreads,
        ),
        name="t1w_to_template",
        mem_gb=mem_gb,
    )
    return transforms, to_template


def passthrough(name: str):
    """A node whose ``output_image`` is its ``input_image`` (the reused T1w, already
    bias-corrected, where N4's output would be)."""
    return pe.Node(
        niu.Function(function=_same, input_names=["input_image"], output_names=["output_image"]),
        name=name,
    )


def mask_on_grid(name: str):
    """A node bringing ``mask`` to the grid of ``reference`` (``out_mask``)."""
    return pe.Node(
        niu.Function(
            function=_mask_on_grid, input_names=["mask", "reference"], output_names=["out_mask"]
        ),
        name=name,
    )


def _same(input_image):
    """The reused, already bias-corrected T1w, passed on as the N4 output would be."""
    return input_image


def _mask_on_grid(mask, reference):
    """``mask`` on the grid of ``reference`` (nearest neighbour in scanner coordinates;
    the file itself when the grids agree)."""
    import os

    import nibabel as nb
    import numpy as np
    from nibabel.processing import resample_from_to

    m, ref = nb.load(mask), nb.load(reference)
    if m.shape[:3] == ref.shape[:3] and np.allclose(m.affine, ref.affine, atol=1e-3):
        return mask
    out = os.path.abspath("extraction_mask_on_reused_grid.nii.gz")
    moved = resample_from_to(m, (ref.shape[:3], ref.affine), order=0, cval=0)
    nb.Nifti1Image((np.asarray(moved.dataobj) > 0).astype(np.uint8), ref.affine).to_filename(out)
    return out
