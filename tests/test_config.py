"""Configuration: defaults, merging, validation messages, agent classes."""

import json

import pytest

from pipeline.config import ConfigError, Settings, default_config, load_workflow_config


def test_defaults_have_the_documented_sections():
    cfg = default_config()
    assert cfg.anat.template == "MNI152NLin2009cAsym"
    assert set(cfg.to_dict()) >= {"anat", "regional", "agents", "covariates"}


def test_merge_overrides_nested_keys_only(tmp_path):
    f = tmp_path / "c.yml"
    f.write_text("anat:\n  template: MNI152NLin2009aSym\n  registration:\n    syn_metric: CC\n")
    cfg = load_workflow_config(f)
    assert cfg.anat.template == "MNI152NLin2009aSym"
    assert cfg.anat.registration.syn_metric == "CC"
    assert cfg.anat.registration.shrink_factors == [4, 2, 1]  # untouched default


@pytest.mark.parametrize(
    "text,message",
    [
        ("anat:\n  templte: X\n", "unknown key 'anat.templte'; did you mean 'anat.template'?"),
        ("anatomy: {}\n", "unknown key 'anatomy'; did you mean 'anat'?"),
        (
            "anat:\n  n4:\n    shrink_factor: two\n",
            "'anat.n4.shrink_factor' is 'two'; allowed: a whole number, ≥ 1 and ≤ 16",
        ),
        ("anat: [1, 2]\n", "'anat' must be a mapping"),
        ("anat: {template: [\n", "not valid YAML"),
        ("- a\n- b\n", "top level must be a mapping"),
    ],
)
def test_bad_config_names_the_key(tmp_path, text, message):
    f = tmp_path / "bad.yml"
    f.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_workflow_config(f)
    assert message in str(err.value)
    assert str(f) in str(err.value)


def test_float_accepts_int(tmp_path):
    f = tmp_path / "c.yml"
    f.write_text("anat:\n  brain_mask_threshold: 1\n")
    assert load_workflow_config(f).anat.brain_mask_threshold == 1


def test_settings_roundtrip_and_agent_classes(tmp_path):
    s = Settings()
    s.execution.participant_label = ["01"]
    path = s.dump(tmp_path / "settings.json")
    back = Settings.from_dict(json.loads(path.read_text()))
    assert back.to_dict() == s.to_dict()
    assert s.agent_class("Gadobutrol") == "gadolinium"
    assert s.agent_class("ferumoxytol") == "iron_oxide"
    assert s.agent_class("iodine") is None and s.agent_class(None) is None


# one value outside its allowed range or set per section: exit-64 line naming the key, the
# value and what is allowed
OUT_OF_RANGE = [
    (
        {"anat": {"meningeal_band_mm": [4, 0]}},
        "'anat.meningeal_band_mm' is [4, 0]",
        "inner < outer",
    ),
    (
        {"anat": {"calvarial_band_mm": [2, 10]}},
        "'anat.calvarial_band_mm' is [2, 10]",
        "must not overlap",
    ),
    ({"anat": {"template_resolution": 3}}, "'anat.template_resolution' is 3", "one of 1, 2"),
    (
        {"anat": {"registration": {"syn_metric": "GC"}}},
        "'anat.registration.syn_metric' is 'GC'",
        "one of MI, CC",
    ),
    (
        {"anat": {"n4": {"convergence_threshold": 0}}},
        "'anat.n4.convergence_threshold' is 0",
        "> 0 and < 1",
    ),
    (
        {"gadolinium": {"normalisation": "zscore"}},
        "'gadolinium.normalisation' is 'zscore'",
        "reference-tissue, global-median, none",
    ),
    (
        {"gadolinium": {"registration": {"iterations": [100, -5, 1]}}},
        "'gadolinium.registration.iterations[1]' is -5",
        "≥ 0",
    ),
    ({"regional": {"min_voxels": 0}}, "'regional.min_voxels' is 0", "≥ 1"),
    ({"dce": {"hematocrit": 4.5}}, "'dce.hematocrit' is 4.5", "≥ 0.1 and ≤ 0.8"),
    ({"dce": {"model": "tofts"}}, "'dce.model' is 'tofts'", "one of patlak, extended_tofts"),
    ({"dce": {"model": "tofts-extended"}}, "'dce.model' is 'tofts-extended'", "patlak"),
    ({"uspio": {"min_echoes": 1}}, "'uspio.min_echoes' is 1", "≥ 2"),
    ({"uspio": {"fit": "linear"}}, "'uspio.fit' is 'linear'", "nonlinear, loglinear"),
    ({"pet": {"window_min": [90, 60]}}, "'pet.window_min' is [90, 60]", "start < end"),
    (
        {"pet": {"suvr_reference": "cerebellum"}},
        "'pet.suvr_reference' is 'cerebellum'",
        "whole_brain or roi:",
    ),
    ({"spect": {"late_label": "early"}}, "'spect.late_label' is 'early'", "other than"),
    ({"spect": {"ratio_floor_fraction": 1.5}}, "'spect.ratio_floor_fraction' is 1.5", "< 1"),
    (
        {"agents": {"iron_oxide": ["gadobutrol"]}},
        "'agents.iron_oxide' is ['gadobutrol']",
        "not also listed as gadolinium",
    ),
    ({"covariates": {"groups": []}}, "'covariates.groups' is []", "at least 1"),
    ({"group": {"alpha": 5}}, "'group.alpha' is 5", "> 0 and ≤ 0.5"),
    ({"group": {"fdr": "BH"}}, "'group.fdr' is 'BH'", "fdr_bh"),
    ({"group": {"min_n": 1}}, "'group.min_n' is 1", "≥ 2"),
    (
        {"group": {"voxelwise": {"smoothing_fwhm": -6}}},
        "'group.voxelwise.smoothing_fwhm' is -6",
        "≥ 0",
    ),
    (
        {"group": {"voxelwise": {"cluster_height_p": 0.5}}},
        "'group.voxelwise.cluster_height_p' is 0.5",
        "≤ 0.1",
    ),
]


