"""Participant graphs of every modality combination build and expand (nothing runs).

The plan of a demo participant is cut down to each of the 32 combinations of gadolinium,
DCE, USPIO, PET and SPECT inputs; the workflow is built from it, flattened and expanded as
nipype does before running. Each modality's nodes are there exactly when its inputs are.
"""

from __future__ import annotations

import dataclasses
import itertools

import pytest

MODALITIES = ("gadolinium", "dce", "uspio", "pet", "spect")
#: node-name prefix of each modality's workflow
PREFIX = {"gadolinium": "gad_", "dce": "dce_", "uspio": "uspio_", "pet": "pet_", "spect": "spect_"}


@pytest.fixture(scope="module")
def built(demo_dir, tf_home):
    from pipeline.bids import get_layout
    from pipeline.config import Settings, load_workflow_config
    from pipeline.plan import plan_participant
    from pipeline.templates import template_inputs

    settings = Settings(workflow=load_workflow_config(demo_dir / "inflamap-demo.yml"))
    settings.execution.bids_dir = str(demo_dir / "bids")
    settings.execution.output_dir = str(demo_dir / "graphs-out")
    plan = plan_participant(get_layout(demo_dir / "bids"), "02", settings)
    a = settings.workflow.anat
    files = template_inputs(a.template, a.template_resolution, a.atlas, a.atlas_desc, a.atlas_file)
    return plan, settings, files


def test_the_demo_plan_has_every_modality(built):
    plan, _, _ = built
    for modality in MODALITIES:
        assert any(getattr(s, modality) for s in plan.sessions), modality


@pytest.mark.parametrize(
    "keep",
    [c for n in range(len(MODALITIES) + 1) for c in itertools.combinations(MODALITIES, n)],
    ids=lambda c: "+".join(c) or "anat-only",
)
def test_graph_of_each_modality_combination_builds_and_expands(keep, built):
    from nipype.pipeline.engine.utils import generate_expanded_graph

    from workflows.base import init_single_subject_wf

    plan, settings, files = built
    sessions = tuple(
        dataclasses.replace(s, **{m: () for m in MODALITIES if m not in keep})
        for s in plan.sessions
    )
    wf = init_single_subject_wf(dataclasses.replace(plan, sessions=sessions), settings, files)
    names = wf.list_node_names()
    for modality in MODALITIES:
        present = any(
            n.startswith(PREFIX[modality])
            or f".{PREFIX[modality]}" in n
            or n.split(".")[0].startswith(PREFIX[modality])
            for n in names
        )
        assert present == (modality in keep), (modality, keep)
    flat = wf._create_flat_graph()
    expanded = generate_expanded_graph(flat)
    assert expanded.number_of_nodes() >= flat.number_of_nodes()
    # every derivative is written from a dataset file
    sinks = [n for n in expanded.nodes() if n.name.startswith("ds_")]
    assert sinks and all(
        str(n.inputs.source_file).startswith(settings.execution.bids_dir) for n in sinks
    )


def test_every_sink_writes_a_declared_output_under_a_name_of_its_own(built):
    """The full demo participant: each sink is a registry output, and no two sinks write
    the same file (a label table and its image share a stem, not an extension)."""
    from pipeline.derivatives import derivative_relpath
    from pipeline.derivatives.registry import OUTPUTS
    from workflows.base import init_single_subject_wf

    plan, settings, files = built
    wf = init_single_subject_wf(plan, settings, files)
    declared = {(o.suffix, o.key) for o in OUTPUTS}
    names, clashes = {}, []
    sinks = [wf.get_node(n) for n in wf.list_node_names() if n.split(".")[-1].startswith("ds_")]
    assert len(sinks) > 100
    for node in sinks:
        i = node.inputs
        assert (i.suffix, node.name.removeprefix("ds_")) in declared, node.fullname
        rel = derivative_relpath(i.source_file, i.suffix, "", **i.entities)
        key = (rel, i.sidecar)
        if key in names:
            clashes.append(f"{node.fullname} and {names[key]} both write {rel}")
        names[key] = node.fullname
        if i.sidecar:  # every sidecar says what the file is
            assert i.meta_dict.get("Description"), node.fullname
    assert not clashes, clashes


def test_methods_name_each_step_once(built):
    """The full demo participant's methods: the regional-statistics paragraph once, not once
    per regional table; no paragraph twice."""
    from pipeline.reports.boilerplate import workflow_descriptions
    from workflows.base import init_single_subject_wf

    plan, settings, files = built
    paragraphs = workflow_descriptions(init_single_subject_wf(plan, settings, files))
    assert sum(p.startswith("Regional statistics") for p in paragraphs) == 1
    assert len(paragraphs) == len(set(paragraphs))
