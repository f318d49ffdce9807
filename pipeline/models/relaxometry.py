"""Multi-echo gradient-echo relaxometry: R2* (and S0) maps, ΔR2* after iron oxide.

Arrays have the echo dimension last: ``(..., n_echo)``; a whole volume is one call (the
voxels are processed in chunks to bound memory, never one at a time). Echo times are
seconds, R2* is 1/s.

The decay model is monoexponential, ``S(TE) = S0 exp(-TE R2*)`` (see
:func:`pipeline.models.signal.multiecho_signal`).

Noise floor
-----------
Magnitude images have a Rician noise floor: where the true signal has decayed to a few times
the noise level, the measured magnitude no longer follows the exponential and a fit through
it underestimates R2*. inflamap does not model the floor; it **excludes** the echoes in it.
Given ``noise_floor`` (the standard deviation σ of the Gaussian noise in each of the real and
imaginary channels, in signal units), an echo is usable if its measured signal is at least
``floor_factor * noise_floor`` (default ``3σ``, where the Rician mean is within 6 % of the
true signal) and so are all earlier echoes: the decay is monotonic, so once one echo is in
the floor the later ones are too, even where the noise lifts one of them over the threshold.
Echoes that are non-finite or ``<= 0`` are unusable with or without ``noise_floor`` (the same
truncation applies). Each voxel is fitted on its leading usable echoes; if fewer than
``min_echoes`` are usable, the first ``min_echoes`` finite positive echoes are fitted anyway
(so that the voxel still gets a value, usually an underestimate of R2*) and the voxel is
marked ``valid = False``. The threshold acts on the measured signal, so an echo near it is
kept more often when the noise lifts it: at SNR 100 this costs about 0.1-0.2 % of R2* at
R2* = 100 /s (tests/test_relaxometry.py), against several percent gained where the decay
reaches the floor within the echo train.
"""

from __future__ import annotations

import operator
from typing import NamedTuple

import numpy as np

METHODS = ("loglinear", "nonlinear")
DEFAULT_CHUNK = 16_384  # voxels per chunk (fastest on the benchmark: temporaries stay in cache)


class R2StarFit(NamedTuple):
    """Result of :func:`fit_r2star`; every field has the voxel shape ``(...)``.

    Attributes
    ----------
    r2star : float array
        R2* in 1/s (>= 0); NaN outside the mask and where no fit was possible.
    s0 : float array
        Signal extrapolated to TE = 0 (units of ``echoes``); NaN as ``r2star``.
    rmse : float array
        Root mean square residual of the magnitude model over the echoes used,
        ``sqrt(mean((S - S0 exp(-TE R2*))**2))`` in signal units (for both methods, so that
        they compare); NaN as ``r2star``.
    nrmse : float array
        ``rmse / s0``: the residual relative to S0 (dimensionless); for pure noise of
        standard deviation σ it is about ``σ / S0``, i.e. 1/SNR.
    n_echoes_used : int array
        Number of leading echoes the fit used (0 outside the mask and where no fit was
        possible).
    valid : bool array
        Inside the mask, at least ``min_echoes`` usable echoes (above the noise floor) and a
        finite fit. Voxels fitted on floor-contaminated echoes (see the module notes) have a
        finite ``r2star`` but ``valid = False``.
    """

    r2star: np.ndarray
    s0: np.ndarray
    rmse: np.ndarray
    nrmse: np.ndarray
    n_echoes_used: np.ndarray
    valid: np.ndarray


