"""Anatomical interfaces: brain extraction (deepbet), tissue segmentation (ANTs Atropos,
in-process through antspyx) and registration quality control."""

from __future__ import annotations

import json
import os
from contextlib import contextmanager

import nibabel as nb
import numpy as np
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    OutputMultiObject,
    SimpleInterface,
    TraitedSpec,
    traits,
)


def out_path(in_file: str, suffix: str, cwd: str) -> str:
    """``<cwd>/<in_file stem><suffix>.nii.gz``."""
    from nipype.utils.filemanip import fname_presuffix

    return fname_presuffix(in_file, suffix=suffix, newpath=cwd, use_ext=False) + ".nii.gz"


#: deepbet's wheel (its weights ship inside it)
DEEPBET_VERSION = "1.0.2"


class RegistrationQCError(RuntimeError):
    """A registration or brain mask outside its plausible range (the session failed)."""


def deepbet_version() -> str:
    try:
        from importlib.metadata import version

        return version("deepbet")
    except Exception:  # noqa: BLE001
        return DEEPBET_VERSION


class _BrainExtractionInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="T1w head (any pose, storage order, FOV)")
    threshold = traits.Range(0.0, 1.0, 0.5, usedefault=True, desc="of the network's output")
    num_threads = traits.Int(1, usedefault=True, nohash=True, desc="CPU threads of the network")


class _BrainExtractionOutputSpec(TraitedSpec):
    out_mask = File(exists=True, desc="intracranial brain mask (uint8, the input's grid)")
    volume_ml = traits.Float(desc="mask volume (ml)")


class BrainExtraction(SimpleInterface):
    """Brain extraction of a T1w head with deepbet (Fisch et al. 2024), on the CPU.

    deepbet is a pair of convolutional networks (a bounding-box network at 128³, then the
    mask network at 256³ in the box) trained on 7,837 T1w images of 191 datasets; its
    TorchScript weights ship in its wheel, so it runs offline. Inference is deterministic on
    the CPU (no sampling, no dropout). The mask follows the brain with the CSF of the
    subarachnoid space; the pial-surface mask comes from the segmentation that follows.
    """

    input_spec = _BrainExtractionInputSpec
    output_spec = _BrainExtractionOutputSpec

    def _run_interface(self, runtime):
        import torch
        from deepbet import BrainExtraction as DeepBET

        torch.set_num_threads(max(1, int(self.inputs.num_threads)))
        img = nb.load(self.inputs.in_file)
        data = np.asarray(img.dataobj, dtype=np.float32)
        if not np.isfinite(data).all() or np.ptp(data[np.isfinite(data)]) <= 0:
            data = np.nan_to_num(data, nan=0.0, posinf=0.0, neginf=0.0)
        clean = nb.Nifti1Image(data, img.affine, img.header)
        import warnings

        try:
            with warnings.catch_warnings():  # torch.jit.load's deprecation note, every run
                warnings.simplefilter("ignore", DeprecationWarning)
                bet = DeepBET(no_gpu=True)
            _, mask_img, volume = bet.run(clean, threshold=self.inputs.threshold)
        except (AssertionError, ValueError) as exc:
            raise RuntimeError(
                f"brain extraction found no brain in {os.path.basename(self.inputs.in_file)} "
                f"({exc}); is it a T1-weighted head image?"
            ) from exc
        mask = np.asarray(mask_img.dataobj) > 0
        if not mask.any():
            raise RuntimeError(
                f"brain extraction found no brain in {os.path.basename(self.inputs.in_file)}"
            )
        hdr = img.header.copy()
        hdr.set_data_dtype(np.uint8)
        out = out_path(self.inputs.in_file, "_brainmask", runtime.cwd)
        nb.Nifti1Image(mask.astype(np.uint8), img.affine, hdr).to_filename(out)
        self._results["out_mask"] = out
        self._results["volume_ml"] = float(mask.sum() * np.prod(img.header.get_zooms()[:3]) / 1e3)
        return runtime


class _NonZeroMaskInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="an already brain-extracted T1w")


