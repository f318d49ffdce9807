"""The built-in coarse lobar atlas, defined in MNI coordinates on any MNI152 template.

``inflamapLobes`` splits the template's brain tissue (grey + white matter) into frontal,
parietal, temporal and occipital lobes, thalamus and cerebellum per hemisphere, plus the
brainstem, with planes and an ellipsoid in MNI millimetres. It is coarse by design: it needs
no download (so the demo, the tests and offline clusters have an atlas), it exists on every
MNI152 template, and its regions are large enough to be recovered reliably at 3 mm. For
anatomical studies configure a TemplateFlow atlas instead (``anat.atlas`` in the config).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

LOBES = ("frontal", "parietal", "temporal", "occipital", "thalamus", "cerebellum")


def lobar_lut() -> pd.DataFrame:
    """Label table of ``inflamapLobes``: columns ``index, name, hemisphere``."""
    rows = []
    for h, hemi in enumerate(("left", "right")):
        for i, lobe in enumerate(LOBES):
            rows.append({"index": 1 + i + h * len(LOBES), "name": lobe, "hemisphere": hemi})
    rows.append({"index": 2 * len(LOBES) + 1, "name": "brainstem", "hemisphere": "bilateral"})
    return pd.DataFrame(rows)


def central_sulcus_y(z):
    """Approximate MNI y (mm) of the central sulcus at height z (sloping backwards upwards)."""
    return -10.0 - 0.4 * (np.asarray(z, dtype=float) - 20.0)


def lobar_labels(tissue, affine, threshold: float = 0.5):
    """Label the voxels of ``tissue`` (GM+WM fraction) >= threshold.

    Parameters
    ----------
    tissue : array (X, Y, Z)
        grey plus white matter fraction in [0, 1] on an MNI152 grid.
    affine : (4, 4) array
        voxel to MNI (RAS mm) affine of that grid.

    Returns
    -------
    uint8 label image following :func:`lobar_lut`.
    """
    tissue = np.asarray(tissue, dtype=float)
    if tissue.ndim != 3:
        raise ValueError("lobar_labels: tissue must be a 3-D image")
    ijk = np.indices(tissue.shape).reshape(3, -1)
    x, y, z = (np.asarray(affine)[:3, :3] @ ijk + np.asarray(affine)[:3, 3:4])
    inside = tissue.reshape(-1) >= threshold
    lut = lobar_lut().set_index(["name", "hemisphere"])["index"]
    out = np.zeros(x.shape, dtype=np.uint8)

    cerebellum = (y < -42) & (z < -18 + 0.25 * (y + 42))
    brainstem = (np.abs(x) < 14) & (y > -42) & (y < -8) & (z < -12)
    thal = (((np.abs(x) - 12) / 9) ** 2 + ((y + 18) / 13) ** 2 + ((z - 7) / 8) ** 2) <= 1
    occipital = (y < -72) & ~cerebellum
    temporal = (np.abs(x) > 28) & (z < 6 - 0.1 * (y + 30)) & (y >= -72) & (y < 28) & ~cerebellum
    parietal = (y < central_sulcus_y(z)) & (y >= -72) & ~temporal & ~cerebellum & ~brainstem
    frontal = (y >= central_sulcus_y(z)) & ~temporal & ~brainstem
    regions = [("cerebellum", cerebellum), ("occipital", occipital), ("temporal", temporal),
               ("parietal", parietal), ("frontal", frontal), ("thalamus", thal)]
    for hemi, side in (("left", x < 0), ("right", x >= 0)):
        for name, sel in regions:  # later entries win (thalamus over lobes)
            out[inside & side & sel] = lut[(name, hemi)]
    out[inside & brainstem & ~thal] = lut[("brainstem", "bilateral")]
    return out.reshape(tissue.shape)
