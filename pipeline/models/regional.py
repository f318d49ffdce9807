"""Regional statistics of a map within a label image, and laterality.

Pure functions: arrays in, :class:`pandas.DataFrame` out. The workflow layer
(:mod:`workflows.regional`) loads images, checks that they share a grid and calls these.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

TABLE_COLUMNS = [
    "participant_id",
    "session_id",
    "modality",
    "metric",
    "roi",
    "hemisphere",
    "n_voxels",
    "mean",
    "median",
    "sd",
]
HEMISPHERES = ("left", "right", "bilateral")
HEADACHE_SIDES = ("left", "right", "bilateral", "none")


def roi_statistics(values, labels, lut, mask=None, weights=None):
    """Mean, median and SD of ``values`` within each label.

    Parameters
    ----------
    values : array
        the quantitative map.
    labels : int array, same shape
        label image; 0 is background.
    lut : DataFrame
        with columns ``index``, ``name`` and ``hemisphere`` (left/right/bilateral).
    mask : bool array or None
        voxels to consider (e.g. where the fit succeeded). Non-finite values are always
        excluded and counted out of ``n_voxels``.
    weights : float array or None
        partial-volume weights in [0, 1] (:func:`partial_volume_weights`): the mean is the
        weighted mean (voxels of weight 0 are left out); median and SD stay unweighted.

    Returns
    -------
    DataFrame with columns ``roi, hemisphere, n_voxels, mean, median, sd`` and one row per LUT
    entry (NaN statistics and ``n_voxels == 0`` where the ROI has no valid voxel).
    """
    values = np.asarray(values, dtype=float)
    labels = np.asarray(labels)
    if values.shape != labels.shape:
        raise ValueError(
            f"roi_statistics: map shape {values.shape} differs from label shape {labels.shape}; "
            "resample the labels to the map's grid first"
        )
    missing = {"index", "name", "hemisphere"} - set(lut.columns)
    if missing:
        raise ValueError(f"roi_statistics: label table lacks column(s) {sorted(missing)}")
    bad = set(lut["hemisphere"]) - set(HEMISPHERES)
    if bad:
        raise ValueError(f"roi_statistics: hemisphere values {sorted(bad)} not in {HEMISPHERES}")
    valid = np.isfinite(values)
    if mask is not None:
        valid &= np.asarray(mask, dtype=bool)
    if weights is not None:
        weights = np.asarray(weights, dtype=float)
        if weights.shape != values.shape:
            raise ValueError("roi_statistics: weights must share the map's grid")
        weights = np.where(np.isfinite(weights), np.clip(weights, 0.0, 1.0), 0.0)
        valid &= weights > 0
    rows = []
    for index, name, hemi in lut[["index", "name", "hemisphere"]].itertuples(index=False):
        sel = (labels == index) & valid
        v = values[sel]
        if weights is not None and v.size:
            mean = float(np.average(v, weights=weights[sel]))
        else:
            mean = float(v.mean()) if v.size else np.nan
        rows.append(
            {
                "roi": name,
                "hemisphere": hemi,
                "n_voxels": int(v.size),
                "mean": mean,
                "median": float(np.median(v)) if v.size else np.nan,
                "sd": float(v.std(ddof=1)) if v.size > 1 else np.nan,
            }
        )
    return pd.DataFrame(rows, columns=["roi", "hemisphere", "n_voxels", "mean", "median", "sd"])


def partial_volume_weights(brain_mask, gm_prob, wm_prob):
    """Weights of the voxels of the extra-cerebral ROIs: ``1 - (GM + WM)`` outside the brain
    mask (a band voxel that is half cortex counts half), 1 inside it."""
    brain = np.asarray(brain_mask) > 0
    tissue = np.asarray(gm_prob, float) + np.asarray(wm_prob, float)
    return np.where(brain, 1.0, np.clip(1.0 - tissue, 0.0, 1.0)).astype(np.float32)


def asymmetry_index(ipsi, contra):
    """``AI = (ipsi - contra) / ((ipsi + contra) / 2)``; NaN where the denominator is 0."""
    ipsi = np.asarray(ipsi, dtype=float)
    contra = np.asarray(contra, dtype=float)
    den = (ipsi + contra) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den != 0, (ipsi - contra) / den, np.nan)


def laterality_rows(table, headache_side):
    """Ipsilateral/contralateral rows and the asymmetry index for paired ROIs.

    ``table`` is the output of :func:`roi_statistics` (columns ``roi, hemisphere, ...``).
    For ``headache_side`` ``left`` or ``right`` every ROI present in both hemispheres gives an
    ``ipsi`` row, a ``contra`` row (copies of the statistics of that side) and an ``AI`` row
    whose ``mean``/``median`` hold the asymmetry index of the means/medians. Other sides
    (``bilateral``, ``none``, missing) give no rows: there is no side to compare.
    """
    if headache_side is None or (isinstance(headache_side, float) and np.isnan(headache_side)):
        headache_side = "none"
    if headache_side not in HEADACHE_SIDES:
        raise ValueError(f"headache_side must be one of {HEADACHE_SIDES}, got {headache_side!r}")
    cols = list(table.columns)
    if headache_side not in ("left", "right"):
        return pd.DataFrame(columns=cols)
    other = "right" if headache_side == "left" else "left"
    side = table[table["hemisphere"] == headache_side].set_index("roi")
    opp = table[table["hemisphere"] == other].set_index("roi")
    rows = []
    for roi in [r for r in side.index if r in opp.index]:
        a, b = side.loc[roi], opp.loc[roi]
        rows.append({**a.to_dict(), "roi": roi, "hemisphere": "ipsi"})
        rows.append({**b.to_dict(), "roi": roi, "hemisphere": "contra"})
        rows.append(
            {
                "roi": roi,
                "hemisphere": "AI",
                "n_voxels": int(min(a["n_voxels"], b["n_voxels"])),
                "mean": float(asymmetry_index(a["mean"], b["mean"])),
                "median": float(asymmetry_index(a["median"], b["median"])),
                "sd": np.nan,
            }
        )
    return pd.DataFrame(rows, columns=cols)


def regional_table(
    values,
    labels,
    lut,
    *,
    participant_id,
    session_id,
    modality,
    metric,
    headache_side=None,
    mask=None,
    weights=None,
    extra_columns=None,
):
    """The tidy regional table of one map: per-ROI rows plus laterality rows.

    Columns are :data:`TABLE_COLUMNS`, then ``extra_columns`` (a mapping of column name to
    one value for every row, e.g. the participant's ``treatment`` or ``tspo_genotype``).
    """
    stats = roi_statistics(values, labels, lut, mask=mask, weights=weights)
    lat = laterality_rows(stats, headache_side)
    out = pd.concat([stats, lat], ignore_index=True) if len(lat) else stats
    out.insert(0, "metric", metric)
    out.insert(0, "modality", modality)
    out.insert(0, "session_id", session_id)
    out.insert(0, "participant_id", participant_id)
    out = out[TABLE_COLUMNS]
    for column, value in (extra_columns or {}).items():
        if column in TABLE_COLUMNS:
            raise ValueError(f"regional_table: extra column {column!r} is a table column")
        out[column] = value
    return out
