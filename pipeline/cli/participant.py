"""The participant level: one locked, resource-recorded run per planned participant."""

from __future__ import annotations

import os
import time
from pathlib import Path

from .. import log
from ..errors import InflamapError, InputMissingError
from .parallel import participants_at_once, run_settings_share
from .plugin import (
    _GRAPH_PLUGINS,
    _LOCAL_POLL_SECONDS,
)
from .progress import _bar, _clock, _progress
from .signals import Terminated, ignore_signals
from .slurm import _wait_for_graph_jobs


def run_participant(args, settings, layout, work) -> int:
    from ..bids import select_participants
    from ..derivatives import write_dataset_description
    from ..templates import TemplateError, template_inputs

    subjects = select_participants(layout, args.participant_label)
    anat = settings.workflow.anat
    try:
        tfiles = template_inputs(
            anat.template, anat.template_resolution, anat.atlas, anat.atlas_desc, anat.atlas_file
        )
    except TemplateError as exc:
        raise InputMissingError(str(exc)) from None
    # every input file of every participant checked before any workflow runs; a participant
    # with a problem is not run (and, with --stop-on-first-crash, nobody is)
    from ..preflight import preflight_participants, report_failures

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
        if settings.execution.validator_warnings is not None:  # for the reports
            from ..bids import save_validator_warnings

            save_validator_warnings(
                settings.execution.output_dir, settings.execution.validator_warnings
            )
        # the console output of this run, from its first line, beside the derivatives
        path = log.log_to_file(
            Path(settings.execution.output_dir) / "logs" / f"run-{settings.execution.run_uuid}.log"
        )
        _progress(f"this run's log: {path}")
    plugin = settings.nipype.plugin
    if plugin.startswith("SLURM") and not os.environ.get("LOGNAME"):
        import getpass

        os.environ["LOGNAME"] = getpass.getuser()  # nipype's SLURM plugins read it
    at_once = participants_at_once(args, settings, len(plans))
    run = _Run(args, settings, work, tfiles, len(plans))
    if at_once > 1:
        from .parallel import run_concurrently

        _progress(
            f"{len(plans)} participants, {at_once} at a time "
            f"({run_settings_share(settings, at_once).nipype.nprocs} process(es) each)"
        )
        more, interrupted = run_concurrently(run, plans, at_once)
        failures.extend(more)
        if interrupted:
            report_failures(failures, n_participants)
            return interrupted
    else:
        for i, plan in enumerate(plans, start=1):
            more, interrupted = run.one(i, plan)
            failures.extend(more)
            if interrupted:  # the summary, and the signal's exit code (no more participants)
                _progress(f"sub-{plan.subject}: {more[-1][1]}")
                report_failures(failures, n_participants)
                return interrupted
            if more and args.stop_on_first_crash:
                break
    if failures:  # participant, step, message and crash file of each; the exit code
        return report_failures(failures, n_participants)
    return 0


class _Run:
    """What every participant of a run shares; :meth:`one` runs one participant."""

    def __init__(self, args, settings, work, tfiles, n_plans):
        self.args, self.settings, self.work = args, settings, work
        self.tfiles, self.n_plans = tfiles, n_plans

    def one(self, i, plan, settings=None) -> tuple[list, int]:
        """Run participant ``i`` of the run (locked, resource-recorded, its report after);
        its failures ``[(subject, message, crash file)]`` and the exit code of a signal
        that stopped it (0 otherwise)."""
        from nipype import config as ncfg

        from workflows.base import init_single_subject_wf

        from ..engine import SafeMultiProcPlugin, terminate_workers
        from ..preflight import FailureMessage
        from ..reports.boilerplate import boilerplate_for_run
        from ..reports.participant import report_after_run
        from ..resources import ResourceRecorder
        from ..utils import atomic_write_text, remove_stale_temporaries

        args, work, tfiles = self.args, self.work, self.tfiles
        settings = settings or self.settings
        plugin = settings.nipype.plugin
        n = self.n_plans
        failures = []
        interrupted = 0
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
            return failures, 0
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
            started = time.time()
            _progress(f"sub-{subject} ({i}/{n}): building workflow")
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
                plugin_args["status_callback"] = recorder.callback(
                    _status_callback(subject, len(wf.list_node_names()))
                )
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
                f"sub-{subject} ({i}/{n}): running {len(wf.list_node_names())} steps with {plugin}"
            )
            if plugin == "MultiProc":  # a dead worker fails its step instead of hanging
                execgraph = wf.run(plugin=SafeMultiProcPlugin(plugin_args=plugin_args))
            else:
                execgraph = wf.run(plugin=plugin, plugin_args=plugin_args)
            if tag is not None:
                _wait_for_graph_jobs(subject, tag, execgraph, crash_dir)
            log.clear_bar()
            _progress(f"sub-{subject} ({i}/{n}): done in {_clock(time.time() - started)}")
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
            log.clear_bar()  # the lines that follow start on a clean line
            lock.release()
            recorder.stop()
            _write_resources(
                crash_dir / "resources.json",
                recorder,
                subject,
                settings,
                failed=bool(failures) and failures[-1][0] == subject,
            )
        if interrupted:
            return failures, interrupted
        # the report, also after a failure (errors on top); never changes the exit code
        report_after_run(
            settings.execution.output_dir,
            subject,
            [str(f[1]) for f in failures if f[0] == subject and f[2] is None],
            since=run_started,
            progress=_progress,
        )
        if failures:
            _progress(f"sub-{subject}: FAILED: {failures[-1][1]}")
        return failures, 0


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
    from ..resources import write_resource_summary

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