def _check_te(te_s, n_echo, min_echoes):
    te = np.asarray(te_s, dtype=float)
    if te.ndim != 1:
        raise ValueError("fit_r2star: te_s must be a 1-D sequence of echo times in seconds")
    if te.size != n_echo:
        raise ValueError(
            f"fit_r2star: echoes has {n_echo} echoes on its last axis but te_s "
            f"has {te.size} echo times"
        )
    if te.size < 2:
        raise ValueError("fit_r2star: at least 2 echoes are needed to fit R2*")
    if not np.all(np.isfinite(te)) or np.any(te <= 0):
        raise ValueError("fit_r2star: echo times must be finite and positive (seconds)")
    if np.any(np.diff(te) <= 0):
        raise ValueError(
            "fit_r2star: echo times must be strictly increasing (sort the echoes by EchoTime)"
        )
    if te.max() > 1.0:
        raise ValueError(
            f"fit_r2star: echo times look like milliseconds (max {te.max():g}); "
            "give them in seconds, e.g. 0.002 for 2 ms"
        )
    try:
        min_echoes = operator.index(min_echoes)
    except TypeError:
        raise ValueError("fit_r2star: min_echoes must be an integer") from None
    if min_echoes < 2:
        raise ValueError("fit_r2star: min_echoes must be at least 2")
    if min_echoes > te.size:
        raise ValueError(
            f"fit_r2star: min_echoes={min_echoes} but only {te.size} echoes "
            "were given (fewer echoes than min_echoes)"
        )
    return te, min_echoes


def _voxel_array(name, value, shape, dtype):
    """``value`` broadcast to the voxel shape, flattened (ValueError naming ``name``)."""
    arr = np.asarray(value, dtype=dtype)
    try:
        return np.broadcast_to(arr, shape).reshape(-1)
    except ValueError:
        raise ValueError(
            f"fit_r2star: {name} has shape {arr.shape}, which does not match "
            f"the voxel shape {shape} (echoes without the last axis)"
        ) from None


def _usable_echoes(s, floor, min_echoes):
    """Per voxel: echoes to fit (leading run) and the number above the floor."""
    with np.errstate(invalid="ignore"):
        pos = np.isfinite(s) & (s > 0)
        good = pos if floor is None else pos & (s >= floor[:, None])
    n_pos = np.cumprod(pos, axis=1).sum(1)
    n_good = np.cumprod(good, axis=1).sum(1)
    n_used = np.maximum(n_good, np.minimum(min_echoes, n_pos))
    used = np.arange(s.shape[1]) < n_used[:, None]
    return used, n_used, n_good


def _wls_line(y, w, te):
    """Per voxel, weighted least squares of ``y = a - TE R2*``; R2* < 0 projected to 0."""
    w = w / np.max(w, axis=1, keepdims=True)  # scale-free weights, no overflow
    sw = w.sum(1)
    xm = (w @ te) / sw
    ym = (w * y).sum(1) / sw
    dx = te[None, :] - xm[:, None]
    r2 = -(w * dx * (y - ym[:, None])).sum(1) / (w * dx * dx).sum(1)
    r2 = np.maximum(r2, 0.0)
    return ym + r2 * xm, r2


def _loglinear(s, used, te, n_reweight):
    """Weighted least squares of ``log S = log S0 - TE R2*`` with weights ``S²``.

    ``Var(log S) ≈ σ²/S²``, so ``S²`` are the inverse-variance weights. The first pass takes
    them from the measured signal; those weights correlate with the noise (an echo the noise
    lifts gets more weight), which flattens the decay: at SNR 100 R2* comes out about 1 %
    low at R2* = 100 /s. Each of the ``n_reweight`` further passes takes the weights from
    the previous pass's fitted signal ``S0 exp(-TE R2*)`` instead, which removes that bias
    (tests/test_relaxometry.py measures both). Closed form per voxel; R2* < 0 is projected
    to the bound R2* = 0 (where log S0 is the weighted mean of log S).
    """
    safe = np.where(used, s, 1.0)
    y = np.log(safe)
    w = np.where(used, safe, 0.0) ** 2
    log_s0, r2 = _wls_line(y, w, te)
    for _ in range(n_reweight):
        w = np.where(used, np.exp(2 * (log_s0[:, None] - r2[:, None] * te)), 0.0)
        log_s0, r2 = _wls_line(y, w, te)
    return np.exp(log_s0), r2


