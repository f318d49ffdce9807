"""A user-drawn input-function mask replaces the sinus ROI (DCEFit interface and the
dce.vif_mask setting)."""

import nibabel as nb
import numpy as np
import pandas as pd
import pytest

from pipeline.interfaces.dce import DCEFit
from pipeline.models.pharmacokinetics import parker_aif
from pipeline.models.signal import spgr_signal

T = np.arange(0, 360, 6.0)
FA, TR, R1, N_BASE = 15.0, 0.005, 5.0, 4


def _series(tmp_path):
    """8^3 grid: x < 2 'vessel' (true input), x in 2..3 a decoy 'sinus' ROI with half the
    concentration, the rest tissue with Patlak Ktrans 0.02/min, vp 0.03."""
    cb = parker_aif(T - T[N_BASE])  # blood, injection at frame N_BASE
    cp = cb / (1 - 0.45)
    shape = (8, 8, 8)
    conc = np.zeros(shape + (T.size,))
    t1 = np.full(shape, 1.2)
    conc[:2] = cb
    t1[:2] = 1.6
    conc[2:4] = 0.5 * cb
    integ = np.concatenate([[0], np.cumsum((cp[1:] + cp[:-1]) / 2 * np.diff(T) / 60)])
    conc[4:] = 0.02 * integ + 0.03 * cp
    sig = spgr_signal(1000.0, 1 / t1[..., None] + R1 * conc, FA, TR)
    aff = np.diag([2.0, 2.0, 2.0, 1.0])
    paths = {}
    for key, data in (("series", sig), ("t1", t1)):
        paths[key] = tmp_path / f"{key}.nii.gz"
        nb.Nifti1Image(data.astype(np.float32), aff).to_filename(paths[key])
    rois = np.zeros(shape, np.int16)
    rois[2:4] = 1
    rois[4:] = 2
    nb.Nifti1Image(rois, aff).to_filename(tmp_path / "rois.nii.gz")
    pd.DataFrame(
        {
            "index": [1, 2],
            "name": ["superior_sagittal_sinus", "occipital"],
            "hemisphere": ["bilateral", "left"],
        }
    ).to_csv(tmp_path / "lut.tsv", sep="\t", index=False)
    mask = np.zeros(shape, np.uint8)
    mask[:2] = 1
    nb.Nifti1Image(mask, aff).to_filename(tmp_path / "vif_mask.nii.gz")
    return cb, paths


def _fit(tmp_path, **kw):
    node = DCEFit(
        in_file=str(tmp_path / "series.nii.gz"),
        t1_map=str(tmp_path / "t1.nii.gz"),
        rois=str(tmp_path / "rois.nii.gz"),
        lut=str(tmp_path / "lut.tsv"),
        times=T.tolist(),
        flip_angle=FA,
        tr=TR,
        n_baseline=N_BASE,
        relaxivity=R1,
        vif_voxels=64,
        **kw,
    )
    return node.run(cwd=str(tmp_path)).outputs


def test_user_mask_replaces_sinus(tmp_path):
    cb, _ = _series(tmp_path)
    out = _fit(tmp_path, vif_mask=str(tmp_path / "vif_mask.nii.gz"))
    vif = pd.read_csv(out.vif, sep="\t")
    np.testing.assert_allclose(vif["blood_mM"], cb, rtol=1e-3, atol=1e-4)
    assert out.provenance["VIFRegion"].endswith("vif_mask.nii.gz")
    kt = nb.load(out.ktrans).get_fdata()[4:]
    np.testing.assert_allclose(kt, 0.02, rtol=0.02)
    # the decoy sinus (half the concentration) doubles Ktrans: the mask made the difference
    out2 = _fit(tmp_path)
    assert out2.provenance["VIFRegion"] == "superior_sagittal_sinus"
    np.testing.assert_allclose(nb.load(out2.ktrans).get_fdata()[4:], 0.04, rtol=0.03)


