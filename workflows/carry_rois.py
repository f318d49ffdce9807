"""Carrying the reference session's atlas labels and ROIs to another session's T1w
(``anat.same_rois_across_sessions``), inside the anatomical workflow."""

from __future__ import annotations

from types import SimpleNamespace

from nipype.pipeline import engine as pe

from .utils import rigid_registration


def carry_rois(workflow, reg, omp_nthreads, mem_gb):
    """Atlas labels and extra-cerebral ROIs of the reference session, brought to this
    session's T1w by a rigid registration of the extracted brains (this session → the
    reference; its inverse brings the labels back, nearest neighbour)."""
    from pipeline.interfaces.ants import ApplyTransforms

    inputnode = workflow.get_node("inputnode")
    outputnode = workflow.get_node("outputnode")
    labels = workflow.get_node("masks_and_labels")
    n4 = workflow.get_node("n4") or workflow.get_node("reused_t1w")  # --derivatives
    skull_stripped = workflow.get_node("skull_stripped")
    # the anatomical registration's rigid schedule (its levels), started at the centres of mass
    levels = SimpleNamespace(
        iterations=reg.rigid_iterations,
        shrink_factors=reg.shrink_factors,
        smoothing_sigmas=reg.smoothing_sigmas,
    )
    to_reference = pe.Node(
        rigid_registration(levels, omp_nthreads, initial_moving_transform_com=1),
        name="to_reference_session",
        mem_gb=mem_gb,
    )
    carried = {}
    for field in ("atlas", "rois"):
        carried[field] = pe.Node(
            ApplyTransforms(
                interpolation="NearestNeighbor",
                dimension=3,
                invert_transform_flags=[True],
                num_threads=omp_nthreads,
            ),
            name=f"{field}_from_reference",
            mem_gb=mem_gb,
        )
        workflow.connect([
            (inputnode, carried[field], [(f"ref_{field}", "input_image")]),
            (n4, carried[field], [("output_image", "reference_image")]),
            (to_reference, carried[field], [("forward_transforms", "transforms")]),
        ])  # fmt:skip
    workflow.connect([
        (skull_stripped, to_reference, [("out_file", "moving_image")]),
        (inputnode, to_reference, [("ref_t1w_brain", "fixed_image")]),
        (carried["atlas"], labels, [("output_image", "in2")]),
        (carried["rois"], labels, [("output_image", "in3")]),
        (inputnode, outputnode, [("ref_rois_lut", "rois_lut")]),
    ])  # fmt:skip
