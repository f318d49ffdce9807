"""The reference demo (issue #15): a real head (Colin27) segmented once, warped per
participant, imaged with partial volume; truth on true anatomy, never on inflamap's ROIs."""

from __future__ import annotations

import json
import subprocess
import sys

import nibabel as nb
import numpy as np
import pandas as pd
import pytest

from pipeline.demo import anatomy as anat_mod
from pipeline.demo.anatomy import TISSUE, load_anatomy, region_value
from pipeline.demo.head import Head, acquisition_grid, codes_of, fractions
from pipeline.demo.physiology import EFFECTS
from pipeline.demo.reference import make_reference

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]

FORBIDDEN = (
    "pipeline.rois",
    "pipeline.atlas",
    "pipeline.published_atlas",
    "pipeline.templates",
    "pipeline.interfaces",
    "pipeline.preflight",
    "workflows",
    "nipype",
    "ants",
)


def test_generator_never_imports_the_pipelines_anatomy():
    """Generating the reference demo loads no ROI, atlas, template or registration code."""
    code = (
        "import sys, pipeline.demo as d, pipeline.demo.reference, pipeline.demo.anatomy;"
        "print('\\n'.join(sorted(sys.modules)))"
    )
    mods = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    bad = [m for m in mods if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)]
    assert not bad, bad


@pytest.fixture(scope="module")
def anatomy():
    return load_anatomy()


@pytest.mark.slow  # the whole 1 mm segmentation of Colin27 (~15 s)
@pytest.mark.skipif(not anat_mod.MRICRON.joinpath("ch2.nii.gz").is_file(), reason="mricron-data")
def test_shipped_anatomy_is_rebuilt_from_colin27(anatomy):
    """The shipped tissue/region maps are what build_anatomy makes from mricron-data."""
    rebuilt = anat_mod.build_anatomy()
    assert np.array_equal(rebuilt.tissues, anatomy.tissues)
    assert np.array_equal(rebuilt.regions, anatomy.regions)
    assert np.allclose(rebuilt.affine, anatomy.affine)


def test_anatomy_is_plausible(anatomy):
    """Volumes (ml, 1 mm voxels) in the range of an adult head; sides balanced; each
    extra-cerebral class lies outside the brain, in the right order outward."""
    vol = {n: int(anatomy.mask(n).sum()) / 1000 for n in anat_mod.TISSUE_NAMES}
    assert 1100 < vol["gm"] + vol["wm"] + vol["csf"] < 1900
    assert 0.35 < vol["gm"] / (vol["gm"] + vol["wm"]) < 0.65
    assert 60 < vol["dura"] < 300
    assert 100 < vol["marrow"] < 400
    assert 3 < vol["sinus"] < 30
    assert vol["pituitary"] > 0.2 and vol["choroid_plexus"] > 1 and vol["vein"] > 0.2
    lobes = anatomy.regions % anat_mod.ACA_BIT
    for lobe in ("frontal", "parietal", "temporal", "occipital", "cerebellum"):
        left = (anatomy.brain & (lobes == region_value(lobe, "left"))).sum()
        right = (anatomy.brain & (lobes == region_value(lobe, "right"))).sum()
        assert 0.8 < left / right < 1.25, lobe
    # outward order: median distance from the brain grows csf_ext < dura < inner table <
    # marrow < scalp (over the vault)
    from scipy import ndimage

    dist = ndimage.distance_transform_edt(~anatomy.brain)
    z = np.indices(anatomy.tissues.shape)[2] + anatomy.affine[2, 3]
    vault = z > 20
    med = [np.median(dist[anatomy.mask(n) & vault]) for n in ("csf_ext", "dura", "inner_table")]
    med += [np.median(dist[anatomy.mask(n) & vault]) for n in ("marrow", "scalp")]
    assert med == sorted(med), med


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_participant_warp_is_a_diffeomorphism(anatomy, seed):
    head = Head(np.random.default_rng(seed), anatomy)
    assert head.min_jacobian > 0.3
    assert 2.0 < head.max_displacement_mm < 20.0
    assert np.all((head.scale > 0.93) & (head.scale < 1.07))


def test_box_averaging_gives_partial_volume(anatomy):
    """Sub-voxel tissue fractions of every acquisition voxel sum to 1; at 3 mm many voxels
    mix tissues, and the head's volume is kept under resampling (within 2 %)."""
    rng = np.random.default_rng(3)
    head = Head(rng, anatomy)
    shape, aff = acquisition_grid(3.0)
    t, r = head.sample(np.eye(4), shape, aff, 3)
    present, frac = fractions(codes_of(t, r, "left"), shape, 3)
    assert np.allclose(frac.sum(1), 1.0, atol=1e-5)
    head_cols = (present % 16) != TISSUE["air"]
    mixed = (frac.max(1) < 0.99) & (frac[:, head_cols].sum(1) > 0)
    assert mixed.mean() > 0.05
    t1, _ = head.sample(np.eye(4), *acquisition_grid(1.0), 1)
    vol3 = frac[:, head_cols].sum() * 27
    assert abs(vol3 / (t1 != TISSUE["air"]).sum() - 1) < 0.02