def _s0_given_r2(s, u, te, r2):
    """Least-squares S0 for fixed R2* (the model is linear in S0)."""
    e = np.exp(-r2[:, None] * te) * u
    return (s * e).sum(1) / (e * e).sum(1)


def _nonlinear(s, used, te, s0, r2, n_iter, tol):
    """Least squares of ``S = S0 exp(-TE R2*)`` over the used echoes, all voxels at once.

    Levenberg–Marquardt on (S0, R2*) with per-voxel damping λ (Marquardt scaling of the 2×2
    normal equations, solved in closed form). The R2* of each step is projected on R2* >= 0
    and S0 is then set to its exact least-squares value for that R2* (the model is linear in
    S0), so a trial point is never worse in S0 than the Gauss–Newton one. A step is kept if
    it lowers the voxel's residual (λ/10) and rejected otherwise (λ*10). A voxel stops when
    its R2* step is below ``tol * max(R2*, 1 /s)`` and its S0 step below ``tol * S0``; only
    voxels still iterating are computed.
    """
    u = used.astype(float)
    s0 = _s0_given_r2(s, u, te, r2)
    cost = ((s - s0[:, None] * np.exp(-r2[:, None] * te)) ** 2 * u).sum(1)
    lam = np.full(len(s), 1e-3)
    active = np.flatnonzero(np.isfinite(cost))
    for _ in range(n_iter):
        if active.size == 0:
            break
        sa, ua = s[active], u[active]
        p0, p1, la = s0[active], r2[active], lam[active]
        e = np.exp(-p1[:, None] * te) * ua
        res = sa * ua - p0[:, None] * e
        j2 = -te * p0[:, None] * e  # d pred / d R2*
        a11 = (e * e).sum(1)
        a22 = (j2 * j2).sum(1)
        a12 = (e * j2).sum(1)
        g1 = (e * res).sum(1)
        g2 = (j2 * res).sum(1)
        a11 *= 1 + la
        a22 *= 1 + la
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            d1 = (a11 * g2 - a12 * g1) / (a11 * a22 - a12 * a12)
            t1 = np.maximum(p1 + np.where(np.isfinite(d1), d1, 0.0), 0.0)
            t0 = _s0_given_r2(sa, ua, te, t1)
            tcost = ((sa - t0[:, None] * np.exp(-t1[:, None] * te)) ** 2 * ua).sum(1)
        better = np.isfinite(tcost) & np.isfinite(t0) & (tcost < cost[active])
        acc = active[better]
        s0[acc], r2[acc], cost[acc] = t0[better], t1[better], tcost[better]
        lam[active] = np.where(better, la * 0.1, la * 10.0)
        with np.errstate(invalid="ignore"):
            small = (np.abs(t1 - p1) <= tol * np.maximum(p1, 1.0)) & (
                np.abs(t0 - p0) <= tol * np.abs(p0)
            )
        done = small | (la > 1e12) | (cost[active] == 0)
        active = active[~done]
    return s0, r2


def _fit_chunk(s, te, floor, method, min_echoes, n_reweight, n_iter, tol):
    used, n_used, n_good = _usable_echoes(s, floor, min_echoes)
    fittable = n_used >= 2
    nan = np.full(len(s), np.nan)
    s0, r2, rmse = nan.copy(), nan.copy(), nan.copy()
    if fittable.any():
        uf = used[fittable]
        sf = np.where(uf, s[fittable], 0.0)  # unused echoes may be NaN: zero them
        with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
            s0f, r2f = _loglinear(sf, uf, te, n_reweight)
            if method == "nonlinear":
                s0f, r2f = _nonlinear(sf, uf, te, s0f, r2f, n_iter, tol)
            pred = s0f[:, None] * np.exp(-r2f[:, None] * te)
            sq = np.where(uf, (sf - pred) ** 2, 0.0)
            rmse[fittable] = np.sqrt(sq.sum(1) / n_used[fittable])
        s0[fittable], r2[fittable] = s0f, r2f
    ok = np.isfinite(r2) & np.isfinite(s0) & (s0 > 0)
    s0[~ok] = r2[~ok] = rmse[~ok] = np.nan
    n_used = np.where(ok, n_used, 0)
    return s0, r2, rmse, n_used, ok & (n_good >= min_echoes)


