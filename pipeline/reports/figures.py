"""Report figures: registration overlays, map mosaics with colour bars, region and
input-function charts (nilearn, Matplotlib Agg), and the registration similarity (NMI)."""

from __future__ import annotations

import functools
import os
from pathlib import Path

from .cuts import PEAK_INSET_MM, _cuts, distance_in, peak_cuts  # noqa: F401 - re-exported
from .index import (
    Deriv,
)
from .mosaic import _plt  # noqa: F401 - also used by the sections


def _load(path):
    """3-D float32 image with non-finite values set to 0 (first volume of a 4-D file)."""
    import nibabel as nb
    import numpy as np

    img = nb.load(str(path))
    data = np.asarray(img.dataobj, dtype=np.float32)
    if data.ndim == 4:
        data = data[..., 0]
    data = np.where(np.isfinite(data), data, 0).astype(np.float32)
    return nb.Nifti1Image(data, img.affine)


def _apply_rigid(moving_path, fixed_path, xfm_path, tmpdir, interp="linear"):
    """``moving`` resampled onto ``fixed`` through an ANTs transform (antspyx)."""
    import ants

    moving = _load(moving_path)
    tmp_in = Path(tmpdir) / "moving.nii.gz"
    moving.to_filename(tmp_in)
    out = ants.apply_transforms(
        fixed=ants.image_read(str(fixed_path)),
        moving=ants.image_read(str(tmp_in)),
        transformlist=[str(xfm_path)],
        interpolator=interp,
    )
    tmp_out = Path(tmpdir) / f"resampled_{Path(moving_path).name}"
    out.to_file(str(tmp_out))
    return _load(tmp_out)


#: how far outside the brain a displayed map is kept (mm): the meninges, skull and sinuses
HEAD_MARGIN_MM = 15.0


def mask_to_head(img, brain_mask, margin_mm: float = HEAD_MARGIN_MM):
    """``img`` with every voxel farther than ``margin_mm`` from the brain set to 0 (nothing
    drawn there): the background noise of the field of view goes, the extra-cerebral
    bands stay. Unchanged when the mask is missing or on another grid."""
    import nibabel as nb
    import numpy as np

    if brain_mask is None or brain_mask.shape[:3] != img.shape[:3]:
        return img
    brain = np.asarray(brain_mask.dataobj) > 0
    if not brain.any():
        return img
    zooms = np.sqrt((np.asarray(img.affine)[:3, :3] ** 2).sum(axis=0))
    head = distance_in(~brain, zooms) <= margin_mm
    data = np.asarray(img.dataobj, dtype=np.float32).copy()
    data[~head] = 0
    return nb.Nifti1Image(data, img.affine)


def _range(img, mask=None):
    """Colour range of a map: (vmin, vmax, symmetric) from robust percentiles."""
    import numpy as np

    data = np.asarray(img.dataobj)
    vals = data[(data != 0) & np.isfinite(data)] if mask is None else data[mask & (data != 0)]
    if vals.size == 0:
        return 0.0, 1.0, False
    lo, hi = np.percentile(vals, [1, 99])
    if lo < 0 and abs(lo) > 0.1 * max(abs(hi), 1e-12):
        v = float(max(abs(lo), abs(hi))) or 1.0
        return -v, v, True
    hi = float(hi) if hi > 0 else float(vals.max()) or 1.0
    return 0.0, hi, False


def nmi(a, b, mask=None, bins=32) -> float | None:
    """Normalised mutual information (H(A)+H(B))/H(A,B) of two images on one grid
    (1: independent; 2: identical up to a one-to-one intensity mapping)."""
    import numpy as np

    x = np.asarray(a.dataobj, dtype=np.float64)
    y = np.asarray(b.dataobj, dtype=np.float64)
    sel = np.isfinite(x) & np.isfinite(y)
    if mask is not None:
        sel &= mask
    if sel.sum() < 100:
        return None
    hist, _, _ = np.histogram2d(x[sel], y[sel], bins=bins)
    p = hist / hist.sum()
    px, py = p.sum(1), p.sum(0)

    def h(q):
        q = q[q > 0]
        return float(-(q * np.log(q)).sum())

    hxy = h(p.ravel())
    return (h(px) + h(py)) / hxy if hxy > 0 else None


