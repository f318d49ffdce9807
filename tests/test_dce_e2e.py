"""DCE on the demo: the venous input function and the planted Ktrans are recovered."""

import json

import nibabel as nb
import numpy as np
import pandas as pd

AGENT = "gadobutrol"


def _files(demo_run, pid, ses):
    return demo_run["out"] / pid / ses / "anat" / f"{pid}_{ses}_ce-{AGENT}"


def _roi_mean(values, labels, lut, name, hemisphere):
    idx = lut[(lut.name == name) & (lut.hemisphere == hemisphere)]["index"].iloc[0]
    return float(np.nanmean(values[labels == idx]))


def test_vif_peak_recovered(demo_run):
    truth = json.loads((demo_run["demo"] / "groundtruth" / "groundtruth.json").read_text())
    for pid, p in truth["participants"].items():
        for ses, s in p["sessions"].items():
            dce = next(v for k, v in s["files"].items() if k.endswith("_dce.nii.gz"))
            vif = pd.read_csv(f"{_files(demo_run, pid, ses)}_desc-vif_timeseries.tsv", sep="\t")
            true_peak = max(dce["aif_plasma_mM"])
            assert abs(vif["plasma_mM"].max() - true_peak) <= 0.20 * true_peak, (pid, ses)
            np.testing.assert_allclose(vif["time_s"], dce["frame_times_s"])


def test_planted_ktrans_recovered(demo_run):
    """Mean Ktrans over the pipeline's ROI vs the true partial-volume Ktrans of the same
    voxels: within 20 % where the leak was planted, the input function's peak within 20 %
    of the true one; the other side stays near baseline."""
    truth = json.loads((demo_run["demo"] / "groundtruth" / "groundtruth.json").read_text())
    checked = 0
    for pid, p in truth["participants"].items():
        if p["group"] != "MA":
            continue
        ses = "ses-02"
        f = _files(demo_run, pid, ses)
        kt = nb.load(f"{f}_Ktrans.nii.gz").get_fdata()
        true = nb.load(
            demo_run["demo"]
            / "groundtruth"
            / pid
            / ses
            / f"{pid}_{ses}_ce-{AGENT}_desc-true_Ktrans.nii.gz"
        ).get_fdata()
        # the ROIs on the DCE grid are those of the regional table: rebuild them the same way
        table = pd.read_csv(f"{f}_atlas-inflamapLobes_desc-Ktrans_regions.tsv", sep="\t")
        occ = table[table.roi == "occipital"].set_index("hemisphere")
        side = p["headache_side"]
        other = "right" if side == "left" else "left"
        assert occ.loc[side, "mean"] > 3 * occ.loc[other, "mean"]
        assert occ.loc["AI", "mean"] > 0
        # voxelwise truth over the leak: brain voxels whose true Ktrans carries the effect
        effect = nb.load(
            demo_run["demo"]
            / "groundtruth"
            / pid
            / ses
            / f"{pid}_{ses}_ce-{AGENT}_desc-effect_Ktrans.nii.gz"
        ).get_fdata()
        # voxels of the planted leak without extra-cerebral partial volume (dura, marrow and
        # scalp leak fast, with backflux, and are not what the leak test is about)
        leak = (effect > 0.004) & (true - effect < 0.001)
        assert leak.sum() > 20
        measured, expected = np.nanmean(kt[leak]), true[leak].mean()
        print(pid, "Ktrans measured", measured, "true", expected)
        # within 20 %: Patlak ignores the leak's backflux (ve planted; about -9 % here with
        # a pure input function) and this phantom's sinus is the pipeline's own 59 ml box, so
        # its 0.2 ml of most-enhancing voxels (7 of ~2,200) are picked partly by their noise
        # (input peak about +12 %): -17 % in all (with 24 voxels it was -14 %; on the
        # real-head reference, where 24 voxels reach into partial volume, 0.2 ml is what
        # brings normal-brain Ktrans within 0.0004/min)
        assert abs(measured - expected) <= 0.20 * expected
        # the input function itself: the demo's blood peak at its 15 s frames (Parker
        # population curve) within 20 %
        from pipeline.demo.common import DCE, HEMATOCRIT
        from pipeline.models.pharmacokinetics import parker_aif

        t = np.arange(DCE["n"]) * DCE["dt"]
        true_peak = (parker_aif(t, DCE["injection"], HEMATOCRIT) * (1 - HEMATOCRIT)).max()
        meta = json.loads(open(f"{f}_Ktrans.json").read())
        assert abs(meta["VIFPeakBlood_mM"] / true_peak - 1) <= 0.2, meta["VIFPeakBlood_mM"]
        checked += 1
    assert checked > 0


