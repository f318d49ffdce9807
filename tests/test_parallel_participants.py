"""Participants side by side (``--parallel-participants``): how many, with what share, and
that a participant process that dies is that participant's failure, never a hang."""

from __future__ import annotations

import os
import signal
import time
from argparse import Namespace
from pathlib import Path
from types import SimpleNamespace

import pytest

from pipeline.cli.parallel import participants_at_once, run_concurrently, run_settings_share
from pipeline.config import Settings


def _settings(nprocs=2, omp=2, mem=0.0, plugin="MultiProc"):
    s = Settings()
    s.nipype.nprocs, s.nipype.omp_nthreads, s.nipype.mem_gb = nprocs, omp, mem
    s.nipype.plugin = plugin
    s.nipype.plugin_args = {"n_procs": nprocs, **({"memory_gb": mem} if mem else {})}
    return s


def _args(n=None, stop=False):
    return Namespace(parallel_participants=n, stop_on_first_crash=stop)


@pytest.mark.parametrize(
    ("nprocs", "mem", "n_plans", "wanted", "stop", "plugin", "expected"),
    [
        (2, 24.0, 6, None, False, "MultiProc", 2),  # one per process
        (8, 24.0, 6, None, False, "MultiProc", 6),  # at most the participants
        (16, 12.0, 20, None, False, "MultiProc", 4),  # at most memory / 3 GB
        (2, 24.0, 1, None, False, "MultiProc", 1),  # one participant
        (2, 24.0, 6, None, True, "MultiProc", 1),  # --stop-on-first-crash
        (2, 24.0, 6, None, False, "SLURMGraph", 1),  # the cluster runs jobs side by side
        (2, 24.0, 6, None, False, "Linear", 1),  # Linear: one at a time unless asked
        (2, 24.0, 6, 3, False, "Linear", 3),
        (8, 24.0, 6, 1, False, "MultiProc", 1),  # asked
        (8, 24.0, 3, 5, False, "MultiProc", 3),  # never more than the participants
    ],
)
def test_participants_at_once(nprocs, mem, n_plans, wanted, stop, plugin, expected):
    s = _settings(nprocs=nprocs, omp=1, mem=mem, plugin=plugin)
    assert participants_at_once(_args(wanted, stop), s, n_plans) == expected


def test_each_participant_gets_an_equal_share():
    s = _settings(nprocs=8, omp=4, mem=16.0)
    share = run_settings_share(s, 3)
    assert share.nipype.nprocs == 2  # 8 // 3
    assert share.nipype.omp_nthreads == 2  # never more threads than its processes
    assert share.nipype.mem_gb == pytest.approx(16.0 / 3)
    assert share.nipype.plugin_args["n_procs"] == 2
    assert share.nipype.plugin_args["memory_gb"] == pytest.approx(16.0 / 3)
    assert s.nipype.nprocs == 8 and s.nipype.plugin_args["n_procs"] == 8  # a copy
    one = run_settings_share(_settings(nprocs=2, omp=2), 4)  # more participants than procs
    assert one.nipype.nprocs == 1 and one.nipype.omp_nthreads == 1


class _FakeRun:
    """A run whose participants write when they start and end, and some die or fail."""

    def __init__(self, folder: Path, settings, die=(), fail=(), seconds=0.6):
        self.folder, self.settings, self.die, self.fail = folder, settings, die, fail
        self.seconds = seconds

    def one(self, i, plan, settings=None):
        (self.folder / f"{plan.subject}.start").write_text(
            f"{time.time()} {settings.nipype.nprocs}"
        )
        time.sleep(self.seconds)
        if plan.subject in self.die:  # killed by the system (e.g. for memory)
            os.kill(os.getpid(), signal.SIGKILL)
        (self.folder / f"{plan.subject}.end").write_text(str(time.time()))
        if plan.subject in self.fail:
            return [(plan.subject, "a step failed", Path("/x/crash.txt"))], 0
        return [], 0


def _plans(n):
    return [SimpleNamespace(subject=f"{i:02d}") for i in range(1, n + 1)]


def test_side_by_side_collects_every_result_and_respects_the_limit(tmp_path):
    run = _FakeRun(tmp_path, _settings(nprocs=4), fail=("03",))
    failures, code = run_concurrently(run, _plans(5), 2)
    assert code == 0
    assert [(f[0], str(f[1]), f[2]) for f in failures] == [
        ("03", "a step failed", Path("/x/crash.txt"))
    ]
    spans = []
    for p in _plans(5):
        start, nprocs = (tmp_path / f"{p.subject}.start").read_text().split()
        spans.append((float(start), float((tmp_path / f"{p.subject}.end").read_text())))
        assert int(nprocs) == 2  # 4 processes shared by 2 participants
    # never more than 2 at once: at every start, at most one other participant is running
    for s, _ in spans:
        assert sum(1 for a, b in spans if a <= s < b) <= 2
    assert max(sum(1 for a, b in spans if a <= s < b) for s, _ in spans) == 2


def test_a_participant_process_that_dies_is_its_failure_not_a_hang(tmp_path):
    run = _FakeRun(tmp_path, _settings(nprocs=2), die=("02",))
    started = time.time()
    failures, code = run_concurrently(run, _plans(3), 2)
    assert time.time() - started < 30
    assert code == 0
    assert [f[0] for f in failures] == ["02"]
    assert "ended without a result" in str(failures[0][1])
    assert "-9" in str(failures[0][1])  # the exit code names the signal
    assert (tmp_path / "03.end").exists()  # the others ran to the end


def test_sigterm_stops_the_participants_and_starts_no_more(tmp_path):
    import threading

    from pipeline.cli.signals import handle_signals

    # the clean-up ignores both signals from then on: both are given back (a SIGINT left
    # ignored here was inherited by the CLI processes of later tests, which Ctrl-C then
    # could not stop)
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    handle_signals()
    try:
        run = _FakeRun(tmp_path, _settings(nprocs=2), seconds=20)
        threading.Timer(1.5, os.kill, (os.getpid(), signal.SIGTERM)).start()
        started = time.time()
        failures, code = run_concurrently(run, _plans(4), 2)
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
    assert time.time() - started < 15  # not the 20 s a participant takes
    assert code == 143
    by = {f[0]: str(f[1]) for f in failures}
    assert set(by) == {"01", "02", "03", "04"}
    assert "Terminated" in by["01"] and "Terminated" in by["02"]  # stopped while running
    assert "not started" in by["03"] and "not started" in by["04"]
    assert not (tmp_path / "03.start").exists()
