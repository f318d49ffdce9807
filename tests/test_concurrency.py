"""Many participants writing one derivatives folder at once (cluster array jobs): the
dataset files are written once and atomically, temporary names are never shared, each
participant keeps its own work subfolder under a shared -w, a second run of a participant
already running there is refused, and the BIDS validator accepts the result.

On 2 cores, 8 full participant runs would mostly measure the registration; the 8-process
test starts every writer at one barrier on the real writing code (dataset description,
derivatives sink, group-style shared files), and a real run of 4 participants at once (fast
registration) checks the whole participant level.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from hpc_support import cli_env, t1w_subset, write_fast_config

from pipeline.utils import is_temporary

N_WRITERS = 8


@pytest.fixture(scope="module")
def many(demo_dir, tmp_path_factory):
    base = tmp_path_factory.mktemp("concurrency")
    return {
        "bids": t1w_subset(demo_dir, base / "bids", participants=N_WRITERS),
        "config": write_fast_config(base),
        "base": base,
    }


def _writer(i, barrier, bids, out, queue):
    """One participant's writes, all processes released at once."""
    try:
        from pipeline.derivatives import write_dataset_description
        from pipeline.interfaces.bids import DerivativesSink
        from pipeline.utils import atomic_write_text, write_once_text

        lab = f"{i + 1:02d}"
        t1w = Path(bids) / f"sub-{lab}" / "ses-01" / "anat" / f"sub-{lab}_ses-01_T1w.nii.gz"
        barrier.wait(60)
        desc = write_dataset_description(out, bids)
        created = write_once_text(f"writer {i}\n", Path(out) / "code" / "once.txt")
        for suffix, ents, meta in (
            ("T1w", {"desc": "preproc"}, {"SkullStripped": False}),
            ("mask", {"desc": "brain"}, {"Type": "Brain"}),
        ):
            sink = DerivativesSink(
                base_directory=str(out),
                bids_dir=str(bids),
                in_file=str(t1w),
                source_file=str(t1w),
                suffix=suffix,
                entities=ents,
                meta_dict=meta,
            )
            sink.run(cwd=str(Path(out).parent / f"cwd{i}"))
        shared = Path(out) / "group" / "shared.tsv"
        for _ in range(20):  # the same file from every process: last complete one wins
            atomic_write_text(f"writer\t{i}\n" * 20000, shared)
        queue.put((i, "ok", os.stat(desc).st_ino, created))
    except Exception as exc:  # pragma: no cover - reported by the test  # noqa: BLE001
        queue.put((i, f"{type(exc).__name__}: {exc}", None, None))


def test_eight_writers_at_one_barrier(many, tmp_path):
    out = tmp_path / "out"
    ctx = mp.get_context("fork")
    barrier, queue = ctx.Barrier(N_WRITERS), ctx.Queue()
    for i in range(N_WRITERS):
        (tmp_path / f"cwd{i}").mkdir()
    procs = [
        ctx.Process(target=_writer, args=(i, barrier, many["bids"], out, queue))
        for i in range(N_WRITERS)
    ]
    for p in procs:
        p.start()
    # read the shared file while it is being replaced: always one writer's complete text
    shared, seen, reads = out / "group" / "shared.tsv", set(), 0
    complete = {f"writer\t{i}\n" * 20000 for i in range(N_WRITERS)}
    deadline = time.time() + 120
    while any(p.is_alive() for p in procs) and time.time() < deadline:
        if shared.exists():
            text = shared.read_text()
            assert text in complete, f"partial read of {len(text)} characters"
            seen.add(text)
            reads += 1
    results = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(30)
    assert all(r[1] == "ok" for r in results), results
    assert reads > 0 and seen
    # dataset_description.json: one file, valid, never replaced (same inode for everyone)
    assert len({r[2] for r in results}) == 1
    desc = json.loads((out / "dataset_description.json").read_text())
    assert desc["DatasetType"] == "derivative" and desc["GeneratedBy"][0]["Name"] == "inflamap"
    assert (out / ".bidsignore").read_text().splitlines()[0] == "*_xfm.h5"
    # a write-once file: exactly one process created it, with its own complete content
    creators = [r[0] for r in results if r[3]]
    assert len(creators) == 1
    assert (out / "code" / "once.txt").read_text() == f"writer {creators[0]}\n"
    # every participant's files, no temporaries left anywhere
    for i in range(N_WRITERS):
        anat = out / f"sub-{i + 1:02d}" / "ses-01" / "anat"
        assert sorted(p.name for p in anat.iterdir()) == sorted(
            f"sub-{i + 1:02d}_ses-01_{n}"
            for n in (
                "desc-preproc_T1w.nii.gz",
                "desc-preproc_T1w.json",
                "desc-brain_mask.nii.gz",
                "desc-brain_mask.json",
            )
        )
    assert not [p for p in out.rglob("*") if is_temporary(p)]
    shutil.rmtree(out / "code")
    _assert_valid_bids(out)


