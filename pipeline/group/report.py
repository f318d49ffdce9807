"""Group HTML report: forest plots, paired/box strip plots, glass brains (jinja2 template).

Figures are PNG files in ``group/figures/`` beside ``group/group.html``, drawn with
matplotlib's object API (no display needed) and nilearn's ``plot_glass_brain``; the page is
rendered from ``pipeline/reports/templates/group.html.j2``.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from .. import __version__
from ..derivatives.registry import table_units
from ..reports.references import REFERENCES
from ..utils import atomic_output, atomic_write_text
from .contrasts import UNIT

TEMPLATES = Path(__file__).parents[1] / "reports" / "templates"
SIG_COLOUR, NS_COLOUR = "#c0392b", "#7f8c8d"
STRIP_TYPES = ("paired_sessions", "paired_hemispheres")  # box/strip plots in the report
#: the references of the group methods (pipeline/reports/references.py)
GROUP_REFERENCES = ("hedges1981", "efron1993", "bh1995")
#: fewer participants per group (or pairs) than this: effect sizes are flagged as unstable
SMALL_N = 10


def _figure(width, height):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=90)


def _label(row) -> str:
    atlas = row.get("atlas")
    where = f"{atlas}:" if isinstance(atlas, str) and atlas not in ("", "n/a") else ""
    return f"{row['modality']}/{row['metric']} · {where}{row['roi']} {row['hemisphere']}"


def _primary(results: pd.DataFrame, contrast: dict) -> pd.DataFrame:
    rows = results[
        (results["contrast"] == contrast["name"]) & (results["test"] == contrast["tests"][0])
    ]
    return rows[np.isfinite(rows["effect_size"].astype(float))]


#: what the estimate of each test is (a difference in the metric's units, or r)
ESTIMATES = {
    "welch": "mean difference",
    "mannwhitney": "median difference",
    "ols": "coefficient",
    "paired_t": "mean paired difference",
    "wilcoxon": "median paired difference",
    "spearman": "Spearman r",
}


def forest_plot(
    rows: pd.DataFrame, path: Path, title: str, max_rows: int = 30, units: str = ""
) -> Path | None:
    """One modality/metric family: the estimate (a difference in the metric's own units, or
    Spearman r) with its CI per ROI, the ``max_rows`` smallest p (FDR hits in colour)."""
    rows = rows[np.isfinite(rows["estimate"].astype(float))]
    rows = rows.sort_values("p").head(max_rows)
    if rows.empty:
        return None
    rows = rows.sort_values("estimate")
    n = len(rows)
    height = 1.3 + 0.28 * n
    fig = _figure(8.0, height)
    ax = fig.subplots()
    y = np.arange(n)[::-1]
    est = rows["estimate"].to_numpy(float)
    lo = rows["estimate_ci_low"].to_numpy(float)
    hi = rows["estimate_ci_high"].to_numpy(float)
    sig = rows["significant"].to_numpy(bool)
    err = np.vstack([est - lo, hi - est])
    err[~np.isfinite(err)] = 0.0
    for mask, colour in ((sig, SIG_COLOUR), (~sig, NS_COLOUR)):
        if mask.any():
            ax.errorbar(
                est[mask],
                y[mask],
                xerr=err[:, mask],
                fmt="o",
                color=colour,
                ms=5,
                lw=1.5,
                capsize=0,
            )
    ax.axvline(0, color="k", lw=0.8, ls="--")
    labels = [f"{r['roi'].replace('_', ' ')} {r['hemisphere']}" for r in rows.to_dict("records")]
    ax.set_yticks(y, labels, fontsize=8)
    test = rows["test"].iloc[0]
    kind = ESTIMATES.get(test, "estimate")
    unit = "" if test == "spearman" or not units else f" [{units}]"
    ax.set_xlabel(f"{kind}{unit} (CI); red: FDR-significant", fontsize=9)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    fig.subplots_adjust(left=0.34, right=0.97, top=1 - 0.5 / height, bottom=0.65 / height)
    with atomic_output(path) as tmp:
        fig.savefig(tmp)
    return path


def strip_plot(
    data: pd.DataFrame, rows: pd.DataFrame, contrast: dict, path: Path, n_units: int = 6
) -> Path | None:
    """Box and strip plots of the ``n_units`` units with the smallest p: paired designs
    (ictal/interictal, ipsi/contra) connect each participant's two values; two-group designs
    show both groups."""
    if data is None or data.empty or rows.empty or contrast["type"] == "correlation":
        return None
    top = rows.sort_values("p").head(n_units)
    n = len(top)
    ncol = min(3, n)
    nrow = math.ceil(n / ncol)
    fig = _figure(3.2 * ncol, 2.9 * nrow)
    axes = np.atleast_1d(fig.subplots(nrow, ncol)).ravel()
    rng = np.random.default_rng(0)
    paired = contrast["type"] in ("paired_sessions", "paired_hemispheres")
    for ax, r in zip(axes, top.to_dict("records")):
        sel = data
        for k in UNIT:
            sel = sel[sel[k] == r[k]]
        if paired:
            a, b = sel["a"].to_numpy(float), sel["b"].to_numpy(float)
            for ai, bi in zip(a, b):
                ax.plot([0, 1], [ai, bi], color="#95a5a6", lw=0.7, alpha=0.7)
        elif contrast["type"] == "two_group":
            a = sel.loc[sel["level"] == "a", "value"].to_numpy(float)
            b = sel.loc[sel["level"] == "b", "value"].to_numpy(float)
        else:
            continue
        ax.boxplot([a, b], positions=[0, 1], widths=0.45, showfliers=False)
        for pos, vals in ((0, a), (1, b)):
            x = np.full(len(vals), float(pos))
            if not paired:
                x += rng.uniform(-0.08, 0.08, len(vals))
            ax.plot(
                x, vals, "o", ms=3, alpha=0.7, color=SIG_COLOUR if r["significant"] else "#2c3e50"
            )
        ax.set_xticks([0, 1], [contrast["label_a"], contrast["label_b"]], fontsize=8)
        pf = r["p_fdr"]
        ax.set_title(
            f"{r['roi']} {r['hemisphere']}\n{r['modality']}/{r['metric']}, p_FDR={pf:.2g}"
            if np.isfinite(pf)
            else f"{r['roi']} {r['hemisphere']}",
            fontsize=8,
        )
        ax.tick_params(labelsize=7)
    for ax in axes[n:]:
        ax.set_visible(False)
    fig.subplots_adjust(
        left=0.08,
        right=0.98,
        top=1 - 0.55 / (2.9 * nrow),
        bottom=0.35 / (2.9 * nrow),
        wspace=0.35,
        hspace=0.55,
    )
    with atomic_output(path) as tmp:
        fig.savefig(tmp)
    return path


def glass_brain(z_map: Path, threshold: float, path: Path, title: str) -> Path:
    """nilearn glass brain of a z map (both signs), thresholded at ``threshold``."""
    import warnings

    from nilearn import plotting

    with warnings.catch_warnings():  # nothing above the threshold: an empty glass brain
        warnings.filterwarnings("ignore", message="empty mask")
        with atomic_output(path) as tmp:
            plotting.plot_glass_brain(
                str(z_map),
                threshold=threshold,
                colorbar=True,
                plot_abs=False,
                display_mode="lyrz",
                title=title,
                output_file=str(tmp),
            )
    return path


def _fmt(value, digits=3):
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if v != 0 and (abs(v) < 10 ** -(digits - 1) or abs(v) >= 10**5):
            return f"{v:.{digits - 1}e}"
        return f"{v:.{digits}g}"
    return str(value)


def _records(df: pd.DataFrame) -> list[dict]:
    return [
        {
            k: (None if (isinstance(v, float) and not np.isfinite(v)) or v is pd.NA else v)
            for k, v in r.items()
        }
        for r in df.to_dict("records")
    ]


def _versions() -> dict:
    """Versions of the software the group statistics ran with."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"inflamap": __version__}
    for name in ("statsmodels", "scipy", "numpy", "pandas", "nilearn", "matplotlib"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def write_group_report(
    gdir,
    results: pd.DataFrame,
    datas: dict,
    voxel: pd.DataFrame,
    missing: pd.DataFrame,
    table: pd.DataFrame,
    gcfg,
) -> Path:
    """Render ``group.html`` and its figures; returns the report's path."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    from .models import power_column

    gdir = Path(gdir)
    fdir = gdir / "figures"
    fdir.mkdir(parents=True, exist_ok=True)
    ncol = power_column(gcfg.target_power)
    sections, not_run = [], []
    for c in gcfg.contrasts:
        rows = _primary(results, c)
        allrows = results[results["contrast"] == c["name"]]
        units = table_units()
        forests = []
        for (mod, met), fam in rows.groupby(["modality", "metric"], sort=True):
            png = forest_plot(
                fam,
                fdir / f"forest_{c['name']}_{mod}-{met}.png",
                f"{c['name']}: {mod} {met} ({c['tests'][0]})",
                gcfg.report_max_rows,
                units.get(mod, ""),
            )
            if png is not None:
                forests.append({"src": png.relative_to(gdir).as_posix(), "family": f"{mod} {met}"})
        strip = (
            strip_plot(datas.get(c["name"]), rows, c, fdir / f"strip_{c['name']}.png")
            if c["type"] in STRIP_TYPES
            else None
        )
        shown = allrows[allrows["significant"]].sort_values("p")
        if shown.empty:
            shown = allrows[allrows["p"].notna()].sort_values("p").head(5)
        reasons = allrows.loc[allrows["reason"].notna(), "reason"].value_counts()
        tested = allrows[allrows["p"].notna()]
        if tested.empty:  # no section for a contrast that did not run: one line, its reason
            not_run.append({"name": c["name"], "reason": reasons.index[0] if len(reasons) else
                            "no rows selected"})  # fmt:skip
            continue
        n_per_group = pd.concat([tested["n1"], tested["n2"]]).dropna()
        small_n = int(n_per_group.max()) if len(n_per_group) else 0
        sections.append(
            {
                **c,
                "n_tests": int(allrows["p"].notna().sum()),
                "n_significant": int(allrows["significant"].sum()),
                "forests": forests,
                "strip": strip.relative_to(gdir).as_posix() if strip else None,
                "rows": _records(shown.head(40)),
                "any_significant": bool(allrows["significant"].any()),
                "skipped": [{"reason": k, "count": int(v)} for k, v in reasons.items()],
                "small_n": small_n if small_n < SMALL_N else None,
            }
        )
    vox = []
    for r in _records(voxel) if len(voxel) else []:
        if r["status"] == "done":
            # one fixed, stated threshold per map (the cluster-forming height), whatever
            # passes FDR: the figure does not change its rule with the result
            thr = float(stats.norm.isf(gcfg.voxelwise.cluster_height_p / 2))
            png = fdir / f"glass_{r['contrast']}_{r['metric']}.png"
            glass_brain(gdir / r["z_map"], thr, png, f"{r['contrast']} {r['metric']} (z)")
            r["glass_brain"] = png.relative_to(gdir).as_posix()
            r["display_threshold"] = thr
        vox.append(r)
    participants = table.drop_duplicates("participant_id")
    groups = (
        participants["group"].fillna("n/a").value_counts().sort_index().to_dict()
        if "group" in participants
        else {}
    )
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html", "j2"])
    )
    env.filters["fmt"] = _fmt
    html = env.get_template("group.html.j2").render(
        version=__version__,
        generated=dt.datetime.now(dt.UTC).astimezone().isoformat(timespec="seconds"),
        n_participants=int(participants["participant_id"].nunique()),
        groups=groups,
        modalities=sorted(
            {
                f"{m}/{k}"
                for m, k in table[["modality", "metric"]].drop_duplicates().itertuples(index=False)
            }
        ),
        missing=_records(missing),
        cfg=gcfg,
        sections=sections,
        not_run=not_run,
        refs={k: REFERENCES[k] for k in GROUP_REFERENCES},
        versions=_versions(),
        small_n_limit=SMALL_N,
        voxelwise=vox,
        n_col=ncol,
        n_tests=int(results["p"].notna().sum()),
        n_significant=int(results["significant"].sum()),
    )
    return atomic_write_text(html, gdir / "group.html")
