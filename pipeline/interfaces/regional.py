"""Interfaces for atlases and regional tables (wrapping :mod:`pipeline.atlas` and
:mod:`pipeline.models.regional`)."""

from __future__ import annotations

import os

import numpy as np
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    Str,
    TraitedSpec,
    isdefined,
    traits,
)


def save_labels(data, affine, path, dtype=np.int16):
    """Write an integer label image (no intensity scaling)."""
    import nibabel as nb

    img = nb.Nifti1Image(np.asarray(data).astype(dtype), affine)
    img.set_data_dtype(dtype)
    img.to_filename(path)
    return path


class _LobarAtlasInputSpec(BaseInterfaceInputSpec):
    gm_probseg = File(exists=True, mandatory=True)
    wm_probseg = File(exists=True, mandatory=True)
    atlas = traits.Enum("inflamapLobes", "inflamapTerritories", "inflamapTSPO", usedefault=True)


class _AtlasOutputSpec(TraitedSpec):
    atlas = File(desc="label image in template space")
    lut = File(desc="label table (index, name, hemisphere)")


class LobarAtlas(SimpleInterface):
    """A built-in atlas (:data:`pipeline.atlas.BUILTIN`) on the template's grid."""

    input_spec = _LobarAtlasInputSpec
    output_spec = _AtlasOutputSpec

    def _run_interface(self, runtime):
        import nibabel as nb

        from pipeline.atlas import BUILTIN

        make_labels, make_lut = BUILTIN[self.inputs.atlas]
        gm = nb.load(self.inputs.gm_probseg)
        tissue = gm.get_fdata() + nb.load(self.inputs.wm_probseg).get_fdata()
        labels = make_labels(tissue, gm.affine)
        stem = os.path.join(runtime.cwd, f"atlas-{self.inputs.atlas}_dseg")
        out = save_labels(labels, gm.affine, stem + ".nii.gz", np.uint8)
        lut = stem + ".tsv"
        make_lut().to_csv(lut, sep="\t", index=False)
        self._results.update(atlas=out, lut=lut)
        return runtime


class _TableInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="quantitative map")
    labels = File(exists=True, mandatory=True, desc="label image on the same grid")
    lut = File(exists=True, mandatory=True, desc="label table TSV")
    mask = File(exists=True, desc="valid-voxel mask on the same grid")
    participant_id = Str(mandatory=True)
    session_id = Str("n/a", usedefault=True)
    modality = Str(mandatory=True)
    metric = Str(mandatory=True)
    headache_side = traits.Either(None, Str, default=None, usedefault=True)
    min_voxels = traits.Int(1, usedefault=True)
    covariates = traits.Dict(traits.Str, traits.Any, desc="columns carried into the table")
    weights = File(exists=True, desc="partial-volume weights on the map's grid")


class _TableOutputSpec(TraitedSpec):
    out_table = File(desc="tidy regional TSV")


def read_lut(path):
    """A label table (``index``, ``name``, optional ``hemisphere``) as a DataFrame."""
    import pandas as pd

    lut = pd.read_csv(path, sep="\t")
    if "index" not in lut or "name" not in lut:
        raise ValueError(f"{path}: a label table needs 'index' and 'name' columns")
    if "hemisphere" not in lut:
        names = lut["name"].astype(str).str.lower()
        lut["hemisphere"] = np.select(
            [names.str.contains("left|_lh|^lh_|^l_"), names.str.contains("right|_rh|^rh_|^r_")],
            ["left", "right"],
            "bilateral",
        )
    return lut


