"""Regional statistics of a map within native-space atlas ROIs.

.. autofunction:: init_regional_wf
"""

from __future__ import annotations

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe


def init_regional_wf(
    participant_id: str,
    session_id: str,
    modality: str,
    metric: str,
    headache_side=None,
    min_voxels: int = 1,
    covariates=None,
    name: str = "regional_wf",
):
    r"""
    Tidy regional table of one quantitative map.

    Per ROI of the label image: ``n_voxels, mean, median, sd``; for sessions with a
    ``headache_side`` of left or right, ``ipsi``/``contra`` rows and the asymmetry index
    ``AI = (ipsi - contra) / ((ipsi + contra) / 2)``.

    Parameters
    ----------
    participant_id, session_id : :obj:`str`
        identifiers written in the table (``sub-XX``, ``ses-YY`` or ``n/a``)
    modality, metric : :obj:`str`
        e.g. ``anat``/``nT1w``, ``gadolinium``/``enhancement``
    headache_side : :obj:`str` or None
        left, right, bilateral, none (from ``sessions.tsv``)
    min_voxels : :obj:`int`
        ROIs with fewer valid voxels get n/a statistics
    covariates : :obj:`dict` or None
        columns carried into every row (e.g. ``treatment``, ``tspo_genotype``)
    name : :obj:`str`
        name of workflow (default: ``regional_wf``)

    Inputs
    ------
    in_file
        the map
    labels
        label image on the map's grid
    lut
        label table (TSV: index, name, hemisphere)
    mask
        optional valid-voxel mask
    weights
        optional partial-volume weights on the map's grid (weighted means)

    Outputs
    -------
    out_table
        the regional TSV
    """
    from niworkflows.engine.workflows import LiterateWorkflow as Workflow

    from pipeline.interfaces.regional import RegionalTable

    workflow = Workflow(name=name)
    # one text for every map (the methods show it once, not once per table)
    workflow.__desc__ = """\
Regional statistics of each map (mean, median and standard deviation over voxels;
the means weighted by each voxel's non-brain fraction, 1 − (GM + WM), outside the brain mask,
so that cortex partly in a meningeal-band voxel counts only for its share) were computed
within each atlas region in native space; for sessions with a lateralised
headache, regions were also labelled ipsilateral or contralateral to the headache side and
an asymmetry index AI = (ipsi − contra) / ((ipsi + contra)/2) was computed.
"""
    inputnode = pe.Node(
        niu.IdentityInterface(fields=["in_file", "labels", "lut", "mask", "weights"]),
        name="inputnode",
    )
    outputnode = pe.Node(niu.IdentityInterface(fields=["out_table"]), name="outputnode")
    table = pe.Node(
        RegionalTable(
            participant_id=participant_id,
            session_id=session_id,
            modality=modality,
            metric=metric,
            headache_side=headache_side,
            min_voxels=min_voxels,
            covariates=covariates or {},
        ),
        name="table",
    )
    workflow.connect([
        (inputnode, table, [("in_file", "in_file"), ("labels", "labels"), ("lut", "lut"),
                            ("mask", "mask"), ("weights", "weights")]),
        (table, outputnode, [("out_table", "out_table")]),
    ])  # fmt:skip
    return workflow
