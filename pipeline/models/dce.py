"""DCE-MRI: variable-flip-angle T1, signal to concentration, Patlak.

Arrays have the sampled dimension last (flip angles or frames): ``(..., n)``; a whole volume
is one call. Times are seconds, Ktrans/PS is returned in 1/min, concentrations in mM.
"""

from __future__ import annotations

import numpy as np

from .signal import spgr_signal


def _check_last_axis(name, arr, n):
    if arr.shape[-1] != n:
        raise ValueError(f"{name}: last axis has {arr.shape[-1]} samples, expected {n}")


def vfa_t1(signals, flip_angles_deg, tr_s, method: str = "linear", b1=None, n_iter: int = 30):
    """T1 (s) and M0 from spoiled gradient-echo signals at several flip angles.

    ``linear``: DESPOT1, the regression of ``S/sin(a)`` on ``S/tan(a)`` (slope ``E1``).
    ``nonlinear``: least squares of the SPGR equation in (M0, R1), Gauss-Newton with
    Levenberg damping from the linear solution, all voxels at once. ``b1`` scales the
    nominal flip angles (relative B1, shape ``(...)``). Voxels where the fit is undefined
    (fewer than two angles with signal, E1 outside (0, 1)) get NaN.

    Returns
    -------
    t1_s, m0 : arrays of shape ``(...)``
    """
    s = np.asarray(signals, dtype=float)
    fa = np.asarray(flip_angles_deg, dtype=float)
    if fa.ndim != 1 or fa.size < 2:
        raise ValueError("vfa_t1: at least two flip angles are needed")
    if np.unique(fa).size < 2:
        raise ValueError("vfa_t1: the flip angles must differ")
    _check_last_axis("vfa_t1 signals", s, fa.size)
    if np.ndim(tr_s) != 0 or tr_s <= 0:
        raise ValueError("vfa_t1: TR must be one positive number of seconds")
    if method not in ("linear", "nonlinear"):
        raise ValueError("vfa_t1: method is 'linear' or 'nonlinear'")
    alpha = np.deg2rad(fa) * (1.0 if b1 is None else np.asarray(b1, float)[..., None])
    alpha = np.broadcast_to(alpha, s.shape)
    x = s / np.tan(alpha)
    y = s / np.sin(alpha)
    xm, ym = x.mean(-1, keepdims=True), y.mean(-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = ((x - xm) * (y - ym)).sum(-1) / ((x - xm) ** 2).sum(-1)
        intercept = ym[..., 0] - slope * xm[..., 0]
        ok = (slope > 0) & (slope < 1)
        r1 = np.where(ok, -np.log(np.where(ok, slope, 0.5)) / tr_s, np.nan)
        m0 = np.where(ok, intercept / (1 - np.where(ok, slope, 0.5)), np.nan)
    if method == "nonlinear":
        r1, m0 = _vfa_nonlinear(s, alpha, tr_s, r1, m0, n_iter)
    with np.errstate(divide="ignore"):
        return 1.0 / r1, m0


def _vfa_nonlinear(s, alpha, tr, r1, m0, n_iter):
    good = np.isfinite(r1) & np.isfinite(m0) & (r1 > 0)
    r1 = np.where(good, r1, 1.0)
    m0 = np.where(good, m0, np.nanmax(s, axis=-1) * 5)
    lam = np.full(r1.shape, 1e-3)
    sa, ca = np.sin(alpha), np.cos(alpha)

    def model(m0, r1):
        e = np.exp(-tr * r1)[..., None]
        den = 1 - ca * e
        return m0[..., None] * sa * (1 - e) / den, e, den

    pred, e, den = model(m0, r1)
    cost = ((s - pred) ** 2).sum(-1)
    for _ in range(n_iter):
        d_m0 = sa * (1 - e) / den
        # dS/dE = M0 sin(a) (cos(a) - 1) / den^2 ; dE/dR1 = -TR E
        d_r1 = m0[..., None] * sa * (ca - 1) / den**2 * (-tr * e)
        res = s - pred
        a11 = (d_m0**2).sum(-1)
        a22 = (d_r1**2).sum(-1)
        a12 = (d_m0 * d_r1).sum(-1)
        g1 = (d_m0 * res).sum(-1)
        g2 = (d_r1 * res).sum(-1)
        a11d, a22d = a11 * (1 + lam), a22 * (1 + lam)
        det = a11d * a22d - a12**2
        with np.errstate(divide="ignore", invalid="ignore"):
            step_m0 = (a22d * g1 - a12 * g2) / det
            step_r1 = (a11d * g2 - a12 * g1) / det
        new_m0, new_r1 = m0 + step_m0, r1 + step_r1
        valid = np.isfinite(new_m0) & np.isfinite(new_r1) & (new_r1 > 0)
        new_m0 = np.where(valid, new_m0, m0)
        new_r1 = np.where(valid, new_r1, r1)
        npred, ne, nden = model(new_m0, new_r1)
        ncost = ((s - npred) ** 2).sum(-1)
        better = valid & (ncost < cost)
        m0 = np.where(better, new_m0, m0)
        r1 = np.where(better, new_r1, r1)
        cost = np.where(better, ncost, cost)
        lam = np.where(better, lam / 10, lam * 10)
        pred, e, den = model(m0, r1)
    r1 = np.where(good, r1, np.nan)
    return r1, np.where(good, m0, np.nan)


def signal_to_concentration(
    signal, t1_s, flip_angle_deg, tr_s, r1_per_mM_s, n_baseline: int, skip_first: bool = True
):
    """Gadolinium concentration (mM) from a spoiled gradient-echo time series.

    M0 comes from the mean of the baseline frames ``[1, n_baseline)`` (the first dynamic is
    not yet at steady state and is left out, as in the OSIPI reference; ``skip_first=False``
    uses ``[0, n_baseline)``) and the pre-contrast T1; the
    SPGR equation is then inverted for R1(t) frame by frame and
    ``C = (R1(t) - R1_0) / r1``. ``signal`` is ``(..., n_frames)``; ``t1_s`` is ``(...)``.
    Frames whose signal exceeds what any R1 can give (noise at high enhancement) get NaN.
    """
    s = np.asarray(signal, dtype=float)
    t1 = np.asarray(t1_s, dtype=float)
    first = 1 if skip_first else 0
    if not first < n_baseline <= s.shape[-1]:
        raise ValueError(f"signal_to_concentration: n_baseline must be {first + 1}..{s.shape[-1]}")
    if r1_per_mM_s <= 0 or tr_s <= 0:
        raise ValueError("signal_to_concentration: relaxivity and TR must be positive")
    r10 = 1.0 / t1
    alpha = np.deg2rad(flip_angle_deg)
    m0 = s[..., first:n_baseline].mean(-1) / spgr_signal(1.0, r10, flip_angle_deg, tr_s)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = s / (m0[..., None] * np.sin(alpha))
        e = (1 - q) / (1 - q * np.cos(alpha))
        r1 = np.where((e > 0) & (e < 1), -np.log(e) / tr_s, np.nan)
    return (r1 - r10[..., None]) / r1_per_mM_s


def _check_curves(name, ct, cp, t_s):
    """Validated float arrays ``ct (..., n)``, ``cp (n,)``, ``t (n,)``."""
    ct = np.asarray(ct, dtype=float)
    cp = np.asarray(cp, dtype=float)
    t = np.asarray(t_s, dtype=float)
    if t.ndim != 1 or cp.shape != t.shape:
        raise ValueError(f"{name}: cp and t_s must be 1-D of the same length")
    if np.any(np.diff(t) <= 0):
        raise ValueError(f"{name}: frame times must increase")
    _check_last_axis(f"{name} ct", ct, t.size)
    return ct, cp, t


def _cumulative_integral(cp, t_min):
    steps = np.diff(t_min) * (cp[..., 1:] + cp[..., :-1]) / 2
    return np.concatenate([np.zeros(cp.shape[:-1] + (1,)), np.cumsum(steps, axis=-1)], -1)


def _shift(cp, t_s, delay_s):
    """``cp(t - delay)`` by linear interpolation (0 before the start)."""
    return np.interp(t_s - delay_s, t_s, cp, left=0.0)


def patlak(ct, cp, t_s, delays_s=None):
    """Patlak fit ``Ct(t) = vp Cp(t - d) + Ktrans ∫ Cp(u - d) du`` by linear least squares.

    Parameters
    ----------
    ct : array (..., n)
        tissue concentration
    cp : array (n,)
        plasma (arterial or venous) input function, on the same time points
    t_s : array (n,)
        frame times in seconds, increasing
    delays_s : sequence of float or None
        candidate arterial delays (s); the one with the smallest residual is kept per voxel
        (grid search). None: no delay.

    Returns
    -------
    dict with ``ktrans`` (1/min), ``vp``, ``delay_s`` and ``rss`` (residual sum of squares),
    each of shape ``(...)``.
    """
    ct, cp, t = _check_curves("patlak", ct, cp, t_s)
    flat = ct.reshape(-1, t.size).T  # (n, voxels)
    best = None
    for d in delays_s if delays_s is not None else [0.0]:
        c = _shift(cp, t, d)
        design = np.stack([c, _cumulative_integral(c, t / 60.0)], axis=1)  # (n, 2)
        # closed-form least squares (2 unknowns): (D'D)^-1 D'y for all voxels at once
        coef = np.linalg.solve(design.T @ design, design.T @ flat)
        rss = (flat * flat).sum(0) - (coef * (design.T @ flat)).sum(0)
        rss = np.maximum(rss, 0.0)
        if best is None:
            best = [coef, rss, np.full(rss.shape, float(d))]
        else:
            better = rss < best[1]
            best[0] = np.where(better, coef, best[0])
            best[1] = np.where(better, rss, best[1])
            best[2] = np.where(better, float(d), best[2])
    shape = ct.shape[:-1]
    return {
        "vp": best[0][0].reshape(shape),
        "ktrans": best[0][1].reshape(shape),
        "delay_s": best[2].reshape(shape),
        "rss": best[1].reshape(shape),
    }


def _exp_convolutions(cp, t_s, keps):
    """``∫ Cp(u) exp(-kep (t-u)) du`` (t in minutes) for each kep: (n_kep, n)."""
    from .pharmacokinetics import extended_tofts_concentration

    keps = np.asarray(keps, dtype=float)
    return extended_tofts_concentration(
        cp, t_s, np.ones_like(keps), 1.0 / keps, np.zeros_like(keps)
    )


def _linear_fit(ct, cp, basis, with_vp):
    """Per voxel, ``ct ≈ vp cp + ktrans basis`` (vp >= 0, ktrans >= 0): coefficients, rss."""
    bb = basis @ basis
    bc = ct @ basis
    k_only = np.maximum(bc / bb, 0.0)
    if not with_vp:
        return k_only, np.zeros_like(k_only), ((ct - k_only[:, None] * basis) ** 2).sum(1)
    pp, pb = cp @ cp, cp @ basis
    pc = ct @ cp
    det = pp * bb - pb**2
    vp = (bb * pc - pb * bc) / det
    kt = (pp * bc - pb * pc) / det
    neg = (vp < 0) | (kt < 0)
    vp_only = np.maximum(pc / pp, 0.0)
    rss_k = ((ct - k_only[:, None] * basis) ** 2).sum(1)
    rss_v = ((ct - vp_only[:, None] * cp) ** 2).sum(1)
    use_k = rss_k <= rss_v
    vp = np.where(neg, np.where(use_k, 0.0, vp_only), vp)
    kt = np.where(neg, np.where(use_k, k_only, 0.0), kt)
    rss = ((ct - vp[:, None] * cp - kt[:, None] * basis) ** 2).sum(1)
    return kt, vp, rss


KEP_RANGE = (1e-3, 10.0)  # 1/min: the grid and the bounds of the refinement


def _tofts_fit(ct, cp, t_s, with_vp, delays_s, n_iter):
    from .pharmacokinetics import extended_tofts_concentration

    ct, cp, t = _check_curves("tofts", ct, cp, t_s)
    shape = ct.shape[:-1]
    flat = ct.reshape(-1, t.size)
    keps = np.geomspace(KEP_RANGE[0], KEP_RANGE[1], 60)
    best = None
    for d in delays_s if delays_s is not None else [0.0]:
        c = _shift(cp, t, d)
        bases = _exp_convolutions(c, t, keps)
        for kep, basis in zip(keps, bases):
            kt, vp, rss = _linear_fit(flat, c, basis, with_vp)
            over = kt > kep  # ve > 1 is not physical: cap at ve = 1
            if over.any():
                kt = np.where(over, kep, kt)
                fit_ = vp[:, None] * c + kt[:, None] * basis
                rss = np.where(over, ((flat - fit_) ** 2).sum(1), rss)
            cand = (kt, np.full(kt.shape, kep), vp, rss, np.full(kt.shape, float(d)))
            if best is None:
                best = list(cand)
            else:
                better = rss < best[3]
                best = [np.where(better, a, b) for a, b in zip(cand, best)]
    kt, kep, vp, rss, delay = best
    # Levenberg-Marquardt refinement in (Ktrans, log kep, vp) around the grid optimum
    params = np.stack([kt, np.log(kep), vp], axis=1)
    free = [0, 1, 2] if with_vp else [0, 1]
    lam = np.full(len(flat), 1e-2)
    cps = {float(d): _shift(cp, t, d) for d in np.unique(delay)}

    def model(p):
        out = np.empty_like(flat)
        for d, c in cps.items():
            sel = delay == d
            q = p[sel]
            kep_ = np.exp(q[:, 1])
            out[sel] = extended_tofts_concentration(c, t, q[:, 0], q[:, 0] / kep_, q[:, 2])
        return out

    pred = model(params)
    cost = ((flat - pred) ** 2).sum(1)
    for _ in range(n_iter):
        jac = []
        for j in free:
            h = 1e-6 + 1e-4 * np.abs(params[:, j])
            p2 = params.copy()
            p2[:, j] += h
            jac.append((model(p2) - pred) / h[:, None])
        jac = np.stack(jac, axis=2)  # (V, n, P)
        res = flat - pred
        jtj = np.einsum("vnp,vnq->vpq", jac, jac)
        jtr = np.einsum("vnp,vn->vp", jac, res)
        diag = np.einsum("vpp->vp", jtj)
        a = jtj + lam[:, None, None] * np.einsum("vp,pq->vpq", diag + 1e-12, np.eye(len(free)))
        try:
            step = np.linalg.solve(a, jtr[..., None])[..., 0]
        except np.linalg.LinAlgError:
            break
        trial = params.copy()
        trial[:, free] += step
        trial[:, 1] = np.clip(trial[:, 1], np.log(KEP_RANGE[0]), np.log(KEP_RANGE[1]))
        # physical bounds: Ktrans >= 0, ve = Ktrans/kep <= 1, 0 <= vp <= 1
        trial[:, 0] = np.clip(trial[:, 0], 0.0, np.exp(trial[:, 1]))
        trial[:, 2] = np.clip(trial[:, 2], 0.0, 1.0)
        tpred = model(trial)
        tcost = ((flat - tpred) ** 2).sum(1)
        better = tcost < cost
        params = np.where(better[:, None], trial, params)
        pred = np.where(better[:, None], tpred, pred)
        cost = np.where(better, tcost, cost)
        lam = np.where(better, lam / 5, lam * 5)
    kt, kep, vp = params[:, 0], np.exp(params[:, 1]), params[:, 2]
    ve = np.where(kt > 0, kt / kep, np.nan)
    out = {"ktrans": kt, "ve": ve, "kep": kep, "delay_s": delay, "rss": cost}
    if with_vp:
        out["vp"] = vp
    return {k: v.reshape(shape) for k, v in out.items()}


def tofts(ct, cp, t_s, delays_s=None, n_iter: int = 30):
    """Standard Tofts fit ``Ct = Ktrans ∫ Cp(u) exp(-kep (t-u)) du``, ``ve = Ktrans/kep``.

    A grid over kep (60 values, 0.001–10 /min) with the linear least-squares Ktrans at each
    gives a global start for every voxel; Levenberg–Marquardt then refines (Ktrans, kep)
    within physical bounds (Ktrans >= 0, ve <= 1, kep in 0.001–10 /min).
    ``delays_s``: candidate delays of the input function (grid search), None for none.

    Returns a dict of ``ktrans`` (1/min), ``ve``, ``kep`` (1/min), ``delay_s``, ``rss``.
    """
    return _tofts_fit(ct, cp, t_s, False, delays_s, n_iter)


def extended_tofts(ct, cp, t_s, delays_s=None, n_iter: int = 30):
    """Extended Tofts fit ``Ct = vp Cp + Ktrans ∫ Cp(u) exp(-kep (t-u)) du``.

    Same strategy as :func:`tofts` with vp >= 0 in the linear step and the refinement.
    Returns a dict of ``ktrans`` (1/min), ``ve``, ``vp``, ``kep``, ``delay_s``, ``rss``.
    """
    return _tofts_fit(ct, cp, t_s, True, delays_s, n_iter)


def select_vif(curves, n_voxels: int = 24, min_peak_fraction: float = 0.6):
    """Venous input function from candidate sinus voxels (``curves``: (voxels, frames), mM).

    Partial-volume screening: voxels whose peak is below ``min_peak_fraction`` of the
    95th-percentile peak are dropped (they mix blood with dura, CSF or bone), as are curves
    with non-finite samples; among the rest, the ``n_voxels`` with the largest area under the
    curve are combined by their frame-wise median. Ranking noisy curves and keeping the top
    few biases the input upwards (on the demo, +9 % in area with 8 voxels, +1 % with 32):
    prefer more voxels where the sinus allows it.

    Returns the blood concentration curve and the number of voxels used.
    """
    c = np.asarray(curves, dtype=float)
    if c.ndim != 2:
        raise ValueError("select_vif: curves must be (voxels, frames)")
    ok = np.all(np.isfinite(c), axis=1)
    if ok.sum() == 0:
        raise ValueError("select_vif: no candidate voxel has a finite concentration curve")
    c = c[ok]
    peak = c.max(1)
    keep = peak >= min_peak_fraction * np.percentile(peak, 95)
    c = c[keep]
    auc = c.sum(1)
    top = np.argsort(auc)[::-1][:n_voxels]
    return np.median(c[top], axis=0), int(top.size)
