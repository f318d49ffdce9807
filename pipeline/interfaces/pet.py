"""Interfaces of the PET and SPECT workflows (wrapping :mod:`pipeline.models.pet`)."""

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


def _save(data, affine, path):
    import nibabel as nb

    nb.Nifti1Image(np.asarray(data, dtype=np.float32), affine).to_filename(path)
    return path


class _FramesInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="3-D or 4-D PET series")
    frame_start = traits.List(traits.Float, mandatory=True, desc="FrameTimesStart (s)")
    frame_duration = traits.List(traits.Float, mandatory=True, desc="FrameDuration (s)")
    injection_start = traits.Float(0.0, usedefault=True)
    window = traits.Tuple(
        traits.Float, traits.Float, mandatory=True, desc="window after injection (s)"
    )
    min_overlap = traits.Float(0.5, usedefault=True)
    decay_factors = traits.List(
        traits.Float,
        desc="per-frame factors applied first (decay correction of non-corrected images)",
    )


class _FramesOutputSpec(TraitedSpec):
    frames = OutputMultiObject(File, desc="selected frames (3-D)")
    durations = traits.List(traits.Float)
    reference = File(desc="duration-weighted mean of the selected frames")
    selected = traits.List(traits.Int, desc="indices of the selected frames")


class SelectFrames(SimpleInterface):
    """Frames inside the time window, split into 3-D files, and their weighted mean."""

    input_spec = _FramesInputSpec
    output_spec = _FramesOutputSpec

    def _run_interface(self, runtime):
        import nibabel as nb

        from pipeline.models.pet import frame_window, weighted_average

        img = nb.load(self.inputs.in_file)
        n = len(self.inputs.frame_start)
        shape = img.shape if img.ndim == 4 else img.shape + (1,)
        if img.ndim not in (3, 4) or shape[3] != n:
            raise ValueError(
                f"{self.inputs.in_file}: image has {shape[3] if img.ndim == 4 else 1}"
                f" frame(s) (shape {img.shape}) but the sidecar times {n}; fix "
                "FrameTimesStart/FrameDuration"
            )
        sel = frame_window(
            self.inputs.frame_start,
            self.inputs.frame_duration,
            self.inputs.window,
            self.inputs.min_overlap,
            self.inputs.injection_start,
        )
        idx = np.flatnonzero(sel)
        data = img.get_fdata(dtype=np.float32).reshape(shape)
        data[~np.isfinite(data)] = 0  # NaN/Inf input voxels: no signal, finite for ANTs
        factors = np.ones(n)
        if isdefined(self.inputs.decay_factors) and self.inputs.decay_factors:
            factors = np.asarray(self.inputs.decay_factors, float)
        frames, durations = [], []
        for i in idx:
            path = os.path.join(runtime.cwd, f"frame{i:03d}.nii.gz")
            frames.append(_save(data[..., i] * factors[i], img.affine, path))
            durations.append(float(self.inputs.frame_duration[i]))
        ref = weighted_average(data[..., idx] * factors[idx], durations, np.ones(idx.size, bool))
        self._results.update(
            frames=frames,
            durations=durations,
            selected=[int(i) for i in idx],
            reference=_save(ref, img.affine, os.path.join(runtime.cwd, "reference.nii.gz")),
        )
        return runtime


class _AverageInputSpec(BaseInterfaceInputSpec):
    in_files = InputMultiObject(File(exists=True), mandatory=True)
    durations = traits.List(traits.Float, mandatory=True)


class _OutFile(TraitedSpec):
    out_file = File()


class WeightedAverage(SimpleInterface):
    """Duration-weighted mean of 3-D frames (after motion correction)."""

    input_spec = _AverageInputSpec
    output_spec = _OutFile

    def _run_interface(self, runtime):
        import nibabel as nb

        from pipeline.models.pet import weighted_average

        imgs = [nb.load(f) for f in self.inputs.in_files]
        data = np.stack([i.get_fdata(dtype=np.float32) for i in imgs], axis=-1)
        avg = weighted_average(
            data, self.inputs.durations, np.ones(len(self.inputs.durations), bool)
        )
        self._results["out_file"] = _save(
            avg, imgs[0].affine, os.path.join(runtime.cwd, "average.nii.gz")
        )
        return runtime


