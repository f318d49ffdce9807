"""Extra-cerebral ROIs in native space: meningeal band, calvarial band, dural sinuses.

The meningeal band is the shell between ``meningeal_mm[0]`` and ``meningeal_mm[1]`` outside
the brain mask (subarachnoid space and dura); the calvarial band (skull and diploic marrow)
lies between ``calvarial_mm[0]`` and ``calvarial_mm[1]``. Where the T1w shows the head
(:func:`calvarium_mask`), the calvarial band follows the participant's skull: outside the
intracranial (extraction) mask, at least ``scalp_mm`` inside the skin, over the vault only
(not the orbits, the petrous bone or the skull base). Both are split by lobe and
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
    ("straight_sinus", "bilateral"),
    ("sigmoid_sinus", "left"),
    ("sigmoid_sinus", "right"),
    ("cavernous_sinus_pituitary", "bilateral"),
)
#: ROIs that enhance in everyone (venous blood, pituitary, choroid plexus): not searched for
#: enhancement findings
NORMALLY_ENHANCING = tuple(sorted({name for name, _ in SINUSES})) + ("intracerebral_csf",)


def _segment(x, y, z, start, end, radius):
    """Voxels within ``radius`` mm of the segment ``start``-``end`` (template mm)."""
    p = np.stack([x, y, z], axis=-1) - np.asarray(start, float)
    d = np.asarray(end, float) - np.asarray(start, float)
    t = np.clip(p @ d / (d @ d), 0.0, 1.0)
    return np.linalg.norm(p - t[..., None] * d, axis=-1) <= radius


def sinus_prior(brain_mask, affine, max_distance_mm: float = 12.0):
    """Template-space labels of the dural sinuses, numbered as :data:`SINUSES` (1 SSS, 2/3
    left/right transverse, 4 straight, 5/6 left/right sigmoid, 7 cavernous sinus and
    pituitary), in MNI millimetres, outside the brain (but the straight sinus) and within
    ``max_distance_mm``.

    Superior sagittal sinus: within 6 mm of the midline, above z = 5 mm and in front of
    y = -115 mm, and the confluence of sinuses (|x| < 12, behind y = -90, z from -20 to 5 mm,
    labelled with the sagittal sinus); transverse sinuses: lateral to |x| = 8 mm, behind
    y = -75 mm and between z = -32 and -8 mm; straight sinus: 4 mm around the line from the
    great cerebral vein (0, -52, 2) to the confluence (0, -92, -8), inside the brain mask too
    (the tentorial notch); sigmoid sinuses: 5 mm around (±56, -72, -27) to (±44, -42, -46);
    cavernous sinuses and pituitary: the
    ellipsoid around (0, -3, -33) with semi-axes 20, 12, 9 mm. A prior, not a segmentation.
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
    # the straight sinus runs in the tentorial notch, inside most brain masks' hull
    out[(out == 0) & _segment(x, y, z, (0, -52, 2), (0, -92, -8), 4.0)] = 4
    for label, sx in ((5, -1), (6, 1)):
        tube = _segment(x, y, z, (sx * 56, -72, -27), (sx * 44, -42, -46), 5.0)
        out[shell & (out == 0) & tube] = label
    cav = (x / 20) ** 2 + ((y + 3) / 12) ** 2 + ((z + 33) / 9) ** 2 <= 1
    out[shell & (out == 0) & cav] = 7
    return out


def head_mask(t1w, brain_mask, fraction: float = 0.15):
    """The head (skin and everything inside): the T1w above ``fraction`` of its brain median,
    closed (2 voxels), largest component, holes filled."""
    t1w = np.asarray(t1w, float)
    brain = np.asarray(brain_mask) > 0
    head = np.isfinite(t1w) & (t1w > fraction * float(np.median(t1w[brain])))
    head = ndimage.binary_closing(head, iterations=2) | brain
    comp, n = ndimage.label(head)
    if n > 1:
        head = comp == (np.argmax(np.bincount(comp.ravel())[1:]) + 1)
    return ndimage.binary_fill_holes(head)