class NonZeroMask(SimpleInterface):
    """The extraction mask of an already brain-extracted T1w: its non-zero voxels, holes
    filled, largest component (``skull_strip: skip``)."""

    input_spec = _NonZeroMaskInputSpec
    output_spec = _BrainExtractionOutputSpec

    def _run_interface(self, runtime):
        from scipy import ndimage as ndi

        from pipeline.models.brain import largest_component

        img = nb.load(self.inputs.in_file)
        data = np.nan_to_num(np.asarray(img.dataobj, dtype=np.float32))
        mask = largest_component(ndi.binary_fill_holes(data > 0))
        if not mask.any():
            raise RuntimeError(f"{os.path.basename(self.inputs.in_file)}: no non-zero voxel")
        hdr = img.header.copy()
        hdr.set_data_dtype(np.uint8)
        out = out_path(self.inputs.in_file, "_brainmask", runtime.cwd)
        nb.Nifti1Image(mask.astype(np.uint8), img.affine, hdr).to_filename(out)
        self._results["out_mask"] = out
        self._results["volume_ml"] = float(mask.sum() * np.prod(img.header.get_zooms()[:3]) / 1e3)
        return runtime


class _SegmentationInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="bias-corrected T1w")
    mask = File(exists=True, mandatory=True, desc="brain extraction mask")
    mrf_smoothing = traits.Range(0.0, 1.0, 0.1, usedefault=True, desc="Markov random field β")
    iterations = traits.Int(5, usedefault=True, desc="EM iterations")
    closing_mm = traits.Float(2.0, usedefault=True, desc="pial-hull closing radius (mm)")
    num_threads = traits.Int(
        1, usedefault=True, nohash=True, desc="(the labels do not depend on it)"
    )


class _SegmentationOutputSpec(TraitedSpec):
    out_dseg = File(exists=True, desc="1 CSF, 2 GM, 3 WM (0 outside the mask)")
    out_probseg = OutputMultiObject(File(exists=True), desc="CSF, GM, WM posteriors")
    brain_mask = File(exists=True, desc="GM+WM closed at the pial hull, holes filled")
    csf_mask = File(exists=True, desc="CSF inside the extraction mask, outside brain_mask")
    volumes_ml = traits.Dict(desc="CSF, GM, WM and brain volumes (ml)")


@contextmanager
def _private_tempdir(parent):
    """``tempfile``'s folder set to a new folder under ``parent`` (removed on exit)."""
    import shutil
    import tempfile

    folder = tempfile.mkdtemp(prefix="tmp-", dir=parent)
    before = tempfile.tempdir
    tempfile.tempdir = folder
    try:
        yield folder
    finally:
        tempfile.tempdir = before
        shutil.rmtree(folder, ignore_errors=True)


