"""MR signal equations used by the models and by the digital reference object."""

from __future__ import annotations

import numpy as np


def spgr_signal(m0, r1_per_s, flip_angle_deg, tr_s):
    """Steady-state spoiled gradient-echo signal (no T2* decay term).

    ``S = M0 sin(a) (1 - E1) / (1 - cos(a) E1)`` with ``E1 = exp(-TR R1)``.
    All arguments broadcast against each other.
    """
    r1 = np.asarray(r1_per_s, dtype=float)
    if np.any(r1 < 0):
        raise ValueError("spgr_signal: R1 must be non-negative (1/s)")
    if np.any(np.asarray(tr_s) <= 0):
        raise ValueError("spgr_signal: TR must be positive (seconds)")
    alpha = np.deg2rad(flip_angle_deg)
    e1 = np.exp(-np.asarray(tr_s, dtype=float) * r1)
    return np.asarray(m0, dtype=float) * np.sin(alpha) * (1.0 - e1) / (1.0 - np.cos(alpha) * e1)


def multiecho_signal(s0, r2star_per_s, te_s):
    """Monoexponential multi-echo gradient-echo decay ``S0 exp(-R2* TE)``.

    ``s0`` and ``r2star_per_s`` have shape ``(...)``; ``te_s`` has shape ``(n_echo,)``;
    the result has shape ``(..., n_echo)``.
    """
    te = np.asarray(te_s, dtype=float)
    if te.ndim != 1 or np.any(te < 0):
        raise ValueError("multiecho_signal: echo times must be a 1-D list of non-negative seconds")
    return np.asarray(s0, dtype=float)[..., None] * np.exp(
        -np.asarray(r2star_per_s, dtype=float)[..., None] * te
    )
