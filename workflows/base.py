"""Top-level participant workflow: one per participant, all sessions inside.

.. autofunction:: init_single_subject_wf
"""

from __future__ import annotations

from pathlib import Path

from nipype.pipeline import engine as pe

from pipeline.interfaces.ants import ANTS_SOFTWARE as ANTS

from .anat import atlas_files


def _sinks(
    workflow, settings, source_file, node, specs, prefix, extra_sources=None, meta_from=None
):
    """One :class:`DerivativesSink` per ``(field, suffix, entities, meta)`` of ``specs``.

    ``meta_from=(node, field)`` connects sidecar fields computed at run time (e.g. a
    normalisation factor); ``meta=None`` writes no sidecar (label tables).
    """
    from pipeline.atlas import atlas_provenance
    from pipeline.interfaces.bids import DerivativesSink

    for i, (field, suffix, entities, meta) in enumerate(specs):
        atlas_name = (meta or {}).get("Atlas") or entities.get("atlas")
        if meta is not None and atlas_name:  # published or approximate, in every sidecar
            meta = {"Atlas": atlas_name, **meta, **atlas_provenance(atlas_name)}
            wcfg = settings.workflow
            own = {
                c.atlas: c.atlas_file for c in (wcfg.anat, wcfg.uspio, wcfg.pet) if c.atlas_file
            }
            if atlas_name in own:  # a lab's own file: what it is, the lab knows
                meta.update(AtlasType="user", AtlasSource=str(own[atlas_name]))
        ds = pe.Node(
            DerivativesSink(
                base_directory=settings.execution.output_dir,
                bids_dir=settings.execution.bids_dir,
                source_file=source_file,
                suffix=suffix,
                entities=entities,
                meta_dict=meta or {},
                sidecar=meta is not None,
                extra_sources=list(extra_sources or []),
            ),
            name=f"ds_{prefix}_{i}",
            run_without_submitting=True,
            mem_gb=0.1,
        )
        workflow.connect(node, field, ds, "in_file")
        if meta_from is not None and meta is not None:
            workflow.connect(meta_from[0], meta_from[1], ds, "meta_extra")


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
        template and atlas files (:func:`workflows.anat.template_inputs`)
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
    atlas = anat_cfg.atlas
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
        _sinks(
            workflow,
            settings,
            t1w,
            anat_wf,
            [
                (
                    "outputnode.t1w_preproc",
                    "T1w",
                    dict(desc="preproc"),
                    {
                        "SkullStripped": False,
                        "BiasCorrection": {
                            "Method": "N4BiasFieldCorrection",
                            **anat_cfg.n4.to_dict(),
                        },
                    },
                ),
                (
                    "outputnode.t1w_mask",
                    "mask",
                    dict(desc="brain"),
                    {
                        "Type": "Brain",
                        "Method": (
                            "deepbet brain extraction"
                            if anat_cfg.skull_strip == "deepbet"
                            else "non-zero voxels of the brain-extracted input"
                        )
                        + ", then GM+WM of the Atropos segmentation closed at the pial hull",
                        "Segmentation": anat_cfg.segmentation.to_dict(),
                    },
                ),
                (
                    "outputnode.t1w_dseg",
                    "dseg",
                    {},
                    {"Labels": {"1": "CSF", "2": "GM", "3": "WM"}, "Method": "ANTs Atropos"},
                ),
                *[
                    (
                        f"outputnode.{tissue.lower()}_prob",
                        "probseg",
                        dict(label=tissue),
                        {"Method": "ANTs Atropos posterior probability"},
                    )
                    for tissue in ("CSF", "GM", "WM")
                ],
                (
                    "outputnode.t1w_tpl",
                    "T1w",
                    dict(space=template, desc="preproc"),
                    {
                        "SkullStripped": True,
                        "Registration": {"Software": ANTS, **anat_cfg.registration.to_dict()},
                    },
                ),
                (
                    "outputnode.anat2tpl_xfm",
                    "xfm",
                    {"from": "T1w", "to": template, "mode": "image"},
                    {"Software": ANTS, "Direction": "T1w to template"},
                ),
                (
                    "outputnode.tpl2anat_xfm",
                    "xfm",
                    {"from": template, "to": "T1w", "mode": "image"},
                    {"Software": ANTS, "Direction": "template to T1w"},
                ),
                (
                    "outputnode.atlas_native",
                    "dseg",
                    dict(atlas=atlas),
                    {"Atlas": atlas, "Template": template, "Interpolation": "NearestNeighbor"},
                ),
                ("outputnode.atlas_lut", "dseg", dict(atlas=atlas), None),
                (
                    "outputnode.rois_native",
                    "dseg",
                    dict(atlas=atlas, desc="extracerebral"),
                    {
                        "Atlas": atlas,
                        "Description": "atlas labels plus meningeal and calvarial bands "
                        "(by nearest atlas region) and dural venous sinuses",
                        **(
                            {"ReferenceSession": reference[0]}
                            if reference is not None and reference[1] is not anat_wf
                            else {}
                        ),
                        "MeningealBandMM": anat_cfg.meningeal_band_mm,
                        "CalvarialBandMM": anat_cfg.calvarial_band_mm,
                    },
                ),
                ("outputnode.rois_lut", "dseg", dict(atlas=atlas, desc="extracerebral"), None),
            ],
            prefix=f"anat_{tag}",
            meta_from=(anat_wf, "outputnode.provenance"),
        )
        _sinks(
            workflow,
            settings,
            t1w,
            regional_wf,
            [
                (
                    "outputnode.out_table",
                    "regions",
                    dict(atlas=atlas, desc="nT1w"),
                    {
                        "Description": "Per-ROI statistics of the T1w normalised to its median "
                        "within the brain mask (nT1w)",
                        "Atlas": atlas,
                        "HeadacheSide": ses.headache_side,
                    },
                ),
            ],
            prefix=f"nt1w_{tag}",
        )

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
            meta = {
                "ContrastAgent": agent,
                "AgentClass": "gadolinium",
                "Normalisation": gcfg.normalisation,
                "FindingThresholdPercent": gcfg.finding_threshold_percent,
                "FindingNoiseSD": gcfg.finding_noise_sd,
                "FindingSpreadSD": gcfg.finding_spread_sd,
                "FindingVesselRadiusMM": gcfg.finding_vessel_radius_mm,
                "FindingMinVolumeMM3": gcfg.finding_min_volume_mm3,
            }
            _sinks(
                workflow,
                settings,
                post,
                gad_wf,
                [
                    (
                        "outputnode.post_preproc",
                        "T1w",
                        dict(desc="preproc"),
                        {
                            **meta,
                            "SkullStripped": False,
                            "Description": "bias-corrected with the pre-contrast field, "
                            "registered to and normalised to the pre-contrast T1w",
                            "SpatialReference": _raw_ref(settings, t1w),
                        },
                    ),
                    (
                        "outputnode.subtraction",
                        "enhancement",
                        dict(desc="subtraction"),
                        {**meta, "Description": "post - pre (normalised)", "Units": "arbitrary"},
                    ),
                    (
                        "outputnode.percent",
                        "enhancement",
                        dict(desc="percent"),
                        {
                            **meta,
                            "Description": "100 (post - pre) / max(pre, floor)",
                            "Units": "%",
                        },
                    ),
                    (
                        "outputnode.subtraction_tpl",
                        "enhancement",
                        dict(space=template, desc="subtraction"),
                        {**meta, "Units": "arbitrary"},
                    ),
                    (
                        "outputnode.percent_tpl",
                        "enhancement",
                        dict(space=template, desc="percent"),
                        {**meta, "Units": "%"},
                    ),
                    (
                        "outputnode.post2pre_xfm",
                        "xfm",
                        {"from": "postcontrast", "to": "T1w", "mode": "image"},
                        {**meta, "Software": ANTS, "Type": "rigid"},
                    ),
                    (
                        "outputnode.regions",
                        "regions",
                        dict(atlas=atlas, desc="percent"),
                        {
                            **meta,
                            "Description": (
                                "per-ROI percent enhancement (atlas, meningeal and calvarial "
                                "bands, sinuses); ipsi/contra/AI rows for a lateral headache"
                            ),
                            "HeadacheSide": ses.headache_side,
                        },
                    ),
                    (
                        "outputnode.rois",
                        "dseg",
                        dict(atlas=atlas, desc="extracerebral"),
                        {
                            **meta,
                            "Atlas": atlas,
                            "Description": "the ROIs of the percent table: the session's "
                            "atlas regions and bands, with the venous sinuses re-segmented "
                            "on this post-contrast image where it shows them (SinusSource)",
                        },
                    ),
                    ("inputnode.rois_lut", "dseg", dict(atlas=atlas, desc="extracerebral"), None),
                    (
                        "outputnode.findings",
                        "findings",
                        dict(desc="enhancement"),
                        {
                            **meta,
                            "Description": "connected clusters above the threshold and minimum "
                            "volume, attributed to the ROI holding most of their voxels",
                        },
                    ),
                ],
                prefix=f"gad_{agent}_{tag}",
                extra_sources=[t1w],
                meta_from=(gad_wf, "outputnode.provenance"),
            )
        for dce in ses.dce:
            _add_dce(workflow, settings, anat_wf, ses, dce, template, template_files, atlas)
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


