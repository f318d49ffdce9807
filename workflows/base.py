"""Top-level participant workflow: one per participant, all sessions inside.

.. autofunction:: init_single_subject_wf
"""

from __future__ import annotations

from pathlib import Path

from nipype.pipeline import engine as pe

from .anat import atlas_files


def _sinks(workflow, settings, source_file, node, specs, prefix, extra_sources=None,
           meta_from=None):
    """One :class:`DerivativesSink` per ``(field, suffix, entities, meta)`` of ``specs``.

    ``meta_from=(node, field)`` connects sidecar fields computed at run time (e.g. a
    normalisation factor); ``meta=None`` writes no sidecar (label tables).
    """
    from pipeline.interfaces.bids import DerivativesSink

    for i, (field, suffix, entities, meta) in enumerate(specs):
        ds = pe.Node(DerivativesSink(
            base_directory=settings.execution.output_dir, bids_dir=settings.execution.bids_dir,
            source_file=source_file, suffix=suffix, entities=entities, meta_dict=meta or {},
            sidecar=meta is not None, extra_sources=list(extra_sources or [])),
            name=f"ds_{prefix}_{i}", run_without_submitting=True, mem_gb=0.1)
        workflow.connect(node, field, ds, "in_file")
        if meta_from is not None and meta is not None:
            workflow.connect(meta_from[0], meta_from[1], ds, "meta_extra")


