"""Group statistics (pipeline/group/models.py) and the group level (pipeline/group/) on synthetic
tables and a synthetic derivatives folder (the participant pipeline is not run)."""

from __future__ import annotations

import importlib.util
import json
import math
import re
from html.parser import HTMLParser
from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd
import pytest
from scipy import stats as sst
from statsmodels.stats.power import NormalIndPower, TTestIndPower, TTestPower

from pipeline.config import ConfigError, Settings, default_config, load_workflow_config
from pipeline.group import contrasts, inference, power
from pipeline.group import models as gs

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location(
    "bench_group", ROOT / "benchmarks" / "bench_group.py"
)
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

CFG = default_config().group
TEMPLATE = "MNI152NLin2009aSym"
PET_EFFECT, DCE_EFFECT = 0.15, 0.001  # SUVR +15 % (as in the demo), Ktrans +0.001/min
EFFECTS = [
    {"modality": "pet", "roi": "occipital", "size": PET_EFFECT, "who": "MA"},
    {"modality": "dce", "roi": "occipital", "size": DCE_EFFECT, "phase": "ictal", "side": "ipsi"},
]


def _run(table, contrasts=None, **kw):
    opts = {
        "value": "mean",
        "alpha": CFG.alpha,
        "fdr": CFG.fdr,
        "ci_level": CFG.ci_level,
        "target_power": CFG.target_power,
        "min_n": CFG.min_n,
        "covariates": CFG.covariates,
        "modality_rules": CFG.modality_rules,
    }
    opts.update(kw)
    return gs.group_statistics(table, CFG.contrasts if contrasts is None else contrasts, **opts)


PLANTED_CONTRASTS = (
    "patientsVsHC",
    "MAVsHC",
    "ictalVsInterictal",
    "ipsiVsContraIctal",
    "ipsiVsContraInterictal",
    "attacksPerMonth",
    "hoursSinceOnset",
)


@pytest.fixture(scope="module")
def planted():
    mods = [m for m in bench.MODALITIES if m[0] in ("dce", "pet")]
    # no participant effect shared by all ROIs: unplanted ROIs are independent nulls
    table, _, _ = bench.synthetic_group_table(
        80, modalities=mods, effects=EFFECTS, seed=3, person_sd=0.0
    )
    return table, _run(table, [c for c in CFG.contrasts if c["name"] in PLANTED_CONTRASTS])


def _row(res, contrast, modality, roi, hemisphere, test):
    r = res[
        (res["contrast"] == contrast)
        & (res["modality"] == modality)
        & (res["roi"] == roi)
        & (res["hemisphere"] == hemisphere)
        & (res["test"] == test)
    ]
    assert len(r) == 1, (contrast, modality, roi, hemisphere, test)
    return r.iloc[0]


def test_result_columns_and_families(planted):
    _, res = planted
    assert list(res.columns) == contrasts.RESULT_COLUMNS
    assert set(res["contrast"]) == set(PLANTED_CONTRASTS)
    # every family is corrected on its own: p_fdr >= p, and BH is monotone within a family
    ok = res["p"].notna()
    assert (res.loc[ok, "p_fdr"] >= res.loc[ok, "p"] - 1e-12).all()
    assert res.loc[~ok, "p_fdr"].isna().all() and not res.loc[~ok, "significant"].any()
    assert (res["significant"] == (res["p_fdr"] < CFG.alpha)).all()


@pytest.mark.parametrize(
    "contrast,modality,hemisphere,test,truth",
    [
        ("MAVsHC", "pet", "left", "welch", PET_EFFECT),
        ("MAVsHC", "pet", "right", "welch", PET_EFFECT),
        ("MAVsHC", "pet", "left", "ols", PET_EFFECT),
        ("ipsiVsContraIctal", "dce", "ipsi-contra", "paired_t", DCE_EFFECT),
        ("ictalVsInterictal", "dce", "ipsi", "paired_t", DCE_EFFECT),
    ],
)
def test_planted_effect_significant_right_sign_ci_covers_truth(
    planted, contrast, modality, hemisphere, test, truth
):
    _, res = planted
    r = _row(res, contrast, modality, "occipital", hemisphere, test)
    assert r["significant"] and r["p_fdr"] < CFG.alpha
    assert r["estimate"] > 0 and r["effect_size"] > 0 and r["ci_low"] > 0
    assert r["estimate_ci_low"] <= truth <= r["estimate_ci_high"]
    # the nonparametric companion agrees in sign
    other = {"welch": "mannwhitney", "ols": "mannwhitney", "paired_t": "wilcoxon"}[test]
    assert _row(res, contrast, modality, "occipital", hemisphere, other)["effect_size"] > 0


