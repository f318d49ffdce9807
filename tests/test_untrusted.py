"""Untrusted datasets, hostile paths and flaky machines: no silent wrong answer, no hang.

- What is read depends only on the dataset's own relative paths: the same dataset under
  parent folders named like entities (``study_ses-01/``, ``sub-07_rerun/``, ``…_acq-3T/``,
  ``perf/``) gives the same plan, and stray copies (``archive/sub-01/…``, ``sub-01 copy/``,
  a sub-folder of ``anat/``) are never selected.
- The input dataset is never written to, by any route: output and work folders reached
  through ``..`` or symbolic links into the dataset are refused (paths are resolved first).
- A run always ends: a worker process that dies fails its step (no wait without end), and
  SIGTERM (a SLURM time limit) stops the workers, prints the summary, writes the resource
  summary and exits 143.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from conftest import ROOT, TF_HOME, run_cli, tree_snapshot

HOSTILE_PARENTS = [
    "study_ses-01",  # a session entity: pybids gave every file session 01
    "sub-07_rerun",  # a subject entity: participants merged into one
    "scan_acq-3T",  # an acquisition entity: the T1w was "not found"
    "perf",  # a datatype folder: every file took the datatype perf
    "anat/x_ce-gadobutrol",  # a datatype and a contrast agent
]


def _plan_view(plan, root: Path) -> dict:
    """A participant plan with paths relative to the dataset root (comparable across
    locations)."""

    def rel(p):
        return Path(p).relative_to(root).as_posix()

    view = {}
    for ses in plan.sessions:
        view[ses.session] = {
            "t1w": rel(ses.t1w),
            "info": ses.info,
            "carry": ses.carry,
            "gad": [(g.agent, rel(g.post)) for g in ses.gadolinium],
            "dce": [
                (
                    d.agent,
                    rel(d.series),
                    d.acquisition.times,
                    d.acquisition.flip_angle,
                    [rel(v) for v in d.vfa],
                    d.vfa_flip_angles,
                )
                for d in ses.dce
            ],
            "pet": [
                (rel(p.path), p.metadata.injected_dose_bq, p.metadata.body_weight_kg)
                for p in ses.pet
            ],
            "spect": [(s.tracer, rel(s.early), rel(s.late)) for s in ses.spect],
            "uspio": [
                (
                    u.agent,
                    u.pre_session,
                    [rel(f) for f in u.pre.images],
                    [rel(f) for f in u.post.images],
                    u.post.echo_times_s,
                )
                for u in ses.uspio
            ],
        }
    return view


def _plans(root: Path) -> dict:
    from pipeline.bids import get_layout, select_participants
    from pipeline.config import Settings, load_workflow_config
    from pipeline.plan import plan_participant

    settings = Settings(
        workflow=load_workflow_config(overrides={"anat": {"template": "MNI152NLin2009aSym"}})
    )
    settings.execution.bids_dir = str(root)
    layout = get_layout(root)
    return {
        s: _plan_view(plan_participant(layout, s, settings), root)
        for s in select_participants(layout, [])
    }


@pytest.fixture(scope="module")
def reference_plans(demo_dir):
    return _plans(demo_dir / "bids")


def _copy_tables_and_sidecars(src: Path, dst: Path):
    """The demo dataset without its image data (plans read no voxel): images become links."""
    for p in sorted(src.rglob("*")):
        target = dst / p.relative_to(src)
        if p.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        elif p.name.endswith(".nii.gz"):
            target.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(p, target)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, target)


@pytest.mark.parametrize("parent", HOSTILE_PARENTS)
def test_parent_folder_names_do_not_change_what_is_read(
    parent, demo_dir, reference_plans, tmp_path
):
    root = tmp_path / parent / "bids"
    _copy_tables_and_sidecars(demo_dir / "bids", root)
    assert _plans(root) == reference_plans
    # every session of every participant is there (2 participants x 2 sessions)
    assert sum(len(v) for v in reference_plans.values()) == 4


def test_stray_copies_are_never_selected(demo_dir, reference_plans, tmp_path):
    root = tmp_path / "bids"
    _copy_tables_and_sidecars(demo_dir / "bids", root)
    t1w = root / "sub-01" / "ses-01" / "anat" / "sub-01_ses-01_T1w.nii.gz"
    for stray in (
        root / "archive" / "sub-01" / "ses-01" / "anat",
        root / "sub-01 copy" / "ses-01" / "anat",
        root / "sub-01" / "ses-01" / "anat" / "old",
        root / "sub-01" / "ses-03_old" / "anat",
    ):
        stray.mkdir(parents=True)
        shutil.copy(t1w, stray / "sub-01_ses-01_T1w.nii.gz")
        shutil.copy(t1w, stray / "sub-01_ses-01_acq-old_T1w.nii.gz")
    # a stray subject folder that is not a label does not become a participant either
    assert _plans(root) == reference_plans


# --------------------------------------------------------------------------- paths


def _guard_case(kind: str, tmp: Path, bids: Path):
    """``(output, work)`` arguments reaching into the dataset ``bids`` in a hidden way."""
    if kind == "output-dotdot":
        (tmp / "sibling").mkdir()
        return tmp / "sibling" / ".." / "bids" / "derivatives" / "inflamap", tmp / "work"
    if kind == "output-symlink":
        os.symlink(bids / "derivatives", tmp / "out_link")
        return tmp / "out_link", tmp / "work"
    if kind == "output-symlink-to-root":
        os.symlink(bids, tmp / "out_link")
        return tmp / "out_link", tmp / "work"
    if kind == "work-symlink":
        os.symlink(bids / "code", tmp / "work_link")
        return tmp / "out", tmp / "work_link"
    if kind == "work-dotdot":
        return tmp / "out", tmp / "out" / ".." / "bids" / "work"
    raise ValueError(kind)


@pytest.mark.parametrize(
    "kind",
    ["output-dotdot", "output-symlink", "output-symlink-to-root", "work-symlink", "work-dotdot"],
)
def test_input_dataset_is_never_written_to(kind, demo_dir, tmp_path):
    bids = tmp_path / "bids"
    _copy_tables_and_sidecars(demo_dir / "bids", bids)
    (bids / "derivatives").mkdir()
    (bids / "code").mkdir()
    before = tree_snapshot(bids)
    out, work = _guard_case(kind, tmp_path, bids)
    proc = run_cli(
        bids,
        out,
        "participant",
        "-w",
        work,
        "--skip-bids-validation",
        "--participant-label",
        "01",
        timeout=120,
    )
    assert proc.returncode == 64, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("inflamap: error: ") and (
        "must be outside the input" in last or "must not be inside the input" in last
    ), last
    assert tree_snapshot(bids) == before


# --------------------------------------------------------------------------- a run ends

DYING_WORKFLOW = textwrap.dedent("""
    import os, sys
    from nipype.pipeline import engine as pe
    from nipype.interfaces.utility import Function
    from pipeline.engine import SafeMultiProcPlugin

    def die(x):
        import os, signal
        os.kill(os.getpid(), signal.SIGKILL)  # as the kernel's OOM killer would
        return x

    def slow(x):
        import time
        time.sleep(2)
        return x

    def after(x):
        return x

    from nipype import config
    config.update_config({"execution": {"crashdump_dir": sys.argv[1],
                                        "crashfile_format": "txt",
                                        "poll_sleep_duration": 0.2}})
    wf = pe.Workflow("dying", base_dir=sys.argv[1])
    a = pe.Node(Function(["x"], ["out"], die), name="dies")
    b = pe.Node(Function(["x"], ["out"], slow), name="slow")
    c = pe.Node(Function(["x"], ["out"], after), name="after_death")
    a.inputs.x = b.inputs.x = 1
    wf.connect(a, "out", c, "x")
    wf.add_nodes([b])
    try:
        wf.run(plugin=SafeMultiProcPlugin({"n_procs": 2, "raise_insufficient": False}))
    except RuntimeError as exc:
        print("RAISED", str(exc).splitlines()[0][:200])
        sys.exit(3)
    print("NO ERROR")
