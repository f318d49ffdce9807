"""The demo dataset: valid BIDS, deterministic, and its ground truth is complete."""

import json
import subprocess

import nibabel as nb
import numpy as np
import pytest

from pipeline.demo import EFFECTS


def test_demo_is_valid_bids(demo_dir):
    proc = subprocess.run(
        ["bids-validator-deno", str(demo_dir / "bids"), "--format", "json", "--ignoreWarnings"],
        capture_output=True,
        text=True,
    )
    report = json.loads(proc.stdout)
    errors = [i for i in report["issues"]["issues"] if i["severity"] == "error"]
    assert errors == []


def test_ground_truth_lists_effects_and_poses(demo_dir):
    truth = json.loads((demo_dir / "groundtruth" / "groundtruth.json").read_text())
    assert {e["id"] for e in truth["effects"]} == {e["id"] for e in EFFECTS}
    groups = {p["group"] for p in truth["participants"].values()}
    assert groups == {"HC", "MA"}
    for pid, p in truth["participants"].items():  # noqa: B007
        for ses, s in p["sessions"].items():  # noqa: B007
            if p["group"] == "MA" and s["phase"] == "ictal":
                assert "gad_meningeal_occipital" in s["effects"]
                assert s["headache_side"] in ("left", "right")
            if p["group"] == "HC":
                assert s["effects"] == []
            for rel, f in s["files"].items():
                assert (demo_dir / "bids" / rel).exists()
                w = np.asarray(f["world_from_template"])
                scale = np.asarray(p["anatomical_scale"])
                rigid = w[:3, :3] @ np.diag(1 / scale)
                np.testing.assert_allclose(rigid @ rigid.T, np.eye(3), atol=1e-9)
                angle = np.degrees(np.arccos((np.trace(rigid) - 1) / 2))
                assert angle <= 6.0 + 1e-6 and np.linalg.norm(w[:3, 3]) <= 6.0 + 1e-6


def test_planted_enhancement_visible_in_raw_images(demo_dir):
    """The MA ictal post-gadolinium T1w is brighter than pre in the meningeal band."""
    truth = json.loads((demo_dir / "groundtruth" / "groundtruth.json").read_text())
    pid = next(k for k, v in truth["participants"].items() if v["group"] == "MA")
    anat = demo_dir / "bids" / pid / "ses-02" / "anat"
    pre = nb.load(anat / f"{pid}_ses-02_T1w.nii.gz").get_fdata()
    post = nb.load(anat / f"{pid}_ses-02_ce-gadobutrol_T1w.nii.gz").get_fdata()
    assert np.percentile(post - pre, 99.5) > 100  # dura and sinuses enhance (WM ~ 1000)


@pytest.mark.slow  # builds the demo twice (~30 s): full suite only
def test_demo_is_deterministic_one_or_two_processes(tmp_path, tf_home):
    """The same seed gives the same dataset, participants written one after the other or
    side by side in two processes (each draws from its own random stream); another seed
    gives another."""
    from pipeline.demo import make_demo

    a = make_demo(tmp_path / "a", participants=3, resolution=6.0, seed=3, n_procs=1)
    b = make_demo(tmp_path / "b", participants=3, resolution=6.0, seed=3, n_procs=2)
    c = make_demo(tmp_path / "c", participants=3, resolution=6.0, seed=4, n_procs=2)
    fa = sorted(p.relative_to(a) for p in a.rglob("*.nii.gz"))
    assert fa == sorted(p.relative_to(b) for p in b.rglob("*.nii.gz"))
    assert len(fa) > 30
    for rel in fa:
        np.testing.assert_array_equal(
            np.asanyarray(nb.load(a / rel).dataobj), np.asanyarray(nb.load(b / rel).dataobj)
        )
    for rel in ("bids/participants.tsv", "groundtruth/groundtruth.json"):
        assert (a / rel).read_text() == (b / rel).read_text(), rel
    assert (a / "groundtruth/groundtruth.json").read_text() != (
        c / "groundtruth/groundtruth.json"
    ).read_text()


def test_validator_found_beside_python_and_warnings_reported(demo_dir, monkeypatch):
    """inflamap called by its absolute path in a virtual environment that is not activated
    (the validator is not on PATH, but pip put it beside the interpreter): validation runs,
    and its warnings come back one line per kind instead of being thrown away."""
    import shutil
    import sys
    from pathlib import Path

    from pipeline import bids

    beside = Path(sys.executable).parent / "bids-validator-deno"
    if not beside.is_file():
        pytest.skip("bids-validator-deno is not installed beside this Python")
    monkeypatch.setenv("PATH", "/nonexistent")
    assert shutil.which("bids-validator-deno") is None
    assert bids.validator_executable() == str(beside)
    lines = bids.validate(demo_dir / "bids")
    # the demo leaves out recommended scanner fields: a warning with the fields named
    rec = [ln for ln in lines if ln.startswith("SIDECAR_KEY_RECOMMENDED")]
    import re

    assert rec and re.search(r" \[\w+(, \w+)*(, \.\.\.)?\] \(\d+x, e\.g\. /sub-", rec[0]), rec