def _raw_ref(settings, path) -> str:
    """``bids:raw:<path relative to the dataset root>`` (a sidecar's SpatialReference)."""
    return f"bids:raw:{Path(path).relative_to(settings.execution.bids_dir).as_posix()}"


def _add_dce(workflow, settings, anat_wf, ses, dce, template, template_files, atlas):
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
    meta_d = {"ContrastAgent": agent, "AgentClass": "gadolinium", "Model": dcfg.model}
    units = {"ktrans": ("Ktrans", "1/min"), "vp": ("vp", "fraction"), "ve": ("ve", "fraction")}
    specs = []
    for key, (suffix, unit) in units.items():
        specs.append((f"outputnode.{key}", suffix, {}, {**meta_d, "Units": unit}))
        specs.append(
            (f"outputnode.{key}_tpl", suffix, {"space": template}, {**meta_d, "Units": unit})
        )
    t1_meta = {**meta_d, "Units": "s", "Method": "VFA (DESPOT1)", "SkullStripped": False}
    res_meta = {**meta_d, "Description": "root-mean-square fit residual", "Units": "mM"}
    specs += [
        ("outputnode.t1", "T1map", {}, t1_meta),
        ("outputnode.t1_tpl", "T1map", {"space": template}, t1_meta),
        ("outputnode.residual", "residual", {"desc": "fit"}, res_meta),
        ("outputnode.residual_tpl", "residual", {"space": template, "desc": "fit"}, res_meta),
        (
            "outputnode.vif",
            "timeseries",
            {"desc": "vif"},
            {
                **meta_d,
                "Description": "venous input function from "
                + (
                    f"the user mask {dce.vif_mask}"
                    if dce.vif_mask
                    else "the superior sagittal sinus"
                ),
                "Columns": ["time_s", "blood_mM", "plasma_mM"],
            },
        ),
        (
            "outputnode.dce2t1w_xfm",
            "xfm",
            {"from": "dce", "to": "T1w", "mode": "image"},
            {**meta_d, "Type": "rigid"},
        ),
        (
            "outputnode.regions",
            "regions",
            {"atlas": atlas, "desc": "Ktrans"},
            {
                **meta_d,
                "Description": "per-ROI Ktrans (1/min) on the DCE grid",
                "HeadacheSide": ses.headache_side,
            },
        ),
        (
            "outputnode.rois",
            "dseg",
            {"atlas": atlas, "desc": "extracerebral"},
            {
                **meta_d,
                "Atlas": atlas,
                "Description": "the ROIs of the regional Ktrans table "
                "(atlas regions, meningeal and calvarial bands, dural sinuses) on the DCE grid",
            },
        ),
        ("inputnode.rois_lut", "dseg", {"atlas": atlas, "desc": "extracerebral"}, None),
    ]
    _sinks(
        workflow,
        settings,
        dce.series,
        dce_wf,
        specs,
        prefix=f"dce_{agent}_{tag}",
        extra_sources=list(dce.vfa) + [ses.t1w],
        meta_from=(dce_wf, "outputnode.provenance"),
    )


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
    meta = {
        "ContrastAgent": pair.agent,
        "AgentClass": "iron_oxide",
        "PreSession": f"ses-{pre_ses}" if pre_ses else "n/a",
        "SpatialReference": _raw_ref(settings, pair.pre.images[0]),
    }
    atlas, roi_atlas = ucfg.atlas, settings.workflow.anat.atlas
    post_src = pair.post.images[0]  # derivatives are named after the post series
    fit = {
        "FitModel": "monoexponential",
        "FitMethod": ucfg.fit,
        "MinEchoes": ucfg.min_echoes,
        "SkullStripped": False,
    }
    specs = [
        (
            "outputnode.dr2star",
            "dR2star",
            {},
            {
                **meta,
                **fit,
                "Units": "1/s",
                "Description": "R2*post - R2*pre on the pre-infusion grid (valid fits only)",
            },
        ),
        ("outputnode.dr2star_tpl", "dR2star", {"space": template}, {**meta, "Units": "1/s"}),
        (
            "outputnode.r2star_post",
            "R2starmap",
            {},
            {
                **meta,
                **fit,
                "Units": "1/s",
                "Description": "post-infusion R2*, resampled once onto the pre-infusion grid",
            },
        ),
        ("outputnode.r2star_post_tpl", "R2starmap", {"space": template}, {**meta, "Units": "1/s"}),
        (
            "outputnode.nrmse_post",
            "residual",
            {"desc": "fit"},
            {
                **meta,
                **fit,
                "Description": "fit residual RMS / S0 of the post series (its own grid)",
                "Units": "fraction",
            },
        ),
        (
            "outputnode.post2pre_xfm",
            "xfm",
            {"from": "post", "to": "pre", "mode": "image"},
            {**meta, "Type": "rigid"},
        ),
        (
            "outputnode.territories",
            "dseg",
            {"atlas": atlas},
            {
                **meta,
                "Atlas": atlas,
                "Description": "vascular-territory atlas on the pre-infusion MEGRE grid",
            },
        ),
        ("outputnode.territories_lut", "dseg", {"atlas": atlas}, None),
        (
            "outputnode.rois",
            "dseg",
            {"atlas": roi_atlas, "desc": "extracerebral"},
            {
                **meta,
                "Atlas": roi_atlas,
                "Description": "the ROIs of the atlas regional dR2star "
                "table (atlas regions, meningeal and calvarial bands, dural sinuses) on the "
                "pre-infusion MEGRE grid",
            },
        ),
        ("inputnode.rois_lut", "dseg", {"atlas": roi_atlas, "desc": "extracerebral"}, None),
        (
            "outputnode.regions_territories",
            "regions",
            {"atlas": atlas, "desc": "dR2star"},
            {
                **meta,
                "Atlas": atlas,
                "HeadacheSide": ses.headache_side,
                "Description": "per-ROI dR2star (1/s): vascular territories, vessels, pons, "
                "thalamus; ipsi/contra/AI rows for a lateral headache",
            },
        ),
        (
            "outputnode.regions_rois",
            "regions",
            {"atlas": roi_atlas, "desc": "dR2star"},
            {
                **meta,
                "Atlas": roi_atlas,
                "HeadacheSide": ses.headache_side,
                "Description": "per-ROI dR2star (1/s): atlas regions, meningeal and calvarial "
                "bands, dural sinuses",
            },
        ),
    ]
    if atlas is None:  # no territory table: its label map and table are not written
        specs = [s for s in specs if not ("atlas" in s[2] and s[2]["atlas"] is None)]
    _sinks(
        workflow,
        settings,
        post_src,
        wf,
        specs,
        prefix=f"uspio_{pair.agent}_{tag}",
        extra_sources=list(pair.post.images[1:] + pair.pre.images) + [t1w],
        meta_from=(wf, "outputnode.provenance_post"),
    )
    # the pre series' own maps, named after it (they may belong to another session)
    pre_specs = [
        ("outputnode.r2star_pre", "R2starmap", {}, {**fit, "Units": "1/s"}),
        ("outputnode.r2star_pre_tpl", "R2starmap", {"space": template}, {**fit, "Units": "1/s"}),
        (
            "outputnode.nrmse_pre",
            "residual",
            {"desc": "fit"},
            {**fit, "Units": "fraction", "Description": "fit residual RMS / S0"},
        ),
        (
            "outputnode.pre2t1w_xfm",
            "xfm",
            {"from": "MEGRE", "to": "T1w", "mode": "image"},
            {"Type": "rigid", "SpatialReference": _raw_ref(settings, t1w)},
        ),
    ]
    if not pair.write_pre:  # already written for another post series paired with it
        return
    _sinks(
        workflow,
        settings,
        pair.pre.images[0],
        wf,
        pre_specs,
        prefix=f"uspio_pre_{pair.agent}_{tag}",
        extra_sources=[t1w],
        meta_from=(wf, "outputnode.provenance_pre"),
    )


