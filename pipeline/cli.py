"""Command line: ``inflamap BIDS_DIR OUTPUT_DIR {participant,group} [options]``.

Also ``inflamap-demo DIR`` (write the demo dataset) and ``inflamap-templates`` (build the
offline TemplateFlow home, or pre-fetch templates on a machine with network); the old
spellings ``inflamap demo`` and ``inflamap templates`` still work, unless the call is a
BIDS-App call (``inflamap demo OUT participant`` processes a dataset folder named ``demo``).
Exit codes follow the BIDS-Apps execution spec: 0 success, 1 failure, 16 BIDS validation
failed, 64 usage or configuration error, 65 bad data, 66 required input missing, 73 output
not writable.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import uuid
from pathlib import Path

from . import __version__
from .errors import EX_USAGE, InflamapError, InputMissingError, OutputError, UsageError

# ANTs seeds its random sampling from the clock unless told: a fixed default keeps a resumed
# run (some steps cached, some rerun) equal to an uninterrupted one
DEFAULT_RANDOM_SEED = 42


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # usage errors exit 64 (EX_USAGE), not argparse's 2
        self.print_usage(sys.stderr)
        self.exit(EX_USAGE, f"inflamap: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="inflamap",
        description=(
            "inflamap: neuroinflammation maps in migraine from MRI and PET (a BIDS-App). "
            "Also: 'inflamap-demo DIR' writes the demo dataset; 'inflamap-templates' prepares "
            "TemplateFlow for offline use."
        ),
    )
    p.add_argument("bids_dir", help="root of the input BIDS dataset (never modified)")
    p.add_argument("output_dir", help="root of the output BIDS-Derivatives dataset")
    p.add_argument("analysis_level", choices=["participant", "group"])
    g = p.add_argument_group("selection")
    g.add_argument(
        "--participant-label",
        "--participant_label",
        nargs="+",
        default=[],
        metavar="LABEL",
        help="participants to process (with or without sub-)",
    )
    g.add_argument(
        "--session-label",
        nargs="+",
        default=[],
        metavar="LABEL",
        help="sessions to process (with or without ses-)",
    )
    g.add_argument(
        "--bids-filter-file",
        metavar="FILE",
        help='JSON of extra BIDS entities per file role, e.g. {"t1w": {"acquisition": "mprage"}}',
    )
    g.add_argument(
        "--skip-bids-validation",
        "--skip_bids_validation",
        action="store_true",
        help="do not run the BIDS validator first",
    )
    g = p.add_argument_group("resources")
    g.add_argument(
        "-w",
        "--work-dir",
        metavar="DIR",
        help="nipype working folder (cache; a rerun reuses it). Default: "
        "./work. Must not be inside OUTPUT_DIR",
    )
    g.add_argument(
        "--nprocs",
        "--nthreads",
        "--n-cpus",
        type=int,
        default=None,
        help="processes in parallel (default: all cores)",
    )
    g.add_argument(
        "--omp-nthreads",
        type=int,
        default=None,
        help="threads per process (default: min(8, nprocs))",
    )
    g.add_argument("--mem-gb", "--mem", type=float, default=None, help="memory limit, GB")
    g.add_argument(
        "--use-plugin",
        metavar="FILE",
        help="nipype plugin YAML (plugin: MultiProc|Linear|SLURMGraph, plugin_args)",
    )
    g.add_argument(
        "--stop-on-first-crash",
        action="store_true",
        help="stop at the first failing participant/step",
    )
    g.add_argument(
        "--random-seed",
        type=int,
        default=None,
        metavar="N",
        help="seed of ANTs' random sampling (ANTS_RANDOM_SEED; default: that "
        f"variable, else {DEFAULT_RANDOM_SEED}), so that reruns and resumed "
        "runs give the same results",
    )
    g.add_argument(
        "--reports-only",
        action="store_true",
        help="participant level: only regenerate the HTML reports "
        "(OUTPUT_DIR/sub-<label>.html) from the derivatives already in "
        "OUTPUT_DIR; nothing is recomputed",
    )
    g = p.add_argument_group("configuration")
    g.add_argument(
        "--config",
        metavar="FILE",
        help="YAML merged over configs/defaults.yml (unknown keys are errors)",
    )
    g.add_argument("-v", "--verbose", action="count", default=0)
    g.add_argument("--version", action="version", version=f"inflamap {__version__}")
    return p


def build_demo_parser():
    p = _Parser(
        prog="inflamap-demo",
        description="Write the demo dataset (digital "
        "reference object with ground truth): DIR/bids, DIR/groundtruth, "
        "DIR/inflamap-demo.yml",
    )
    p.add_argument("out_dir")
    p.add_argument("--participants", type=int, default=6)
    p.add_argument("--resolution", type=float, default=3.0, help="voxel size, mm")
    p.add_argument("--seed", type=int, default=0)
    return p


def build_templates_parser():
    p = _Parser(
        prog="inflamap-templates",
        description=(
            "Prepare $TEMPLATEFLOW_HOME: always builds the offline MNI152NLin2009aSym from data "
            "bundled with nilearn; with --fetch, downloads the named TemplateFlow templates "
            "(needs network: run it on a login node before cluster jobs)."
        ),
    )
    p.add_argument("--fetch", nargs="*", default=[], metavar="TEMPLATE")
    p.add_argument("--resolution", type=int, default=2)
    return p


def _tf_home() -> Path:
    home = os.environ.get("TEMPLATEFLOW_HOME")
    if home:
        return Path(home)
    from templateflow import conf

    return Path(conf.TF_HOME)


_START = time.time()  # the process start: progress lines show the time since


def _progress(msg):
    el = time.time() - _START
    print(f"[inflamap {int(el // 60):02d}:{el % 60:04.1f}] {msg}", file=sys.stderr, flush=True)


def run_demo(argv) -> int:
    args = build_demo_parser().parse_args(argv)
    from .demo import make_demo
    from .templates import build_offline_home

    build_offline_home(_tf_home())
    try:
        make_demo(
            args.out_dir,
            participants=args.participants,
            resolution=args.resolution,
            seed=args.seed,
            progress=_progress,
        )
    except (ValueError, FileExistsError) as exc:
        raise UsageError(str(exc)) from None
    _progress(f"demo written to {args.out_dir} (BIDS: {Path(args.out_dir) / 'bids'})")
    return 0


def run_templates(argv) -> int:
    args = build_templates_parser().parse_args(argv)
    from .templates import build_offline_home, fetch_templates

    home = _tf_home()
    print(build_offline_home(home))
    if args.fetch:
        for f in fetch_templates(args.fetch, args.resolution):
            print(f)
    return 0


def _check_paths(args):
    from .bids import check_bids_root

    # every guard compares resolved paths (symbolic links followed, `..` removed), so no
    # route through a link or a relative path writes into the input dataset
    bids = check_bids_root(args.bids_dir).resolve()
    out = Path(args.output_dir).resolve()
    if out == bids or bids in out.parents:
        raise UsageError(
            f"{args.output_dir}: the output folder must be outside the input "
            "BIDS dataset (the input is never written to)"
        )
    if args.analysis_level == "participant":
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(
                f"{out}: cannot create the output folder ({exc.strerror}); "
                "choose a writable location"
            ) from None
    if out.exists() and not os.access(out, os.W_OK | os.X_OK):
        raise OutputError(
            f"{out}: output folder is not writable; fix its permissions or choose another"
        )
    work = (Path(args.work_dir) if args.work_dir else Path.cwd() / "work").resolve()
    if work == out or out in work.parents:
        raise UsageError(f"{work}: the work folder must not be inside the output folder")
    if work == bids or bids in work.parents:
        raise UsageError(f"{work}: the work folder must not be inside the input dataset")
    if args.analysis_level == "participant" and not args.reports_only:
        try:
            work.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(
                f"{work}: cannot create the work folder ({exc.strerror}); "
                "choose a writable location with -w"
            ) from None
        if not os.access(work, os.W_OK | os.X_OK):
            raise OutputError(
                f"{work}: work folder is not writable; fix its permissions or "
                "choose another with -w"
            )
    return bids, out, work


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


#: nipype execution plugins inflamap supports
PLUGINS = ("MultiProc", "Linear", "SLURMGraph", "SLURM")


def check_resources(args) -> None:
    """``--nprocs``, ``--omp-nthreads`` and ``--mem-gb`` within their ranges (exit 64)."""
    for opt, value, lo in (("--nprocs", args.nprocs, 1), ("--omp-nthreads", args.omp_nthreads, 1)):
        if value is not None and not lo <= value <= 4096:
            raise UsageError(f"{opt} {value}: must be a whole number from {lo} to 4096")
    if args.mem_gb is not None and not (args.mem_gb > 0 and args.mem_gb < 1e5):
        raise UsageError(
            f"--mem-gb {args.mem_gb:g}: must be a positive number of GB "
            "(omit it to use the allocation or the machine's memory)"
        )


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


def run_participant(args, settings, layout, work) -> int:
    from nipype import config as ncfg

    from workflows.anat import template_inputs
    from workflows.base import init_single_subject_wf

    from .bids import select_participants
    from .derivatives import write_dataset_description
    from .engine import SafeMultiProcPlugin, terminate_workers
    from .reports.boilerplate import boilerplate_for_run
    from .reports.participant import report_after_run
    from .resources import ResourceRecorder
    from .templates import TemplateError
    from .utils import atomic_write_text, remove_stale_temporaries

    subjects = select_participants(layout, args.participant_label)
    anat = settings.workflow.anat
    try:
        tfiles = template_inputs(
            anat.template, anat.template_resolution, anat.atlas, anat.atlas_desc
        )
    except TemplateError as exc:
        raise InputMissingError(str(exc)) from None
    # every input file of every participant checked before any workflow runs; a participant
    # with a problem is not run (and, with --stop-on-first-crash, nobody is)
    from .preflight import FailureMessage, preflight_participants, report_failures

    n_participants = len(subjects)
    plans, failures = preflight_participants(
        layout,
        subjects,
        settings,
        progress=_progress,
        stop_on_first_crash=args.stop_on_first_crash,
    )
    if plans:
        write_dataset_description(settings.execution.output_dir, settings.execution.bids_dir)
    plugin = settings.nipype.plugin
    if plugin.startswith("SLURM") and not os.environ.get("LOGNAME"):
        import getpass

        os.environ["LOGNAME"] = getpass.getuser()  # nipype's SLURM plugins read it
    interrupted = 0
    for i, plan in enumerate(plans, start=1):
        subject = plan.subject
        sub_work = work / f"sub-{subject}"  # one work folder per participant (no clobbering)
        run_started = time.time()  # older crash files are shown as from an earlier run
        sub_work.mkdir(parents=True, exist_ok=True)
        out_dir = Path(settings.execution.output_dir)
        crash_dir = out_dir / "logs" / f"sub-{subject}"
        ncfg.update_config(
            {
                "execution": {
                    "crashdump_dir": str(crash_dir),
                    "crashfile_format": "txt",
                    "stop_on_first_crash": args.stop_on_first_crash,
                    "remove_unnecessary_outputs": False,
                    "parameterize_dirs": False,
                    "poll_sleep_duration": (
                        2
                        if plugin in _GRAPH_PLUGINS
                        or plugin.startswith(("SLURM", "SGE", "PBS", "LSF"))
                        else _LOCAL_POLL_SECONDS
                    ),
                },
                "logging": {
                    "workflow_level": "INFO" if args.verbose else "WARNING",
                    "interface_level": "INFO" if args.verbose > 1 else "WARNING",
                },
            }
        )
        from nipype import logging as nlogging

        nlogging.update_logging(ncfg)
        lock = _ParticipantLock(sub_work)
        if not lock.acquire():
            failures.append(
                (
                    subject,
                    (
                        f"already being processed by another inflamap "
                        f"process ({lock.holder()}) with the work folder "
                        f"{sub_work}; wait for it to finish or use another -w"
                    ),
                    None,
                )
            )
            _progress(f"sub-{subject}: FAILED: {failures[-1][1]}")
            if args.stop_on_first_crash:
                break
            continue
        recorder = ResourceRecorder().start()  # logs/sub-<label>/resources.json
        try:
            # temporaries of a killed run (SIGKILL, job out of time/memory): no one else
            # writes this participant's derivatives while we hold its lock
            stale = remove_stale_temporaries(out_dir / f"sub-{subject}")
            if stale:
                _progress(
                    f"sub-{subject}: removed {len(stale)} partial file(s) left by an "
                    "interrupted run"
                )
            _progress(f"sub-{subject} ({i}/{len(plans)}): building workflow")
            wf = init_single_subject_wf(plan, settings, tfiles)
            wf.base_dir = str(sub_work)
            boilerplate_for_run(
                wf,
                subject,
                settings.execution.output_dir,
                settings.workflow.anat.template,
                progress=_progress,
            )  # methods of the steps built, pre-run
            plugin_args = dict(settings.nipype.plugin_args)
            if plugin in ("MultiProc", "Linear"):
                plugin_args["status_callback"] = recorder.callback(_status_callback(subject))
            tag = None
            if plugin in _GRAPH_PLUGINS:
                tag = f"inflamap_{settings.execution.run_uuid}_sub-{subject}"
                plugin_args["sbatch_args"] = (
                    f"{plugin_args.get('sbatch_args') or ''} --comment={tag}"
                ).strip()
            settings.dump(sub_work / "inflamap_config.json")
            # the settings beside the derivatives: `--config` with this file reproduces the run
            atomic_write_text(settings.workflow.to_yaml(), crash_dir / "config.yml")
            _progress(
                f"sub-{subject} ({i}/{len(plans)}): running "
                f"{len(wf.list_node_names())} steps with {plugin}"
            )
            if plugin == "MultiProc":  # a dead worker fails its step instead of hanging
                execgraph = wf.run(plugin=SafeMultiProcPlugin(plugin_args=plugin_args))
            else:
                execgraph = wf.run(plugin=plugin, plugin_args=plugin_args)
            if tag is not None:
                _wait_for_graph_jobs(subject, tag, execgraph, crash_dir)
            _progress(f"sub-{subject} ({i}/{len(plans)}): done")
        except InflamapError as exc:
            failures.append((subject, FailureMessage(str(exc), "workflow build", exc.code), None))
        except (Terminated, KeyboardInterrupt) as exc:
            ignore_signals()  # a second signal must not interrupt the clean-up
            stopped = terminate_workers()
            what = exc.describe() if isinstance(exc, Terminated) else "interrupted (SIGINT)"
            failures.append(
                (
                    subject,
                    FailureMessage(
                        f"{what}; {stopped} worker process(es) stopped; rerun with the same -w to "
                        "resume from the finished steps",
                        "run",
                        exc.code if isinstance(exc, Terminated) else 130,
                    ),
                    None,
                )
            )
            interrupted = failures[-1][1].code
        except Exception as exc:  # noqa: BLE001 - a failing node: nipype wrote a crash file
            if args.verbose:
                import traceback

                traceback.print_exc()
            crash = sorted(crash_dir.glob("crash-*")) if crash_dir.exists() else []
            full = _full_disk(sub_work, out_dir)
            if full:  # the cause, rather than the file a step could then not find
                failures.append((subject, FailureMessage(full, "run", 1), None))
            else:
                failures.append(
                    (
                        subject,
                        str(exc).strip().splitlines()[0] if str(exc) else type(exc).__name__,
                        crash[-1] if crash else None,
                    )
                )
        finally:
            lock.release()
            recorder.stop()
            _write_resources(
                crash_dir / "resources.json",
                recorder,
                subject,
                settings,
                failed=bool(failures) and failures[-1][0] == subject,
            )
        if interrupted:  # the summary, and the signal's exit code (no more participants)
            _progress(f"sub-{subject}: {failures[-1][1]}")
            report_failures(failures, n_participants)
            return interrupted
        # the report, also after a failure (errors on top); never changes the exit code
        report_after_run(
            settings.execution.output_dir,
            subject,
            [str(f[1]) for f in failures if f[0] == subject and f[2] is None],
            since=run_started,
            progress=_progress,
        )
        if failures and failures[-1][0] == subject:
            _progress(f"sub-{subject}: FAILED: {failures[-1][1]}")
            if args.stop_on_first_crash:
                break
    if failures:  # participant, step, message and crash file of each; the exit code
        return report_failures(failures, n_participants)
    return 0


#: a disk with less free space than this (bytes) is taken as the cause of a failed run
FULL_DISK_BYTES = 64 * 2**20


def _full_disk(*folders) -> str | None:
    """A one-line message if the disk of one of ``folders`` is (nearly) full, else None."""
    import shutil

    for folder in folders:
        try:
            free = shutil.disk_usage(folder).free
        except OSError:
            continue
        if free < FULL_DISK_BYTES:
            which = "work" if folder != folders[-1] else "output"
            return (
                f"the disk of the {which} folder {folder} is full ({free / 2**20:.1f} MiB "
                "free); free space, or choose another "
                + ("-w" if which == "work" else "OUTPUT_DIR")
                + ", and rerun (finished steps are reused)"
            )
    return None


def _write_resources(path, recorder, subject, settings, failed):
    """The participant's resource summary (wall time, peak memory, steps); never fatal."""
    from .resources import write_resource_summary

    nip = settings.nipype
    try:
        write_resource_summary(
            path,
            recorder,
            participant=subject,
            status="failed" if failed else "success",
            nprocs=nip.nprocs,
            omp_nthreads=nip.omp_nthreads,
            mem_gb=nip.mem_gb,
            plugin=nip.plugin,
            plugin_args=nip.plugin_args,
        )
    except OSError as exc:
        _progress(f"sub-{subject}: resource summary not written ({exc})")