@pytest.fixture(scope="module")
def reference_demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("reference")
    make_reference(out, participants=2, resolution=3.0, seed=7)
    return out


@pytest.mark.slow  # writes the reference demo (~35 s, once)
def test_reference_demo_layout_and_truth(reference_demo):
    """A valid-looking BIDS dataset with truth tables per session; the planted effects move
    the truth only where they were planted and only in patients."""
    gt = json.loads((reference_demo / "groundtruth" / "groundtruth.json").read_text())
    assert "reference" in gt["generator"]
    groups = {p: v["group"] for p, v in gt["participants"].items()}
    assert sorted(groups.values()) == ["HC", "MA"]
    for pid, p in gt["participants"].items():
        assert p["warp_min_jacobian"] > 0
        for ses, s in p["sessions"].items():
            for rel in s["files"]:
                assert (reference_demo / "bids" / rel).is_file(), rel
            t = pd.read_csv(
                reference_demo / "groundtruth" / pid / ses / f"{pid}_{ses}_desc-truth_regions.tsv",
                sep="\t",
            )
            moved = t[(t["true"] - t["baseline"]).abs() > 1e-9]
            if groups[pid] == "HC":
                assert moved.empty
                continue
            side = p["headache_side"]
            other = "right" if side == "left" else "left"
            if s["phase"] == "ictal":
                men = moved[
                    (moved["modality"] == "gadolinium") & (moved["roi"] == "meningeal_occipital")
                ]
                assert set(men["hemisphere"]) == {side, "bilateral"}
                aca = moved[(moved["modality"] == "uspio") & (moved["roi"] == "aca")]
                assert set(aca["hemisphere"]) == {side, "bilateral"}
                # the ΔR2* planted (+3/s on gm and wm) is the change of the ACA row
                row = aca[aca["hemisphere"] == side].iloc[0]
                assert row["true"] - row["baseline"] == pytest.approx(3.0, rel=1e-6)
            assert not ((moved["hemisphere"] == other) & (moved["modality"] != "pet")).any()
    # the true brain mask on the T1w grid: about the anatomy's brain volume x the scaling
    pid = next(iter(gt["participants"]))
    m = nb.load(
        reference_demo / "groundtruth" / pid / "ses-01" / f"{pid}_ses-01_desc-brain_mask.nii.gz"
    )
    vol = np.asarray(m.dataobj).sum() * 27 / 1000
    brain = (
        load_anatomy().brain.sum() / 1000 * np.prod(gt["participants"][pid]["anatomical_scale"])
    )
    assert vol == pytest.approx(brain, rel=0.05)


def test_effects_are_defined_on_anatomy_classes():
    for eff in EFFECTS:
        assert set(eff["tissues"]) <= set(TISSUE), eff["id"]
        assert eff["region"] in (*anat_mod.LOBES, "aca")


@pytest.mark.slow  # writes the reference demo (~35 s, once)
def test_reference_demo_is_valid_bids(reference_demo):
    proc = subprocess.run(
        [
            "bids-validator-deno",
            str(reference_demo / "bids"),
            "--format",
            "json",
            "--ignoreWarnings",
        ],
        capture_output=True,
        text=True,
    )
    report = json.loads(proc.stdout)
    errors = [i for i in report["issues"]["issues"] if i["severity"] == "error"]
    assert errors == []


@pytest.mark.slow  # writes the reference demo (~35 s, once)
def test_partial_volume_in_the_images(reference_demo):
    """Independent of the pipeline: in the noise-free model the pre-contrast T1w of a voxel is
    the fraction-weighted mix of its tissues; in the written image, voxels straddling the
    brain edge lie between the CSF and the GM levels (not a two-level image)."""
    gt = json.loads((reference_demo / "groundtruth" / "groundtruth.json").read_text())
    pid = next(iter(gt["participants"]))
    img = nb.load(reference_demo / "bids" / pid / "ses-01" / "anat" / f"{pid}_ses-01_T1w.nii.gz")
    mask = nb.load(
        reference_demo / "groundtruth" / pid / "ses-01" / f"{pid}_ses-01_desc-brain_mask.nii.gz"
    )
    from scipy import ndimage

    data = img.get_fdata()
    brain = np.asarray(mask.dataobj) > 0
    edge = brain & ~ndimage.binary_erosion(brain)
    inner = ndimage.binary_erosion(brain, iterations=4)
    # edge voxels are darker on average than deep brain (CSF/GM partial volume)
    assert np.median(data[edge]) < 0.9 * np.median(data[inner])