def init_single_subject_wf(subject: str, settings, template_files: dict, layout,
                           name: str | None = None):
    """
    Organise the participant's processing: per session, the anatomical workflow and its
    derivatives, the regional table of the normalised T1w (``nT1w``), the gadolinium
    workflow for every post-contrast T1w with a gadolinium-based agent, and the DCE workflow
    for every ``_dce`` series (with the session's VFA images).

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

    from pipeline.bids import (carried_covariates, collect_session, session_info, sessions_of,
                               uspio_pairs)
    from pipeline.errors import InputMissingError
    from pipeline.interfaces.regional import NormalizeToMedian

    from .anat import init_anat_wf
    from .gadolinium import init_gadolinium_wf
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
    # every session's files (a selected post-ferumoxytol session may pair with another one)
    all_files = {ses: collect_session(layout, subject, ses, settings.execution.bids_filters)
                 for ses in sessions_of(layout, subject)}
    anat_of, info_of = {}, {}
    for ses in sessions:
        files = all_files[ses]
        if files["t1w"] is None:
            continue
        info = session_info(settings.execution.bids_dir, subject, ses, cfg["covariates"])
        info_of[ses] = info
        info["carry"] = carried_covariates(settings.execution.bids_dir, subject, ses,
                                           cfg["covariates"], cfg["regional"]["carry_columns"])
        tables = dict(headache_side=info.get("headache_side"), covariates=info["carry"],
                      min_voxels=cfg["regional"]["min_voxels"])
        pid, sid = f"sub-{subject}", (f"ses-{ses}" if ses else "n/a")
        tag = f"ses_{ses}" if ses else "nosession"
        t1w = files["t1w"]
        anat_wf = init_anat_wf(template, template_files, anat_cfg,
                               omp_nthreads=settings.nipype.omp_nthreads,
                               name=f"anat_{tag}_wf")
        anat_wf.inputs.inputnode.t1w = t1w
        anat_of[ses] = (anat_wf, t1w)
        norm = pe.Node(NormalizeToMedian(), name=f"nt1w_{tag}")
        regional_wf = init_regional_wf(
            participant_id=pid, session_id=sid, modality="anat", metric="nT1w", **tables,
            name=f"regional_nt1w_{tag}_wf")
        workflow.connect([
            (anat_wf, norm, [("outputnode.t1w_preproc", "in_file"),
                             ("outputnode.t1w_mask", "mask")]),
            (norm, regional_wf, [("out_file", "inputnode.in_file")]),
            (anat_wf, regional_wf, [("outputnode.atlas_native", "inputnode.labels"),
                                    ("outputnode.atlas_lut", "inputnode.lut"),
                                    ("outputnode.t1w_mask", "inputnode.mask")]),
        ])  # fmt:skip
        ants = "ANTs 2.5.1 (antspyx)"
        _sinks(workflow, settings, t1w, anat_wf, [
            ("outputnode.t1w_preproc", "T1w", dict(desc="preproc"),
             {"SkullStripped": False,
              "BiasCorrection": {"Method": "N4BiasFieldCorrection", **anat_cfg["n4"]}}),
            ("outputnode.t1w_mask", "mask", dict(desc="brain"),
             {"Type": "Brain", "Method": "template brain mask through the inverse transform",
              "Threshold": anat_cfg["brain_mask_threshold"]}),
            ("outputnode.t1w_tpl", "T1w", dict(space=template, desc="preproc"),
             {"SkullStripped": False,
              "Registration": {"Software": ants, **anat_cfg["registration"]}}),
            ("outputnode.anat2tpl_xfm", "xfm", {"from": "T1w", "to": template, "mode": "image"},
             {"Software": ants, "Direction": "T1w to template"}),
            ("outputnode.tpl2anat_xfm", "xfm", {"from": template, "to": "T1w", "mode": "image"},
             {"Software": ants, "Direction": "template to T1w"}),
            ("outputnode.atlas_native", "dseg", dict(atlas=atlas),
             {"Atlas": atlas, "Template": template, "Interpolation": "NearestNeighbor"}),
            ("outputnode.atlas_lut", "dseg", dict(atlas=atlas), None),
            ("outputnode.rois_native", "dseg", dict(atlas=atlas, desc="extracerebral"),
             {"Atlas": atlas, "Description": "atlas labels plus meningeal and calvarial bands "
              "(by nearest atlas region) and dural venous sinuses",
              "MeningealBandMM": anat_cfg["meningeal_band_mm"],
              "CalvarialBandMM": anat_cfg["calvarial_band_mm"]}),
            ("outputnode.rois_lut", "dseg", dict(atlas=atlas, desc="extracerebral"), None),
        ], prefix=f"anat_{tag}", meta_from=(anat_wf, "outputnode.provenance"))
        _sinks(workflow, settings, t1w, regional_wf, [
            ("outputnode.out_table", "regions", dict(atlas=atlas, desc="nT1w"), {
                "Description": "Per-ROI statistics of the T1w normalised to its median "
                               "within the brain mask (nT1w)",
                "Atlas": atlas, "HeadacheSide": info.get("headache_side")}),
        ], prefix=f"nt1w_{tag}")

        for agent, post in files["t1w_ce"]:
            if settings.agent_class(agent) != "gadolinium":
                continue
            gcfg = cfg["gadolinium"]
            gad_wf = init_gadolinium_wf(
                agent, template, template_files["template"], gcfg, pid, sid, **tables,
                omp_nthreads=settings.nipype.omp_nthreads, name=f"gad_{agent}_{tag}_wf")
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
                    ("outputnode.anat2tpl_xfm", "inputnode.anat2tpl_xfm")]),
            ])  # fmt:skip
            meta = {"ContrastAgent": agent, "AgentClass": "gadolinium",
                    "Normalisation": gcfg["normalisation"],
                    "FindingThresholdPercent": gcfg["finding_threshold_percent"],
                    "FindingMinVolumeMM3": gcfg["finding_min_volume_mm3"]}
            _sinks(workflow, settings, post, gad_wf, [
                ("outputnode.post_preproc", "T1w", dict(desc="preproc"),
                 {**meta, "SkullStripped": False,
                  "Description": "bias-corrected with the pre-contrast field, "
                  "registered to and normalised to the pre-contrast T1w", "SpatialReference":
                  f"bids:raw:{Path(t1w).relative_to(settings.execution.bids_dir).as_posix()}"}),
                ("outputnode.subtraction", "enhancement", dict(desc="subtraction"),
                 {**meta, "Description": "post - pre (normalised)", "Units": "arbitrary"}),
                ("outputnode.percent", "enhancement", dict(desc="percent"),
                 {**meta, "Description": "100 (post - pre) / max(pre, floor)", "Units": "%"}),
                ("outputnode.subtraction_tpl", "enhancement",
                 dict(space=template, desc="subtraction"), {**meta, "Units": "arbitrary"}),
                ("outputnode.percent_tpl", "enhancement", dict(space=template, desc="percent"),
                 {**meta, "Units": "%"}),
                ("outputnode.post2pre_xfm", "xfm",
                 {"from": "postcontrast", "to": "T1w", "mode": "image"},
                 {**meta, "Software": ants, "Type": "rigid"}),
                ("outputnode.regions", "regions", dict(atlas=atlas, desc="percent"),
                 {**meta, "Description": "per-ROI percent enhancement (atlas, meningeal and "
                  "calvarial bands, sinuses); ipsi/contra/AI rows for a lateral headache",
                  "HeadacheSide": info.get("headache_side")}),
                ("outputnode.findings", "findings", dict(desc="enhancement"),
                 {**meta, "Description": "connected clusters above the threshold and minimum "
                  "volume, attributed to the ROI holding most of their voxels"}),
            ], prefix=f"gad_{agent}_{tag}", extra_sources=[t1w],
                meta_from=(gad_wf, "outputnode.provenance"))
        for agent, dce in files["dce"]:
            if settings.agent_class(agent) != "gadolinium":
                continue
            if not files["vfa"]:
                raise InputMissingError(
                    f"{dce}: a DCE series needs a T1 map: no flip-<n>_VFA images in this "
                    "session")
            _add_dce(workflow, settings, layout, anat_wf, agent, dce, files["vfa"], t1w,
                     template, template_files, atlas, pid, sid, info, tag)
        for i, pet in enumerate(files["pet"]):
            _add_pet(workflow, settings, layout, anat_wf, pet, t1w, template, template_files,
                     subject, ses, pid, sid, info, f"{tag}_{i}")
        for tracer, acqs in files["spect"].items():
            _add_spect(workflow, settings, layout, anat_wf, tracer, acqs, t1w, template,
                       template_files, pid, sid, info, tag)
    if not anat_of:
        raise InputMissingError(
            f"{Path(settings.execution.bids_dir) / ('sub-' + subject)}: no pre-contrast T1w "
            "(sub-<label>[_ses-<label>]_T1w.nii.gz) found; every session needs one")
    rows = {ses: session_info(settings.execution.bids_dir, subject, ses, cfg["covariates"])
            for ses in all_files}
    pre_done = set()
    for pair in uspio_pairs(all_files, settings.agent_class, rows,
                            cfg["uspio"]["pre_session_column"]):
        if pair["session"] not in anat_of:
            continue  # post session not selected (or without T1w: nothing to report on)
        # ROIs and the reference grid come from the pre session (its T1w if processed)
        anat_wf, t1w = anat_of.get(pair["pre_session"], anat_of[pair["session"]])
        _add_uspio(workflow, settings, layout, anat_wf, t1w, pair, template, template_files,
                   info_of[pair["session"]], sink_pre=pair["pre"][0] not in pre_done)
        pre_done.add(pair["pre"][0])
    return workflow


def _add_dce(workflow, settings, layout, anat_wf, agent, dce, vfa_files, t1w, template,
             template_files, atlas, pid, sid, info, tag):
    """The DCE workflow of one series, connected to the session's anatomy, and its sinks."""
    from pipeline.errors import DataError
    from pipeline.interfaces.dce import dce_metadata
    from pipeline.preflight import vfa_acquisition

    from .dce import init_dce_wf

    try:
        meta = dce_metadata(dce, layout.get_metadata(dce))
    except ValueError as exc:
        raise DataError(str(exc)) from None
    # the checks the preflight made (one piece of code for both)
    angles, vfa_tr = vfa_acquisition([layout.get_metadata(f) for f in vfa_files], vfa_files)
    dcfg = settings.workflow["dce"]
    vif_mask = _vif_mask(dcfg.get("vif_mask"), settings.execution.bids_dir, pid, sid, dce)
    dce_wf = init_dce_wf(agent, meta, angles, vfa_tr, template, template_files["template"],
                         dcfg, pid, sid, headache_side=info.get("headache_side"),
                         covariates=info["carry"],
                         min_voxels=settings.workflow["regional"]["min_voxels"],
                         vif_mask=vif_mask,
                         omp_nthreads=settings.nipype.omp_nthreads,
                         name=f"dce_{agent}_{tag}_wf")
    dce_wf.inputs.inputnode.dce = dce
    dce_wf.inputs.inputnode.vfa = list(vfa_files)
    workflow.connect([
        (anat_wf, dce_wf, [("outputnode.t1w_preproc", "inputnode.t1w_preproc"),
                           ("outputnode.rois_native", "inputnode.rois"),
                           ("outputnode.rois_lut", "inputnode.rois_lut"),
                           ("outputnode.anat2tpl_xfm", "inputnode.anat2tpl_xfm")]),
    ])  # fmt:skip
    meta_d = {"ContrastAgent": agent, "AgentClass": "gadolinium", "Model": dcfg["model"]}
    units = {"ktrans": ("Ktrans", "1/min"), "vp": ("vp", "fraction"), "ve": ("ve", "fraction")}
    specs = []
    for key, (suffix, unit) in units.items():
        specs.append((f"outputnode.{key}", suffix, {}, {**meta_d, "Units": unit}))
        specs.append((f"outputnode.{key}_tpl", suffix, {"space": template},
                      {**meta_d, "Units": unit}))
    t1_meta = {**meta_d, "Units": "s", "Method": "VFA (DESPOT1)", "SkullStripped": False}
    res_meta = {**meta_d, "Description": "root-mean-square fit residual", "Units": "mM"}
    specs += [
        ("outputnode.t1", "T1map", {}, t1_meta),
        ("outputnode.t1_tpl", "T1map", {"space": template}, t1_meta),
        ("outputnode.residual", "residual", {"desc": "fit"}, res_meta),
        ("outputnode.residual_tpl", "residual", {"space": template, "desc": "fit"}, res_meta),
        ("outputnode.vif", "timeseries", {"desc": "vif"},
         {**meta_d, "Description": "venous input function from "
          + (f"the user mask {vif_mask}" if vif_mask else "the superior sagittal sinus"),
          "Columns": ["time_s", "blood_mM", "plasma_mM"]}),
        ("outputnode.dce2t1w_xfm", "xfm", {"from": "dce", "to": "T1w", "mode": "image"},
         {**meta_d, "Type": "rigid"}),
        ("outputnode.regions", "regions", {"atlas": atlas, "desc": "Ktrans"},
         {**meta_d, "Description": "per-ROI Ktrans (1/min) on the DCE grid",
          "HeadacheSide": info.get("headache_side")}),
        ("outputnode.rois", "dseg", {"atlas": atlas, "desc": "extracerebral"},
         {**meta_d, "Atlas": atlas, "Description": "the ROIs of the regional Ktrans table "
          "(atlas regions, meningeal and calvarial bands, dural sinuses) on the DCE grid"}),
        ("inputnode.rois_lut", "dseg", {"atlas": atlas, "desc": "extracerebral"}, None),
    ]
    _sinks(workflow, settings, dce, dce_wf, specs, prefix=f"dce_{agent}_{tag}",
           extra_sources=list(vfa_files) + [t1w], meta_from=(dce_wf, "outputnode.provenance"))


