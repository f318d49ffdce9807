"""Report mosaics drawn as one picture: axial, coronal and sagittal rows of slices through
given world coordinates, a background, an overlay (a map or labels) and outlines.

nilearn's ``display_mode="mosaic"`` draws every slice in its own matplotlib Axes (13 with a
colour bar), each building tick objects it never shows: a participant report spent about
60 % of its time there (cProfile: 1,090 Axes, 4,874 ticks, 29 of 48 s). Here each slice is
sampled from the images in world coordinates (any affine, oblique included; NaN outside an
image's field of view), the slices are laid side by side in one array, and the figure has
one Axes for the picture and one for the colour bar. The slices are sampled at a step that
gives ~180 pixels across a slice, at least the image's own voxel: a 3 mm map is as crisp as
a 1 mm one, and voxels stay visible as blocks (the overlay is sampled nearest-neighbour, as
nilearn draws it).

Conventions (as nilearn's): neurological orientation (the left hemisphere on the left,
labelled L/R), anterior up in axial slices, anterior right in sagittal ones.
"""

from __future__ import annotations

import numpy as np

#: pixels across the widest slice
SLICE_PIXELS = 180
#: background pixels between slices and rows
GAP = 4
#: display axes (horizontal, vertical) of each cut axis, and the row order (top to bottom)
PLANES = {"z": (0, 1), "y": (0, 2), "x": (1, 2)}
ROWS = ("z", "y", "x")


def _plt():
    """pyplot with the Agg backend, SVG text kept as text."""
    import matplotlib  # noqa: ICN001

    if matplotlib.get_backend().lower() != "agg":
        matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams["svg.fonttype"] = "none"  # labels stay text: searchable, smaller files

    return plt


def _as_img(img):
    import nibabel as nb

    return nb.load(img) if not hasattr(img, "affine") else img


def _data(img) -> np.ndarray:
    return np.asarray(img.dataobj, dtype=np.float32).reshape(img.shape[:3])


def _extent(img, data: np.ndarray, margin_mm: float = 4.0):
    """World bounding box (lo, hi) of the non-zero finite voxels of ``data``."""
    ijk = np.argwhere(np.isfinite(data) & (data != 0))
    if len(ijk) == 0:
        ijk = np.argwhere(np.ones(data.shape, bool))
    corners = np.array([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)], float)
    lo_ijk, hi_ijk = ijk.min(axis=0), ijk.max(axis=0)
    box = lo_ijk + corners * (hi_ijk - lo_ijk)
    xyz = box @ img.affine[:3, :3].T + img.affine[:3, 3]
    return xyz.min(axis=0) - margin_mm, xyz.max(axis=0) + margin_mm


def _sample(data, affine, axis: str, coord: float, grid, order: int) -> np.ndarray:
    """The slice ``axis = coord`` of an image on the world grid ``grid`` ((h, v) arrays of
    one display plane); NaN outside the image."""
    from scipy import ndimage

    i = "xyz".index(axis)
    h, v = PLANES[axis]
    hh, vv = grid
    world = np.empty((3, hh.size))
    world[i] = coord
    world[h] = hh.ravel()
    world[v] = vv.ravel()
    inv = np.linalg.inv(affine)
    ijk = inv[:3, :3] @ world + inv[:3, 3:]
    out = ndimage.map_coordinates(
        data,
        ijk,
        order=order,
        mode="constant",
        cval=np.nan,
        prefilter=False,
    )
    return out.reshape(hh.shape)[::-1]  # row 0 at the top: vertical axis upwards


class Mosaic:
    """The slices of one figure: ``cuts`` ({"x": [...], "y": [...], "z": [...]}, world mm)
    inside the box ``(lo, hi)`` (world mm), sampled every ``step`` mm."""

    def __init__(self, cuts: dict, lo, hi, step: float):
        self.cuts = {ax: [float(c) for c in cuts[ax]] for ax in ROWS if len(cuts.get(ax, ()))}
        self.lo, self.hi, self.step = np.asarray(lo, float), np.asarray(hi, float), float(step)
        self.grids = {}
        for ax in self.cuts:
            h, v = PLANES[ax]
            hs = np.arange(self.lo[h], self.hi[h] + step / 2, step)
            vs = np.arange(self.lo[v], self.hi[v] + step / 2, step)
            self.grids[ax] = np.meshgrid(hs, vs)
        self.layout = self._layout()

    def _layout(self):
        """``{(axis, k): (row0, col0, rows, cols)}`` and the canvas shape."""
        places, top = {}, 0
        widths = {
            ax: len(self.cuts[ax]) * (g[0].shape[1] + GAP) - GAP for ax, g in self.grids.items()
        }
        width = max(widths.values())
        for ax in self.cuts:
            rows, cols = self.grids[ax][0].shape
            left = (width - widths[ax]) // 2
            for k in range(len(self.cuts[ax])):
                places[(ax, k)] = (top, left + k * (cols + GAP), rows, cols)
            top += rows + GAP
        return places, (top - GAP, width)

    def canvas(self, img, order: int) -> np.ndarray:
        """The image's slices laid out (NaN between slices and outside the image)."""
        img = _as_img(img)
        data = _data(img)
        places, shape = self.layout
        out = np.full(shape, np.nan, np.float32)
        for (ax, k), (r, c, nr, nc) in places.items():
            out[r : r + nr, c : c + nc] = _sample(
                data, img.affine, ax, self.cuts[ax][k], self.grids[ax], order
            )
        return out


