"""inflamap on a real SLURM: the configs/slurm job array (one task per participant) and the
dependent group job, and nipype's SLURMGraph plugin (every step a SLURM job), on a
single-node SLURM started on localhost from Debian's packages (.ci/slurm-setup.sh installs
slurm-wlm and munge). Without them, only the scripts' own checks run.

The data: the demo's pre-contrast T1w (first session) with the fast registration of
hpc_support.FAST_CONFIG: the scheduling is under test, not the registration.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import nibabel as nb
import numpy as np
import pandas as pd
import pytest
from conftest import ROOT
from hpc_support import (
    LocalSlurm,
    cli_env,
    python_cmd,
    slurm_missing,
    t1w_subset,
    write_fast_config,
)

SBATCH = ROOT / "configs" / "slurm" / "inflamap.sbatch"
SUBMIT = ROOT / "configs" / "slurm" / "submit.sh"
REGIONS = "sub-{0}/ses-01/anat/sub-{0}_ses-01_atlas-inflamapLobes_desc-nT1w_regions.tsv"


# --- the scripts alone (no scheduler needed) -------------------------------------------


def _sbatch(*args, **env):
    return subprocess.run(
        ["bash", str(SBATCH), *map(str, args)],
        capture_output=True,
        text=True,
        env=dict(os.environ, **{k: str(v) for k, v in env.items()}),
    )


def test_array_task_maps_to_participants_tsv_row(tmp_path):
    bids = tmp_path / "bids"
    bids.mkdir()
    (bids / "participants.tsv").write_text(
        "age\tparticipant_id\n30\tsub-p07\n41\tsub-c02\r\n"
    )  # column order, CRLF
    assert _sbatch("--list", bids).stdout.split() == ["p07", "c02"]
    assert _sbatch("--count", bids).stdout.strip() == "2"
    p = _sbatch(
        "participant",
        bids,
        "/o",
        "/w",
        "--config",
        "/c.yml",
        SLURM_ARRAY_TASK_ID=2,
        INFLAMAP_DRY_RUN=1,
        INFLAMAP_CMD="inflamap",
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == [
        "inflamap",
        str(bids),
        "/o",
        "participant",
        "-w",
        "/w",
        "--participant-label",
        "c02",
        "--config",
        "/c.yml",
    ]
    p = _sbatch("participant", bids, "/o", "/w", SLURM_ARRAY_TASK_ID=3, INFLAMAP_DRY_RUN=1)
    assert p.returncode == 64 and "no participant number 3" in p.stderr
    (bids / "participants.tsv").unlink()
    for lab in ("b", "a"):
        (bids / f"sub-{lab}").mkdir()
    assert _sbatch("--list", bids).stdout.split() == ["a", "b"]


def test_apptainer_command(tmp_path):
    p = _sbatch(
        "participant",
        tmp_path,
        tmp_path / "out",
        tmp_path / "work",
        "-v",
        SLURM_ARRAY_TASK_ID=1,
        SLURM_CPUS_PER_TASK=4,
        SLURM_MEM_PER_NODE=16384,
        INFLAMAP_SIF="/images/inflamap.sif",
        TEMPLATEFLOW_HOME="/shared/tf",
        INFLAMAP_BIND="/study/cfg:/cfg",
        INFLAMAP_DRY_RUN=1,
    )
    assert p.returncode == 64  # no participant in an empty folder
    (tmp_path / "sub-01").mkdir()
    p = _sbatch(
        "participant",
        tmp_path,
        tmp_path / "out",
        tmp_path / "work",
        "-v",
        SLURM_ARRAY_TASK_ID=1,
        SLURM_CPUS_PER_TASK=4,
        SLURM_MEM_PER_NODE=16384,
        INFLAMAP_SIF="/images/inflamap.sif",
        TEMPLATEFLOW_HOME="/shared/tf",
        INFLAMAP_BIND="/study/cfg:/cfg",
        INFLAMAP_DRY_RUN=1,
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == [
        "apptainer",
        "run",
        "--cleanenv",
        "-B",
        f"{tmp_path}:/data:ro",
        "-B",
        f"{tmp_path / 'out'}:/out",
        "-B",
        f"{tmp_path / 'work'}:/work",
        "-B",
        "/shared/tf:/opt/templateflow:ro",
        "-B",
        "/study/cfg:/cfg",
        "/images/inflamap.sif",
        "/data",
        "/out",
        "participant",
        "-w",
        "/work",
        "--participant-label",
        "01",
        "--nprocs",
        "4",
        "--mem-gb",
        "16.0",
        "-v",
    ]
    p = _sbatch("group", tmp_path, "/o", "/w", INFLAMAP_DRY_RUN=1, INFLAMAP_CMD="inflamap")
    assert p.stdout.split() == ["inflamap", str(tmp_path), "/o", "group", "-w", "/w"]


# --- a real SLURM ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    reason = slurm_missing()
    if reason:
        pytest.skip(reason)
    cluster = LocalSlurm(tmp_path_factory.mktemp("slurm"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def hpc_data(demo_dir, tmp_path_factory):
    base = tmp_path_factory.mktemp("hpc")
    return {
        "bids": t1w_subset(demo_dir, base / "bids"),
        "config": write_fast_config(base),
        "base": base,
    }


def _env(slurm, **extra):
    env = cli_env(**extra)
    env["SLURM_CONF"] = slurm.env["SLURM_CONF"]
    return env


@pytest.fixture(scope="module")
def array_run(slurm, hpc_data):
    """configs/slurm/submit.sh on the 2-participant data: array, then the group job."""
    base = hpc_data["base"] / "array"
    out, work = base / "out", base / "work"
    t0 = time.time()
    sub = subprocess.run(
        [
            "bash",
            str(SUBMIT),
            hpc_data["bids"],
            out,
            work,
            "--config",
            hpc_data["config"],
            "--skip-bids-validation",
            "--omp-nthreads",
            "1",
        ],
        capture_output=True,
        text=True,
        cwd=base.parent,
        timeout=60,
        env=_env(
            slurm,
            INFLAMAP_CMD=python_cmd(),
            INFLAMAP_ARRAY_SBATCH_ARGS="--cpus-per-task=1 --mem=3G --time=00:30:00",
        ),
    )
    assert sub.returncode == 0, sub.stderr + slurm.logs()
    ids = dict(re.findall(r"^(\w+_job)=(\d+)$", sub.stdout, re.M))
    group_at_submit = slurm.job(ids["group_job"])[0]
    finished = slurm.wait_idle(timeout=480)
    elapsed = time.time() - t0
    return {
        "out": out,
        "work": work,
        "ids": ids,
        "submit": sub,
        "finished": finished,
        "elapsed": elapsed,
        "group_at_submit": group_at_submit,
        "tasks": slurm.job(ids["participant_job"]),
        "group": slurm.job(ids["group_job"])[0],
    }


def test_array_and_dependent_group_job(array_run, slurm):
    r = array_run
    logs = sorted((r["work"] / "slurm-logs").glob("*.out"))
    detail = "\n".join(f"--- {f.name}\n{f.read_text()[-3000:]}" for f in logs)
    assert r["finished"], f"jobs still queued after 480 s\n{detail}\n{slurm.logs()}"
    print(f"SLURM array (2 participants) + group job: {r['elapsed']:.0f} s")
    # the group job waited for the array (afterok), then ran
    assert r["group_at_submit"]["JobState"] == "PENDING"
    assert r["group_at_submit"]["Dependency"].startswith(f"afterok:{r['ids']['participant_job']}")
    tasks = r["tasks"]
    assert sorted(t["ArrayTaskId"] for t in tasks) == ["1", "2"]
    for t in tasks:
        assert (t["JobState"], t["ExitCode"]) == ("COMPLETED", "0:0"), detail
    g = r["group"]
    assert (g["JobState"], g["ExitCode"]) == ("COMPLETED", "0:0"), detail
    assert g["StartTime"] >= max(t["EndTime"] for t in tasks)  # ISO times sort as text
    # derivatives of every participant and the group table
    out = r["out"]
    for lab in ("01", "02"):
        assert (out / REGIONS.format(lab)).stat().st_size > 0
    table = pd.read_csv(out / "group" / "desc-all_regions.tsv", sep="\t")
    assert sorted(table["participant_id"].unique()) == ["sub-01", "sub-02"]
    assert pd.read_csv(out / "group" / "desc-missing_participants.tsv", sep="\t").empty
    # one shared -w, one subfolder per participant (the CLI's own layout)
    work = r["work"]
    assert sorted(p.name for p in work.iterdir() if p.name.startswith("sub-")) == [
        "sub-01",
        "sub-02",
    ]
    for lab in ("01", "02"):
        assert (work / f"sub-{lab}" / f"sub_{lab}_wf").is_dir()
        assert not list((work / f"sub-{lab}").glob("sub_0[!" + lab[1] + "]_wf"))
    # each task's output file names its participant and ends done
    for t in tasks:
        job = r["ids"]["participant_job"]
        log = work / "slurm-logs" / f"participant-{job}_{t['ArrayTaskId']}.out"
        text = log.read_text()
        lab = f"0{t['ArrayTaskId']}"
        assert f"sub-{lab} (1/1): done" in text, text[-2000:]
    group_log = work / "slurm-logs" / f"group-{r['ids']['group_job']}.out"
    assert "group table of 2 participant(s)" in group_log.read_text()


def _outputs(root):
    return sorted(
        p.relative_to(root)
        for p in root.glob("sub-*/**/*")
        if p.is_file() and p.suffix in (".gz", ".tsv")
    )


def test_slurmgraph_plugin_runs_a_participant(slurm, hpc_data, array_run):
    """Every nipype step of sub-01 becomes a SLURM job (configs/plugin_slurmgraph.yml);
    inflamap waits for them and its outputs equal the array task's."""
    base = hpc_data["base"] / "graph"
    out, work = base / "out", base / "work"
    env = _env(slurm, INFLAMAP_SLURM_POLL=1)
    env.pop("LOGNAME", None)  # nipype's SLURM plugins need it: inflamap sets it
    t0 = time.time()
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline",
            hpc_data["bids"],
            out,
            "participant",
            "--participant-label",
            "01",
            "-w",
            work,
            "--config",
            hpc_data["config"],
            "--use-plugin",
            ROOT / "configs" / "plugin_slurmgraph.yml",
            "--skip-bids-validation",
            "--omp-nthreads",
            "1",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=base.parent,
        timeout=600,
    )
    elapsed = time.time() - t0
    assert p.returncode == 0, p.stderr[-4000:]
    print(f"SLURMGraph participant: {elapsed:.0f} s")
    assert "SLURM job(s) left" in p.stderr and "sub-01 (1/1): done" in p.stderr
    steps = int(re.search(r"running (\d+) steps with SLURMGraph", p.stderr).group(1))
    batch = work / "sub-01" / "sub_01_wf" / "batch"
    scripts = list(batch.glob("batchscript_*.sh"))  # one per step (identity nodes removed)
    assert 0 < len(scripts) <= steps
    # every step ran as a SLURM job of this submission (tagged with --comment), and succeeded
    jobs = [j for j in slurm.job("") if j.get("Comment", "").endswith("_sub-01")]
    assert len(jobs) == len(scripts)
    assert all((j["JobState"], j["ExitCode"]) == ("COMPLETED", "0:0") for j in jobs)
    # same derivatives as the array task of sub-01 (same data, configuration, one thread)
    ref = array_run["out"]
    files = _outputs(out)
    assert files and files == [f for f in _outputs(ref) if f.parts[0] == "sub-01"]
    for rel in files:
        if rel.suffix == ".gz":
            a = np.asanyarray(nb.load(out / rel).dataobj)
            b = np.asanyarray(nb.load(ref / rel).dataobj)
            assert np.allclose(a, b, atol=1e-5, equal_nan=True), rel
        else:
            a, b = (pd.read_csv(x / rel, sep="\t") for x in (out, ref))
            pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-5)


