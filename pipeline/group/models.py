"""Group statistics of the tidy regional tables: tests, effect sizes, CIs, FDR and power.

Pure functions over :class:`pandas.DataFrame` (scipy and statsmodels; no nipype, no images).
The input is the gathered group table (:data:`pipeline.models.regional.TABLE_COLUMNS` plus
the ``participants.tsv``/``sessions.tsv`` columns); the output is one tidy row per
contrast × modality × metric × ROI × hemisphere × test (:data:`RESULT_COLUMNS`).

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

Too few participants, no variance or a singular model give a row of NaN with the reason in
``reason``, never an exception. Benjamini–Hochberg (``statsmodels.stats.multitest``) runs
within each contrast × modality × metric × test family. Power columns come from
``statsmodels.stats.power``: :class:`TTestIndPower` for two groups (Hedges g; the rank and
model tests use the same t-test approximation at their standardised effect),
:class:`TTestPower` for pairs (dz), and :class:`NormalIndPower` on Fisher's z with ``n − 3``
observations (``ratio=0``, one sample) for correlations.
"""

from __future__ import annotations

import math
import re
import warnings
from functools import cache

import numpy as np
import pandas as pd
from scipy import special, stats
from statsmodels.stats.meta_analysis import effectsize_smd
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.nonparametric import rank_compare_2indep
from statsmodels.stats.power import NormalIndPower, TTestIndPower, TTestPower
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

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


# ----------------------------------------------------------------------------- tests


def _nan_result(reason, **extra):
    return {
        "estimate": np.nan,
        "estimate_ci_low": np.nan,
        "estimate_ci_high": np.nan,
        "effect_size": np.nan,
        "ci_low": np.nan,
        "ci_high": np.nan,
        "statistic": np.nan,
        "df": np.nan,
        "p": np.nan,
        "reason": reason,
        **extra,
    }


def _quiet(func):
    """Run a test with numpy/scipy warnings silenced (constant input gives NaN, handled)."""

    def wrapper(*args, **kwargs):
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            return func(*args, **kwargs)

    wrapper.__name__, wrapper.__doc__ = func.__name__, func.__doc__
    return wrapper


def _check_two(a, b, min_n):
    if len(a) < min_n or len(b) < min_n:
        return f"too few participants (n1={len(a)}, n2={len(b)}; minimum {min_n})"
    if np.ptp(a) == 0 and np.ptp(b) == 0:
        return "no variance within groups"
    return None


def hedges_g(a, b, ci_level=0.95):
    """Hedges g (bias-corrected SMD, a − b) with its normal CI (statsmodels effectsize_smd)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    g, var = effectsize_smd(a.mean(), a.std(ddof=1), len(a), b.mean(), b.std(ddof=1), len(b))
    z = stats.norm.ppf(0.5 + ci_level / 2)
    half = z * math.sqrt(var)
    return float(g), float(g - half), float(g + half)


@_quiet
def welch_test(a, b, ci_level=0.95, min_n=3):
    """Welch t test of a − b: difference of means with Welch CI, Hedges g with CI."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    reason = _check_two(a, b, min_n)
    if reason:
        return _nan_result(reason, effect_size_type="hedges_g")
    cm = CompareMeans(DescrStatsW(a), DescrStatsW(b))
    t, p, df = cm.ttest_ind(usevar="unequal")
    lo, hi = cm.tconfint_diff(alpha=1 - ci_level, usevar="unequal")
    g, glo, ghi = hedges_g(a, b, ci_level)
    return {
        "estimate": a.mean() - b.mean(),
        "estimate_ci_low": lo,
        "estimate_ci_high": hi,
        "effect_size_type": "hedges_g",
        "effect_size": g,
        "ci_low": glo,
        "ci_high": ghi,
        "statistic": t,
        "df": df,
        "p": p,
        "reason": None,
        "power_es": g,
    }


BOOTSTRAP_RESAMPLES = 1000


