"""A real head for the tests: Colin27 (Debian's ``mricron-data``) posed as a scanner would.

``ch2.nii.gz`` is a real single-subject T1w head (skull, scalp, neck; 1 mm), ``ch2bet.nii.gz``
its brain extracted by FSL's BET, the independent reference of the brain-mask tests. A pose
moves the head rigidly (rotations, shifts), resamples it onto a new grid (1 or 2 mm, box
averaging for 2 mm so that partial volume is real) stored in any axis order and direction.
Nothing here uses inflamap's code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nibabel as nb
import numpy as np
from scipy import ndimage as ndi
from scipy.spatial.transform import Rotation

MRICRON = Path("/usr/share/mricron/templates")
HEAD = MRICRON / "ch2.nii.gz"
BRAIN = MRICRON / "ch2bet.nii.gz"


def available() -> bool:
    return HEAD.is_file() and BRAIN.is_file() and (MRICRON / "aal.nii.gz").is_file()


@dataclass(frozen=True)
class Pose:
    """A rigid head pose and the grid it is stored on."""

    rotation_deg: tuple  #: x, y, z Euler angles (degrees)
    shift_mm: tuple  #: translation (mm)
    voxel_mm: float  #: isotropic voxel size
    axes: tuple  #: storage order of the world axes (a permutation of 0, 1, 2)
    flips: tuple  #: which stored axes run backwards

    @property
    def name(self) -> str:
        orient = "".join("RAS"[a] if not f else "LPI"[a] for a, f in zip(self.axes, self.flips))
        return f"{self.voxel_mm:g}mm-{orient}-rot{max(abs(r) for r in self.rotation_deg):.0f}"


def random_pose(seed: int, voxel_mm: float, axes=(0, 1, 2), flips=(0, 0, 0)) -> Pose:
    """Rotations up to ±20° about each axis, shifts up to ±35 mm."""
    rng = np.random.default_rng(seed)
    return Pose(
        tuple(float(v) for v in rng.uniform(-20, 20, 3)),
        tuple(float(v) for v in rng.uniform(-35, 35, 3)),
        float(voxel_mm),
        tuple(axes),
        tuple(int(f) for f in flips),
    )


def _posed(img: nb.Nifti1Image, pose: Pose, order: int) -> nb.Nifti1Image:
    zoom = pose.voxel_mm
    move = np.eye(4)
    move[:3, :3] = Rotation.from_euler("xyz", pose.rotation_deg, degrees=True).as_matrix()
    move[:3, 3] = pose.shift_mm
    # a 240 x 270 x 240 mm field of view around the head's new position
    shape = np.array([int(240 / zoom), int(270 / zoom), int(240 / zoom)])
    grid = np.diag([zoom, zoom, zoom, 1.0])
    grid[:3, 3] = -shape * zoom / 2 + np.array([0.0, -15.0, 0.0]) + np.asarray(pose.shift_mm)
    perm = np.zeros((4, 4))
    perm[3, 3] = 1
    for i, axis in enumerate(pose.axes):
        perm[axis, i] = 1
    shape = shape[list(pose.axes)]
    affine = grid @ perm
    for axis, flip in enumerate(pose.flips):
        if flip:
            f = np.eye(4)
            f[axis, axis] = -1
            f[axis, 3] = shape[axis] - 1
            affine = affine @ f
    data = np.asarray(img.dataobj, dtype=np.float32)
    if zoom > 1 and order > 0:  # box averaging over the new voxel (partial volume)
        data = ndi.uniform_filter(data, size=int(round(zoom)))
    to_source = np.linalg.inv(img.affine) @ np.linalg.inv(move) @ affine
    out = ndi.affine_transform(
        data, to_source[:3, :3], to_source[:3, 3], output_shape=tuple(shape), order=order
    )
    return nb.Nifti1Image(out.astype(np.float32), affine)


def posed_head(pose: Pose, folder: Path) -> tuple[Path, Path]:
    """``(t1w, reference brain mask)`` written in ``folder`` for ``pose``."""
    folder.mkdir(parents=True, exist_ok=True)
    t1w, ref = folder / "T1w.nii.gz", folder / "ref_brain_mask.nii.gz"
    _posed(nb.load(HEAD), pose, order=1).to_filename(t1w)
    brain = nb.load(BRAIN)
    mask = nb.Nifti1Image((np.asarray(brain.dataobj) > 0).astype(np.float32), brain.affine)
    # the mask resampled as the image is (box average, linear), then halved: partial volume
    _posed(mask, pose, order=1).to_filename(ref)
    return t1w, ref


#: AAL (Tzourio-Mazoyer et al. 2002; drawn on Colin27 itself) regions grouped as the
#: default atlas's structures: the independent reference of the atlas placement tests
AAL_GROUPS = {
    "thalamus": ("Thalamus",),
    "insula": ("Insula",),
    "cerebellum": ("Cerebelum",),
    "occipital": ("Calcarine", "Cuneus", "Lingual", "Occipital"),
    "temporal": ("Temporal", "Heschl"),
    "frontal": ("Frontal", "Precentral", "Supp_Motor", "Rectus", "Olfactory"),
    "parietal": ("Parietal", "Postcentral", "SupraMarginal", "Angular", "Precuneus"),
}


def posed_aal(pose: Pose) -> dict:
    """``{(structure, hemisphere): mask}`` of AAL on Colin27, posed as the head is."""
    img = _posed(nb.load(MRICRON / "aal.nii.gz"), pose, order=0)
    aal = np.rint(np.asarray(img.dataobj)).astype(int)
    names = {}
    for line in (MRICRON / "aal.nii.txt").read_text().splitlines():
        if line.strip():
            index, name = line.split()[:2]
            names[int(index)] = name
    out = {}
    for group, prefixes in AAL_GROUPS.items():
        for hemi, suffix in (("left", "_L"), ("right", "_R")):
            keep = [k for k, n in names.items() if n.startswith(prefixes) and n.endswith(suffix)]
            out[(group, hemi)] = np.isin(aal, keep)
    return out


def source_world(pose: Pose, affine, shape) -> np.ndarray:
    """Colin27's own world (MNI) coordinates (X, Y, Z, 3) of every voxel of a posed grid."""
    move = np.eye(4)
    move[:3, :3] = Rotation.from_euler("xyz", pose.rotation_deg, degrees=True).as_matrix()
    move[:3, 3] = pose.shift_mm
    ijk = np.indices(shape).reshape(3, -1).T
    return nb.affines.apply_affine(np.linalg.inv(move) @ affine, ijk).reshape(tuple(shape) + (3,))


