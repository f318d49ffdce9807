"""A participant run killed mid-way (SIGKILL of its process group, as a cluster does at a
time or memory limit) leaves no partial derivative, and a rerun with the same work folder
completes, reuses the steps that had finished and gives the outputs of an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd
import pytest
from conftest import ROOT
from hpc_support import cli_env, t1w_subset, write_fast_config

from pipeline.utils import is_temporary, remove_stale_temporaries


def test_killed_writer_leaves_no_partial_file(tmp_path):
    """SIGKILL in the middle of writing a derivative: the final name never holds a partial
    file; the hidden temporary is removed by the rerun's cleanup."""
    src = tmp_path / "src.nii.gz"
    src.write_bytes(os.urandom(1 << 20))
    dst = tmp_path / "out" / "sub-01" / "anat" / "sub-01_desc-preproc_T1w.nii.gz"
    code = f"""
import shutil, sys, time
sys.path.insert(0, {str(ROOT)!r})
from pipeline import utils
def slow_copy(a, b):
    with open(a, "rb") as f, open(b, "wb") as g:
        g.write(f.read(1000)); g.flush()
        print("writing", flush=True)
        time.sleep(120)
utils.shutil = type("S", (), {{"copyfile": staticmethod(slow_copy)}})
import shutil as real
real.copyfile = slow_copy
utils.atomic_copy({str(src)!r}, {str(dst)!r})
"""
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "writing"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert not dst.exists()
    left = [p for p in dst.parent.iterdir()]  # noqa: C416
    assert len(left) == 1 and is_temporary(left[0]) and left[0].name.startswith(f".{dst.name}.")
    assert remove_stale_temporaries(tmp_path / "out" / "sub-01") == left
    assert not list(dst.parent.iterdir())


def _run(bids, out, work, config, *extra):
    argv = [
        sys.executable,
        "-m",
        "pipeline",
        str(bids),
        str(out),
        "participant",
        "--participant-label",
        "01",
        "-w",
        str(work),
        "--config",
        str(config),
        "--skip-bids-validation",
        "--nprocs",
        "2",
        "--omp-nthreads",
        "1",
        *extra,
    ]
    return argv


def _derivatives(root: Path) -> list[Path]:
    return sorted(
        p.relative_to(root)
        for p in (root / "sub-01").rglob("*")
        if p.is_file() and not is_temporary(p) and "figures" not in p.parts
    )


def _same(a: Path, b: Path) -> bool:
    name = a.name
    if name.endswith(".nii.gz"):
        x, y = (np.asanyarray(nb.load(p).dataobj) for p in (a, b))
        return x.shape == y.shape and np.allclose(x, y, atol=1e-6, equal_nan=True)
    if name.endswith(".tsv"):
        x, y = (pd.read_csv(p, sep="\t") for p in (a, b))
        try:
            pd.testing.assert_frame_equal(x, y, check_exact=False, rtol=1e-6)
            return True
        except AssertionError:
            return False
    if name.endswith(".json"):
        return json.loads(a.read_text()) == json.loads(b.read_text())
    if name.endswith(".h5"):  # ITK transforms: same datasets (the HDF5 bytes differ)
        x, y = _h5(a), _h5(b)
        return x.keys() == y.keys() and all(
            np.allclose(x[k], y[k], atol=1e-6)
            if np.asarray(x[k]).dtype.kind == "f"
            else np.array_equal(x[k], y[k])
            for k in x
        )
    return a.read_bytes() == b.read_bytes()


def _h5(path) -> dict:
    import h5py  # with nitransforms (niworkflows)

    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(
            lambda k, v: out.__setitem__(k, v[()]) if isinstance(v, h5py.Dataset) else None
        )
    return out


def _results(work: Path) -> dict[str, int]:
    return {str(p.relative_to(work)): p.stat().st_mtime_ns for p in work.rglob("result_*.pklz")}


@pytest.fixture(scope="module")
def resume_data(demo_dir, tmp_path_factory):
    base = tmp_path_factory.mktemp("resume")
    return {
        "bids": t1w_subset(demo_dir, base / "bids", participants=1),
        "config": write_fast_config(base),
    }


def test_sigkill_then_rerun_resumes_with_identical_outputs(resume_data, tmp_path):
    bids, config, env = resume_data["bids"], resume_data["config"], cli_env()
    t0 = time.time()
    ref = subprocess.run(
        _run(bids, tmp_path / "ref", tmp_path / "ref_work", config),
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    t_ref = time.time() - t0
    assert ref.returncode == 0, ref.stderr[-3000:]

    out, work = tmp_path / "out", tmp_path / "work"
    n4_result = work / "sub-01" / "sub_01_wf" / "anat_ses_01_wf" / "n4" / "result_n4.pklz"
    t0 = time.time()
    proc = subprocess.Popen(
        _run(bids, out, work, config),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 300
        while not n4_result.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be killed"
        assert n4_result.exists(), "no step finished within 300 s"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the CLI and its MultiProc workers
        proc.wait()
    t_kill = time.time() - t0
    before = _results(work)
    # interrupted: some steps done, not all
    assert before and len(before) < len(_results(tmp_path / "ref_work"))
    # no partial derivative under a final name: whatever exists is the finished file
    killed_files = _derivatives(out)
    for rel in killed_files:
        assert _same(out / rel, tmp_path / "ref" / rel), f"partial or different: {rel}"

    t0 = time.time()
    again = subprocess.run(
        _run(bids, out, work, config, "-v"), capture_output=True, text=True, env=env, timeout=600
    )
    t_rerun = time.time() - t0
    assert again.returncode == 0, again.stderr[-3000:]
    print(
        f"uninterrupted {t_ref:.0f} s; killed after {t_kill:.0f} s "
        f"({len(before)} steps done); rerun {t_rerun:.0f} s"
    )
    # finished steps were reused, not recomputed
    assert "Cached (sub_01_wf.anat_ses_01_wf.n4)" in again.stdout  # nipype's log (-v)
    after = _results(work)
    for name, mtime in before.items():
        assert after.get(name) == mtime, f"{name} was recomputed"
    # the same derivatives as the uninterrupted run, and nothing partial left
    files = _derivatives(out)
    assert files == _derivatives(tmp_path / "ref")
    assert any(f.name.endswith("_regions.tsv") for f in files)
    for rel in files:
        assert _same(out / rel, tmp_path / "ref" / rel), rel
    assert not [p for p in out.rglob("*") if is_temporary(p)]