def _matched_rank_biserial(d, axis=-1):
    """``(R+ − R−)/(R+ + R−)`` of the differences ``d`` along ``axis`` (zeros dropped)."""
    d = np.asarray(d, float)
    ranks = stats.rankdata(np.where(d == 0, np.nan, np.abs(d)), axis=axis, nan_policy="omit")
    pos = np.nansum(np.where(d > 0, ranks, 0.0), axis=axis)
    neg = np.nansum(np.where(d < 0, ranks, 0.0), axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (pos - neg) / (pos + neg)


def _median_difference(a, b, axis=-1):
    return np.median(a, axis=axis) - np.median(b, axis=axis)


def bootstrap_ci(samples, statistic, ci_level=0.95, paired=False):
    """Percentile-bootstrap CI (scipy ``stats.bootstrap``, vectorised, fixed seed so that
    reruns give the same table) of ``statistic`` over ``samples``; NaNs when the
    resamples are degenerate."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = stats.bootstrap(
            samples,
            statistic,
            paired=paired,
            vectorized=True,
            confidence_level=ci_level,
            n_resamples=BOOTSTRAP_RESAMPLES,
            method="percentile",
            random_state=np.random.default_rng(0),
        )
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return (lo, hi) if np.isfinite(lo) and np.isfinite(hi) else (np.nan, np.nan)


@_quiet
def mann_whitney_test(a, b, ci_level=0.95, min_n=3):
    """Mann–Whitney U (scipy); rank-biserial r = 2·P(a > b) − 1 with the CI of
    statsmodels' ``rank_compare_2indep`` (Brunner–Munzel variance, clipped to [−1, 1]);
    estimate: difference of medians with a percentile-bootstrap CI."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    reason = _check_two(a, b, min_n)
    if reason:
        return _nan_result(reason, effect_size_type="rank_biserial")
    u, p = stats.mannwhitneyu(a, b, alternative="two-sided")
    rc = rank_compare_2indep(a, b)
    lo, hi = rc.conf_int(alpha=1 - ci_level)
    g = hedges_g(a, b, ci_level)[0]
    est_lo, est_hi = bootstrap_ci((a, b), _median_difference, ci_level)
    return {
        "estimate": np.median(a) - np.median(b),
        "estimate_ci_low": est_lo,
        "estimate_ci_high": est_hi,
        "effect_size_type": "rank_biserial",
        "effect_size": 2 * rc.prob1 - 1,
        "ci_low": max(2 * lo - 1, -1.0),
        "ci_high": min(2 * hi - 1, 1.0),
        "statistic": u,
        "df": np.nan,
        "p": p,
        "reason": None,
        "power_es": g,
    }


@_quiet
def paired_t_test(a, b, ci_level=0.95, min_n=3):
    """Paired t test of a − b: mean difference with its t CI; dz = mean/SD of the
    differences with the exact CI from the noncentral t (scipy ``nctdtrinc``)."""
    d = np.asarray(a, float) - np.asarray(b, float)
    n = len(d)
    if n < min_n:
        return _nan_result(f"too few pairs (n={n}; minimum {min_n})", effect_size_type="dz")
    if np.ptp(d) == 0:
        return _nan_result("the differences have no variance", effect_size_type="dz")
    ds = DescrStatsW(d)
    t, p, df = ds.ttest_mean(0.0)
    lo, hi = ds.tconfint_mean(alpha=1 - ci_level)
    dz = d.mean() / d.std(ddof=1)
    tail = (1 - ci_level) / 2
    nc_lo, nc_hi = special.nctdtrinc(df, [1 - tail, tail], t)
    return {
        "estimate": d.mean(),
        "estimate_ci_low": lo,
        "estimate_ci_high": hi,
        "effect_size_type": "dz",
        "effect_size": dz,
        "ci_low": nc_lo / math.sqrt(n),
        "ci_high": nc_hi / math.sqrt(n),
        "statistic": t,
        "df": df,
        "p": p,
        "reason": None,
        "power_es": dz,
    }


@_quiet
def wilcoxon_test(a, b, ci_level=0.95, min_n=3):
    """Wilcoxon signed-rank test of a − b (scipy); matched-pairs rank-biserial r
    ``(R+ − R−)/(R+ + R−)``; estimate: median difference. Both with percentile-bootstrap
    CIs over the pairs."""
    d = np.asarray(a, float) - np.asarray(b, float)
    n = len(d)
    if n < min_n:
        return _nan_result(
            f"too few pairs (n={n}; minimum {min_n})", effect_size_type="matched_rank_biserial"
        )
    nz = d[d != 0]
    if len(nz) == 0:
        return _nan_result("all differences are zero", effect_size_type="matched_rank_biserial")
    w, p = stats.wilcoxon(d, alternative="two-sided")
    r = float(_matched_rank_biserial(d))
    sd = d.std(ddof=1)
    est_lo, est_hi = bootstrap_ci((d,), np.median, ci_level)
    r_lo, r_hi = bootstrap_ci((d,), _matched_rank_biserial, ci_level)
    return {
        "estimate": np.median(d),
        "estimate_ci_low": est_lo,
        "estimate_ci_high": est_hi,
        "effect_size_type": "matched_rank_biserial",
        "effect_size": r,
        "ci_low": r_lo,
        "ci_high": r_hi,
        "statistic": w,
        "df": np.nan,
        "p": p,
        "reason": None,
        "power_es": d.mean() / sd if sd > 0 else np.nan,
    }


#: up to this many participants Spearman's p is exact (all n! orderings; 8! = 40,320)
EXACT_SPEARMAN_MAX_N = 8


def _exact_spearman_p(x, y, r) -> float:
    """Two-sided permutation p of Spearman's ``r`` over every ordering of ``y``."""
    from itertools import permutations

    rx = stats.rankdata(x)
    ry = stats.rankdata(y)
    rx = (rx - rx.mean()) / np.sqrt(((rx - rx.mean()) ** 2).sum())
    ry = ry - ry.mean()
    perms = np.array(list(permutations(range(len(ry)))))
    rp = (ry[perms] @ rx) / np.sqrt((ry**2).sum())
    return float(np.mean(np.abs(rp) >= abs(r) - 1e-12))


@_quiet
def spearman_test(x, y, ci_level=0.95, min_n=3):
    """Spearman's r (scipy) with the Fisher-z CI of the Pearson r of the ranks."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    n = len(x)
    if n < max(min_n, 4):
        return _nan_result(
            f"too few participants (n={n}; minimum {max(min_n, 4)})", effect_size_type="spearman_r"
        )
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return _nan_result("a variable has no variance", effect_size_type="spearman_r")
    res = stats.spearmanr(x, y)
    ci = stats.pearsonr(stats.rankdata(x), stats.rankdata(y)).confidence_interval(ci_level)
    r = float(res.statistic)
    # scipy's p comes from a t approximation: a perfect correlation of 4 participants gets
    # p = 0, where the exact permutation p is 2/4! = 0.083; small samples get the exact p
    p = _exact_spearman_p(x, y, r) if n <= EXACT_SPEARMAN_MAX_N else float(res.pvalue)
    return {
        "estimate": r,
        "estimate_ci_low": ci.low,
        "estimate_ci_high": ci.high,
        "effect_size_type": "spearman_r",
        "effect_size": r,
        "ci_low": ci.low,
        "ci_high": ci.high,
        "statistic": r,
        "df": np.nan,
        "p": p,
        "reason": None,
        "power_es": r,
    }


def covariate_terms(frame: pd.DataFrame, covariates) -> tuple[list[str], list[str]]:
    """Formula terms for the covariates present with at least two distinct values.

    Returns ``(terms, dropped)``; text columns become ``C(name)``.
    """
    terms, dropped = [], []
    for cov in covariates:
        if cov not in frame or frame[cov].nunique(dropna=True) < 2:
            dropped.append(cov)
            continue
        name = cov if cov.isidentifier() else f'Q("{cov}")'
        numeric = pd.api.types.is_numeric_dtype(frame[cov])
        terms.append(name if numeric else f"C({name})")
    return terms, dropped


def ols_design(frame: pd.DataFrame, terms):
    """Design matrix (statsmodels formula ``value ~ contrast_a + terms``) of the participants
    of ``frame`` (indexed by participant, with a 0/1 column ``contrast_a``); rows with a
    missing covariate are dropped. Returns a DataFrame indexed by participant."""
    import statsmodels.formula.api as smf

    rhs = " + ".join(["contrast_a", *terms])
    model = smf.ols(f"_y ~ {rhs}", data=frame.assign(_y=0.0))
    return pd.DataFrame(
        model.exog,
        columns=model.exog_names,
        index=pd.Index(model.data.row_labels, name=frame.index.name),
    )


@_quiet
def ols_test(y, X, k: int, ci_level=0.95, min_n=3, covariates=""):
    """OLS of ``y`` on the design rows ``X`` (arrays, from :func:`ols_design`); the
    coefficient of column ``k`` (``contrast_a``: a − b, covariate-adjusted) with its CI, and
    the standardised coefficient (coefficient / residual SD) as the effect size."""
    import statsmodels.api as sm

    y, X = np.asarray(y, float), np.asarray(X, float)
    ok = np.isfinite(y)
    y, X = y[ok], X[ok]
    n1, n2 = int((X[:, k] == 1).sum()), int((X[:, k] == 0).sum())
    extra = {"effect_size_type": "std_beta", "n1": n1, "n2": n2, "covariates": covariates}
    if n1 < min_n or n2 < min_n:
        return _nan_result(
            f"too few participants with complete covariates (n1={n1}, n2={n2}; minimum {min_n})",
            **extra,
        )
    if np.ptp(y) == 0:
        return _nan_result("no variance within groups", **extra)
    if len(y) <= X.shape[1] or np.linalg.matrix_rank(X) < X.shape[1]:
        return _nan_result(
            "the covariate model is singular or has no residual degrees of freedom", **extra
        )
    fit = sm.OLS(y, X).fit()
    sd = math.sqrt(fit.scale) if fit.scale > 0 else np.nan
    lo, hi = fit.conf_int(alpha=1 - ci_level)[k]
    coef = fit.params[k]
    return {
        "estimate": coef,
        "estimate_ci_low": lo,
        "estimate_ci_high": hi,
        "effect_size": coef / sd,
        "ci_low": lo / sd,
        "ci_high": hi / sd,
        "statistic": fit.tvalues[k],
        "df": fit.df_resid,
        "p": fit.pvalues[k],
        "reason": None,
        "power_es": coef / sd,
        **extra,
    }


# ----------------------------------------------------------------------------- power


def _finite(x):
    return x is not None and np.isfinite(x)


def _solve(fn, **kw):
    """statsmodels solve_power, NaN when it does not converge to a finite value."""
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            out = fn(**kw)
        out = float(np.squeeze(out))
        return out if np.isfinite(out) and out > 0 else np.nan
    except Exception:  # noqa: BLE001 - root finding failed: no answer, not a crash
        return np.nan


def _power(kind: str, es, n1, n2, alpha: float):
    """statsmodels' power, vectorised over effect sizes and sizes (two-sided)."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        if kind == "two_group":
            return TTestIndPower().power(
                effect_size=es, nobs1=n1, alpha=alpha, ratio=np.asarray(n2, float) / n1
            )
        if kind == "paired":
            return TTestPower().power(effect_size=es, nobs=n1, alpha=alpha)
        return NormalIndPower().power(
            effect_size=np.arctanh(np.minimum(es, 1 - 1e-12)),
            nobs1=np.asarray(n1, float) - 3,
            alpha=alpha,
            ratio=0.0,
        )


MIN_N = {"two_group": 2, "paired": 2, "correlation": 4}
MAX_N = 10_000_000


def n_required(kind: str, effect_size, alpha: float = 0.05, power: float = 0.8) -> np.ndarray:
    """Smallest integer N (per group with equal groups; pairs; participants) whose power at
    ``|effect_size|`` reaches ``power``: ``ceil`` of statsmodels' ``solve_power``.

    Vectorised: an integer bisection on statsmodels' (vectorised) ``power`` for all effect
    sizes at once, instead of one ``solve_power`` root search per row (8 ms each). NaN for
    effects ~0 or N above 10 million.
    """
    es = np.abs(np.atleast_1d(np.asarray(effect_size, float)))
    out = np.full(es.shape, np.nan)
    ok = np.isfinite(es) & (es > 1e-6)
    if kind == "correlation":
        ok &= es < 1
    if not ok.any():
        return out
    e = es[ok]
    lo = np.full(e.shape, float(MIN_N[kind]))

    def pw(n):
        return _power(kind, e, n, n, alpha)

    done = pw(lo) >= power
    hi = lo.copy()
    todo = ~done
    while todo.any():
        hi[todo] *= 2
        todo &= ~(pw(hi) >= power) & (hi < MAX_N)
    reach = pw(hi) >= power
    lo_ = lo.copy()
    while True:
        gap = (hi - lo_ > 1) & ~done & reach
        if not gap.any():
            break
        mid = np.floor((lo_ + hi) / 2)
        good = pw(mid) >= power
        hi = np.where(gap & good, mid, hi)
        lo_ = np.where(gap & ~good, mid, lo_)
    res = np.where(done, lo, np.where(reach, hi, np.nan))
    out[ok] = res
    return out


@cache
def _mde(kind: str, n1: int, n2: int, alpha: float, power: float) -> float:
    if kind == "two_group":
        return _solve(
            TTestIndPower().solve_power,
            effect_size=None,
            nobs1=n1,
            alpha=alpha,
            power=power,
            ratio=n2 / n1,
        )
    if kind == "paired":
        return _solve(
            TTestPower().solve_power, effect_size=None, nobs=n1, alpha=alpha, power=power
        )
    z = _solve(
        NormalIndPower().solve_power,
        effect_size=None,
        nobs1=n1 - 3,
        alpha=alpha,
        power=power,
        ratio=0.0,
    )
    return math.tanh(z) if _finite(z) else np.nan


def _valid_n(kind, n1, n2):
    n1 = np.asarray(n1, float)
    ok = np.isfinite(n1) & (n1 >= MIN_N[kind] + (1 if kind == "correlation" else 0))
    if kind == "two_group":
        n2 = np.asarray(n2, float)
        ok &= np.isfinite(n2) & (n2 >= 2)
    return ok


def power_analysis(
    kind: str, effect_size, n1, n2=None, alpha: float = 0.05, power: float = 0.8
) -> dict:
    """Achieved power, N for ``power`` and the minimum detectable effect (two-sided).

    ``kind``: ``two_group`` (``effect_size`` is Cohen's d/Hedges g, ``n1``/``n2`` per group;
    :class:`TTestIndPower`; the required N is per group with equal groups), ``paired`` (dz,
    ``n1`` pairs; :class:`TTestPower`) or ``correlation`` (r, ``n1`` participants;
    :class:`NormalIndPower` on Fisher's z = atanh(r) with ``n − 3`` observations, ``ratio=0``).
    The required N is the smallest integer reaching ``power`` (:func:`n_required`); the MDE
    (statsmodels ``solve_power``) is in the units of ``effect_size``. Arrays are accepted;
    the result holds arrays (scalars for scalar input).
    """
    scalar = np.ndim(effect_size) == 0 and np.ndim(n1) == 0
    es = np.abs(np.atleast_1d(np.asarray(effect_size, float)))
    n1 = np.broadcast_to(np.atleast_1d(np.asarray(n1, float)), es.shape)
    n2 = np.broadcast_to(np.atleast_1d(np.asarray(np.nan if n2 is None else n2, float)), es.shape)
    ok = _valid_n(kind, n1, n2)
    pw = np.full(es.shape, np.nan)
    good = ok & np.isfinite(es)
    if good.any():
        pw[good] = _power(kind, es[good], n1[good], n2[good], alpha)
    need = np.where(ok, n_required(kind, es, alpha, power), np.nan)
    mde = np.array(
        [
            _mde(kind, int(a), int(b) if kind == "two_group" else 0, float(alpha), float(power))
            if o
            else np.nan
            for a, b, o in zip(n1, n2, ok)
        ]
    )
    out = {"power": pw, "n_required": need, "mde": mde}
    return {k: float(v[0]) for k, v in out.items()} if scalar else out


POWER_KIND = {
    "two_group": "two_group",
    "paired_sessions": "paired",
    "paired_hemispheres": "paired",
    "correlation": "correlation",
}
POWER_BASIS = {
    "welch": "hedges_g (TTestIndPower)",
    "mannwhitney": "hedges_g of the same data (TTestIndPower, t-test approximation)",
    "ols": "std_beta (TTestIndPower, t-test approximation)",
    "paired_t": "dz (TTestPower)",
    "wilcoxon": "dz of the same data (TTestPower, t-test approximation)",
    "spearman": "spearman_r (NormalIndPower on Fisher z, n - 3)",
}


# ----------------------------------------------------------------------------- FDR


def fdr_correct(
    results: pd.DataFrame, alpha: float = 0.05, method: str = "fdr_bh", by=FAMILY
) -> pd.DataFrame:
    """``p_fdr`` and ``significant`` within each family (statsmodels ``multipletests``);
    rows without a p value stay NaN / False."""
    results = results.copy()
    results["p_fdr"] = np.nan
    results["significant"] = False
    for idx in results.groupby(list(by), sort=False, dropna=False).groups.values():
        p = results.loc[idx, "p"].astype(float)
        ok = p.notna()
        if ok.any():
            reject, p_adj, _, _ = multipletests(p[ok].values, alpha=alpha, method=method)
            results.loc[p[ok].index, "p_fdr"] = p_adj
            results.loc[p[ok].index, "significant"] = reject
    results["significant"] = results["significant"].astype(bool)
    return results


# ----------------------------------------------------------------------------- driver

TESTS = {
    "welch": welch_test,
    "mannwhitney": mann_whitney_test,
    "paired_t": paired_t_test,
    "wilcoxon": wilcoxon_test,
    "spearman": spearman_test,
}


def _unit_rows(contrast, key, tests, n1, n2, mean_a, mean_b, results):
    base = dict(zip(UNIT, key))
    for test, res in zip(tests, results):
        row = {
            "contrast": contrast["name"],
            "contrast_type": contrast["type"],
            **base,
            "test": test,
            "label_a": contrast["label_a"],
            "label_b": contrast["label_b"],
            "n1": n1,
            "n2": n2,
            "mean_a": mean_a,
            "mean_b": mean_b,
            **res,
        }
        yield row


def run_contrast(
    table: pd.DataFrame,
    contrast: dict,
    *,
    value="mean",
    ci_level=0.95,
    min_n=3,
    covariates=(),
    rules=(),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All tests of one (validated) contrast: ``(results without FDR/power, data)``."""
    ctype, tests = contrast["type"], contrast["tests"]
    table = apply_rules(table, rules)
    data, reason = contrast_data(table, contrast, value)
    rows = []
    if reason is not None:
        for (mod, met), _ in table.groupby(["modality", "metric"], sort=True):
            rows.extend(
                _unit_rows(
                    contrast,
                    (mod, met, np.nan, np.nan, np.nan),
                    tests,
                    0,
                    0 if ctype != "correlation" else np.nan,
                    np.nan,
                    np.nan,
                    [_nan_result(reason, effect_size_type=None)] * len(tests),
                )
            )
        return pd.DataFrame(rows), data
    pframe = participant_frame(table) if "ols" in tests else None
    designs = {}
    for key, g in data.groupby(UNIT, sort=True, observed=True):
        if ctype == "two_group":
            lv, vals = g["level"].to_numpy(), g["value"].to_numpy(float)
            a, b = vals[lv == "a"], vals[lv == "b"]
            n1, n2, ma, mb = (
                len(a),
                len(b),
                np.mean(a) if len(a) else np.nan,
                (np.mean(b) if len(b) else np.nan),
            )
        elif ctype == "correlation":
            a, b = g["x"].to_numpy(), g["value"].to_numpy()
            n1, n2, ma, mb = len(a), np.nan, np.nan, np.nan
        else:
            a, b = g["a"].to_numpy(), g["b"].to_numpy()
            n1 = n2 = len(a)
            ma, mb = (a.mean(), b.mean()) if len(a) else (np.nan, np.nan)
        results = []
        for test in tests:
            if test == "ols":
                modality = key[0]
                if modality not in designs:
                    covs = [
                        *covariates,
                        *[c for r in rules if r["modality"] == modality for c in r["covariates"]],
                    ]
                    members = data[data["modality"] == modality][["participant_id", "level"]]
                    members = members.drop_duplicates("participant_id").set_index("participant_id")
                    frame = pframe.loc[members.index].assign(
                        contrast_a=(members["level"] == "a").astype(float)
                    )
                    terms, _ = covariate_terms(frame, covs)
                    design = ols_design(frame, terms)
                    designs[modality] = (
                        design.to_numpy(float),
                        list(design.columns).index("contrast_a"),
                        {p: i for i, p in enumerate(design.index)},
                        ", ".join(terms),
                    )
                X, k, pos, cov_text = designs[modality]
                rows_x = np.array([pos.get(p, -1) for p in g["participant_id"]], dtype=int)
                keep = rows_x >= 0
                res = ols_test(
                    g["value"].to_numpy(float)[keep],
                    X[rows_x[keep]],
                    k,
                    ci_level,
                    min_n,
                    covariates=cov_text,
                )
            elif ctype == "correlation":
                res = TESTS[test](a, b, ci_level, min_n)
            else:
                res = TESTS[test](a, b, ci_level, min_n)
            results.append(res)
        rows.extend(_unit_rows(contrast, key, tests, n1, n2, ma, mb, results))
    return pd.DataFrame(rows), data


def add_power(results: pd.DataFrame, alpha=0.05, target_power=0.8) -> pd.DataFrame:
    """Power, N for ``target_power`` and MDE of every row (see :func:`power_analysis`)."""
    results = results.copy()
    cols = {k: np.full(len(results), np.nan) for k in ("power", "n_required", "mde")}
    kinds = results["contrast_type"].map(POWER_KIND).to_numpy()
    for kind in set(kinds) - {None, np.nan}:
        sel = kinds == kind
        out = power_analysis(
            kind,
            results.loc[sel, "power_es"].to_numpy(float),
            results.loc[sel, "n1"].to_numpy(float),
            results.loc[sel, "n2"].to_numpy(float),
            alpha,
            target_power,
        )
        for k, col in cols.items():
            col[sel] = out[k]
    results["power"] = cols["power"]
    results[power_column(target_power)] = cols["n_required"]
    results["mde"] = cols["mde"]
    results["power_basis"] = results["test"].map(POWER_BASIS)
    return results


def power_column(target_power: float) -> str:
    """Name of the required-N column (``n_for_80_power`` for the default 0.8)."""
    return f"n_for_{round(100 * target_power):d}_power"


def group_statistics(
    table: pd.DataFrame,
    contrasts,
    *,
    value="mean",
    alpha=0.05,
    fdr="fdr_bh",
    ci_level=0.95,
    target_power=0.8,
    min_n=3,
    covariates=(),
    modality_rules=(),
    return_data=False,
):
    """Every contrast on the gathered table: tidy results (:data:`RESULT_COLUMNS`).

    ``contrasts`` and ``modality_rules`` are the configuration lists (validated here).
    With ``return_data`` also a dict contrast name → the per-participant data compared.
    """
    contrasts = check_contrasts(contrasts)
    rules = check_rules(modality_rules)
    if value not in table:
        raise ValueError(f"group.value: column '{value}' not in the regional tables")
    if "atlas" not in table:  # tables not gathered from files (one atlas per modality)
        table = table.assign(atlas=MISSING)
    frames, datas = [], {}
    for c in contrasts:
        res, data = run_contrast(
            table,
            c,
            value=value,
            ci_level=ci_level,
            min_n=min_n,
            covariates=covariates,
            rules=rules,
        )
        frames.append(res)
        datas[c["name"]] = data
    results = (
        pd.concat([f for f in frames if len(f)], ignore_index=True)
        if any(len(f) for f in frames)
        else pd.DataFrame(columns=[*RESULT_COLUMNS, "power_es"])
    )
    for col in (*RESULT_COLUMNS, "power_es"):
        if col not in results:
            results[col] = np.nan
    results = add_power(results, alpha, target_power)
    results = fdr_correct(results, alpha, fdr)
    columns = [power_column(target_power) if c == "n_for_80_power" else c for c in RESULT_COLUMNS]
    results = results[columns]
    for col in ("n1", "n2", power_column(target_power)):
        results[col] = pd.to_numeric(results[col]).round().astype("Int64")
    return (results, datas) if return_data else results
