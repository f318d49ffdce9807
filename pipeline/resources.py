"""Resources of a participant run: thread limits, and the summary of what the run used.

``--omp-nthreads`` reaches the numeric libraries through the environment, set by the CLI
before the workflow's worker processes start (nipype's MultiProc forks them from the CLI's
process; SLURM jobs inherit the environment through sbatch):

- ITK (the ANTs registrations and resampling that antspyx runs in-process) reads
  ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS`` once, at its first use in a process, and keeps
  that thread count for the life of the process: every process of a run therefore gets the
  run's ``--omp-nthreads`` (see :mod:`pipeline.interfaces.ants`);
- OpenMP, OpenBLAS, MKL, BLIS, numexpr: their ``*_NUM_THREADS``; BLAS libraries already
  loaded (numpy imported earlier in the process) are limited through ``threadpoolctl``.

:class:`ResourceRecorder` measures one participant: wall time, peak resident memory of the
process tree (sampled from ``/proc``, with ``getrusage`` maxima), CPU time and the time of
each workflow step; :func:`write_resource_summary` writes it as
``OUTPUT_DIR/logs/sub-<label>/resources.json`` (atomically).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import threading
import time
from pathlib import Path

#: environment variables that cap the threads of one process of a run
THREAD_ENV_VARS = (
    "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS",
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)


def limit_threads(nthreads: int) -> dict:
    """Cap the threads of this process and of the processes it starts at ``nthreads``.

    Sets :data:`THREAD_ENV_VARS` (read by libraries when they load, or, for ITK, at first
    use) and limits the BLAS/OpenMP pools of libraries this process has already loaded.
    Returns the variables set.
    """
    nthreads = max(1, int(nthreads))
    env = {var: str(nthreads) for var in THREAD_ENV_VARS}
    os.environ.update(env)
    if "numpy" in sys.modules:  # loaded before the limit: its BLAS pool is already sized
        try:
            from threadpoolctl import threadpool_limits

            threadpool_limits(limits=nthreads)
        except Exception:  # pragma: no cover - threadpoolctl missing or a library refusing  # noqa: BLE001, S110
            pass
    return env


# --------------------------------------------------------------------------- measuring

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
# ru_maxrss is in kilobytes on Linux, bytes on macOS
_MAXRSS_UNIT = 1 if sys.platform == "darwin" else 1024


def _proc_table() -> dict[int, tuple[int, int]]:
    """``pid -> (parent pid, resident bytes)`` of every process visible in ``/proc``."""
    table = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                stat = fh.read().decode(errors="replace")
        except OSError:  # the process ended meanwhile
            continue
        # the command name (field 2) may hold spaces and parentheses: split after its end
        fields = stat[stat.rfind(")") + 2 :].split()
        try:
            table[int(entry.name)] = (int(fields[1]), int(fields[21]) * _PAGE)
        except (IndexError, ValueError):
            continue
    return table


def process_tree_rss(pid: int | None = None) -> int | None:
    """Resident memory (bytes) of process ``pid`` (default: this one) and all its
    descendants; None where ``/proc`` is not available."""
    pid = os.getpid() if pid is None else pid
    if not os.path.isdir(f"/proc/{pid}"):
        return None
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for p, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(p)
    total, todo, seen = 0, [pid], set()
    while todo:
        p = todo.pop()
        if p in seen or p not in table:
            continue
        seen.add(p)
        total += table[p][1]
        todo.extend(children.get(p, ()))
    return total


def _rusage() -> dict:
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return {
        "self_cpu": me.ru_utime + me.ru_stime,
        "children_cpu": kids.ru_utime + kids.ru_stime,
        "self_maxrss": me.ru_maxrss * _MAXRSS_UNIT,
        "children_maxrss": kids.ru_maxrss * _MAXRSS_UNIT,
    }


class ResourceRecorder:
    """Measures one participant run; use as a context manager around the workflow run.

    A daemon thread samples the resident memory of this process and its descendants (the
    MultiProc workers, their subprocesses) every ``interval`` seconds; :meth:`callback`
    wraps a nipype ``status_callback`` to time every step (submission to end, in the
    scheduling process: steps found cached take about 0 s).
    """

    def __init__(self, interval: float = 0.5):
        self.interval = interval
        self.peak_tree_rss = None
        self.started = self.finished = None
        self.nodes: dict[str, dict] = {}
        self._t0 = self._wall0 = None
        self._usage0 = None
        self._stop = threading.Event()
        self._thread = None

    # -- sampling
    def _sample(self):
        try:
            rss = process_tree_rss()
        except Exception:  # pragma: no cover - /proc oddities must not stop a run  # noqa: BLE001
            rss = None
        if rss is not None:
            self.peak_tree_rss = max(self.peak_tree_rss or 0, rss)

    def _loop(self):
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self):
        self.started = time.time()
        self._t0 = time.monotonic()
        self._usage0 = _rusage()
        self._sample()
        self._thread = threading.Thread(target=self._loop, name="inflamap-resources", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
        self.finished = time.time()
        self._wall = time.monotonic() - self._t0
        self._usage1 = _rusage()
        return False

    start = __enter__

    def stop(self):
        if self._usage0 is not None and not hasattr(self, "_usage1"):
            self.__exit__(None, None, None)

    # -- steps
    def callback(self, inner=None):
        """A nipype ``status_callback`` that times every step, then calls ``inner``."""
        return _TimingCallback(self, inner)

    def summary(self, **extra) -> dict:
        """The measurements as a JSON-ready mapping (``extra`` keys are added on top)."""
        u0, u1 = self._usage0 or _rusage(), getattr(self, "_usage1", None) or _rusage()
        gb = 1024**3
        steps = sorted(
            ({"name": k, **v} for k, v in self.nodes.items()), key=lambda s: s.get("start_s", 0.0)
        )
        out = {
            "started": _iso(self.started),
            "finished": _iso(self.finished),
            "wall_time_s": round(getattr(self, "_wall", 0.0), 3),
            "peak_rss_gb": {
                # resident memory of this process and its descendants, sampled
                "process_tree": (
                    None if self.peak_tree_rss is None else round(self.peak_tree_rss / gb, 4)
                ),
                # getrusage maxima over the life of the process (not this participant only
                # when one process runs several participants)
                "main_process": round(u1["self_maxrss"] / gb, 4),
                "largest_child": round(u1["children_maxrss"] / gb, 4),
            },
            "cpu_time_s": {
                "main_process": round(u1["self_cpu"] - u0["self_cpu"], 3),
                # children that ended (the MultiProc workers end with the run)
                "children": round(u1["children_cpu"] - u0["children_cpu"], 3),
            },
            "sampling_interval_s": self.interval,
            "steps": steps,
        }
        out.update(extra)
        return out


class _TimingCallback:
    """Picklable (MapNodes pickle plugin arguments); the copies' timings are not kept."""

    def __init__(self, recorder, inner):
        self.recorder, self.inner = recorder, inner

    def __getstate__(self):
        return {"recorder": None, "inner": self.inner}

    def __call__(self, node, status):
        rec = self.recorder
        if rec is not None and rec._t0 is not None:
            now = time.monotonic() - rec._t0
            entry = rec.nodes.setdefault(node.fullname, {})
            if status == "start":
                entry["start_s"] = round(now, 3)
            elif status in ("end", "exception"):
                entry["end_s"] = round(now, 3)
                if "start_s" in entry:
                    entry["seconds"] = round(now - entry["start_s"], 3)
                entry["status"] = "ok" if status == "end" else "failed"
        if self.inner is not None:
            self.inner(node, status)