@functools.lru_cache(maxsize=64)
def _template_file(home, template: str, resolution, desc, suffix):
    """:func:`pipeline.templates.get_template_file`, once per process and TemplateFlow home
    (a TemplateFlow query costs about a second; a report asks for the same files often);
    None when TemplateFlow has no such file (remembered too)."""
    from pipeline.templates import get_template_file

    try:
        return get_template_file(template, resolution, desc=desc, suffix=suffix)
    except Exception:  # noqa: BLE001 - the figure is drawn without it
        return None


def _template_query(template: str, resolution, desc=None, suffix=None):
    return _template_file(os.environ.get("TEMPLATEFLOW_HOME"), template, resolution, desc, suffix)


def _template_mask(template: str, ref_img):
    """The template's brain mask from TemplateFlow at the resolution of ``ref_img``."""
    res = int(round(float(ref_img.header.get_zooms()[0])))
    found = (_template_query(template, r, desc="brain", suffix="mask") for r in (res, None))
    return next((f for f in found if f is not None), None)


def _template_t1w(template: str, ref_img):
    res = int(round(float(ref_img.header.get_zooms()[0])))
    tries = ((res, "brain"), (res, None), (None, "brain"))
    found = (_template_query(template, r, desc=d, suffix="T1w") for r, d in tries)
    return next((f for f in found if f is not None), None)


class Figures:
    """Writes figures under ``sub-<label>/figures`` and returns their report-relative path."""

    def __init__(self, out_dir: Path, label: str, dpi: int = 72):
        self.out_dir = out_dir
        self.folder = out_dir / f"sub-{label}" / "figures"
        self.dpi = dpi
        self.written = []

    def path(self, name: str) -> Path:
        return self.folder / name

    def add(self, name: str) -> str:
        self.written.append(self.folder / name)
        return (self.folder / name).relative_to(self.out_dir).as_posix()

    def save_display(self, display, name):
        from pipeline.utils import atomic_output

        with atomic_output(self.folder / name) as tmp:
            display.savefig(str(tmp), dpi=self.dpi)
        display.close()
        return self.add(name)

    def save_before_after(self, fixed_img, moving_img, mask_img, name, labels, cuts=4):
        """fMRIPrep's before/after registration view (niworkflows' ``compose_view``): the
        fixed image, and the moving one fading in while the pointer is over it, in
        ``cuts`` cuts per axis through the mask, each image in its own robust grey range."""
        from niworkflows.viz.utils import compose_view, cuts_from_bbox
        from svgutils.transform import fromstring

        from pipeline.utils import atomic_output

        from .mosaic import mosaic_for, svg_view

        cut_coords = cuts_from_bbox(mask_img, cuts=cuts)
        mosaic = mosaic_for(cut_coords, fixed_img)
        views = [
            fromstring(svg_view(mosaic, img, label, _grey_limits(img)))
            for img, label in zip((fixed_img, moving_img), labels, strict=True)
        ]
        with atomic_output(self.folder / name) as tmp:
            compose_view([views[0]], [views[1]], out_file=str(tmp))
        return self.add(name)

    def save_fig(self, fig, name):
        from pipeline.utils import atomic_output

        plt = _plt()
        with atomic_output(self.folder / name) as tmp:
            fig.savefig(str(tmp), dpi=self.dpi if name.endswith(".png") else None)
        plt.close(fig)
        return self.add(name)