def mosaic_for(cuts: dict, *imgs, n_pixels: int = SLICE_PIXELS) -> Mosaic:
    """A :class:`Mosaic` covering the non-zero voxels of the first image (the background),
    or of the others when there is none, at ~``n_pixels`` across its widest slice."""
    from nibabel.affines import voxel_sizes

    imgs = [_as_img(i) for i in imgs if i is not None]
    lo, hi = _extent(imgs[0], _data(imgs[0]))
    for img in imgs[1:]:  # the overlay's finite voxels too, when they go beyond
        a, b = _extent(img, _data(img))
        lo, hi = np.minimum(lo, a), np.maximum(hi, b)
    finest = min(float(voxel_sizes(i.affine).min()) for i in imgs)
    step = max(float((hi - lo).max()) / n_pixels, min(finest, 1.0) / 2)
    return Mosaic(cuts, lo, hi, step)


def cuts_over(img, n: int) -> dict:
    """``n`` cuts per axis spread over the non-zero finite voxels of ``img`` (between their
    8th and 92nd percentiles), for when no mask gives them."""
    img = _as_img(img)
    data = _data(img)
    ijk = np.argwhere(np.isfinite(data) & (data != 0))
    if len(ijk) < 10:
        ijk = np.argwhere(np.ones(data.shape, bool))
    xyz = ijk @ img.affine[:3, :3].T + img.affine[:3, 3]
    return {ax: np.linspace(*np.percentile(xyz[:, i], [8, 92]), n) for i, ax in enumerate("xyz")}


def robust_limits(values: np.ndarray, lo: float = 2.0, hi: float = 99.5):
    """Percentile brightness limits of the finite, non-zero values."""
    v = values[np.isfinite(values) & (values != 0)]
    if v.size == 0:
        return 0.0, 1.0
    a, b = np.percentile(v, [lo, hi])
    return float(a), float(b if b > a else a + 1.0)


def _edges(canvas: np.ndarray) -> np.ndarray:
    """Boolean edges of an image's canvas (Canny), masked where there are none: the
    strongest tenth of the gradients inside the head, not the noise around it."""
    from scipy import ndimage
    from skimage.feature import canny

    lo, hi = robust_limits(canvas)
    img = np.clip(np.nan_to_num(canvas, nan=lo), lo, hi)
    head = np.isfinite(canvas) & (img > lo + 0.15 * (hi - lo))
    smooth = ndimage.gaussian_filter(img, 1.0)
    mag = np.hypot(ndimage.sobel(smooth, 0), ndimage.sobel(smooth, 1))
    if head.sum() < 10:
        return np.zeros(canvas.shape, bool)
    low, high = np.percentile(mag[head], [60, 80])
    found = canny(img, sigma=1.0, low_threshold=low, high_threshold=high)
    return found & ndimage.binary_dilation(head, iterations=2)


def compose(
    mosaic: Mosaic,
    bg=None,
    overlay=None,
    *,
    cmap="inferno",
    vmin=None,
    vmax=None,
    threshold=None,
    alpha: float = 1.0,
    overlay_order: int = 0,
    contours=(),
    edges=None,
    bg_limits=None,
):
    """The mosaic as one RGB picture (float, 0-1): the background in grey (black where it
    is NaN), the overlay (``|value| < threshold`` and NaN transparent) in ``cmap`` over it
    with ``alpha``, the one-pixel outlines of ``contours`` (``[(image, level, colour)]``:
    where the image exceeds ``level``) and the edges of the image ``edges`` (Canny, red).
    Returns ``(rgb, norm)``, ``norm`` the overlay's value -> colour scale (None without)."""
    from matplotlib import colormaps
    from matplotlib.colors import Normalize, to_rgb
    from scipy import ndimage

    _, shape = mosaic.layout
    rgb = np.zeros(shape + (3,), np.float32)
    if bg is not None:
        bgc = mosaic.canvas(bg, order=1)
        lo, hi = bg_limits if bg_limits is not None else robust_limits(bgc)
        grey = np.clip((np.nan_to_num(bgc, nan=lo) - lo) / max(hi - lo, 1e-12), 0, 1)
        rgb[:] = grey[..., None]
    norm = None
    if overlay is not None:
        cmap = colormaps[cmap] if isinstance(cmap, str) else cmap
        fg = mosaic.canvas(overlay, order=overlay_order)
        show = np.isfinite(fg)
        if threshold is not None:
            show &= np.abs(np.nan_to_num(fg)) >= threshold
        finite = fg[np.isfinite(fg)]
        lo = vmin if vmin is not None else (float(finite.min()) if finite.size else 0.0)
        hi = vmax if vmax is not None else (float(finite.max()) if finite.size else 1.0)
        norm = Normalize(lo, hi if hi > lo else lo + 1.0, clip=True)
        colour = cmap(norm(fg[show]))[:, :3].astype(np.float32)
        rgb[show] = alpha * colour + (1 - alpha) * rgb[show]
    for img, level, colour in contours:
        inside = np.nan_to_num(mosaic.canvas(img, order=0), nan=-np.inf) > level
        rgb[inside & ~ndimage.binary_erosion(inside)] = to_rgb(colour)
    if edges is not None:
        rgb[_edges(mosaic.canvas(edges, order=1))] = (1.0, 0.0, 0.0)
    return rgb, norm


