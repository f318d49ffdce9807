"""Writing derivatives: one sink workflow per modality, every output from the registry.

Each ``init_ds_<modality>_wf`` builds the sidecar fields its modality shares (agent, model,
settings that made the maps), then one :class:`~pipeline.interfaces.bids.DerivativesSink`
per output of :mod:`pipeline.derivatives.registry` for that modality; what a derivative is
called, its units and description are declared there and nowhere else.
:func:`connect_outputs` wires a modality workflow's fields to its sink workflow.
"""

from __future__ import annotations

from pathlib import Path

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from pipeline.derivatives.registry import outputs, resolve
from pipeline.interfaces.ants import ANTS_SOFTWARE


def _atlas_meta(meta: dict, entities: dict, settings) -> dict:
    """Whether the atlas named in a sidecar is published, approximate or the lab's own."""
    from pipeline.atlas import atlas_provenance

    name = meta.get("Atlas") or entities.get("atlas")
    if not name:
        return meta
    meta = {"Atlas": name, **meta, **atlas_provenance(name)}
    wcfg = settings.workflow
    own = {c.atlas: c.atlas_file for c in (wcfg.anat, wcfg.uspio, wcfg.pet) if c.atlas_file}
    if name in own:  # a lab's own file: what it is, the lab knows
        meta.update(AtlasType="user", AtlasSource=str(own[name]))
    return meta


def init_ds_wf(
    *,
    sink: str,
    settings,
    source_file,
    context: dict,
    common: dict | None = None,
    extra_sources=(),
    name: str,
):
    """
    Sinks for every registry output of ``sink`` derived from ``source_file``.

    Parameters
    ----------
    sink : :obj:`str`
        the registry's sink group (``anat``, ``nt1w``, ``gadolinium``, ``dce``, ``uspio``,
        ``uspio_pre``, ``pet``, ``spect``)
    settings : :class:`pipeline.config.Settings`
        the run's settings (output and dataset folders, atlas files)
    source_file : :obj:`str`
        the BIDS file the derivatives are named after
    context : :obj:`dict`
        values of the registry's placeholders (template, atlas, headache side...)
    common : :obj:`dict`
        sidecar fields shared by the modality's outputs
    extra_sources : :obj:`list`
        further BIDS files the derivatives derive from
    name : :obj:`str`
        workflow name

    Inputs
    ------
    <field>
        one per registry output (its ``key``)
    provenance
        sidecar fields computed at run time (added to every sidecar)
    """
    from niworkflows.engine.workflows import LiterateWorkflow as Workflow

    from pipeline.interfaces.bids import DerivativesSink

    context = {"template": settings.workflow.anat.template, "ants": ANTS_SOFTWARE, **context}
    resolved = [(o, resolve(o, context)) for o in outputs(sink)]
    resolved = [(o, r) for o, r in resolved if r is not None]
    workflow = Workflow(name=name)
    fields = list(dict.fromkeys(o.key for o, _ in resolved))
    inputnode = pe.Node(niu.IdentityInterface(fields=[*fields, "provenance"]), name="inputnode")
    for out, (entities, meta) in resolved:
        if meta is not None:
            meta = _atlas_meta({**(common or {}), **meta}, entities, settings)
        ds = pe.Node(
            DerivativesSink(
                base_directory=settings.execution.output_dir,
                bids_dir=settings.execution.bids_dir,
                source_file=source_file,
                suffix=out.suffix,
                entities=entities,
                meta_dict=meta or {},
                sidecar=meta is not None,
                extra_sources=list(extra_sources),
            ),
            name=f"ds_{out.key}",
            run_without_submitting=True,
            mem_gb=0.1,
        )
        workflow.connect(inputnode, out.key, ds, "in_file")
        if meta is not None:
            workflow.connect(inputnode, "provenance", ds, "meta_extra")
    return workflow


def connect_outputs(workflow, source_wf, ds_wf, sink: str, provenance: str | None = None):
    """Wire the fields of ``source_wf`` that ``ds_wf`` (a sink workflow of ``sink``) stores,
    and the node field holding the run-time provenance."""
    fields = set(ds_wf.get_node("inputnode").interface._fields)
    pairs = list(dict.fromkeys((o.field, f"inputnode.{o.key}") for o in outputs(sink)
                               if o.key in fields))  # fmt:skip
    if provenance is not None:
        pairs.append((provenance, "inputnode.provenance"))
    workflow.connect([(source_wf, ds_wf, pairs)])


def raw_ref(settings, path) -> str:
    """``bids:raw:<path relative to the dataset root>`` (a sidecar's SpatialReference)."""
    return f"bids:raw:{Path(path).relative_to(settings.execution.bids_dir).as_posix()}"


def _session_context(settings, ses) -> dict:
    return {
        "atlas": settings.workflow.anat.atlas,
        "headache_side": ses.headache_side,
        "t1w_ref": raw_ref(settings, ses.t1w),
    }