@pytest.mark.parametrize(
    "override,key_value,allowed", OUT_OF_RANGE, ids=[k.split("'")[1] for _, k, _ in OUT_OF_RANGE]
)
def test_out_of_range_value_names_key_value_and_range(tmp_path, override, key_value, allowed):
    import yaml

    f = tmp_path / "bad.yml"
    f.write_text(yaml.safe_dump(override))
    with pytest.raises(ConfigError) as err:
        load_workflow_config(f)
    text = str(err.value)
    assert text.startswith(f"{f}: {key_value}; allowed: "), text
    assert allowed in text, text
    assert "\n" not in text


def test_every_section_has_an_out_of_range_case():
    from pipeline.config import WorkflowSettings

    sections = {f.name for f in __import__("dataclasses").fields(WorkflowSettings)}
    tested = {next(iter(o)) for o, _, _ in OUT_OF_RANGE}
    assert tested == sections


def test_bad_config_value_exits_64_before_any_participant(tmp_path, demo_dir):
    """A value outside its allowed set ends the run at once (exit 64, one line), before
    validation, planning or any workflow."""
    from conftest import run_cli

    f = tmp_path / "bad.yml"
    f.write_text("dce:\n  model: tofts-extended\n")
    out = tmp_path / "out"
    proc = run_cli(
        demo_dir / "bids", out, "participant", "--config", f, "-w", tmp_path / "w", timeout=120
    )
    assert proc.returncode == 64, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines == [
        f"inflamap: error: {f}: 'dce.model' is 'tofts-extended'; allowed: one of "  # noqa: ISC004
        "patlak, extended_tofts"
    ], lines
    assert not (out / "sub-01").exists()


def test_written_settings_reproduce_the_run(tmp_path):
    """The YAML written beside the derivatives (logs/sub-<label>/config.yml) is a --config
    file giving the same settings."""
    cfg = load_workflow_config(
        overrides={"dce": {"hematocrit": 0.42, "delays_s": [0, 5]}, "anat": {"atlas_desc": "x1"}}
    )
    f = tmp_path / "config.yml"
    f.write_text(cfg.to_yaml())
    assert load_workflow_config(f) == cfg


def test_atlas_file_needs_its_label_table_and_a_name_of_its_own(tmp_path):
    """A lab's own atlas (e.g. arterial territories) is a NIfTI in template space with its
    .tsv beside it; a missing table or a reserved name is a ConfigError (exit 64) naming the
    key."""
    import nibabel as nb
    import numpy as np

    from pipeline.config import load_workflow_config
    from pipeline.templates import atlas_files

    img = tmp_path / "territories.nii.gz"
    nb.Nifti1Image(np.ones((4, 4, 4), np.uint8), np.eye(4)).to_filename(img)
    over = {"uspio": {"atlas": "LiuTerritories", "atlas_file": str(img)}}
    with pytest.raises(ConfigError, match=r"uspio\.atlas_file.*territories\.tsv"):
        load_workflow_config(None, overrides=over)
    (tmp_path / "territories.tsv").write_text("index\tname\n1\taca\n")
    cfg = load_workflow_config(None, overrides=over)
    files = atlas_files("X", 2, cfg.uspio.atlas, None, "uspio_atlas", cfg.uspio.atlas_file)
    assert files == {
        "uspio_atlas": str(img.resolve()),
        "uspio_atlas_lut": str((tmp_path / "territories.tsv").resolve()),
    }
    with pytest.raises(ConfigError, match=r"uspio\.atlas"):
        load_workflow_config(
            None, overrides={"uspio": {"atlas": "inflamapTerritories", "atlas_file": str(img)}}
        )