def _vif_mask(pattern, bids_dir, pid, sid, dce):
    """The user's input-function mask for this series, or None (``dce.vif_mask`` unset).

    ``pattern`` may hold ``{subject}`` and ``{session}`` (labels without prefix); a relative
    path is taken from the BIDS root. The mask must lie on the grid of the DCE series.
    """
    import nibabel as nb
    import numpy as np

    from pipeline.errors import DataError, InputMissingError

    if not pattern:
        return None
    path = Path(str(pattern).format(subject=pid[4:], session=sid[4:] if sid != "n/a" else ""))
    if not path.is_absolute():
        path = Path(bids_dir) / path
    if not path.is_file():
        raise InputMissingError(f"{path}: input-function mask (dce.vif_mask) not found; draw "
                                "it on the DCE grid or unset dce.vif_mask to use the sinus")
    try:
        mask, ref = nb.load(path), nb.load(dce)
    except Exception as exc:  # nibabel raises several types for unreadable files
        raise DataError(f"{path}: cannot read the input-function mask ({exc})") from None
    if mask.shape[:3] != ref.shape[:3] or not np.allclose(mask.affine, ref.affine, atol=1e-3):
        raise DataError(f"{path}: input-function mask grid {mask.shape[:3]} differs from the DCE "
                        f"series {dce} ({ref.shape[:3]}); draw it on the DCE grid")
    if not np.any(np.asarray(mask.dataobj) > 0):
        raise DataError(f"{path}: input-function mask is empty")
    return str(path)


