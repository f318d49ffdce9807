"""Progress a person can read: one bar per participant redrawn in place on a terminal; plain
lines (no control codes) in a file, a pipe or under SLURM; the log file always has the
lines."""

from __future__ import annotations

import os
import pty
import subprocess
import sys

import pytest
from conftest import ROOT

DRIVE = """
import sys
from pipeline import log
from pipeline.cli.participant import _status_callback
log.start_run()
log.log_to_file(sys.argv[1])
cb = _status_callback("01", 5)
class Node:
    def __init__(self, name):
        self.fullname = name
for i in range(5):
    node = Node(f"sub_01_wf.anat_ses_01_wf.step_{i}")
    cb(node, "start")
    cb(node, "end")
    if i == 2:
        log.get("cli").info("a message in the middle")
log.clear_bar()
log.get("cli").info("sub-01 (1/1): done in 0:01")
"""


def _run(tmp_path, tty: bool, drive=DRIVE, **env):
    logfile = tmp_path / "run.log"
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "TERM": "xterm", **env}
    if "SLURM_JOB_ID" not in env:  # a test run inside a SLURM job: not a SLURM run here
        environment.pop("SLURM_JOB_ID", None)
    args = [sys.executable, "-c", drive, str(logfile)]
    if not tty:
        p = subprocess.run(args, capture_output=True, text=True, env=environment, timeout=120)
        assert p.returncode == 0, p.stderr
        return p.stderr, logfile.read_text()
    master, slave = pty.openpty()
    p = subprocess.Popen(args, stderr=slave, stdout=subprocess.DEVNULL, env=environment)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # the other end closed
            break
        if not data:
            break
        chunks.append(data)
    assert p.wait(timeout=120) == 0
    os.close(master)
    return b"".join(chunks).decode(), logfile.read_text()


def test_a_terminal_gets_one_bar_redrawn_in_place(tmp_path):
    out, logged = _run(tmp_path, tty=True)
    assert "\r\x1b[K" in out and "█" in out
    assert "sub-01 " in out and "5/5" in out and "anatomy: step" in out
    # the steps are not lines of their own; the message and the end line are
    lines = [ln.split("\r\x1b[K")[-1] for ln in out.replace("\r\n", "\n").split("\n")]
    assert not any("[1/5]" in ln for ln in lines)
    assert any(ln.endswith("a message in the middle") for ln in lines)
    assert any(ln.endswith("done in 0:01") for ln in lines)
    # the log file has every step as a line, without control codes
    assert logged.count("sub-01: [") == 5 and "\x1b" not in logged


@pytest.mark.parametrize("where", ["pipe", "slurm", "dumb"])
def test_elsewhere_plain_lines_without_control_codes(tmp_path, where):
    if where == "pipe":
        out, logged = _run(tmp_path, tty=False)
    elif where == "slurm":
        out, logged = _run(tmp_path, tty=True, SLURM_JOB_ID="42")
    else:
        out, logged = _run(tmp_path, tty=True, TERM="dumb")
    assert "\x1b" not in out and "\r\x1b" not in out and "█" not in out
    steps = [ln for ln in out.splitlines() if "sub-01: [" in ln]
    assert len(steps) == 5 and "[5/5]" in steps[-1] and "anatomy: step" in steps[0]
    assert logged.count("sub-01: [") == 5


# two participants side by side (forked processes): their steps reach the main process,
# which draws one bar for both
SIDE_BY_SIDE = """
import sys, time
from types import SimpleNamespace
from pipeline import log
from pipeline.cli.parallel import run_concurrently
from pipeline.cli.participant import _status_callback
from pipeline.config import Settings
log.start_run()
log.log_to_file(sys.argv[1])
class Node:
    def __init__(self, name):
        self.fullname = name
class Run:
    settings = Settings()
    def one(self, i, plan, settings=None):
        cb = _status_callback(plan.subject, 5)
        for k in range(5):
            node = Node(f"sub_{plan.subject}_wf.anat_ses_01_wf.step_{k}")
            cb(node, "start")
            cb(node, "end")
            time.sleep(0.3)
        log.get("cli").info(f"sub-{plan.subject} ({i}/2): done in 0:02")
        return [], 0
Run.settings.nipype.nprocs = 2
plans = [SimpleNamespace(subject="01"), SimpleNamespace(subject="02")]
failures, code = run_concurrently(Run(), plans, 2)
assert not failures and code == 0
log.get("cli").info("all done")
"""


def test_side_by_side_participants_share_one_bar(tmp_path):
    out, logged = _run(tmp_path, tty=True, drive=SIDE_BY_SIDE)
    lines = [ln.split("\r\x1b[K")[-1] for ln in out.replace("\r\n", "\n").split("\n")]
    assert not any("[1/5]" in ln for ln in lines)  # steps are in the bar, not lines
    assert "participants" in out and "sub-01 " in out and "sub-02 " in out
    assert "2/2 participants" in out  # the bar counts finished participants
    assert any(ln.endswith("sub-01 (1/2): done in 0:02") for ln in lines)
    assert any(ln.endswith("sub-02 (2/2): done in 0:02") for ln in lines)
    assert any(ln.endswith("all done") for ln in lines)
    # the log file has every step of both, one line each, without control codes
    assert logged.count("sub-01: [") == 5 and logged.count("sub-02: [") == 5
    assert "\x1b" not in logged


def test_side_by_side_participants_in_a_file_get_plain_lines(tmp_path):
    out, logged = _run(tmp_path, tty=False, drive=SIDE_BY_SIDE)
    assert "\x1b" not in out and "█" not in out
    for sub in ("01", "02"):
        steps = [ln for ln in out.splitlines() if f"sub-{sub}: [" in ln]
        assert len(steps) == 5 and "[5/5]" in steps[-1]
    assert logged.count("sub-01: [") == 5 and logged.count("sub-02: [") == 5
