"""Where the report's slices cut: spread over a mask's extent, and through a map's region of
largest effect."""

from __future__ import annotations


def _cuts(mask_img, n, axes="xyz"):
    """World coordinates of ``n`` cuts per axis spread over the extent of ``mask_img``
    (so that cuts do not fall in the empty field of view); None: nilearn's choice."""
    import numpy as np

    if mask_img is None:
        return n
    ijk = np.argwhere(np.asarray(mask_img.dataobj) > 0.5)
    if len(ijk) < 10:
        return n
    xyz = ijk @ mask_img.affine[:3, :3].T + mask_img.affine[:3, 3]
    out = {}
    for i, ax in enumerate("xyz"):
        lo, hi = np.percentile(xyz[:, i], [8, 92])
        out[ax] = np.linspace(lo, hi, n)
    if len(axes) == 1:
        return list(out[axes])
    return out


#: distance maps already computed in this process ({key: distances}), see :func:`distance_in`
_DISTANCES: dict = {}


def distance_in(mask, zooms):
    """Distance (mm) of every voxel of the boolean array ``mask`` to the nearest voxel
    outside it (0 outside), on a grid of voxel sizes ``zooms``. A report draws many maps
    on the grid of one brain mask: each distance map is computed once per process."""
    import hashlib

    import numpy as np
    from scipy import ndimage

    mask = np.asarray(mask, bool)
    zooms = tuple(round(float(z), 5) for z in zooms)
    digest = hashlib.blake2b(np.packbits(mask).tobytes(), digest_size=16).hexdigest()
    key = (digest, mask.shape, zooms)
    if key not in _DISTANCES:
        if len(_DISTANCES) >= 4:  # float32: ~34 MB each on a 1 mm grid
            _DISTANCES.pop(next(iter(_DISTANCES)))
        _DISTANCES[key] = ndimage.distance_transform_edt(mask, sampling=zooms).astype(np.float32)
    return _DISTANCES[key]


#: the peak of a map is looked for this far inside the brain mask (mm), so that the dural
#: sinuses and surface vessels beside it (large in enhancement and ΔR2* maps) are not it
PEAK_INSET_MM = 4.0


def peak_cuts(img, mask_img, n=4, inset_mm=PEAK_INSET_MM):
    """Cuts per axis (``{"x": [...], "y": [...], "z": [...]}``, world mm) through the region
    of largest effect of ``img`` and spread over the extent of ``mask_img`` (or of the
    image's finite voxels): the |value| smoothed over ~2 voxels (so that one noisy voxel is
    not the peak), its maximum at least ``inset_mm`` inside the mask (the whole mask when
    nothing is that deep), and for each axis the cut nearest to it moved onto it.
    Returns ``(cuts, peak_xyz)``; ``(n, None)`` when nothing is finite."""
    import nibabel as nb
    import numpy as np
    from scipy import ndimage

    data = np.asarray(img.dataobj, dtype=np.float32).reshape(img.shape[:3])
    ok = np.isfinite(data)
    if mask_img is not None and mask_img.shape[:3] == img.shape[:3]:
        inside = np.asarray(mask_img.dataobj).reshape(img.shape[:3]) > 0.5
        ok &= inside
        zooms = nb.affines.voxel_sizes(img.affine)
        deep = distance_in(inside, zooms) > inset_mm
        if (ok & deep).sum() >= 10:
            ok &= deep
    if ok.sum() < 10:
        return n, None
    weight = ndimage.gaussian_filter(ok.astype(np.float32), 1.0)
    smooth = ndimage.gaussian_filter(np.where(ok, np.abs(data), 0.0), 1.0)
    smooth = np.where(ok & (weight > 0.2), smooth / np.maximum(weight, 1e-6), -np.inf)
    peak_ijk = np.unravel_index(int(np.argmax(smooth)), smooth.shape)
    peak = img.affine[:3, :3] @ np.asarray(peak_ijk, float) + img.affine[:3, 3]
    extent = _cuts(
        mask_img
        if mask_img is not None and mask_img.shape[:3] == img.shape[:3]
        else nb.Nifti1Image(ok.astype(np.uint8), img.affine),
        n,
    )
    if not isinstance(extent, dict):
        return n, None
    cuts = {}
    for i, ax in enumerate("xyz"):
        axis = list(extent[ax])
        axis[int(np.argmin([abs(c - peak[i]) for c in axis]))] = float(peak[i])
        cuts[ax] = sorted(axis)
    return cuts, tuple(float(v) for v in peak)
