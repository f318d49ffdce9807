"""Interfaces of the USPIO workflow (wrapping :mod:`pipeline.models.relaxometry`)."""

from __future__ import annotations

import os

import numpy as np
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    InputMultiObject,
    SimpleInterface,
    TraitedSpec,
    traits,
)


def background_noise_sigma(first_echo, min_voxels: int = 200):
    """Noise standard deviation σ of magnitude images from their air background.

    Background: voxels darker than 5 % of the 99th-percentile signal. In air the magnitude
    is Rayleigh-distributed with median ``σ sqrt(2 ln 2)``. Returns None when there are fewer
    than ``min_voxels`` background voxels (a tight field of view): the fit then excludes only
    non-positive echoes.
    """
    s = np.asarray(first_echo, dtype=float)
    s = s[np.isfinite(s)]
    if s.size == 0:
        return None
    bg = s[(s > 0) & (s < 0.05 * np.percentile(s, 99))]
    if bg.size < min_voxels:
        return None
    return float(np.median(bg) / np.sqrt(2 * np.log(2)))


def load_echoes(files, echo_times):
    """Stack echo images (3-D each, one grid) into ``(X, Y, Z, n_echo)``; one-line errors."""
    import nibabel as nb

    if len(files) != len(echo_times):
        raise ValueError(f"{files[0]}: {len(files)} echo images but {len(echo_times)} echo times")
    imgs = [nb.load(f) for f in files]
    ref = imgs[0]
    for f, im in zip(files, imgs):
        if im.ndim != 3:
            raise ValueError(f"{f}: an echo image must be 3-D, got shape {im.shape}")
        if im.shape != ref.shape or not np.allclose(im.affine, ref.affine, atol=1e-3):
            raise ValueError(
                f"{f}: echo grid {im.shape} differs from {files[0]} "
                f"{ref.shape}; all echoes of a series must share one grid"
            )
    return np.stack([im.get_fdata(dtype=np.float32) for im in imgs], axis=-1), ref.affine


class _R2InputSpec(BaseInterfaceInputSpec):
    in_files = InputMultiObject(File(exists=True), mandatory=True, desc="echo images")
    echo_times = traits.List(traits.Float, mandatory=True, desc="echo times (s)")
    method = traits.Enum("nonlinear", "loglinear", usedefault=True)
    min_echoes = traits.Int(3, usedefault=True)
    noise_floor = traits.Bool(
        True, usedefault=True, desc="exclude echoes below 3 sigma of the background noise"
    )


class _R2OutputSpec(TraitedSpec):
    r2star = File(desc="R2* (1/s)")
    s0 = File(desc="signal at TE = 0")
    nrmse = File(desc="fit residual relative to S0")
    valid = File(desc="mask of valid fits")
    provenance = traits.Dict(traits.Str, traits.Any)


class R2StarMap(SimpleInterface):
    """R2*, S0, a fit-quality map and a valid-fit mask from one multi-echo series."""

    input_spec = _R2InputSpec
    output_spec = _R2OutputSpec

    def _run_interface(self, runtime):
        import nibabel as nb

        from pipeline.models.relaxometry import fit_r2star

        data, affine = load_echoes(self.inputs.in_files, self.inputs.echo_times)
        # NaN/Inf in any echo: the voxel is invalid (not fitted) and counted
        finite = np.all(np.isfinite(data), axis=-1)
        n_nonfinite = int(finite.size - np.count_nonzero(finite))
        if n_nonfinite:
            data = np.where(finite[..., None], data, np.float32(0))
        sigma = background_noise_sigma(data[..., 0]) if self.inputs.noise_floor else None
        # fit where the first echo stands out of the noise (head, not air)
        head = (data[..., 0] > (5 * sigma if sigma else 0.0)) & finite
        fit = fit_r2star(
            data,
            self.inputs.echo_times,
            method=self.inputs.method,
            mask=head,
            noise_floor=sigma,
            min_echoes=self.inputs.min_echoes,
        )
        outs = {}
        for key in ("r2star", "s0", "nrmse", "valid"):
            vol = getattr(fit, key)
            vol = vol.astype(np.uint8) if key == "valid" else vol.astype(np.float32)
            path = os.path.join(runtime.cwd, f"{key}.nii.gz")
            nb.Nifti1Image(vol, affine).to_filename(path)
            outs[key] = path
        n_head = int(head.sum())
        self._results.update(outs)
        self._results["provenance"] = {
            "FitMethod": self.inputs.method,
            "EchoTime": list(self.inputs.echo_times),
            "NoiseSigma": sigma,
            "MinEchoes": self.inputs.min_echoes,
            "FittedVoxels": n_head,
            "NonFiniteVoxels": n_nonfinite,
            "InvalidFraction": float(1 - fit.valid[head].mean()) if n_head else None,
            "MedianNRMSE": float(np.nanmedian(fit.nrmse[head])) if n_head else None,
        }
        return runtime


class _DeltaInputSpec(BaseInterfaceInputSpec):
    pre = File(exists=True, mandatory=True, desc="R2* before the agent")
    post = File(exists=True, mandatory=True, desc="R2* after, on the grid of pre")
    pre_valid = File(exists=True, mandatory=True)
    post_valid = File(exists=True, mandatory=True, desc="valid mask of post, on pre's grid")


class _DeltaOutputSpec(TraitedSpec):
    out_file = File(desc="ΔR2* = post − pre (1/s)")
    valid = File(desc="voxels valid in both")


class DeltaR2Star(SimpleInterface):
    """ΔR2* = R2*post − R2*pre where both fits are valid (NaN elsewhere)."""

    input_spec = _DeltaInputSpec
    output_spec = _DeltaOutputSpec

    def _run_interface(self, runtime):
        import nibabel as nb

        from pipeline.models.relaxometry import delta_r2star

        pre = nb.load(self.inputs.pre)
        post = nb.load(self.inputs.post)
        if pre.shape != post.shape:
            raise ValueError(
                f"{self.inputs.post}: grid {post.shape} differs from "
                f"{self.inputs.pre} {pre.shape}; resample post to pre first"
            )
        valid = (np.asarray(nb.load(self.inputs.pre_valid).dataobj) > 0) & (
            np.asarray(nb.load(self.inputs.post_valid).dataobj) > 0.5
        )
        delta = delta_r2star(pre.get_fdata(), post.get_fdata(), mask=valid)
        out = os.path.join(runtime.cwd, "dR2star.nii.gz")
        nb.Nifti1Image(delta.astype(np.float32), pre.affine).to_filename(out)
        vout = os.path.join(runtime.cwd, "valid.nii.gz")
        nb.Nifti1Image(np.isfinite(delta).astype(np.uint8), pre.affine).to_filename(vout)
        self._results.update(out_file=out, valid=vout)
        return runtime
