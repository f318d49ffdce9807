"""Tofts and extended Tofts fits on synthetic curves over a grid of parameters and noise,
with the Parker population AIF."""

import itertools

import numpy as np
import pytest

from pipeline.models.dce import extended_tofts, tofts
from pipeline.models.pharmacokinetics import extended_tofts_concentration, parker_aif

T = np.arange(0, 360, 3.0)  # 6 min at 3 s
CP = parker_aif(T, 20.0, 0.45)
GRID = list(itertools.product([0.01, 0.05, 0.1, 0.3], [0.1, 0.3, 0.5], [0.01, 0.05, 0.1]))


def _curves(with_vp, noise, seed=0):
    kt, ve, vp = (np.array(x, float) for x in zip(*GRID))
    if not with_vp:
        vp = np.zeros_like(vp)
    ct = extended_tofts_concentration(CP, T, kt, ve, vp)
    rng = np.random.default_rng(seed)
    return kt, ve, vp, ct + rng.normal(scale=noise, size=ct.shape)


def test_extended_tofts_noise_free_exact():
    kt, ve, vp, ct = _curves(True, 0.0)
    fit = extended_tofts(ct, CP, T)
    np.testing.assert_allclose(fit["ktrans"], kt, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(fit["ve"], ve, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(fit["vp"], vp, rtol=1e-3, atol=1e-5)


def test_tofts_noise_free_exact():
    kt, ve, _, ct = _curves(False, 0.0)
    fit = tofts(ct, CP, T)
    np.testing.assert_allclose(fit["ktrans"], kt, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(fit["ve"], ve, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("noise", [0.005, 0.02])
def test_extended_tofts_with_noise(noise):
    """OSIPI-style tolerances: Ktrans abs 0.005 + rel 0.1, vp abs 0.025 (median of 20
    noise realisations per grid point, so that the test checks bias, not luck)."""
    fits = [extended_tofts(_curves(True, noise, seed)[3], CP, T) for seed in range(20)]
    kt, ve, vp, _ = _curves(True, 0.0)
    med = {k: np.median([f[k] for f in fits], axis=0) for k in ("ktrans", "vp", "ve")}
    assert np.all(np.abs(med["ktrans"] - kt) <= 0.005 + 0.1 * kt)
    assert np.all(np.abs(med["vp"] - vp) <= 0.025)
    ok_ve = np.abs(med["ve"] - ve) <= 0.05 + 0.1 * ve
    assert ok_ve[kt >= 0.05].all()  # ve is identifiable when exchange is fast enough


def test_delay_recovered():
    ct = extended_tofts_concentration(parker_aif(T, 26.0, 0.45), T, 0.1, 0.3, 0.05)
    fit = extended_tofts(ct, CP, T, delays_s=np.arange(0, 12.1, 1.0))
    assert fit["delay_s"] == 6.0
    assert fit["ktrans"] == pytest.approx(0.1, rel=0.02)


def test_shapes_and_errors():
    _, _, _, ct = _curves(True, 0.0)
    fit = extended_tofts(ct.reshape(4, 9, T.size), CP, T)
    assert fit["ktrans"].shape == (4, 9)
    with pytest.raises(ValueError, match="must increase"):
        tofts(ct, CP[::-1], T[::-1])
    with pytest.raises(ValueError, match="expected"):
        tofts(ct[:, :10], CP, T)