class RegionalTable(SimpleInterface):
    """Tidy per-ROI statistics (and ipsi/contra/AI rows) of a map."""

    input_spec = _TableInputSpec
    output_spec = _TableOutputSpec

    def _run_interface(self, runtime):
        import nibabel as nb

        from pipeline.models.regional import regional_table

        img = nb.load(self.inputs.in_file)
        lab = nb.load(self.inputs.labels)
        if img.shape[:3] != lab.shape[:3] or not np.allclose(img.affine, lab.affine, atol=1e-3):
            raise ValueError(
                f"{self.inputs.labels}: label grid differs from {self.inputs.in_file}; "
                "resample the labels to the map first"
            )
        mask = None
        if self.inputs.mask:
            mask = np.asarray(nb.load(self.inputs.mask).dataobj) > 0
        weights = None
        if isdefined(self.inputs.weights):
            w = nb.load(self.inputs.weights)
            if w.shape[:3] != img.shape[:3]:
                raise ValueError(
                    f"{self.inputs.weights}: not on the grid of {self.inputs.in_file}"
                )
            weights = w.get_fdata()
        table = regional_table(
            img.get_fdata(),
            np.asarray(lab.dataobj).astype(int),
            read_lut(self.inputs.lut),
            participant_id=self.inputs.participant_id,
            session_id=self.inputs.session_id,
            modality=self.inputs.modality,
            metric=self.inputs.metric,
            headache_side=self.inputs.headache_side,
            mask=mask,
            weights=weights,
            extra_columns=self.inputs.covariates or None,
        )
        few = table["n_voxels"] < self.inputs.min_voxels
        table.loc[few, ["mean", "median", "sd"]] = np.nan
        out = os.path.join(runtime.cwd, "regions.tsv")
        table.to_csv(out, sep="\t", index=False, na_rep="n/a")
        self._results["out_table"] = out
        return runtime


class _NormalizeInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True)
    mask = File(exists=True, mandatory=True)


class _NormalizeOutputSpec(TraitedSpec):
    out_file = File()
    scale = traits.Float()


class NormalizeToMedian(SimpleInterface):
    """Divide an image by its median within a mask (``nT1w``: intensity relative to brain)."""

    input_spec = _NormalizeInputSpec
    output_spec = _NormalizeOutputSpec

    def _run_interface(self, runtime):
        import nibabel as nb

        img = nb.load(self.inputs.in_file)
        data = img.get_fdata()
        m = np.asarray(nb.load(self.inputs.mask).dataobj) > 0
        if not m.any():
            raise ValueError(f"{self.inputs.mask}: empty brain mask")
        scale = float(np.median(data[m]))
        if scale <= 0:
            raise ValueError(f"{self.inputs.in_file}: non-positive median within the brain")
        out = os.path.join(runtime.cwd, "normalized.nii.gz")
        nb.Nifti1Image((data / scale).astype(np.float32), img.affine, img.header).to_filename(out)
        self._results.update(out_file=out, scale=scale)
        return runtime


class _SinusInputSpec(BaseInterfaceInputSpec):
    brain_mask = File(exists=True, mandatory=True, desc="template brain mask")


class _OutFileSpec(TraitedSpec):
    out_file = File()


class SinusPrior(SimpleInterface):
    """Geometric dural-sinus labels on the template grid (:func:`pipeline.rois.sinus_prior`)."""

    input_spec = _SinusInputSpec
    output_spec = _OutFileSpec

    def _run_interface(self, runtime):
        import nibabel as nb

        from pipeline.rois import sinus_prior

        img = nb.load(self.inputs.brain_mask)
        out = save_labels(
            sinus_prior(np.asarray(img.dataobj), img.affine),
            img.affine,
            os.path.join(runtime.cwd, "sinus_prior.nii.gz"),
            np.uint8,
        )
        self._results["out_file"] = out
        return runtime


class _PVInputSpec(BaseInterfaceInputSpec):
    brain_mask = File(exists=True, mandatory=True)
    gm_prob = File(exists=True, mandatory=True)
    wm_prob = File(exists=True, mandatory=True)


class PartialVolumeWeights(SimpleInterface):
    """Weights of the regional means (:func:`pipeline.models.regional.partial_volume_weights`)."""

    input_spec = _PVInputSpec
    output_spec = _OutFileSpec

    def _run_interface(self, runtime):
        import nibabel as nb

        from pipeline.models.regional import partial_volume_weights

        mask = nb.load(self.inputs.brain_mask)
        w = partial_volume_weights(
            np.asarray(mask.dataobj),
            nb.load(self.inputs.gm_prob).get_fdata(),
            nb.load(self.inputs.wm_prob).get_fdata(),
        )
        out = os.path.join(runtime.cwd, "pv_weights.nii.gz")
        nb.Nifti1Image(w, mask.affine).to_filename(out)
        self._results["out_file"] = out
        return runtime


class TemplateZ(SimpleInterface):
    """Each voxel's world z (mm) on a template grid: brought to the T1w through the inverse
    registration, it tells the template's vertical in the participant's head."""

    input_spec = _SinusInputSpec
    output_spec = _OutFileSpec

    def _run_interface(self, runtime):
        import nibabel as nb

        img = nb.load(self.inputs.brain_mask)
        ijk = np.indices(img.shape[:3]).reshape(3, -1)
        z = (img.affine[2, :3] @ ijk + img.affine[2, 3]).reshape(img.shape[:3])
        out = os.path.join(runtime.cwd, "template_z.nii.gz")
        nb.Nifti1Image(z.astype(np.float32), img.affine).to_filename(out)
        self._results["out_file"] = out
        return runtime