def calvarium_mask(
    brain_mask,
    intracranial_mask,
    head,
    template_z,
    zooms,
    band_mm=(4.0, 10.0),
    scalp_mm: float = 4.0,
    max_downward_cos: float = 0.5,
):
    """The calvarial band of one head: voxels ``band_mm`` from the brain that are outside the
    intracranial mask (the inner table: not subarachnoid CSF), at least ``scalp_mm`` inside
    the skin (not scalp), over the vault: the direction from the nearest brain voxel may not
    point down by more than ``acos(max_downward_cos)`` from the template's vertical
    (``template_z``: each voxel's template z in mm, through the registration), which leaves
    out the orbits, the petrous bone and the skull base; the largest connected piece.
    """
    brain = np.asarray(brain_mask) > 0
    zooms = np.asarray(zooms, float)
    tz = np.asarray(template_z, float)
    dist, nearest = ndimage.distance_transform_edt(~brain, sampling=zooms, return_indices=True)
    skin = ndimage.distance_transform_edt(np.asarray(head, bool), sampling=zooms)
    rise = (tz - tz[tuple(nearest)]) / np.maximum(dist, 1e-6)
    calv = (
        ~brain
        & (dist > band_mm[0])
        & (dist <= band_mm[1])
        & ~(np.asarray(intracranial_mask) > 0)
        & (skin >= scalp_mm)
        & np.isfinite(tz)
        & (rise > -max_downward_cos)
    )
    comp, n = ndimage.label(calv, structure=np.ones((3, 3, 3)))
    if n > 1:
        calv = comp == (np.argmax(np.bincount(comp.ravel())[1:]) + 1)
    return calv