class _SUVInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="mean activity (image units)")
    activity_scale = traits.Float(mandatory=True, desc="image units to Bq/mL")
    dose_bq = traits.Float(mandatory=True, desc="dose at the decay-correction time (Bq)")
    body_weight_kg = traits.Float(mandatory=True)


class SUVMap(SimpleInterface):
    """SUV = C[Bq/mL] / (dose[Bq] / weight[g])."""

    input_spec = _SUVInputSpec
    output_spec = _OutFile

    def _run_interface(self, runtime):
        import nibabel as nb

        from pipeline.models.pet import suv

        img = nb.load(self.inputs.in_file)
        val = suv(
            img.get_fdata() * self.inputs.activity_scale,
            self.inputs.dose_bq,
            self.inputs.body_weight_kg,
        )
        self._results["out_file"] = _save(val, img.affine, os.path.join(runtime.cwd, "suv.nii.gz"))
        return runtime


class _RatioInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="uptake map on the T1w grid")
    native = File(
        exists=True, desc="the same map on its own grid (divided by the same reference value)"
    )
    brain_mask = File(exists=True, mandatory=True, desc="T1w grid")
    rois = File(exists=True, desc="label image on the T1w grid (for a ROI reference)")
    lut = File(exists=True)
    reference = Str(
        "whole_brain",
        usedefault=True,
        desc="whole_brain, or roi:<name>[,<name>...] (labels of the ROI table)",
    )


class _RatioOutputSpec(TraitedSpec):
    out_file = File(desc="SUVR on the T1w grid")
    native = File(desc="SUVR on the native grid")
    provenance = traits.Dict(traits.Str, traits.Any)


class SUVRMap(SimpleInterface):
    """SUVR: the map over its mean in the reference region (T1w grid)."""

    input_spec = _RatioInputSpec
    output_spec = _RatioOutputSpec

    def _run_interface(self, runtime):
        import nibabel as nb

        from pipeline.interfaces.regional import read_lut
        from pipeline.models.pet import suvr

        img = nb.load(self.inputs.in_file)
        brain = np.asarray(nb.load(self.inputs.brain_mask).dataobj) > 0
        spec = self.inputs.reference
        if spec == "whole_brain":
            ref = brain
        elif spec.startswith("roi:"):
            names = [n.strip() for n in spec[4:].split(",") if n.strip()]
            lut = read_lut(self.inputs.lut)
            unknown = sorted(set(names) - set(lut["name"]))
            if unknown:
                raise ValueError(
                    f"pet.suvr_reference: ROI(s) {unknown} not in the label table "
                    f"({', '.join(sorted(set(lut['name'])))})"
                )
            idx = lut.loc[lut["name"].isin(names), "index"].astype(int)
            ref = np.isin(np.asarray(nb.load(self.inputs.rois).dataobj).astype(int), idx)
        else:
            raise ValueError(f"pet.suvr_reference {spec!r}: use whole_brain or roi:<name>")
        ratio, value = suvr(img.get_fdata(), ref, return_reference=True)
        self._results["out_file"] = _save(
            ratio, img.affine, os.path.join(runtime.cwd, "suvr.nii.gz")
        )
        if isdefined(self.inputs.native):
            nat = nb.load(self.inputs.native)
            self._results["native"] = _save(
                nat.get_fdata() / value,
                nat.affine,
                os.path.join(runtime.cwd, "suvr_native.nii.gz"),
            )
        self._results["provenance"] = {
            "SUVRReference": spec,
            "ReferenceValue": value,
            "ReferenceVoxels": int(ref.sum()),
        }
        return runtime


