"""Forward models of contrast-agent kinetics (population input function, Tofts family).

The fits of these models belong to the DCE work; the forward models are shared with the
digital reference object (:mod:`pipeline.demo`).
"""

from __future__ import annotations

import numpy as np

# Parker et al. 2006 (MRM 56:993) population AIF parameters: whole blood, mM, time in minutes.
_PARKER = dict(
    A1=0.809,
    A2=0.330,
    T1=0.17046,
    T2=0.365,
    sigma1=0.0563,
    sigma2=0.132,
    alpha=1.050,
    beta=0.1685,
    s=38.078,
    tau=0.483,
)


def parker_aif(t_s, delay_s: float = 0.0, hematocrit: float | None = None):
    """Parker population arterial input function.

    Parameters
    ----------
    t_s : array (n,)
        sample times in seconds after the start of the acquisition.
    delay_s : float
        bolus arrival time in seconds; the function is zero before it.
    hematocrit : float or None
        if given, return the *plasma* concentration ``Cb / (1 - Hct)`` instead of whole blood.

    Returns
    -------
    array (n,) of concentrations in mM.
    """
    p = _PARKER
    t = (np.asarray(t_s, dtype=float) - delay_s) / 60.0
    g1 = (
        p["A1"]
        / (p["sigma1"] * np.sqrt(2 * np.pi))
        * np.exp(-((t - p["T1"]) ** 2) / (2 * p["sigma1"] ** 2))
    )
    g2 = (
        p["A2"]
        / (p["sigma2"] * np.sqrt(2 * np.pi))
        * np.exp(-((t - p["T2"]) ** 2) / (2 * p["sigma2"] ** 2))
    )
    sig = p["alpha"] * np.exp(-p["beta"] * t) / (1 + np.exp(-p["s"] * (t - p["tau"])))
    cb = np.where(t >= 0, g1 + g2 + sig, 0.0)
    if hematocrit is not None:
        if not 0 <= hematocrit < 1:
            raise ValueError("parker_aif: hematocrit must be in [0, 1)")
        return cb / (1.0 - hematocrit)
    return cb


def extended_tofts_concentration(cp, t_s, ktrans_per_min, ve, vp):
    """Tissue concentration of the extended Tofts model.

    ``Ct(t) = vp Cp(t) + Ktrans ∫ Cp(u) exp(-kep (t-u)) du`` with ``kep = Ktrans / ve``.

    ``cp`` has shape ``(n,)`` (plasma concentration at times ``t_s`` in seconds);
    parameters have any common shape ``(...)``; the result is ``(..., n)``. The convolution is
    integrated exactly for a piecewise-linear ``Cp`` so that it is accurate on coarse sampling.
    """
    t = np.asarray(t_s, dtype=float) / 60.0
    cp = np.asarray(cp, dtype=float)
    if t.ndim != 1 or cp.shape != t.shape:
        raise ValueError("extended_tofts_concentration: cp and t_s must be 1-D of equal length")
    if np.any(np.diff(t) <= 0):
        raise ValueError("extended_tofts_concentration: frame times must increase")
    ktrans = np.asarray(ktrans_per_min, dtype=float)
    ve = np.asarray(ve, dtype=float)
    vp = np.asarray(vp, dtype=float)
    shape = np.broadcast(ktrans, ve, vp).shape
    ktrans, ve, vp = (np.broadcast_to(a, shape).reshape(-1) for a in (ktrans, ve, vp))
    kep = np.divide(ktrans, ve, out=np.zeros_like(ktrans), where=ve > 0)
    out = np.zeros((ktrans.size, t.size))
    # Recursive exact integration of exp-convolution with linear interpolation of cp.
    conv = np.zeros(ktrans.size)
    for i in range(1, t.size):
        dt = t[i] - t[i - 1]
        x = kep * dt
        e = np.exp(-x)
        small = x < 1e-6
        xs = np.where(small, 1.0, x)
        # weights of cp[i-1] and cp[i] in ∫_0^dt cp(t_i - s) e^{-kep s} ds (linear cp)
        w_curr = np.where(small, dt / 2, dt * (xs - 1 + e) / (xs**2))
        w_prev = np.where(small, dt / 2, dt * (1 - e - xs * e) / (xs**2))
        conv = conv * e + w_prev * cp[i - 1] + w_curr * cp[i]
        out[:, i] = conv
    ct = vp[:, None] * cp[None, :] + ktrans[:, None] * out
    return ct.reshape(shape + (t.size,))
