"""The reference demo's geometry: the scanner grid, a participant's head (the anatomy under
a smooth random diffeomorphism and a scaling), effect codes, and partial volume by box
averaging of sub-voxels."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from .anatomy import (
    ACA_BIT,
    LOBES,
    TISSUE,
    region_value,
)
from .physiology import CODE_STRIDE, EFFECTS

#: scanner field of view (mm, RAS): lower corner and size
FOV_LO = np.array([-96.0, -132.0, -80.0])
FOV_MM = np.array([192.0, 228.0, 184.0])


# ----------------------------------------------------------------------------- geometry
def acquisition_grid(res: float):
    shape = tuple(int(np.ceil(s / res)) for s in FOV_MM)
    aff = np.diag([res, res, res, 1.0])
    aff[:3, 3] = FOV_LO + res / 2
    return shape, aff


class Head:
    """One participant: the anatomy under a smooth random diffeomorphism and a scaling.

    ``anatomy_mm(subject_mm)`` maps a point of the participant's head (its own frame,
    before any head motion) to the anatomy: ``a = u + d(u)``, ``u = subject / scale``, with
    ``d`` the displacement of ``exp(v)`` (scaling and squaring of a stationary velocity
    field ``v`` on a coarse grid).
    """

    SPACING = 6.0  # mm, coarse grid of the velocity field

    def __init__(self, rng, anatomy, warp_mm=3.0, smooth_mm=14.0, squarings=6):
        self.anatomy = anatomy
        self.scale = rng.uniform(0.94, 1.06, 3)
        lo = FOV_LO - 20
        shape = tuple(int(np.ceil((FOV_MM[i] + 40) / self.SPACING)) + 1 for i in range(3))
        self.grid_lo = lo
        v = rng.normal(size=(3, *shape))
        sigma = smooth_mm / self.SPACING
        v = np.stack([ndi.gaussian_filter(c, sigma) for c in v])
        v *= warp_mm / np.sqrt((v**2).sum(0)).mean()  # mean |v| = warp_mm
        d = v / 2**squarings
        idx = np.indices(shape, dtype=float)
        for _ in range(squarings):
            at = idx + d / self.SPACING
            d = d + np.stack([ndi.map_coordinates(c, at, order=1, mode="nearest") for c in d])
        self.disp = d.astype(np.float32)
        grads = [np.gradient(d[i], self.SPACING) for i in range(3)]
        jac = np.array([[grads[i][j] for j in range(3)] for i in range(3)])
        jac = jac + np.eye(3)[:, :, None, None, None]
        self.min_jacobian = float(np.linalg.det(np.moveaxis(jac, (0, 1), (-2, -1))).min())
        self.max_displacement_mm = float(np.sqrt((d**2).sum(0)).max())

    def anatomy_mm(self, pts):
        """(3, n) participant mm -> (3, n) anatomy mm."""
        u = pts / self.scale[:, None]
        at = (u - self.grid_lo[:, None]) / self.SPACING
        return u + np.stack(
            [ndi.map_coordinates(c, at, order=1, mode="nearest") for c in self.disp]
        )

    def sample(self, world_from_subject, shape, affine, k, chunk=16):
        """Tissue and region labels of the fine grid (``shape * k``) of an acquisition grid
        ``(shape, affine)``, with the head at ``world_from_subject``.

        The warp is evaluated at the acquisition voxel centres and carried to the sub-voxels
        by the pose and scaling alone (its gradient is below 0.2: < 0.3 mm at 3 mm voxels).
        """
        inv_a = np.linalg.inv(self.anatomy.affine)
        subj_from_world = np.linalg.inv(world_from_subject)
        packed = self.packed
        fshape = tuple(s * k for s in shape)
        out = np.zeros(fshape, np.uint16)
        sub = (np.arange(k) + 0.5) / k - 0.5
        offs = np.stack(np.meshgrid(sub, sub, sub, indexing="ij")).reshape(3, -1)
        # sub-voxel offsets in anatomy voxels (pose rotation, scaling, grid spacing)
        lin = inv_a[:3, :3] @ np.diag(1 / self.scale) @ subj_from_world[:3, :3] @ affine[:3, :3]
        doff = lin @ offs  # (3, k^3)
        jy, jz = np.arange(shape[1]), np.arange(shape[2])
        for i0 in range(0, shape[0], chunk):
            i1 = min(shape[0], i0 + chunk)
            grid = np.stack(np.meshgrid(np.arange(i0, i1), jy, jz, indexing="ij")).reshape(3, -1)
            world = affine[:3, :3] @ grid + affine[:3, 3:4]
            subj = subj_from_world[:3, :3] @ world + subj_from_world[:3, 3:4]
            avox = inv_a[:3, :3] @ self.anatomy_mm(subj) + inv_a[:3, 3:4]
            pts = (avox[:, :, None] + doff[:, None, :]).reshape(3, -1)
            lab = ndi.map_coordinates(packed, pts, order=0, cval=0)
            # (vox, sub) -> fine grid
            lab = lab.reshape(i1 - i0, shape[1], shape[2], k, k, k)
            out[i0 * k : i1 * k] = lab.transpose(0, 3, 1, 4, 2, 5).reshape(
                (i1 - i0) * k, fshape[1], fshape[2]
            )
        return (out % 256).astype(np.uint8), (out // 256).astype(np.uint8)

    @property
    def packed(self):
        if getattr(self, "_packed", None) is None:
            self._packed = self.anatomy.tissues + 256 * self.anatomy.regions.astype(np.uint16)
        return self._packed


def region_match(regions, region: str, side: str):
    """Fine voxels of ``region`` (a lobe or ``aca``) on ``side`` (left, right, both)."""
    lobe_val = regions % ACA_BIT
    sides = ("left", "right") if side == "both" else (side,)
    if region == "aca":
        sel = regions >= ACA_BIT
        hemi = np.isin(lobe_val, [region_value(lb, s) for lb in LOBES for s in sides])
        return sel & hemi
    return np.isin(lobe_val, [region_value(region, s) for s in sides])


def codes_of(tissues, regions, headache_side: str):
    """Per fine voxel: tissue + CODE_STRIDE x (bits of the planted effects covering it)."""
    code = tissues.astype(np.uint16)
    for b, eff in enumerate(EFFECTS):
        side = headache_side if eff["side"] == "headache" else "both"
        sel = region_match(regions, eff["region"], side)
        sel &= np.isin(tissues, [TISSUE[t] for t in eff["tissues"]])
        code[sel] += CODE_STRIDE << b
    return code


def _compact(code):
    """``np.unique(code, return_inverse=True)`` for small non-negative integers, fast."""
    present = np.flatnonzero(np.bincount(code.ravel()))
    lut = np.zeros(int(present[-1]) + 1, np.int64)
    lut[present] = np.arange(len(present))
    return present, lut[code]


def fractions(code, shape, k):
    """``(present codes, (n_voxels, n_codes) volume fractions)`` of each acquisition voxel."""
    present, inverse = _compact(code)
    vox = (
        np.arange(int(np.prod(shape)))
        .reshape(shape)
        .repeat(k, 0)
        .repeat(k, 1)
        .repeat(k, 2)
        .ravel()
    )
    counts = np.bincount(
        vox * len(present) + inverse.ravel(), minlength=int(np.prod(shape)) * len(present)
    )
    frac = counts.reshape(-1, len(present)).astype(np.float32) / k**3
    return present, frac


def region_counts(regions, code):
    """``(present codes, counts[region value, code index])`` of a fine sampling."""
    present, inverse = _compact(code)
    flat = regions.astype(np.int64).ravel() * len(present) + inverse.ravel()
    counts = np.bincount(flat, minlength=128 * len(present)).reshape(128, len(present))
    return present, counts
