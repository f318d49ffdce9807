"""99mTc-albumin SPECT: early and late acquisitions co-registered, late/early uptake ratio
and its regional table (meningeal band included).

.. autofunction:: init_spect_wf
"""

from __future__ import annotations

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe


def init_spect_wf(
    tracer: str,
    early_meta,
    late_meta,
    template: str,
    template_file: str,
    settings,
    participant_id: str,
    session_id: str,
    headache_side=None,
    covariates=None,
    min_voxels: int = 1,
    omp_nthreads: int = 1,
    name: str = "spect_wf",
):
    r"""
    Late/early uptake ratio of a blood-pool tracer (99mTc-albumin): albumin leaving the
    vessels through a leaky barrier accumulates between the early and the late scan.

    #. Each acquisition as count rate (counts / frame duration) or activity, decay-corrected
       to injection when the scanner did not.
    #. Late → early rigid registration, early → T1w rigid registration (mutual information).
    #. Late resampled once onto the early grid; ratio = late / early where the early image
       has counts (above a fraction of its 99th percentile).
    #. ROIs (atlas, meningeal/calvarial bands, sinuses) brought to the early grid; regional
       ratio table with ipsi/contra rows; the ratio map in template space.

    Parameters
    ----------
    tracer : :obj:`str`
        the ``trc-`` label
    early_meta, late_meta : :class:`pipeline.metadata.SPECTMetadata`
        timing and units of each acquisition
    template, template_file : :obj:`str`
        template identifier and its T1w (grid of the template-space map)
    settings : :class:`pipeline.config.SPECTSettings`
        the ``spect`` section of the configuration
    participant_id, session_id : :obj:`str`
        identifiers written in the tables
    headache_side : :obj:`str` or None
        from ``sessions.tsv``
    covariates : :obj:`dict` or None
        columns carried into the table
    min_voxels : :obj:`int`
        ROIs with fewer valid voxels get n/a statistics
    omp_nthreads : :obj:`int`
        maximum number of threads an individual process may use
    name : :obj:`str`
        name of workflow (default: ``spect_wf``)

    Inputs
    ------
    early, late
        the two acquisitions
    t1w_preproc, rois, rois_lut, anat2tpl_xfm
        from the anatomical workflow

    Outputs
    -------
    ratio, ratio_tpl
        late/early ratio on the early grid and in template space
    early2t1w_xfm, late2early_xfm
        rigid transforms
    regions
        regional ratio table
    provenance
        timing, decay factors, floor (sidecar fields)
    """
    from niworkflows.engine.workflows import LiterateWorkflow as Workflow

    from pipeline.interfaces.ants import ApplyTransforms
    from pipeline.interfaces.pet import LateEarlyRatio, SPECTCounts

    from .regional import init_regional_wf
    from .utils import (
        first,
        provenance_with_outside,
        pv_weights_to_grid,
        rigid_registration,
        rois_to_grid,
        to_template,
    )

    hours = (late_meta.start_s - late_meta.injection_start_s) / 3600.0
    minutes = (early_meta.start_s - early_meta.injection_start_s) / 60.0
    workflow = Workflow(name=name)
    workflow.__desc__ = f"""\
The early ({minutes:.0f} min) and late ({hours:.1f} h) {tracer} SPECT acquisitions were
converted to count rates and decay-corrected to the injection time
({early_meta.radionuclide}, half-life {early_meta.half_life_s / 3600:.2f} h) where the scanner
had not done so. The late acquisition was rigidly registered to the early one and the early
one to the T1w (`antsRegistration`, mutual information); the late image was resampled once
onto the early grid and the late/early uptake ratio computed where the early image exceeded
{settings.ratio_floor_fraction:g} of its 99th percentile. Regional ratios were summarised
in the atlas regions, the meningeal and calvarial bands and the dural sinuses, with
ipsilateral/contralateral labels for a lateralised headache.
"""
    inputnode = pe.Node(
        niu.IdentityInterface(
            fields=[
                "early",
                "late",
                "t1w_preproc",
                "rois",
                "rois_lut",
                "anat2tpl_xfm",
                "pv_weights",
            ]
        ),
        name="inputnode",
    )
    outputnode = pe.Node(
        niu.IdentityInterface(
            fields=[
                "ratio",
                "ratio_tpl",
                "early2t1w_xfm",
                "late2early_xfm",
                "regions",
                "provenance",
            ]
        ),
        name="outputnode",
    )
    counts = {}
    for key, meta in (("early", early_meta), ("late", late_meta)):
        counts[key] = pe.Node(
            SPECTCounts(
                scale=meta.scale,
                per_second=meta.counts,
                duration=meta.duration_s,
                decay_factor=meta.decay_factor,
            ),
            name=f"{key}_counts",
        )
    reg = settings.registration
    late2early = pe.Node(
        rigid_registration(reg, omp_nthreads, initial_moving_transform_com=1),
        name="late_to_early",
        n_procs=omp_nthreads,
    )
    early2t1w = pe.Node(
        rigid_registration(reg, omp_nthreads, initial_moving_transform_com=1),
        name="early_to_t1w",
        n_procs=omp_nthreads,
    )
    late_on_early = pe.Node(
        ApplyTransforms(interpolation="Linear", dimension=3, float=True, outside_nan=True),
        name="late_on_early",
    )
    ratio = pe.Node(LateEarlyRatio(floor_fraction=settings.ratio_floor_fraction), name="ratio")
    rois = rois_to_grid("rois_to_spect")
    regional = init_regional_wf(
        participant_id,
        session_id,
        "spect",
        "lateEarlyRatio",
        headache_side=headache_side,
        covariates=covariates,
        min_voxels=min_voxels,
        name="regional_wf",
    )
    xfms = pe.Node(niu.Merge(2), name="spect_to_template_xfms")
    to_tpl = to_template("ratio_to_template", template_file)
    # voxels of the early grid the late image does not cover: counted in the sidecars
    provenance = provenance_with_outside("provenance")
    workflow.connect([
        (inputnode, counts["early"], [("early", "in_file")]),
        (inputnode, counts["late"], [("late", "in_file")]),
        (counts["early"], late2early, [("out_file", "fixed_image")]),
        (counts["late"], late2early, [("out_file", "moving_image")]),
        (inputnode, early2t1w, [("t1w_preproc", "fixed_image")]),
        (counts["early"], early2t1w, [("out_file", "moving_image")]),
        (counts["late"], late_on_early, [("out_file", "input_image")]),
        (counts["early"], late_on_early, [("out_file", "reference_image")]),
        (late2early, late_on_early, [("forward_transforms", "transforms")]),
        (counts["early"], ratio, [("out_file", "early")]),
        (late_on_early, ratio, [("output_image", "late")]),
        (inputnode, rois, [("rois", "input_image")]),
        (counts["early"], rois, [("out_file", "reference_image")]),
        (early2t1w, rois, [("forward_transforms", "transforms")]),
        (ratio, regional, [("out_file", "inputnode.in_file")]),
        (rois, regional, [("output_image", "inputnode.labels")]),
        (inputnode, regional, [("rois_lut", "inputnode.lut")]),
        (inputnode, xfms, [("anat2tpl_xfm", "in1")]),
        (early2t1w, xfms, [(("forward_transforms", first), "in2")]),
        (ratio, to_tpl, [("out_file", "input_image")]),
        (xfms, to_tpl, [("out", "transforms")]),
        (ratio, provenance, [("provenance", "a")]),
        (late_on_early, provenance, [("n_outside", "n_outside")]),
        (ratio, outputnode, [("out_file", "ratio")]),
        (provenance, outputnode, [("out", "provenance")]),
        (to_tpl, outputnode, [("output_image", "ratio_tpl")]),
        (early2t1w, outputnode, [(("forward_transforms", first), "early2t1w_xfm")]),
        (late2early, outputnode, [(("forward_transforms", first), "late2early_xfm")]),
        (regional, outputnode, [("outputnode.out_table", "regions")]),
    ])  # fmt:skip
    pv_weights_to_grid(workflow, (counts["early"], "out_file"), early2t1w, regional)
    return workflow
