"""Resources (issue 9, item 6): --omp-nthreads caps ITK/OpenMP/BLAS threads, --nprocs and
--mem-gb reach nipype's MultiProc, and each participant gets logs/sub-<label>/resources.json
(wall time, peak memory of the process tree, per-step times)."""

import json
import pickle
import subprocess
import sys
from types import SimpleNamespace

import pytest
from conftest import ROOT


class _Node:
    def __init__(self, fullname):
        self.fullname = fullname


def test_summary_writer_measures_a_process_tree(tmp_path):
    from pipeline.resources import ResourceRecorder, write_resource_summary
    from pipeline.utils import is_temporary

    seen = []
    rec = ResourceRecorder(interval=0.1).start()
    cb = rec.callback(lambda node, status: seen.append((node.fullname, status)))
    cb(_Node("wf.a"), "start")
    # a child holding ~300 MB resident for a while: the sampled tree peak must include it
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            "import time; b = bytearray(300 * 2**20); b[::4096] = b'x' * "  # noqa: ISC004
            "len(b[::4096]); time.sleep(1.0)",
        ],
        timeout=60,
    )
    assert child.returncode == 0
    cb(_Node("wf.a"), "end")
    cb(_Node("wf.b"), "start")
    cb(_Node("wf.b"), "exception")
    rec.stop()
    rec.stop()  # idempotent
    assert seen == [("wf.a", "start"), ("wf.a", "end"), ("wf.b", "start"), ("wf.b", "exception")]
    path = tmp_path / "logs" / "sub-01" / "resources.json"
    write_resource_summary(
        path,
        rec,
        participant="01",
        status="success",
        nprocs=2,
        omp_nthreads=1,
        mem_gb=0.25,
        plugin="MultiProc",
        plugin_args={"n_procs": 2, "memory_gb": 0.25, "status_callback": cb},
    )
    assert [p.name for p in path.parent.iterdir()] == ["resources.json"]
    assert not [p for p in tmp_path.rglob("*") if is_temporary(p)]
    s = json.loads(path.read_text())
    assert s["participant"] == "01" and s["status"] == "success"
    assert s["settings"]["nprocs"] == 2 and s["settings"]["omp_nthreads"] == 1
    assert s["settings"]["mem_gb"] == 0.25
    assert s["settings"]["plugin_args"] == {"n_procs": 2, "memory_gb": 0.25}
    assert set(s["settings"]["thread_env"]) >= {
        "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS",
        "OMP_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
    }
    assert s["wall_time_s"] >= 1.0
    peak = s["peak_rss_gb"]
    assert peak["process_tree"] >= 0.29, peak  # this process + the 300 MB child
    assert peak["largest_child"] >= 0.29, peak  # getrusage of the ended child
    assert peak["main_process"] > 0
    assert s["within_mem_gb"] is False  # 0.25 GB given, more used
    assert s["cpu_time_s"]["children"] > 0
    steps = {st["name"]: st for st in s["steps"]}
    assert steps["wf.a"]["status"] == "ok" and steps["wf.a"]["seconds"] >= 1.0
    assert steps["wf.b"]["status"] == "failed"
    assert s["started"] and s["finished"]


def test_status_callback_pickles_without_the_recorder():
    """nipype pickles plugin arguments (MapNodes): the callback must survive it."""
    from pipeline.cli import _status_callback
    from pipeline.resources import ResourceRecorder

    rec = ResourceRecorder().start()
    try:
        copy = pickle.loads(pickle.dumps(rec.callback(_status_callback("01"))))
        copy(_Node("wf.x"), "start")  # records nothing, still calls the progress line
        assert copy.inner.subject == "01" and copy.recorder is None
    finally:
        rec.stop()


def test_process_tree_rss_counts_descendants():
    from pipeline.resources import process_tree_rss

    me = process_tree_rss()
    if me is None:
        pytest.skip("no /proc")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; b = bytearray(200 * 2**20); b[::4096] = b'x' * "  # noqa: ISC004
            "len(b[::4096]); print('ready', flush=True); time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        assert process_tree_rss() - me > 150 * 2**20
        assert process_tree_rss(proc.pid) > 190 * 2**20
    finally:
        proc.kill()
        proc.wait()