def _iso(t):
    if t is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t))


def _jsonable(value):
    try:
        json.dumps(value)
        return value
    except TypeError:
        if isinstance(value, dict):
            return {str(k): _jsonable(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [_jsonable(v) for v in value]
        return repr(value)


def write_resource_summary(
    path,
    recorder: ResourceRecorder,
    *,
    participant: str,
    status: str,
    nprocs: int,
    omp_nthreads: int,
    mem_gb: float,
    plugin: str,
    plugin_args: dict | None = None,
) -> Path:
    """Write the summary of one participant run to ``path`` (JSON, atomically).

    ``mem_gb`` 0 means no limit was given; ``within_mem_gb`` then is None.
    """
    from .utils import atomic_write_text

    args = {k: v for k, v in (plugin_args or {}).items() if k != "status_callback"}
    summary = recorder.summary()
    peak = summary["peak_rss_gb"]["process_tree"]
    summary = {
        "participant": participant,
        "status": status,
        "settings": {
            "nprocs": nprocs,
            "omp_nthreads": omp_nthreads,
            "mem_gb": mem_gb or None,
            "plugin": plugin,
            "plugin_args": _jsonable(args),
            "thread_env": {v: os.environ.get(v) for v in THREAD_ENV_VARS},
        },
        "within_mem_gb": (None if not mem_gb or peak is None else bool(peak <= mem_gb)),
        **summary,
    }
    return atomic_write_text(json.dumps(summary, indent=2) + "\n", path)
