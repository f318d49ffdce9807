"""Top-level participant workflow: one per participant, all sessions inside.

.. autofunction:: init_single_subject_wf
"""

from __future__ import annotations

from pathlib import Path

from nipype.pipeline import engine as pe


def _sink(workflow, node, field, settings, source_file, suffix, name, meta=None,
          sidecar=True, **entities):
    """Connect ``node.field`` to a :class:`DerivativesSink` writing ``suffix`` + entities."""
    from pipeline.interfaces.bids import DerivativesSink

    ds = pe.Node(DerivativesSink(
        base_directory=settings.execution.output_dir, bids_dir=settings.execution.bids_dir,
        source_file=source_file, suffix=suffix, entities=entities, meta_dict=meta or {},
        sidecar=sidecar), name=name, run_without_submitting=True, mem_gb=0.1)
    workflow.connect(node, field, ds, "in_file")
    return ds


def init_single_subject_wf(subject: str, settings, template_files: dict, layout,
                           name: str | None = None):
    """
    Organise the participant's processing: per session, the anatomical workflow, its
    derivatives and the regional table of the normalised T1w (``nT1w``).

    Parameters
    ----------
    subject : :obj:`str`
        participant label (without ``sub-``)
    settings : :class:`pipeline.config.Settings`
        the run's settings
    template_files : :obj:`dict`
        template and atlas files (:func:`workflows.anat.template_inputs`)
    layout : :class:`bids.BIDSLayout`
        the input dataset
    name : :obj:`str`
        workflow name (default ``sub_<label>_wf``)

    Inputs / Outputs
    ----------------
    none: inputs are taken from the dataset, outputs written as derivatives.
    """
    from niworkflows.engine.workflows import LiterateWorkflow as Workflow

    from pipeline.bids import collect_session, session_info, sessions_of
    from pipeline.errors import InputMissingError
    from pipeline.interfaces.regional import NormalizeToMedian

    from .anat import init_anat_wf
    from .regional import init_regional_wf

    cfg = settings.workflow
    anat_cfg = cfg["anat"]
    template = anat_cfg["template"]
    atlas = anat_cfg["atlas"]
    workflow = Workflow(name=name or f"sub_{subject}_wf")
    workflow.__desc__ = f"""\
Results included in this manuscript come from processing performed with *inflamap*
(participant `sub-{subject}`).
"""
    sessions = sessions_of(layout, subject, settings.execution.session_label)
    n_t1w = 0
    for ses in sessions:
        files = collect_session(layout, subject, ses, settings.execution.bids_filters)
        if files["t1w"] is None:
            continue
        n_t1w += 1
        info = session_info(settings.execution.bids_dir, subject, ses, cfg["covariates"])
        tag = f"ses_{ses}" if ses else "nosession"
        t1w = files["t1w"]
        anat_wf = init_anat_wf(template, template_files, anat_cfg,
                               omp_nthreads=settings.nipype.omp_nthreads,
                               name=f"anat_{tag}_wf")
        anat_wf.inputs.inputnode.t1w = t1w
        norm = pe.Node(NormalizeToMedian(), name=f"nt1w_{tag}")
        workflow.connect([
            (anat_wf, norm, [("outputnode.t1w_preproc", "in_file"),
                             ("outputnode.t1w_mask", "mask")]),
        ])  # fmt:skip
        regional_wf = init_regional_wf(
            participant_id=f"sub-{subject}", session_id=f"ses-{ses}" if ses else "n/a",
            modality="anat", metric="nT1w", headache_side=info.get("headache_side"),
            min_voxels=cfg["regional"]["min_voxels"], name=f"regional_nt1w_{tag}_wf")
        workflow.connect([
            (norm, regional_wf, [("out_file", "inputnode.in_file")]),
            (anat_wf, regional_wf, [("outputnode.atlas_native", "inputnode.labels"),
                                    ("outputnode.atlas_lut", "inputnode.lut"),
                                    ("outputnode.t1w_mask", "inputnode.mask")]),
        ])  # fmt:skip
        n4 = anat_cfg["n4"]
        reg = anat_cfg["registration"]
        sinks = [
            ("outputnode.t1w_preproc", "T1w", dict(desc="preproc"),
             {"SkullStripped": False, "BiasCorrection": {"Method": "N4BiasFieldCorrection",
                                                         **n4}}),
            ("outputnode.t1w_mask", "mask", dict(desc="brain"),
             {"Type": "Brain", "Method": "template brain mask through the inverse transform",
              "Threshold": anat_cfg["brain_mask_threshold"]}),
            ("outputnode.t1w_tpl", "T1w", dict(space=template, desc="preproc"),
             {"Registration": {"Software": "ANTs 2.5.1 (antspyx)", **reg}}),
            ("outputnode.anat2tpl_xfm", "xfm", {"from": "T1w", "to": template, "mode": "image"},
             {"Software": "ANTs 2.5.1 (antspyx)", "Direction": "T1w to template"}),
            ("outputnode.tpl2anat_xfm", "xfm", {"from": template, "to": "T1w", "mode": "image"},
             {"Software": "ANTs 2.5.1 (antspyx)", "Direction": "template to T1w"}),
            ("outputnode.atlas_native", "dseg", dict(atlas=atlas),
             {"Atlas": atlas, "Template": template, "Interpolation": "NearestNeighbor"}),
        ]
        for i, (field, suffix, ents, meta) in enumerate(sinks):
            _sink(workflow, anat_wf, field, settings, t1w, suffix, f"ds_{tag}_{i}",
                  meta=meta, **ents)
        _sink(workflow, anat_wf, "outputnode.atlas_lut", settings, t1w, "dseg",
              f"ds_{tag}_lut", sidecar=False, atlas=atlas)
        _sink(workflow, regional_wf, "outputnode.out_table", settings, t1w, "regions",
              f"ds_{tag}_regions", meta={
                  "Description": "Per-ROI statistics of the T1w normalised to its median "
                                 "within the brain mask (nT1w)",
                  "Atlas": atlas, "HeadacheSide": info.get("headache_side")},
              atlas=atlas, desc="nT1w")
    if n_t1w == 0:
        raise InputMissingError(
            f"{Path(settings.execution.bids_dir) / ('sub-' + subject)}: no pre-contrast T1w "
            "(sub-<label>[_ses-<label>]_T1w.nii.gz) found; every session needs one")
    return workflow
