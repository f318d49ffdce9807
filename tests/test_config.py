"""Configuration: defaults, merging, validation messages, agent classes."""

import json

import pytest

from pipeline.config import ConfigError, Settings, default_config, load_workflow_config


def test_defaults_have_the_documented_sections():
    cfg = default_config()
    assert cfg["anat"]["template"] == "MNI152NLin2009cAsym"
    assert set(cfg) >= {"anat", "regional", "agents", "covariates"}


def test_merge_overrides_nested_keys_only(tmp_path):
    f = tmp_path / "c.yml"
    f.write_text("anat:\n  template: MNI152NLin2009aSym\n  registration:\n    syn_metric: CC\n")
    cfg = load_workflow_config(f)
    assert cfg["anat"]["template"] == "MNI152NLin2009aSym"
    assert cfg["anat"]["registration"]["syn_metric"] == "CC"
    assert cfg["anat"]["registration"]["shrink_factors"] == [4, 2, 1]  # untouched default


@pytest.mark.parametrize("text,message", [
    ("anat:\n  templte: X\n", "unknown key 'anat.templte'; did you mean 'anat.template'?"),
    ("anatomy: {}\n", "unknown key 'anatomy'; did you mean 'anat'?"),
    ("anat:\n  n4:\n    shrink_factor: two\n", "'anat.n4.shrink_factor' must be of type int"),
    ("anat: [1, 2]\n", "'anat' must be a mapping"),
    ("anat: {template: [\n", "not valid YAML"),
    ("- a\n- b\n", "top level must be a mapping"),
])
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
    assert load_workflow_config(f)["anat"]["brain_mask_threshold"] == 1


def test_settings_roundtrip_and_agent_classes(tmp_path):
    s = Settings()
    s.execution.participant_label = ["01"]
    path = s.dump(tmp_path / "settings.json")
    back = Settings.from_dict(json.loads(path.read_text()))
    assert back.to_dict() == s.to_dict()
    assert s.agent_class("Gadobutrol") == "gadolinium"
    assert s.agent_class("ferumoxytol") == "iron_oxide"
    assert s.agent_class("iodine") is None and s.agent_class(None) is None