def _add_uspio(workflow, settings, layout, anat_wf, t1w, pair, template, template_files, info,
               sink_pre=True):
    """The USPIO workflow of one pre/post MEGRE pair, connected to the anatomy, and sinks."""
    from pipeline.metadata import megre_metadata

    from .uspio import init_uspio_wf

    ucfg = settings.workflow["uspio"]
    subject = Path(pair["post"][0]).name.split("_")[0][4:]
    pid = f"sub-{subject}"
    ses, pre_ses = pair["session"], pair["pre_session"]
    sid = f"ses-{ses}" if ses else "n/a"
    tag = f"ses_{ses}" if ses else "nosession"
    series = {}
    for key in ("pre", "post"):
        meta = megre_metadata([layout.get_metadata(f) for f in pair[key]], pair[key],
                              min_echoes=ucfg["min_echoes"])
        series[key] = ([pair[key][i] for i in meta.order], meta.echo_times_s.tolist())
    files = dict(template_files)
    files.update(atlas_files(template, settings.workflow["anat"]["template_resolution"],
                             ucfg["atlas"], ucfg["atlas_desc"], key="uspio_atlas"))
    wf = init_uspio_wf(
        pair["agent"], series["pre"][1], series["post"][1], template, files, ucfg, pid, sid,
        pre_session=(f"ses-{pre_ses}" if pre_ses != ses else None),
        headache_side=info.get("headache_side"), covariates=info["carry"],
        min_voxels=settings.workflow["regional"]["min_voxels"],
        omp_nthreads=settings.nipype.omp_nthreads, name=f"uspio_{pair['agent']}_{tag}_wf")
    wf.inputs.inputnode.pre_echoes = series["pre"][0]
    wf.inputs.inputnode.post_echoes = series["post"][0]
    workflow.connect([
        (anat_wf, wf, [("outputnode.t1w_preproc", "inputnode.t1w_preproc"),
                       ("outputnode.rois_native", "inputnode.rois"),
                       ("outputnode.rois_lut", "inputnode.rois_lut"),
                       ("outputnode.anat2tpl_xfm", "inputnode.anat2tpl_xfm"),
                       ("outputnode.tpl2anat_xfm", "inputnode.tpl2anat_xfm")]),
    ])  # fmt:skip
    bids = settings.execution.bids_dir
    pre_ref = Path(series["pre"][0][0]).relative_to(bids).as_posix()
    meta = {"ContrastAgent": pair["agent"], "AgentClass": "iron_oxide",
            "PreSession": f"ses-{pre_ses}" if pre_ses else "n/a",
            "SpatialReference": f"bids:raw:{pre_ref}"}
    atlas, roi_atlas = ucfg["atlas"], settings.workflow["anat"]["atlas"]
    post_src = series["post"][0][0]  # derivatives are named after the post series
    fit = {"FitModel": "monoexponential", "FitMethod": ucfg["fit"],
           "MinEchoes": ucfg["min_echoes"], "SkullStripped": False}
    specs = [
        ("outputnode.dr2star", "dR2star", {}, {**meta, **fit, "Units": "1/s",
         "Description": "R2*post - R2*pre on the pre-infusion grid (valid fits only)"}),
        ("outputnode.dr2star_tpl", "dR2star", {"space": template}, {**meta, "Units": "1/s"}),
        ("outputnode.r2star_post", "R2starmap", {}, {**meta, **fit, "Units": "1/s",
         "Description": "post-infusion R2*, resampled once onto the pre-infusion grid"}),
        ("outputnode.r2star_post_tpl", "R2starmap", {"space": template},
         {**meta, "Units": "1/s"}),
        ("outputnode.nrmse_post", "residual", {"desc": "fit"}, {**meta, **fit,
         "Description": "fit residual RMS / S0 of the post series (its own grid)",
         "Units": "fraction"}),
        ("outputnode.post2pre_xfm", "xfm", {"from": "post", "to": "pre", "mode": "image"},
         {**meta, "Type": "rigid"}),
        ("outputnode.territories", "dseg", {"atlas": atlas}, {**meta, "Atlas": atlas,
         "Description": "vascular-territory atlas on the pre-infusion MEGRE grid"}),
        ("outputnode.territories_lut", "dseg", {"atlas": atlas}, None),
        ("outputnode.rois", "dseg", {"atlas": roi_atlas, "desc": "extracerebral"},
         {**meta, "Atlas": roi_atlas, "Description": "the ROIs of the atlas regional dR2star "
          "table (atlas regions, meningeal and calvarial bands, dural sinuses) on the "
          "pre-infusion MEGRE grid"}),
        ("inputnode.rois_lut", "dseg", {"atlas": roi_atlas, "desc": "extracerebral"}, None),
        ("outputnode.regions_territories", "regions", {"atlas": atlas, "desc": "dR2star"},
         {**meta, "Atlas": atlas, "HeadacheSide": info.get("headache_side"),
          "Description": "per-ROI dR2star (1/s): vascular territories, vessels, pons, "
                         "thalamus; ipsi/contra/AI rows for a lateral headache"}),
        ("outputnode.regions_rois", "regions", {"atlas": roi_atlas, "desc": "dR2star"},
         {**meta, "Atlas": roi_atlas, "HeadacheSide": info.get("headache_side"),
          "Description": "per-ROI dR2star (1/s): atlas regions, meningeal and calvarial "
                         "bands, dural sinuses"}),
    ]
    _sinks(workflow, settings, post_src, wf, specs, prefix=f"uspio_{pair['agent']}_{tag}",
           extra_sources=series["post"][0][1:] + list(series["pre"][0]) + [t1w],
           meta_from=(wf, "outputnode.provenance_post"))
    # the pre series' own maps, named after it (they may belong to another session)
    pre_specs = [
        ("outputnode.r2star_pre", "R2starmap", {}, {**fit, "Units": "1/s"}),
        ("outputnode.r2star_pre_tpl", "R2starmap", {"space": template}, {**fit, "Units": "1/s"}),
        ("outputnode.nrmse_pre", "residual", {"desc": "fit"}, {**fit, "Units": "fraction",
         "Description": "fit residual RMS / S0"}),
        ("outputnode.pre2t1w_xfm", "xfm", {"from": "MEGRE", "to": "T1w", "mode": "image"},
         {"Type": "rigid", "SpatialReference": f"bids:raw:{Path(t1w).relative_to(bids)}"}),
    ]
    if not sink_pre:  # already written for another post series paired with it
        return
    _sinks(workflow, settings, series["pre"][0][0], wf, pre_specs,
           prefix=f"uspio_pre_{pair['agent']}_{tag}", extra_sources=[t1w],
           meta_from=(wf, "outputnode.provenance_pre"))