def test_null_rois_fdr_share_at_most_nominal(planted):
    _, res = planted
    planted_units = (res["roi"] == "occipital") & res["modality"].isin(["pet", "dce"])
    null = res[~planted_units & res["p"].notna()]
    for test in ("welch", "paired_t", "spearman"):
        sub = null[null["test"] == test]
        assert len(sub) > 50
        assert sub["significant"].mean() <= CFG.alpha, test


def test_null_fdr_share_over_repeated_families():
    """Families of 98 null ROI rows and one planted ROI (both hemispheres), 12 data sets:
    the mean share of FDR-significant null rows stays at or below alpha, and the planted
    rows (d ~ 1.9, 24 vs 16) are found in at least 90 % of the data sets."""
    contrast = [
        {
            "name": "patientsVsHC",
            "type": "two_group",
            "column": "group",
            "a": ["MO", "MA", "HM"],
            "b": ["HC"],
            "tests": ["welch"],
            "where": {"phase": ["interictal", "n/a"]},
        }
    ]
    rois = [f"roi{i:02d}" for i in range(50)]
    shares, found = [], []
    for seed in range(12):
        table, _, _ = bench.synthetic_group_table(
            40,
            modalities=[("pet", "SUVR", 1.0, 0.08)],
            lateral_rois=rois,
            midline_rois=[],
            seed=seed,
            effects=[{"modality": "pet", "roi": "roi00", "size": 0.15}],
        )
        res = _run(table, contrast, covariates=[], modality_rules=[])
        null = res[res["roi"] != "roi00"]
        shares.append(null["significant"].mean())
        found.extend(res.loc[res["roi"] == "roi00", "significant"])
    assert np.mean(shares) <= CFG.alpha
    assert np.mean(found) >= 0.9


def test_tests_match_scipy_and_hand_values():
    rng = np.random.default_rng(1)
    a, b = rng.normal(1.0, 1.0, 15), rng.normal(0.0, 2.0, 22)
    w = inference.welch_test(a, b)
    ref = sst.ttest_ind(a, b, equal_var=False)
    assert w["statistic"] == pytest.approx(ref.statistic)
    assert w["p"] == pytest.approx(ref.pvalue)
    ci = ref.confidence_interval(0.95)
    assert (w["estimate_ci_low"], w["estimate_ci_high"]) == pytest.approx((ci.low, ci.high))
    n1, n2 = len(a), len(b)
    sp = math.sqrt(((n1 - 1) * a.var(ddof=1) + (n2 - 1) * b.var(ddof=1)) / (n1 + n2 - 2))
    g = (a.mean() - b.mean()) / sp * (1 - 3 / (4 * (n1 + n2) - 9))
    assert w["effect_size"] == pytest.approx(g, rel=1e-3)
    assert w["ci_low"] < g < w["ci_high"]
    m = inference.mann_whitney_test(a, b)
    assert m["p"] == pytest.approx(sst.mannwhitneyu(a, b).pvalue)
    u = sst.mannwhitneyu(a, b).statistic
    assert m["effect_size"] == pytest.approx(2 * u / (n1 * n2) - 1)
    d = rng.normal(0.5, 1.0, 12)
    p = inference.paired_t_test(d, np.zeros_like(d))
    assert p["p"] == pytest.approx(sst.ttest_1samp(d, 0).pvalue)
    assert p["effect_size"] == pytest.approx(d.mean() / d.std(ddof=1))
    assert p["ci_low"] < p["effect_size"] < p["ci_high"]
    wx = inference.wilcoxon_test(d, np.zeros_like(d))
    assert wx["p"] == pytest.approx(sst.wilcoxon(d).pvalue)
    x, y = rng.normal(size=30), rng.normal(size=30)
    y = y + 0.6 * x
    s = inference.spearman_test(x, y)
    assert s["effect_size"] == pytest.approx(sst.spearmanr(x, y).statistic)
    z, se = math.atanh(s["effect_size"]), 1 / math.sqrt(27)
    assert (s["ci_low"], s["ci_high"]) == pytest.approx(
        (math.tanh(z - 1.959964 * se), math.tanh(z + 1.959964 * se)), rel=1e-4
    )


