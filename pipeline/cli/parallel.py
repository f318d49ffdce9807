"""Participants side by side: one process per participant, a share of the resources each.

A participant's graph keeps only ~1.3 processes busy on average (its registrations and fits
wait on each other), so on a machine with more processes than that, participants run side
by side (``--parallel-participants``): each in a process of its own (forked), which runs it
exactly as a run of one participant would — its lock, its work folder, its nipype settings
(crash folder), its resource record, its report — with an equal share of ``--nprocs``,
``--omp-nthreads`` and ``--mem-gb`` (:func:`~pipeline.cli.participant.run_settings_share`).

The main process starts them (at most ``at_once`` at a time, in the order of the plans),
shows their progress (one bar for all on a terminal; the participants' own plain lines
elsewhere) and collects each one's failures. A participant process that ends without a
result (killed for memory) is a failure of that participant, not a hang. SIGTERM/Ctrl-C:
the participants stop their own steps (they receive the signal too: SLURM and a terminal
signal the whole process group; a ``kill`` of the main process alone is passed on) and
report it; nothing new starts.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue as queue_mod
import signal
import time
from pathlib import Path

from .. import log
from .progress import _bar, _clock
from .signals import Terminated, ignore_signals

#: memory a participant is assumed to need when participants run side by side (GB): twice
#: the peak measured at 2-3 mm (1.5 GB, ``logs/sub-*/resources.json``) for larger images
PARTICIPANT_MEM_GB = 3.0


def participants_at_once(args, settings, n_plans: int) -> int:
    """How many participants run side by side (``--parallel-participants``).

    ``auto`` (the default): one per process of ``--nprocs``, at most the participants,
    at most ``memory / PARTICIPANT_MEM_GB`` (``--mem-gb``, the SLURM allocation, else the
    memory available now); always 1 with ``--stop-on-first-crash`` (it stops at the first
    failing participant) and with a cluster plugin (its jobs already run side by side).
    A participant alone on several processes keeps only ~1.3 of them busy (measured: 369 s
    of steps in 293 s on 2 processes), side by side each keeps one busy.
    """
    wanted = getattr(args, "parallel_participants", None)
    if n_plans <= 1 or args.stop_on_first_crash:
        return 1
    if settings.nipype.plugin not in ("MultiProc", "Linear"):
        return 1
    if settings.nipype.plugin == "Linear" and wanted is None:
        return 1
    if wanted is not None:
        return max(1, min(int(wanted), n_plans))
    mem = settings.nipype.mem_gb or _available_mem_gb()
    by_mem = int(mem // PARTICIPANT_MEM_GB) if mem else n_plans
    return max(1, min(n_plans, settings.nipype.nprocs, by_mem))


def _available_mem_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 2**20
    except (OSError, ValueError, IndexError):
        pass
    return None


def run_settings_share(settings, at_once: int):
    """The settings of one of ``at_once`` participants run side by side: an equal share of
    the processes (at least one), of the memory and of the threads per process."""
    import copy

    share = copy.deepcopy(settings)
    nip = share.nipype
    nip.nprocs = max(1, settings.nipype.nprocs // at_once)
    nip.omp_nthreads = max(1, min(settings.nipype.omp_nthreads, nip.nprocs))
    if settings.nipype.mem_gb:
        nip.mem_gb = settings.nipype.mem_gb / at_once
    if nip.plugin == "MultiProc":
        nip.plugin_args = {**nip.plugin_args, "n_procs": nip.nprocs}
        if nip.mem_gb:
            nip.plugin_args["memory_gb"] = nip.mem_gb
    return share


#: the queue of the participant process to the main one (set in the participant process
#: only; a module global so that the picklable status callback need not carry it)
TO_MAIN = None


def _participant_process(run, i, plan, settings, events, bar) -> None:
    global TO_MAIN
    TO_MAIN = events if bar else None
    if bar:  # the main process draws the bar; lines from here first clear it
        log.share_terminal()
    from ..preflight import FailureMessage
    from ..resources import limit_threads

    # this participant's share of the threads, for ITK/OpenMP/BLAS here and in the
    # processes it starts (the main process set the run's own, for one participant at a time)
    limit_threads(settings.nipype.omp_nthreads)
    try:
        failures, interrupted = run.one(i, plan, settings)
    except BaseException as exc:  # noqa: BLE001 - whatever happens is this participant's
        failures = [(plan.subject, FailureMessage(f"{type(exc).__name__}: {exc}", "run", 1), None)]
        interrupted = getattr(exc, "code", 0) if isinstance(exc, Terminated) else 0
    events.put(("result", plan.subject, [(s, m, str(c) if c else None) for s, m, c in failures],
                interrupted))  # fmt: skip
    events.close()
    events.join_thread()


def send_step(subject, done, total, step) -> bool:
    """In a participant process whose progress the main process draws: pass the step on
    (True); else False (the caller draws its own)."""
    if TO_MAIN is None:
        return False
    try:
        TO_MAIN.put_nowait(("step", subject, done, total, step))
    except (ValueError, OSError, queue_mod.Full):
        return True
    return True


def run_concurrently(run, plans, at_once: int) -> tuple[list, int]:
    """Run ``plans`` with ``at_once`` participant processes at a time; the failures of all
    and the exit code of a signal that stopped the run (0 otherwise)."""
    from ..preflight import FailureMessage

    ctx = mp.get_context("fork")
    events = ctx.Queue()
    share = run_settings_share(run.settings, at_once)
    bar = log.bar_enabled()
    waiting = list(enumerate(plans, start=1))
    running = {}  # subject -> process
    steps = {}  # subject -> (done, total)
    results = {}
    failures, interrupted = [], 0
    started = time.time()

    def start_next():
        i, plan = waiting.pop(0)
        proc = ctx.Process(
            target=_participant_process,
            args=(run, i, plan, share, events, bar),
            name=f"inflamap-sub-{plan.subject}",
        )
        proc.start()
        running[plan.subject] = proc
        steps.setdefault(plan.subject, (0, None))

    def draw():
        if not bar:
            return
        done_n = len(results)
        parts = [f"sub-{s} {d}/{t or '?'}" for s, (d, t) in steps.items() if s in running]
        known = [t for d, t in steps.values() if t]
        mean_total = sum(known) / len(known) if known else None
        elapsed = _clock(time.time() - started)
        text = f"{_bar(done_n, len(plans))} {done_n}/{len(plans)} participants {elapsed}"
        if mean_total:
            finished_steps = sum(d for d, _ in steps.values())
            total_steps = mean_total * len(plans)
            elapsed = time.time() - started
            if finished_steps >= 10 and finished_steps < total_steps:
                left = elapsed / finished_steps * (total_steps - finished_steps) / 60
                text += f", about {left:.0f} min left" if left >= 1 else ", under a minute left"
        log.show_bar(f"{text}  {'  '.join(parts)}")

    def collect(block_s: float):
        try:
            item = events.get(timeout=block_s)
        except queue_mod.Empty:
            return
        while True:
            if item[0] == "step":
                _, subject, done, total, _step = item
                steps[subject] = (done, total)
            elif item[0] == "result":
                _, subject, fails, code = item
                results[subject] = (
                    [(s, m, Path(c) if c else None) for s, m, c in fails],
                    code,
                )
            try:
                item = events.get_nowait()
            except queue_mod.Empty:
                break
        draw()

    try:
        while waiting or running:
            while waiting and len(running) < at_once and not interrupted:
                start_next()
            if not running:
                break
            collect(0.5)
            for subject, proc in list(running.items()):
                if proc.is_alive() and subject not in results:
                    continue
                proc.join(timeout=30)
                if subject not in results:
                    collect(1.0)  # its last message may still be in the pipe
                if subject not in results:
                    results[subject] = (
                        [
                            (
                                subject,
                                FailureMessage(
                                    f"the participant's process ended without a result (exit "
                                    f"code {proc.exitcode}: killed by the system, e.g. for "
                                    "memory?); rerun with fewer --parallel-participants or "
                                    "more --mem-gb (finished steps are reused)",
                                    "run",
                                    1,
                                ),
                                None,
                            )
                        ],
                        0,
                    )
                del running[subject]
                fails, code = results[subject]
                failures.extend(fails)
                interrupted = interrupted or code
                draw()
    except (Terminated, KeyboardInterrupt) as exc:
        ignore_signals()  # a second signal must not interrupt the clean-up
        interrupted = exc.code if isinstance(exc, Terminated) else 130
        # a signal to this process alone (`kill PID`) is passed on; a process group signal
        # (Ctrl-C, SLURM) reached the participants already, one more is ignored by them
        for proc in running.values():
            if proc.is_alive() and isinstance(exc, Terminated):
                try:
                    os.kill(proc.pid, signal.SIGTERM)
                except OSError:
                    pass
        deadline = time.time() + 120
        while running and time.time() < deadline:
            collect(0.5)
            for subject, proc in list(running.items()):
                if not proc.is_alive():
                    proc.join()
                    fails, _code = results.get(subject, ([], 0))
                    failures.extend(fails)
                    del running[subject]
        for subject, proc in running.items():  # did not stop in time
            proc.kill()
            proc.join()
            failures.append(
                (subject, FailureMessage("stopped (did not end within 2 min)", "run", 1), None)
            )
        running.clear()
    finally:
        log.clear_bar()
    for _i, plan in waiting:  # never started (a signal stopped the run)
        if interrupted:
            failures.append(
                (
                    plan.subject,
                    FailureMessage(
                        "not started: the run was stopped; rerun to process it", "run", interrupted
                    ),
                    None,
                )
            )
    return failures, interrupted