class TissueSegmentation(SimpleInterface):
    """Three-class segmentation (CSF, GM, WM) with ANTs Atropos, k-means initialised, with
    a Markov random field prior, inside the brain-extraction mask; the brain mask at the
    pial surface follows (:func:`pipeline.models.brain.refine_brain_mask`)."""

    input_spec = _SegmentationInputSpec
    output_spec = _SegmentationOutputSpec

    def _run_interface(self, runtime):
        import ants

        from pipeline.interfaces.ants import itk_threads
        from pipeline.models.brain import TISSUES, refine_brain_mask

        os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = itk_threads(self.inputs.num_threads)
        ref = nb.load(self.inputs.in_file)
        image = ants.image_read(self.inputs.in_file)
        mask = ants.image_read(self.inputs.mask)
        mask = ants.from_numpy(
            (mask.numpy() > 0).astype("float32"),
            origin=image.origin,
            spacing=image.spacing,
            direction=image.direction,
        )
        # intensities winsorised to the 0.5-99.5th percentiles inside the mask: one bright
        # outlier (a vessel, fat, an artefact) otherwise takes a k-means class of its own
        # (measured on a demo head: WM 127 ml instead of 775 ml)
        data = image.numpy()
        inside = mask.numpy() > 0
        lo, hi = np.percentile(data[inside], [0.5, 99.5])
        image = ants.from_numpy(
            np.clip(data, lo, hi).astype("float32"),
            origin=image.origin,
            spacing=image.spacing,
            direction=image.direction,
        )
        # antspyx writes Atropos' probability images to the system temporary folder and
        # never removes them (3 files, ~2 MB each at 1 mm, per call: 600 MB in /tmp after
        # the test suite): they go to a folder of the node's own, removed once read
        with _private_tempdir(runtime.cwd):
            seg = ants.atropos(
                a=image,
                x=mask,
                i="kmeans[3]",
                m=f"[{self.inputs.mrf_smoothing:g},1x1x1]",
                c=f"[{int(self.inputs.iterations)},0]",
                v=0,
                r=0,  # a constant seed: the same labels on every run and thread count
            )
            labels = seg["segmentation"].numpy().astype(np.int16)
            probs = [p.numpy().astype(np.float32) for p in seg["probabilityimages"]]
        # classes by mean intensity (CSF < GM < WM on a T1w), whatever Atropos numbered
        means = [float(data[labels == k + 1].mean()) if (labels == k + 1).any() else np.inf
                 for k in range(3)]  # fmt: skip
        order = np.argsort(means)
        relabel = np.zeros(4, np.int16)
        for new, old in enumerate(order):
            relabel[old + 1] = new + 1
        labels = relabel[labels]
        probs = [probs[i] for i in order]
        # antspyx arrays are in the image's voxel order (as nibabel's)
        zooms = ref.header.get_zooms()[:3]
        brain = refine_brain_mask(labels, zooms, closing_mm=self.inputs.closing_mm)
        csf = inside & ~brain

        def save(arr, suffix, dtype):
            hdr = ref.header.copy()
            hdr.set_data_dtype(dtype)
            hdr.set_intent("none")
            path = out_path(self.inputs.in_file, suffix, runtime.cwd)
            nb.Nifti1Image(np.asarray(arr, dtype), ref.affine, hdr).to_filename(path)
            return path

        self._results["out_dseg"] = save(labels, "_dseg", np.uint8)
        self._results["out_probseg"] = [
            save(p, f"_label-{name}_probseg", np.float32) for name, p in zip(TISSUES, probs)
        ]
        self._results["brain_mask"] = save(brain, "_brain_mask", np.uint8)
        self._results["csf_mask"] = save(csf, "_csf_mask", np.uint8)
        voxel_ml = float(np.prod(zooms)) / 1e3
        vols = {name: float((labels == k + 1).sum() * voxel_ml) for k, name in enumerate(TISSUES)}
        vols["brain"] = float(brain.sum() * voxel_ml)
        self._results["volumes_ml"] = {k: round(v, 2) for k, v in vols.items()}
        return runtime


class _ReusedSegmentationInputSpec(BaseInterfaceInputSpec):
    dseg = File(exists=True, mandatory=True, desc="BIDS tissue classes: 1 GM, 2 WM, 3 CSF")
    probseg = traits.List(
        File(exists=True), minlen=3, maxlen=3, mandatory=True, desc="CSF, GM, WM probabilities"
    )
    brain_mask = File(exists=True, mandatory=True, desc="the brain mask of the same tool")


class ReusedSegmentation(SimpleInterface):
    """Tissue classes, probabilities and brain mask of another pipeline (sMRIPrep/fMRIPrep,
    ``--derivatives``) in inflamap's convention: classes relabelled from BIDS' 1 GM, 2 WM,
    3 CSF to 1 CSF, 2 GM, 3 WM; probabilities clipped to [0, 1]; the mask binarised. The
    outputs of :class:`TissueSegmentation`, without recomputing them."""

    input_spec = _ReusedSegmentationInputSpec
    output_spec = _SegmentationOutputSpec

    def _run_interface(self, runtime):
        from pipeline.bids.reuse import DSEG_TO_INFLAMAP
        from pipeline.models.brain import TISSUES

        ref = nb.load(self.inputs.dseg)
        raw = np.asarray(ref.dataobj)
        if not np.all(np.isfinite(raw)) or not np.all(raw == np.round(raw)):
            raise ValueError(f"{self.inputs.dseg}: tissue classes must be whole numbers 0-3")
        values = set(np.unique(raw).astype(int).tolist())
        if not values <= set(DSEG_TO_INFLAMAP):
            raise ValueError(
                f"{self.inputs.dseg}: classes {sorted(values)}; a BIDS tissue segmentation "
                "has 0 background, 1 GM, 2 WM, 3 CSF"
            )
        lut = np.zeros(4, np.uint8)
        for old, new in DSEG_TO_INFLAMAP.items():
            lut[old] = new
        labels = lut[raw.astype(np.int16)]
        brain = np.asarray(nb.load(self.inputs.brain_mask).dataobj) > 0.5

        def save(arr, suffix, dtype):
            hdr = ref.header.copy()
            hdr.set_data_dtype(dtype)
            hdr.set_intent("none")
            path = out_path(self.inputs.dseg, suffix, runtime.cwd)
            nb.Nifti1Image(np.asarray(arr, dtype), ref.affine, hdr).to_filename(path)
            return path

        self._results["out_dseg"] = save(labels, "_inflamap_dseg", np.uint8)
        probs = []
        for name, f in zip(TISSUES, self.inputs.probseg):
            data = np.nan_to_num(np.asarray(nb.load(f).dataobj, dtype=np.float32))
            probs.append(save(np.clip(data, 0, 1), f"_label-{name}_probseg", np.float32))
        self._results["out_probseg"] = probs
        self._results["brain_mask"] = save(brain, "_brain_mask", np.uint8)
        self._results["csf_mask"] = save((labels == 1) & ~brain, "_csf_mask", np.uint8)
        voxel_ml = float(np.prod(ref.header.get_zooms()[:3])) / 1e3
        vols = {name: float((labels == k + 1).sum() * voxel_ml) for k, name in enumerate(TISSUES)}
        vols["brain"] = float(brain.sum() * voxel_ml)
        self._results["volumes_ml"] = {k: round(v, 2) for k, v in vols.items()}
        return runtime


