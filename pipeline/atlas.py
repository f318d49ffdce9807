"""The built-in coarse atlases, defined in MNI coordinates on any MNI152 template.

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


def _lut(names, bilateral=()) -> pd.DataFrame:
    """Label table: ``names`` left (1..n) then right (n+1..2n), then ``bilateral`` ones."""
    rows = [
        {"index": 1 + i + h * len(names), "name": name, "hemisphere": hemi}
        for h, hemi in enumerate(("left", "right"))
        for i, name in enumerate(names)
    ]
    rows += [
        {"index": 2 * len(names) + 1 + i, "name": name, "hemisphere": "bilateral"}
        for i, name in enumerate(bilateral)
    ]
    return pd.DataFrame(rows)


def lobar_lut() -> pd.DataFrame:
    """Label table of ``inflamapLobes``: columns ``index, name, hemisphere``."""
    return _lut(LOBES, ("brainstem",))


def central_sulcus_y(z):
    """Approximate MNI y (mm) of the central sulcus at height z (sloping backwards upwards)."""
    return -10.0 - 0.4 * (np.asarray(z, dtype=float) - 20.0)


def lobar_regions(x, y, z) -> dict:
    """Boolean masks of the lobar regions at MNI coordinates (any tissue), in the order in
    which :func:`lobar_labels` paints them (later entries win), plus ``brainstem``."""
    x, y, z = (np.asarray(c, dtype=float) for c in (x, y, z))
    cerebellum = (y < -42) & (z < -18 + 0.25 * (y + 42))
    brainstem = (np.abs(x) < 14) & (y > -42) & (y < -8) & (z < -12)
    thal = (((np.abs(x) - 12) / 9) ** 2 + ((y + 18) / 13) ** 2 + ((z - 7) / 8) ** 2) <= 1
    occipital = (y < -72) & ~cerebellum
    temporal = (np.abs(x) > 28) & (z < 6 - 0.1 * (y + 30)) & (y >= -72) & (y < 28) & ~cerebellum
    parietal = (y < central_sulcus_y(z)) & (y >= -72) & ~temporal & ~cerebellum & ~brainstem
    frontal = (y >= central_sulcus_y(z)) & ~temporal & ~brainstem
    return {
        "cerebellum": cerebellum,
        "occipital": occipital,
        "temporal": temporal,
        "parietal": parietal,
        "frontal": frontal,
        "thalamus": thal,
        "brainstem": brainstem,
    }


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
    x, y, z = np.asarray(affine)[:3, :3] @ ijk + np.asarray(affine)[:3, 3:4]
    inside = tissue.reshape(-1) >= threshold
    lut = lobar_lut().set_index(["name", "hemisphere"])["index"]
    out = np.zeros(x.shape, dtype=np.uint8)

    regions = lobar_regions(x, y, z)
    brainstem, thal = regions.pop("brainstem"), regions["thalamus"]
    regions = list(regions.items())
    for hemi, side in (("left", x < 0), ("right", x >= 0)):
        for name, sel in regions:  # later entries win (thalamus over lobes)
            out[inside & side & sel] = lut[(name, hemi)]
    out[inside & brainstem & ~thal] = lut[("brainstem", "bilateral")]
    return out.reshape(tissue.shape)


TERRITORIES = ("aca", "mca", "pca", "thalamus", "cerebellum")
# Vessel centre lines in MNI mm (start, end) and tube radius: right side; mirrored for left.
VESSELS = {
    "ica_cavernous": ((18.0, -10.0, -34.0), (17.0, 6.0, -30.0), 3.0),
    "mca_m1": ((14.0, 4.0, -16.0), (38.0, 4.0, -8.0), 2.5),
}


def territory_lut() -> pd.DataFrame:
    """Label table of ``inflamapTerritories``: columns ``index, name, hemisphere``."""
    return _lut(TERRITORIES + tuple(VESSELS), ("pons",))


def aca_territory(x, y, z):
    """Geometric ACA territory (MNI mm): medial frontal/parietal back to the
    parieto-occipital sulcus (y = -70), 16 mm from the midline, widening over the vertex."""
    x, y, z = (np.asarray(c, dtype=float) for c in (x, y, z))
    half_width = 16.0 + 0.6 * np.clip(z - 50.0, 0.0, None)
    return (y > -70.0) & (np.abs(x) < half_width) & (z > -20.0)


def pca_territory(x, y, z):
    """Geometric PCA territory (MNI mm): occipital lobe and inferomedial temporal lobe."""
    x, y, z = (np.asarray(c, dtype=float) for c in (x, y, z))
    return (y <= -70.0) | ((y < -25.0) & (z < -5.0) & (np.abs(x) < 40.0))


def _tube(x, y, z, start, end, radius):
    p = np.stack([x, y, z], axis=0).reshape(3, -1)
    a, b = np.asarray(start, float)[:, None], np.asarray(end, float)[:, None]
    ab = b - a
    t = np.clip(((p - a) * ab).sum(0) / (ab**2).sum(), 0.0, 1.0)
    d = np.linalg.norm(p - (a + t * ab), axis=0)
    return (d <= radius).reshape(np.shape(x))


def territory_labels(tissue, affine, threshold: float = 0.5):
    """Label ``tissue`` (GM+WM fraction) by arterial territory, after :func:`territory_lut`.

    The vessel tubes are labelled wherever they fall (inside or outside the tissue mask);
    the lobar atlas gives the cerebellum, thalamus and brainstem (pons: its part above
    z = -44 mm).
    """
    tissue = np.asarray(tissue, dtype=float)
    lobes = lobar_labels(tissue, affine, threshold).reshape(-1)
    lobe_lut = lobar_lut().set_index(["name", "hemisphere"])["index"]
    ijk = np.indices(tissue.shape).reshape(3, -1)
    x, y, z = np.asarray(affine)[:3, :3] @ ijk + np.asarray(affine)[:3, 3:4]
    lut = territory_lut().set_index(["name", "hemisphere"])["index"]
    out = np.zeros(x.shape, dtype=np.uint8)
    aca, pca = aca_territory(x, y, z), pca_territory(x, y, z)
    for hemi in ("left", "right"):
        cerebrum = np.isin(
            lobes, [lobe_lut[(n, hemi)] for n in ("frontal", "parietal", "temporal", "occipital")]
        )
        out[cerebrum] = lut[("mca", hemi)]
        out[cerebrum & pca] = lut[("pca", hemi)]
        out[cerebrum & aca & ~pca] = lut[("aca", hemi)]
        for name in ("thalamus", "cerebellum"):
            out[lobes == lobe_lut[(name, hemi)]] = lut[(name, hemi)]
    out[(lobes == lobe_lut[("brainstem", "bilateral")]) & (z > -44.0)] = lut[("pons", "bilateral")]
    for name, (start, end, radius) in VESSELS.items():
        for hemi, sign in (("left", -1.0), ("right", 1.0)):
            s = (sign * start[0], *start[1:])
            e = (sign * end[0], *end[1:])
            out[_tube(x, y, z, s, e, radius)] = lut[(name, hemi)]
    return out.reshape(tissue.shape)


TSPO_REGIONS = ("visual_cortex", "somatosensory_cortex", "insula", "thalamus", "spinal_trigeminal")


def tspo_lut() -> pd.DataFrame:
    """Label table of ``inflamapTSPO``: columns ``index, name, hemisphere``."""
    return _lut(TSPO_REGIONS)


def _ellipsoid(x, y, z, centre, semi_axes):
    cx, cy, cz = centre
    ax, ay, az = semi_axes
    return ((np.abs(x) - cx) / ax) ** 2 + ((y - cy) / ay) ** 2 + ((z - cz) / az) ** 2 <= 1


def tspo_labels(tissue, affine, threshold: float = 0.5):
    """The regions where [11C]PBR28 uptake rose in migraine with aura (Albrecht et al.,
    Neurology 2019), after :func:`tspo_lut`: visual cortex (the occipital lobe),
    primary somatosensory cortex (a 18 mm strip behind the central sulcus above z = 20 mm),
    insula (an ellipsoid at x = ±37 mm, y -30 to +24, z -8 to +18), thalamus (as in
    ``inflamapLobes``) and the spinal trigeminal nucleus (a small ellipsoid in the
    dorsolateral medulla, x = ±6, y = -44, z = -52; a few voxels at 2 mm: read it with care).
    Geometric approximations in MNI mm, like the other built-in atlases.
    """
    tissue = np.asarray(tissue, dtype=float)
    if tissue.ndim != 3:
        raise ValueError("tspo_labels: tissue must be a 3-D image")
    ijk = np.indices(tissue.shape).reshape(3, -1)
    x, y, z = np.asarray(affine)[:3, :3] @ ijk + np.asarray(affine)[:3, 3:4]
    inside = tissue.reshape(-1) >= threshold
    lobes = lobar_regions(x, y, z)
    cs = central_sulcus_y(z)
    regions = {
        "visual_cortex": lobes["occipital"],
        "somatosensory_cortex": (y < cs) & (y >= cs - 18.0) & (z > 20.0),
        "insula": _ellipsoid(x, y, z, (37.0, -3.0, 5.0), (5.0, 27.0, 13.0)),
        "thalamus": lobes["thalamus"],
        "spinal_trigeminal": _ellipsoid(x, y, z, (6.0, -44.0, -52.0), (3.0, 4.0, 8.0)),
    }
    lut = tspo_lut().set_index(["name", "hemisphere"])["index"]
    out = np.zeros(x.shape, dtype=np.uint8)
    for hemi, side in (("left", x < 0), ("right", x >= 0)):
        for name, sel in regions.items():
            out[inside & side & sel] = lut[(name, hemi)]
    return out.reshape(tissue.shape)


BUILTIN = {
    "inflamapLobes": (lobar_labels, lobar_lut),
    "inflamapTerritories": (territory_labels, territory_lut),
    "inflamapTSPO": (tspo_labels, tspo_lut),
}

#: what each built-in atlas is made of (sidecars and reports say so)
BUILTIN_GEOMETRY = {
    "inflamapLobes": "lobes, thalamus, cerebellum and brainstem cut from the template's "
    "tissue by planes and an ellipsoid in MNI millimetres",
    "inflamapTerritories": "ACA/MCA/PCA territories cut by planes, with thalamus and "
    "cerebellum, in MNI millimetres",
    "inflamapTSPO": "ellipsoids and boxes around TSPO regions of interest in MNI millimetres",
}


def atlas_provenance(name: str) -> dict:
    """Sidecar fields saying whether an atlas is published or approximate (geometric)."""
    if name in BUILTIN:
        return {
            "AtlasType": "approximate",
            "AtlasDescription": f"geometric, not a published atlas: {BUILTIN_GEOMETRY[name]}",
        }
    from .published_atlas import ATLASES, CITATION

    if name in ATLASES:
        return {
            "AtlasType": "published",
            "AtlasSource": "Harvard-Oxford cortical and subcortical atlases (FSL), regions "
            "merged and registered to the template by inflamap",
            "AtlasReference": CITATION,
        }
    return {"AtlasType": "published", "AtlasSource": "TemplateFlow"}