def test_user_mask_wrong_grid(tmp_path):
    _series(tmp_path)
    nb.Nifti1Image(np.ones((4, 4, 4), np.uint8), np.eye(4)).to_filename(tmp_path / "m.nii.gz")
    with pytest.raises(Exception, match="draw it on the DCE grid"):
        _fit(tmp_path, vif_mask=str(tmp_path / "m.nii.gz"))


def test_vif_mask_setting_resolution(tmp_path):
    """``dce.vif_mask`` resolved per participant/session by the plan, its grid and content
    checked by the preflight."""
    from pipeline.errors import DataError, InputMissingError
    from pipeline.nifti_check import check_nifti
    from pipeline.plan import resolve_vif_mask
    from pipeline.preflight import check_vif_mask

    _, paths = _series(tmp_path)
    series = check_nifti(paths["series"], "DCE series", (4,))
    masks = tmp_path / "derivatives" / "masks"
    masks.mkdir(parents=True)
    (tmp_path / "vif_mask.nii.gz").rename(masks / "sub-01_ses-02_vif.nii.gz")
    pattern = "derivatives/masks/sub-{subject}_ses-{session}_vif.nii.gz"
    got = resolve_vif_mask(pattern, tmp_path, "01", "02")
    assert got == str(masks / "sub-01_ses-02_vif.nii.gz")
    check_vif_mask(got, series)
    assert resolve_vif_mask(None, tmp_path, "01", "02") is None
    with pytest.raises(InputMissingError, match=r"sub-02_ses-02_vif.nii.gz: .*dce.vif_mask"):
        resolve_vif_mask(pattern, tmp_path, "02", "02")
    nb.Nifti1Image(np.zeros((8, 8, 8), np.uint8), np.diag([2.0, 2, 2, 1])).to_filename(
        masks / "sub-03_ses-02_vif.nii.gz"
    )
    with pytest.raises(DataError, match="every voxel is 0"):
        check_vif_mask(resolve_vif_mask(pattern, tmp_path, "03", "02"), series)
    wrong = masks / "sub-04_ses-02_vif.nii.gz"
    nb.Nifti1Image(
        np.arange(5 * 8 * 8, dtype=np.uint8).reshape(5, 8, 8) % 2, np.diag([2.0, 2, 2, 1])
    ).to_filename(wrong)
    with pytest.raises(DataError, match="draw it on the DCE grid"):
        check_vif_mask(str(wrong), series)


def test_input_function_volume_sets_the_voxels_at_any_resolution(tmp_path):
    """``dce.vif_volume_ml`` (default) picks as many sinus voxels as make up that volume at the
    series' voxel size (at least 4); ``vif_voxels`` overrides it; the fit records both."""
    from pipeline.config import default_config
    from pipeline.interfaces.dce import vif_voxel_count

    dce = default_config().dce
    assert dce.vif_voxels is None and dce.vif_volume_ml == 0.2
    assert vif_voxel_count(None, 0.2, 0.027) == 7  # 3 mm
    assert vif_voxel_count(None, 0.2, 0.008) == 25  # 2 mm
    assert vif_voxel_count(None, 0.2, 0.001) == 200  # 1 mm
    assert vif_voxel_count(None, 0.01, 0.027) == 4
    assert vif_voxel_count(12, 0.2, 0.027) == 12
    _series(tmp_path)  # 2 mm voxels: 0.008 ml; 128 decoy-sinus voxels
    node = DCEFit(
        in_file=str(tmp_path / "series.nii.gz"),
        t1_map=str(tmp_path / "t1.nii.gz"),
        rois=str(tmp_path / "rois.nii.gz"),
        lut=str(tmp_path / "lut.tsv"),
        times=T.tolist(),
        flip_angle=FA,
        tr=TR,
        n_baseline=N_BASE,
        relaxivity=R1,
        vif_volume_ml=0.4,
    )
    prov = node.run(cwd=str(tmp_path)).outputs.provenance
    assert prov["VIFVoxels"] == 50 and prov["VIFVolume_ml"] == pytest.approx(0.4)
