"""Top-level participant workflow: one per participant, all sessions inside.

.. autofunction:: init_single_subject_wf
"""

from __future__ import annotations

from nipype.pipeline import engine as pe

from pipeline.templates import atlas_files

from .outputs import (
    connect_outputs,
    init_ds_anat_wf,
    init_ds_dce_wf,
    init_ds_gadolinium_wf,
    init_ds_nt1w_wf,
    init_ds_pet_wf,
    init_ds_spect_wf,
    init_ds_uspio_pre_wf,
    init_ds_uspio_wf,
)


def init_single_subject_wf(plan, settings, template_files: dict, name: str | None = None):
    """
    Wire one participant's plan: per session, the anatomical workflow and its derivatives,
    the regional table of the normalised T1w (``nT1w``), a gadolinium workflow per
    post-contrast T1w, a DCE workflow per series (with the session's VFA images), a USPIO
    workflow per post-ferumoxytol series (with its pre-infusion series), a PET workflow per
    series and a SPECT workflow per early/late pair.

    Every file, pairing and parsed sidecar comes from the plan
    (:func:`pipeline.plan.plan_participant`, checked by the preflight); nothing is looked up
    or parsed here.

    Parameters
    ----------
    plan : :class:`pipeline.plan.ParticipantPlan`
        the participant's inputs
    settings : :class:`pipeline.config.Settings`
        the run's settings
    template_files : :obj:`dict`
        template and atlas files (:func:`pipeline.templates.template_inputs`)
    name : :obj:`str`
        workflow name (default ``sub_<label>_wf``)

    Inputs / Outputs
    ----------------
    none: inputs are taken from the plan, outputs written as derivatives.
    """
    from niworkflows.engine.workflows import LiterateWorkflow as Workflow

    from pipeline.interfaces.regional import NormalizeToMedian

    from .anat import init_anat_wf
    from .gadolinium import init_gadolinium_wf
    from .regional import init_regional_wf

    cfg = settings.workflow
    anat_cfg = cfg.anat
    template = anat_cfg.template
    subject = plan.subject
    workflow = Workflow(name=name or f"sub_{subject}_wf")
    workflow.__desc__ = f"""\
Results included in this manuscript come from processing performed with *inflamap*
(participant `sub-{subject}`).
"""
    anat_of = {}
    reference = None  # (session id, anatomical workflow) whose ROIs the others take
    for ses in plan.sessions:
        tables = dict(
            headache_side=ses.headache_side,
            covariates=ses.carry,
            min_voxels=cfg.regional.min_voxels,
        )
        pid, sid, tag, t1w = ses.participant_id, ses.session_id, ses.tag, ses.t1w
        anat_wf = init_anat_wf(
            template,
            template_files,
            anat_cfg,
            omp_nthreads=settings.nipype.omp_nthreads,
            label=f"{pid} {sid}" if sid else pid,
            reference_session=reference[0] if reference else None,
            reuse=ses.anatomy,
            name=f"anat_{tag}_wf",
        )
        anat_wf.inputs.inputnode.t1w = t1w
        anat_of[ses.session] = (anat_wf, t1w)
        if reference is not None:
            workflow.connect([
                (reference[1], anat_wf, [("outputnode.t1w_brain", "inputnode.ref_t1w_brain"),
                                         ("outputnode.atlas_native", "inputnode.ref_atlas"),
                                         ("outputnode.rois_native", "inputnode.ref_rois"),
                                         ("outputnode.rois_lut", "inputnode.ref_rois_lut")]),
            ])  # fmt:skip
        elif anat_cfg.same_rois_across_sessions and sid:
            reference = (sid, anat_wf)
        norm = pe.Node(NormalizeToMedian(), name=f"nt1w_{tag}")
        regional_wf = init_regional_wf(
            participant_id=pid,
            session_id=sid,
            modality="anat",
            metric="nT1w",
            **tables,
            name=f"regional_nt1w_{tag}_wf",
        )
        workflow.connect([
            (anat_wf, norm, [("outputnode.t1w_preproc", "in_file"),
                             ("outputnode.t1w_mask", "mask")]),
            (norm, regional_wf, [("out_file", "inputnode.in_file")]),
            (anat_wf, regional_wf, [("outputnode.atlas_native", "inputnode.labels"),
                                    ("outputnode.atlas_lut", "inputnode.lut"),
                                    ("outputnode.t1w_mask", "inputnode.mask")]),
        ])  # fmt:skip
        ref_ses = reference[0] if reference is not None and reference[1] is not anat_wf else None
        ds_anat = init_ds_anat_wf(
            settings=settings, ses=ses, reference_session=ref_ses, name=f"ds_anat_{tag}_wf"
        )
        connect_outputs(workflow, anat_wf, ds_anat, "anat", "outputnode.provenance")
        ds_nt1w = init_ds_nt1w_wf(settings=settings, ses=ses, name=f"ds_nt1w_{tag}_wf")
        connect_outputs(workflow, regional_wf, ds_nt1w, "nt1w")

        gcfg = cfg.gadolinium
        for gad in ses.gadolinium:
            agent, post = gad.agent, gad.post
            gad_wf = init_gadolinium_wf(
                agent,
                template,
                template_files["template"],
                gcfg,
                pid,
                sid,
                **tables,
                omp_nthreads=settings.nipype.omp_nthreads,
                name=f"gad_{agent}_{tag}_wf",
            )
            gad_wf.inputs.inputnode.post = post
            workflow.connect([
                (anat_wf, gad_wf, [
                    ("outputnode.t1w_preproc", "inputnode.t1w_preproc"),
                    ("outputnode.bias_field", "inputnode.bias_field"),
                    ("outputnode.t1w_mask", "inputnode.brain_mask"),
                    ("outputnode.t1w_invalid", "inputnode.pre_invalid"),
                    ("outputnode.wm_prob", "inputnode.wm_prob"),
                    ("outputnode.rois_native", "inputnode.rois"),
                    ("outputnode.rois_lut", "inputnode.rois_lut"),
                    ("outputnode.pv_weights", "inputnode.pv_weights"),
                    ("outputnode.anat2tpl_xfm", "inputnode.anat2tpl_xfm")]),
            ])  # fmt:skip
            ds_gad = init_ds_gadolinium_wf(
                settings=settings, ses=ses, gad=gad, name=f"ds_gad_{agent}_{tag}_wf"
            )
            connect_outputs(workflow, gad_wf, ds_gad, "gadolinium", "outputnode.provenance")
        for dce in ses.dce:
            _add_dce(workflow, settings, anat_wf, ses, dce, template, template_files)
        for i, pet in enumerate(ses.pet):
            _add_pet(workflow, settings, anat_wf, ses, pet, template, template_files, i)
        for spect in ses.spect:
            _add_spect(workflow, settings, anat_wf, ses, spect, template, template_files)
    for ses in plan.sessions:
        for pair in ses.uspio:
            # ROIs and the reference grid come from the pre session (its T1w if processed)
            anat_wf, t1w = anat_of.get(pair.pre_session, anat_of[ses.session])
            _add_uspio(workflow, settings, anat_wf, t1w, ses, pair, template, template_files)
    return workflow