@pytest.mark.e2e
def test_pipeline_on_the_reference_head(reference_demo, tmp_path, tf_home):
    """The participant level on the real-head reference (the patient, 3 mm): its brain mask
    against the true brain, and the evaluation command's bias table against true anatomy.

    Bounds are those measured at 3 mm (README, "Accuracy on the reference head") with a
    margin; the 2 mm figures of the README come from the command given there."""
    import os

    from conftest import run_cli

    gt = json.loads((reference_demo / "groundtruth" / "groundtruth.json").read_text())
    pid = next(p for p, v in gt["participants"].items() if v["group"] == "MA")
    out = tmp_path / "out"
    proc = run_cli(
        reference_demo / "bids",
        out,
        "participant",
        "--participant-label",
        pid,
        "--config",
        reference_demo / "inflamap-demo.yml",
        "-w",
        tmp_path / "work",
        "--nprocs",
        "2",
        "--omp-nthreads",
        "1",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    ev = subprocess.run(
        [sys.executable, "-m", "pipeline.demo.evaluate", str(reference_demo), str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
    )
    assert ev.returncode in (0, 1), ev.stderr[-3000:]
    assert "PASS  mask_dice" in ev.stdout, ev.stdout
    bias = pd.read_csv(out / "logs" / "reference-bias.tsv", sep="\t")
    assert {"gadolinium", "dce", "uspio", "pet", "spect"} <= set(bias["modality"])
    rows = pd.read_csv(out / "logs" / "reference-regions.tsv", sep="\t")
    lobes = rows[(rows["metric"] == "dR2star") & (rows["family"] == "parenchyma")]
    lobes = lobes[lobes["volume_ml"] >= 50]
    assert len(lobes) >= 8
    assert lobes["bias_percent"].abs().median() < 15
    # the planted ferumoxytol effect is recovered with the right sign in its territory
    planted = pd.read_csv(out / "logs" / "reference-planted.tsv", sep="\t")
    aca = planted[(planted["roi"] == "aca") & (planted["modality"] == "uspio")]
    assert len(aca) == 1 and aca["measured_change"].iloc[0] > 0.3 * aca["true_change"].iloc[0]
    # the meningeal gadolinium effect: found, with the right sign (its size is diluted by
    # partial volume: the README gives the figure)
    men = planted[
        (planted["roi"] == "meningeal_occipital") & (planted["modality"] == "gadolinium")
    ]
    assert len(men) == 1 and men["measured_change"].iloc[0] > 0


@pytest.mark.slow  # writes the reference demo (~35 s, once)
def test_evaluation_recovers_a_known_bias(reference_demo, tmp_path):
    """The evaluation itself, on a fabricated run whose every regional value is its truth
    x 0.9 (measured = 90 % of the truth): a bias of -10 % in every family and a planted
    change recovered at -10 %, whatever the pipeline does."""
    from pipeline.demo.truth import (
        bias_summary,
        meningeal_detection,
        planted_recovery,
        regional_bias,
    )

    out = tmp_path / "out"
    for f in sorted((reference_demo / "groundtruth").glob("sub-*/ses-*/*_desc-truth_regions.tsv")):
        t = pd.read_csv(f, sep="\t")
        pid, ses = f.name.split("_")[:2]
        for (_mod, met), g in t.groupby(["modality", "metric"]):
            table = g[["participant_id", "session_id", "modality", "metric", "roi", "hemisphere"]]
            table = table.assign(n_voxels=10, mean=0.9 * g["true"], median=0.9 * g["true"], sd=0.0)
            d = out / pid / ses / "anat"
            d.mkdir(parents=True, exist_ok=True)
            table.to_csv(d / f"{pid}_{ses}_atlas-X_desc-{met}_regions.tsv", sep="\t", index=False)
    joined = regional_bias(reference_demo, out)
    assert np.allclose(joined["bias_percent"].dropna(), -10.0)
    rec = planted_recovery(joined, reference_demo)
    assert {"gadolinium", "dce", "uspio", "spect", "pet"} <= set(rec["modality"])
    session_effects = rec[rec["modality"] != "pet"]
    assert np.allclose(session_effects["change_bias_percent"], -10.0)
    summary = bias_summary(joined, rec)
    assert np.allclose(summary["bias_percent"].dropna(), -10.0)
    # the meningeal leak: found in the one patient, on its headache side only
    det = meningeal_detection(joined, reference_demo)
    assert len(det) == 1 and det["found"].all()
    assert det["change_headache_side"].iloc[0] > 0
    assert abs(det["change_other_side"].iloc[0]) < 0.1 * det["change_headache_side"].iloc[0]