def test_power_and_required_n_equal_statsmodels():
    # hand-checked: d = 0.5 needs 64 per group for 80 % power (Cohen 1988, table 2.4.1)
    out = power.power_analysis("two_group", 0.5, 20, 20)
    assert out["power"] == pytest.approx(TTestIndPower().power(0.5, 20, 0.05, ratio=1.0))
    # by hand: P(|T| > t_0.975,38) with T ~ noncentral t(38, 0.5 sqrt(20 * 20 / 40))
    tc, nc = sst.t.ppf(0.975, 38), 0.5 * math.sqrt(10)
    assert out["power"] == pytest.approx(sst.nct.sf(tc, 38, nc) + sst.nct.cdf(-tc, 38, nc))
    assert out["power"] == pytest.approx(0.3379, abs=1e-4)
    assert (
        out["n_required"]
        == 64
        == math.ceil(TTestIndPower().solve_power(0.5, None, 0.05, 0.8, ratio=1.0))
    )
    assert out["mde"] == pytest.approx(TTestIndPower().solve_power(None, 20, 0.05, 0.8, ratio=1.0))
    out = power.power_analysis("two_group", -0.8, 12, 30)  # sign and unequal groups
    assert out["power"] == pytest.approx(TTestIndPower().power(0.8, 12, 0.05, ratio=2.5))
    assert out["mde"] == pytest.approx(TTestIndPower().solve_power(None, 12, 0.05, 0.8, 2.5))
    out = power.power_analysis("paired", 0.5, 20)
    assert out["power"] == pytest.approx(TTestPower().power(0.5, 20, 0.05))
    assert out["n_required"] == math.ceil(TTestPower().solve_power(0.5, None, 0.05, 0.8)) == 34
    out = power.power_analysis("correlation", 0.3, 40)
    assert out["power"] == pytest.approx(
        NormalIndPower().power(math.atanh(0.3), 37, 0.05, ratio=0)
    )
    assert out["n_required"] == 85  # the classic Fisher-z value for r = 0.3
    es = np.array([0.05, 0.2, 0.35, 0.8, 1.2, 2.5])
    ref = [math.ceil(TTestIndPower().solve_power(e, None, 0.05, 0.8, ratio=1.0)) for e in es]
    assert power.n_required("two_group", es).tolist() == ref


def test_result_rows_carry_statsmodels_power(planted):
    _, res = planted
    r = _row(res, "MAVsHC", "pet", "occipital", "left", "welch")
    pw = TTestIndPower()
    assert r["power"] == pytest.approx(
        pw.power(abs(r["effect_size"]), r["n1"], 0.05, ratio=r["n2"] / r["n1"])
    )
    assert r["n_for_80_power"] == math.ceil(
        pw.solve_power(abs(r["effect_size"]), None, 0.05, 0.8, ratio=1.0)
    )
    assert r["mde"] == pytest.approx(
        pw.solve_power(None, r["n1"], 0.05, 0.8, ratio=r["n2"] / r["n1"])
    )


def test_pet_rules_exclude_lab_and_add_genotype(planted):
    table, res = planted
    r = _row(res, "MAVsHC", "pet", "occipital", "left", "welch")
    pet = table[
        (table["modality"] == "pet")
        & (table["roi"] == "occipital")
        & (table["hemisphere"] == "left")
    ]
    ma = pet[(pet["group"] == "MA") & (pet["tspo_genotype"] != "LAB")]["participant_id"]
    assert r["n1"] == ma.nunique() < pet[pet["group"] == "MA"]["participant_id"].nunique()
    ols = _row(res, "MAVsHC", "pet", "occipital", "left", "ols")
    assert ols["covariates"] == "age, C(sex), C(tspo_genotype)"
    assert _row(res, "MAVsHC", "dce", "occipital", "left", "ols")["covariates"] == "age, C(sex)"


def test_nan_rows_with_reasons_not_crashes():
    table, _, _ = bench.synthetic_group_table(6, modalities=bench.MODALITIES[3:], seed=2)
    res = _run(table)  # every default contrast
    assert set(res["contrast"]) == {c["name"] for c in CFG.contrasts}
    assert len(res) and res["reason"].notna().any()
    few = res[res["reason"].fillna("").str.startswith("too few")]
    assert len(few) and few[["p", "effect_size", "power"]].isna().all().all()
    # a constant ROI and a missing covariate column
    t2, _, _ = bench.synthetic_group_table(20, modalities=bench.MODALITIES[:1], seed=4)
    t2.loc[t2["roi"] == "frontal", "mean"] = 1.0
    t2 = t2.drop(columns=["hours_since_onset"])
    by_name = {c["name"]: c for c in CFG.contrasts}
    res = _run(
        t2, [by_name["patientsVsHC"], by_name["ictalVsInterictal"], by_name["hoursSinceOnset"]]
    )
    flat = res[(res["roi"] == "frontal") & res["hemisphere"].isin(["left", "right"])]
    assert len(flat) == 10 and flat["p"].isna().all()
    assert flat["reason"].str.contains("no variance|differences are zero").all()
    hours = res[res["contrast"] == "hoursSinceOnset"]
    assert len(hours) == 1 and hours["p"].isna().all()
    assert hours["reason"].str.contains("hours_since_onset").all()


