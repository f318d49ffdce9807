"""Shared fixtures: a hermetic offline TemplateFlow home, the demo dataset and one run of it."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
# TemplateFlow reads its home at import: set it before anything imports templateflow.
TF_HOME = ROOT / ".cache" / "templateflow"
os.environ["TEMPLATEFLOW_HOME"] = str(TF_HOME)


def run_cli(*args, cwd=None, timeout=3000):
    """Run ``python -m pipeline ARGS`` and return the completed process."""
    # the checkout's code, whatever the working folder (an installed copy must not be used)
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = dict(os.environ, TEMPLATEFLOW_HOME=str(TF_HOME), PYTHONPATH=path)
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        env=env,
        timeout=timeout,
    )


def tree_snapshot(root: Path) -> dict:
    """Every file below ``root`` with its size, mtime and content hash."""
    snap = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        entry = (st.st_mode, st.st_size, st.st_mtime_ns)
        if p.is_file():
            entry += (hashlib.sha1(p.read_bytes()).hexdigest(),)
        snap[str(p.relative_to(root))] = entry
    return snap


@pytest.fixture(scope="session")
def tf_home():
    from pipeline.templates import build_offline_home

    build_offline_home(TF_HOME)
    return TF_HOME


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory, tf_home):
    """A 2-participant demo at 3 mm (one control, one patient with aura)."""
    from pipeline.demo import make_demo

    out = tmp_path_factory.mktemp("demo")
    make_demo(out, participants=2, resolution=3.0, seed=7, anatomy="template")
    return out


@pytest.fixture(scope="session")
def demo_run(demo_dir, tmp_path_factory):
    """Participant and group level on a read-only copy of the demo; snapshots around it."""
    base = tmp_path_factory.mktemp("run")
    bids = base / "bids"
    shutil.copytree(demo_dir / "bids", bids)
    for p in [bids, *bids.rglob("*")]:
        p.chmod(p.stat().st_mode & ~0o222)  # read-only (for non-root runs)
    before = tree_snapshot(bids)
    out, work = base / "out", base / "work"
    part = run_cli(
        bids,
        out,
        "participant",
        "--config",
        demo_dir / "inflamap-demo.yml",
        "-w",
        work,
        "--nprocs",
        "2",
        "--omp-nthreads",
        "1",
    )
    # Later tests rerun participants into the same OUTPUT_DIR (other settings); keep what
    # this run wrote about its resources.
    resources = {
        p.parent.name: p.read_text() for p in sorted((out / "logs").glob("sub-*/resources.json"))
    }
    group = run_cli(bids, out, "group", "--config", demo_dir / "inflamap-demo.yml", "-w", work)
    return {
        "bids": bids,
        "out": out,
        "work": work,
        "participant": part,
        "group": group,
        "resources": resources,
        "before": before,
        "demo": demo_dir,
    }


#: modules whose every test is of one kind (the rest: by the fixtures a test uses)
MODULE_MARKS = {
    "test_slurm": "slurm",
    "test_container": "container",
    "test_resume": "e2e",
    "test_concurrency": "e2e",
}


def pytest_collection_modifyitems(config, items):
    """Markers in one place: ``e2e`` for every test that uses the shared demo run (or runs
    the pipeline itself), ``slurm`` and ``container`` by module. The fast suite is
    ``-m "not e2e and not slurm and not container and not slow"``."""
    for item in items:
        module = item.module.__name__.rpartition(".")[2]
        if module in MODULE_MARKS:
            item.add_marker(getattr(pytest.mark, MODULE_MARKS[module]))
        if "demo_run" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(autouse=True)
def _signal_handlers_given_back(request):
    """A test that changes this process's SIGINT/SIGTERM handling fails and the handling is
    given back: a SIGINT left ignored is inherited by the processes later tests start (an
    ignored SIGINT stays ignored across exec), whose Ctrl-C then does nothing."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    changed = [sig.name for sig, h in before.items() if signal.getsignal(sig) != h]
    for sig, handler in before.items():
        signal.signal(sig, handler)
    if changed:
        pytest.fail(f"{request.node.nodeid} left the handling of {', '.join(changed)} changed")