def test_limit_threads_before_and_after_numpy():
    """In a fresh process: the variables are set, and BLAS pools are capped both when numpy
    loads afterwards (environment) and when it was loaded before (threadpoolctl); 1 thread,
    below the default of any machine with 2 cores or more."""
    code = r"""
import json, os, sys
first = sys.argv[1]
if first == "numpy":
    import numpy
from pipeline.resources import limit_threads, THREAD_ENV_VARS
limit_threads(1)
import numpy
from threadpoolctl import threadpool_info
from pipeline.interfaces.ants import itk_threads
print(json.dumps({"env": {v: os.environ[v] for v in THREAD_ENV_VARS},
                  "pools": [i["num_threads"] for i in threadpool_info()],
                  "itk": itk_threads(5)}))
"""
    for first in ("numpy", "limit"):
        p = subprocess.run(
            [sys.executable, "-c", code, first],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
        )
        assert p.returncode == 0, p.stderr
        got = json.loads(p.stdout)
        assert set(got["env"].values()) == {"1"}
        assert got["pools"] and set(got["pools"]) == {1}, (first, got)
        assert got["itk"] == "1"  # the run's value, not the node's num_threads


def test_itk_threads_without_a_run_value(monkeypatch):
    from pipeline.interfaces.ants import itk_threads

    monkeypatch.delenv("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", raising=False)
    assert itk_threads(3) == "3"
    assert itk_threads(None) == "1"
    monkeypatch.setenv("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "4")
    assert itk_threads(1) == "4"


def test_nprocs_and_mem_gb_reach_multiproc():
    from pipeline.cli import _plugin, build_parser

    def plugin(*opts):
        args = build_parser().parse_args(["bids", "out", "participant", *opts])
        settings = SimpleNamespace(nipype=SimpleNamespace())
        _plugin(args, settings)
        return settings.nipype

    nip = plugin("--nprocs", "3", "--omp-nthreads", "2", "--mem-gb", "5.5")
    assert (nip.nprocs, nip.omp_nthreads, nip.mem_gb) == (3, 2, 5.5)
    assert nip.plugin == "MultiProc"
    assert nip.plugin_args["n_procs"] == 3 and nip.plugin_args["memory_gb"] == 5.5
    nip = plugin("--nprocs", "4")
    assert nip.omp_nthreads == 4 and "memory_gb" not in nip.plugin_args


def test_demo_run_wrote_resource_summaries(demo_run):
    """The shared demo run (--nprocs 2 --omp-nthreads 1): one summary per participant.

    By default the two participants ran side by side, each with its share: one process of
    the two, one thread. Read as the run left them (the fixture keeps them): later tests
    rerun sub-01 into the same output folder with other settings, which rewrites its summary.
    """
    assert demo_run["participant"].returncode == 0, demo_run["participant"].stderr[-2000:]
    assert "2 participants, 2 at a time (1 process(es) each)" in demo_run["participant"].stderr
    assert sorted(demo_run["resources"]) == ["sub-01", "sub-02"]
    for label in ("01", "02"):
        s = json.loads(demo_run["resources"][f"sub-{label}"])
        assert s["participant"] == label and s["status"] == "success"
        assert s["settings"]["nprocs"] == 1 and s["settings"]["omp_nthreads"] == 1
        assert s["settings"]["plugin"] == "MultiProc"
        assert s["settings"]["plugin_args"]["n_procs"] == 1
        assert s["settings"]["thread_env"]["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] == "1"
        assert s["settings"]["thread_env"]["OMP_NUM_THREADS"] == "1"
        assert 1 < s["wall_time_s"] < 3600
        assert 0.05 < s["peak_rss_gb"]["process_tree"] < 64
        assert len(s["steps"]) > 10
        assert all(st.get("status") == "ok" for st in s["steps"]), s["steps"]
        assert any("registration" in st["name"] for st in s["steps"])
        assert s["cpu_time_s"]["children"] > 0  # the MultiProc workers did the work