def test_contrast_validation_messages():
    with pytest.raises(ValueError, match=r"contrasts\[0\].*'type'"):
        contrasts.check_contrasts([{"name": "x", "type": "anova"}])
    with pytest.raises(ValueError, match="not available for paired_sessions"):
        contrasts.check_contrasts(
            [
                {
                    "name": "x",
                    "type": "paired_sessions",
                    "column": "phase",
                    "a": "ictal",
                    "b": "interictal",
                    "tests": ["welch"],
                }
            ]
        )
    with pytest.raises(ValueError, match="letters and digits"):
        contrasts.check_contrasts([{"name": "a b", "type": "correlation", "column": "age"}])
    with pytest.raises(
        ConfigError,
        match=r"'group.voxelwise.designs\[0\]' is 'attacksPerMonth'; "
        "allowed: a contrast of type two_group or paired",
    ):
        load_workflow_config(overrides={"group": {"voxelwise": {"designs": ["attacksPerMonth"]}}})


def test_cluster_table_matches_nilearn():
    """Per-cluster tables give nilearn's whole-volume table (peaks, sub-peaks, sizes)."""
    from nilearn.glm import threshold_stats_img
    from nilearn.reporting import get_clusters_table
    from scipy import ndimage

    from pipeline.group.voxelwise import cluster_table

    rng = np.random.default_rng(0)
    shape = (30, 34, 30)
    z = ndimage.gaussian_filter(rng.normal(size=shape), 1.2)
    z /= z.std()
    zz, yy, xx = np.ogrid[:30, :34, :30]
    for c, s in (((10, 12, 12), 6.0), ((20, 24, 15), -5.0)):
        z[(zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 < 16] += s
    img = nb.Nifti1Image(z.astype(np.float32), AFFINE)
    thr_img, thr = threshold_stats_img(
        img, alpha=0.001, height_control="fpr", cluster_threshold=5, two_sided=True
    )
    ref = get_clusters_table(img, thr, cluster_threshold=5, two_sided=True)
    mine, note = cluster_table(img, thr_img, thr, 5, int(np.prod(shape)))
    cols = ["X", "Y", "Z", "Peak Stat", "Cluster Size (mm3)"]
    assert note == "" and len(mine) == len(ref) >= 2
    pd.testing.assert_frame_equal(
        mine[cols].reset_index(drop=True), ref[cols].reset_index(drop=True), check_dtype=False
    )
    # a map significant almost everywhere has no localised clusters: no table, a note
    wide = nb.Nifti1Image(np.full(shape, 5.0, np.float32), AFFINE)
    table, note = cluster_table(wide, wide, 3.0, 1, int(np.prod(shape)))
    assert table.empty and "of the mask" in note


# ----------------------------------------------------------------------------- end to end

SHAPE = (14, 16, 12)
AFFINE = np.array([[4.0, 0, 0, -26], [0, 4.0, 0, -50], [0, 0, 4.0, -10], [0, 0, 0, 1]])
BLOB = (slice(5, 9), slice(6, 10), slice(4, 8))


def _write_dataset(root: Path, n=14, seed=5):
    """A BIDS folder (participants/sessions TSVs) and derivatives: regional tables per
    session and modality, percent-enhancement maps in template space for everyone (a blob
    of +8 % in patients' ictal sessions) and Ktrans maps for two participants only."""
    table, parts, sessions = bench.synthetic_group_table(
        n,
        modalities=bench.MODALITIES[:2],
        seed=seed,
        effects=[
            {
                "modality": "gadolinium",
                "roi": "occipital",
                "size": 3.0,
                "phase": "ictal",
                "side": "ipsi",
            }
        ],
    )
    bids, out = root / "bids", root / "out"
    bids.mkdir()
    (bids / "dataset_description.json").write_text(
        json.dumps({"Name": "synthetic", "BIDSVersion": "1.10.0"})
    )
    extra = pd.DataFrame(
        [
            {
                "participant_id": "sub-999",
                "group": "HC",
                "age": 30.0,
                "sex": "F",
                "attacks_per_month": 0,
                "body_weight": 70.0,
                "tspo_genotype": "HAB",
            }
        ]
    )
    pd.concat([parts, extra]).to_csv(
        bids / "participants.tsv", sep="\t", index=False, na_rep="n/a"
    )
    (bids / "sub-999").mkdir()  # raw data, never processed: "missing" at the group level
    for pid, s in sessions.groupby("participant_id"):
        (bids / pid).mkdir()
        for sid in s["session_id"]:
            (bids / pid / sid / "anat").mkdir(parents=True)
        s.drop(columns="participant_id").to_csv(
            bids / pid / f"{pid}_sessions.tsv", sep="\t", index=False, na_rep="n/a"
        )
    out.mkdir()
    (out / "dataset_description.json").write_text(json.dumps({"Name": "inflamap derivatives"}))
    rng = np.random.default_rng(seed)
    for (pid, ses, mod, metric), t in table.groupby(  # noqa: B007
        ["participant_id", "session_id", "modality", "metric"]
    ):
        d = out / pid / ses / "anat"
        d.mkdir(parents=True, exist_ok=True)
        t[
            [
                "participant_id",
                "session_id",
                "modality",
                "metric",
                "roi",
                "hemisphere",
                "n_voxels",
                "mean",
                "median",
                "sd",
                "group",
                "treatment",
            ]
        ].to_csv(
            d / f"{pid}_{ses}_ce-gadobutrol_atlas-inflamapLobes_desc-{metric}_regions.tsv",
            sep="\t",
            index=False,
            na_rep="n/a",
        )
    info = sessions.merge(parts, on="participant_id")
    for row in info.itertuples(index=False):
        d = out / row.participant_id / row.session_id / "anat"
        data = rng.normal(10.0, 2.0, SHAPE).astype(np.float32)
        if row.group != "HC" and row.phase == "ictal":
            data[BLOB] += 8.0
        stem = f"{row.participant_id}_{row.session_id}_ce-gadobutrol_space-{TEMPLATE}"
        nb.Nifti1Image(data, AFFINE).to_filename(d / f"{stem}_desc-percent_T1w.nii.gz")
        nb.Nifti1Image(data, AFFINE).to_filename(d / f"{stem}_desc-preproc_T1w.nii.gz")
        if row.participant_id in ("sub-001", "sub-014"):
            nb.Nifti1Image(data / 1000, AFFINE).to_filename(d / f"{stem}_Ktrans.nii.gz")
    (out / "logs" / "sub-002").mkdir(parents=True)
    (out / "logs" / "sub-002" / "crash-20260101-x.txt").write_text("Traceback ...")
    return bids, out


class _Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.src = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.src.append(dict(attrs)["src"])


def test_run_group_end_to_end(tmp_path, capsys):
    from pipeline.group import run_group

    bids, out = _write_dataset(tmp_path)
    keep = ("patientsVsHC", "ictalVsInterictal", "ipsiVsContraIctal", "attacksPerMonth")
    # a contrast that selects no session (no postictal phase here): no report section
    nobody = {**next(c for c in CFG.contrasts if c["name"] == "patientsVsHC")}
    nobody.update(name="postictalVsHC", where={"phase": ["postictal"]})
    settings = Settings(
        workflow=load_workflow_config(
            overrides={
                "anat": {"template": TEMPLATE},
                "group": {
                    "voxelwise": {"smoothing_fwhm": None},  # fewer contrasts: faster report
                    "contrasts": [c for c in CFG.contrasts if c["name"] in keep] + [nobody],
                },
            }
        )
    )
    settings.execution.bids_dir, settings.execution.output_dir = str(bids), str(out)
    assert run_group(settings) == 0
    err = capsys.readouterr().err
    g = out / "group"
    # missing and failed participants are listed
    miss = pd.read_csv(g / "desc-missing_participants.tsv", sep="\t")
    assert dict(zip(miss["participant_id"], miss["status"])) == {
        "sub-999": "missing",
        "sub-002": "failed (partial outputs used)",
    }
    assert "sub-999 (missing)" in err
    # merged covariates: the BIDS tables win over the copies in the regional tables
    allr = pd.read_csv(g / "desc-all_regions.tsv", sep="\t")
    assert "group" in allr and "group_x" not in allr and "phase" in allr
    # ROI statistics with sidecar
    res = pd.read_csv(g / "desc-roistats_stats.tsv", sep="\t")
    assert list(res.columns) == contrasts.RESULT_COLUMNS
    side = json.loads((g / "desc-roistats_stats.json").read_text())
    assert side["FDR"]["Method"] == "fdr_bh" and "n_for_80_power" in side["Columns"]
    r = res[
        (res["contrast"] == "ipsiVsContraIctal")
        & (res["modality"] == "gadolinium")
        & (res["roi"] == "occipital")
        & (res["test"] == "paired_t")
    ].iloc[0]
    assert r["significant"] and r["estimate_ci_low"] <= 3.0 <= r["estimate_ci_high"]
    # voxelwise: percent maps fitted for both designs; Ktrans skipped with a reason
    vox = pd.read_csv(g / "desc-voxelwise_designs.tsv", sep="\t")
    done = vox[vox["status"] == "done"].set_index("contrast")
    assert set(done.index) == {"patientsVsHC", "ictalVsInterictal", "ipsiVsContraIctal"}
    assert (done["metric"] == "percent").all()
    skipped = vox[vox["metric"] == "Ktrans"]
    assert len(skipped) == 3 and (skipped["status"] == "skipped").all()
    assert skipped["reason"].str.contains("too few maps").all()
    assert "voxelwise ictalVsInterictal Ktrans: skipped" in err
    assert not (vox["metric"] == "preproc").any()
    stem = g / "voxelwise" / "contrast-ictalVsInterictal_meas-percent"
    fdr = nb.load(f"{stem}_stat-z_desc-fdr_statmap.nii.gz").get_fdata()
    blob = np.zeros(SHAPE, bool)
    blob[BLOB] = True
    assert (fdr[blob] > 0).mean() > 0.9 and (fdr[~blob] != 0).mean() < 0.05
    meta = json.loads(Path(f"{stem}_stat-z_desc-fdr_statmap.json").read_text())
    assert "brain mask (TemplateFlow desc-brain_mask) widened by 10 mm" in meta["Mask"]
    assert (
        meta["HeightControl"] == "fdr"
        and len(meta["Sources"]) == 2 * done.loc["ictalVsInterictal", "n1"]
    )
    clusters = pd.read_csv(f"{stem}_desc-cluster_clusters.tsv", sep="\t")
    assert len(clusters) >= 1 and clusters["Peak Stat"].iloc[0] > 3
    for suffix in (
        "stat-z_statmap.nii.gz",
        "stat-effect_statmap.nii.gz",
        "stat-z_desc-cluster_statmap.nii.gz",
        "desc-fdr_clusters.tsv",
        "mask.nii.gz",
    ):
        assert Path(f"{stem}_{suffix}").exists()
        assert Path(re.sub(r"\.(nii\.gz|tsv)$", ".json", f"{stem}_{suffix}")).exists()
    # report: every image it shows exists and is a PNG
    html = (g / "group.html").read_text()
    parser = _Images()
    parser.feed(html)
    assert any("forest_" in s for s in parser.src) and any("glass_" in s for s in parser.src)
    # one forest plot per modality/metric family (own units), not one axis for everything
    forests = [src for src in parser.src if "forest_" in src]
    assert "figures/forest_ipsiVsContraIctal_gadolinium-enhancement.png" in forests
    families = {src.split("_", 2)[2] for src in forests}
    assert len(families) > 1
    assert any("strip_ipsiVsContraIctal" in s for s in parser.src)
    for src in parser.src:
        assert (g / src).read_bytes()[:4] == b"\x89PNG", src
    # sections only for contrasts that ran; the others named once with their reason
    for name in (*keep, "postictalVsHC"):
        ran = res.loc[res["contrast"] == name, "p"].notna().any()
        assert (f'id="contrast-{name}"' in html) == ran, name
    assert not res.loc[res["contrast"] == "postictalVsHC", "p"].notna().any()
    assert "Contrasts that did not run" in html and "<b>postictalVsHC</b>" in html
    # a small-sample warning wherever fewer than 10 per group were tested
    tested = res[res["p"].notna()]
    small = tested.groupby("contrast")[["n1", "n2"]].max().max(axis=1) < 10
    assert small.any() and html.count("Small sample: at most") == int(small.sum())
    # the group methods cite their methods and name the software versions
    from markupsafe import escape

    from pipeline.reports.references import REFERENCES

    for key in ("hedges1981", "efron1993", "bh1995"):  # cited in the text, listed in full
        ref = REFERENCES[key]
        assert ref["short"] in html and str(escape(ref["full"])) in html, key
    assert "statsmodels " in html
    assert "widened for <code>desc-percent_T1w</code> by 10.0 mm" in html
    # the glass brains use one fixed threshold: the cluster-forming height (p 0.001 -> 3.29)
    assert html.count("shown above |z| = 3.29") == len(done)
    assert "sub-999" in html and "<script" not in html


def test_mirror_lr_exact_on_symmetric_grid_and_resampled_otherwise():
    from pipeline.group.maps import mirror_lr

    data = np.arange(np.prod(SHAPE), dtype=np.float32).reshape(SHAPE)
    data[0, 3, 4] = np.nan
    img = nb.Nifti1Image(data, AFFINE)  # x from -26 to +26 mm: symmetric about x = 0
    out = np.asarray(mirror_lr(img).dataobj)
    np.testing.assert_array_equal(out, data[::-1])  # NaN where the mirror image has it
    shifted = AFFINE.copy()
    shifted[0, 3] += 4.0  # one voxel off: the mirror is resampled, still x -> -x
    out = np.asarray(mirror_lr(nb.Nifti1Image(data, shifted)).dataobj)
    # voxel i (x = -22 + 4 i) mirrors to x = 22 - 4 i, voxel 11 - i of the shifted grid
    np.testing.assert_allclose(out[:12], data[11::-1], rtol=1e-6)
    assert np.isnan(out[11, 3, 4])  # the NaN voxel, mirrored
    assert np.isnan(out[12:]).all()  # mirrored from outside the field of view


def test_voxelwise_designs_mirror_right_sided_headaches(tmp_path):
    """Leaks on the headache side (left or right): after mirroring right-sided sessions the
    ictal-vs-interictal and ipsi-vs-contra designs find them on the left only; without
    mirroring the ictal design blurs them over both sides."""
    from pipeline.group.maps import _design_inputs
    from pipeline.group.voxelwise import fit_voxelwise

    rng = np.random.default_rng(3)
    rows = []
    left_blob = (slice(2, 5), slice(6, 10), slice(4, 8))  # x = -18..-10 mm
    right_blob = (slice(9, 12), slice(6, 10), slice(4, 8))  # its mirror image
    for i in range(12):
        side = "left" if i % 2 else "right"
        for ses, phase in (("ses-01", "interictal"), ("ses-02", "ictal")):
            data = rng.normal(10.0, 1.0, SHAPE).astype(np.float32)
            if phase == "ictal":
                data[left_blob if side == "left" else right_blob] += 4.0
            path = tmp_path / f"sub-{i:02d}_{ses}.nii.gz"
            nb.Nifti1Image(data, AFFINE).to_filename(path)
            rows.append(
                {
                    "participant_id": f"sub-{i:02d}",
                    "session_id": ses,
                    "phase": phase,
                    "headache_side": side,
                    "path": str(path),
                }
            )
    maps = pd.DataFrame(rows)
    by_name = {c["name"]: c for c in contrasts.check_contrasts(default_config().group.contrasts)}
    left = np.zeros(SHAPE, bool)
    left[left_blob] = True
    right = np.zeros(SHAPE, bool)
    right[right_blob] = True
    found = {}
    for name, flip in (
        ("ictalVsInterictal", True),
        ("ictalVsInterictal", False),
        ("ipsiVsContraIctal", True),
    ):
        inputs, reason = _design_inputs(maps, by_name[name], flip=flip)
        assert reason is None
        mirrored = sum(m for es in inputs["a"] for _, m in es)
        assert mirrored == (6 if flip else 0)
        res = fit_voxelwise(inputs, by_name[name], smoothing_fwhm=None)
        fdr = np.asarray(res["fdr_img"].dataobj)
        found[(name, flip)] = (
            (fdr[left] > 0).mean(),
            (fdr[right] > 0).mean(),
            (fdr[~(left | right)] != 0).mean(),
        )
    l, r, other = found[("ictalVsInterictal", True)]  # noqa: E741
    assert l > 0.9 and r == 0 and other < 0.02
    l, r, other = found[("ictalVsInterictal", False)]  # noqa: E741
    assert l < 0.5 and r < 0.5  # half of the patients each side: weaker everywhere
    l, r, other = found[("ipsiVsContraIctal", True)]  # noqa: E741
    assert l > 0.9 and r == 0 and other < 0.02  # right half not tested (mirror image)


def test_rank_tests_have_bootstrap_cis():
    """Median differences of Mann–Whitney and Wilcoxon and the matched-pairs rank-biserial
    r get percentile-bootstrap CIs: reproducible, around the estimate, covering the true
    shift at about the nominal rate."""
    rng = np.random.default_rng(7)
    covered = {"mw": 0, "wx": 0}
    for _ in range(60):
        a, b = rng.normal(1.0, 1.0, 20), rng.normal(0.0, 1.0, 20)
        m = inference.mann_whitney_test(a, b)
        assert m["estimate_ci_low"] <= m["estimate"] <= m["estimate_ci_high"]
        covered["mw"] += m["estimate_ci_low"] <= 1.0 <= m["estimate_ci_high"]
        d = rng.normal(0.5, 1.0, 20)
        w = inference.wilcoxon_test(d, np.zeros_like(d))
        assert w["estimate_ci_low"] <= w["estimate"] <= w["estimate_ci_high"]
        assert -1 <= w["ci_low"] <= w["effect_size"] <= w["ci_high"] <= 1
        covered["wx"] += w["estimate_ci_low"] <= 0.5 <= w["estimate_ci_high"]
    assert covered["mw"] >= 50 and covered["wx"] >= 50  # 95 % nominal: >= 83 % of 60
    again = inference.wilcoxon_test(d, np.zeros_like(d))
    assert (again["ci_low"], again["estimate_ci_high"]) == (w["ci_low"], w["estimate_ci_high"])
    # r with ties and zeros: zeros dropped, average ranks (as scipy's wilcoxon)
    d = np.array([0.0, 1.0, -1.0, 2.0, 2.0, 3.0])
    ranks = sst.rankdata(np.abs(d[d != 0]))
    nz = d[d != 0]
    assert inference.wilcoxon_test(d, np.zeros(6))["effect_size"] == pytest.approx(
        (ranks[nz > 0].sum() - ranks[nz < 0].sum()) / ranks.sum()
    )


def test_spearman_p_is_exact_in_small_samples():
    """A perfect rank correlation of 4 participants is not p = 0 (scipy's t approximation)
    but 2/4! = 0.083: every ordering of 4 values is equally likely under the null; with 5,
    2/5!. The exact p agrees with scipy's permutation test where both apply."""
    from scipy import stats

    from pipeline.group.inference import spearman_test

    assert spearman_test([1, 2, 3, 4], [2, 3, 5, 9])["p"] == pytest.approx(2 / 24)
    assert spearman_test([1, 2, 3, 4, 5], [9, 5, 3, 2, 1])["p"] == pytest.approx(2 / 120)
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=7), rng.normal(size=7)
    ref = stats.permutation_test(
        (y,),
        lambda v: stats.spearmanr(x, v).statistic,
        permutation_type="pairings",
        alternative="two-sided",
    ).pvalue
    assert spearman_test(x, y)["p"] == pytest.approx(ref, abs=1e-9)


