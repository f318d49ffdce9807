"""TSPO PET and albumin SPECT on the demo: planted SUVR increase and late meningeal uptake
recovered against the ground truth over the pipeline's own ROIs; SUV sidecars."""

import json

import nibabel as nb
import numpy as np
import pandas as pd
import pytest

ATLAS = "atlas-inflamapLobes"


def _truth(demo_run):
    return json.loads((demo_run["demo"] / "groundtruth" / "groundtruth.json").read_text())


def _pet_file(p, ses="ses-01"):
    return next(v for k, v in p["sessions"][ses]["files"].items() if k.endswith("_pet.nii.gz"))


def _rois(demo_run, pid, ses):
    """The pipeline's native ROIs (T1w grid), its brain mask and label table."""
    a = demo_run["out"] / pid / ses / "anat" / f"{pid}_{ses}"
    labels = np.asarray(nb.load(f"{a}_{ATLAS}_desc-extracerebral_dseg.nii.gz").dataobj)
    brain = np.asarray(nb.load(f"{a}_desc-brain_mask.nii.gz").dataobj) > 0
    lut = pd.read_csv(f"{a}_{ATLAS}_desc-extracerebral_dseg.tsv", sep="\t")
    return labels.astype(int), brain, lut


def _table(demo_run, pid, ses, datatype, name):
    t = pd.read_csv(demo_run["out"] / pid / ses / datatype / f"{pid}_{ses}_{name}", sep="\t")
    return t.set_index(["roi", "hemisphere"])


def test_planted_suvr_recovered(demo_run):
    """Per ROI: the pipeline's SUVR against the true SUVR (noise-free, whole-brain reference
    over the pipeline's brain mask, same ROI): the increase over the no-effect truth is
    recovered within 3 percentage points where planted and stays within 2 points of the
    truth elsewhere (3 in the extra-cerebral bands, which take the PET's spill from the
    cortex)."""
    truth = _truth(demo_run)
    planted = 0
    for pid, p in truth["participants"].items():  # noqa: B007
        labels, brain, lut = _rois(demo_run, pid, "ses-01")
        gt = demo_run["demo"] / "groundtruth" / pid / "ses-01"
        true, base = (
            nb.load(gt / f"{pid}_ses-01_trc-PBR28_desc-{d}_SUV.nii.gz").get_fdata()
            for d in ("true", "baseline")
        )
        true_r, base_r = true / true[brain].mean(), base / base[brain].mean()
        t = _table(demo_run, pid, "ses-01", "pet", f"trc-PBR28_{ATLAS}_desc-SUVR_regions.tsv")
        for idx, roi, hemi in lut[["index", "name", "hemisphere"]].itertuples(index=False):
            sel = labels == idx
            if sel.sum() < 100:
                continue
            effect = 100 * (true_r[sel].mean() / base_r[sel].mean() - 1)
            measured = 100 * (t.loc[(roi, hemi), "mean"] / base_r[sel].mean() - 1)
            print(pid, roi, hemi, "measured", round(measured, 2), "true", round(effect, 2))
            if effect > 5:
                planted += 1
                assert measured == pytest.approx(effect, abs=3.0), (pid, roi, hemi)
            else:
                # the extra-cerebral bands start at the pial hull, next to the cortex: the
                # PET's PSF spills cortical uptake into them (measured on the control:
                # +1.1 to +2.4 pp in every band, none negative); no partial-volume
                # correction yet, so the null tolerance of the bands is wider
                band = roi.startswith(("meningeal", "calvarial"))
                tolerance = 3.0 if band else 2.0
                assert measured == pytest.approx(effect, abs=tolerance), (pid, roi, hemi)
    assert planted >= 4  # occipital cortex and bands, both hemispheres


def test_suv_sidecar_and_tspo_table(demo_run):
    truth = _truth(demo_run)
    part = pd.read_csv(demo_run["bids"] / "participants.tsv", sep="\t").set_index("participant_id")
    for pid, p in truth["participants"].items():
        f = demo_run["out"] / pid / "ses-01" / "pet" / f"{pid}_ses-01_trc-PBR28"
        meta = json.loads(open(f"{f}_desc-SUV_pet.json").read())
        info = _pet_file(p)
        assert meta["InjectedDoseBq"] == pytest.approx(info["injected_MBq"] * 1e6)
        assert meta["BodyWeightKg"] == pytest.approx(info["body_weight_kg"])
        assert meta["FrameWindowMin"] == [60, 90] and meta["Units"] == "g/mL"
        assert meta["TSPOGenotype"] == part.loc[pid, "tspo_genotype"]
        t = pd.read_csv(f"{f}_atlas-inflamapTSPO_desc-SUVR_regions.tsv", sep="\t")
        assert set(t["roi"]) >= {
            "visual_cortex",
            "somatosensory_cortex",
            "insula",
            "thalamus",
            "spinal_trigeminal",
        }
        assert (t["tspo_genotype"] == part.loc[pid, "tspo_genotype"]).all()
        suvr = json.loads(open(f"{f}_desc-SUVR_pet.json").read())
        assert suvr["SUVRReference"] == "whole_brain" and suvr["ReferenceValue"] > 0
        # SUV of white matter: the phantom's 0.9 (PET blur spares the deep white matter)
        suv = nb.load(f"{f}_space-T1w_desc-SUV_pet.nii.gz").get_fdata()
        base = nb.load(
            demo_run["demo"]
            / "groundtruth"
            / pid
            / "ses-01"
            / f"{pid}_ses-01_trc-PBR28_desc-baseline_SUV.nii.gz"
        ).get_fdata()
        deep = np.abs(base - 0.9 * (1 - np.exp(-75 / 12))) < 0.01
        assert deep.sum() > 50
        assert np.median(suv[deep]) == pytest.approx(0.9, rel=0.05)


def test_spect_late_early_ratio(demo_run):
    """The pipeline's late/early ratio per ROI (on the SPECT grid) within 10 % of the true
    ratio over the same ROI (T1w grid); the planted meningeal uptake raises the headache side
    over the other side."""
    truth = _truth(demo_run)
    for pid, p in truth["participants"].items():
        labels, _, lut = _rois(demo_run, pid, "ses-02")
        ratio = nb.load(
            demo_run["demo"]
            / "groundtruth"
            / pid
            / "ses-02"
            / f"{pid}_ses-02_trc-99mTcAlbumin_desc-true_ratio.nii.gz"
        ).get_fdata()
        t = _table(
            demo_run,
            pid,
            "ses-02",
            "spect",
            f"trc-99mTcAlbumin_{ATLAS}_desc-lateEarlyRatio_regions.tsv",
        )
        checked = 0
        for idx, roi, hemi in lut[["index", "name", "hemisphere"]].itertuples(index=False):
            sel = (labels == idx) & np.isfinite(ratio)
            if sel.sum() < 100 or t.loc[(roi, hemi), "n_voxels"] < 50:
                continue
            expected = ratio[sel].mean()
            measured = t.loc[(roi, hemi), "mean"]
            print(pid, roi, hemi, "measured", round(measured, 3), "true", round(expected, 3))
            assert measured == pytest.approx(expected, rel=0.10), (pid, roi, hemi)
            checked += 1
        assert checked >= 10
        if p["group"] == "MA":
            side = p["headache_side"]
            other = "right" if side == "left" else "left"
            band = t.loc["meningeal_occipital"]["mean"]
            assert band[side] > 1.1 * band[other]