def init_ds_anat_wf(*, settings, ses, reference_session=None, name="ds_anat_wf"):
    """
    Derivatives of the anatomical workflow: preprocessed T1w, brain mask, tissue classes,
    template transforms, atlas and ROI label images, and the nT1w regional table.

    Parameters
    ----------
    settings : :class:`pipeline.config.Settings`
        the run's settings
    ses : :class:`pipeline.plan.SessionPlan`
        the session (its T1w names the derivatives)
    reference_session : :obj:`str` or None
        the session whose ROIs this one carries (``same_rois_across_sessions``)
    name : :obj:`str`
        workflow name
    """
    acfg = settings.workflow.anat
    method = (
        "deepbet brain extraction"
        if acfg.skull_strip == "deepbet"
        else "non-zero voxels of the brain-extracted input"
    )
    context = {
        **_session_context(settings, ses),
        "bias_correction": {"Method": "N4BiasFieldCorrection", **acfg.n4.to_dict()},
        "mask_method": method + ", then GM+WM of the Atropos segmentation closed at the pial hull",
        "segmentation": acfg.segmentation.to_dict(),
        "segmentation_method": "ANTs Atropos",
        "registration": {"Software": ANTS_SOFTWARE, **acfg.registration.to_dict()},
        "meningeal_band_mm": acfg.meningeal_band_mm,
        "calvarial_band_mm": acfg.calvarial_band_mm,
    }
    reuse = ses.anatomy
    if reuse is not None:  # sMRIPrep/fMRIPrep's anatomy (--derivatives)
        rel = dict(zip(("t1w", "mask", "dseg", "csf", "gm", "wm", "fwd", "inv"), reuse.relative()))
        by = f"reused from {reuse.generated_by}"
        context.update(
            bias_correction={"Method": by, "ReusedFile": rel["t1w"], "Root": reuse.root},
            mask_method=f"{by} ({rel['mask']})",
            segmentation={
                "Method": by,
                "ReusedFiles": [rel[k] for k in ("dseg", "csf", "gm", "wm")],
            },
            segmentation_method=f"{by}, relabelled from BIDS 1 GM, 2 WM, 3 CSF",
            registration={"Method": by, "ReusedFiles": [rel["fwd"], rel["inv"]]},
        )
    if reference_session:
        context["reference_session"] = reference_session
    return init_ds_wf(sink="anat", settings=settings, source_file=ses.t1w, context=context,
                      name=name)  # fmt:skip


def init_ds_nt1w_wf(*, settings, ses, name="ds_nt1w_wf"):
    """
    The regional table of the T1w normalised to its brain median (``desc-nT1w_regions``).

    Parameters
    ----------
    settings : :class:`pipeline.config.Settings`
        the run's settings
    ses : :class:`pipeline.plan.SessionPlan`
        the session
    name : :obj:`str`
        workflow name
    """
    context = _session_context(settings, ses)
    return init_ds_wf(sink="nt1w", settings=settings, source_file=ses.t1w, context=context,
                      name=name)  # fmt:skip


def init_ds_gadolinium_wf(*, settings, ses, gad, name="ds_gadolinium_wf"):
    """
    Derivatives of one post-contrast T1w: the registered post image, subtraction and
    percent-enhancement maps (native and template space), the rigid transform, the regional
    table, its ROIs and the enhancement findings.

    Parameters
    ----------
    settings : :class:`pipeline.config.Settings`
        the run's settings
    ses : :class:`pipeline.plan.SessionPlan`
        the session
    gad : :class:`pipeline.plan.GadoliniumInput`
        the post-contrast image and its agent
    name : :obj:`str`
        workflow name
    """
    g = settings.workflow.gadolinium
    common = {
        "ContrastAgent": gad.agent,
        "AgentClass": "gadolinium",
        "Normalisation": g.normalisation,
        "FindingThresholdPercent": g.finding_threshold_percent,
        "FindingNoiseSD": g.finding_noise_sd,
        "FindingSpreadSD": g.finding_spread_sd,
        "FindingVesselRadiusMM": g.finding_vessel_radius_mm,
        "FindingMinVolumeMM3": g.finding_min_volume_mm3,
    }
    return init_ds_wf(
        sink="gadolinium",
        settings=settings,
        source_file=gad.post,
        context=_session_context(settings, ses),
        common=common,
        extra_sources=[ses.t1w],
        name=name,
    )


def init_ds_dce_wf(*, settings, ses, dce, name="ds_dce_wf"):
    """
    Derivatives of one DCE series: Ktrans, vp, ve, T1 and fit residual maps (native and
    template space), the input function, the rigid transform, the regional table and ROIs.

    Parameters
    ----------
    settings : :class:`pipeline.config.Settings`
        the run's settings
    ses : :class:`pipeline.plan.SessionPlan`
        the session
    dce : :class:`pipeline.plan.DCEInput`
        the series, its VFA images and input-function mask
    name : :obj:`str`
        workflow name
    """
    vif = f"the user mask {dce.vif_mask}" if dce.vif_mask else "the superior sagittal sinus"
    common = {
        "ContrastAgent": dce.agent,
        "AgentClass": "gadolinium",
        "Model": settings.workflow.dce.model,
    }
    context = {
        **_session_context(settings, ses),
        "vif_description": f"venous input function from {vif}",
        "ve_estimated": settings.workflow.dce.model != "patlak",
        "dce_ref": raw_ref(settings, dce.series),
    }
    return init_ds_wf(
        sink="dce",
        settings=settings,
        source_file=dce.series,
        context=context,
        common=common,
        extra_sources=[*dce.vfa, ses.t1w],
        name=name,
    )


