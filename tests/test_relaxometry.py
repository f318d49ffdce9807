"""R2* fits on synthetic multi-echo signals: exact recovery, bias at SNR 100, the noise floor,
input errors and ΔR2*.

Noise model: Rician (magnitude of a complex signal with Gaussian noise of standard deviation
σ in each channel), SNR = S0 / σ at TE = 0.
"""

import numpy as np
import pytest

from pipeline.models.relaxometry import R2StarFit, delta_r2star, fit_r2star
from pipeline.models.signal import multiecho_signal

R2_GRID = np.arange(10.0, 101.0, 10.0)  # 1/s
N_REAL = 2000  # noise realisations per R2*


def _te(n_echo):
    return np.linspace(0.002, 0.040, n_echo)  # 2-40 ms


def _rician(clean, sigma, seed):
    rng = np.random.default_rng(seed)
    return np.sqrt(
        (clean + rng.normal(scale=sigma, size=clean.shape)) ** 2
        + rng.normal(scale=sigma, size=clean.shape) ** 2
    )


def _noisy_grid(n_echo, snr=100.0, s0=1000.0, seed=0):
    r2 = np.repeat(R2_GRID, N_REAL)
    clean = multiecho_signal(np.full(r2.size, s0), r2, _te(n_echo))
    return r2, _rician(clean, s0 / snr, seed + n_echo)


def _bias_per_r2(fit, r2):
    """Median relative error (r2_hat - r2) / r2 for each R2* of the grid."""
    rel = (fit.r2star / r2 - 1.0).reshape(R2_GRID.size, N_REAL)
    return np.median(rel, axis=1)


