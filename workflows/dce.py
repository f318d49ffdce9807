"""DCE-MRI permeability: VFA T1 map, motion correction, venous input function from the
superior sagittal sinus, Patlak or extended Tofts maps and regional tables.

.. autofunction:: init_dce_wf
"""

from __future__ import annotations

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe


def init_dce_wf(
    agent: str,
    meta,
    vfa_flip_angles: list,
    vfa_tr: float,
    template: str,
    template_file: str,
    settings,
    participant_id: str,
    session_id: str,
    headache_side=None,
    covariates=None,
    min_voxels: int = 1,
    vif_mask=None,
    omp_nthreads: int = 1,
    name: str = "dce_wf",
):
    r"""
    Permeability maps from a DCE series and a variable-flip-angle T1 map of one session.

    #. VFA → T1 map (DESPOT1) on the DCE grid.
    #. Motion correction: every frame rigidly registered to the mean of the pre-contrast
       frames (``antsRegistration``), one resampling.
    #. The DCE reference rigidly registered to the T1w; the atlas and extra-cerebral ROIs
       (with the superior sagittal sinus) brought to the DCE grid.
    #. Signal → concentration (SPGR with the T1 map); venous input function from the sinus
       (screened for partial volume, the voxels with the largest area under the curve);
       plasma = blood / (1 − haematocrit).
    #. Extended Tofts (or Patlak) fit in every ROI voxel: Ktrans, vp, ve and the fit residual,
       in native (DCE) and template space; regional Ktrans table with ipsi/contra.

    Parameters
    ----------
    agent : :obj:`str`
        contrast agent (``ce-`` label)
    meta : :class:`pipeline.metadata.DCEMetadata`
        checked acquisition parameters (:func:`pipeline.metadata.dce_metadata`)
    vfa_flip_angles, vfa_tr
        flip angles (degrees) and excitation TR (s) of the VFA images
    template, template_file : :obj:`str`
        template identifier and its T1w (grid of the template-space maps)
    settings : :class:`pipeline.config.DCESettings`
        the ``dce`` section of the configuration
    participant_id, session_id : :obj:`str`
        identifiers written in the tables
    headache_side : :obj:`str` or None
        from ``sessions.tsv``
    covariates : :obj:`dict` or None
        columns carried into the regional tables (``regional.carry_columns``)
    min_voxels : :obj:`int`
        ROIs with fewer valid voxels get n/a statistics
    vif_mask : :obj:`str` or None
        a user-drawn input-function mask on the DCE grid; replaces the sinus ROI as the
        candidate voxels (same screening and selection)
    omp_nthreads : :obj:`int`
        maximum number of threads an individual process may use
    name : :obj:`str`
        name of workflow (default: ``dce_wf``)

    Inputs
    ------
    dce, vfa
        the 4-D series and the VFA images
    t1w_preproc, rois, rois_lut, anat2tpl_xfm
        from the anatomical workflow

    Outputs
    -------
    ktrans, vp, ve, t1, residual
        maps on the DCE grid
    ktrans_tpl, vp_tpl, ve_tpl, t1_tpl, residual_tpl
        maps in template space
    vif
        TSV of the input function (time, blood, plasma)
    dce2t1w_xfm
        rigid DCE → T1w transform
    rois
        the ROIs of the regional table on the DCE grid (labels of ``rois_lut``)
    regions
        regional Ktrans table
    provenance
        model, relaxivity, haematocrit, VIF details (sidecar fields)
    """
    from niworkflows.engine.workflows import LiterateWorkflow as Workflow

    from pipeline.interfaces.dce import DCEFit, DCEReference, MergeFrames, VFAT1Map

    from .regional import init_regional_wf
    from .utils import (
        FRAME_SAMPLING,
        first,
        frame_motion_correction,
        frames_on_reference,
        pv_weights_to_grid,
        rigid_registration,
        rois_to_grid,
        to_template,
    )

    workflow = Workflow(name=name)
    patlak = settings.model == "patlak"
    source = "user-delineated" if vif_mask else settings.vif_roi.replace("_", "-")
    fit_how = (
        " (linear least squares)"
        if patlak
        else " (a kep grid with linear least squares, refined by Levenberg–Marquardt)"
    )
    workflow.__desc__ = f"""\
Dynamic contrast-enhanced (DCE, {agent}) MRI was analysed as follows. A T1 map was estimated
from the variable-flip-angle images (DESPOT1 [@despot1]). Every frame of the dynamic series
was rigidly registered (`antsRegistration`, mutual information on a regular
{FRAME_SAMPLING:.0%} sample of the voxels) to the mean of the pre-contrast frames, which was
rigidly registered to the T1w to bring the atlas and
extra-cerebral regions to the DCE grid. Signal was converted to concentration with the
spoiled gradient-echo equation (r1 = {settings.relaxivity:g} /mM/s). The venous input
function was taken from the frame-wise median of the {
        f"{settings.vif_voxels} {source} voxels"
        if settings.vif_voxels is not None
        else f"{source} voxels making up {settings.vif_volume_ml:g} ml"
    }
with the largest area under the curve after excluding partial-volume voxels (peak below
{settings.vif_min_peak_fraction:g} of the 95th percentile) and converted to plasma with a
haematocrit of {settings.hematocrit:g}. The {settings.model.replace("_", " ")} model
{"[@patlak]" if patlak else "[@tofts]"} was fitted in every voxel of the regions{fit_how},
giving Ktrans, vp{"" if patlak else ", ve"} and the fit residual; these and the T1 map were
brought to *{template}* space.
"""
    inputnode = pe.Node(
        niu.IdentityInterface(
            fields=["dce", "vfa", "t1w_preproc", "rois", "rois_lut", "anat2tpl_xfm", "pv_weights"]
        ),
        name="inputnode",
    )
    outputnode = pe.Node(
        niu.IdentityInterface(
            fields=[
                "ktrans",
                "vp",
                "ve",
                "t1",
                "residual",
                "ktrans_tpl",
                "vp_tpl",
                "ve_tpl",
                "t1_tpl",
                "residual_tpl",
                "vif",
                "dce2t1w_xfm",
                "rois",
                "regions",
                "provenance",
            ]
        ),
        name="outputnode",
    )

    ref = pe.Node(
        DCEReference(n_baseline=meta.n_baseline, n_frames=len(meta.times)), name="dce_reference"
    )
    mc = frame_motion_correction(settings.motion, omp_nthreads)
    on_ref = frames_on_reference(omp_nthreads=omp_nthreads)
    merge = pe.Node(MergeFrames(), name="merge_frames")
    vfa = pe.Node(VFAT1Map(flip_angles=list(vfa_flip_angles), tr=vfa_tr), name="vfa_t1")
    to_t1w = pe.Node(
        rigid_registration(settings.motion, omp_nthreads, initial_moving_transform_com=1),
        name="dce_to_t1w",
        n_procs=omp_nthreads,
    )
    rois_to_dce = rois_to_grid("rois_to_dce")
    fit = pe.Node(
        DCEFit(
            times=list(meta.times),
            flip_angle=meta.flip_angle,
            tr=meta.tr,
            n_baseline=meta.n_baseline,
            relaxivity=settings.relaxivity,
            hematocrit=settings.hematocrit,
            model=settings.model,
            vif_roi=settings.vif_roi,
            vif_volume_ml=settings.vif_volume_ml,
            vif_min_peak_fraction=settings.vif_min_peak_fraction,
            delays_s=[float(d) for d in settings.delays_s],
        ),
        name="fit",
        mem_gb=2.0,
    )
    if vif_mask:
        fit.inputs.vif_mask = vif_mask
    if settings.vif_voxels is not None:
        fit.inputs.vif_voxels = settings.vif_voxels
    regional_wf = init_regional_wf(
        participant_id,
        session_id,
        "dce",
        "Ktrans",
        headache_side=headache_side,
        covariates=covariates,
        min_voxels=min_voxels,
        name="regional_wf",
    )
    xfms = pe.Node(niu.Merge(2), name="dce_to_template_xfms")
    workflow.connect([
        (inputnode, ref, [("dce", "in_file")]),
        (ref, mc, [("reference", "fixed_image"), ("frames", "moving_image")]),
        (ref, on_ref, [("reference", "reference_image"), ("frames", "input_image")]),
        (mc, on_ref, [("forward_transforms", "transforms")]),
        (on_ref, merge, [("output_image", "in_files")]),
        (inputnode, vfa, [("vfa", "in_files")]),
        (ref, vfa, [("reference", "reference")]),
        (inputnode, to_t1w, [("t1w_preproc", "fixed_image")]),
        (ref, to_t1w, [("reference", "moving_image")]),
        (inputnode, rois_to_dce, [("rois", "input_image")]),
        (ref, rois_to_dce, [("reference", "reference_image")]),
        (to_t1w, rois_to_dce, [("forward_transforms", "transforms")]),
        (merge, fit, [("out_file", "in_file")]),
        (vfa, fit, [("t1_map", "t1_map")]),
        (rois_to_dce, fit, [("output_image", "rois")]),
        (inputnode, fit, [("rois_lut", "lut")]),
        (fit, regional_wf, [("ktrans", "inputnode.in_file")]),
        (rois_to_dce, regional_wf, [("output_image", "inputnode.labels")]),
        (inputnode, regional_wf, [("rois_lut", "inputnode.lut")]),
        (inputnode, xfms, [("anat2tpl_xfm", "in1")]),
        (to_t1w, xfms, [(("forward_transforms", first), "in2")]),
        (fit, outputnode, [("ktrans", "ktrans"), ("vp", "vp"), ("ve", "ve"),
                           ("residual", "residual"), ("vif", "vif"),
                           ("provenance", "provenance")]),
        (vfa, outputnode, [("t1_map", "t1")]),
        (to_t1w, outputnode, [(("forward_transforms", first), "dce2t1w_xfm")]),
        (rois_to_dce, outputnode, [("output_image", "rois")]),
        (regional_wf, outputnode, [("outputnode.out_table", "regions")]),
    ])  # fmt:skip
    for src, key in (
        (fit, "ktrans"),
        (fit, "vp"),
        (fit, "ve"),
        (vfa, "t1_map"),
        (fit, "residual"),
    ):
        out = key.replace("_map", "")
        node = to_template(f"{out}_to_template", template_file)
        workflow.connect([
            (src, node, [(key, "input_image")]),
            (xfms, node, [("out", "transforms")]),
            (node, outputnode, [("output_image", f"{out}_tpl")]),
        ])  # fmt:skip
    pv_weights_to_grid(workflow, (ref, "reference"), to_t1w, regional_wf)
    return workflow