def test_voxelwise_tests_the_brain_and_its_bands_never_the_background(tf_home, tmp_path):
    """Maps finite over the whole field of view (background noise included): the design is
    tested inside the template brain mask only, widened by the band width where asked; a
    voxel above the vertex counts only within that width; nothing outside is ever
    significant, even where every participant has a strong effect."""
    from pipeline.group.maps import _design_inputs
    from pipeline.group.voxelwise import analysis_region, fit_voxelwise
    from pipeline.templates import get_template_file

    affine = np.array([[4.0, 0, 0, -92], [0, 4.0, 0, -128], [0, 0, 4.0, -76], [0, 0, 0, 1]])
    shape = (47, 56, 48)  # x -92..92, y -128..92, z -76..112 mm: the whole head box
    grid = nb.Nifti1Image(np.zeros(shape, np.float32), affine)
    brain = analysis_region(TEMPLATE, 2, grid, 0.0)
    widened = analysis_region(TEMPLATE, 2, grid, 10.0)
    b, w = np.asarray(brain.dataobj) > 0, np.asarray(widened.dataobj) > 0
    assert 1400 < b.sum() * 64 / 1000 < 2200  # ml: the MNI brain (1.9 l on its own grid)
    assert (w >= b).all() and w.sum() > 1.3 * b.sum()
    # straight above the vertex at x = 0, y = -20 (read from the template's own mask)
    mask = nb.load(get_template_file(TEMPLATE, 2, desc="brain", suffix="mask"))
    m = np.asarray(mask.dataobj) > 0
    i, j, _ = np.round(np.linalg.solve(mask.affine, [0, -20, 0, 1])[:3]).astype(int)
    top = nb.affines.apply_affine(mask.affine, [i, j, np.flatnonzero(m[i, j]).max()])[2]

    def voxel(z):
        return tuple(np.round(np.linalg.solve(affine, [0, -20, z, 1])[:3]).astype(int))

    assert w[voxel(top + 6)] and not b[voxel(top + 6)]
    assert not w[voxel(top + 20)]
    assert not w[0, 0, 0] and not w[-1, -1, -1]  # the corners of the field of view
    # a design whose "effect" is everywhere, background included
    rng = np.random.default_rng(1)
    rows = []
    for k in range(6):
        for ses, phase in (("ses-01", "interictal"), ("ses-02", "ictal")):
            data = rng.normal(10.0, 1.0, shape).astype(np.float32)
            data += 5.0 if phase == "ictal" else 0.0
            path = tmp_path / f"vox-{k}-{ses}.nii.gz"
            nb.Nifti1Image(data, affine).to_filename(path)
            rows.append(
                {
                    "participant_id": f"sub-{k}",
                    "session_id": ses,
                    "phase": phase,
                    "headache_side": "left",
                    "path": str(path),
                }
            )
    by_name = {c["name"]: c for c in contrasts.check_contrasts(default_config().group.contrasts)}
    inputs, reason = _design_inputs(pd.DataFrame(rows), by_name["ictalVsInterictal"])
    assert reason is None
    res = fit_voxelwise(inputs, by_name["ictalVsInterictal"], smoothing_fwhm=None, region=widened)
    tested = np.asarray(res["mask"].dataobj) > 0
    assert (tested == w).all() and res["n_mask_voxels"] == w.sum()
    fdr = np.asarray(res["fdr_img"].dataobj)
    assert (fdr[~w] == 0).all() and (fdr[w] != 0).mean() > 0.99