def fit_r2star(
    echoes,
    te_s,
    method: str = "loglinear",
    mask=None,
    noise_floor=None,
    min_echoes: int = 3,
    floor_factor: float = 3.0,
    n_reweight: int = 1,
    n_iter: int = 50,
    tol: float = 1e-7,
    chunk_size: int = DEFAULT_CHUNK,
) -> R2StarFit:
    """R2* and S0 maps from multi-echo gradient-echo magnitude images.

    Parameters
    ----------
    echoes : array (..., n_echo)
        Magnitude signal, echoes on the last axis, in the order of ``te_s``.
    te_s : sequence of float (n_echo,)
        Echo times in **seconds**, positive and strictly increasing (a maximum above 1 s is
        taken for milliseconds and rejected).
    method : {"loglinear", "nonlinear"}
        ``loglinear``: weighted least squares of ``log S`` on TE with weights ``S²`` (the
        inverse variance of ``log S``), closed form for every voxel at once; R2* < 0 is set
        to 0. The weights of the first pass are the measured ``S²``, those of the
        ``n_reweight`` further passes the fitted ``S²`` (less biased, see below).
        ``nonlinear``: least squares of ``S = S0 exp(-TE R2*)`` on the magnitudes,
        Levenberg–Marquardt vectorised over voxels with per-voxel damping, started from the
        log-linear estimate, bounded R2* >= 0.
    mask : bool array (...), optional
        Voxels to fit; the others get NaN (``n_echoes_used`` 0, ``valid`` False).
    noise_floor : float or array (...), optional
        Noise standard deviation σ (of the Gaussian noise in each channel before the
        magnitude; signal units; one value or one per voxel). Echoes below
        ``floor_factor * noise_floor``, and all echoes after the first such echo, are
        excluded from the voxel's fit (see the module notes). None: only
        non-finite and non-positive echoes (and those after them) are excluded.
    min_echoes : int
        Fewest usable echoes for a valid fit (>= 2, <= n_echo). A voxel with fewer is still
        fitted on its first ``min_echoes`` positive echoes but flagged ``valid = False``.
    floor_factor : float
        Threshold of the noise-floor exclusion in units of ``noise_floor`` (default 3).
    n_reweight : int
        Log-linear passes re-weighted with the fitted signal after the first (measured-signal
        weights). 0 gives the classic single-pass fit, which underestimates R2* by up to
        ~1 % at SNR 100 and R2* = 100 /s; 1 (default) brings it below ~0.3 % (0.4 % with
        the noise floor). Also used for the start of the nonlinear fit.
    n_iter, tol : int, float
        Maximum iterations and relative step tolerance of the nonlinear fit.
    chunk_size : int
        Voxels processed at once (memory: about ``10 * chunk_size * n_echo * 8`` bytes).

    Returns
    -------
    R2StarFit
        ``(r2star, s0, rmse, nrmse, n_echoes_used, valid)``, each of the voxel shape
        ``(...)``; see :class:`R2StarFit`.

    Raises
    ------
    ValueError
        Echo-time count different from the last axis of ``echoes``, fewer than 2 echoes or
        than ``min_echoes``, echo times not positive, not increasing or in milliseconds,
        an unknown method, complex data, a mask or noise floor of the wrong shape.
    """
    if method not in METHODS:
        raise ValueError(f"fit_r2star: method must be one of {METHODS}, got {method!r}")
    s = np.asarray(echoes)
    if np.iscomplexobj(s):
        raise ValueError("fit_r2star: echoes are complex; pass the magnitude images (np.abs)")
    if s.ndim < 1:
        raise ValueError("fit_r2star: echoes must have the echoes on the last axis")
    te, min_echoes = _check_te(te_s, s.shape[-1], min_echoes)
    if not floor_factor > 0:
        raise ValueError("fit_r2star: floor_factor must be positive")
    if int(n_iter) < 0 or int(n_reweight) < 0 or not tol > 0 or int(chunk_size) < 1:
        raise ValueError(
            "fit_r2star: n_iter >= 0, n_reweight >= 0, tol > 0 and chunk_size >= 1 are required"
        )
    shape = s.shape[:-1]
    n_vox = int(np.prod(shape, dtype=np.int64))
    flat = s.reshape(n_vox, te.size)
    sel = (
        np.arange(n_vox)
        if mask is None
        else np.flatnonzero(_voxel_array("mask", mask, shape, bool))
    )
    floor = None
    if noise_floor is not None:
        nf = np.asarray(noise_floor, dtype=float)
        if np.any(~np.isfinite(nf)) or np.any(nf < 0):
            raise ValueError("fit_r2star: noise_floor must be finite and non-negative")
        floor = _voxel_array("noise_floor", nf * float(floor_factor), shape, float)

    r2 = np.full(n_vox, np.nan)
    s0 = np.full(n_vox, np.nan)
    rmse = np.full(n_vox, np.nan)
    n_used = np.zeros(n_vox, dtype=np.int16)
    valid = np.zeros(n_vox, dtype=bool)
    for start in range(0, sel.size, int(chunk_size)):
        idx = sel[start : start + int(chunk_size)]
        out = _fit_chunk(
            flat[idx].astype(float),
            te,
            None if floor is None else floor[idx],
            method,
            int(min_echoes),
            int(n_reweight),
            int(n_iter),
            float(tol),
        )
        s0[idx], r2[idx], rmse[idx], n_used[idx], valid[idx] = out
    with np.errstate(divide="ignore", invalid="ignore"):
        nrmse = rmse / s0
    return R2StarFit(
        r2.reshape(shape),
        s0.reshape(shape),
        rmse.reshape(shape),
        nrmse.reshape(shape),
        n_used.reshape(shape),
        valid.reshape(shape),
    )


