"""The report's mosaics (pipeline/reports/mosaic.py): slices sampled in world coordinates,
laid out in neurological orientation, the same picture from an oblique grid as from an
axis-aligned one, NaN outside an image's field of view."""

from __future__ import annotations

import nibabel as nb
import numpy as np
import pytest

from pipeline.reports.mosaic import Mosaic, compose, draw, mosaic_for

BLOB = np.array([30.0, 40.0, 10.0])  # right, anterior, superior (mm)


def _blob_img(affine, shape=(60, 70, 60)):
    """A 6 mm Gaussian blob at BLOB, sampled on the grid of ``affine``."""
    ijk = np.indices(shape).reshape(3, -1)
    xyz = affine[:3, :3] @ ijk + affine[:3, 3:]
    d2 = ((xyz - BLOB[:, None]) ** 2).sum(axis=0)
    data = np.exp(-d2 / (2 * 6.0**2)).reshape(shape).astype(np.float32)
    return nb.Nifti1Image(data, affine)


def _axis_aligned():
    return np.array([[3.0, 0, 0, -90], [0, 3.0, 0, -100], [0, 0, 3.0, -80], [0, 0, 0, 1]])


def _oblique(deg=20.0):
    t = np.deg2rad(deg)
    rot = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
    aff = np.eye(4)
    aff[:3, :3] = rot * 3.0
    aff[:3, 3] = [-70, -130, -80]
    return aff


def _centroids(mosaic, img):
    """Centre (row, col) of the blob in each tile, relative to the tile's centre."""
    canvas = np.nan_to_num(mosaic.canvas(img, order=1))
    places, _ = mosaic.layout
    out = {}
    for (axis, _k), (r, c, nr, nc) in places.items():
        tile = canvas[r : r + nr, c : c + nc]
        w = tile > 0.5
        assert w.any(), axis
        rows, cols = np.nonzero(w)
        out[axis] = (rows.mean() - (nr - 1) / 2, cols.mean() - (nc - 1) / 2)
    return out


def _box():
    return Mosaic({ax: [BLOB["xyz".index(ax)]] for ax in "xyz"}, [-80] * 3, [80] * 3, 1.0)


def test_neurological_orientation():
    """Right is right and anterior/superior are up in axial/coronal tiles; anterior is right
    and superior up in sagittal ones (the box is centred on 0, so signs are positions)."""
    c = _centroids(_box(), _blob_img(_axis_aligned()))
    row, col = c["z"]  # axial: x across, y up
    assert col == pytest.approx(BLOB[0], abs=1.5) and row == pytest.approx(-BLOB[1], abs=1.5)
    row, col = c["y"]  # coronal: x across, z up
    assert col == pytest.approx(BLOB[0], abs=1.5) and row == pytest.approx(-BLOB[2], abs=1.5)
    row, col = c["x"]  # sagittal: y across, z up
    assert col == pytest.approx(BLOB[1], abs=1.5) and row == pytest.approx(-BLOB[2], abs=1.5)


def test_oblique_grid_gives_the_same_picture():
    box = _box()
    straight = _centroids(box, _blob_img(_axis_aligned()))
    oblique = _centroids(box, _blob_img(_oblique()))
    for axis in "xyz":
        assert np.allclose(straight[axis], oblique[axis], atol=1.5), (axis, straight, oblique)


def test_outside_the_field_of_view_is_nan_and_black():
    img = _blob_img(_axis_aligned(), shape=(30, 70, 60))  # x from -90 to -3 mm only
    box = _box()
    canvas = box.canvas(img, order=0)
    places, _ = box.layout
    r, c, nr, nc = places[("z", 0)]
    tile = canvas[r : r + nr, c : c + nc]
    assert np.isnan(tile[:, nc // 2 + 5 :]).all()  # x > 5 mm: no image there
    assert np.isfinite(tile[:, : nc // 2 - 5]).all()
    rgb, _ = compose(box, bg=img)
    assert (rgb[r : r + nr, c + nc // 2 + 5 : c + nc] == 0).all()


def test_signed_map_figure_has_a_centred_colour_bar(tmp_path):
    img = _blob_img(_axis_aligned())
    signed = nb.Nifti1Image(img.get_fdata().astype(np.float32) * 2 - 0.5, img.affine)
    cuts = {ax: [BLOB["xyz".index(ax)]] for ax in "xyz"}
    fig = draw(mosaic_for(cuts, img, signed), img, signed, cmap="RdBu_r", vmin=-1.5, vmax=1.5,
               colorbar_label="%")  # fmt:skip
    bar = fig.axes[-1]
    assert bar.get_ylabel() == "%"
    assert bar.get_ylim() == pytest.approx((-1.5, 1.5))
    fig.savefig(tmp_path / "map.png")
    assert (tmp_path / "map.png").read_bytes()[:4] == b"\x89PNG"