def _add_dce(workflow, settings, anat_wf, ses, dce, template, template_files):
    """The DCE workflow of one series, connected to the session's anatomy, and its sinks."""
    from .dce import init_dce_wf

    dcfg = settings.workflow.dce
    agent, tag = dce.agent, ses.tag
    dce_wf = init_dce_wf(
        agent,
        dce.acquisition,
        list(dce.vfa_flip_angles),
        dce.vfa_tr,
        template,
        template_files["template"],
        dcfg,
        ses.participant_id,
        ses.session_id,
        headache_side=ses.headache_side,
        covariates=ses.carry,
        min_voxels=settings.workflow.regional.min_voxels,
        vif_mask=dce.vif_mask,
        omp_nthreads=settings.nipype.omp_nthreads,
        name=f"dce_{agent}_{tag}_wf",
    )
    dce_wf.inputs.inputnode.dce = dce.series
    dce_wf.inputs.inputnode.vfa = list(dce.vfa)
    workflow.connect([
        (anat_wf, dce_wf, [("outputnode.t1w_preproc", "inputnode.t1w_preproc"),
                           ("outputnode.rois_native", "inputnode.rois"),
                           ("outputnode.rois_lut", "inputnode.rois_lut"),
                    ("outputnode.pv_weights", "inputnode.pv_weights"),
                           ("outputnode.anat2tpl_xfm", "inputnode.anat2tpl_xfm")]),
    ])  # fmt:skip
    ds_wf = init_ds_dce_wf(settings=settings, ses=ses, dce=dce, name=f"ds_dce_{agent}_{tag}_wf")
    connect_outputs(workflow, dce_wf, ds_wf, "dce", "outputnode.provenance")


def _add_uspio(workflow, settings, anat_wf, t1w, ses, pair, template, template_files):
    """The USPIO workflow of one pre/post MEGRE pair, connected to the anatomy, and sinks."""
    from .uspio import init_uspio_wf

    ucfg = settings.workflow.uspio
    pid, sid, tag = ses.participant_id, ses.session_id, ses.tag
    pre_ses = pair.pre_session
    files = dict(template_files)
    files.update(
        atlas_files(
            template,
            settings.workflow.anat.template_resolution,
            ucfg.atlas,
            ucfg.atlas_desc,
            key="uspio_atlas",
            atlas_file=ucfg.atlas_file,
        )
    )
    wf = init_uspio_wf(
        pair.agent,
        list(pair.pre.echo_times_s),
        list(pair.post.echo_times_s),
        template,
        files,
        ucfg,
        pid,
        sid,
        pre_session=(f"ses-{pre_ses}" if pre_ses != ses.session else None),
        headache_side=ses.headache_side,
        covariates=ses.carry,
        min_voxels=settings.workflow.regional.min_voxels,
        omp_nthreads=settings.nipype.omp_nthreads,
        name=f"uspio_{pair.agent}_{tag}_wf",
    )
    wf.inputs.inputnode.pre_echoes = list(pair.pre.images)
    wf.inputs.inputnode.post_echoes = list(pair.post.images)
    workflow.connect([
        (anat_wf, wf, [("outputnode.t1w_preproc", "inputnode.t1w_preproc"),
                       ("outputnode.rois_native", "inputnode.rois"),
                       ("outputnode.rois_lut", "inputnode.rois_lut"),
                    ("outputnode.pv_weights", "inputnode.pv_weights"),
                       ("outputnode.anat2tpl_xfm", "inputnode.anat2tpl_xfm"),
                       ("outputnode.tpl2anat_xfm", "inputnode.tpl2anat_xfm")]),
    ])  # fmt:skip
    ds_wf = init_ds_uspio_wf(
        settings=settings, ses=ses, pair=pair, t1w=t1w, name=f"ds_uspio_{pair.agent}_{tag}_wf"
    )
    connect_outputs(workflow, wf, ds_wf, "uspio", "outputnode.provenance_post")
    if pair.write_pre:  # else already written for another post series paired with it
        ds_pre = init_ds_uspio_pre_wf(
            settings=settings, pair=pair, t1w=t1w, name=f"ds_uspio_pre_{pair.agent}_{tag}_wf"
        )
        connect_outputs(workflow, wf, ds_pre, "uspio_pre", "outputnode.provenance_pre")