def _uspio_fit(settings) -> dict:
    u = settings.workflow.uspio
    return {
        "FitModel": "monoexponential",
        "FitMethod": u.fit,
        "MinEchoes": u.min_echoes,
    }


def init_ds_uspio_wf(*, settings, ses, pair, t1w, name="ds_uspio_wf"):
    """
    Derivatives of one post-ferumoxytol series: ΔR2* (native and template space), the post
    R2*, fit residual, post→pre transform, territory atlas, ROIs and regional tables; named
    after the post series' first echo.

    Parameters
    ----------
    settings : :class:`pipeline.config.Settings`
        the run's settings
    ses : :class:`pipeline.plan.SessionPlan`
        the session of the post series
    pair : :class:`pipeline.plan.USPIOInput`
        the pre/post MEGRE series
    t1w : :obj:`str`
        the T1w whose ROIs the maps use (the pre session's)
    name : :obj:`str`
        workflow name
    """
    pre_ses = pair.pre_session
    common = {
        "ContrastAgent": pair.agent,
        "AgentClass": "iron_oxide",
        "PreSession": f"ses-{pre_ses}" if pre_ses else "n/a",
        "SpatialReference": raw_ref(settings, pair.pre.images[0]),
    }
    context = {
        **_session_context(settings, ses),
        "territory_atlas": settings.workflow.uspio.atlas,
        "fit": _uspio_fit(settings),
    }
    return init_ds_wf(
        sink="uspio",
        settings=settings,
        source_file=pair.post.images[0],
        context=context,
        common=common,
        extra_sources=[*pair.post.images[1:], *pair.pre.images, t1w],
        name=name,
    )


def init_ds_uspio_pre_wf(*, settings, pair, t1w, name="ds_uspio_pre_wf"):
    """
    The pre-infusion series' own maps (R2*, fit residual, MEGRE→T1w transform), named after
    its first echo (it may belong to another session than the post series).

    Parameters
    ----------
    settings : :class:`pipeline.config.Settings`
        the run's settings
    pair : :class:`pipeline.plan.USPIOInput`
        the pre/post MEGRE series
    t1w : :obj:`str`
        the T1w the pre series is registered to
    name : :obj:`str`
        workflow name
    """
    context = {"t1w_ref": raw_ref(settings, t1w), "fit": _uspio_fit(settings)}
    return init_ds_wf(
        sink="uspio_pre",
        settings=settings,
        source_file=pair.pre.images[0],
        context=context,
        extra_sources=[t1w],
        name=name,
    )


def init_ds_pet_wf(*, settings, ses, pet, name="ds_pet_wf"):
    """
    Derivatives of one PET series: SUV and SUVR (own grid, T1w grid, template space), the
    mean image, the rigid transform, the TSPO-region atlas and both regional tables.

    Parameters
    ----------
    settings : :class:`pipeline.config.Settings`
        the run's settings
    ses : :class:`pipeline.plan.SessionPlan`
        the session
    pet : :class:`pipeline.plan.PETInput`
        the series and its parsed metadata
    name : :obj:`str`
        workflow name
    """
    meta, genotype = pet.metadata, pet.genotype
    lo, hi = settings.workflow.pet.window_min
    common = {
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
    context = {**_session_context(settings, ses), "pet_atlas": settings.workflow.pet.atlas}
    return init_ds_wf(
        sink="pet",
        settings=settings,
        source_file=pet.path,
        context=context,
        common=common,
        extra_sources=[ses.t1w],
        name=name,
    )


def init_ds_spect_wf(*, settings, ses, spect, name="ds_spect_wf"):
    """
    Derivatives of one early/late SPECT pair: the late/early ratio (native and template
    space), both rigid transforms and the regional table; named after the early image.

    Parameters
    ----------
    settings : :class:`pipeline.config.Settings`
        the run's settings
    ses : :class:`pipeline.plan.SessionPlan`
        the session
    spect : :class:`pipeline.plan.SPECTInput`
        the pair and its timing
    name : :obj:`str`
        workflow name
    """
    early, late = spect.early_metadata, spect.late_metadata
    common = {
        "TracerName": spect.tracer,
        "EarlyStartS": early.start_s,
        "LateStartS": late.start_s,
        "DecayCorrectedToInjection": True,
        "EarlyDecayFactor": early.decay_factor,
        "LateDecayFactor": late.decay_factor,
    }
    return init_ds_wf(
        sink="spect",
        settings=settings,
        source_file=spect.early,
        context=_session_context(settings, ses),
        common=common,
        extra_sources=[spect.late, ses.t1w],
        name=name,
    )