def orbits(world) -> np.ndarray:
    """The orbits (eyeball and orbital fat) of Colin27 in its MNI coordinates: ellipsoids
    around (±33, 45, -18) mm with semi-axes 14, 22, 14 mm (read off ch2.nii.gz)."""
    x, y, z = world[..., 0], world[..., 1], world[..., 2]
    return np.any(
        [
            ((x - sx * 33) / 14) ** 2 + ((y - 45) / 22) ** 2 + ((z + 18) / 14) ** 2 <= 1
            for sx in (-1, 1)
        ],
        axis=0,
    )


def dural_patch(pose: Pose, direction=(-0.55, -0.35, 0.76), radius_mm=25.0) -> np.ndarray:
    """Fraction of each posed voxel in a dural patch: on Colin27's 1 mm grid, the layer
    1-3 mm outside BET's brain (the dura under the inner table) within ``radius_mm`` of the
    point where a ray from the brain's centre along ``direction`` (world axes; default: up,
    left and back, over the left parietal convexity) leaves the brain."""
    brain_img = nb.load(BRAIN)
    brain = np.asarray(brain_img.dataobj) > 0
    zooms = brain_img.header.get_zooms()[:3]
    outside = ndi.distance_transform_edt(~brain, sampling=zooms)
    layer = (outside > 1.0) & (outside <= 3.0)
    aff = brain_img.affine
    centre = nb.affines.apply_affine(aff, np.argwhere(brain).mean(axis=0))
    d = np.asarray(direction, float) / np.linalg.norm(direction)
    inv = np.linalg.inv(aff)
    point = centre
    for step in np.arange(0, 150, 0.5):  # walk out until the brain ends
        ijk = np.rint(nb.affines.apply_affine(inv, centre + step * d)).astype(int)
        if not brain[tuple(ijk)]:
            point = centre + step * d
            break
    ijk = np.indices(brain.shape).reshape(3, -1).T
    world = nb.affines.apply_affine(aff, ijk).reshape(brain.shape + (3,))
    near = np.linalg.norm(world - point, axis=-1) <= radius_mm
    patch = nb.Nifti1Image((layer & near).astype(np.float32), aff)
    return np.asarray(_posed(patch, pose, order=1).dataobj)


def dice(a, b) -> float:
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    return 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())