class _CountsInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="3-D SPECT image (or 4-D, one frame)")
    scale = traits.Float(1.0, usedefault=True, desc="image units to counts or Bq/mL")
    per_second = traits.Bool(False, usedefault=True, desc="divide by the frame duration")
    duration = traits.Float(1.0, usedefault=True)
    decay_factor = traits.Float(1.0, usedefault=True, desc="decay correction to injection")


class SPECTCounts(SimpleInterface):
    """A SPECT acquisition as decay-corrected count rate (or activity) per voxel."""

    input_spec = _CountsInputSpec
    output_spec = _OutFile

    def _run_interface(self, runtime):
        import nibabel as nb

        img = nb.load(self.inputs.in_file)
        data = img.get_fdata(dtype=np.float32)
        data[~np.isfinite(data)] = 0  # NaN/Inf: no counts (below the ratio floor: masked)
        if data.ndim == 4 and data.shape[3] == 1:
            data = data[..., 0]
        if data.ndim != 3:
            raise ValueError(
                f"{self.inputs.in_file}: a SPECT acquisition must be 3-D (or 4-D "
                f"with one frame), got shape {img.shape}"
            )
        val = data * self.inputs.scale * self.inputs.decay_factor
        if self.inputs.per_second:
            val = val / self.inputs.duration
        self._results["out_file"] = _save(
            val, img.affine, os.path.join(runtime.cwd, "corrected.nii.gz")
        )
        return runtime


class _LateEarlyInputSpec(BaseInterfaceInputSpec):
    early = File(exists=True, mandatory=True)
    late = File(exists=True, mandatory=True, desc="late image on the early grid")
    floor_fraction = traits.Float(
        0.05, usedefault=True, desc="early below this x its 99th percentile: no ratio"
    )


class _LateEarlyOutputSpec(TraitedSpec):
    out_file = File(desc="late/early ratio")
    provenance = traits.Dict(traits.Str, traits.Any)


class LateEarlyRatio(SimpleInterface):
    """Voxelwise late/early uptake ratio where the early image has counts."""

    input_spec = _LateEarlyInputSpec
    output_spec = _LateEarlyOutputSpec

    def _run_interface(self, runtime):
        import nibabel as nb

        early = nb.load(self.inputs.early)
        late = nb.load(self.inputs.late)
        if early.shape != late.shape:
            raise ValueError(
                f"{self.inputs.late}: grid {late.shape} differs from "
                f"{self.inputs.early} {early.shape}; resample first"
            )
        e, lt = early.get_fdata(), late.get_fdata()
        floor = self.inputs.floor_fraction * np.nanpercentile(e, 99)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(e > floor, lt / e, np.nan)
        self._results["out_file"] = _save(
            ratio, early.affine, os.path.join(runtime.cwd, "ratio.nii.gz")
        )
        self._results["provenance"] = {
            "RatioFloor": float(floor),
            "RatioFloorFraction": self.inputs.floor_fraction,
            "RatioVoxels": int(np.isfinite(ratio).sum()),
        }
        return runtime


class _FrameXfmInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="ITK text file, one transform per frame")
    selected = traits.List(traits.Int, mandatory=True, desc="indices of the frames used")


class _FrameXfmOutputSpec(TraitedSpec):
    transforms = traits.List(traits.List(File), desc="per selected frame: [its transform]")


class FrameTransforms(SimpleInterface):
    """The per-frame transforms of a motion correction done elsewhere (PETPrep's
    ``from-orig_to-petref_mode-image_xfm.txt``), one file per selected frame."""

    input_spec = _FrameXfmInputSpec
    output_spec = _FrameXfmOutputSpec

    def _run_interface(self, runtime):
        from pipeline.bids.reuse import itk_transform_blocks

        blocks = itk_transform_blocks(self.inputs.in_file)
        out = []
        for i in self.inputs.selected:
            if not 0 <= i < len(blocks):
                raise ValueError(f"{self.inputs.in_file}: no transform for frame {i}")
            path = os.path.join(runtime.cwd, f"frame{i:03d}_xfm.txt")
            with open(path, "w") as fh:
                fh.write(blocks[i])
            out.append([path])
        self._results["transforms"] = out
        return runtime
