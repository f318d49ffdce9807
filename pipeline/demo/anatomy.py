"""The reference anatomy of the demo: a real head (Colin27) segmented once into tissues.

Source: Colin27 from Debian's ``mricron-data`` (``/usr/share/mricron/templates``):
``ch2.nii.gz`` (one person's T1w, 27 averaged scans, 1 mm, skull, scalp and neck),
``ch2bet.nii.gz`` (its brain, FSL BET) and ``aal.nii.gz`` (the AAL atlas, drawn on this very
head: Tzourio-Mazoyer et al. 2002). Colin27 lies in MNI space, so the few anatomical rules
below are written in MNI millimetres. Nothing of inflamap's own anatomy (ROIs, atlases,
templates, registration) is used: the truth must not share the pipeline's assumptions.

How each class is made (1 mm grid of ``ch2.nii.gz``):

* **brain** = the BET mask; inside it **GM / WM / CSF** by a three-class k-means of the T1w
  intensity (CSF darkest); the lateral-ventricle CSF near the atrium (within 9 mm of
  (±27, -42, 16)) is **choroid plexus**.
* **head** = T1w above the air level, largest component, holes filled slice by slice.
* Out from the brain, the T1w shows a *dark band* (subarachnoid CSF, dura, inner table: all
  dark on T1w) before the first bright tissue (diploic marrow, or scalp where the skull has
  no marrow). Dark voxels outside the brain, connected to it through dark voxels within
  15 mm, form the band. Compact bone is darker than CSF on T1w: the band's voxels below
  0.45 x the CSF level (more than 1.5 mm from the brain), its outer 1.5 mm and what lies
  between them and the bright tissue are the **inner table**; the 1 mm of the rest next to
  it is **dura**, the remainder **subarachnoid CSF** (``csf_ext``).
  Darker than the air level: **air** (paranasal sinuses, mastoid).
* **Diploic marrow**: bright voxels (above the brain's 75th percentile) within 9 mm of the
  band, above the skull base (z > -20 mm, or behind y < -60 mm for the occipital bone);
  **outer table**: the non-marrow voxels within 1.5 mm outside the marrow. Everything else
  in the head is **scalp** (skin, fat, muscle; the face and neck too).
* **Dural venous sinuses** (blood): tubes along centre lines in MNI mm (superior sagittal,
  straight, transverse, sigmoid, the confluence), the superior sagittal and transverse ones
  pushed out along the radius until they touch the inner table; **cavernous sinus /
  pituitary**: spheres at the sella; **cortical veins**: 1.2 mm tubes from the convexity to
  the superior sagittal sinus, kept where they run in CSF or dura.
* **Regions**: every head voxel gets the AAL lobe (per hemisphere) of its nearest AAL-labelled
  voxel (brain voxels AAL does not label: white matter, brainstem below z = -20 mm); the
  **ACA territory** is AAL's medial frontal/parietal cortex (superior frontal medial, medial
  orbital, rectus, supplementary motor, paracentral, anterior/middle cingulate, precuneus in
  front of y = -60) and what lies nearest to it.

``build_anatomy()`` writes ``data/colin27_tissues.nii.gz`` and ``data/colin27_regions.nii.gz``
(shipped with the package: no ``mricron-data`` needed to make a demo); a test rebuilds them
from ``mricron-data`` where it is installed and compares.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

#: compact bone: darker than this fraction of the CSF intensity (T1w)
BONE_LEVEL = 0.45
MRICRON = Path("/usr/share/mricron/templates")
DATA = Path(__file__).parent / "data"
TISSUES_FILE = DATA / "colin27_tissues.nii.gz"
REGIONS_FILE = DATA / "colin27_regions.nii.gz"

#: tissue classes (label value -> name)
TISSUE_NAMES = (
    "air",
    "gm",
    "wm",
    "csf",
    "csf_ext",
    "dura",
    "inner_table",
    "marrow",
    "outer_table",
    "scalp",
    "sinus",
    "vein",
    "choroid_plexus",
    "pituitary",
    "cavernous_sinus",
)
TISSUE = {name: i for i, name in enumerate(TISSUE_NAMES)}

#: regions: (lobe, hemisphere) -> value; lobes as AAL groups them
LOBES = (
    "frontal",
    "parietal",
    "temporal",
    "occipital",
    "cingulate",
    "insula",
    "basal_ganglia",
    "thalamus",
    "cerebellum",
    "brainstem",
)
AAL_LOBES = {
    "frontal": (
        "Precentral",
        "Frontal_Sup",
        "Frontal_Sup_Orb",
        "Frontal_Mid",
        "Frontal_Mid_Orb",
        "Frontal_Inf_Oper",
        "Frontal_Inf_Tri",
        "Frontal_Inf_Orb",
        "Rolandic_Oper",
        "Supp_Motor_Area",
        "Olfactory",
        "Frontal_Sup_Medial",
        "Frontal_Med_Orb",
        "Rectus",
        "Paracentral_Lobule",
    ),
    "parietal": (
        "Postcentral",
        "Parietal_Sup",
        "Parietal_Inf",
        "SupraMarginal",
        "Angular",
        "Precuneus",
    ),
    "temporal": (
        "Hippocampus",
        "ParaHippocampal",
        "Amygdala",
        "Fusiform",
        "Heschl",
        "Temporal_Sup",
        "Temporal_Pole_Sup",
        "Temporal_Mid",
        "Temporal_Pole_Mid",
        "Temporal_Inf",
    ),
    "occipital": (
        "Calcarine",
        "Cuneus",
        "Lingual",
        "Occipital_Sup",
        "Occipital_Mid",
        "Occipital_Inf",
    ),
    "cingulate": ("Cingulum_Ant", "Cingulum_Mid", "Cingulum_Post"),
    "insula": ("Insula",),
    "basal_ganglia": ("Caudate", "Putamen", "Pallidum"),
    "thalamus": ("Thalamus",),
}
ACA_AAL = (
    "Frontal_Sup_Medial",
    "Frontal_Med_Orb",
    "Rectus",
    "Supp_Motor_Area",
    "Paracentral_Lobule",
    "Cingulum_Ant",
    "Cingulum_Mid",
    "Precuneus",
)
HEMISPHERES = ("left", "right")


def region_value(lobe: str, hemisphere: str) -> int:
    """Value of ``(lobe, hemisphere)`` in the region map (0: no region)."""
    return 1 + 2 * LOBES.index(lobe) + HEMISPHERES.index(hemisphere)


def region_of(value: int) -> tuple[str, str]:
    v = int(value) - 1
    return LOBES[v // 2], HEMISPHERES[v % 2]


ACA_BIT = 64  # added to the region value where a voxel lies in the ACA territory


@dataclass
class Anatomy:
    """The reference head: tissue and region labels on a 1 mm grid (RAS mm affine)."""

    tissues: np.ndarray  # uint8, TISSUE values
    regions: np.ndarray  # uint8, region_value (+ ACA_BIT)
    affine: np.ndarray

    def mask(self, *names) -> np.ndarray:
        return np.isin(self.tissues, [TISSUE[n] for n in names])

    @property
    def brain(self) -> np.ndarray:
        """The true brain (parenchyma, its CSF, choroid plexus; not the dural sinuses)."""
        return self.mask("gm", "wm", "csf", "choroid_plexus")


def load_anatomy() -> Anatomy:
    """The shipped reference anatomy (see the module docstring)."""
    import nibabel as nb

    t = nb.load(TISSUES_FILE)
    r = nb.load(REGIONS_FILE)
    return Anatomy(
        np.asarray(t.dataobj, dtype=np.uint8),
        np.asarray(r.dataobj, dtype=np.uint8),
        np.asarray(t.affine, float),
    )


# ----------------------------------------------------------------------------- building
def _kmeans_1d(values, k, iters=50):
    centres = np.percentile(values, np.linspace(10, 90, k))
    for _ in range(iters):
        lab = np.argmin(np.abs(values[:, None] - centres[None]), axis=1)
        new = np.array([values[lab == j].mean() for j in range(k)])
        if np.allclose(new, centres):
            break
        centres = new
    return np.sort(centres)


def _fill_slices(mask):
    out = mask.copy()
    for axis in range(3):
        for i in range(mask.shape[axis]):
            sl = [slice(None)] * 3
            sl[axis] = i
            out[tuple(sl)] |= ndi.binary_fill_holes(out[tuple(sl)])
    return out


def _mm(shape, affine):
    ijk = np.indices(shape, dtype=np.float32).reshape(3, -1)
    xyz = affine[:3, :3] @ ijk + affine[:3, 3:4]
    return tuple(c.reshape(shape) for c in xyz)


def _polyline_tube(xyz, points, radius):
    """Voxels within ``radius`` (scalar or per point) mm of a polyline (MNI mm)."""
    x, y, z = xyz
    p = np.stack([x, y, z], axis=-1)
    pts = np.asarray(points, float)
    rad = np.broadcast_to(np.asarray(radius, float), (len(pts),))
    out = np.zeros(x.shape, bool)
    for a, b, ra, rb in zip(pts[:-1], pts[1:], rad[:-1], rad[1:]):
        lo = np.minimum(a, b) - max(ra, rb) - 1
        hi = np.maximum(a, b) + max(ra, rb) + 1
        box = (x >= lo[0]) & (x <= hi[0]) & (y >= lo[1]) & (y <= hi[1])
        box &= (z >= lo[2]) & (z <= hi[2])
        q = p[box] - a
        d = b - a
        t = np.clip(q @ d / (d @ d), 0, 1)
        dist = np.linalg.norm(q - t[:, None] * d, axis=1)
        out[box] |= dist <= ra + t * (rb - ra)
    return out


def _push_to(points, centre, target, affine, step=0.5, max_mm=60.0):
    """Move each point outwards from ``centre`` until it reaches ``target`` (bool map)."""
    inv = np.linalg.inv(affine)
    out = []
    for p in np.asarray(points, float):
        d = p - centre
        d /= np.linalg.norm(d)
        q = p.copy()
        for _ in range(int(max_mm / step)):
            ijk = np.rint(inv[:3, :3] @ q + inv[:3, 3]).astype(int)
            if np.all(ijk >= 0) and np.all(ijk < target.shape) and target[tuple(ijk)]:
                break
            q = q + step * d
        out.append(q)
    return np.array(out)


#: sinus centre lines, MNI mm (right or midline; transverse/sigmoid mirrored to the left),
#: with radii (mm); ``push``: moved outwards to the inner table
SSS = [(0, 58, 30), (0, 40, 55), (0, 15, 70), (0, -15, 76), (0, -45, 70), (0, -72, 52)]
SSS += [(0, -92, 30), (0, -101, 12)]
SSS_RADIUS = [1.8, 2.0, 2.3, 2.6, 3.0, 3.3, 3.6, 4.0]
TRANSVERSE = [(2, -101, 8), (22, -100, 4), (40, -90, -4), (52, -76, -10), (56, -64, -16)]
TRANSVERSE_RADIUS = [4.0, 3.5, 3.5, 3.2, 3.0]
SIGMOID = [(56, -64, -16), (52, -54, -28), (46, -44, -38), (42, -34, -44)]
SIGMOID_RADIUS = [3.0, 3.0, 2.8, 2.8]
STRAIGHT = [(0, -50, 4), (0, -72, 4), (0, -94, 8)]
STRAIGHT_RADIUS = [2.2, 2.5, 2.8]
PITUITARY = ((0.0, 2.0, -31.0), 5.0)
CAVERNOUS = ((14.0, 0.0, -30.0), 4.0)
CHOROID = ((27.0, -42.0, 16.0), 9.0)
#: superior cerebral (bridging) veins: lateral start -> near the superior sagittal sinus
VEINS = [((40, y, 52), (6, y - 6, 72)) for y in (30, 5, -20, -45)]


def build_anatomy(mricron: Path = MRICRON) -> Anatomy:
    """Segment Colin27 (see the module docstring). Needs ``mricron-data``."""
    import nibabel as nb

    head_img = nb.load(mricron / "ch2.nii.gz")
    t1 = np.asarray(head_img.dataobj, dtype=np.float32)
    affine = np.asarray(head_img.affine, float)
    brain = np.asarray(nb.load(mricron / "ch2bet.nii.gz").dataobj) > 0
    aal_img = nb.load(mricron / "aal.nii.gz")
    aal = np.asarray(aal_img.dataobj).astype(int)
    if t1.shape != brain.shape or t1.shape != aal.shape:
        raise ValueError("ch2, ch2bet and aal must share one grid")
    names = {}
    for line in (mricron / "aal.nii.txt").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2:
            names[int(parts[0])] = parts[1]
    xyz = _mm(t1.shape, affine)
    x, y, z = xyz

    tissues = np.zeros(t1.shape, np.uint8)
    # brain: three intensity classes
    csf_c, gm_c, wm_c = _kmeans_1d(t1[brain], 3)
    cuts = ((csf_c + gm_c) / 2, (gm_c + wm_c) / 2)
    tissues[brain] = TISSUE["gm"]
    tissues[brain & (t1 < cuts[0])] = TISSUE["csf"]
    tissues[brain & (t1 >= cuts[1])] = TISSUE["wm"]

    # head
    air_level = 0.15 * gm_c
    head = ndi.binary_closing(t1 > air_level, iterations=2)
    lab, _ = ndi.label(head)
    head = lab == np.argmax(np.bincount(lab.ravel())[1:]) + 1
    head = _fill_slices(head) | brain

    # the dark band around the brain
    dark_level = cuts[0]
    dist_brain = ndi.distance_transform_edt(~brain)
    dark = head & ~brain & (t1 < dark_level) & (dist_brain <= 15)
    lab, _ = ndi.label(dark | brain)
    band = dark & (lab == lab[brain][0])
    bright = head & ~brain & ~band & (t1 >= dark_level)
    dist_bright = ndi.distance_transform_edt(~bright)
    air = head & ~brain & ~band & (t1 < air_level * 2)
    tissues[head & ~brain] = TISSUE["scalp"]
    tissues[air] = TISSUE["air"]
    # compact bone is darker than CSF on T1w: the inner table is the band's darkest voxels
    # (below BONE_LEVEL x the CSF level) away from the brain surface, and its outer 1.5 mm
    bone = band & (((t1 < BONE_LEVEL * csf_c) & (dist_brain > 1.5)) | (dist_bright <= 1.5))
    # and whatever of the band lies between that bone and the bright tissue outside it
    bone |= band & (dist_bright <= ndi.distance_transform_edt(~bone))
    tissues[band] = TISSUE["csf_ext"]
    dura = band & ~bone & (ndi.distance_transform_edt(~bone) <= 1.0)
    tissues[dura] = TISSUE["dura"]
    tissues[bone] = TISSUE["inner_table"]

    # diploic marrow and the outer table
    marrow_level = np.percentile(t1[brain], 75)
    dist_band = ndi.distance_transform_edt(~band)
    vault = (z > -20) | (y < -60)
    marrow = bright & (t1 >= marrow_level) & (dist_band <= 9) & vault
    tissues[marrow] = TISSUE["marrow"]
    outer = bright & ~marrow & vault & (ndi.distance_transform_edt(~marrow) <= 1.5)
    outer &= dist_band <= 11
    tissues[outer] = TISSUE["outer_table"]

    # choroid plexus: ventricular CSF near the atrium
    deep = ndi.distance_transform_edt(brain) > 12
    for sx in (-1, 1):
        c, r = CHOROID
        ball = (x - sx * c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2 <= r**2
        tissues[ball & deep & (tissues == TISSUE["csf"])] = TISSUE["choroid_plexus"]

    # dural venous sinuses
    inner = tissues == TISSUE["inner_table"]
    centre = np.array([0.0, -20.0, 15.0])
    sss = _push_to(SSS, centre, inner, affine)
    # the tube's centre sits one radius inside the inner table
    sss = (
        sss
        - (sss - centre)
        / np.linalg.norm(sss - centre, axis=1)[:, None]
        * np.asarray(SSS_RADIUS)[:, None]
    )
    sinus = _polyline_tube(xyz, sss, SSS_RADIUS)
    sinus |= _polyline_tube(xyz, STRAIGHT, STRAIGHT_RADIUS)
    for sx in (-1, 1):
        pts = np.asarray(TRANSVERSE, float) * [sx, 1, 1]
        tc = np.array([0.0, -60.0, -5.0])
        pushed = _push_to(pts[1:], tc, inner, affine)
        back = (pushed - tc) / np.linalg.norm(pushed - tc, axis=1)[:, None]
        pushed = pushed - back * np.asarray(TRANSVERSE_RADIUS[1:])[:, None]
        sinus |= _polyline_tube(xyz, np.vstack([pts[:1], pushed]), TRANSVERSE_RADIUS)
        sig = np.asarray(SIGMOID, float) * [sx, 1, 1]
        sig[0] = pushed[-1]
        sinus |= _polyline_tube(xyz, sig, SIGMOID_RADIUS)
    # the sinuses lie in the dura and its folds: not in bone's outside, scalp or parenchyma
    sinus &= np.isin(tissues, [TISSUE[n] for n in ("csf_ext", "dura", "inner_table", "csf")])
    tissues[sinus] = TISSUE["sinus"]
    c, r = PITUITARY
    ball = (x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2 <= r**2
    tissues[ball & (tissues != TISSUE["wm"])] = TISSUE["pituitary"]
    for sx in (-1, 1):
        c, r = CAVERNOUS
        ball = (x - sx * c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2 <= r**2
        tissues[ball & (tissues != TISSUE["wm"]) & (tissues != TISSUE["pituitary"])] = TISSUE[
            "cavernous_sinus"
        ]
    # cortical veins in the subarachnoid space
    for sx in (-1, 1):
        for a, b in VEINS:
            a = np.asarray(a, float) * [sx, 1, 1]
            b = np.asarray(b, float) * [sx, 1, 1]
            surf = tissues == TISSUE["csf_ext"]
            pa = _push_to([a], centre, surf, affine)[0]
            pb = _push_to([b], centre, surf, affine)[0]
            mid = _push_to([(pa + pb) / 2], centre, surf, affine)[0]
            tube = _polyline_tube(xyz, [pa, mid, pb], 1.2)
            tissues[tube & np.isin(tissues, [TISSUE["csf_ext"], TISSUE["dura"]])] = TISSUE["vein"]

    regions = _regions(aal, names, brain, head, xyz)
    return Anatomy(tissues, regions, affine)


def _regions(aal, names, brain, head, xyz):
    x, y, z = xyz
    lobe_of = {}
    aca_values = set()
    for value, name in names.items():
        base, _, side = name.rpartition("_")
        hemi = {"L": "left", "R": "right"}.get(side)
        if name.startswith(("Cerebelum", "Vermis")):
            lobe = "cerebellum"
            hemi = hemi or None
        else:
            lobe = next((k for k, v in AAL_LOBES.items() if base in v), None)
        if lobe is None:
            continue
        lobe_of[value] = (lobe, hemi)
        if base in ACA_AAL:
            aca_values.add(value)
    seeds = np.zeros(aal.shape, np.uint8)
    for value, (lobe, hemi) in lobe_of.items():
        sel = aal == value
        if hemi is None:  # vermis: by side of the midline
            seeds[sel & (x < 0)] = region_value(lobe, "left")
            seeds[sel & (x >= 0)] = region_value(lobe, "right")
        else:
            seeds[sel] = region_value(lobe, hemi)
    # brainstem: brain below z = -20 mm that AAL leaves out, far from its labels
    dist_lab = ndi.distance_transform_edt(seeds == 0)
    stem = brain & (seeds == 0) & (z < -20) & (np.abs(x) < 20) & (dist_lab > 3)
    seeds[stem & (x < 0)] = region_value("brainstem", "left")
    seeds[stem & (x >= 0)] = region_value("brainstem", "right")
    _, (ii, jj, kk) = ndi.distance_transform_edt(seeds == 0, return_indices=True)
    regions = np.where(head, seeds[ii, jj, kk], 0).astype(np.uint8)
    # hemisphere by the side of the midline for everything outside the brain
    outside = head & ~brain
    lobe_idx = (regions.astype(int) - 1) // 2
    side = (x >= 0).astype(int)
    regions[outside] = (1 + 2 * lobe_idx + side)[outside].astype(np.uint8)
    aca_seed = np.isin(aal, list(aca_values)) & ~((y < -60) & np.isin(aal, list(aca_values)))
    near = aca_seed[ii, jj, kk] & head
    regions[near] += ACA_BIT
    return regions


def write_anatomy(anatomy: Anatomy, folder: Path = DATA):
    import nibabel as nb

    folder.mkdir(parents=True, exist_ok=True)
    for arr, path in ((anatomy.tissues, TISSUES_FILE), (anatomy.regions, REGIONS_FILE)):
        img = nb.Nifti1Image(arr.astype(np.uint8), anatomy.affine)
        img.header.set_qform(anatomy.affine, 1)
        img.header.set_sform(anatomy.affine, 1)
        nb.save(img, folder / path.name)


if __name__ == "__main__":  # pragma: no cover - maintainer's tool
    write_anatomy(build_anatomy())