def test_dce_sidecars(demo_run):
    f = _files(demo_run, "sub-01", "ses-01")
    meta = json.loads(open(f"{f}_Ktrans.json").read())
    assert meta["Units"] == "1/min" and meta["Model"] == "patlak"
    assert meta["Hematocrit"] == 0.45 and meta["VIFVoxels"] >= 1
    assert meta["Sources"][0].endswith(f"ce-{AGENT}_dce.nii.gz")
    assert any(s.endswith("flip-1_VFA.nii.gz") for s in meta["Sources"])
    t1 = nb.load(f"{f}_T1map.nii.gz").get_fdata()
    wm = np.nanmedian(t1[(t1 > 0.6) & (t1 < 1.1)])
    assert abs(wm - 0.85) < 0.1  # white-matter T1 of the phantom (s)
    # T1 and the fit residual also in template space, on the template grid
    tpl = (
        demo_run["out"]
        / "sub-01"
        / "ses-01"
        / "anat"
        / ("sub-01_ses-01_space-MNI152NLin2009aSym_desc-preproc_T1w.nii.gz")
    )
    for name in (
        f"{f.name}_space-MNI152NLin2009aSym_T1map",
        f"{f.name}_space-MNI152NLin2009aSym_desc-fit_residual",
    ):
        img = nb.load(f.parent / f"{name}.nii.gz")
        assert img.shape == nb.load(tpl).shape
        assert json.loads((f.parent / f"{name}.json").read_text())["Units"] in ("s", "mM")
    t1_tpl = nb.load(f.parent / f"{f.name}_space-MNI152NLin2009aSym_T1map.nii.gz").get_fdata()
    assert abs(np.nanmedian(t1_tpl[(t1_tpl > 0.6) & (t1_tpl < 1.1)]) - 0.85) < 0.1


def test_ktrans_change_matches_the_patlak_truth(demo_run):
    """Over the pipeline's own occipital ROI (DCE grid), the ictal - interictal Ktrans change
    on the headache side is within 10 % of what Patlak gives on the noise-free data
    (the planted change less the backflux Patlak does not model)."""
    from pipeline.demo.evaluate import truth_regional_table

    truth = json.loads((demo_run["demo"] / "groundtruth" / "groundtruth.json").read_text())
    checked = 0
    for pid, p in truth["participants"].items():
        if p["group"] != "MA":
            continue
        change = {}
        for kind in ("measured", "truth"):
            vals = []
            for ses in ("ses-01", "ses-02"):
                src = (
                    f"{pid}/{ses}/anat/{pid}_{ses}_ce-{AGENT}_atlas-inflamapLobes_"
                    "desc-Ktrans_regions.tsv"
                )
                t = (
                    pd.read_csv(demo_run["out"] / src, sep="\t")
                    if kind == "measured"
                    else truth_regional_table(demo_run["demo"], demo_run["out"], src, "patlak")
                )
                t = t.set_index(["roi", "hemisphere"])
                vals.append(float(t.loc[("occipital", p["headache_side"]), "mean"]))
            change[kind] = vals[1] - vals[0]
        print(pid, "Ktrans change measured", change["measured"], "Patlak truth", change["truth"])
        assert change["truth"] > 0.002
        assert abs(change["measured"] - change["truth"]) <= 0.10 * change["truth"]
        checked += 1
    assert checked > 0
