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


def _monomials(degree: int):
    """Exponents ``(a, b, c)`` of the 3-D monomials of total degree <= ``degree``."""
    return [
        (a, b, c)
        for a in range(degree + 1)
        for b in range(degree + 1 - a)
        for c in range(degree + 1 - a - b)
    ]


def residual_bias_field(pre, post, mask, degree: int = 2, n_iter: int = 4):
    """The smooth multiplicative field by which ``post`` differs from ``pre`` in ``mask``.

    The post-contrast image was divided by the bias field estimated on the pre-contrast one;
    a different coil loading, position or receive field after the injection leaves a
    residual ``post/pre`` pattern (a few % from left to right) that reads as laterality. It
    is estimated where no enhancement is expected (``mask``: the reference white matter) as
    a polynomial of total degree ``degree`` in the voxel coordinates fitted to
    ``log(post/pre)`` by least squares, iteratively leaving out voxels whose residual
    exceeds 3 robust SDs (enhancing vessels). Returns ``(field, info)``: ``field`` on the
    whole grid with median 1 over the mask (the global scale is left to the normalisation),
    ``info`` with the number of voxels used and the field's 1st-99th percentile range in
    the mask. ``degree`` 0 gives a field of ones.
    """
    pre = np.asarray(pre, float)
    post = np.asarray(post, float)
    ok = np.asarray(mask, bool) & (pre > 0) & (post > 0) & np.isfinite(pre) & np.isfinite(post)
    powers = _monomials(int(degree))
    if degree <= 0 or ok.sum() < 50 * len(powers):
        return np.ones(pre.shape), {"n_voxels": int(ok.sum()), "range": [1.0, 1.0]}
    ijk = np.argwhere(ok)
    centre = ijk.mean(axis=0)
    half = np.maximum(np.ptp(ijk, axis=0) / 2.0, 1.0)
    axes = [(np.arange(n) - c) / h for n, c, h in zip(pre.shape, centre, half)]
    u = (ijk - centre) / half
    design = np.stack([u[:, 0] ** a * u[:, 1] ** b * u[:, 2] ** c for a, b, c in powers], 1)
    ratio = np.log(post[ok] / pre[ok])
    keep = np.ones(ratio.shape, bool)
    for _ in range(n_iter):
        coef, *_ = np.linalg.lstsq(design[keep], ratio[keep], rcond=None)
        resid = ratio - design @ coef
        centre_r = np.median(resid[keep])
        spread = 1.4826 * np.median(np.abs(resid[keep] - centre_r))
        new = np.abs(resid - centre_r) <= 3.0 * max(spread, 1e-6)
        if np.array_equal(new, keep):
            break
        keep = new
    log_field = np.zeros(pre.shape)
    for w, (a, b, c) in zip(coef, powers):  # separable: x^a y^b z^c as an outer product
        log_field += w * (
            axes[0][:, None, None] ** a * axes[1][None, :, None] ** b * axes[2][None, None, :] ** c
        )
    log_field -= np.median(log_field[ok])
    field = np.exp(log_field)
    lo, hi = np.percentile(field[ok], [1, 99])
    return field, {"n_voxels": int(keep.sum()), "range": [float(lo), float(hi)]}


def difference_noise_sd(subtraction, mask) -> float:
    """Robust SD (1.4826 x MAD) of the subtraction image in ``mask`` (reference white
    matter, where nothing but noise, residual bias and misregistration should remain)."""
    diff = np.asarray(subtraction, float)[np.asarray(mask, bool)]
    diff = diff[np.isfinite(diff)]
    if diff.size < 10:
        return float("nan")
    return float(1.4826 * np.median(np.abs(diff - np.median(diff))))


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
    subtraction=None,
    noise_sd: float | None = None,
    n_sd: float = 0.0,
    zooms=None,
    vessel_radius_mm: float = 0.0,
    compartments=(),
    n_spread: float = 0.0,
) -> pd.DataFrame:
    """Clusters of enhancement a radiologist would mark: connected voxels (26-neighbourhood)
    above ``threshold`` % within ``mask`` whose volume is at least ``min_volume_mm3``; with
    ``n_sd`` > 0 a voxel must also exceed ``n_sd`` times ``noise_sd`` in the ``subtraction``
    image (the noise of the difference, measured where nothing enhances), so that the
    threshold follows the data: low-signal tissue (CSF, dura on a T1w) needs a larger
    percent change than white matter to count. With ``vessel_radius_mm`` > 0, clusters
    shaped like a vessel (the SD of their voxel positions along the second principal axis at
    most ``vessel_radius_mm`` and along the first at least three times that: a large cortical
    vein or a sinus outside its prior) are left out; sheets (dura) and blobs (lesions) stay.
    Their number is ``df.attrs["vessel_like_excluded"]``. With ``n_spread`` > 0, a voxel of
    one of ``compartments`` (boolean masks: the brain, the meningeal band) must also exceed
    the median percent enhancement of its compartment by ``n_spread`` robust SDs of it: the
    participant's own normal enhancement (the dura enhances in everyone, unevenly) is the
    reference, not zero. The levels are in ``df.attrs["compartment_levels"]``.

    Each cluster is attributed to the label holding most of its voxels. Columns:
    ``cluster, roi, hemisphere, volume_mm3, n_voxels, peak_percent, mean_percent,
    peak_i, peak_j, peak_k``.
    """
    percent = np.asarray(percent, float)
    above = np.isfinite(percent) & (percent > threshold)
    if n_sd > 0:
        if subtraction is None or noise_sd is None or not np.isfinite(noise_sd):
            raise ValueError("enhancement_findings: n_sd > 0 needs subtraction and noise_sd")
        diff = np.asarray(subtraction, float)
        above &= np.isfinite(diff) & (diff > n_sd * noise_sd)
    levels = []
    if n_spread > 0:
        for comp in compartments:
            comp = np.asarray(comp, bool) & np.isfinite(percent)
            if comp.sum() < 10:
                continue
            med = float(np.median(percent[comp]))
            spread = float(1.4826 * np.median(np.abs(percent[comp] - med)))
            above[comp] &= percent[comp] > med + n_spread * spread
            levels.append([med, spread])
    if mask is not None:
        above &= np.asarray(mask, bool)
    clusters, n = ndimage.label(above, structure=np.ones((3, 3, 3)))
    names = lut.set_index("index")[["name", "hemisphere"]]
    if zooms is None:
        zooms = (voxel_volume_mm3 ** (1 / 3),) * 3
    rows, vessels = [], 0
    for c in range(1, n + 1):
        sel = clusters == c
        nvox = int(sel.sum())
        vol = nvox * voxel_volume_mm3
        if vol < min_volume_mm3:
            continue
        if vessel_radius_mm > 0 and _vessel_like(np.argwhere(sel) * zooms, vessel_radius_mm):
            vessels += 1
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
    df.attrs["vessel_like_excluded"] = vessels
    df.attrs["compartment_levels"] = levels
    return df


def _vessel_like(points_mm, radius_mm: float) -> bool:
    """Elongated and thin: the principal SDs of the points (mm) are s1 >= 3 s2, s2 <= r."""
    if len(points_mm) < 3:
        return False
    sd = np.sqrt(np.clip(np.linalg.eigvalsh(np.cov(np.asarray(points_mm, float).T)), 0, None))
    s1, s2 = sd[-1], sd[-2]
    return bool(s2 <= radius_mm and s1 >= 3.0 * s2)
