"""Benchmark: vectorised Patlak and extended Tofts against a per-voxel curve_fit loop.

    python benchmarks/bench_dce.py [--voxels 1000000] [--sample 200]

Synthetic curves (Parker AIF, 60 frames at 5 s, random Ktrans/ve/vp, Gaussian noise) are
fitted by inflamap's whole-volume functions (in chunks) and, on a random sample, by
``scipy.optimize.curve_fit`` one voxel at a time (the baseline, timed in the same run).
Prints voxels/s for both, their ratio, the accuracy of both on the sample, and the peak
memory of the process. Targets (issue 4): Patlak >= 100x, extended Tofts >= 20x, peak memory
< 4 GiB.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
from scipy.optimize import curve_fit

from pipeline.models.dce import _cumulative_integral, extended_tofts, patlak
from pipeline.models.pharmacokinetics import extended_tofts_concentration, parker_aif


def synthetic(n, t, cp, rng, noise=0.005, patlak_regime=False):
    """Extended Tofts curves; ``patlak_regime``: ve -> infinity (no backflux), the model
    Patlak assumes, with the small Ktrans of a blood-brain-barrier leak."""
    kt = rng.uniform(0.0, 0.02 if patlak_regime else 0.2, n)
    ve = np.full(n, 1e6) if patlak_regime else rng.uniform(0.1, 0.5, n)
    vp = rng.uniform(0.0, 0.1, n)
    ct = np.empty((n, t.size), np.float32)
    for i in range(0, n, 100_000):
        sl = slice(i, i + 100_000)
        ct[sl] = extended_tofts_concentration(cp, t, kt[sl], ve[sl], vp[sl])
    ct += rng.normal(scale=noise, size=ct.shape).astype(np.float32)
    return kt, ve, vp, ct


def loop_patlak(ct, cp, t):
    integ = _cumulative_integral(cp, t / 60.0)
    f = lambda x, vp, kt: vp * cp + kt * integ  # noqa: E731 - x unused
    out = []
    for y in ct:
        p, _ = curve_fit(f, t, y, p0=(0.05, 0.05))
        out.append(p[::-1])
    return np.array(out)


def loop_etofts(ct, cp, t):
    def f(x, kt, ve, vp):
        return extended_tofts_concentration(cp, t, kt, ve, vp)

    out = []
    for y in ct:
        p, _ = curve_fit(f, t, y, p0=(0.05, 0.3, 0.05), bounds=([0, 1e-3, 0], [5, 1, 1]))
        out.append(p)
    return np.array(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--voxels", type=int, default=1_000_000)
    ap.add_argument("--sample", type=int, default=200)
    ap.add_argument("--chunk", type=int, default=50_000)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    t = np.arange(60) * 5.0
    cp = parker_aif(t, 20.0, 0.45)
    idx = rng.choice(args.voxels, args.sample, replace=False)
    print(f"{args.voxels} voxels x {t.size} frames; loop baseline on {args.sample} voxels")

    results = {}
    for name, vec, loop in (
        ("patlak", lambda c: patlak(c, cp, t), loop_patlak),
        ("extended_tofts", lambda c: extended_tofts(c, cp, t), loop_etofts),
    ):
        kt, ve, vp, ct = synthetic(args.voxels, t, cp, rng, patlak_regime=name == "patlak")
        t0 = time.perf_counter()
        kt_hat = np.empty(args.voxels)
        for i in range(0, args.voxels, args.chunk):
            kt_hat[i : i + args.chunk] = vec(ct[i : i + args.chunk])["ktrans"]
        v_rate = args.voxels / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        lp = loop(ct[idx].astype(float), cp, t)
        l_rate = args.sample / (time.perf_counter() - t0)
        kt_loop = lp[:, 0]  # both loops return Ktrans first
        err_vec = np.median(np.abs(kt_hat[idx] - kt[idx]))
        err_loop = np.median(np.abs(kt_loop - kt[idx]))
        results[name] = v_rate / l_rate
        print(
            f"{name:15s} vectorised {v_rate:12.0f} vox/s | curve_fit loop {l_rate:8.0f} vox/s"
            f" | ratio {v_rate / l_rate:7.1f}x | median |Ktrans error| vectorised "
            f"{err_vec:.5f}, loop {err_loop:.5f} 1/min (on the sample)"
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"peak memory {peak:.2f} GiB")
    print(
        f"targets: patlak >= 100x ({'met' if results['patlak'] >= 100 else 'NOT met'}), "
        f"extended_tofts >= 20x ({'met' if results['extended_tofts'] >= 20 else 'NOT met'}),"
        f" memory < 4 GiB ({'met' if peak < 4 else 'NOT met'})"
    )


if __name__ == "__main__":
    main()