def _grey_limits(img):
    """niworkflows' robust brightness limits (``plot_registration``) of an image's finite
    values (NaN outside a field of view is not a brightness)."""
    import numpy as np
    from niworkflows.viz.utils import robust_set_limits

    data = np.asarray(img.dataobj, dtype=np.float32)
    finite = data[np.isfinite(data)]
    params = robust_set_limits(finite if finite.size else np.zeros(1), {})
    return float(params["vmin"]), float(params["vmax"])


def atlas_colours(labels_img, lut):
    """The atlas relabelled 1..N with one fixed colour per region, and the legend entries
    ``[(name, hemisphere, hex colour)]``: what the overlay shows is what the legend says."""
    import nibabel as nb
    import numpy as np
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap, to_hex

    data = np.asarray(labels_img.dataobj).astype(int)
    present = [int(v) for v in np.unique(data) if v > 0]
    table = lut.set_index("index") if lut is not None and "index" in lut else None
    base = colormaps["tab20"]
    colours = [to_hex(base(i % 20)) for i in range(len(present))]
    relabelled = np.zeros(data.shape, np.int16)
    entries = []
    for i, value in enumerate(present, start=1):
        relabelled[data == value] = i
        name, hemi = str(value), ""
        if table is not None and value in table.index:
            name = str(table.loc[value, "name"]).replace("_", " ")
            hemi = str(table.loc[value].get("hemisphere", "") or "")
            hemi = "" if hemi in ("nan", "n/a", "bilateral") else hemi
        entries.append((name, hemi, colours[i - 1]))
    img = nb.Nifti1Image(relabelled, labels_img.affine)
    return img, ListedColormap(colours), entries


