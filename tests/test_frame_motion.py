"""Frame motion correction (DCE and PET): planted rigid motion of frames of the demo's DCE
series is recovered by the node the workflows use (its sampling and schedule), across the
contrast change of the bolus."""

from __future__ import annotations

import numpy as np
import pytest


def _points(img, step=50):
    """World coordinates of every ``step``-th head voxel (above 20 % of the maximum)."""
    data = np.asarray(img.dataobj, dtype=float)
    ijk = np.argwhere(data > 0.2 * data.max())[::step]
    return ijk @ img.affine[:3, :3].T + img.affine[:3, 3]


@pytest.mark.parametrize("max_move", [2.0, 5.0])
def test_planted_frame_motion_recovered(max_move, demo_dir, tmp_path):
    import ants
    import nibabel as nb

    from pipeline.config import default_config
    from pipeline.demo.common import random_rigid
    from workflows.utils import frame_motion_correction

    (dce,) = sorted((demo_dir / "bids").glob("sub-*/ses-*/anat/*_dce.nii.gz"))[:1]
    img = nb.load(dce)
    data = np.asarray(img.dataobj, dtype=np.float32)
    ref = tmp_path / "reference.nii.gz"
    nb.Nifti1Image(data[..., :3].mean(axis=-1), img.affine).to_filename(ref)
    fixed = ants.image_read(str(ref))
    rng = np.random.default_rng(int(max_move))
    frames, truth = [], []
    for k in (4, 12, data.shape[-1] - 1):  # arrival, peak, washout: unlike the reference
        src = tmp_path / f"frame{k}.nii.gz"
        nb.Nifti1Image(data[..., k], img.affine).to_filename(src)
        m = random_rigid(rng, max_move, max_move)
        tx = ants.create_ants_transform(
            transform_type="AffineTransform", dimension=3, matrix=m[:3, :3], offset=m[:3, 3]
        )
        ants.write_transform(tx, str(tmp_path / f"true{k}.mat"))
        moved = ants.apply_transforms(
            fixed, ants.image_read(str(src)), [str(tmp_path / f"true{k}.mat")]
        )
        ants.image_write(moved, str(tmp_path / f"moved{k}.nii.gz"))
        frames.append(str(tmp_path / f"moved{k}.nii.gz"))
        truth.append(tx.invert())

    node = frame_motion_correction(default_config().dce.motion, 1)
    node.base_dir = str(tmp_path / "work")
    node.inputs.fixed_image = str(ref)
    node.inputs.moving_image = frames
    result = node.run()
    points = _points(nb.load(ref))
    errors = []
    for xfms, true in zip(result.outputs.forward_transforms, truth, strict=True):
        est = ants.read_transform(xfms[0])
        errors.append(
            np.mean(
                [
                    np.linalg.norm(np.subtract(est.apply_to_point(p), true.apply_to_point(p)))
                    for p in points
                ]
            )
        )
    # a tenth of the demo's 3 mm voxel, over the head, for motion up to max_move mm/deg
    assert max(errors) < 0.3, errors