""")


def test_a_dead_worker_fails_its_step_instead_of_hanging(tmp_path):
    script = tmp_path / "dying.py"
    script.write_text(DYING_WORKFLOW)
    t0 = time.time()
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert time.time() - t0 < 120
    crashes = sorted(tmp_path.glob("crash-*"))
    assert crashes, proc.stderr
    text = "\n".join(c.read_text() for c in crashes)
    assert "WorkerDiedError: the worker process running dying.dies died" in text
    from pipeline.preflight import describe_crash

    step, error = describe_crash(next(c for c in crashes if "dies" in c.read_text()))
    assert error.startswith("WorkerDiedError: the worker process running dying.dies died")
    # the step that depended on it did not run
    assert not (tmp_path / "dying" / "after_death" / "result_after_death.pklz").exists()


@pytest.fixture
def small_disk(tmp_path):
    """A 15 MB file system (tmpfs) for a work folder that fills up."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=15M", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({proc.stderr.strip()[:80]})")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@pytest.mark.e2e
def test_a_full_work_disk_ends_the_run_and_names_the_cause(demo_dir, small_disk, tmp_path):
    out = tmp_path / "out"
    before = tree_snapshot(demo_dir / "bids")
    t0 = time.time()
    proc = run_cli(
        demo_dir / "bids",
        out,
        "participant",
        "--config",
        demo_dir / "inflamap-demo.yml",
        "-w",
        small_disk / "w",
        "--participant-label",
        "01",
        "--nprocs",
        "2",
        "--omp-nthreads",
        "1",
        "--skip-bids-validation",
        timeout=600,
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert time.time() - t0 < 300
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"  sub-01: the disk of the work folder {small_disk / 'w'}"), last
    assert "is full" in last and "choose another -w" in last, last
    assert tree_snapshot(demo_dir / "bids") == before


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("sig", "code", "words"),
    [(signal.SIGTERM, 143, "terminated by SIGTERM"), (signal.SIGINT, 130, "interrupted (SIGINT)")],
    ids=["SIGTERM", "SIGINT"],
)
def test_signal_stops_workers_writes_summary_and_exits(sig, code, words, demo_dir, tmp_path):
    """What SLURM does at a time limit (SIGTERM) and a user at a terminal (Ctrl-C, SIGINT):
    the run stops its workers, prints the summary and writes resources.json; exit 143/130;
    the work folder resumes."""
    bids = tmp_path / "bids"
    shutil.copytree(demo_dir / "bids", bids)
    out, work = tmp_path / "out", tmp_path / "work"
    env = dict(os.environ, TEMPLATEFLOW_HOME=str(TF_HOME))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipeline",
            str(bids),
            str(out),
            "participant",
            "--config",
            str(demo_dir / "inflamap-demo.yml"),
            "-w",
            str(work),
            "--participant-label",
            "01",
            "--nprocs",
            "2",
            "--omp-nthreads",
            "1",
            "--skip-bids-validation",
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    lines, started = [], threading.Event()

    def read():
        for line in proc.stderr:
            lines.append(line)
            if re.search(r"sub-01: \[\d+/\d+\]", line):  # a step finished
                started.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert started.wait(300), "".join(lines)
        time.sleep(3)
        workers = _children(proc.pid)
        assert workers, "no worker processes while running"
        proc.send_signal(sig)
        t0 = time.time()
        rc = proc.wait(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(10)
    err = "".join(lines)
    assert rc == code, err
    assert time.time() - t0 < 60
    assert f"sub-01: {words}" in err, err
    # the run's own workers were found and stopped (not left to finish their step)
    stopped = rf"sub-01: {re.escape(words)}[^;\n]*; [1-9]\d* worker process\(es\) stopped"
    assert re.search(stopped, err), err
    assert "inflamap: 1 of 1 participant(s) failed:" in err
    summary = json.loads((out / "logs" / "sub-01" / "resources.json").read_text())
    assert summary["status"] == "failed"
    # the console output, from its first line to the summary, is in the run's log file
    (run_log,) = (out / "logs").glob("run-*.log")
    text = run_log.read_text()
    assert "inputs checked" in text and "running" in text, text[-2000:]
    assert f"sub-01: {words}" in text and "1 of 1 participant(s) failed:" in text
    time.sleep(1)
    assert not [w for w in workers if _alive(w)], "worker processes survived SIGTERM"


# --------------------------------------------------------------------------- group inputs


def _group_run(tmp_path, damage):
    """The synthetic group dataset of test_group_stats, ``damage(out)`` applied, then the
    group level (ROI statistics only)."""
    from test_group_stats import TEMPLATE, _write_dataset

    from pipeline.config import Settings, default_config, load_workflow_config
    from pipeline.group import run_group

    bids, out = _write_dataset(tmp_path)
    damage(out)
    keep = [c for c in default_config().group.contrasts if c["name"] == "patientsVsHC"]
    settings = Settings(
        workflow=load_workflow_config(
            overrides={
                "anat": {"template": TEMPLATE},
                "group": {
                    "contrasts": keep,
                    "report": False,
                    "voxelwise": {"enabled": False, "designs": []},
                },
            }
        )
    )
    settings.execution.bids_dir, settings.execution.output_dir = str(bids), str(out)
    assert run_group(settings) == 0
    import pandas as pd

    g = out / "group"
    table = pd.read_csv(g / "desc-all_regions.tsv", sep="\t")
    status = pd.read_csv(g / "desc-missing_participants.tsv", sep="\t", keep_default_na=False)
    return table, status.set_index("participant_id")


def _first_table(out: Path, pid: str) -> Path:
    return sorted((out / pid).rglob("*_regions.tsv"))[0]


def _tables_of(out, pid):
    return sorted((out / pid).rglob("*_regions.tsv"))


def test_group_level_ignores_backup_folders_and_checks_names(tmp_path, capsys):
    """A backup copy inside the output (sub-003_old/) is not averaged in; a table whose
    participant_id contradicts its name is not merged into another participant."""
    moved = {}

    def damage(out):
        shutil.copytree(out / "sub-003", out / "sub-003_old")
        t = _first_table(out, "sub-004")
        t.write_text(t.read_text().replace("sub-004\t", "sub-005\t"))
        moved["table"] = t.relative_to(out).as_posix()

    table, status = _group_run(tmp_path, damage)
    err = capsys.readouterr().err
    assert not table["source_table"].str.startswith("sub-003_old").any()
    assert "sub-003_old: not a participant" in err
    assert moved["table"] not in set(table["source_table"])  # left out, not merged
    assert status.loc["sub-004", "status"] == "failed (damaged tables left out)"
    assert (
        "participant_id ['sub-005'] contradicts its file name (sub-004)"
        in status.loc["sub-004", "reason"]
    )
    # sub-005 keeps its own tables only
    assert set(table.loc[table["participant_id"] == "sub-005", "source_table"].str[:7]) == {
        "sub-005"
    }


@pytest.mark.parametrize(
    "kind,message",
    [
        ("truncated", "cut short (truncated file)"),
        ("binary", "not a text table (binary content)"),
        ("no-roi-column", "lacks column(s) roi"),
        ("empty", "empty table"),
        ("text-in-numbers", "column mean holds 'abc', not a number"),
        ("missing-fields", "fields, the header"),
    ],
)
def test_damaged_tables_are_named_and_left_out(kind, message, tmp_path, capsys):
    def damage(out):
        t = _first_table(out, "sub-002")
        text = t.read_text()
        if kind == "truncated":
            t.write_text(text[: len(text) // 2])
        elif kind == "binary":
            t.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
        elif kind == "no-roi-column":
            t.write_text(text.replace("\troi\t", "\tregion\t", 1))
        elif kind == "empty":
            t.write_text("")
        elif kind == "text-in-numbers":
            head, first, *rest = text.split("\n")
            cols = head.split("\t")
            vals = first.split("\t")
            vals[cols.index("mean")] = "abc"
            t.write_text("\n".join([head, "\t".join(vals), *rest]))
        elif kind == "missing-fields":
            lines = text.split("\n")
            lines[2] = "\t".join(lines[2].split("\t")[:-2])
            t.write_text("\n".join(lines))

    table, status = _group_run(tmp_path, damage)
    err = capsys.readouterr().err
    assert status.loc["sub-002", "status"] == "failed (damaged tables left out)"
    assert message in status.loc["sub-002", "reason"], status.loc["sub-002", "reason"]
    assert "sub-002" in err and message in err
    # the participant's other tables are still used
    assert (table["participant_id"] == "sub-002").any()


def _fuzz_tables():
    from hypothesis import strategies as st

    header = (
        "participant_id\tsession_id\tmodality\tmetric\troi\themisphere\tn_voxels\tmean\tmedian\tsd"
    )
    cell = st.one_of(
        st.text(max_size=6),
        st.sampled_from(
            ["n/a", "1", "-2.5", "nan", "inf", "sub-01", "ses-01", "left", "ipsi", "AI", ""]
        ),
    )
    row = st.lists(cell, min_size=8, max_size=12).map("\t".join)
    body = st.lists(row, max_size=4).map("\n".join)
    return st.one_of(
        body.map(lambda b: f"{header}\n{b}\n"),
        body.map(lambda b: f"{header}\n{b}"),
        st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
        st.text(max_size=200),
    )


@pytest.mark.parametrize("seed", range(1))
def test_fuzz_group_table_reader(seed, tmp_path_factory):
    """Whatever a regional table holds, the reader returns a verified table or refuses it
    with a DamagedTable naming the file: no other exception, no partly used table."""
    from hypothesis import HealthCheck, given, settings

    from pipeline.group import DamagedTable, read_regional_table

    out = tmp_path_factory.mktemp("fuzz_group")
    path = out / "sub-01" / "ses-01" / "anat" / "sub-01_ses-01_desc-x_regions.tsv"
    path.parent.mkdir(parents=True)

    @settings(
        max_examples=300,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(text=_fuzz_tables())
    def check(text):
        path.write_bytes(text.encode("utf-8", "surrogatepass"))
        try:
            df = read_regional_table(path, out)
        except DamagedTable as exc:
            assert str(exc).startswith(str(path)), exc  # noqa: PT017
            return
        assert set(df["participant_id"]) == {"sub-01"}
        assert set(df["session_id"]) == {"ses-01"}
        for c in ("n_voxels", "mean", "median", "sd"):
            assert df[c].dtype.kind == "f" or df[c].dtype.kind == "i"

    check()


# --------------------------------------------------------------------------- field of view


def test_resampling_marks_voxels_outside_the_field_of_view(tmp_path):
    """ANTs fills voxels outside the moving image with 0 (ANTs cannot write NaN); with
    ``outside_nan`` they are NaN and counted, and nothing else changes."""
    import nibabel as nb
    import numpy as np

    from pipeline.interfaces.ants import ApplyTransforms

    aff = np.diag([2.0, 2, 2, 1])
    data = np.random.default_rng(0).uniform(1, 2, (10, 10, 5)).astype(np.float32)
    nb.Nifti1Image(data, aff).to_filename(tmp_path / "mov.nii.gz")  # half the z extent
    nb.Nifti1Image(np.zeros((10, 10, 10), np.float32), aff).to_filename(tmp_path / "ref.nii.gz")
    common = dict(
        input_image=str(tmp_path / "mov.nii.gz"),
        transforms=["identity"],
        reference_image=str(tmp_path / "ref.nii.gz"),
        interpolation="Linear",
        dimension=3,
        float=True,
    )
    results = {}
    for key, extra in (("plain", {}), ("nan", {"outside_nan": True})):
        (tmp_path / key).mkdir()
        os.chdir(tmp_path / key)
        try:
            res = ApplyTransforms(**common, **extra).run()
        finally:
            os.chdir(ROOT)
        results[key] = (nb.load(res.outputs.output_image).get_fdata(), res.outputs)
    (a, _), (b, nan) = results["plain"], results["nan"]
    assert (a[..., 5:] == 0).all()  # what ANTs does: 0, a "measurement"
    assert np.isnan(b[..., 5:]).all() and nan.n_outside == 500
    np.testing.assert_array_equal(a[..., :5], b[..., :5])  # inside: identical
    np.testing.assert_allclose(b[..., :5], data, rtol=1e-6)


def test_post_contrast_with_a_smaller_field_of_view_gives_no_false_enhancement(tmp_path):
    """The silent -100 %: where the post-contrast image does not reach, the enhancement maps
    are NaN (not -100 %), the voxels are counted, and the regional means are those of the
    covered voxels."""
    import nibabel as nb
    import numpy as np

    from pipeline.interfaces.gadolinium import EnhancementMaps
    from pipeline.models.regional import regional_table

    rng = np.random.default_rng(1)
    aff = np.diag([2.0, 2, 2, 1])
    shape = (12, 12, 12)
    pre = rng.uniform(90, 110, shape)
    post = pre * 1.1  # +10 % everywhere
    post[..., 8:] = np.nan  # the post image did not cover the top slices (after resampling)
    brain = np.zeros(shape, np.uint8)
    brain[2:10, 2:10, 2:10] = 1
    wm = brain.astype(np.float32)
    files = {}
    for name, arr in (("pre", pre), ("post", post), ("brain", brain), ("wm", wm)):
        files[name] = str(tmp_path / f"{name}.nii.gz")
        nb.Nifti1Image(arr.astype(np.float32 if name != "brain" else np.uint8), aff).to_filename(
            files[name]
        )
    os.chdir(tmp_path)
    try:
        res = EnhancementMaps(
            pre=files["pre"],
            post=files["post"],
            brain_mask=files["brain"],
            wm_prob=files["wm"],
            method="none",
            wm_threshold=0.5,
            floor_fraction=0.1,
        ).run()
    finally:
        os.chdir(ROOT)
    pct = nb.load(res.outputs.percent).get_fdata()
    assert np.isnan(pct[..., 8:]).all()
    np.testing.assert_allclose(pct[..., :8], 10.0, rtol=1e-5)
    assert res.outputs.provenance["OutsideFieldOfViewVoxels"] == 12 * 12 * 4
    assert res.outputs.provenance["NonFiniteVoxels"] == 0
    labels = brain.astype(int)
    import pandas as pd

    lut = pd.DataFrame({"index": [1], "name": ["brain"], "hemisphere": ["bilateral"]})
    table = regional_table(
        pct,
        labels,
        lut,
        participant_id="sub-01",
        session_id="ses-01",
        modality="gadolinium",
        metric="enhancement",
    )
    row = table.iloc[0]
    assert row["mean"] == pytest.approx(10.0, rel=1e-5)  # not pulled towards -100
    assert row["n_voxels"] == 8 * 8 * 6  # covered brain voxels only