def extracerebral_rois(
    brain_mask,
    brain_labels,
    brain_lut: pd.DataFrame,
    zooms,
    sinus_labels=None,
    meningeal_mm=(0.0, 4.0),
    calvarial_mm=(4.0, 10.0),
    sinus_margin_mm: float = 3.0,
    calvarium=None,
    tissue=None,
):
    """Native-space meningeal and calvarial bands and sinuses, numbered after the atlas.

    Returns ``(labels, lut)``: the brain atlas labels unchanged, then per atlas region a
    ``meningeal_<name>`` and a ``calvarial_<name>`` ROI (same hemisphere) taking the band
    voxels whose nearest labelled brain voxel is in that region, then the sinuses
    (:data:`SINUSES`) from ``sinus_labels`` (numbered as :func:`sinus_prior`), which are
    removed from both bands together with a margin of ``sinus_margin_mm`` around them
    (partial volume of the enhancing blood); the margin also takes the brain-edge voxels
    next to a sinus out of the brain regions.
    ``tissue`` (1 CSF, 2 GM, 3 WM: the participant's segmentation), when given, takes the CSF
    inside the brain mask (ventricles and choroid plexus, deep sulci) out of the atlas
    regions into its own ROI, ``intracerebral_csf``.
    ``calvarium`` (:func:`calvarium_mask`), when given, replaces the distance-only calvarial
    band (a brain-extracted T1w shows no skull: then the band is the distance shell).
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
    top += 1
    csf_index = top
    rows.append((top, "intracerebral_csf", "bilateral"))
    zooms = np.asarray(zooms, float)
    dist = ndimage.distance_transform_edt(~brain, sampling=zooms)
    _, nearest = ndimage.distance_transform_edt(labels == 0, sampling=zooms, return_indices=True)
    nearest_label = labels[tuple(nearest)]
    out = np.where(brain, labels, 0).astype(np.int32)
    if tissue is not None:
        tissue = np.asarray(tissue).astype(int)
        if tissue.shape != brain.shape:
            raise ValueError("extracerebral_rois: tissue labels must share the brain grid")
        out[brain & (tissue == 1)] = csf_index
    for kind, (lo, hi) in (("meningeal", meningeal_mm), ("calvarial", calvarial_mm)):
        band = ~brain & (dist > lo) & (dist <= hi)
        if kind == "calvarial" and calvarium is not None:
            band = np.asarray(calvarium, bool) & ~brain
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
            sel = (sin == k) & (~brain | (SINUSES[k - 1][0] == "straight_sinus"))
            if sinus_margin_mm > 0 and sel.any():
                # the margin reaches into the brain edge too: those voxels hold sinus blood
                near = ndimage.distance_transform_edt(~sel, sampling=zooms) <= sinus_margin_mm
                sel = near & (dist <= calvarial_mm[1])
            out[sel] = dst
    return out, pd.DataFrame(rows, columns=["index", "name", "hemisphere"])


#: the sinuses re-segmented on a post-contrast image (the cavernous prior is kept as it is)
VENOUS_SINUSES = ("superior_sagittal_sinus", "transverse_sinus", "straight_sinus", "sigmoid_sinus")


def refine_sinuses(
    labels,
    lut: pd.DataFrame,
    subtraction,
    noise_sd: float,
    zooms,
    search_mm: float = 4.0,
    n_sd: float = 4.0,
    blood_fraction: float = 0.5,
    min_fraction: float = 0.2,
):
    """The dural venous sinuses of one head, from its own post-contrast enhancement.

    Venous blood enhances more than anything around it. Within the geometric prior of each
    sinus grown by ``search_mm`` (:data:`VENOUS_SINUSES` of ``labels``; outside the brain
    regions), the sinus is the voxels whose subtraction exceeds ``blood_fraction`` of the
    95th percentile of the subtraction over the prior (the blood level), grown through the
    connected voxels above ``n_sd`` noise SDs (hysteresis: partial-volume blood at its edge);
    each takes the label of the nearest prior sinus. Prior voxels left out are below the
    noise criterion, so they cannot make an enhancement finding where they return: to the
    band, brain or other region their nearest non-sinus neighbour belongs to.
    When less than ``min_fraction`` of the prior's volume is found (no post image of the
    sinuses, poor contrast), the prior is kept. Returns ``(labels, info)`` with
    ``info["source"]`` ``"post-contrast"`` or ``"prior"`` and the volumes (ml).
    """
    labels = np.asarray(labels).astype(np.int32)
    diff = np.asarray(subtraction, float)
    zooms = np.asarray(zooms, float)
    voxel_ml = float(np.prod(zooms)) / 1000.0
    sinus_ids = lut.loc[lut["name"].isin(VENOUS_SINUSES), "index"].astype(int).to_numpy()
    prior = np.isin(labels, sinus_ids)
    info = {"source": "prior", "prior_ml": float(prior.sum() * voxel_ml), "found_ml": 0.0}
    finite = np.isfinite(diff)
    if not prior.any() or not np.isfinite(noise_sd) or not (prior & finite).any():
        return labels, info
    blood = float(np.percentile(diff[prior & finite], 95))
    extra = lut["name"].str.match(r"(meningeal|calvarial)_") | lut["name"].isin(
        [name for name, _ in SINUSES]
    )
    brain_ids = lut.loc[~extra, "index"]
    brain = np.isin(labels, brain_ids.astype(int).to_numpy()) & ~prior
    near, nearest = ndimage.distance_transform_edt(~prior, sampling=zooms, return_indices=True)
    search = (near <= search_mm) & ~brain & finite
    # hysteresis: cores above half the blood level, grown through the connected voxels above
    # the noise criterion (partial-volume blood at the sinus edge belongs to the sinus)
    from skimage.filters import apply_hysteresis_threshold

    low = n_sd * noise_sd
    high = max(blood_fraction * blood, low)
    found = search & apply_hysteresis_threshold(np.where(search, diff, -np.inf), low, high)
    info["found_ml"] = float(found.sum() * voxel_ml)
    if found.sum() < min_fraction * prior.sum():
        return labels, info
    out = labels.copy()
    out[found] = labels[tuple(ix[found] for ix in nearest)]
    lost = prior & ~found
    others = ~prior & (labels > 0)
    if lost.any() and others.any():
        _, idx = ndimage.distance_transform_edt(~others, sampling=zooms, return_indices=True)
        out[lost] = labels[tuple(ix[lost] for ix in idx)]
    info["source"] = "post-contrast"
    return out, info
