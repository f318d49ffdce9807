"""USPIO (ferumoxytol) MRI: R2* maps before and after the agent, ΔR2* and its regional
statistics in vascular territories, the pons, the thalamus and the meningeal band.

.. autofunction:: init_uspio_wf
"""

from __future__ import annotations

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe


def init_uspio_wf(
    agent: str,
    echo_times_pre: list,
    echo_times_post: list,
    template: str,
    template_files: dict,
    settings,
    participant_id: str,
    session_id: str,
    pre_session: str | None = None,
    headache_side=None,
    covariates=None,
    min_voxels: int = 1,
    omp_nthreads: int = 1,
    name: str = "uspio_wf",
):
    r"""
    ΔR2* = R2*post − R2*pre from multi-echo gradient-echo (MEGRE) series before and after an
    iron-oxide agent (ferumoxytol: ~24 h after infusion, when it sits in macrophages).

    #. R2* and S0 per series by a monoexponential fit of every voxel (nonlinear by default,
       echoes in the noise floor excluded; :func:`pipeline.models.relaxometry.fit_r2star`),
       on each series' own grid: the fit sees original, unresampled signals.
    #. Rigid registration (``antsRegistration``, mutual information) of the pre echo-1 to the
       T1w, and of the post echo-1 to the pre echo-1.
    #. The post R2* map (and its valid-fit mask) resampled once onto the pre grid;
       ΔR2* where both fits are valid.
    #. Vascular-territory atlas (template space) and the T1w's atlas, meningeal/calvarial
       bands and sinuses brought to the pre grid (nearest neighbour); regional ΔR2* tables
       for both label sets with ipsi/contra rows.
    #. R2* pre, R2* post and ΔR2* brought to template space.

    Parameters
    ----------
    agent : :obj:`str`
        the iron-oxide agent (``ce-`` label)
    echo_times_pre, echo_times_post : :obj:`list` of :obj:`float`
        echo times (s) of the pre and post series, in the order of their files
    template : :obj:`str`
        template identifier
    template_files : :obj:`dict`
        ``template`` (grid of the template-space maps), ``gm_probseg`` and ``wm_probseg``
        (to build the built-in territory atlas) or, for a TemplateFlow atlas,
        ``uspio_atlas`` and ``uspio_atlas_lut``
    settings : :class:`pipeline.config.USPIOSettings`
        the ``uspio`` section of the configuration
    participant_id, session_id : :obj:`str`
        identifiers written in the tables (the session of the post scan)
    pre_session : :obj:`str` or None
        session of the pre scan when it differs from ``session_id`` (recorded)
    headache_side : :obj:`str` or None
        from ``sessions.tsv``
    covariates : :obj:`dict` or None
        columns carried into the regional tables (e.g. ``treatment``)
    min_voxels : :obj:`int`
        ROIs with fewer valid voxels get n/a statistics
    omp_nthreads : :obj:`int`
        maximum number of threads an individual process may use
    name : :obj:`str`
        name of workflow (default: ``uspio_wf``)

    Inputs
    ------
    pre_echoes, post_echoes
        the echo images of each series, in echo order
    t1w_preproc, rois, rois_lut, anat2tpl_xfm, tpl2anat_xfm
        from the anatomical workflow of the pre session

    Outputs
    -------
    r2star_pre, r2star_post, dr2star
        maps on the pre grid (1/s)
    nrmse_pre, nrmse_post
        fit residual relative to S0 (post on its own grid)
    r2star_pre_tpl, r2star_post_tpl, dr2star_tpl
        the maps in template space
    pre2t1w_xfm, post2pre_xfm
        rigid transforms
    territories, territories_lut
        the territory atlas on the pre grid
    rois
        the anatomical atlas and extra-cerebral ROIs on the pre grid (labels of
        ``regions_rois``)
    regions_territories, regions_rois
        regional ΔR2* tables (territory atlas; atlas + extra-cerebral ROIs)
    provenance_pre, provenance_post
        fit details (sidecar fields)
    """
    from niworkflows.engine.workflows import LiterateWorkflow as Workflow

    from pipeline.interfaces.ants import ApplyTransforms
    from pipeline.interfaces.uspio import DeltaR2Star, R2StarMap

    from .regional import init_regional_wf
    from .utils import (
        first,
        provenance_with_outside,
        pv_weights_to_grid,
        rigid_registration,
        rois_to_grid,
        to_template,
    )

    atlas = settings.atlas
    method = settings.fit
    workflow = Workflow(name=name)
    pair = (
        f"the pre-infusion series of session {pre_session}"
        if pre_session
        else "the pre-infusion series of the same session"
    )
    workflow.__desc__ = f"""\
Iron-oxide ({agent}) uptake was mapped as the change of R2\\* between {pair} and the
post-infusion series. R2\\* was estimated in every voxel of each multi-echo gradient-echo
series by a {"nonlinear (Levenberg–Marquardt)" if method == "nonlinear" else "weighted log-linear"}
monoexponential fit on the original grid [@chavhan2009], excluding echoes below three times
the background noise level. The first echo of the pre series was rigidly registered to the
T1w and that of the post series to the pre series (`antsRegistration`, mutual
information); the post R2\\* map was resampled once onto the pre grid and
ΔR2\\* = R2\\*post − R2\\*pre computed where both fits were valid. Regional ΔR2\\* was
summarised in the anatomical atlas regions, the meningeal and calvarial bands and the dural
sinuses{f" and in the *{atlas}* atlas" if atlas else ""}, with ipsilateral/contralateral
labels for a lateralised headache, and the maps were brought to *{template}* space.
"""
    inputnode = pe.Node(
        niu.IdentityInterface(
            fields=[
                "pre_echoes",
                "post_echoes",
                "t1w_preproc",
                "rois",
                "rois_lut",
                "pv_weights",
                "anat2tpl_xfm",
                "tpl2anat_xfm",
            ]
        ),
        name="inputnode",
    )
    outputnode = pe.Node(
        niu.IdentityInterface(
            fields=[
                "r2star_pre",
                "r2star_post",
                "dr2star",
                "nrmse_pre",
                "nrmse_post",
                "r2star_pre_tpl",
                "r2star_post_tpl",
                "dr2star_tpl",
                "pre2t1w_xfm",
                "post2pre_xfm",
                "territories",
                "territories_lut",
                "rois",
                "regions_territories",
                "regions_rois",
                "provenance_pre",
                "provenance_post",
            ]
        ),
        name="outputnode",
    )

    fit_pre = pe.Node(
        R2StarMap(echo_times=list(echo_times_pre), method=method, min_echoes=settings.min_echoes),
        name="r2star_pre",
        mem_gb=1.0,
    )
    fit_post = pe.Node(
        R2StarMap(echo_times=list(echo_times_post), method=method, min_echoes=settings.min_echoes),
        name="r2star_post",
        mem_gb=1.0,
    )
    reg = settings.registration
    pre2t1w = pe.Node(
        rigid_registration(reg, omp_nthreads, initial_moving_transform_com=1),
        name="pre_to_t1w",
        n_procs=omp_nthreads,
    )
    post2pre = pe.Node(
        rigid_registration(reg, omp_nthreads, initial_moving_transform_com=1),
        name="post_to_pre",
        n_procs=omp_nthreads,
    )
    post_r2 = pe.Node(
        ApplyTransforms(interpolation="Linear", dimension=3, float=True, outside_nan=True),
        name="post_r2star_to_pre",
    )
    post_valid = pe.Node(
        ApplyTransforms(interpolation="Linear", dimension=3, float=True), name="post_valid_to_pre"
    )
    delta = pe.Node(DeltaR2Star(), name="delta_r2star")

    rois_to_pre = rois_to_grid("rois_to_megre")
    tables = dict(headache_side=headache_side, covariates=covariates, min_voxels=min_voxels)
    regional_rois = init_regional_wf(
        participant_id, session_id, "uspio", "dR2star", **tables, name="regional_rois_wf"
    )
    tpl_xfms = pe.Node(niu.Merge(2), name="megre_to_template_xfms")
    # voxels of the pre grid the post series does not cover: counted in the sidecars
    provenance_post = provenance_with_outside("provenance_post")
    workflow.connect([
        (inputnode, fit_pre, [("pre_echoes", "in_files")]),
        (inputnode, fit_post, [("post_echoes", "in_files")]),
        (inputnode, pre2t1w, [("t1w_preproc", "fixed_image"),
                              (("pre_echoes", first), "moving_image")]),
        (inputnode, post2pre, [(("pre_echoes", first), "fixed_image"),
                               (("post_echoes", first), "moving_image")]),
        (fit_post, post_r2, [("r2star", "input_image")]),
        (fit_post, post_valid, [("valid", "input_image")]),
        (inputnode, post_r2, [(("pre_echoes", first), "reference_image")]),
        (inputnode, post_valid, [(("pre_echoes", first), "reference_image")]),
        (post2pre, post_r2, [("forward_transforms", "transforms")]),
        (post2pre, post_valid, [("forward_transforms", "transforms")]),
        (fit_pre, delta, [("r2star", "pre"), ("valid", "pre_valid")]),
        (post_r2, delta, [("output_image", "post")]),
        (post_valid, delta, [("output_image", "post_valid")]),
        (inputnode, rois_to_pre, [("rois", "input_image"),
                                  (("pre_echoes", first), "reference_image")]),
        (pre2t1w, rois_to_pre, [("forward_transforms", "transforms")]),
        (delta, regional_rois, [("out_file", "inputnode.in_file"),
                                ("valid", "inputnode.mask")]),
        (rois_to_pre, regional_rois, [("output_image", "inputnode.labels")]),
        (inputnode, regional_rois, [("rois_lut", "inputnode.lut")]),
        (inputnode, tpl_xfms, [("anat2tpl_xfm", "in1")]),
        (pre2t1w, tpl_xfms, [(("forward_transforms", first), "in2")]),
        (fit_pre, outputnode, [("r2star", "r2star_pre"), ("nrmse", "nrmse_pre"),
                               ("provenance", "provenance_pre")]),
        (fit_post, provenance_post, [("provenance", "a")]),
        (post_r2, provenance_post, [("n_outside", "n_outside")]),
        (provenance_post, outputnode, [("out", "provenance_post")]),
        (fit_post, outputnode, [("nrmse", "nrmse_post")]),
        (post_r2, outputnode, [("output_image", "r2star_post")]),
        (delta, outputnode, [("out_file", "dr2star")]),
        (pre2t1w, outputnode, [(("forward_transforms", first), "pre2t1w_xfm")]),
        (post2pre, outputnode, [(("forward_transforms", first), "post2pre_xfm")]),
        (rois_to_pre, outputnode, [("output_image", "rois")]),
        (regional_rois, outputnode, [("outputnode.out_table", "regions_rois")]),
    ])  # fmt:skip
    if atlas is not None:
        _territory_table(
            workflow, atlas, template_files, pre2t1w, delta, tables, participant_id, session_id
        )
    for src, field, out in (
        (fit_pre, "r2star", "r2star_pre"),
        (post_r2, "output_image", "r2star_post"),
        (delta, "out_file", "dr2star"),
    ):
        node = to_template(f"{out}_to_template", template_files["template"])
        workflow.connect([
            (src, node, [(field, "input_image")]),
            (tpl_xfms, node, [("out", "transforms")]),
            (node, outputnode, [("output_image", f"{out}_tpl")]),
        ])  # fmt:skip
    pv_weights_to_grid(workflow, (inputnode, ("pre_echoes", first)), pre2t1w, regional_rois)
    return workflow


