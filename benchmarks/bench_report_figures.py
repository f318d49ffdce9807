"""Benchmark: the report's figures drawn by inflamap's mosaics against nilearn's.

    python benchmarks/bench_report_figures.py [--resolution 3] [--repeat 5]

A signed map (a smooth blob in noise) over an anatomical background on a ``resolution`` mm
grid of a 180 x 216 x 180 mm head box. Timed ``repeat`` times each, CPU seconds:

* a map figure as the report draws it (``pipeline.reports.mosaic.draw``: axial, coronal and
  sagittal rows of 4 cuts, a colour bar, PNG at 72 dpi), against nilearn's
  ``plot_stat_map(display_mode="mosaic")`` at the same cuts (what the report used before);
* a before/after registration view (``Figures.save_before_after``: two grey mosaics in
  niworkflows' ``compose_view``), against what the report did before: per image, three
  nilearn ``plot_anat`` rows turned into SVG at 150 dpi (niworkflows' ``extract_svg``).

Prints both per-figure times, their ratios and the machine load. Target (issue 17): the
before/after view >= 3x; the map figure is reported (no target: at 3 mm nilearn is as fast).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import nibabel as nb
import numpy as np


def _images(resolution: float):
    shape = tuple(int(round(e / resolution)) for e in (180, 216, 180))
    aff = np.diag([resolution] * 3 + [1.0])
    aff[:3, 3] = [-90, -126, -72]
    ijk = np.indices(shape).reshape(3, -1)
    xyz = (aff[:3, :3] @ ijk + aff[:3, 3:]).reshape((3, *shape))
    head = ((xyz / np.array([70.0, 90.0, 70.0])[:, None, None, None]) ** 2).sum(0) < 1
    rng = np.random.default_rng(0)
    bg = np.where(head, 100 + 20 * rng.standard_normal(shape), 0).astype(np.float32)
    blob = 6 * np.exp(-((xyz - np.array([30, -40, 10])[:, None, None, None]) ** 2).sum(0) / 50)
    stat = np.where(head, rng.standard_normal(shape) + blob, np.nan).astype(np.float32)
    return (
        nb.Nifti1Image(bg, aff),
        nb.Nifti1Image(stat, aff),
        nb.Nifti1Image(head.astype(np.uint8), aff),
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resolution", type=float, default=3.0)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)

    from nilearn import plotting

    from pipeline.reports.cuts import peak_cuts
    from pipeline.reports.figures import Figures
    from pipeline.reports.mosaic import draw, mosaic_for

    bg, stat, mask = _images(args.resolution)
    cuts, _ = peak_cuts(stat, mask, 4)
    with tempfile.TemporaryDirectory() as tmp:
        figs = Figures(Path(tmp), "bench")
        figs.folder.mkdir(parents=True)
        timings = {}

        def timed(key, fn):
            fn(-1)  # warm-up: imports, caches
            t0 = time.process_time()
            for i in range(args.repeat):
                fn(i)
            timings[key] = (time.process_time() - t0) / args.repeat

        def ours_map(i):
            fig = draw(mosaic_for(cuts, bg, stat), bg, stat, cmap="RdBu_r", vmin=-6, vmax=6,
                       threshold=6e-4, title="benchmark [z]", colorbar_label="z")  # fmt:skip
            figs.save_fig(fig, f"m{i}.png")

        def nilearn_map(i):
            display = plotting.plot_stat_map(
                stat, bg_img=bg, display_mode="mosaic", cut_coords=cuts, colorbar=True,
                cmap="cold_hot", symmetric_cbar=True, draw_cross=False, black_bg=True,
                title="benchmark [z]",
            )  # fmt:skip
            figs.save_display(display, f"n{i}.png")

        def ours_view(i):
            figs.save_before_after(bg, bg, mask, f"v{i}.svg", ("fixed", "moving"))

        def panels_view(i):
            from niworkflows.viz.utils import compose_view, cuts_from_bbox, extract_svg
            from svgutils.transform import fromstring

            cut_coords = cuts_from_bbox(mask, cuts=4)
            views = []
            for label in ("fixed", "moving"):
                rows = []
                for k, mode in enumerate(("z", "x", "y")):
                    display = plotting.plot_anat(
                        bg, display_mode=mode, cut_coords=cut_coords[mode],
                        title=label if k == 0 else None, colorbar=False,
                    )  # fmt:skip
                    rows.append(fromstring(extract_svg(display, dpi=150)))
                    display.close()
                views.append(rows)
            compose_view(views[0], views[1], out_file=str(Path(tmp) / f"p{i}.svg"))

        timed("ours_map", ours_map)
        timed("nilearn_map", nilearn_map)
        timed("ours_view", ours_view)
        timed("panels_view", panels_view)
    load = os.getloadavg()[0]
    t = timings
    print(f"grid {args.resolution:g} mm {bg.shape}, {args.repeat} figures each, CPU s per figure")
    print(f"map figure       : inflamap {t['ours_map']:.3f}  nilearn {t['nilearn_map']:.3f}  "
          f"ratio {t['nilearn_map'] / t['ours_map']:.1f}x (reported)")  # fmt:skip
    print(f"before/after view: inflamap {t['ours_view']:.3f}  before {t['panels_view']:.3f}  "
          f"ratio {t['panels_view'] / t['ours_view']:.1f}x (target >= 3x)")  # fmt:skip
    print(f"machine load     : {load:.2f} (1-min average, {os.cpu_count()} cores)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
