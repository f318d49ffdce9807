"""Interfaces of the gadolinium workflow (wrapping :mod:`pipeline.models.enhancement` and
:mod:`pipeline.rois`)."""

from __future__ import annotations

import os

import numpy as np
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    InputMultiObject,
    SimpleInterface,
    Str,
    TraitedSpec,
    isdefined,
    traits,
)

from pipeline.rois import NORMALLY_ENHANCING
from pipeline.utils import same_grid


class _BiasInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="image to correct")
    bias_field = File(exists=True, mandatory=True, desc="multiplicative field (N4 of pre)")


class _OutFile(TraitedSpec):
    out_file = File()


class ApplyBiasField(SimpleInterface):
    """Divide an image by a bias field estimated on another image of the same session.

    The receive field is fixed to the scanner, so pre- and post-contrast images share it:
    estimating it once (on the pre-contrast T1w) keeps the enhancement from being
    "corrected" away. A field on another grid is resampled in scanner coordinates.
    """

    input_spec = _BiasInputSpec
    output_spec = _OutFile

    def _run_interface(self, runtime):
        import nibabel as nb
        from nibabel.processing import resample_from_to

        img = nb.load(self.inputs.in_file)
        field = nb.load(self.inputs.bias_field)
        if not same_grid(img, field):
            field = resample_from_to(field, img, order=1, cval=1.0)
        f = np.asarray(field.dataobj, dtype=float)
        data = img.get_fdata() / np.where(f > 1e-6, f, 1.0)
        data[~np.isfinite(data)] = 0  # NaN/Inf input voxels: no signal, finite for ANTs
        out = os.path.join(runtime.cwd, "bias_corrected.nii.gz")
        nb.Nifti1Image(data.astype(np.float32), img.affine, img.header).to_filename(out)
        self._results["out_file"] = out
        return runtime


class _EnhInputSpec(BaseInterfaceInputSpec):
    pre = File(exists=True, mandatory=True)
    post = File(exists=True, mandatory=True, desc="post-contrast, registered to pre")
    brain_mask = File(exists=True, mandatory=True)
    wm_prob = File(exists=True, mandatory=True, desc="white-matter probability on pre grid")
    method = traits.Enum("reference-tissue", "global-median", "none", usedefault=True)
    wm_threshold = traits.Float(0.95, usedefault=True)
    floor_fraction = traits.Float(0.1, usedefault=True)
    post_bias_degree = traits.Range(
        0, 3, 2, usedefault=True, desc="residual post/pre field polynomial degree (0: none)"
    )
    exclude = InputMultiObject(
        File(exists=True),
        desc="masks (pre grid) of voxels without a value: non-finite input voxels",
    )


class _EnhOutputSpec(TraitedSpec):
    subtraction = File()
    percent = File()
    post_normalised = File()
    factor = traits.Float()
    floor = traits.Float()
    wm_mean_abs_diff_percent = traits.Float(
        desc="QC: mean |post-pre| in reference WM, % of WM median"
    )
    n_reference_voxels = traits.Int()
    noise_sd = traits.Float(desc="robust SD of the subtraction in the reference white matter")
    provenance = traits.Dict(traits.Str, traits.Any, desc="sidecar fields")


