"""Power of the group tests (``statsmodels.stats.power``): :class:`TTestIndPower` for two
groups (Hedges g; the rank and model tests use the same t-test approximation at their
standardised effect), :class:`TTestPower` for pairs (dz), and :class:`NormalIndPower` on
Fisher's z with ``n − 3`` observations (``ratio=0``, one sample) for correlations:
achieved power, the n a target power needs and the minimum detectable effect.
"""

from __future__ import annotations

import math
import warnings
from functools import cache

import numpy as np
from statsmodels.stats.power import NormalIndPower, TTestIndPower, TTestPower

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
