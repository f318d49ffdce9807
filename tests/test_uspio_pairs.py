"""Pairing of post-ferumoxytol MEGRE series with their pre series, and the R2* interface."""

import nibabel as nb
import numpy as np
import pytest

from pipeline.bids import uspio_pairs
from pipeline.errors import DataError, InputMissingError
from pipeline.interfaces.uspio import R2StarMap, background_noise_sigma
from pipeline.models.signal import multiecho_signal


def _agent(a):
    return "iron_oxide" if a == "ferumoxytol" else "gadolinium"


def _files(pre=(), post=()):
    return {"megre": list(pre), "megre_ce": [("ferumoxytol", list(post))] if post else []}


def test_same_session_pair():
    f = {"01": _files(["pre1"], ["post1"])}
    (p,) = uspio_pairs(f, _agent)
    assert (p["session"], p["pre_session"], p["pre"], p["post"]) == (
        "01",
        "01",
        ["pre1"],
        ["post1"],
    )


def test_pair_with_earlier_session_and_sessions_tsv():
    f = {"01": _files(["a"]), "02": _files(["b"]), "03": _files(post=["c"])}
    (p,) = uspio_pairs(f, _agent)
    assert p["pre_session"] == "02"  # the latest earlier session with a pre series
    (p,) = uspio_pairs(f, _agent, {"03": {"uspio_pre_session": "ses-01"}})
    assert p["pre_session"] == "01" and p["pre"] == ["a"]
    with pytest.raises(
        DataError,
        match=r"^c: sessions.tsv column 'uspio_pre_session' names "
        r"ses-03",
    ):
        uspio_pairs(f, _agent, {"03": {"uspio_pre_session": "03"}})


def test_missing_pre_and_other_agents():
    with pytest.raises(InputMissingError, match=r"^post: no pre-infusion MEGRE series"):
        uspio_pairs({"01": _files(post=["post"])}, _agent)
    f = {"01": {"megre": [], "megre_ce": [("gadobutrol", ["x"])]}}
    assert uspio_pairs(f, _agent) == []


def test_background_noise_sigma():
    rng = np.random.default_rng(0)
    sigma = 7.0
    air = np.hypot(rng.normal(0, sigma, 20000), rng.normal(0, sigma, 20000))
    head = 1000 + rng.normal(0, sigma, 5000)
    est = background_noise_sigma(np.concatenate([air, head]))
    assert est == pytest.approx(sigma, rel=0.03)
    assert background_noise_sigma(head) is None  # no air in the field of view


def test_r2star_interface_recovers_truth(tmp_path):
    """A 3-D phantom with air around: R2* of the head voxels within 2 % at SNR 200."""
    rng = np.random.default_rng(1)
    te = [0.003, 0.008, 0.013, 0.018, 0.023, 0.028]
    shape = (20, 20, 20)
    r2 = np.zeros(shape)
    r2[5:15, 5:15, 5:15] = np.linspace(15, 60, 10)[:, None, None]
    s0 = np.where(r2 > 0, 1000.0, 0.0)
    sig = multiecho_signal(s0, r2, te)
    noisy = np.hypot(sig + rng.normal(0, 5, sig.shape), rng.normal(0, 5, sig.shape))
    files = []
    for e in range(len(te)):
        files.append(str(tmp_path / f"echo{e}.nii.gz"))
        nb.Nifti1Image(noisy[..., e].astype(np.float32), np.eye(4)).to_filename(files[-1])
    out = R2StarMap(in_files=files, echo_times=te).run(cwd=str(tmp_path)).outputs
    est = nb.load(out.r2star).get_fdata()
    head = r2 > 0
    np.testing.assert_allclose(
        np.median(est[head].reshape(10, -1), axis=1), np.linspace(15, 60, 10), rtol=0.02
    )
    assert np.isnan(est[0, 0, 0])  # air is not fitted
    assert out.provenance["NoiseSigma"] == pytest.approx(5.0, rel=0.1)
    assert out.provenance["InvalidFraction"] < 0.01
    with pytest.raises(Exception, match="echo grid"):  # noqa: PT012
        nb.Nifti1Image(np.zeros((4, 4, 4), np.float32), np.eye(4)).to_filename(files[-1])
        R2StarMap(in_files=files, echo_times=te).run(cwd=str(tmp_path))