class EnhancementMaps(SimpleInterface):
    """Normalise post to pre and compute subtraction and percent-enhancement maps."""

    input_spec = _EnhInputSpec
    output_spec = _EnhOutputSpec

    def _run_interface(self, runtime):
        import nibabel as nb
        from scipy import ndimage

        from pipeline.models.enhancement import (
            difference_noise_sd,
            enhancement_maps,
            normalisation_factor,
            residual_bias_field,
        )

        pre_img = nb.load(self.inputs.pre)
        post_img = nb.load(self.inputs.post)
        for other in (self.inputs.post, self.inputs.brain_mask, self.inputs.wm_prob):
            if not same_grid(pre_img, nb.load(other)):
                raise ValueError(f"{other}: not on the grid of {self.inputs.pre}")
        pre = pre_img.get_fdata()
        post = post_img.get_fdata()
        brain = np.asarray(nb.load(self.inputs.brain_mask).dataobj) > 0
        wm = (nb.load(self.inputs.wm_prob).get_fdata() >= self.inputs.wm_threshold) & brain
        from pipeline.interfaces.images import union_mask

        bad = union_mask(self.inputs.exclude if isdefined(self.inputs.exclude) else [], pre_img)
        # voxels of the pre grid outside the post image's field of view (NaN after its
        # resampling): no enhancement can be measured there
        outside = ~np.isfinite(post) & ~bad
        bad |= outside
        post = np.where(bad, 0.0, post)
        brain &= ~bad
        wm = ndimage.binary_erosion(wm) if ndimage.binary_erosion(wm).sum() >= 50 else wm
        wm &= ~bad
        field, field_info = residual_bias_field(pre, post, wm, self.inputs.post_bias_degree)
        post = post / field
        factor = normalisation_factor(
            pre, post, self.inputs.method, reference_mask=wm, brain_mask=brain
        )
        post_n = post * factor
        floor = self.inputs.floor_fraction * float(np.median(pre[brain]))
        diff, pct = enhancement_maps(pre, post_n, floor)
        for arr in (diff, pct, post_n):
            arr[bad] = np.nan
        noise_sd = difference_noise_sd(diff, wm & ~bad)
        wm_level = float(np.median(pre[wm])) if wm.any() else float("nan")
        qc = float(np.mean(np.abs(diff[wm])) / wm_level * 100) if wm.any() else float("nan")
        outs = {}
        for key, data in (("subtraction", diff), ("percent", pct), ("post_normalised", post_n)):
            path = os.path.join(runtime.cwd, f"{key}.nii.gz")
            img = nb.Nifti1Image(data.astype(np.float32), pre_img.affine)
            img.header.set_xyzt_units("mm")
            img.to_filename(path)
            outs[key] = path
        self._results.update(
            outs,
            factor=factor,
            floor=floor,
            wm_mean_abs_diff_percent=qc,
            n_reference_voxels=int(wm.sum()),
            noise_sd=noise_sd,
        )
        self._results["provenance"] = {
            "NormalisationMethod": self.inputs.method,
            "NormalisationFactor": factor,
            "ReferenceTissue": f"white matter, probability >= {self.inputs.wm_threshold:g}, eroded"
            if self.inputs.method == "reference-tissue"
            else None,
            "ReferenceVoxels": int(wm.sum()),
            "PercentFloor": floor,
            "PercentFloorFraction": self.inputs.floor_fraction,
            "NonFiniteVoxels": int((bad & ~outside).sum()),
            "OutsideFieldOfViewVoxels": int(outside.sum()),
            "QCWhiteMatterMeanAbsDiffPercent": qc,
            "PostBiasCorrection": (
                f"residual post/pre field: polynomial of degree {self.inputs.post_bias_degree} "
                "in log(post/pre) over the reference white matter (robust), divided out"
                if self.inputs.post_bias_degree
                else "none (only the pre-contrast N4 field)"
            ),
            "PostBiasFieldRange": field_info["range"],
            "SubtractionNoiseSD": noise_sd,
        }
        return runtime


class _FindInputSpec(BaseInterfaceInputSpec):
    percent = File(exists=True, mandatory=True)
    labels = File(exists=True, mandatory=True)
    lut = File(exists=True, mandatory=True)
    threshold = traits.Float(mandatory=True, desc="percent enhancement threshold")
    min_volume_mm3 = traits.Float(mandatory=True)
    subtraction = File(exists=True, desc="post - pre (for the noise criterion)")
    noise_sd = traits.Float(desc="noise SD of the subtraction (reference white matter)")
    n_sd = traits.Float(0.0, usedefault=True, desc="subtraction must exceed n_sd x noise_sd")
    vessel_radius_mm = traits.Float(
        0.0, usedefault=True, desc="leave out vessel-shaped clusters this thin (0: keep)"
    )
    n_spread = traits.Float(
        0.0, usedefault=True, desc="robust SDs above the compartment's median (brain, band)"
    )
    participant_id = Str(mandatory=True)
    session_id = Str("n/a", usedefault=True)
    exclude = traits.List(
        Str,
        ["calvarial_", *NORMALLY_ENHANCING],
        usedefault=True,
        desc="ROI name prefixes not searched (they enhance in everyone: skull marrow, "
        "sinuses, pituitary, choroid plexus)",
    )


class _FindOutputSpec(TraitedSpec):
    out_table = File()
    n_findings = traits.Int()
    n_vessel_like = traits.Int(desc="vessel-shaped clusters left out")