class _ExtraInputSpec(BaseInterfaceInputSpec):
    brain_mask = File(exists=True, mandatory=True)
    atlas = File(exists=True, mandatory=True)
    lut = File(exists=True, mandatory=True)
    sinus = File(exists=True, desc="sinus labels (1 SSS, 2/3 transverse) on the same grid")
    meningeal_mm = traits.Tuple(traits.Float, traits.Float, default=(0.0, 4.0), usedefault=True)
    calvarial_mm = traits.Tuple(traits.Float, traits.Float, default=(4.0, 10.0), usedefault=True)
    sinus_margin_mm = traits.Float(3.0, usedefault=True)
    t1w = File(exists=True, desc="the head T1w (with skull and scalp), same grid")
    intracranial = File(exists=True, desc="intracranial (extraction) mask, same grid")
    template_z = File(exists=True, desc="template z (mm) of each voxel, same grid")
    scalp_mm = traits.Float(4.0, usedefault=True, desc="calvarium at least this deep")
    tissue = File(exists=True, desc="tissue labels (1 CSF, 2 GM, 3 WM), same grid")


class _ExtraOutputSpec(TraitedSpec):
    out_labels = File(desc="atlas + meningeal/calvarial bands + sinuses")
    out_lut = File()
    out_atlas = File(desc="the atlas labels of out_labels alone (inside the brain mask)")


class ExtracerebralROIs(SimpleInterface):
    """Atlas labels plus meningeal and calvarial bands and dural sinuses (native space)."""

    input_spec = _ExtraInputSpec
    output_spec = _ExtraOutputSpec

    def _run_interface(self, runtime):
        import nibabel as nb

        from pipeline.rois import extracerebral_rois

        mask = nb.load(self.inputs.brain_mask)
        atlas = nb.load(self.inputs.atlas)
        sinus = None
        if self.inputs.sinus:
            sinus = np.asarray(nb.load(self.inputs.sinus).dataobj)
        calvarium = None
        head_inputs = ("t1w", "intracranial", "template_z")
        if all(isdefined(getattr(self.inputs, k)) for k in head_inputs):
            from pipeline.rois import calvarium_mask, head_mask

            grids = [
                nb.load(getattr(self.inputs, k)) for k in ("t1w", "intracranial", "template_z")
            ]
            for k, img in zip(("t1w", "intracranial", "template_z"), grids):
                if img.shape[:3] != mask.shape[:3]:
                    raise ValueError(f"{getattr(self.inputs, k)}: not on the brain mask's grid")
            brain = np.asarray(mask.dataobj) > 0
            calvarium = calvarium_mask(
                brain,
                np.asarray(grids[1].dataobj) > 0,
                head_mask(grids[0].get_fdata(), brain),
                grids[2].get_fdata(),
                mask.header.get_zooms()[:3],
                tuple(self.inputs.calvarial_mm),
                self.inputs.scalp_mm,
            )
        tissue = None
        if isdefined(self.inputs.tissue):
            tissue = np.asarray(nb.load(self.inputs.tissue).dataobj)
        labels, lut = extracerebral_rois(
            np.asarray(mask.dataobj),
            np.asarray(atlas.dataobj),
            read_lut(self.inputs.lut),
            mask.header.get_zooms()[:3],
            sinus,
            tuple(self.inputs.meningeal_mm),
            tuple(self.inputs.calvarial_mm),
            self.inputs.sinus_margin_mm,
            calvarium,
            tissue,
        )
        out = save_labels(
            labels, mask.affine, os.path.join(runtime.cwd, "extracerebral_dseg.nii.gz")
        )
        tsv = os.path.join(runtime.cwd, "extracerebral_dseg.tsv")
        lut.to_csv(tsv, sep="\t", index=False)
        atlas_ids = read_lut(self.inputs.lut)["index"].to_numpy()
        self._results["out_atlas"] = save_labels(
            np.where(np.isin(labels, atlas_ids), labels, 0),
            mask.affine,
            os.path.join(runtime.cwd, "atlas_in_brain_dseg.nii.gz"),
        )
        self._results.update(out_labels=out, out_lut=tsv)
        return runtime