def _territory_table(
    workflow, atlas, template_files, pre2t1w, delta, tables, participant_id, session_id
):
    """The second dR2star table, over ``atlas`` brought to the pre-infusion grid
    (MEGRE -> T1w by the inverse rigid, T1w -> template by the inverse warp)."""
    from pipeline.interfaces.ants import ApplyTransforms

    from .regional import init_regional_wf
    from .utils import atlas_source, first

    inputnode = workflow.get_node("inputnode")
    outputnode = workflow.get_node("outputnode")
    atlas_src = atlas_source(atlas, template_files, key="uspio_atlas", name="territory_atlas")
    terr_xfms = pe.Node(niu.Merge(2), name="territory_xfms")
    terr_to_pre = pe.Node(
        ApplyTransforms(
            interpolation="NearestNeighbor", dimension=3, invert_transform_flags=[True, False]
        ),
        name="territories_to_megre",
    )
    regional_terr = init_regional_wf(
        participant_id, session_id, "uspio", "dR2star", **tables, name="regional_territories_wf"
    )
    workflow.connect([
        (pre2t1w, terr_xfms, [(("forward_transforms", first), "in1")]),
        (inputnode, terr_xfms, [("tpl2anat_xfm", "in2")]),
        (atlas_src, terr_to_pre, [("atlas", "input_image")]),
        (inputnode, terr_to_pre, [(("pre_echoes", first), "reference_image")]),
        (terr_xfms, terr_to_pre, [("out", "transforms")]),
        (delta, regional_terr, [("out_file", "inputnode.in_file"),
                                ("valid", "inputnode.mask")]),
        (terr_to_pre, regional_terr, [("output_image", "inputnode.labels")]),
        (atlas_src, regional_terr, [("lut", "inputnode.lut")]),
        (terr_to_pre, outputnode, [("output_image", "territories")]),
        (atlas_src, outputnode, [("lut", "territories_lut")]),
        (regional_terr, outputnode, [("outputnode.out_table", "regions_territories")]),
    ])  # fmt:skip
