"""Contrasts of the group level: their settings, the rows each selects, the result
columns.

Contrast types (the ``group.contrasts`` list of the configuration, see
:func:`check_contrasts`):

``two_group``
    participants whose ``column`` is in ``a`` against those in ``b`` (``a: []``: every other
    non-missing value). Each participant's value is the mean over their selected sessions.
    Tests: ``welch`` (Welch t, Hedges g), ``mannwhitney`` (Mann–Whitney U, rank-biserial r),
    ``ols`` (``value ~ contrast + covariates``, the standardised coefficient).
``paired_sessions``
    within participant, sessions whose ``column`` (e.g. ``phase``) is ``a`` against ``b``.
    Tests: ``paired_t`` (dz), ``wilcoxon`` (matched-pairs rank-biserial r).
``paired_hemispheres``
    within participant, hemisphere rows ``a`` (``ipsi``) against ``b`` (``contra``).
``correlation``
    Spearman's r of the value with ``column`` (e.g. ``attacks_per_month``).

Every contrast may restrict rows with ``where: {column: [values]}`` (``n/a`` in the list keeps
missing values, e.g. controls have no ``phase``) and choose the ``hemispheres`` rows tested.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

# the unit of a test: one ROI row of one kind of regional table (the atlas is part of it: two
# atlases of a modality may both name a 'thalamus', with different voxels)
UNIT = ["modality", "metric", "atlas", "roi", "hemisphere"]
FAMILY = ["contrast", "modality", "metric", "test"]
CONTRAST_TYPES = {
    "two_group": ("welch", "mannwhitney", "ols"),
    "paired_sessions": ("paired_t", "wilcoxon"),
    "paired_hemispheres": ("paired_t", "wilcoxon"),
    "correlation": ("spearman",),
}
DEFAULT_TESTS = {
    "two_group": ["welch", "mannwhitney"],
    "paired_sessions": ["paired_t", "wilcoxon"],
    "paired_hemispheres": ["paired_t", "wilcoxon"],
    "correlation": ["spearman"],
}
DEFAULT_HEMISPHERES = {
    "two_group": ["left", "right", "bilateral"],
    "paired_sessions": ["left", "right", "bilateral", "ipsi", "contra", "AI"],
    "paired_hemispheres": None,
    "correlation": ["left", "right", "bilateral"],
}
CONTRAST_KEYS = {
    "name",
    "type",
    "column",
    "a",
    "b",
    "where",
    "tests",
    "hemispheres",
    "description",
    "label_a",
    "label_b",
}
MISSING = "n/a"

RESULT_COLUMNS = [
    "contrast",
    "contrast_type",
    "modality",
    "metric",
    "atlas",
    "roi",
    "hemisphere",
    "test",
    "label_a",
    "label_b",
    "n1",
    "n2",
    "mean_a",
    "mean_b",
    "estimate",
    "estimate_ci_low",
    "estimate_ci_high",
    "effect_size_type",
    "effect_size",
    "ci_low",
    "ci_high",
    "statistic",
    "df",
    "p",
    "p_fdr",
    "significant",
    "power",
    "n_for_80_power",
    "mde",
    "power_basis",
    "covariates",
    "reason",
]

COLUMN_DESCRIPTIONS = {
    "contrast": "contrast name (group.contrasts[].name)",
    "contrast_type": "two_group, paired_sessions, paired_hemispheres or correlation",
    "modality": "modality of the regional table (anat, gadolinium, dce, uspio, pet, ...)",
    "metric": "metric of the regional table (nT1w, enhancement, Ktrans, SUVR, ...)",
    "atlas": "atlas of the regional table (atlas- entity of its file name)",
    "roi": "region of interest",
    "hemisphere": "hemisphere row tested (left/right/bilateral/ipsi/contra/AI; "
    "'ipsi-contra' for paired hemispheres)",
    "test": "welch, mannwhitney, ols, paired_t, wilcoxon or spearman",
    "label_a": "first condition (group a, session condition a, hemisphere a, or the "
    "correlated variable)",
    "label_b": "second condition (reference)",
    "n1": "participants in a (pairs for paired tests, participants for correlations)",
    "n2": "participants in b (pairs for paired tests; empty for correlations)",
    "mean_a": "mean value in a",
    "mean_b": "mean value in b",
    "estimate": "a - b in the units of the metric: difference of means (welch, paired_t), "
    "of medians (mannwhitney), median difference (wilcoxon), covariate-adjusted "
    "difference (ols); Spearman r for correlations",
    "estimate_ci_low": "lower confidence limit of the estimate (t-based for welch/paired_t, "
    "model-based for ols, percentile bootstrap over participants (1,000 "
    "resamples, fixed seed) for the medians of mannwhitney/wilcoxon)",
    "estimate_ci_high": "upper confidence limit of the estimate",
    "effect_size_type": "hedges_g, rank_biserial, std_beta (ols coefficient / residual SD), "
    "dz, matched_rank_biserial or spearman_r",
    "effect_size": "standardised effect size (sign: a - b)",
    "ci_low": "lower confidence limit of the effect size",
    "ci_high": "upper confidence limit of the effect size",
    "statistic": "test statistic (t, U, W or r)",
    "df": "degrees of freedom (t tests and ols)",
    "p": "two-sided p value",
    "p_fdr": "Benjamini-Hochberg adjusted p within contrast x modality x metric x test",
    "significant": "p_fdr < alpha",
    "power": "achieved power at the observed effect and current N (two-sided, alpha)",
    "n_for_80_power": "N per group (pairs, participants) for the target power at the "
    "observed effect",
    "mde": "minimum detectable effect (in power_basis units: g, dz or r) at the current N "
    "and target power",
    "power_basis": "effect size used for the power columns and how "
    "(statsmodels.stats.power class)",
    "covariates": "covariates of the ols model",
    "reason": "why the row has no result (too few participants, no variance, ...)",
}


# ----------------------------------------------------------------------------- contrasts


def _as_list(value):
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def check_contrasts(contrasts) -> list[dict]:
    """Validated, normalised contrast definitions (``ValueError`` naming the bad entry)."""
    if not isinstance(contrasts, list):
        raise ValueError("group.contrasts must be a list of contrasts")
    out, names = [], set()
    for i, c in enumerate(contrasts):
        where = f"group.contrasts[{i}]"
        if not isinstance(c, dict):
            raise ValueError(f"{where}: must be a mapping (name, type, ...)")
        unknown = set(c) - CONTRAST_KEYS
        if unknown:
            raise ValueError(
                f"{where}: unknown key(s) {sorted(unknown)}; valid keys: "
                f"{', '.join(sorted(CONTRAST_KEYS))}"
            )
        name = c.get("name")
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9]+", name):
            raise ValueError(
                f"{where}: 'name' must be letters and digits (it names files), got {name!r}"
            )
        if name in names:
            raise ValueError(f"{where}: duplicate contrast name {name!r}")
        names.add(name)
        ctype = c.get("type")
        if ctype not in CONTRAST_TYPES:
            raise ValueError(
                f"{where} ({name}): 'type' must be one of "
                f"{', '.join(CONTRAST_TYPES)}, got {ctype!r}"
            )
        tests = _as_list(c.get("tests")) or list(DEFAULT_TESTS[ctype])
        bad = [t for t in tests if t not in CONTRAST_TYPES[ctype]]
        if bad:
            raise ValueError(
                f"{where} ({name}): test(s) {bad} not available for {ctype}; "
                f"use {', '.join(CONTRAST_TYPES[ctype])}"
            )
        column = c.get("column")
        if ctype == "paired_hemispheres":
            column = "hemisphere"
        elif not isinstance(column, str) or not column:
            raise ValueError(
                f"{where} ({name}): 'column' (a participants.tsv or sessions.tsv "
                "column) is required"
            )
        a, b = _as_list(c.get("a")), _as_list(c.get("b"))
        if ctype != "correlation":
            if not b:
                raise ValueError(f"{where} ({name}): 'b' (the reference values) is required")
            if ctype != "two_group" and not a:
                raise ValueError(f"{where} ({name}): 'a' is required")
            if set(map(str, a)) & set(map(str, b)):
                raise ValueError(f"{where} ({name}): 'a' and 'b' overlap")
        filt = c.get("where") or {}
        if not isinstance(filt, dict):
            raise ValueError(f"{where} ({name}): 'where' must map columns to lists of values")
        filt = {str(k): _as_list(v) for k, v in filt.items()}
        hemis = c.get("hemispheres")
        hemis = list(DEFAULT_HEMISPHERES[ctype] or []) if hemis is None else _as_list(hemis)
        out.append(
            {
                "name": name,
                "type": ctype,
                "column": column,
                "a": a,
                "b": b,
                "where": filt,
                "tests": tests,
                "hemispheres": hemis,
                "description": c.get("description") or "",
                "label_a": str(
                    c.get("label_a")
                    or (
                        column
                        if ctype == "correlation"
                        else "+".join(map(str, a))
                        if a
                        else f"not {'+'.join(map(str, b))}"
                    )
                ),
                "label_b": str(
                    c.get("label_b") or ("" if ctype == "correlation" else "+".join(map(str, b)))
                ),
            }
        )
    return out


def check_rules(rules) -> list[dict]:
    """Validated ``group.modality_rules`` (extra covariates and exclusions per modality)."""
    out = []
    for i, r in enumerate(_as_list(rules)):
        where = f"group.modality_rules[{i}]"
        if not isinstance(r, dict) or "modality" not in r:
            raise ValueError(f"{where}: needs 'modality' (and 'covariates', 'exclude')")
        unknown = set(r) - {"modality", "covariates", "exclude"}
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {sorted(unknown)}")
        excl = r.get("exclude") or {}
        if not isinstance(excl, dict):
            raise ValueError(f"{where}: 'exclude' must map columns to lists of values")
        out.append(
            {
                "modality": str(r["modality"]),
                "covariates": [str(v) for v in _as_list(r.get("covariates"))],
                "exclude": {str(k): _as_list(v) for k, v in excl.items()},
            }
        )
    return out


def isin_values(series: pd.Series, values) -> pd.Series:
    """``series`` in ``values``, comparing numbers as numbers; ``n/a`` matches missing."""
    values = list(values)
    keep_missing = any(v is None or (isinstance(v, str) and v == MISSING) for v in values)
    values = [v for v in values if not (v is None or (isinstance(v, str) and v == MISSING))]
    out = series.isna() if keep_missing else pd.Series(False, index=series.index)
    if not values:
        return out
    if pd.api.types.is_numeric_dtype(series):
        nums = pd.to_numeric(pd.Series(values), errors="coerce").dropna()
        return out | series.isin(list(nums))
    return out | series.astype("string").isin([str(v) for v in values]).fillna(False)


def apply_where(table: pd.DataFrame, where: dict) -> pd.DataFrame:
    """Rows whose every ``where`` column is in its list (a missing column counts as n/a)."""
    keep = pd.Series(True, index=table.index)
    for column, values in where.items():
        col = table[column] if column in table else pd.Series(np.nan, index=table.index)
        keep &= isin_values(col, values)
    return table[keep]


def apply_rules(table: pd.DataFrame, rules) -> pd.DataFrame:
    """Drop the rows of a modality whose participants match its exclusions (e.g. LAB)."""
    drop = pd.Series(False, index=table.index)
    for r in rules:
        in_mod = table["modality"] == r["modality"]
        for column, values in r["exclude"].items():
            if column in table:
                drop |= in_mod & isin_values(table[column], values) & table[column].notna()
    return table[~drop]


def participant_frame(table: pd.DataFrame) -> pd.DataFrame:
    """One row per participant: the first non-missing value of every other column."""
    cols = [
        c
        for c in table.columns
        if c not in (*UNIT, "session_id", "n_voxels", "mean", "median", "sd", "source_table")
    ]
    return table[cols].groupby("participant_id", sort=True).first()


def contrast_data(table: pd.DataFrame, contrast: dict, value: str = "mean"):
    """The per-participant values a contrast compares, and a reason when there are none.

    Returns ``(data, reason)``; ``data`` has :data:`UNIT`, ``participant_id`` and
    ``level`` + ``value`` (two_group), ``a`` + ``b`` (paired types) or ``x`` + ``value``
    (correlation).
    """
    ctype, column = contrast["type"], contrast["column"]
    empty = pd.DataFrame(columns=[*UNIT, "participant_id"])
    if column not in table:
        return empty, f"column '{column}' not in participants.tsv/sessions.tsv"
    rows = apply_where(table, contrast["where"])
    if ctype != "paired_hemispheres" and contrast["hemispheres"]:
        rows = rows[rows["hemisphere"].isin(contrast["hemispheres"])]
    rows = rows[np.isfinite(pd.to_numeric(rows[value], errors="coerce"))]
    keys = ["participant_id", *UNIT]
    if ctype == "two_group":
        a, b = contrast["a"], contrast["b"]
        col = rows[column]
        in_b = isin_values(col, b) & col.notna()
        in_a = (isin_values(col, a) if a else col.notna()) & col.notna() & ~in_b
        level = pd.Series(pd.NA, index=rows.index, dtype="string")
        level[in_a], level[in_b] = "a", "b"
        rows = rows.assign(level=level, value=rows[value].astype(float))[level.notna()]
        data = rows.groupby([*keys, "level"], sort=False, observed=True)["value"].mean()
        data = data.reset_index()
        levels = data.groupby("participant_id")["level"].nunique()
        both = levels.index[levels > 1]
        if len(both):  # a participant in both groups (session-level column): not independent
            data = data[~data["participant_id"].isin(both)]
        reason = None if len(data) else "no participant in either group"
        return data, reason
    if ctype == "correlation":
        x = pd.to_numeric(rows[column], errors="coerce")
        rows = rows.assign(x=x, value=rows[value].astype(float))[x.notna()]
        data = rows.groupby(keys, sort=False, observed=True)[["value", "x"]].mean()
        data = data.reset_index()
        return data, None if len(data) else f"no participant with a value of '{column}'"
    # paired: condition from a session-level column or from the hemisphere rows
    col = rows[column]
    cond = pd.Series(pd.NA, index=rows.index, dtype="string")
    cond[isin_values(col, contrast["a"]) & col.notna()] = "a"
    cond[isin_values(col, contrast["b"]) & col.notna()] = "b"
    rows = rows.assign(cond=cond, value=rows[value].astype(float))[cond.notna()]
    if ctype == "paired_hemispheres":
        rows = rows.assign(hemisphere=f"{contrast['label_a']}-{contrast['label_b']}")
    data = rows.groupby([*keys, "cond"], sort=False, observed=True)["value"].mean()
    data = data.unstack("cond")
    for c in ("a", "b"):
        if c not in data:
            data[c] = np.nan
    data = data.dropna(subset=["a", "b"]).reset_index()
    data.columns.name = None
    reason = (
        None
        if len(data)
        else (f"no participant with both {contrast['label_a']} and {contrast['label_b']}")
    )
    return data, reason