def legend_figure(figs, entries, name, title):
    """A colour key: one swatch per atlas region, in columns."""
    from matplotlib.patches import Patch

    plt = _plt()
    ncol = 3 if len(entries) > 12 else 2
    rows = -(-len(entries) // ncol)
    fig = plt.figure(figsize=(7.5, 0.5 + 0.22 * rows))
    handles = [
        Patch(facecolor=c, edgecolor="none", label=f"{n} ({h})" if h else n) for n, h, c in entries
    ]
    fig.legend(handles=handles, loc="center", ncol=ncol, fontsize=7, frameon=False, title=title,
               title_fontsize=8)  # fmt:skip
    return figs.save_fig(fig, name)


def _anat_figure(
    figs,
    bg,
    name,
    title,
    contours=None,
    edges=None,
    rois=None,
    cuts=4,
    cut_mask=None,
    vmax=None,
    tissues=None,
    outlines=None,
    rois_cmap=None,
):
    """T1w-like image with contours (a mask), edges (another image), an ROI overlay, the
    boundaries of a tissue segmentation (1 CSF, 2 GM, 3 WM) or ``outlines`` (``{colour:
    mask image}``, e.g. the extra-cerebral bands); axial, coronal and sagittal rows of
    ``cuts`` slices spread over ``cut_mask`` (or ``contours``, or the image)."""
    from .mosaic import cuts_over, draw, mosaic_for, robust_limits

    bg = _as_image(bg)
    coords = _cuts(cut_mask if cut_mask is not None else contours, cuts)
    if not isinstance(coords, dict):
        coords = cuts_over(bg, cuts)
    mosaic = mosaic_for(coords, bg)
    lines = []
    if contours is not None:
        lines.append((contours, 0.5, "red"))
    if tissues is not None:
        lines += [(tissues, 1.5, "deepskyblue"), (tissues, 2.5, "yellow")]
    lines += [(img, 0.5, colour) for colour, img in (outlines or {}).items()]
    overlay = {}
    if rois is not None:
        from matplotlib import colormaps

        cmap = rois_cmap if rois_cmap is not None else colormaps["tab20"]
        overlay = dict(overlay=rois, cmap=cmap, vmin=0.5, vmax=cmap.N + 0.5, threshold=0.5,
                       alpha=0.45)  # fmt:skip
    limits = None
    if vmax is not None:
        import numpy as np

        limits = (robust_limits(np.asarray(bg.dataobj, np.float32))[0], float(vmax))
    fig = draw(mosaic, bg, contours=lines, edges=edges, title=title, bg_limits=limits,
               dpi=figs.dpi, **overlay)  # fmt:skip
    return figs.save_fig(fig, name)


def _as_image(img):
    import nibabel as nb

    return nb.load(img) if not hasattr(img, "affine") else img


#: colours of the extra-cerebral ROI outlines in the report (name prefix or names -> colour)
BAND_COLOURS = {"meningeal": "lime", "calvarial": "orange", "sinus": "magenta"}


def band_outlines(rois_img, lut) -> dict:
    """``{colour: mask image}`` of the meningeal and calvarial bands and the sinuses of an
    extra-cerebral ROI map and its label table."""
    import nibabel as nb
    import numpy as np

    from pipeline.rois import SINUSES

    data = np.asarray(rois_img.dataobj).astype(int)
    names = lut["name"].astype(str)
    groups = {
        "meningeal": names.str.startswith("meningeal_"),
        "calvarial": names.str.startswith("calvarial_"),
        "sinus": names.isin([n for n, _ in SINUSES]),
    }
    out = {}
    for group, sel in groups.items():
        mask = np.isin(data, lut.loc[sel, "index"].to_numpy())
        if mask.any():
            out[BAND_COLOURS[group]] = nb.Nifti1Image(mask.astype(np.uint8), rois_img.affine)
    return out


def _map_figure(figs, img, bg, name, title, units="", cuts=4, cut_mask=None):
    """A quantitative map over an anatomical background, with a colour bar in its units:
    axial, coronal and sagittal rows of ``cuts`` slices, one of each through the region of
    largest |value| (:func:`peak_cuts`, named in the title); a diverging scale centred on 0
    for signed maps."""
    from matplotlib import colormaps
    from nilearn.plotting.cm import cold_hot

    from .mosaic import cuts_over, draw, mosaic_for

    img = _as_image(img)
    bg = _as_image(bg) if bg is not None else None
    vmin, vmax, sym = _range(img)
    coords, peak = peak_cuts(img, cut_mask, cuts)
    where = f"; peak |value| at ({peak[0]:.0f}, {peak[1]:.0f}, {peak[2]:.0f}) mm" if peak else ""
    if not isinstance(coords, dict):
        coords = cuts_over(bg if bg is not None else img, cuts)
    mosaic = mosaic_for(coords, *([bg] if bg is not None else []), img)
    fig = draw(
        mosaic,
        bg,
        img,
        cmap=cold_hot if sym else colormaps["inferno"],
        vmin=-abs(vmax) if sym else vmin,
        vmax=vmax,
        threshold=abs(vmax) * 1e-4,
        title=f"{title}" + (f" [{units}]" if units else "") + where,
        colorbar_label=units or "value",
        dpi=figs.dpi,
    )
    return figs.save_fig(fig, name)


def _read_table(path):
    import pandas as pd

    try:
        return pd.read_csv(path, sep="\t", na_values=["n/a"], keep_default_na=False)
    except Exception:  # noqa: BLE001 - an unreadable table is reported, not fatal
        return None


def _region_chart(figs, tsv: Deriv, title_extra=""):
    """Bar chart of a regional table: mean ± sd per ROI, ipsi/contra (or left/right), ROIs
    without a value left out, names in words, the table's units on the axis."""
    import numpy as np
    import pandas as pd

    df = _read_table(tsv.path)
    if df is None or df.empty or not {"roi", "hemisphere", "mean"} <= set(df.columns):
        return None, "table unreadable or empty"
    hemis = set(df["hemisphere"].astype(str))
    sides = ("ipsi", "contra") if {"ipsi", "contra"} <= hemis else ("left", "right")
    df = df[np.isfinite(pd.to_numeric(df["mean"], errors="coerce"))]  # empty ROIs: no bar
    if df.empty:
        return None, "no ROI with a value"
    rois = []
    for roi in df["roi"].astype(str):
        if roi not in rois:
            rois.append(roi)
    vals = {s: [] for s in (*sides, "bilateral")}
    errs = {s: [] for s in vals}
    ai = []
    for roi in rois:
        sub = df[df["roi"].astype(str) == roi]
        for s in vals:
            row = sub[sub["hemisphere"].astype(str) == s]
            vals[s].append(float(row["mean"].iloc[0]) if len(row) else np.nan)
            errs[s].append(
                float(row["sd"].iloc[0])
                if len(row) and "sd" in row and np.isfinite(row["sd"].iloc[0])
                else 0.0
            )
        row = sub[sub["hemisphere"].astype(str) == "AI"]
        ai.append(float(row["mean"].iloc[0]) if len(row) else np.nan)
    plt = _plt()
    n = len(rois)
    fig, ax = plt.subplots(figsize=(7.5, 1.0 + 0.26 * n))
    y = np.arange(n)
    colors = {sides[0]: "#d6604d", sides[1]: "#4393c3", "bilateral": "#7f7f7f"}
    off = {sides[0]: -0.2, sides[1]: 0.2, "bilateral": 0.0}
    for s in vals:
        v = np.asarray(vals[s])
        ok = np.isfinite(v)
        if not ok.any():
            continue
        ax.barh(
            y[ok] + off[s],
            v[ok],
            height=0.38 if s != "bilateral" else 0.5,
            color=colors[s],
            label=s,
        )
        ax.errorbar(
            v[ok],
            y[ok] + off[s],
            xerr=np.asarray(errs[s])[ok],
            fmt="none",
            ecolor="k",
            elinewidth=0.6,
            alpha=0.6,
        )
    for i, a in enumerate(ai):
        if np.isfinite(a):
            ax.annotate(
                f"AI {a:+.2f}",
                (1.0, y[i]),
                xycoords=("axes fraction", "data"),
                xytext=(4, 0),
                textcoords="offset points",
                va="center",
                fontsize=7,
            )
    ax.set_yticks(y)
    ax.set_yticklabels([r.replace("_", " ") for r in rois], fontsize=7)
    ax.invert_yaxis()
    ax.axvline(0, color="k", lw=0.5)
    metric = str(df["metric"].iloc[0]) if "metric" in df else tsv.get("desc", "")
    units = tsv.sidecar().get("Units")
    unit_text = f" [{units}]" if units else ""
    ax.set_xlabel(f"{metric}{unit_text} (mean ± sd over voxels)", fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    # the legend above the bars, never over them
    ax.legend(
        fontsize=7, loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=3, frameon=False,
        borderaxespad=0.2,
    )  # fmt:skip
    side = tsv.sidecar().get("HeadacheSide")
    ax.set_title(
        f"{tsv.get('atlas', '')} {metric}{title_extra}"
        + (f" (headache side: {side})" if side not in (None, "", "n/a", "none") else ""),
        fontsize=9,
        pad=16,
    )
    fig.tight_layout()
    return figs.save_fig(fig, f"{tsv.stem}_chart.svg"), None


def _vif_chart(figs, tsv: Deriv):
    df = _read_table(tsv.path)
    if df is None or "time_s" not in df:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 2.6))
    for col in df.columns:
        if col != "time_s":
            ax.plot(df["time_s"] / 60, df[col], marker="o", ms=2.5, lw=1, label=col)
    ax.set_xlabel("time (min)", fontsize=8)
    ax.set_ylabel("concentration (mM)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7, frameon=False)
    ax.set_title("input function", fontsize=9)
    fig.tight_layout()
    return figs.save_fig(fig, f"{tsv.stem}_chart.svg")