def draw(
    mosaic: Mosaic,
    bg=None,
    overlay=None,
    *,
    cmap="inferno",
    title: str = "",
    colorbar_label: str | None = None,
    dpi: int = 72,
    **layers,
):
    """The figure of a mosaic (:func:`compose`; ``layers`` are its keywords), pixel for
    pixel: a white-on-black title, L/R and coordinate labels, and a colour bar labelled
    ``colorbar_label`` when that is given. Returns the matplotlib figure."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable

    plt = _plt()
    rgb, norm = compose(mosaic, bg, overlay, cmap=cmap, **layers)
    places, (height, width) = mosaic.layout
    title_px, bar_px = 22, (70 if colorbar_label is not None and norm is not None else 0)
    fig = plt.figure(
        figsize=((width + bar_px) / dpi, (height + title_px) / dpi), dpi=dpi, facecolor="black"
    )
    ax = fig.add_axes((0, 0, width / (width + bar_px), height / (height + title_px)))
    ax.set_axis_off()
    ax.imshow(rgb, interpolation="none", aspect="equal")
    text = dict(color="white", fontsize=8, va="top")
    for (axis, k), (r, c, nr, nc) in places.items():
        coord = mosaic.cuts[axis][k]
        ax.text(c + 2, r + nr - 2, f"{axis}={coord:.0f}", va="bottom", color="white", fontsize=8)
        if axis in ("y", "z"):
            ax.text(c + 2, r + 2, "L", **text)
            ax.text(c + nc - 3, r + 2, "R", ha="right", **text)
    if title:
        fig.text(0.005, 1 - 3 / (height + title_px), title, color="white", fontsize=10, va="top")
    if bar_px:
        cax = fig.add_axes(
            (
                (width + 8) / (width + bar_px),
                0.1 * height / (height + title_px),
                14 / (width + bar_px),
                0.8 * height / (height + title_px),
            )
        )
        cmap = colormaps[cmap] if isinstance(cmap, str) else cmap
        bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), cax=cax)
        bar.ax.tick_params(colors="white", labelsize=7)
        bar.outline.set_edgecolor("white")
        bar.set_label(colorbar_label, color="white", fontsize=8)
    return fig


def svg_view(mosaic: Mosaic, img, label: str, limits) -> str:
    """One image of a before/after registration view as a standalone SVG: the mosaic in
    grey between ``limits`` (a PNG inside the SVG), its label and the cut coordinates as
    text (niworkflows' ``compose_view`` stacks two of them and fades one in)."""
    import base64
    import io
    from html import escape

    from PIL import Image

    rgb, _ = compose(mosaic, img, bg_limits=limits)
    places, (height, width) = mosaic.layout
    buf = io.BytesIO()
    grey = (rgb[..., 0] * 255 + 0.5).astype(np.uint8)  # one channel: a third of the bytes
    Image.fromarray(grey, mode="L").save(buf, format="PNG")
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    top = 20
    texts = [f'<text x="4" y="15" font-size="13">{escape(label)}</text>']
    for (axis, k), (r, c, nr, _) in places.items():
        texts.append(
            f'<text x="{c + 2}" y="{top + r + nr - 3}" font-size="10">'
            f"{axis}={mosaic.cuts[axis][k]:.0f}</text>"
        )
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        f'viewBox="0 0 {width} {height + top}" width="{width}px" height="{height + top}px">'
        f'<rect width="{width}" height="{height + top}" fill="black"/>'
        f'<image x="0" y="{top}" width="{width}" height="{height}" '
        f'xlink:href="data:image/png;base64,{data}"/>'
        f'<g fill="white" font-family="sans-serif">{"".join(texts)}</g></svg>'
    )