def delta_r2star(pre, post, mask=None):
    """ΔR2* = post − pre (1/s), e.g. after ferumoxytol, NaN where either is unusable.

    Parameters
    ----------
    pre, post : R2StarFit or array (...)
        R2* maps on the same grid (post registered to pre). For an :class:`R2StarFit` its
        ``valid`` map is honoured; for a plain array, every finite value counts as valid.
    mask : bool array (...), optional
        Voxels outside it get NaN.

    Returns
    -------
    float array (...)
        ``post - pre`` where both are valid and finite (and inside ``mask``), NaN elsewhere.
    """

    def split(x):
        if isinstance(x, R2StarFit):
            return np.asarray(x.r2star, float), np.asarray(x.valid, bool)
        arr = np.asarray(x, dtype=float)
        return arr, np.ones(arr.shape, bool)

    a, va = split(pre)
    b, vb = split(post)
    if a.shape != b.shape:
        raise ValueError(
            f"delta_r2star: pre has shape {a.shape} but post has {b.shape}; "
            "resample them to one grid first"
        )
    ok = va & vb & np.isfinite(a) & np.isfinite(b)
    if mask is not None:
        m = np.asarray(mask, bool)
        if m.shape != a.shape:
            raise ValueError(f"delta_r2star: mask has shape {m.shape}, maps have {a.shape}")
        ok &= m
    with np.errstate(invalid="ignore"):
        return np.where(ok, b - a, np.nan)
