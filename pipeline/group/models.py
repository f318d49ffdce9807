"""Group statistics of the tidy regional tables: every contrast's tests, FDR and power.

Pure functions over :class:`pandas.DataFrame` (scipy and statsmodels; no nipype, no images).
The input is the gathered group table (:data:`pipeline.models.regional.TABLE_COLUMNS` plus
the ``participants.tsv``/``sessions.tsv`` columns); the output is one tidy row per
contrast × modality × metric × ROI × hemisphere × test
(:data:`~pipeline.group.contrasts.RESULT_COLUMNS`). The contrasts are defined in
:mod:`pipeline.group.contrasts`, the tests in :mod:`pipeline.group.inference`, power in
:mod:`pipeline.group.power`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .contrasts import (
    MISSING,
    RESULT_COLUMNS,
    UNIT,
    apply_rules,
    check_contrasts,
    check_rules,
    contrast_data,
    participant_frame,
)
from .inference import (
    _nan_result,
    covariate_terms,
    fdr_correct,
    mann_whitney_test,
    ols_design,
    ols_test,
    paired_t_test,
    spearman_test,
    welch_test,
    wilcoxon_test,
)
from .power import POWER_BASIS, POWER_KIND, power_analysis

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
