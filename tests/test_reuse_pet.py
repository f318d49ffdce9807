"""``--derivatives``: PETPrep's head-motion correction (and transform to the T1w) reused.

PETPrep's names, as in the BIDS example ``petprep/derivatives/petprep``: beside each series
``<prefix>_desc-hmc_petref.nii.gz``, ``<prefix>_from-orig_to-petref_mode-image_xfm.txt`` (one
ITK affine per frame) and ``<prefix>_from-petref_to-T1w_mode-image_xfm.txt``; its anatomy's
sidecars name the raw T1w (``RawSources``/``Sources``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd
import pytest
from conftest import run_cli
from test_reuse_anatomy import smriprep_folder

from pipeline.bids.reuse import find_pet, itk_transform_blocks
from pipeline.errors import DataError

PETPREP = {"Name": "PETPrep", "Version": "0.0.3"}
PREFIX = "sub-01_ses-01_trc-PBR28"
IDENTITY = "Parameters: 1 0 0 0 1 0 0 0 1 0 0 0\nFixedParameters: 0 0 0\n"


def _itk(params: list) -> str:
    """An ITK text transform file with one affine per entry of ``params`` (12 numbers)."""
    text = "#Insight Transform File V1.0\n"
    for i, p in enumerate(params):
        text += (
            f"#Transform {i}\nTransform: AffineTransform_float_3_3\n"
            f"Parameters: {' '.join(f'{x:g}' for x in p)}\nFixedParameters: 0 0 0\n\n"
        )
    return text


def petprep_folder(root: Path, bids: Path, t1w_source: str, pet2t1w: str | None):
    """PETPrep's motion correction of ``sub-01 ses-01``'s PET series: its reference (the
    mean of the frames), identity transforms for every frame (the demo's PET has no motion)
    and, when given, ``pet2t1w`` (an ANTs transform) as its reference → T1w transform; its
    anatomy's brain-mask sidecar names ``t1w_source`` as in PETPrep's output."""
    import ants

    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text(
        json.dumps(
            {
                "Name": "PETPrep",
                "BIDSVersion": "1.10.0",
                "DatasetType": "derivative",
                "GeneratedBy": [PETPREP],
            }
        )  # fmt:skip
    )
    raw = nb.load(bids / "sub-01/ses-01/pet" / f"{PREFIX}_pet.nii.gz")
    pet = root / "sub-01/ses-01/pet"
    pet.mkdir(parents=True, exist_ok=True)
    mean = np.asarray(raw.dataobj, np.float32).mean(axis=3)
    nb.Nifti1Image(mean, raw.affine).to_filename(pet / f"{PREFIX}_desc-hmc_petref.nii.gz")
    eye = [1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0]
    (pet / f"{PREFIX}_from-orig_to-petref_mode-image_xfm.txt").write_text(
        _itk([eye] * raw.shape[3])
    )
    if pet2t1w is not None:
        tx = ants.read_transform(pet2t1w)
        ants.write_transform(tx, str(pet / f"{PREFIX}_from-petref_to-T1w_mode-image_xfm.txt"))
    anat = root / "sub-01/ses-01/anat"
    anat.mkdir(parents=True, exist_ok=True)
    (anat / "sub-01_ses-01_desc-brain_mask.json").write_text(
        json.dumps({"RawSources": [t1w_source], "Type": "Brain"})
    )
    return root


def _suvr_tables(folder: Path) -> dict:
    return {
        p.name: pd.read_csv(p, sep="\t")
        for p in sorted((folder / "pet").glob("*_desc-SUVR_regions.tsv"))
    }


@pytest.mark.e2e
def test_reused_motion_correction_gives_the_same_suvr_tables(demo_run, tmp_path):
    """sub-01 ses-01 with PETPrep's motion correction and transform to the T1w (and the
    anatomy, as PETPrep writes it, in sMRIPrep's names): no frame registration and no PET →
    T1w registration run, and the regional SUVR equals the run that computed them within
    1 % per row."""
    out0 = demo_run["out"]
    bids = demo_run["bids"]
    root = tmp_path / "petprep"
    smriprep_folder(root, out0 / "sub-01/ses-01/anat", "sub-01_ses-01", "sub-01/ses-01/anat")
    pet2t1w = next((out0 / "sub-01/ses-01/pet").glob("*_from-pet_to-T1w_mode-image_xfm.mat"))
    raw_t1w = bids / "sub-01/ses-01/anat/sub-01_ses-01_T1w.nii.gz"
    petprep_folder(root, bids, str(raw_t1w), str(pet2t1w))
    out, work = tmp_path / "out", tmp_path / "work"
    proc = run_cli(
        bids, out, "participant", "--participant-label", "01", "--session-label", "01",
        "--config", demo_run["demo"] / "inflamap-demo.yml", "-w", work, "--nprocs", "2",
        "--omp-nthreads", "1", "--skip-bids-validation", "--derivatives", root,
    )  # fmt:skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (
        f"{PREFIX}_pet.nii.gz: motion correction and transform to the T1w reused from "
        "PETPrep 0.0.3" in proc.stderr
    )
    wf = next((work / "sub-01" / "sub_01_wf").glob("pet_ses_01_*_wf"))
    ran = {p.name for p in wf.iterdir() if p.is_dir()}
    assert "reused_hmc" in ran and "frames_on_reference" in ran, ran
    assert not ran & {"motion_correction", "pet_to_t1w"}, ran
    before = _suvr_tables(out0 / "sub-01/ses-01")
    after = _suvr_tables(out / "sub-01/ses-01")
    assert set(after) == set(before) and len(before) == 2, sorted(before)
    worst = 0.0
    for name, a in before.items():
        b = after[name]
        a, b = a[a["hemisphere"] != "AI"], b[b["hemisphere"] != "AI"]
        m = a.merge(b, on=["roi", "hemisphere"], suffixes=("_a", "_b"))
        assert len(m) == len(a) == len(b), name
        m = m[m["mean_a"].notna()]
        rel = (m["mean_b"] - m["mean_a"]).abs() / m["mean_a"].abs()
        assert (rel <= 0.01).all(), (name, m.loc[rel > 0.01, ["roi", "mean_a", "mean_b"]])
        worst = max(worst, float(rel.max()))
    print(f"largest relative SUVR difference: {100 * worst:.3f} %")
    # the reused transform is written as it came (ITK text), and the output stays valid
    assert (out / "sub-01/ses-01/pet" / f"{PREFIX}_from-pet_to-T1w_mode-image_xfm.txt").is_file()
    import subprocess

    from pipeline.bids import validator_executable

    p = subprocess.run(
        [validator_executable(), str(out), "--format", "json"],
        capture_output=True, text=True, timeout=600,
    )  # fmt:skip
    issues = json.loads(p.stdout)["issues"]["issues"]
    errors = [f"{i['code']} {i.get('location', '')}" for i in issues if i["severity"] == "error"]
    assert not errors, errors[:10]
    md = (out / "logs" / "sub-01" / "boilerplate.md").read_text()
    assert "The head-motion correction of PETPrep 0.0.3 was reused" in md
    assert f"`{PREFIX}_from-petref_to-T1w_mode-image_xfm.txt`) was reused" in md


def _series(folder: Path, n_frames=4, shift=0.0) -> Path:
    aff = np.diag([3.0, 3.0, 3.0, 1.0])
    aff[:3, 3] = -30 + shift
    path = folder / "sub-01/ses-01/pet" / f"{PREFIX}_pet.nii.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    nb.Nifti1Image(np.ones((20, 20, 20, n_frames), np.float32), aff).to_filename(path)
    return path


def _petprep_files(root: Path, n_transforms=4, shift=0.0, t1w_sources=None, to_t1w=True):
    (root / "dataset_description.json").parent.mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text(json.dumps({"GeneratedBy": [PETPREP]}))
    pet = root / "sub-01/ses-01/pet"
    pet.mkdir(parents=True, exist_ok=True)
    ref = _series(tmp := root / "_ref", 1, shift)
    shutil.copy(ref, pet / f"{PREFIX}_desc-hmc_petref.nii.gz")
    shutil.rmtree(tmp)
    eye = [1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0]
    (pet / f"{PREFIX}_from-orig_to-petref_mode-image_xfm.txt").write_text(
        _itk([eye] * n_transforms)
    )
    if to_t1w:
        (pet / f"{PREFIX}_from-petref_to-T1w_mode-image_xfm.txt").write_text(_itk([eye]))
    if t1w_sources is not None:
        anat = root / "sub-01/anat"
        anat.mkdir(parents=True, exist_ok=True)
        (anat / "sub-01_desc-preproc_T1w.json").write_text(json.dumps({"Sources": t1w_sources}))


def test_which_pet_motion_correction_is_reused_and_which_refused(tmp_path):
    bids = tmp_path / "bids"
    pet = _series(bids)
    t1w = bids / "sub-01/ses-01/anat/sub-01_ses-01_T1w.nii.gz"

    def find(root):
        return find_pet([root], "01", "01", str(pet), bids, str(t1w), 4)

    # the T1w PETPrep registered to is this session's: both reused
    ok = tmp_path / "ok"
    _petprep_files(ok, t1w_sources=["bids:raw:sub-01/ses-01/anat/sub-01_ses-01_T1w.nii.gz"])
    found, note = find(ok)
    assert note is None and found.pet2t1w_xfm.endswith("from-petref_to-T1w_mode-image_xfm.txt")
    assert found.generated_by == "PETPrep 0.0.3" and found.hmc_xfm.endswith(
        "petref_mode-image_xfm.txt"
    )
    # another T1w (another session's, or several averaged): motion correction only
    for sources in (["bids:raw:sub-01/ses-02/anat/sub-01_ses-02_T1w.nii.gz"],
                    ["/data/sub-01/ses-01/anat/sub-01_ses-01_T1w.nii.gz",
                     "/data/sub-01/ses-02/anat/sub-01_ses-02_T1w.nii.gz"], []):  # fmt:skip
        other = tmp_path / f"other{len(sources)}"
        _petprep_files(other, t1w_sources=sources)
        found, note = find(other)
        assert found is not None and found.pet2t1w_xfm is None
        assert "from-petref_to-T1w_mode-image_xfm.txt: not reused" in note, note
        assert "PET registered to the T1w here" in note
    # an absolute RawSources path of the same file counts (PETPrep's anatomy sidecars)
    raw = tmp_path / "raw"
    _petprep_files(raw, t1w_sources=["/data/sub-01/ses-01/anat/sub-01_ses-01_T1w.nii.gz"])
    assert find(raw)[0].pet2t1w_xfm is not None
    # one transform per frame, or it is not this series': refused
    wrong = tmp_path / "wrong"
    _petprep_files(wrong, n_transforms=3)
    with pytest.raises(DataError, match="3 transforms for the 4 frames"):
        find(wrong)
    # a reference elsewhere (another series)
    far = tmp_path / "far"
    _petprep_files(far, shift=50.0)
    with pytest.raises(DataError, match="overlaps that of"):
        find(far)
    # nothing there: nothing reused, nothing said (the anatomy's note covers the folder)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert find(empty) == (None, None)


def test_itk_transform_file_is_split_into_frames_that_ants_reads(tmp_path):
    import ants

    params = [[1, 0, 0, 0, 1, 0, 0, 0, 1, 0.5 * i, -1.0, 2.0 + i] for i in range(3)]
    params[1][:9] = [0.999, -0.0447, 0, 0.0447, 0.999, 0, 0, 0, 1]
    src = tmp_path / "hmc.txt"
    src.write_text(_itk(params))
    blocks = itk_transform_blocks(src)
    assert len(blocks) == 3
    for i, block in enumerate(blocks):
        one = tmp_path / f"f{i}.txt"
        one.write_text(block)
        tx = ants.read_transform(str(one))
        assert np.allclose(tx.parameters, params[i], atol=1e-6)
    (tmp_path / "bad.txt").write_text("not a transform\n")
    with pytest.raises(DataError, match="not an ITK text transform"):
        itk_transform_blocks(tmp_path / "bad.txt")
