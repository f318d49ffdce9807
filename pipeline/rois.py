"""Extra-cerebral ROIs in native space: meningeal band, calvarial band, dural sinuses.

The meningeal band is the shell between ``meningeal_mm[0]`` and ``meningeal_mm[1]`` outside
the brain mask (subarachnoid space and dura); the calvarial band (skull and diploic marrow)
lies between ``calvarial_mm[0]`` and ``calvarial_mm[1]``. Both are split by lobe and
hemisphere after the nearest labelled brain voxel. The dural venous sinuses (superior
sagittal, transverse) are their own ROIs and are removed from both bands: they enhance in
everyone. Their prior is geometric, in template millimetres (:func:`sinus_prior`), and
reaches native space through the inverse registration.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage

SINUSES = (
    ("superior_sagittal_sinus", "bilateral"),
    ("transverse_sinus", "left"),
    ("transverse_sinus", "right"),
)


def sinus_prior(brain_mask, affine, max_distance_mm: float = 12.0):
    """Template-space labels of the dural sinuses (1 SSS, 2 left and 3 right transverse).

    Superior sagittal sinus: within 6 mm of the midline, above z = 5 mm and in front of
    y = -115 mm, and the confluence of sinuses (|x| < 12, behind y = -90, z from -20 to 5 mm,
    labelled with the sagittal sinus); transverse sinuses: lateral to |x| = 8 mm, behind
    y = -75 mm and between z = -32 and -8 mm; all within ``max_distance_mm`` outside the
    brain.
    """
    brain = np.asarray(brain_mask) > 0
    zooms = np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(0))
    dist = ndimage.distance_transform_edt(~brain, sampling=zooms)
    ijk = np.indices(brain.shape).reshape(3, -1)
    x, y, z = np.asarray(affine)[:3, :3] @ ijk + np.asarray(affine)[:3, 3:4]
    x, y, z = (c.reshape(brain.shape) for c in (x, y, z))
    shell = ~brain & (dist <= max_distance_mm)
    out = np.zeros(brain.shape, np.uint8)
    out[shell & (np.abs(x) < 6) & (z > 5) & (y > -115)] = 1
    out[shell & (np.abs(x) < 12) & (y < -90) & (z > -20) & (z <= 5)] = 1  # confluence
    trans = shell & (np.abs(x) > 8) & (y < -75) & (z > -32) & (z < -8)
    out[trans & (x < 0)] = 2
    out[trans & (x >= 0)] = 3
    return out


def extracerebral_rois(
    brain_mask,
    brain_labels,
    brain_lut: pd.DataFrame,
    zooms,
    sinus_labels=None,
    meningeal_mm=(0.0, 4.0),
    calvarial_mm=(4.0, 10.0),
    sinus_margin_mm: float = 3.0,
):
    """Native-space meningeal and calvarial bands and sinuses, numbered after the atlas.

    Returns ``(labels, lut)``: the brain atlas labels unchanged, then per atlas region a
    ``meningeal_<name>`` and a ``calvarial_<name>`` ROI (same hemisphere) taking the band
    voxels whose nearest labelled brain voxel is in that region, then the sinuses
    (``superior_sagittal_sinus``, ``transverse_sinus`` left/right) from ``sinus_labels``
    (1, 2, 3 as in :func:`sinus_prior`), which are removed from both bands together with a
    margin of ``sinus_margin_mm`` around them (partial volume of the enhancing blood); the
    margin also takes the brain-edge voxels next to a sinus out of the brain regions.
    """
    brain = np.asarray(brain_mask) > 0
    labels = np.asarray(brain_labels).astype(np.int32)
    if brain.shape != labels.shape:
        raise ValueError("extracerebral_rois: brain mask and labels must share a grid")
    if not meningeal_mm[0] < meningeal_mm[1] <= calvarial_mm[0] < calvarial_mm[1]:
        raise ValueError(
            "extracerebral_rois: need meningeal inner < outer <= calvarial inner < outer (mm)"
        )
    if not brain.any() or not (labels > 0).any():
        raise ValueError("extracerebral_rois: empty brain mask or atlas")
    lut = brain_lut[["index", "name", "hemisphere"]].copy()
    top = int(max(lut["index"].max(), labels.max()))
    rows = list(lut.itertuples(index=False))
    lookup = {}
    for kind in ("meningeal", "calvarial"):
        for r in lut.itertuples(index=False):
            top += 1
            lookup[(kind, int(r.index))] = top
            rows.append((top, f"{kind}_{r.name}", r.hemisphere))
    sinus_index = {}
    for k, (name, hemi) in enumerate(SINUSES, start=1):
        top += 1
        sinus_index[k] = top
        rows.append((top, name, hemi))
    zooms = np.asarray(zooms, float)
    dist = ndimage.distance_transform_edt(~brain, sampling=zooms)
    _, nearest = ndimage.distance_transform_edt(labels == 0, sampling=zooms, return_indices=True)
    nearest_label = labels[tuple(nearest)]
    out = np.where(brain, labels, 0).astype(np.int32)
    for kind, (lo, hi) in (("meningeal", meningeal_mm), ("calvarial", calvarial_mm)):
        band = ~brain & (dist > lo) & (dist <= hi)
        table = np.zeros(labels.max() + 1, np.int32)
        for (k, src), dst in lookup.items():
            if k == kind and src <= labels.max():
                table[src] = dst
        out[band] = table[nearest_label[band]]
    if sinus_labels is not None:
        sin = np.asarray(sinus_labels).astype(int)
        if sin.shape != brain.shape:
            raise ValueError("extracerebral_rois: sinus labels must share the brain grid")
        for k, dst in sinus_index.items():
            sel = (sin == k) & ~brain
            if sinus_margin_mm > 0 and sel.any():
                # the margin reaches into the brain edge too: those voxels hold sinus blood
                near = ndimage.distance_transform_edt(~sel, sampling=zooms) <= sinus_margin_mm
                sel = near & (dist <= calvarial_mm[1])
            out[sel] = dst
    return out, pd.DataFrame(rows, columns=["index", "name", "hemisphere"])