class _FieldFromPairInputSpec(BaseInterfaceInputSpec):
    raw = File(exists=True, mandatory=True, desc="the T1w as acquired")
    corrected = File(exists=True, mandatory=True, desc="the same T1w, bias-corrected")
    sigma_mm = traits.Float(5.0, usedefault=True, desc="smoothing of the log ratio (mm)")


class _FieldFromPairOutputSpec(TraitedSpec):
    bias_image = File(exists=True, desc="multiplicative field on the corrected T1w's grid")


class BiasFieldFromPair(SimpleInterface):
    """The bias field another pipeline removed from a T1w, recovered as raw / corrected.

    sMRIPrep/fMRIPrep keep the N4-corrected T1w but not N4's field; the gadolinium
    workflow divides the post-contrast T1w by the pre-contrast T1w's field (they share the
    receive coil), so the field is recovered: the raw T1w is resampled to the corrected
    one's grid in scanner coordinates, and the log of their ratio wherever both have
    signal (above 0.1 % of the corrected image's 99th percentile and, for images stored as
    integers, 100 storage steps, so that rounding moves it by under 1 %) is smoothed by normalised
    convolution (Gaussian, ``sigma_mm``). Head voxels whose ratio is within 5 % of that
    smooth field keep their exact ratio (so that raw / field is the corrected T1w there);
    the others (intensities the other pipeline clipped) and the voxels outside the head
    take the smooth field (1 where no head voxel is near). The global scale is kept: raw /
    field is on the corrected T1w's scale.
    """

    input_spec = _FieldFromPairInputSpec
    output_spec = _FieldFromPairOutputSpec

    def _run_interface(self, runtime):
        from nibabel.processing import resample_from_to
        from scipy import ndimage

        from pipeline.utils import same_grid

        ref = nb.load(self.inputs.corrected)
        raw = nb.load(self.inputs.raw)

        def step(img):  # the stored precision of an integer image (its scaling slope)
            if np.issubdtype(img.get_data_dtype(), np.integer):
                slope = img.dataobj.slope
                return float(slope) if slope is not None and np.isfinite(slope) else 1.0
            return 0.0

        steps = step(raw), step(ref)
        if not same_grid(raw, ref):
            raw = resample_from_to(raw, (ref.shape[:3], ref.affine), order=1, cval=0.0)
        a = np.asarray(raw.dataobj, dtype=np.float64).reshape(ref.shape[:3])
        b = np.asarray(ref.dataobj, dtype=np.float64).reshape(ref.shape[:3])
        ok = np.isfinite(a) & np.isfinite(b)
        floor = 1e-3 * np.percentile(b[ok & (b > 0)], 99) if (ok & (b > 0)).any() else np.inf
        # a ratio is kept where both values are at least 100 storage steps (integer images):
        # rounding then moves it by under 1 %
        head = ok & (a > max(floor, 100 * steps[0])) & (b > max(floor, 100 * steps[1]))
        if head.sum() < 100:
            raise ValueError(
                f"{self.inputs.corrected}: fewer than 100 head voxels in common with "
                f"{self.inputs.raw}; the bias field cannot be recovered"
            )
        log_ratio = np.where(head, np.log(np.where(head, a, 1.0) / np.where(head, b, 1.0)), 0.0)
        sigma = self.inputs.sigma_mm / np.asarray(ref.header.get_zooms()[:3], float)
        weight = ndimage.gaussian_filter(head.astype(np.float64), sigma)
        smooth = ndimage.gaussian_filter(log_ratio, sigma)
        smooth = np.where(weight > 1e-3, smooth / np.maximum(weight, 1e-3), 0.0)
        # the exact ratio where it agrees with the smooth field (within 5 %); the smooth
        # field where it does not (clipped intensities) and outside the head
        exact = head & (np.abs(log_ratio - smooth) < 0.05)
        field = np.exp(np.where(exact, log_ratio, smooth))
        hdr = ref.header.copy()
        hdr.set_data_dtype(np.float32)
        out = out_path(self.inputs.corrected, "_biasfield", runtime.cwd)
        nb.Nifti1Image(field.astype(np.float32), ref.affine, hdr).to_filename(out)
        self._results["bias_image"] = out
        return runtime