class EnhancementFindings(SimpleInterface):
    """Clusters of enhancement above a threshold and a minimum volume, with their ROI."""

    input_spec = _FindInputSpec
    output_spec = _FindOutputSpec

    def _run_interface(self, runtime):
        import nibabel as nb

        from pipeline.interfaces.regional import read_lut
        from pipeline.models.enhancement import enhancement_findings

        pct = nb.load(self.inputs.percent)
        labels = np.asarray(nb.load(self.inputs.labels).dataobj).astype(int)
        vox = float(np.prod(pct.header.get_zooms()[:3]))
        lut = read_lut(self.inputs.lut)
        keep = [
            int(i)
            for i, n in zip(lut["index"], lut["name"].astype(str))
            if not any(n.startswith(p) for p in self.inputs.exclude)
        ]
        df = enhancement_findings(
            pct.get_fdata(),
            labels,
            lut,
            vox,
            self.inputs.threshold,
            self.inputs.min_volume_mm3,
            mask=np.isin(labels, keep),
            subtraction=(
                nb.load(self.inputs.subtraction).get_fdata()
                if isdefined(self.inputs.subtraction)
                else None
            ),
            noise_sd=self.inputs.noise_sd if isdefined(self.inputs.noise_sd) else None,
            n_sd=self.inputs.n_sd,
            zooms=pct.header.get_zooms()[:3],
            vessel_radius_mm=self.inputs.vessel_radius_mm,
            compartments=[np.isin(labels, ids) for ids in _compartments(lut)],
            n_spread=self.inputs.n_spread,
        )
        vessels = int(df.attrs["vessel_like_excluded"])
        df.insert(0, "session_id", self.inputs.session_id)
        df.insert(0, "participant_id", self.inputs.participant_id)
        out = os.path.join(runtime.cwd, "findings.tsv")
        df.to_csv(out, sep="\t", index=False, na_rep="n/a")
        self._results.update(out_table=out, n_findings=len(df), n_vessel_like=vessels)
        return runtime


def _compartments(lut) -> list:
    """Label indices of the brain regions and of the meningeal band (the compartments whose
    own enhancement is the reference of the findings)."""
    names = lut["name"].astype(str)
    band = names.str.startswith("meningeal_")
    other = names.str.startswith("calvarial_") | names.isin(NORMALLY_ENHANCING)
    return [lut.loc[~band & ~other, "index"].to_numpy(), lut.loc[band, "index"].to_numpy()]


class _SinusRefineInputSpec(BaseInterfaceInputSpec):
    labels = File(exists=True, mandatory=True, desc="ROIs with the sinus priors")
    lut = File(exists=True, mandatory=True)
    subtraction = File(exists=True, mandatory=True, desc="post - pre, same grid")
    noise_sd = traits.Float(mandatory=True)


class _SinusRefineOutputSpec(TraitedSpec):
    out_labels = File()
    provenance = traits.Dict(traits.Str, traits.Any)


class RefineSinuses(SimpleInterface):
    """The venous sinuses of the ROI map re-segmented on the post-contrast enhancement
    (:func:`pipeline.rois.refine_sinuses`; the prior is kept as the fallback)."""

    input_spec = _SinusRefineInputSpec
    output_spec = _SinusRefineOutputSpec

    def _run_interface(self, runtime):
        import nibabel as nb

        from pipeline.interfaces.regional import read_lut, save_labels
        from pipeline.rois import refine_sinuses

        img = nb.load(self.inputs.labels)
        diff = nb.load(self.inputs.subtraction)
        if not same_grid(img, diff):
            raise ValueError(f"{self.inputs.subtraction}: not on the grid of the ROIs")
        labels, info = refine_sinuses(
            np.asarray(img.dataobj),
            read_lut(self.inputs.lut),
            diff.get_fdata(),
            self.inputs.noise_sd,
            img.header.get_zooms()[:3],
        )
        self._results["out_labels"] = save_labels(
            labels, img.affine, os.path.join(runtime.cwd, "rois_sinuses_dseg.nii.gz")
        )
        self._results["provenance"] = {
            "SinusSource": info["source"],
            "SinusPriorVolumeML": round(info["prior_ml"], 2),
            "SinusFoundVolumeML": round(info["found_ml"], 2),
        }
        return runtime