#: workflow name prefixes (``<prefix>_..._wf``) and what they are, for progress lines
_STAGES = {
    "anat": "anatomy",
    "gad": "gadolinium",
    "dce": "DCE",
    "uspio": "USPIO",
    "pet": "PET",
    "spect": "SPECT",
    "regional": "regional table",
}


#: what the items of a MapNode are, for progress lines ("motion correction, frame 13")
_ITEMS = {"motion_correction": "frame", "frames_on_reference": "frame"}


def step_fullname(node) -> str:
    """A node's full name; for one item of a MapNode (nipype names it ``_<name><index>``
    with no hierarchy) the MapNode's, from its folder (``.../<wf>/<name>/mapflow``)."""
    name = node.fullname
    base = getattr(node, "base_dir", None) or ""
    if name.startswith("_") and "." not in name and base.rstrip("/").endswith("mapflow"):
        parts = Path(base).parent.parts
        wf = next((k for k, p in enumerate(parts) if p.endswith("_wf")), None)
        if wf is not None:
            return ".".join([*parts[wf:-1], name])
    return name


def describe_step(fullname: str) -> str:
    """A progress label for a node's full name, e.g. ``sub_01_wf.anat_ses_01_wf.n4`` →
    ``ses-01 anatomy: n4``; a derivatives sink → ``ses-01 anatomy: saved a derivative``."""
    import re

    parts = fullname.split(".")[1:] or fullname.split(".")
    step = parts[-1]
    context = parts[-2] if len(parts) > 1 else step
    ses = re.search(r"ses_([A-Za-z0-9]+)", context if len(parts) > 1 else step)
    words = context.removesuffix("_wf").split("_")
    if words[0] == "ds" and len(words) > 1:  # a modality's derivatives (ds_<modality>_..._wf)
        words = words[1:]
    what = _STAGES.get(words[0], "")
    if len(parts) == 1:  # a node of the participant workflow itself (sinks, tables)
        words = step.split("_")
        what = _STAGES.get(words[1] if words[0] == "ds" and len(words) > 1 else words[0], "")
    if step.startswith("ds_"):
        label = "saved a derivative"
    elif re.fullmatch(r"_\w+?\d+", step):  # one item of a MapNode: _<name><index>
        name, index = re.fullmatch(r"_(\w+?)(\d+)", step).groups()
        label = f"{name}, {_ITEMS.get(name, 'item')} {int(index) + 1}"
    else:
        label = re.sub(r"_ses_[A-Za-z0-9]+|_\d+$", "", step)
    label = label.replace("_", " ").strip()
    where = " ".join(x for x in (f"ses-{ses.group(1)}" if ses else "", what) if x)
    return f"{where}: {label}" if where else label


class _status_callback:  # noqa: N801 - a picklable callback (MapNodes pickle plugin args)
    """Progress of a participant's run: on a terminal, one bar (``[k/N]``, elapsed, time
    left at the pace so far, the step just finished) redrawn in place; elsewhere (a file, a
    pipe, SLURM) one plain line per finished step. The run's log file always gets the
    lines."""

    def __init__(self, subject, total=None):
        self.subject, self.total, self.done = subject, total, 0
        self.start = None

    def __call__(self, node, status):
        import time

        if self.start is None:
            self.start = time.time()
        if status != "end":
            return
        fullname = step_fullname(node)
        # one item of a MapNode (a frame): named, not counted (the MapNode is one step)
        item = fullname != node.fullname
        self.done += 0 if item else 1
        count = f"{min(self.done, self.total)}/{self.total}" if self.total else f"{self.done}"
        elapsed = time.time() - self.start
        left = ""
        # the first steps are quick (checks, sinks of the inputs): no estimate before a
        # quarter of the steps
        if self.total and self.total // 4 <= self.done < self.total and self.done >= 3:
            minutes = elapsed / self.done * (self.total - self.done) / 60
            left = f" (about {minutes:.0f} min left)" if minutes >= 1 else " (under a minute left)"
        step = describe_step(fullname)
        line = f"sub-{self.subject}: [{count}] {step}{left}"
        if not log.bar_enabled():
            _progress(line)
            return
        log.to_file("cli", line)
        from .parallel import send_step

        if send_step(self.subject, self.done, self.total, step):  # the main process draws
            return
        bar = _bar(min(self.done, self.total or self.done), self.total or self.done)
        rest = left.replace(" (", ", ")[:-1] if left else ""
        log.show_bar(f"sub-{self.subject} {bar} {count} {_clock(elapsed)}{rest}  {step}")