class _ParticipantLock:
    """An advisory lock on a participant's work folder (``.inflamap.lock``, ``lockf``).

    Two runs of one participant with the same work folder (an array job resubmitted while
    the first still runs) would overwrite each other's steps; the second one is refused.
    File systems without ``lockf`` (some network mounts) run unlocked.
    """

    def __init__(self, folder: Path):
        self.path = folder / ".inflamap.lock"
        self._fh = None

    def acquire(self) -> bool:
        import errno
        import fcntl

        fh = open(self.path, "a+")
        try:  # a POSIX record lock: held by this process only (not by forked workers)
            fcntl.lockf(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EAGAIN):
                fh.close()
                return False
            # ENOLCK/EOPNOTSUPP: no locking on this file system; run unlocked
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {os.uname().nodename}\n")
        fh.flush()
        self._fh = fh
        return True

    def holder(self) -> str:
        try:
            return self.path.read_text().strip() or "unknown process"
        except OSError:
            return "unknown process"

    def release(self):
        if self._fh is not None:
            self._fh.close()  # closing drops the lock
            self._fh = None


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


class _status_callback:  # noqa: N801 - a picklable callback (MapNodes pickle plugin args)
    """Progress line for every finished step of a participant."""

    def __init__(self, subject):
        self.subject = subject

    def __call__(self, node, status):
        if status == "end":
            _progress(f"sub-{self.subject}: finished {node.fullname}")


