"""Template-space head phantom of the digital reference object (DRO).

Tissue fractions come from the template's brain mask and GM/WM probability maps; the head
around the brain (subarachnoid CSF, dura, skull tables, diploic marrow, scalp) and the dural
venous sinuses are built as shells by distance from the brain surface. Each tissue has its
physical parameters at 3 T; acquisitions mix the tissue signals by their (partial-volume)
fractions after moving the phantom into the participant's head position.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..atlas import aca_territory, lobar_labels, lobar_regions, pca_territory

TISSUES = ("gm", "wm", "csf", "dura", "skull", "marrow", "scalp", "blood")

# Per-tissue parameters at 3 T. PD relative; T1 s; R2* 1/s; vp/ve fractions; Ktrans 1/min;
# dR2star_uspio 1/s (ferumoxytol ~24 h); suv at 60-90 min after [11C]PBR28.
PARAMS = {
    #          PD    T1    R2*   vp     ve    Ktrans  dR2*  SUV
    "gm": (0.80, 1.40, 17.0, 0.040, 0.20, 0.0005, 2.5, 1.20),
    "wm": (0.70, 0.85, 21.0, 0.020, 0.20, 0.0003, 1.2, 0.90),
    "csf": (1.00, 4.00, 4.0, 0.000, 0.00, 0.0, 0.0, 0.10),
    "dura": (0.60, 1.10, 25.0, 0.050, 0.30, 0.10, 5.0, 0.80),
    "skull": (0.08, 0.50, 200.0, 0.005, 0.05, 0.005, 0.0, 0.30),
    "marrow": (0.90, 0.37, 60.0, 0.030, 0.20, 0.05, 8.0, 1.50),
    "scalp": (0.80, 0.60, 40.0, 0.030, 0.20, 0.08, 3.0, 0.50),
    "blood": (0.85, 1.90, 30.0, 0.550, 0.00, 0.0, 100.0, 0.80),
}
PARAM_NAMES = ("pd", "t1", "r2star", "vp", "ve", "ktrans", "uspio_dr2star", "suv")


def tissue_param(tissue: str, name: str) -> float:
    return PARAMS[tissue][PARAM_NAMES.index(name)]


# Shells outside the brain, in mm from the brain surface: (tissue, inner, outer)
SHELLS = (
    ("csf", 0.0, 2.0),
    ("dura", 2.0, 3.5),
    ("skull", 3.5, 5.5),
    ("marrow", 5.5, 8.5),
    ("skull", 8.5, 10.5),
    ("scalp", 10.5, 16.0),
)


@dataclass
class Phantom:
    """Tissue fractions on the template grid (1 mm) and the derived reference images."""

    affine: np.ndarray
    fractions: dict  # tissue -> float32 array
    labels: np.ndarray  # lobar atlas labels (template grid)
    brain: np.ndarray  # bool brain mask (template grid)

    def smoothed(self, fwhm_mm: float) -> Phantom:
        """Fractions blurred to a resolution of ``fwhm_mm`` (partial volume at coarse voxels)."""
        sigma = fwhm_mm / 2.3548 / np.abs(np.diag(self.affine)[:3])
        frac = {
            k: ndimage.gaussian_filter(v, sigma).astype(np.float32)
            for k, v in self.fractions.items()
        }
        return Phantom(self.affine, frac, self.labels, self.brain)


def build_phantom(brain_mask, gm, wm, affine) -> Phantom:
    """Build the head phantom from template maps (all arrays on one grid, ``affine`` RAS mm)."""
    brain = np.asarray(brain_mask) > 0.5
    gm = np.clip(np.asarray(gm, dtype=np.float32), 0, 1) * brain
    wm = np.clip(np.asarray(wm, dtype=np.float32), 0, 1) * brain
    tot = gm + wm
    over = tot > 1
    gm[over] /= tot[over]
    wm[over] /= tot[over]
    csf_in = np.clip(brain.astype(np.float32) - gm - wm, 0, 1)
    zooms = np.abs(np.diag(affine)[:3])
    dist = ndimage.distance_transform_edt(~brain, sampling=zooms)
    frac = {t: np.zeros(brain.shape, np.float32) for t in TISSUES}
    frac["gm"], frac["wm"], frac["csf"] = gm, wm, csf_in
    outside = ~brain
    for tissue, lo, hi in SHELLS:
        sel = outside & (dist > lo) & (dist <= hi)
        frac[tissue][sel] = 1.0
    # Dural venous sinuses: superior sagittal (midline, above the brain) and transverse.
    x, y, z = _mm_grid(brain.shape, affine)
    shell = outside & (dist > 0.0) & (dist <= 5.5)
    sss = shell & (np.abs(x) < 4.5) & (z > 5) & (y > -112)
    # confluence of sinuses (torcular Herophili) at the internal occipital protuberance
    confluence = shell & (np.abs(x) < 10) & (y < -92) & (z > -18) & (z <= 5)
    transverse = shell & (np.abs(x) > 8) & (y < -75) & (z > -32) & (z < -8)
    sinus = sss | confluence | transverse
    for t in TISSUES:
        frac[t][sinus] = 0.0
    frac["blood"][sinus] = 1.0
    labels = lobar_labels(gm + wm, affine)
    return Phantom(np.asarray(affine, float), frac, labels, brain)


def _mm_grid(shape, affine):
    ijk = np.indices(shape, dtype=np.float32).reshape(3, -1)
    xyz = np.asarray(affine)[:3, :3] @ ijk + np.asarray(affine)[:3, 3:4]
    return tuple(c.reshape(shape) for c in xyz)


def region_mask(name: str, hemisphere: str, xyz_template):
    """Geometric region (any tissue) in template MNI mm, used to plant effects.

    ``occipital`` and ``frontal`` as in the ``inflamapLobes`` atlas, ``aca`` the anterior
    cerebral artery territory of ``inflamapTerritories``. ``hemisphere`` is left, right or
    both.
    """
    x, y, z = xyz_template
    lobes = lobar_regions(x, y, z)
    if name == "occipital":
        sel = lobes["occipital"]
    elif name == "frontal":
        sel = lobes["frontal"]
    elif name == "aca":  # as labelled by inflamapTerritories: cerebrum only
        cerebrum = ~(lobes["cerebellum"] | lobes["thalamus"] | lobes["brainstem"])
        sel = aca_territory(x, y, z) & ~pca_territory(x, y, z) & cerebrum
    else:
        raise ValueError(f"unknown demo region {name!r}")
    if hemisphere == "left":
        sel &= x < 0
    elif hemisphere == "right":
        sel &= x >= 0
    return sel
