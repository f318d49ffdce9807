"""Execution resources: the allocation (SLURM or CPU affinity) and the nipype plugin."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import UsageError
from .parser import (
    PLUGINS,
)


def _allocated_cpus() -> int:
    """CPUs this process may use: the SLURM allocation of the task, else the CPU affinity
    (a cluster node's ``os.cpu_count()`` counts cores given to other jobs)."""
    for var in ("SLURM_CPUS_PER_TASK", "SLURM_CPUS_ON_NODE"):
        value = os.environ.get(var, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _allocated_mem_gb() -> float | None:
    """Memory of the SLURM allocation (``--mem`` or ``--mem-per-cpu``), GB; None outside."""
    mb = os.environ.get("SLURM_MEM_PER_NODE", "")
    if mb.isdigit() and int(mb) > 0:
        return int(mb) / 1024
    per_cpu = os.environ.get("SLURM_MEM_PER_CPU", "")
    if per_cpu.isdigit() and int(per_cpu) > 0:
        return int(per_cpu) * _allocated_cpus() / 1024
    return None


def _plugin(args, settings):
    import yaml

    nprocs = args.nprocs or _allocated_cpus()
    settings.nipype.nprocs = nprocs
    settings.nipype.omp_nthreads = args.omp_nthreads or min(8, nprocs)
    if settings.nipype.omp_nthreads > nprocs:
        raise UsageError(
            f"--omp-nthreads {settings.nipype.omp_nthreads} exceeds --nprocs {nprocs}"
        )
    mem_gb = args.mem_gb or _allocated_mem_gb()
    settings.nipype.mem_gb = mem_gb or 0.0
    plugin, plugin_args = "MultiProc", {"n_procs": nprocs, "raise_insufficient": False}
    if mem_gb:
        plugin_args["memory_gb"] = mem_gb
    if args.use_plugin:
        try:
            spec = yaml.safe_load(Path(args.use_plugin).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise UsageError(f"{args.use_plugin}: cannot read the plugin YAML ({exc})") from None
        if not isinstance(spec, dict) or "plugin" not in spec:
            raise UsageError(
                f"{args.use_plugin}: needs a 'plugin:' key (MultiProc, Linear, SLURMGraph, ...)"
            )
        plugin = spec["plugin"]
        if plugin not in PLUGINS:
            raise UsageError(
                f"{args.use_plugin}: plugin {plugin!r} is not supported; use one "
                f"of {', '.join(PLUGINS)}"
            )
        plugin_args = spec.get("plugin_args") or {}
        if not isinstance(plugin_args, dict):
            raise UsageError(f"{args.use_plugin}: 'plugin_args' must be a mapping")
        if plugin == "MultiProc":
            plugin_args.setdefault("n_procs", nprocs)
            if mem_gb:
                plugin_args.setdefault("memory_gb", mem_gb)
    settings.nipype.plugin = plugin
    settings.nipype.plugin_args = plugin_args


# nipype's MultiProc waits poll_sleep_duration (2 s by default) after every scheduling round,
# which doubled the wall time of the demo's many short steps; the scheduler plugins keep 2 s
# (each round asks the scheduler).
_LOCAL_POLL_SECONDS = 0.2


# plugins that submit the whole graph to a scheduler and return at once (inflamap waits)
_GRAPH_PLUGINS = ("SLURMGraph",)
