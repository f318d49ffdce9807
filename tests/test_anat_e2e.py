"""End to end on the demo: registration accuracy against ground truth, derivatives, tables,
group gathering, an untouched input and a rerun that reuses the work folder."""

import json
import re

import pandas as pd
import pytest
from conftest import ROOT, run_cli, tree_snapshot

from pipeline.demo.evaluate import evaluate


def test_runs_succeed(demo_run):
    assert demo_run["participant"].returncode == 0, demo_run["participant"].stderr[-3000:]
    assert demo_run["group"].returncode == 0, demo_run["group"].stderr[-3000:]
    err = demo_run["participant"].stderr
    assert "sub-01 (1/2)" in err  # progress display: participant, then [step/steps] and what
    import re

    assert re.search(r"sub-01: \[\d+/\d+\] ses-01 anatomy: linear registration", err), err[-2000:]
    assert "min left)" in err or "under a minute left)" in err
    # the validator's warnings, as printed, are kept for the reports and shown there
    printed = [
        ln.split("BIDS validator warning: ", 1)[1]
        for ln in err.splitlines()
        if "BIDS validator warning: " in ln
    ]
    kept = (demo_run["out"] / "logs" / "bids-validator-warnings.txt").read_text().splitlines()
    assert kept == printed
    assert "BIDS validator" in (demo_run["out"] / "sub-01.html").read_text()


def test_derivatives_pass_the_official_validator(demo_run):
    """The demo's derivatives (both participants, every modality, the group level) are a
    BIDS-Derivatives dataset the official validator accepts: no error."""
    import subprocess

    from pipeline.bids import validator_executable

    exe = validator_executable()
    assert exe, "bids-validator-deno not installed"
    p = subprocess.run(
        [exe, str(demo_run["out"]), "--format", "json"],
        capture_output=True, text=True, timeout=600,
    )  # fmt:skip
    issues = json.loads(p.stdout)["issues"]["issues"]
    errors = [f"{i['code']} {i.get('location', '')}" for i in issues if i["severity"] == "error"]
    assert not errors, errors[:10]


def test_registration_accuracy_against_ground_truth(demo_run):
    rows = pd.DataFrame(evaluate(demo_run["demo"], demo_run["out"]))
    assert len(rows) == 4  # 2 participants x 2 sessions
    print(rows.to_string())
    assert (rows["mask_dice"] >= 0.90).all()
    assert (rows["label_dice_mean"] >= 0.80).all()
    assert (rows["rotation_error_deg"] <= 1.0).all()
    assert (rows["translation_error_mm"] <= 1.0).all()


