"""Compare inflamap's outputs on the demo with the demo's ground truth.

Used by the tests and available to users who want to check an installation
(``python -m pipeline.demo.evaluate DEMO_DIR OUTPUT_DIR``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def dice(a, b) -> float:
    """Dice coefficient of two boolean arrays (1.0 when both are empty)."""
    a = np.asarray(a, bool)
    b = np.asarray(b, bool)
    if a.shape != b.shape:
        raise ValueError(f"dice: shapes differ {a.shape} vs {b.shape}")
    den = a.sum() + b.sum()
    return 1.0 if den == 0 else float(2.0 * np.logical_and(a, b).sum() / den)


def label_dice(truth, estimate, voxel_volume_mm3: float, min_volume_cm3: float = 2.0) -> dict:
    """Dice per label present in ``truth`` with at least ``min_volume_cm3``."""
    truth = np.asarray(truth).astype(int)
    estimate = np.asarray(estimate).astype(int)
    out = {}
    for lab in np.unique(truth[truth > 0]):
        vol = (truth == lab).sum() * voxel_volume_mm3 / 1000.0
        if vol >= min_volume_cm3:
            out[int(lab)] = dice(truth == lab, estimate == lab)
    return out


def rigid_difference(estimated, truth, center_mm):
    """Rotation (degrees) and translation (mm, at ``center_mm``) between two affine maps.

    Both are 4x4 point mappings template → subject (RAS mm). The rotation is that of the
    polar decomposition of each linear part (scaling removed); the translation is the
    distance between the images of ``center_mm`` (the template brain centroid).
    """
    def rotation(m):
        u, _, vt = np.linalg.svd(np.asarray(m)[:3, :3])
        return u @ vt

    r = rotation(estimated).T @ rotation(truth)
    angle = float(np.degrees(np.arccos(np.clip((np.trace(r) - 1) / 2, -1, 1))))
    c = np.r_[np.asarray(center_mm, float), 1.0]
    shift = float(np.linalg.norm((np.asarray(estimated) @ c - np.asarray(truth) @ c)[:3]))
    return angle, shift


def affine_from_xfm(h5_path):
    """The affine part (RAS 4x4, template → T1w points) of an ANTs composite transform."""
    from nitransforms.manip import load

    chain = load(str(h5_path), fmt="itk")
    affines = [t for t in chain.transforms if type(t).__name__ == "Affine"]
    if len(affines) != 1:
        raise ValueError(f"{h5_path}: expected one affine in the composite transform")
    return affines[0].matrix


def evaluate(demo_dir, output_dir, template_mask=None) -> list[dict]:
    """Per session: brain-mask Dice, label Dice (ROIs >= 2 cm3) and rigid-motion error."""
    import nibabel as nb

    demo_dir, output_dir = Path(demo_dir), Path(output_dir)
    truth = json.loads((demo_dir / "groundtruth" / "groundtruth.json").read_text())
    template = truth["template"]
    if template_mask is None:
        from ..templates import get_template_file

        template_mask = get_template_file(template, 2, desc="brain", suffix="mask")
    mimg = nb.load(template_mask)
    ijk = np.argwhere(np.asarray(mimg.dataobj) > 0).mean(axis=0)
    center = mimg.affine[:3, :3] @ ijk + mimg.affine[:3, 3]
    rows = []
    for pid, p in truth["participants"].items():
        for ses, s in p["sessions"].items():
            anat = output_dir / pid / ses / "anat"
            stem = f"{pid}_{ses}"
            if not (anat / f"{stem}_desc-brain_mask.nii.gz").exists():
                continue
            gt = demo_dir / "groundtruth" / pid / ses
            tmask = nb.load(gt / f"{stem}_desc-brain_mask.nii.gz")
            emask = nb.load(anat / f"{stem}_desc-brain_mask.nii.gz")
            tlab = nb.load(gt / f"{stem}_atlas-{truth['atlas']}_dseg.nii.gz")
            elab = nb.load(anat / f"{stem}_atlas-{truth['atlas']}_dseg.nii.gz")
            vox = float(np.prod(tmask.header.get_zooms()[:3]))
            ld = label_dice(np.asarray(tlab.dataobj), np.asarray(elab.dataobj), vox)
            world = np.asarray(s["files"][f"{pid}/{ses}/anat/{stem}_T1w.nii.gz"]
                               ["world_from_template"])
            est = affine_from_xfm(anat / f"{stem}_from-T1w_to-{template}_mode-image_xfm.h5")
            angle, shift = rigid_difference(est, world, center)
            rows.append({"participant_id": pid, "session_id": ses,
                         "mask_dice": dice(np.asarray(tmask.dataobj) > 0,
                                           np.asarray(emask.dataobj) > 0),
                         "label_dice_mean": float(np.mean(list(ld.values()))),
                         "label_dice_min": float(np.min(list(ld.values()))),
                         "rotation_error_deg": angle, "translation_error_mm": shift})
    return rows


if __name__ == "__main__":  # pragma: no cover
    import pandas as pd

    print(pd.DataFrame(evaluate(sys.argv[1], sys.argv[2])).to_string())
