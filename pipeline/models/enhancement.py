"""Contrast enhancement: post/pre normalisation, subtraction and percent maps, findings.

Pure numpy/scipy. Arrays are 3-D volumes on one grid (post already registered to pre).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage

NORMALISATIONS = ("none", "reference-tissue", "global-median")


def normalisation_factor(pre, post, method: str, reference_mask=None, brain_mask=None) -> float:
    """Factor ``f`` such that ``f * post`` has the intensity scale of ``pre``.

    ``reference-tissue``: median of ``pre/post`` over ``reference_mask`` (non-enhancing white
    matter), robust to the few enhancing vessels inside it. ``global-median``: ratio of the
    medians over ``brain_mask``. ``none``: 1.
    """
    if method not in NORMALISATIONS:
        raise ValueError(f"normalisation must be one of {NORMALISATIONS}, got {method!r}")
    if method == "none":
        return 1.0
    pre = np.asarray(pre, float)
    post = np.asarray(post, float)
    mask = reference_mask if method == "reference-tissue" else brain_mask
    if mask is None:
        raise ValueError(f"normalisation {method!r} needs a mask")
    mask = np.asarray(mask, bool) & (pre > 0) & (post > 0) & np.isfinite(pre) & np.isfinite(post)
    if mask.sum() < 10:
        raise ValueError(f"normalisation {method!r}: fewer than 10 usable voxels in the mask")
    if method == "reference-tissue":
        return float(np.median(pre[mask] / post[mask]))
    return float(np.median(pre[mask]) / np.median(post[mask]))


def enhancement_maps(pre, post, floor: float):
    """Subtraction ``post − pre`` and percent enhancement ``100 (post − pre) / max(pre, floor)``.

    ``floor`` (same units as ``pre``) keeps CSF and background from exploding the percentage.
    """
    if floor <= 0:
        raise ValueError("enhancement floor must be positive")
    pre = np.asarray(pre, float)
    post = np.asarray(post, float)
    diff = post - pre
    return diff, 100.0 * diff / np.maximum(pre, floor)


def enhancement_findings(
    percent,
    labels,
    lut,
    voxel_volume_mm3: float,
    threshold: float,
    min_volume_mm3: float,
    mask=None,
) -> pd.DataFrame:
    """Clusters of enhancement a radiologist would mark: connected voxels (26-neighbourhood)
    above ``threshold`` % within ``mask`` whose volume is at least ``min_volume_mm3``.

    Each cluster is attributed to the label holding most of its voxels. Columns:
    ``cluster, roi, hemisphere, volume_mm3, n_voxels, peak_percent, mean_percent,
    peak_i, peak_j, peak_k``.
    """
    percent = np.asarray(percent, float)
    above = np.isfinite(percent) & (percent > threshold)
    if mask is not None:
        above &= np.asarray(mask, bool)
    clusters, n = ndimage.label(above, structure=np.ones((3, 3, 3)))
    names = lut.set_index("index")[["name", "hemisphere"]]
    rows = []
    for c in range(1, n + 1):
        sel = clusters == c
        nvox = int(sel.sum())
        vol = nvox * voxel_volume_mm3
        if vol < min_volume_mm3:
            continue
        vals = percent[sel]
        idx = np.argwhere(sel)[np.argmax(vals)]
        labs = np.asarray(labels)[sel]
        labs = labs[labs > 0]
        if labs.size:
            top = int(np.bincount(labs).argmax())
            roi, hemi = names.loc[top, "name"], names.loc[top, "hemisphere"]
        else:
            roi, hemi = "unlabelled", "n/a"
        rows.append(
            {
                "roi": roi,
                "hemisphere": hemi,
                "volume_mm3": vol,
                "n_voxels": nvox,
                "peak_percent": float(vals.max()),
                "mean_percent": float(vals.mean()),
                "peak_i": int(idx[0]),
                "peak_j": int(idx[1]),
                "peak_k": int(idx[2]),
            }
        )
    df = pd.DataFrame(
        rows,
        columns=[
            "roi",
            "hemisphere",
            "volume_mm3",
            "n_voxels",
            "peak_percent",
            "mean_percent",
            "peak_i",
            "peak_j",
            "peak_k",
        ],
    )
    df = df.sort_values("volume_mm3", ascending=False).reset_index(drop=True)
    df.insert(0, "cluster", np.arange(1, len(df) + 1))
    return df