def _add_pet(workflow, settings, anat_wf, ses, pet, template, template_files, index):
    """The PET workflow of one series (metadata from the plan) and its sinks."""
    from pipeline import log

    from .pet import init_pet_wf

    cfg = settings.workflow
    pcfg = cfg.pet
    meta, genotype, t1w = pet.metadata, pet.genotype, ses.t1w
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
    lo, hi = pcfg.window_min
    m = {
        "TracerName": meta.tracer_name,
        "TracerRadionuclide": meta.radionuclide,
        "FrameWindowMin": [lo, hi],
        "InjectedDoseBq": meta.injected_dose_bq,
        "SUVDoseBq": meta.suv_dose_bq,
        "BodyWeightKg": meta.body_weight_kg,
        "BodyWeightSource": meta.body_weight_source,
        "ImageDecayCorrected": meta.decay_corrected,
        "TSPOGenotype": genotype,
        "FrameDurationRepaired": meta.frame_duration_repaired,
        "LowAffinityBinder": genotype == "LAB",
    }
    atlas, roi_atlas = pcfg.atlas, cfg.anat.atlas
    t1w_ref = _raw_ref(settings, t1w)
    specs = [
        (
            "outputnode.suv",
            "SUV",
            {},
            {
                **m,
                "Units": "g/mL",
                "Description": (
                    "standardised uptake value, duration-weighted mean of the window's frames"
                ),
            },
        ),
        ("outputnode.suvr", "SUVR", {}, {**m, "Units": "ratio"}),
        (
            "outputnode.suv_t1w",
            "SUV",
            {"space": "T1w"},
            {**m, "Units": "g/mL", "SpatialReference": t1w_ref},
        ),
        (
            "outputnode.suvr_t1w",
            "SUVR",
            {"space": "T1w"},
            {**m, "Units": "ratio", "SpatialReference": t1w_ref},
        ),
        ("outputnode.suv_tpl", "SUV", {"space": template}, {**m, "Units": "g/mL"}),
        ("outputnode.suvr_tpl", "SUVR", {"space": template}, {**m, "Units": "ratio"}),
        (
            "outputnode.pet_ref",
            "pet",
            {"desc": "mean"},
            {
                **m,
                "Description": (
                    "motion-corrected, duration-weighted mean of the window's frames (image units)"
                ),
            },
        ),
        (
            "outputnode.pet2t1w_xfm",
            "xfm",
            {"from": "pet", "to": "T1w", "mode": "image"},
            {**m, "Type": "rigid"},
        ),
        (
            "outputnode.regions_atlas",
            "regions",
            {"atlas": atlas, "desc": "SUVR"},
            {
                **m,
                "Atlas": atlas,
                "HeadacheSide": ses.headache_side,
                "Description": "per-ROI SUVR on the T1w grid (TSPO regions)",
            },
        ),
        (
            "outputnode.atlas_t1w",
            "dseg",
            {"atlas": atlas, "space": "T1w"},
            {
                **m,
                "Atlas": atlas,
                "SpatialReference": t1w_ref,
                "Description": (
                    "the TSPO-region atlas on the T1w grid (labels of the regional table)"
                ),
            },
        ),
        ("outputnode.atlas_lut", "dseg", {"atlas": atlas, "space": "T1w"}, None),
        (
            "outputnode.regions_rois",
            "regions",
            {"atlas": roi_atlas, "desc": "SUVR"},
            {
                **m,
                "Atlas": roi_atlas,
                "HeadacheSide": ses.headache_side,
                "Description": "per-ROI SUVR on the T1w grid: atlas regions, meningeal and "
                "calvarial bands, dural sinuses",
            },
        ),
    ]
    _sinks(
        workflow,
        settings,
        pet.path,
        wf,
        specs,
        prefix=f"pet_{tag}",
        extra_sources=[t1w],
        meta_from=(wf, "outputnode.provenance"),
    )