@pytest.mark.parametrize("method", ["loglinear", "nonlinear"])
@pytest.mark.parametrize("n_echo", [6, 8])
def test_noiseless_exact(method, n_echo):
    te = _te(n_echo)
    r2 = np.array([0.0, 1.0, 10.0, 35.0, 100.0, 250.0, 500.0])
    s0 = np.array([1.0, 50.0, 1000.0, 2e4, 3.0, 800.0, 1e3])
    fit = fit_r2star(multiecho_signal(s0, r2, te), te, method)
    np.testing.assert_allclose(fit.r2star, r2, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(fit.s0, s0, rtol=1e-9)
    assert fit.valid.all() and (fit.n_echoes_used == n_echo).all()
    assert np.all(fit.nrmse < 1e-9)


@pytest.mark.parametrize("n_echo", [6, 8])
def test_nonlinear_bias_snr100(n_echo):
    """Acceptance criterion (issue 5): median relative bias of the nonlinear fit < 2 % for
    R2* 10-100 /s at SNR 100, checked for every R2* of the grid (measured over 10 noise
    seeds: at most 0.4 % without and 0.55 % with the noise-floor exclusion, the largest at
    R2* = 100 /s where the last echoes are at 2-3 σ)."""
    r2, y = _noisy_grid(n_echo)
    for noise_floor in (None, 10.0):
        fit = fit_r2star(y, _te(n_echo), "nonlinear", noise_floor=noise_floor)
        assert fit.valid.all()
        bias = _bias_per_r2(fit, r2)
        assert np.abs(bias).max() < 0.02, bias
        assert abs(np.median(fit.r2star / r2 - 1)) < 0.005


@pytest.mark.parametrize("n_echo", [6, 8])
def test_loglinear_bias_snr100(n_echo):
    """Log-linear bias at SNR 100, R2* 10-100 /s. Single pass with measured-signal weights
    (``n_reweight=0``): R2* low by up to 1.1 % at R2* = 100 /s (weights correlated with
    the noise), bound 1.5 %. Default (one pass re-weighted with the fitted signal): at most
    0.25 % without and 0.4 % with the noise floor (10 noise seeds), bound 0.5 %. Its
    scatter is that of the nonlinear fit (median |error| within 1 % of it; bound 10 %)."""
    r2, y = _noisy_grid(n_echo)
    te = _te(n_echo)
    classic = _bias_per_r2(fit_r2star(y, te, "loglinear", n_reweight=0), r2)
    assert np.abs(classic).max() < 0.015, classic
    assert classic[-1] < -0.004  # the documented underestimation is real (about -1 %)
    for noise_floor in (None, 10.0):
        fit = fit_r2star(y, te, "loglinear", noise_floor=noise_floor)
        bias = _bias_per_r2(fit, r2)
        assert np.abs(bias).max() < 0.005, bias
    nl = fit_r2star(y, te, "nonlinear")
    ll = fit_r2star(y, te, "loglinear")
    err_nl = np.median(np.abs(nl.r2star / r2 - 1))
    err_ll = np.median(np.abs(ll.r2star / r2 - 1))
    assert err_ll < 1.1 * err_nl
    np.testing.assert_allclose(np.median(ll.nrmse), 1 / 100, rtol=0.3)  # ~ 1/SNR


@pytest.mark.parametrize("method", ["loglinear", "nonlinear"])
def test_noise_floor_fast_decay(method):
    """R2* = 150 /s at SNR 30 (8 echoes, 2-40 ms): from the 4th echo on the signal is in
    the Rician floor. Fitting every echo underestimates R2* (measured -6 % log-linear,
    -5 % nonlinear); excluding the echoes below 3σ leaves 3 echoes in most voxels and a
    bias within 2.5 % (10 noise seeds; bound 3 %)."""
    te = _te(8)
    r2 = np.full(4000, 150.0)
    y = _rician(multiecho_signal(np.full(r2.size, 1000.0), r2, te), 1000.0 / 30, seed=3)
    everything = fit_r2star(y, te, method)
    floored = fit_r2star(y, te, method, noise_floor=1000.0 / 30)
    bias_all = np.median(everything.r2star / r2 - 1)
    bias_floor = np.median(floored.r2star / r2 - 1)
    assert bias_all < -0.04
    assert abs(bias_floor) < 0.03
    assert np.median(floored.n_echoes_used) == 3
    assert floored.n_echoes_used.max() <= 6 and floored.n_echoes_used.min() >= 3
    assert floored.valid.mean() > 0.9
    assert everything.valid.all() and (everything.n_echoes_used == 8).all()


def test_noise_floor_too_few_echoes():
    """R2* = 1000 /s: only the first echo is above 3σ. The voxel is fitted on its first
    ``min_echoes`` echoes (R2* biased low by the floor) and flagged invalid."""
    te = _te(8)
    y = _rician(multiecho_signal(np.full(200, 1000.0), np.full(200, 1000.0), te), 10.0, 4)
    for min_echoes in (2, 3):
        fit = fit_r2star(y, te, "nonlinear", noise_floor=10.0, min_echoes=min_echoes)
        assert not fit.valid.any()
        assert (fit.n_echoes_used == min_echoes).all()
        assert np.all(np.isfinite(fit.r2star)) and np.median(fit.r2star) < 700.0


def test_floor_threshold_per_voxel():
    """``noise_floor`` may be a map; ``floor_factor`` scales it; later echoes that the noise
    lifts over the threshold stay excluded (truncation at the first echo below it)."""
    te = _te(6)
    y = np.array(
        [[1000.0, 500.0, 250.0, 20.0, 8.0, 15.0], [1000.0, 500.0, 250.0, 20.0, 8.0, 15.0]]
    )
    fit = fit_r2star(y, te, noise_floor=np.array([10.0, 1.0]))
    assert fit.n_echoes_used.tolist() == [3, 6]
    fit = fit_r2star(y, te, noise_floor=10.0, floor_factor=1.0)
    assert fit.n_echoes_used.tolist() == [4, 4]


def test_volume_mask_chunks_and_bad_voxels():
    te = _te(6)
    rng = np.random.default_rng(5)
    r2 = rng.uniform(10, 100, (5, 6, 7))
    y = _rician(multiecho_signal(np.full(r2.shape, 800.0), r2, te), 8.0, 6)
    y[0, 0, 0] = 0.0  # background: nothing to fit
    y[0, 0, 1, 2:] = np.nan  # NaN from the third echo: 2 echoes left
    y[0, 0, 2, 0] = -5.0  # first echo unusable
    mask = np.ones(r2.shape, bool)
    mask[4] = False
    with np.errstate(all="raise"):
        fit = fit_r2star(y, te, "nonlinear", mask=mask, chunk_size=17)
    whole = fit_r2star(y, te, "nonlinear", mask=mask)
    for a, b in zip(fit, whole):
        np.testing.assert_array_equal(a, b)
    assert isinstance(fit, R2StarFit)
    assert all(x.shape == r2.shape for x in fit)
    assert np.isnan(fit.r2star[4]).all() and not fit.valid[4].any()
    assert (fit.n_echoes_used[4] == 0).all()
    assert np.isnan(fit.r2star[0, 0, 0]) and fit.n_echoes_used[0, 0, 0] == 0
    assert np.isnan(fit.r2star[0, 0, 2]) and not fit.valid[0, 0, 2]
    assert fit.n_echoes_used[0, 0, 1] == 2 and not fit.valid[0, 0, 1]
    assert np.isfinite(fit.r2star[0, 0, 1])
    rest = fit.valid.copy()
    assert rest.sum() == 4 * 6 * 7 - 3
    assert np.median(np.abs(fit.r2star[rest] / r2[rest] - 1)) < 0.05
    assert np.all(fit.r2star[np.isfinite(fit.r2star)] >= 0)


@pytest.mark.parametrize("method", ["loglinear", "nonlinear"])
def test_r2star_bounded_at_zero(method):
    """A signal that rises with TE (noise, inflow) gives R2* = 0, not a negative rate."""
    te = _te(6)
    y = np.array(
        [[100.0, 101.0, 103.0, 104.0, 106.0, 108.0], [100.0, 100.0, 100.0, 100.0, 100.0, 100.0]]
    )
    fit = fit_r2star(y, te, method)
    np.testing.assert_allclose(fit.r2star, 0.0, atol=1e-9)
    assert fit.valid.all()
    if method == "nonlinear":
        np.testing.assert_allclose(fit.s0, y.mean(1))  # least squares at the bound


def test_input_errors():
    te = _te(6)
    y = multiecho_signal(np.full(4, 100.0), np.full(4, 30.0), te)
    with pytest.raises(ValueError, match="6 echoes.*5 echo times"):
        fit_r2star(y, te[:5])
    with pytest.raises(ValueError, match="look like milliseconds"):
        fit_r2star(y, te * 1000)
    with pytest.raises(ValueError, match="strictly increasing"):
        fit_r2star(y, te[::-1])
    with pytest.raises(ValueError, match="strictly increasing"):
        fit_r2star(y, np.r_[te[:5], te[4]])
    with pytest.raises(ValueError, match="positive"):
        fit_r2star(y, te - 0.002)
    with pytest.raises(ValueError, match="at least 2 echoes"):
        fit_r2star(y[:, :1], te[:1], min_echoes=2)
    with pytest.raises(ValueError, match="fewer echoes than min_echoes"):
        fit_r2star(y[:, :2], te[:2])
    with pytest.raises(ValueError, match="min_echoes must be at least 2"):
        fit_r2star(y, te, min_echoes=1)
    with pytest.raises(ValueError, match="method"):
        fit_r2star(y, te, "exponential")
    with pytest.raises(ValueError, match="mask"):
        fit_r2star(y, te, mask=np.ones(3, bool))
    with pytest.raises(ValueError, match="noise_floor"):
        fit_r2star(y, te, noise_floor=np.ones(3))
    with pytest.raises(ValueError, match="noise_floor"):
        fit_r2star(y, te, noise_floor=-1.0)
    with pytest.raises(ValueError, match="magnitude"):
        fit_r2star(y.astype(complex), te)


def test_delta_r2star():
    pre = np.array([20.0, 30.0, np.nan, 40.0, 25.0])
    post = np.array([25.0, 29.0, 30.0, np.inf, 35.0])
    np.testing.assert_array_equal(delta_r2star(pre, post), [5.0, -1.0, np.nan, np.nan, 10.0])
    mask = np.array([True, True, True, True, False])
    np.testing.assert_array_equal(
        delta_r2star(pre, post, mask), [5.0, -1.0, np.nan, np.nan, np.nan]
    )
    with pytest.raises(ValueError, match="shape"):
        delta_r2star(pre, post[:4])
    with pytest.raises(ValueError, match="mask"):
        delta_r2star(pre, post, mask[:3])


def test_delta_r2star_from_fits_after_uspio():
    """ΔR2* of +3 /s (the demo's ferumoxytol effect) recovered from two fits; voxels that
    are invalid in either fit are NaN."""
    te = _te(8)
    r2 = np.repeat([15.0, 25.0], 2000)
    s0 = np.full(r2.size, 1000.0)
    pre = fit_r2star(_rician(multiecho_signal(s0, r2, te), 10.0, 7), te, "nonlinear")
    post_y = _rician(multiecho_signal(s0, r2 + 3.0, te), 10.0, 8)
    post_y[0] = 0.0
    post = fit_r2star(post_y, te, "nonlinear")
    d = delta_r2star(pre, post)
    assert np.isnan(d[0]) and np.isfinite(d[1:]).all()
    assert np.median(d[1:]) == pytest.approx(3.0, abs=0.15)
    pre_flagged = pre._replace(valid=np.r_[False, False, pre.valid[2:]])
    assert np.isnan(delta_r2star(pre_flagged, post)[:2]).all()