def _add_pet(workflow, settings, layout, anat_wf, pet, t1w, template, template_files, subject,
             ses, pid, sid, info, tag):
    """The PET workflow of one series (metadata validated first) and its sinks."""
    import logging

    import nibabel as nb

    from pipeline.bids import carried_covariates
    from pipeline.metadata import pet_metadata

    from .pet import init_pet_wf

    cfg = settings.workflow
    pcfg = cfg["pet"]
    column = pcfg["body_weight_column"]
    weights = carried_covariates(settings.execution.bids_dir, subject, ses, cfg["covariates"],
                                 [column, "weight"])
    weight = next((v for v in weights.values() if v != "n/a"), None)
    img = nb.load(pet)
    meta = pet_metadata(layout.get_metadata(pet), pet, body_weight=weight,
                        n_volumes=img.shape[3] if img.ndim == 4 else 1,
                        repair_end_times=pcfg["repair_frame_end_times"])
    genotype = info["carry"].get("tspo_genotype", "n/a")
    if genotype == "LAB":
        logging.getLogger("nipype.workflow").warning(
            "%s: TSPO low-affinity binder (LAB): SUV/SUVR are not comparable with HAB/MAB; "
            "the group level excludes or covaries tspo_genotype", pet)
    files = dict(template_files)
    files.update(atlas_files(template, cfg["anat"]["template_resolution"], pcfg["atlas"],
                             pcfg["atlas_desc"], key="pet_atlas"))
    wf = init_pet_wf(meta, template, files, pcfg, pid, sid,
                     headache_side=info.get("headache_side"), covariates=info["carry"],
                     min_voxels=cfg["regional"]["min_voxels"],
                     omp_nthreads=settings.nipype.omp_nthreads, name=f"pet_{tag}_wf")
    wf.inputs.inputnode.pet = pet
    workflow.connect([
        (anat_wf, wf, [("outputnode.t1w_preproc", "inputnode.t1w_preproc"),
                       ("outputnode.t1w_mask", "inputnode.t1w_mask"),
                       ("outputnode.rois_native", "inputnode.rois"),
                       ("outputnode.rois_lut", "inputnode.rois_lut"),
                       ("outputnode.anat2tpl_xfm", "inputnode.anat2tpl_xfm"),
                       ("outputnode.tpl2anat_xfm", "inputnode.tpl2anat_xfm")]),
    ])  # fmt:skip
    lo, hi = pcfg["window_min"]
    m = {"TracerName": meta.tracer_name, "TracerRadionuclide": meta.radionuclide,
         "FrameWindowMin": [lo, hi], "InjectedDoseBq": meta.injected_dose_bq,
         "SUVDoseBq": meta.suv_dose_bq, "BodyWeightKg": meta.body_weight_kg,
         "BodyWeightSource": meta.body_weight_source,
         "ImageDecayCorrected": meta.decay_corrected, "TSPOGenotype": genotype,
         "FrameDurationRepaired": meta.frame_duration_repaired,
         "LowAffinityBinder": genotype == "LAB"}
    atlas, roi_atlas = pcfg["atlas"], cfg["anat"]["atlas"]
    t1w_ref = f"bids:raw:{Path(t1w).relative_to(settings.execution.bids_dir).as_posix()}"
    specs = [
        ("outputnode.suv", "SUV", {}, {**m, "Units": "g/mL", "Description":
         "standardised uptake value, duration-weighted mean of the window's frames"}),
        ("outputnode.suvr", "SUVR", {}, {**m, "Units": "ratio"}),
        ("outputnode.suv_t1w", "SUV", {"space": "T1w"}, {**m, "Units": "g/mL",
                                                          "SpatialReference": t1w_ref}),
        ("outputnode.suvr_t1w", "SUVR", {"space": "T1w"}, {**m, "Units": "ratio",
                                                            "SpatialReference": t1w_ref}),
        ("outputnode.suv_tpl", "SUV", {"space": template}, {**m, "Units": "g/mL"}),
        ("outputnode.suvr_tpl", "SUVR", {"space": template}, {**m, "Units": "ratio"}),
        ("outputnode.pet_ref", "pet", {"desc": "mean"}, {**m, "Description":
         "motion-corrected, duration-weighted mean of the window's frames (image units)"}),
        ("outputnode.pet2t1w_xfm", "xfm", {"from": "pet", "to": "T1w", "mode": "image"},
         {**m, "Type": "rigid"}),
        ("outputnode.regions_atlas", "regions", {"atlas": atlas, "desc": "SUVR"},
         {**m, "Atlas": atlas, "HeadacheSide": info.get("headache_side"),
          "Description": "per-ROI SUVR on the T1w grid (TSPO regions)"}),
        ("outputnode.atlas_t1w", "dseg", {"atlas": atlas, "space": "T1w"},
         {**m, "Atlas": atlas, "SpatialReference": t1w_ref,
          "Description": "the TSPO-region atlas on the T1w grid (labels of the regional table)"}),
        ("outputnode.atlas_lut", "dseg", {"atlas": atlas, "space": "T1w"}, None),
        ("outputnode.regions_rois", "regions", {"atlas": roi_atlas, "desc": "SUVR"},
         {**m, "Atlas": roi_atlas, "HeadacheSide": info.get("headache_side"),
          "Description": "per-ROI SUVR on the T1w grid: atlas regions, meningeal and "
                         "calvarial bands, dural sinuses"}),
    ]
    _sinks(workflow, settings, pet, wf, specs, prefix=f"pet_{tag}", extra_sources=[t1w],
           meta_from=(wf, "outputnode.provenance"))