def test_graph_wait_cancels_orphans_and_reports_unfinished_steps(tmp_path, monkeypatch):
    """The SLURMGraph waiter (fake squeue/scancel): jobs whose dependencies failed are
    cancelled, and a step without its result file makes the participant fail."""
    import networkx as nx

    from pipeline import cli

    bin_dir, state = tmp_path / "bin", tmp_path / "state"
    bin_dir.mkdir()
    (bin_dir / "squeue").write_text(f"""#!/bin/bash
if [ -e {state}/cancelled ]; then exit 0; fi
echo "11|FAILED|NonZeroExitCode|other_tag"
echo "12|PENDING|DependencyNeverSatisfied|TAG"
echo "13|PENDING|DependencyNeverSatisfied|TAG"
""")
    (bin_dir / "scancel").write_text(f'#!/bin/bash\necho "$@" > {state}/cancelled\n')
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    state.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("INFLAMAP_SLURM_POLL", "0.1")

    class Node:
        def __init__(self, name, done):
            self.name, self.fullname = name, f"wf.{name}"
            self._dir = tmp_path / name
            self._dir.mkdir()
            if done:
                (self._dir / f"result_{name}.pklz").write_bytes(b"x")

        def output_dir(self):
            return str(self._dir)

    graph = nx.DiGraph()
    graph.add_edge(Node("n4", True), Node("registration", False))
    with pytest.raises(
        RuntimeError, match="1 of 2 steps did not finish under SLURM, first: wf.registration"
    ):
        cli._wait_for_graph_jobs("01", "TAG", graph, tmp_path / "crash")
    assert (state / "cancelled").read_text().split() == ["12", "13"]
    done = nx.DiGraph()
    done.add_node(Node("only", True))
    cli._wait_for_graph_jobs("01", "TAG", done, tmp_path / "crash")  # all results: no error
