"""Interfaces of the DCE workflow (wrapping :mod:`pipeline.models.dce`)."""

from __future__ import annotations

import os

import numpy as np
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    InputMultiObject,
    OutputMultiObject,
    SimpleInterface,
    Str,
    TraitedSpec,
    isdefined,
    traits,
)


class _RefInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="4-D DCE series")
    n_baseline = traits.Int(mandatory=True)
    n_frames = traits.Int(mandatory=True)


class _RefOutputSpec(TraitedSpec):
    reference = File(desc="mean of the pre-contrast frames 1..n-1")
    frames = OutputMultiObject(File, desc="one 3-D file per frame")


class DCEReference(SimpleInterface):
    """Split a DCE series into frames; reference = mean of the baseline frames."""

    input_spec = _RefInputSpec
    output_spec = _RefOutputSpec

    def _run_interface(self, runtime):
        import nibabel as nb

        img = nb.load(self.inputs.in_file)
        if img.ndim != 4 or img.shape[3] != self.inputs.n_frames:
            raise ValueError(
                f"{self.inputs.in_file}: expected a 4-D series of "
                f"{self.inputs.n_frames} frames (FrameTimesStart), got shape "
                f"{img.shape}"
            )
        data = img.get_fdata(dtype=np.float32)
        data[~np.isfinite(data)] = 0  # NaN/Inf: no signal (invalid in DCEFit), finite for ANTs
        ref = data[..., 1 : self.inputs.n_baseline].mean(-1)
        out = os.path.join(runtime.cwd, "reference.nii.gz")
        nb.Nifti1Image(ref, img.affine).to_filename(out)
        frames = []
        for i in range(data.shape[-1]):
            f = os.path.join(runtime.cwd, f"frame{i:04d}.nii.gz")
            nb.Nifti1Image(data[..., i], img.affine).to_filename(f)
            frames.append(f)
        self._results.update(reference=out, frames=frames)
        return runtime


class _MergeInputSpec(BaseInterfaceInputSpec):
    in_files = InputMultiObject(File(exists=True), mandatory=True)


class _OutFile(TraitedSpec):
    out_file = File()


class MergeFrames(SimpleInterface):
    """Stack 3-D frames into a 4-D series."""

    input_spec = _MergeInputSpec
    output_spec = _OutFile

    def _run_interface(self, runtime):
        import nibabel as nb

        imgs = [nb.load(f) for f in self.inputs.in_files]
        data = np.stack([i.get_fdata(dtype=np.float32) for i in imgs], axis=-1)
        out = os.path.join(runtime.cwd, "series_mc.nii.gz")
        nb.Nifti1Image(data, imgs[0].affine).to_filename(out)
        self._results["out_file"] = out
        return runtime


class _VFAInputSpec(BaseInterfaceInputSpec):
    in_files = InputMultiObject(File(exists=True), mandatory=True)
    flip_angles = traits.List(traits.Float, mandatory=True)
    tr = traits.Float(mandatory=True, desc="RepetitionTimeExcitation (s)")
    reference = File(exists=True, mandatory=True, desc="grid of the output (DCE reference)")
    method = traits.Enum("linear", "nonlinear", usedefault=True)


class _VFAOutputSpec(TraitedSpec):
    t1_map = File()
    m0_map = File()


class VFAT1Map(SimpleInterface):
    """T1 map from variable flip angles, on the DCE grid (scanner coordinates)."""

    input_spec = _VFAInputSpec
    output_spec = _VFAOutputSpec

    def _run_interface(self, runtime):
        import nibabel as nb
        from nibabel.processing import resample_from_to

        from pipeline.models.dce import vfa_t1

        ref = nb.load(self.inputs.reference)
        imgs = []
        for f in self.inputs.in_files:
            im = nb.load(f)
            if im.ndim != 3:
                raise ValueError(f"{f}: a VFA image must be 3-D, got shape {im.shape}")
            if im.shape != ref.shape[:3] or not np.allclose(im.affine, ref.affine, atol=1e-3):
                im = resample_from_to(im, (ref.shape[:3], ref.affine), order=1)
            imgs.append(im.get_fdata())
        t1, m0 = vfa_t1(
            np.stack(imgs, -1), self.inputs.flip_angles, self.inputs.tr, method=self.inputs.method
        )
        t1 = np.where(np.isfinite(t1) & (t1 > 0) & (t1 < 10), t1, np.nan)
        outs = {}
        for key, data in (("t1_map", t1), ("m0_map", m0)):
            path = os.path.join(runtime.cwd, f"{key}.nii.gz")
            nb.Nifti1Image(data.astype(np.float32), ref.affine).to_filename(path)
            outs[key] = path
        self._results.update(outs)
        return runtime


class _FitInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="motion-corrected 4-D series")
    t1_map = File(exists=True, mandatory=True)
    rois = File(exists=True, mandatory=True, desc="atlas + extra-cerebral ROIs, DCE grid")
    lut = File(exists=True, mandatory=True)
    times = traits.List(traits.Float, mandatory=True)
    flip_angle = traits.Float(mandatory=True)
    tr = traits.Float(mandatory=True)
    n_baseline = traits.Int(mandatory=True)
    relaxivity = traits.Float(mandatory=True, desc="r1, 1/(mM s)")
    hematocrit = traits.Float(0.45, usedefault=True)
    model = traits.Enum("patlak", "extended_tofts", usedefault=True)
    vif_roi = Str("superior_sagittal_sinus", usedefault=True)
    vif_mask = File(
        exists=True,
        desc="user-drawn input-function mask on the DCE grid; "
        "replaces ``vif_roi`` as the candidate voxels",
    )
    vif_volume_ml = traits.Float(
        0.2, usedefault=True, desc="sinus volume combined into the input function"
    )
    vif_voxels = traits.Int(desc="a number of voxels instead of ``vif_volume_ml``")
    vif_min_peak_fraction = traits.Float(0.6, usedefault=True)
    delays_s = traits.List(traits.Float)


