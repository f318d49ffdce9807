"""Non-finite (NaN/Inf) input voxels: found once at the start of a workflow, made finite for
ANTs, and excluded from everything computed afterwards.

The preflight check counts non-finite voxels and lets the run go on (a few corrupted voxels
should not cost a participant); these interfaces keep them out of the results:

- :class:`NonFiniteMask` reads an input image, writes a copy with those voxels set to 0
  (ANTs and N4 need finite input) and a mask of them (any frame of a 4-D series);
- :class:`ExcludeVoxels` removes masked voxels from label images and masks (0 = no ROI), so
  that every regional table computed on them leaves them out;
- :class:`MaskMap` sets masked voxels of a quantitative map to NaN (maps on disk show
  "no value" there, not a number computed from a zero).
"""

from __future__ import annotations

import os

import numpy as np
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    InputMultiObject,
    OutputMultiObject,
    SimpleInterface,
    TraitedSpec,
    traits,
)

from pipeline.utils import same_grid


def union_mask(paths, ref):
    """Union of the masks ``paths`` (on the grid of the image ``ref``): a boolean array,
    all False when there are none."""
    import nibabel as nb

    out = np.zeros(ref.shape[:3], bool)
    for p in paths:
        img = nb.load(p)
        if not same_grid(img, ref):
            raise ValueError(f"{p}: mask not on the grid of {ref.get_filename()}")
        out |= np.asarray(img.dataobj).reshape(img.shape[:3]) > 0
    return out


class _NonFiniteInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="input image (3-D or 4-D)")


class _NonFiniteOutputSpec(TraitedSpec):
    out_file = File(desc="the image with non-finite voxels set to 0 (the input if none)")
    mask = File(desc="uint8 mask of the voxels non-finite in any frame")
    n_nonfinite = traits.Int(desc="number of such voxels (3-D positions)")
    provenance = traits.Dict(traits.Str, traits.Any, desc="sidecar fields")


class NonFiniteMask(SimpleInterface):
    """Zero-fill NaN/Inf voxels for ANTs and return their mask and count."""

    input_spec = _NonFiniteInputSpec
    output_spec = _NonFiniteOutputSpec

    def _run_interface(self, runtime):
        import nibabel as nb

        img = nb.load(self.inputs.in_file)
        data = np.asarray(img.dataobj)
        finite = np.isfinite(data)
        bad = (
            ~finite if data.ndim == 3 else ~np.all(finite.reshape(data.shape[:3] + (-1,)), axis=-1)
        )
        n = int(bad.sum())
        out = self.inputs.in_file
        if n:
            clean = np.where(finite, data, 0).astype(np.float32)
            out = os.path.join(runtime.cwd, "finite.nii.gz")
            hdr = img.header.copy()
            hdr.set_data_dtype(np.float32)
            hdr["scl_slope"], hdr["scl_inter"] = 1.0, 0.0  # the data are scaled already
            nb.Nifti1Image(clean, img.affine, hdr).to_filename(out)
        mask = os.path.join(runtime.cwd, "nonfinite_mask.nii.gz")
        nb.Nifti1Image(bad.astype(np.uint8), img.affine).to_filename(mask)
        self._results.update(
            out_file=out, mask=mask, n_nonfinite=n, provenance={"NonFiniteVoxels": n} if n else {}
        )
        return runtime


class _ExcludeInputSpec(BaseInterfaceInputSpec):
    in_files = InputMultiObject(
        File(exists=True), mandatory=True, desc="label images or masks on one grid"
    )
    exclude = InputMultiObject(
        File(exists=True), mandatory=True, desc="masks of voxels to remove (their union)"
    )


class _ExcludeOutputSpec(TraitedSpec):
    out_files = OutputMultiObject(File())


class ExcludeVoxels(SimpleInterface):
    """Set excluded voxels of label images / masks to 0 (inputs pass when none is)."""

    input_spec = _ExcludeInputSpec
    output_spec = _ExcludeOutputSpec

    def _run_interface(self, runtime):
        import nibabel as nb

        outs = []
        for i, path in enumerate(self.inputs.in_files):
            img = nb.load(path)
            bad = union_mask(self.inputs.exclude, img)
            if not bad.any():
                outs.append(path)
                continue
            data = np.asarray(img.dataobj).copy()
            data[bad] = 0
            out = os.path.join(runtime.cwd, f"excluded{i}_{os.path.basename(path)}")
            nb.Nifti1Image(data, img.affine, img.header).to_filename(out)
            outs.append(out)
        self._results["out_files"] = outs
        return runtime


class _MaskMapInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="quantitative map")
    exclude = InputMultiObject(
        File(exists=True), mandatory=True, desc="masks of voxels without a value (their union)"
    )


class _OutFile(TraitedSpec):
    out_file = File()


class MaskMap(SimpleInterface):
    """NaN in the excluded voxels of a map (the input passes when none is excluded)."""

    input_spec = _MaskMapInputSpec
    output_spec = _OutFile

    def _run_interface(self, runtime):
        import nibabel as nb

        img = nb.load(self.inputs.in_file)
        bad = union_mask(self.inputs.exclude, img)
        out = self.inputs.in_file
        if bad.any():
            data = img.get_fdata(dtype=np.float32)
            data[bad] = np.nan
            out = os.path.join(runtime.cwd, os.path.basename(self.inputs.in_file))
            hdr = img.header.copy()
            hdr.set_data_dtype(np.float32)
            nb.Nifti1Image(data, img.affine, hdr).to_filename(out)
        self._results["out_file"] = out
        return runtime