def _validator_errors(root: Path) -> list[dict]:
    exe = shutil.which("bids-validator-deno")
    if exe is None:
        pytest.skip("bids-validator-deno not installed")
    proc = subprocess.run(
        [exe, str(root), "--format", "json", "--ignoreWarnings"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = json.loads(proc.stdout)
    return [i for i in report["issues"]["issues"] if i["severity"] == "error"]


def _assert_valid_bids(root: Path, known=()):
    errors = _validator_errors(root)
    unexpected = [
        e for e in errors if (e["code"], e.get("subCode"), Path(e["location"]).name) not in known
    ]
    assert not unexpected, json.dumps(unexpected[:5], indent=1)


def test_four_participants_at_once_share_work_and_output(many, tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    env = cli_env()
    t0 = time.time()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pipeline",
                many["bids"],
                out,
                "participant",
                "--participant-label",
                f"{i:02d}",
                "-w",
                work,
                "--config",
                many["config"],
                "--skip-bids-validation",
                "--nprocs",
                "1",
                "--omp-nthreads",
                "1",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i in range(1, 5)
    ]
    logs = [p.communicate(timeout=600) for p in procs]
    print(f"4 participants at once: {time.time() - t0:.0f} s")
    for p, (_, err) in zip(procs, logs, strict=True):
        assert p.returncode == 0, err[-3000:]
    assert sorted(p.name for p in work.iterdir()) == [f"sub-0{i}" for i in range(1, 5)]
    for i in range(1, 5):
        sub = work / f"sub-0{i}"
        assert sorted(p.name for p in sub.iterdir() if not p.name.startswith(".")) == [
            "inflamap_config.json",
            f"sub_0{i}_wf",
        ]
        table = pd.read_csv(
            out
            / f"sub-0{i}"
            / "ses-01"
            / "anat"
            / f"sub-0{i}_ses-01_atlas-inflamapLobes_desc-nT1w_regions.tsv",
            sep="\t",
        )
        assert set(table["participant_id"]) == {f"sub-0{i}"}
    json.loads((out / "dataset_description.json").read_text())
    assert not [p for p in out.rglob("*") if is_temporary(p)]
    assert not list(out.glob("logs/*/crash-*"))
    # Known gap of the workflows (not of the writing): the template-space T1w sidecar has no
    # SkullStripped field, which the validator requires of desc-preproc images.
    known = {
        (
            "SIDECAR_KEY_REQUIRED",
            "SkullStripped",
            f"sub-0{i}_ses-01_space-MNI152NLin2009aSym_desc-preproc_T1w.nii.gz",
        )
        for i in range(1, 5)
    }
    _assert_valid_bids(out, known)


def test_second_run_of_a_running_participant_is_refused(many, tmp_path):
    """An array task resubmitted while the first still runs must not share its work folder."""
    from pipeline.cli import _ParticipantLock

    work = tmp_path / "work"
    (work / "sub-01").mkdir(parents=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; sys.path.insert(0, sys.argv[1]);"  # noqa: ISC004
            "from pipeline.cli import _ParticipantLock as L; from pathlib import Path;"
            "l = L(Path(sys.argv[2])); assert l.acquire(); print('locked', flush=True);"
            "time.sleep(120)",
            str(Path(__file__).resolve().parents[1]),
            str(work / "sub-01"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert not _ParticipantLock(work / "sub-01").acquire()
        p = subprocess.run(
            [
                sys.executable,
                "-m",
                "pipeline",
                many["bids"],
                tmp_path / "out",
                "participant",
                "--participant-label",
                "01",
                "-w",
                work,
                "--config",
                many["config"],
                "--skip-bids-validation",
                "--nprocs",
                "1",
                "--omp-nthreads",
                "1",
            ],
            capture_output=True,
            text=True,
            env=cli_env(),
            timeout=600,
        )
    finally:
        holder.kill()
        holder.wait()
    assert p.returncode == 1
    assert "sub-01: already being processed by another inflamap process (pid" in p.stderr
    assert not (work / "sub-01" / "sub_01_wf").exists()  # nothing of the holder's touched
    lock = _ParticipantLock(work / "sub-01")  # released when its holder died
    assert lock.acquire()
    lock.release()