class _RegistrationQCInputSpec(BaseInterfaceInputSpec):
    brain_mask = File(exists=True, mandatory=True, desc="the participant's brain mask")
    template_mask_native = File(
        exists=True, mandatory=True, desc="template brain mask brought to the T1w (linear)"
    )
    template_mask = File(exists=True, mandatory=True, desc="template brain mask (template)")
    ranges = traits.Dict(mandatory=True, desc="{value: [low, high]} (None: open)")
    threshold = traits.Range(0.0, 1.0, 0.5, usedefault=True, desc="template brain probability")
    ignore_failures = traits.Bool(False, usedefault=True, desc="flag instead of failing")
    label = traits.Str("", usedefault=True, desc="participant/session for the message")


class _RegistrationQCOutputSpec(TraitedSpec):
    out_report = File(exists=True, desc="JSON: values, ranges, failures, passed")
    passed = traits.Bool()
    provenance = traits.Dict(desc="sidecar fields")


class RegistrationQC(SimpleInterface):
    """Plausibility checks after the T1w → template registration
    (:func:`pipeline.models.brain.registration_qc`). Out of range: the step fails with one
    line naming the value and its range, unless ``ignore_failures`` (then the report and
    the sidecars carry the failure)."""

    input_spec = _RegistrationQCInputSpec
    output_spec = _RegistrationQCOutputSpec

    def _run_interface(self, runtime):
        from pipeline.models.brain import QCRange, registration_qc

        brain = nb.load(self.inputs.brain_mask)
        tpl_native = np.asarray(nb.load(self.inputs.template_mask_native).dataobj, np.float32)
        tpl = nb.load(self.inputs.template_mask)
        tpl_ml = float(
            (np.asarray(tpl.dataobj) > 0.5).sum() * np.prod(tpl.header.get_zooms()[:3]) / 1e3
        )
        ranges = {k: QCRange(*v) for k, v in self.inputs.ranges.items()}
        qc = registration_qc(
            np.asarray(brain.dataobj) > 0,
            np.nan_to_num(tpl_native) >= self.inputs.threshold,
            tpl_ml,
            float(np.prod(brain.header.get_zooms()[:3])) / 1e3,
            ranges,
        )
        out = os.path.join(runtime.cwd, "registration_qc.json")
        with open(out, "w") as fh:
            json.dump(qc, fh, indent=2)
        self._results["out_report"] = out
        self._results["passed"] = qc["passed"]
        self._results["provenance"] = {
            "RegistrationQC": {
                "Passed": qc["passed"],
                "Values": qc["values"],
                "Ranges": qc["ranges"],
                **({"Failures": qc["failures"]} if qc["failures"] else {}),
            }
        }
        if qc["failures"] and not self.inputs.ignore_failures:
            who = f"{self.inputs.label}: " if self.inputs.label else ""
            raise RegistrationQCError(
                f"{who}T1w registration or brain mask implausible ("
                + "; ".join(qc["failures"])
                + "); check the T1w and the report, or rerun with --ignore-qc-failures to "
                "keep the outputs flagged"
            )
        return runtime


__all__ = [
    "BrainExtraction",
    "NonZeroMask",
    "RegistrationQC",
    "RegistrationQCError",
    "TissueSegmentation",
]