class _FitOutputSpec(TraitedSpec):
    ktrans = File()
    vp = File()
    ve = File()
    residual = File()
    vif = File(desc="TSV: time, blood and plasma concentration")
    provenance = traits.Dict(traits.Str, traits.Any)


def vif_voxel_count(voxels, volume_ml: float, voxel_ml: float) -> int:
    """Voxels combined into the input function: ``voxels`` when set, else as many as make
    up ``volume_ml`` at this voxel size (at least 4: a median of fewer is not robust)."""
    if isdefined(voxels) and voxels is not None:
        return int(voxels)
    return max(4, int(round(volume_ml / voxel_ml)))


class DCEFit(SimpleInterface):
    """Concentration, venous input function from the sinus, and the kinetic model fit."""

    input_spec = _FitInputSpec
    output_spec = _FitOutputSpec

    def _run_interface(self, runtime):
        import nibabel as nb
        import pandas as pd

        from pipeline.interfaces.regional import read_lut
        from pipeline.models.dce import extended_tofts, patlak, select_vif, signal_to_concentration

        img = nb.load(self.inputs.in_file)
        sig = img.get_fdata(dtype=np.float32)
        t1 = nb.load(self.inputs.t1_map).get_fdata()
        rois = np.asarray(nb.load(self.inputs.rois).dataobj).astype(int)
        # no usable signal (NaN/Inf in a frame, or 0 in every frame: e.g. non-finite input
        # voxels): invalid, i.e. no T1, so neither fitted nor an input-function candidate
        signal = np.all(np.isfinite(sig), axis=-1) & np.any(sig != 0, axis=-1)
        t1 = np.where(signal, t1, np.nan)
        lut = read_lut(self.inputs.lut)
        if isdefined(self.inputs.vif_mask):
            region = self.inputs.vif_mask
            user = np.asarray(nb.load(region).dataobj)
            if user.shape != rois.shape:
                raise ValueError(
                    f"{region}: the input-function mask has shape {user.shape}, "
                    f"the DCE series {rois.shape}; draw it on the DCE grid"
                )
            cand = (user > 0) & np.isfinite(t1)
        else:
            region = self.inputs.vif_roi
            vif_idx = lut.loc[lut["name"] == region, "index"].astype(int).tolist()
            cand = np.isin(rois, vif_idx) & np.isfinite(t1)
        voxel_ml = float(np.prod(img.header.get_zooms()[:3])) / 1000.0
        n_vif = vif_voxel_count(self.inputs.vif_voxels, self.inputs.vif_volume_ml, voxel_ml)
        if cand.sum() < min(n_vif, 4):
            raise ValueError(
                f"{self.inputs.in_file}: only {int(cand.sum())} voxels of "
                f"'{region}' in the field of view; the venous input function "
                f"needs at least {min(n_vif, 4)}"
            )
        fit_mask = (rois > 0) & np.isfinite(t1)
        conc = np.full(sig.shape, np.nan, np.float32)
        sel = fit_mask | cand
        conc[sel] = signal_to_concentration(
            sig[sel],
            t1[sel],
            self.inputs.flip_angle,
            self.inputs.tr,
            self.inputs.relaxivity,
            self.inputs.n_baseline,
        )
        cb, chosen = select_vif(conc[cand], n_vif, self.inputs.vif_min_peak_fraction)
        cp = cb / (1.0 - self.inputs.hematocrit)
        t = np.asarray(self.inputs.times)
        ct = np.nan_to_num(conc[fit_mask])
        delays = self.inputs.delays_s or None
        if self.inputs.model == "patlak":
            fit = patlak(ct, cp, t, delays_s=delays)
            fit["ve"] = np.full(ct.shape[0], np.nan)
        else:
            fit = extended_tofts(ct, cp, t, delays_s=delays)
        outs = {}
        for key in ("ktrans", "vp", "ve", "rss"):
            vol = np.full(rois.shape, np.nan, np.float32)
            vol[fit_mask] = fit[key] if key != "rss" else np.sqrt(fit[key] / t.size)
            name = "residual" if key == "rss" else key
            path = os.path.join(runtime.cwd, f"{name}.nii.gz")
            nb.Nifti1Image(vol, img.affine).to_filename(path)
            outs[name] = path
        vif_path = os.path.join(runtime.cwd, "vif.tsv")
        pd.DataFrame({"time_s": t, "blood_mM": cb, "plasma_mM": cp}).to_csv(
            vif_path, sep="\t", index=False
        )
        self._results.update(outs, vif=vif_path)
        self._results["provenance"] = {
            "Model": self.inputs.model,
            "Relaxivity": self.inputs.relaxivity,
            "Hematocrit": self.inputs.hematocrit,
            "VIFRegion": region,
            "VIFVoxels": int(chosen),
            "VIFVolume_ml": round(int(chosen) * voxel_ml, 4),
            "VIFPeakBlood_mM": float(cb.max()),
            "VIFPeakPlasma_mM": float(cp.max()),
            "BaselineFrames": self.inputs.n_baseline,
            "FittedVoxels": int(fit_mask.sum()),
            "InvalidSignalVoxels": int(((rois > 0) & ~signal).sum()),
        }
        return runtime
