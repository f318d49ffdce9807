"""Waiting for the jobs of a SLURMGraph submission."""

from __future__ import annotations

import os
import time
from pathlib import Path

from .progress import _progress


def _squeue_jobs(tag: str) -> list[tuple[str, str, str]]:
    """``(jobid, state, reason)`` of the queued/running jobs whose comment is ``tag``."""
    import subprocess

    for attempt in range(10):
        proc = subprocess.run(
            ["squeue", "-h", "-o", "%i|%T|%r|%k"], capture_output=True, text=True
        )
        if proc.returncode == 0:
            jobs = []
            for line in proc.stdout.splitlines():
                parts = line.split("|", 3)
                if len(parts) == 4 and parts[3].strip() == tag:
                    jobs.append((parts[0], parts[1], parts[2]))
            return jobs
        time.sleep(min(30, 2**attempt))  # slurmctld busy or restarting
    raise RuntimeError(f"squeue failed: {proc.stderr.strip()[:200]}")


def _wait_for_graph_jobs(subject, tag, execgraph, crash_dir, poll=None):
    """Wait until the SLURM jobs of a SLURMGraph submission have left the queue; raise if a
    step did not finish (its crash file is under ``crash_dir``).

    nipype's graph plugins return as soon as every step is submitted; waiting here keeps
    inflamap's exit code and progress lines true, so that a group job can depend on it.
    Jobs whose dependencies failed would wait forever: they are cancelled.
    """
    import subprocess

    poll = float(os.environ.get("INFLAMAP_SLURM_POLL", poll or 5))
    last = None
    while True:
        jobs = _squeue_jobs(tag)
        if not jobs:
            break
        orphans = [
            j
            for j, state, reason in jobs
            if state == "PENDING" and reason == "DependencyNeverSatisfied"
        ]
        if orphans:
            subprocess.run(["scancel", *orphans], capture_output=True)
        running = sum(state == "RUNNING" for _, state, _ in jobs)
        if (len(jobs), running) != last:
            _progress(f"sub-{subject}: {len(jobs)} SLURM job(s) left ({running} running)")
            last = (len(jobs), running)
        time.sleep(poll)
    missing = [
        node.fullname
        for node in execgraph.nodes()
        if not (Path(node.output_dir()) / f"result_{node.name}.pklz").exists()
    ]
    if missing:
        crashes = sorted(crash_dir.glob("crash-*")) if crash_dir.exists() else []
        raise RuntimeError(
            f"{len(missing)} of {execgraph.number_of_nodes()} steps did not "
            f"finish under SLURM, first: {missing[0]}"
            + (f"; crash files in {crash_dir}" if crashes else "")
        )