class Terminated(BaseException):  # noqa: N818 - like KeyboardInterrupt, not an error
    """The process received SIGTERM (a SLURM time limit, ``kill``, ``docker stop``)."""

    code = 143  # 128 + SIGTERM

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum

    def describe(self) -> str:
        import signal

        return f"terminated by {signal.Signals(self.signum).name} (e.g. a job's time limit)"


def _raise_terminated(signum, frame):
    raise Terminated(signum)


def handle_signals() -> None:
    """SIGTERM ends the run like Ctrl-C: workers stopped, summary, exit 143."""
    import signal

    signal.signal(signal.SIGTERM, _raise_terminated)


def ignore_signals() -> None:
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


#: the tools that have console scripts of their own (``inflamap-demo``, ``inflamap-templates``)
TOOLS = {"demo": "run_demo", "templates": "run_templates"}


def _is_bids_app_call(argv) -> bool:
    """``BIDS_DIR OUTPUT_DIR participant|group ...``: also when BIDS_DIR is named ``demo``."""
    positional = [a for a in argv if not a.startswith("-")]
    return len(positional) >= 3 and positional[2] in ("participant", "group")


def main(argv=None) -> int:
    """``inflamap BIDS_DIR OUTPUT_DIR participant|group [options]``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in TOOLS and not _is_bids_app_call(argv):
        # the old spelling of the tools (kept working)
        print(f"inflamap: note: 'inflamap {argv[0]}' is now 'inflamap-{argv[0]}'", file=sys.stderr)
        return _guarded(globals()[TOOLS[argv[0]]], argv[1:])
    return _guarded(_main, argv)


def demo_main(argv=None) -> int:
    """``inflamap-demo DIR [--participants N] [--resolution MM] [--seed S]``."""
    return _guarded(run_demo, list(sys.argv[1:] if argv is None else argv))


def templates_main(argv=None) -> int:
    """``inflamap-templates [--fetch TEMPLATE ...] [--resolution R]``."""
    return _guarded(run_templates, list(sys.argv[1:] if argv is None else argv))


def _guarded(fn, argv) -> int:
    """Run ``fn(argv)``: documented errors as one line and their exit code, signals as
    130/143, the caller's signal handlers restored."""
    import signal

    on_main = threading.current_thread() is threading.main_thread()
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)} if on_main else {}
    try:
        return fn(argv)
    except InflamapError as exc:
        print(f"inflamap: error: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print("inflamap: interrupted", file=sys.stderr)
        return 130
    except Terminated as exc:
        print(f"inflamap: {exc.describe()}", file=sys.stderr)
        return exc.code
    finally:  # an in-process caller (tests, notebooks) gets its handlers back
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def _main(argv) -> int:
    args = build_parser().parse_args(argv)
    check_resources(args)
    if threading.current_thread() is threading.main_thread():
        handle_signals()
    # --omp-nthreads caps ITK, OpenMP and BLAS threads before numpy loads, here and in the
    # processes the run starts (nipype's workers, SLURM jobs)
    from .resources import limit_threads

    limit_threads(args.omp_nthreads or min(8, args.nprocs or _allocated_cpus()))
    from .bids import check_filters, clean_labels, get_layout, scan_dataset, validate
    from .config import ConfigError, Settings, load_workflow_config

    # options and configuration first: a mistake there ends the run before any folder is made
    try:
        workflow_cfg = load_workflow_config(args.config)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    filters = {}
    if args.bids_filter_file:
        try:
            filters = json.loads(Path(args.bids_filter_file).read_text())
        except (OSError, ValueError) as exc:
            raise UsageError(
                f"{args.bids_filter_file}: not a readable JSON filter file ({exc})"
            ) from None
        filters = check_filters(filters, args.bids_filter_file)
    participant_label = clean_labels(args.participant_label)
    session_label = clean_labels(args.session_label, "session")
    if args.random_seed is not None and not 0 < args.random_seed < 2**31:
        raise UsageError(
            f"--random-seed {args.random_seed}: must be an integer from 1 to "
            f"{2**31 - 1} (ANTs' seed is a 32-bit integer)"
        )
    bids, out, work = _check_paths(args)
    settings = Settings(workflow=workflow_cfg)
    ex = settings.execution
    ex.bids_dir, ex.output_dir, ex.analysis_level = str(bids), str(out), args.analysis_level
    ex.work_dir = str(work)
    ex.participant_label = participant_label
    ex.session_label = session_label
    ex.bids_filters = filters
    ex.skip_bids_validation = args.skip_bids_validation
    ex.stop_on_first_crash = args.stop_on_first_crash
    ex.verbosity = args.verbose
    ex.run_uuid = f"{time.strftime('%Y%m%d-%H%M%S')}_{uuid.uuid4().hex[:8]}"
    if args.random_seed is not None:
        os.environ["ANTS_RANDOM_SEED"] = str(args.random_seed)
    else:  # inherited by nipype's workers and by SLURM jobs (sbatch exports the environment)
        os.environ.setdefault("ANTS_RANDOM_SEED", str(DEFAULT_RANDOM_SEED))
    _plugin(args, settings)
    if args.reports_only:  # before validation: reads OUTPUT_DIR only
        if args.analysis_level != "participant":
            raise UsageError(
                "--reports-only regenerates the participant reports; use it with 'participant'"
            )
        from .reports.participant import run_reports_only

        return run_reports_only(out, ex.participant_label, progress=_progress)
    # nothing that could make the validator or pybids hang (FIFOs, devices, link loops)
    scan_dataset(bids)
    if not args.skip_bids_validation:
        _progress("validating the input dataset (bids-validator-deno)")
        validate(bids)
    if args.analysis_level == "group":
        from .group import run_group

        return run_group(settings)
    layout = get_layout(bids)
    return run_participant(args, settings, layout, work)