def _add_pet(workflow, settings, anat_wf, ses, pet, template, template_files, index):
    """The PET workflow of one series (metadata from the plan) and its sinks."""
    from pipeline import log

    from .pet import init_pet_wf

    cfg = settings.workflow
    pcfg = cfg.pet
    meta, genotype = pet.metadata, pet.genotype
    if genotype == "LAB":
        log.get("workflow").warning(
            "%s: TSPO low-affinity binder (LAB): SUV/SUVR are not comparable with HAB/MAB; "
            "the group level excludes or covaries tspo_genotype",
            pet.path,
        )
    files = dict(template_files)
    files.update(
        atlas_files(
            template,
            cfg.anat.template_resolution,
            pcfg.atlas,
            pcfg.atlas_desc,
            key="pet_atlas",
            atlas_file=pcfg.atlas_file,
        )
    )
    tag = f"{ses.tag}_{index}"
    wf = init_pet_wf(
        meta,
        template,
        files,
        pcfg,
        ses.participant_id,
        ses.session_id,
        headache_side=ses.headache_side,
        covariates=ses.carry,
        min_voxels=cfg.regional.min_voxels,
        omp_nthreads=settings.nipype.omp_nthreads,
        reuse=pet.reuse,
        name=f"pet_{tag}_wf",
    )
    wf.inputs.inputnode.pet = pet.path
    workflow.connect([
        (anat_wf, wf, [("outputnode.t1w_preproc", "inputnode.t1w_preproc"),
                       ("outputnode.t1w_mask", "inputnode.t1w_mask"),
                       ("outputnode.rois_native", "inputnode.rois"),
                       ("outputnode.rois_lut", "inputnode.rois_lut"),
                    ("outputnode.pv_weights", "inputnode.pv_weights"),
                       ("outputnode.anat2tpl_xfm", "inputnode.anat2tpl_xfm"),
                       ("outputnode.tpl2anat_xfm", "inputnode.tpl2anat_xfm")]),
    ])  # fmt:skip
    ds_wf = init_ds_pet_wf(settings=settings, ses=ses, pet=pet, name=f"ds_pet_{tag}_wf")
    connect_outputs(workflow, wf, ds_wf, "pet", "outputnode.provenance")


def _add_spect(workflow, settings, anat_wf, ses, spect, template, template_files):
    """The SPECT workflow of one early/late pair and its sinks."""
    from .spect import init_spect_wf

    scfg = settings.workflow.spect
    tracer, early, late = spect.tracer, spect.early, spect.late
    metas = {"early": spect.early_metadata, "late": spect.late_metadata}
    wf = init_spect_wf(
        tracer,
        metas["early"],
        metas["late"],
        template,
        template_files["template"],
        scfg,
        ses.participant_id,
        ses.session_id,
        headache_side=ses.headache_side,
        covariates=ses.carry,
        min_voxels=settings.workflow.regional.min_voxels,
        omp_nthreads=settings.nipype.omp_nthreads,
        name=f"spect_{tracer}_{ses.tag}_wf",
    )
    wf.inputs.inputnode.early = early
    wf.inputs.inputnode.late = late
    workflow.connect([
        (anat_wf, wf, [("outputnode.t1w_preproc", "inputnode.t1w_preproc"),
                       ("outputnode.rois_native", "inputnode.rois"),
                       ("outputnode.rois_lut", "inputnode.rois_lut"),
                    ("outputnode.pv_weights", "inputnode.pv_weights"),
                       ("outputnode.anat2tpl_xfm", "inputnode.anat2tpl_xfm")]),
    ])  # fmt:skip
    ds_wf = init_ds_spect_wf(
        settings=settings, ses=ses, spect=spect, name=f"ds_spect_{tracer}_{ses.tag}_wf"
    )
    connect_outputs(workflow, wf, ds_wf, "spect", "outputnode.provenance")