def test_participant_evaluation_prints_a_verdict_per_criterion(demo_run, tmp_path):
    """The user's check of an installation: PASS per criterion with its threshold, exit 0;
    an output folder without sessions is FAIL and exit 1."""
    import subprocess
    import sys

    from conftest import ROOT

    def run(out):
        return subprocess.run(
            [sys.executable, "-m", "pipeline.demo.evaluate", str(demo_run["demo"]), str(out)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=300,
        )

    ok = run(demo_run["out"])
    assert ok.returncode == 0, ok.stdout + ok.stderr
    for line in (
        r"PASS  mask_dice >= 0\.9: worst 0\.9\d* over 4 session\(s\)",
        r"PASS  label_dice_mean >= 0\.8: worst",
        r"PASS  rotation_error_deg <= 1: worst",
        r"PASS  translation_error_mm <= 1: worst",
    ):
        assert re.search(line, ok.stdout), (line, ok.stdout)
    empty = run(tmp_path)
    assert empty.returncode == 1
    assert "no session evaluated" in empty.stdout and "FAIL  mask_dice" in empty.stdout


def test_input_dataset_untouched(demo_run):
    assert tree_snapshot(demo_run["bids"]) == demo_run["before"]


@pytest.mark.parametrize(
    "name,needs_sidecar",
    [
        ("desc-preproc_T1w.nii.gz", True),
        ("desc-brain_mask.nii.gz", True),
        ("space-MNI152NLin2009aSym_desc-preproc_T1w.nii.gz", True),
        ("from-T1w_to-MNI152NLin2009aSym_mode-image_xfm.h5", True),
        ("from-MNI152NLin2009aSym_to-T1w_mode-image_xfm.h5", True),
        ("atlas-inflamapLobes_dseg.nii.gz", True),
        ("atlas-inflamapLobes_dseg.tsv", False),
        ("atlas-inflamapLobes_desc-nT1w_regions.tsv", True),
    ],
)
def test_derivatives_present_with_sidecars(demo_run, name, needs_sidecar):
    out = demo_run["out"]
    desc = json.loads((out / "dataset_description.json").read_text())
    assert desc["DatasetType"] == "derivative"
    for sub in ("01", "02"):
        for ses in ("01", "02"):
            f = out / f"sub-{sub}" / f"ses-{ses}" / "anat" / f"sub-{sub}_ses-{ses}_{name}"
            assert f.exists(), f
            side = f.with_name(f.name.split(".")[0] + ".json")
            if needs_sidecar:
                meta = json.loads(side.read_text())
                assert meta["Sources"] == [
                    f"bids:raw:sub-{sub}/ses-{ses}/anat/sub-{sub}_ses-{ses}_T1w.nii.gz"
                ]
    assert not list(out.rglob(".*.tmp"))  # no leftover temporary files


def test_regional_table_and_laterality(demo_run):
    truth = json.loads((demo_run["demo"] / "groundtruth" / "groundtruth.json").read_text())
    out = demo_run["out"]
    for pid, p in truth["participants"].items():
        t = pd.read_csv(
            out
            / pid
            / "ses-02"
            / "anat"
            / f"{pid}_ses-02_atlas-inflamapLobes_desc-nT1w_regions.tsv",
            sep="\t",
        )
        # the table columns, then the carried covariates (regional.carry_columns)
        assert list(t.columns) == [
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
            "tspo_genotype",
        ]
        assert set(t["group"]) == {p["group"]}
        assert set(t["participant_id"]) == {pid} and set(t["session_id"]) == {"ses-02"}
        base = t[t.hemisphere.isin(["left", "right", "bilateral"])]
        assert len(base) == 13 and (base["n_voxels"] > 0).all()
        # normalised to the brain median: regional means near 1
        assert base["mean"].between(0.8, 1.25).all()
        side = p["headache_side"]
        lat = t[t.hemisphere.isin(["ipsi", "contra", "AI"])]
        if side in ("left", "right"):
            other = "right" if side == "left" else "left"
            occ = t[t.roi == "occipital"].set_index("hemisphere")
            assert occ.loc["ipsi", "mean"] == occ.loc[side, "mean"]
            assert occ.loc["contra", "mean"] == occ.loc[other, "mean"]
            ai = (occ.loc[side, "mean"] - occ.loc[other, "mean"]) / (
                (occ.loc[side, "mean"] + occ.loc[other, "mean"]) / 2
            )
            assert occ.loc["AI", "mean"] == pytest.approx(ai)
            assert len(lat) == 3 * 6  # six paired ROIs
        else:
            assert lat.empty


def test_group_table(demo_run):
    g = demo_run["out"] / "group"
    t = pd.read_csv(g / "desc-all_regions.tsv", sep="\t")
    assert set(t["participant_id"]) == {"sub-01", "sub-02"}
    assert {"group", "phase", "headache_side", "body_weight"} <= set(t.columns)
    assert pd.read_csv(g / "desc-missing_participants.tsv", sep="\t").empty


def test_rerun_reuses_work_dir(demo_run):
    work = demo_run["work"]
    result = (
        work
        / "sub-01"
        / "sub_01_wf"
        / "anat_ses_01_wf"
        / "registration"
        / "result_registration.pklz"
    )
    before = result.stat().st_mtime_ns
    p = run_cli(
        demo_run["bids"],
        demo_run["out"],
        "participant",
        "--participant-label",
        "01",
        "--config",
        demo_run["demo"] / "inflamap-demo.yml",
        "-w",
        work,
        "--skip-bids-validation",
        "--use-plugin",
        ROOT / "configs" / "plugin_linear.yml",
    )
    assert p.returncode == 0, p.stderr[-2000:]
    assert "with Linear" in p.stderr
    assert result.stat().st_mtime_ns == before  # cached node, not recomputed


def test_bands_are_the_same_tissue_in_both_sessions(demo_run):
    """Within-subject alignment (anat.same_rois_across_sessions): ses-02 takes the atlas
    labels and bands of ses-01 through a rigid registration. Checked with an independent
    rigid registration (antspyx here, not the pipeline's): ses-02's bands brought back onto
    ses-01 overlap ses-01's own (Dice >= 0.80; each session segmented on its own gave
    0.62-0.67 for the meningeal band at this 3 mm resolution). The check's own registration
    is not exact: its random sampling moves the meningeal Dice between 0.85 and 0.95 on one
    and the same pipeline output (10 runs; 0.849 once in CI), hence the 0.80."""
    import ants
    import numpy as np

    out = demo_run["out"]
    for sub in ("sub-01", "sub-02"):

        def path(ses, name, sub=sub):
            return str(out / sub / ses / "anat" / f"{sub}_{ses}_{name}")

        t1 = [ants.image_read(path(s, "desc-preproc_T1w.nii.gz")) for s in ("ses-01", "ses-02")]
        masks = [ants.image_read(path(s, "desc-brain_mask.nii.gz")) for s in ("ses-01", "ses-02")]
        rois = "atlas-inflamapLobes_desc-extracerebral_dseg"
        lab = [ants.image_read(path(s, f"{rois}.nii.gz")) for s in ("ses-01", "ses-02")]
        meta = json.loads(open(path("ses-02", f"{rois}.json")).read())
        assert meta["ReferenceSession"] == "ses-01"
        assert "ReferenceSession" not in json.loads(open(path("ses-01", f"{rois}.json")).read())
        lut = pd.read_csv(path("ses-01", f"{rois}.tsv"), sep="\t")
        reg = ants.registration(t1[0] * masks[0], t1[1] * masks[1], type_of_transform="Rigid")
        back = ants.apply_transforms(
            t1[0], lab[1], reg["fwdtransforms"], interpolator="nearestNeighbor"
        ).numpy()
        ref = lab[0].numpy()
        for kind in ("meningeal", "calvarial"):
            idx = lut.loc[lut["name"].str.startswith(kind), "index"].to_numpy()
            a, b = np.isin(ref, idx), np.isin(back, idx)
            d = 2 * (a & b).sum() / (a.sum() + b.sum())
            print(sub, kind, round(float(d), 3))
            assert d >= 0.80, (sub, kind, d)


def test_geometric_atlas_is_named_approximate(demo_run):
    """The built-in atlases are planes and ellipsoids: every sidecar that names one says it
    is approximate (a TemplateFlow atlas: published), and the report says so too."""
    out = demo_run["out"]
    sidecars = list(out.glob("sub-*/ses-*/*/*atlas-inflamapLobes*.json"))
    assert len(sidecars) >= 8
    for f in sidecars:
        meta = json.loads(f.read_text())
        assert meta["AtlasType"] == "approximate", f
        assert "not a published atlas" in meta["AtlasDescription"]
    assert "The inflamapLobes atlas is approximate" in (out / "sub-01.html").read_text()