def _add_spect(workflow, settings, anat_wf, ses, spect, template, template_files):
    """The SPECT workflow of one early/late pair and its sinks."""
    from .spect import init_spect_wf

    scfg = settings.workflow.spect
    tracer, early, late, t1w = spect.tracer, spect.early, spect.late, ses.t1w
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
    m = {
        "TracerName": tracer,
        "EarlyStartS": metas["early"].start_s,
        "LateStartS": metas["late"].start_s,
        "DecayCorrectedToInjection": True,
        "Units": "ratio",
        "EarlyDecayFactor": metas["early"].decay_factor,
        "LateDecayFactor": metas["late"].decay_factor,
    }
    atlas = settings.workflow.anat.atlas
    specs = [
        (
            "outputnode.ratio",
            "ratio",
            {"acq": None, "desc": "lateEarly"},
            {
                **m,
                "Description": (
                    "late / early uptake (decay-corrected count rates) on the early grid"
                ),
            },
        ),
        (
            "outputnode.ratio_tpl",
            "ratio",
            {"acq": None, "space": template, "desc": "lateEarly"},
            m,
        ),
        (
            "outputnode.early2t1w_xfm",
            "xfm",
            {"acq": None, "from": "spect", "to": "T1w", "mode": "image"},
            {"Type": "rigid"},
        ),
        (
            "outputnode.late2early_xfm",
            "xfm",
            {"acq": None, "from": "late", "to": "early", "mode": "image"},
            {"Type": "rigid"},
        ),
        (
            "outputnode.regions",
            "regions",
            {"acq": None, "atlas": atlas, "desc": "lateEarlyRatio"},
            {
                **m,
                "Atlas": atlas,
                "HeadacheSide": ses.headache_side,
                "Description": "per-ROI late/early ratio (atlas regions, meningeal and calvarial "
                "bands, dural sinuses)",
            },
        ),
    ]
    _sinks(
        workflow,
        settings,
        early,
        wf,
        specs,
        prefix=f"spect_{tracer}_{ses.tag}",
        extra_sources=[late, t1w],
        meta_from=(wf, "outputnode.provenance"),
    )
