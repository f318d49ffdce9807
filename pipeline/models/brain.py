"""Brain mask refinement and registration quality control (numpy only).

The brain extraction itself (deepbet, a convolutional network) and the tissue segmentation
(ANTs Atropos) run in :mod:`pipeline.interfaces.anat`; this module holds the arithmetic
that follows them, so that it can be tested on arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

#: Atropos classes of a T1w, ordered by mean intensity (k-means initialisation)
TISSUES = ("CSF", "GM", "WM")


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Sørensen–Dice overlap of two boolean arrays (NaN if both are empty)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    total = int(a.sum()) + int(b.sum())
    return float("nan") if total == 0 else 2.0 * float((a & b).sum()) / total


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 6-connected component of a boolean mask (empty stays empty)."""
    labels, n = ndi.label(mask)
    if n <= 1:
        return labels > 0
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def refine_brain_mask(
    dseg: np.ndarray, zooms, closing_mm: float = 2.0, brain_labels=(2, 3)
) -> np.ndarray:
    """Brain mask at the pial surface from a tissue segmentation.

    The grey and white matter of ``dseg`` (labels ``brain_labels``), closed with a
    ``closing_mm`` structuring element (so sulcal CSF narrower than about twice that stays
    in, as in a brain mask drawn at the pial hull), holes filled, largest component kept.

    Parameters
    ----------
    dseg : array of int
        tissue labels (1 CSF, 2 GM, 3 WM; 0 outside the head mask)
    zooms : sequence of float
        voxel size (mm)
    closing_mm : float
        radius of the morphological closing (mm)
    """
    brain = np.isin(np.asarray(dseg), brain_labels)
    if not brain.any():
        return brain
    r = max(1, int(round(closing_mm / float(min(zooms[:3])))))
    pad = r + 1
    padded = np.pad(brain, pad)
    closed = ndi.binary_closing(
        padded, structure=ndi.generate_binary_structure(3, 1), iterations=r
    )
    brain = closed[pad:-pad, pad:-pad, pad:-pad]
    brain = ndi.binary_fill_holes(brain)
    return largest_component(brain)


@dataclass(frozen=True)
class QCRange:
    """Plausible range of one quality-control value (``None``: open end)."""

    low: float | None
    high: float | None

    def contains(self, value: float) -> bool:
        if not np.isfinite(value):
            return False
        return (self.low is None or value >= self.low) and (
            self.high is None or value <= self.high
        )

    def text(self) -> str:
        lo = "-inf" if self.low is None else f"{self.low:g}"
        hi = "inf" if self.high is None else f"{self.high:g}"
        return f"[{lo}, {hi}]"


def registration_qc(
    brain_mask: np.ndarray,
    template_mask_native: np.ndarray,
    template_mask_volume_ml: float,
    voxel_ml: float,
    ranges: dict[str, QCRange],
) -> dict:
    """Plausibility of a T1w → template registration and of the brain mask.

    Values (each checked against ``ranges`` under the same key):

    ``mask_dice``
        overlap of the template brain mask brought to the T1w (the registration's view of
        the brain) with the participant's own brain mask (brain extraction + segmentation):
        low when the registration stretched or misplaced the template;
    ``volume_ratio``
        volume of the template brain mask in the T1w over its volume in the template: the
        overall scaling of the registration (an adult brain is 0.7–1.4 times the MNI brain);
    ``brain_volume_ml``
        the participant's brain mask volume (a whole head or a fragment is out of range).

    Returns ``{"values": {...}, "ranges": {...}, "failures": [one-line reasons], "passed"}``.
    """
    brain = np.asarray(brain_mask, bool)
    tpl = np.asarray(template_mask_native, bool)
    values = {
        "mask_dice": dice(brain, tpl),
        "volume_ratio": float(tpl.sum()) * voxel_ml / template_mask_volume_ml
        if template_mask_volume_ml > 0
        else float("nan"),
        "brain_volume_ml": float(brain.sum()) * voxel_ml,
    }
    failures = [
        f"{key} {values[key]:.3g} outside {rng.text()}"
        for key, rng in ranges.items()
        if key in values and not rng.contains(values[key])
    ]
    return {
        "values": {k: round(v, 4) for k, v in values.items()},
        "ranges": {k: [r.low, r.high] for k, r in ranges.items()},
        "failures": failures,
        "passed": not failures,
    }
