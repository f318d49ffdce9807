"""The tests of the group level: each gives a statistic, p, an effect size with its
confidence interval and n; too few participants, no variance or a singular model give a row
of NaN with the reason in ``reason``, never an exception. Benjamini–Hochberg FDR
(``statsmodels.stats.multitest``) within each family.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from scipy import special, stats
from statsmodels.stats.meta_analysis import effectsize_smd
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.nonparametric import rank_compare_2indep
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from .contrasts import FAMILY

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
