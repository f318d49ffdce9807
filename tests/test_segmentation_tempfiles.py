"""Atropos through antspyx leaves its probability images in the system temporary folder;
inflamap's segmentation step must not (600 MB accumulated in /tmp over one test suite)."""

from __future__ import annotations

import tempfile

import nibabel as nb
import numpy as np


def test_segmentation_leaves_no_temporary_files(tmp_path, monkeypatch):
    from pipeline.interfaces.anat import TissueSegmentation

    system_tmp = tmp_path / "system-tmp"
    system_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))
    # a sphere of three intensity shells (CSF < GM < WM) with noise
    g = np.indices((40, 40, 40)) - 19.5
    r = np.sqrt((g**2).sum(0))
    img = np.select([r < 8, r < 12, r < 16], [300.0, 200.0, 80.0], 0.0)
    img += np.random.default_rng(0).normal(scale=5, size=img.shape)
    aff = np.diag([2.0, 2.0, 2.0, 1.0])
    nb.Nifti1Image(img.astype(np.float32), aff).to_filename(tmp_path / "t1w.nii.gz")
    nb.Nifti1Image((r < 16).astype(np.uint8), aff).to_filename(tmp_path / "mask.nii.gz")
    node = tmp_path / "node"
    node.mkdir()
    monkeypatch.chdir(node)
    res = TissueSegmentation(
        in_file=str(tmp_path / "t1w.nii.gz"), mask=str(tmp_path / "mask.nii.gz")
    ).run()
    labels = np.asarray(nb.load(res.outputs.out_dseg).dataobj)
    assert set(np.unique(labels[r < 16])) == {1, 2, 3}
    assert list(system_tmp.iterdir()) == []  # nothing left in the system temporary folder
    assert not [p for p in node.rglob("*prob*") if "probseg" not in p.name]
    assert tempfile.tempdir == str(system_tmp)  # restored