def _add_spect(workflow, settings, layout, anat_wf, tracer, acqs, t1w, template,
               template_files, pid, sid, info, tag):
    """The SPECT workflow of one early/late pair and its sinks."""
    from pipeline.errors import InputMissingError
    from pipeline.metadata import spect_metadata

    from .spect import init_spect_wf

    scfg = settings.workflow["spect"]
    early, late = acqs.get(scfg["early_label"]), acqs.get(scfg["late_label"])
    if early is None or late is None:
        have = next(iter(acqs.values()))
        raise InputMissingError(
            f"{have}: a SPECT uptake ratio needs acq-{scfg['early_label']} and "
            f"acq-{scfg['late_label']} acquisitions of trc-{tracer}; found "
            f"{', '.join('acq-' + str(a) for a in acqs)}")
    metas = {k: spect_metadata(layout.get_metadata(f), f) for k, f in
             (("early", early), ("late", late))}
    if metas["late"].start_s <= metas["early"].start_s:
        raise InputMissingError(f"{late}: the late acquisition starts before the early one "
                                "(FrameTimesStart); check the acq- labels")
    wf = init_spect_wf(tracer, metas["early"], metas["late"], template,
                       template_files["template"], scfg, pid, sid,
                       headache_side=info.get("headache_side"), covariates=info["carry"],
                       min_voxels=settings.workflow["regional"]["min_voxels"],
                       omp_nthreads=settings.nipype.omp_nthreads, name=f"spect_{tracer}_{tag}_wf")
    wf.inputs.inputnode.early = early
    wf.inputs.inputnode.late = late
    workflow.connect([
        (anat_wf, wf, [("outputnode.t1w_preproc", "inputnode.t1w_preproc"),
                       ("outputnode.rois_native", "inputnode.rois"),
                       ("outputnode.rois_lut", "inputnode.rois_lut"),
                       ("outputnode.anat2tpl_xfm", "inputnode.anat2tpl_xfm")]),
    ])  # fmt:skip
    m = {"TracerName": tracer, "EarlyStartS": metas["early"].start_s,
         "LateStartS": metas["late"].start_s,
         "DecayCorrectedToInjection": True, "Units": "ratio",
         "EarlyDecayFactor": metas["early"].decay_factor,
         "LateDecayFactor": metas["late"].decay_factor}
    atlas = settings.workflow["anat"]["atlas"]
    specs = [
        ("outputnode.ratio", "ratio", {"acq": None, "desc": "lateEarly"}, {**m, "Description":
         "late / early uptake (decay-corrected count rates) on the early grid"}),
        ("outputnode.ratio_tpl", "ratio", {"acq": None, "space": template, "desc": "lateEarly"},
         m),
        ("outputnode.early2t1w_xfm", "xfm", {"acq": None, "from": "spect", "to": "T1w",
                                             "mode": "image"}, {"Type": "rigid"}),
        ("outputnode.late2early_xfm", "xfm", {"acq": None, "from": "late", "to": "early",
                                              "mode": "image"}, {"Type": "rigid"}),
        ("outputnode.regions", "regions", {"acq": None, "atlas": atlas,
                                           "desc": "lateEarlyRatio"},
         {**m, "Atlas": atlas, "HeadacheSide": info.get("headache_side"),
          "Description": "per-ROI late/early ratio (atlas regions, meningeal and calvarial "
                         "bands, dural sinuses)"}),
    ]
    _sinks(workflow, settings, early, wf, specs, prefix=f"spect_{tracer}_{tag}",
           extra_sources=[late, t1w], meta_from=(wf, "outputnode.provenance"))
