"""Command line: exit codes after the BIDS-Apps spec, one-line errors, nothing written."""

import shutil

import pytest
from conftest import run_cli

from pipeline import __version__


def _err_line(proc):
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.startswith("inflamap: error")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_version_and_help():
    p = run_cli("--version")
    assert p.returncode == 0 and p.stdout.strip() == f"inflamap {__version__}"
    h = run_cli("--help")
    for opt in (
        "--participant-label",
        "--session-label",
        "--work-dir",
        "--nprocs",
        "--omp-nthreads",
        "--mem-gb",
        "--config",
        "--bids-filter-file",
        "--skip-bids-validation",
        "--stop-on-first-crash",
        "--use-plugin",
    ):
        assert opt in h.stdout


def test_usage_errors_exit_64(tmp_path):
    p = run_cli(tmp_path)
    assert p.returncode == 64 and "required" in p.stderr
    p = run_cli(tmp_path, tmp_path / "o", "subject")
    assert p.returncode == 64 and "invalid choice" in p.stderr


def test_nonexistent_input_exits_66_naming_it(tmp_path):
    p = run_cli("/nonexistent", tmp_path / "out", "participant")
    assert p.returncode == 66
    assert "/nonexistent" in _err_line(p)
    assert not (tmp_path / "out").exists()


def test_not_a_bids_root(tmp_path):
    p = run_cli(tmp_path, tmp_path.parent / "o_notbids", "participant")
    assert p.returncode == 66
    assert "dataset_description.json: missing" in _err_line(p)


@pytest.fixture
def small_ds(tmp_path, demo_dir):
    """A copy of one demo participant, T1w only (fast to validate)."""
    ds = tmp_path / "ds"
    shutil.copytree(
        demo_dir / "bids",
        ds,
        ignore=shutil.ignore_patterns("*MEGRE*", "*VFA*", "*dce*", "pet", "*ce-*", "sub-02"),
    )
    tsv = ds / "participants.tsv"
    tsv.write_text("\n".join(tsv.read_text().splitlines()[:2]) + "\n")
    return ds


def test_participant_label_errors(small_ds, tmp_path):
    out = tmp_path / "out"
    p = run_cli(
        small_ds, out, "participant", "--participant-label", "99", "--skip-bids-validation"
    )
    assert p.returncode == 66
    assert "sub-99 not found; available: sub-01" in _err_line(p)
    p = run_cli(
        small_ds, out, "participant", "--participant-label", "../x", "--skip-bids-validation"
    )
    assert p.returncode == 64 and "'../x'" in _err_line(p)
    assert not (out / "dataset_description.json").exists()


def test_output_inside_input_refused(small_ds):
    p = run_cli(small_ds, small_ds / "derivatives" / "inflamap", "participant")
    assert p.returncode == 64 and "outside the input" in _err_line(p)
    assert not (small_ds / "derivatives").exists()


def test_bad_config_key_exit_64(small_ds, tmp_path):
    cfg = tmp_path / "c.yml"
    cfg.write_text("anat:\n  atlass: inflamapLobes\n")
    p = run_cli(small_ds, tmp_path / "out", "participant", "--config", cfg)
    assert p.returncode == 64
    assert "unknown key 'anat.atlass'; did you mean 'anat.atlas'?" in _err_line(p)


def test_bids_validation_failure_exit_16(small_ds, tmp_path):
    bad = small_ds / "sub-01" / "ses-01" / "anat" / "sub-01_ses-01_T1w.nii.gz"
    shutil.copy(bad, bad.with_name("sub-01_ses-01_badsuffix.nii.gz"))
    p = run_cli(small_ds, tmp_path / "out", "participant")
    assert p.returncode == 16
    assert "BIDS validation failed" in _err_line(p)
    assert "--skip-bids-validation" in _err_line(p)
    assert not (tmp_path / "out" / "dataset_description.json").exists()


def test_unknown_template_exit_66(small_ds, tmp_path):
    cfg = tmp_path / "c.yml"
    cfg.write_text("anat:\n  template: NoSuchTemplate\n")
    p = run_cli(
        small_ds, tmp_path / "out", "participant", "--config", cfg, "--skip-bids-validation"
    )
    assert p.returncode == 66 and "NoSuchTemplate" in _err_line(p)


def test_uncreatable_output_exit_73(small_ds, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    p = run_cli(small_ds, blocker / "out", "participant", "--skip-bids-validation")
    assert p.returncode == 73
    assert "cannot create the output folder" in _err_line(p)


def test_group_without_participant_level(small_ds, tmp_path):
    p = run_cli(small_ds, tmp_path / "out", "group", "--skip-bids-validation")
    assert p.returncode == 66 and "run the participant level first" in _err_line(p)


def test_bad_plugin_file(small_ds, tmp_path):
    f = tmp_path / "plugin.yml"
    f.write_text("plugin_args: {}\n")
    p = run_cli(
        small_ds, tmp_path / "out", "participant", "--use-plugin", f, "--skip-bids-validation"
    )
    assert p.returncode == 64 and "needs a 'plugin:' key" in _err_line(p)


def test_demo_command_validation(tmp_path):
    p = run_cli("demo", tmp_path / "d", "--participants", "1")
    assert p.returncode == 64 and "at least 2 participants" in _err_line(p)


def test_demo_into_a_used_folder_ends_before_any_work(tmp_path, monkeypatch, capsys):
    """A demo folder that already holds a dataset: exit 64 and one line naming it, before
    the TemplateFlow home (built alongside the participants) is touched."""
    from pipeline.cli.main import demo_main

    (tmp_path / "d" / "bids" / "sub-01").mkdir(parents=True)
    home = tmp_path / "tf"
    monkeypatch.setenv("TEMPLATEFLOW_HOME", str(home))
    assert demo_main([str(tmp_path / "d")]) == 64
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not empty; choose a new demo folder" in err[0], err
    assert not home.exists()
    assert demo_main([str(tmp_path / "e"), "--nprocs", "0"]) == 64
    assert "--nprocs 0" in capsys.readouterr().err and not home.exists()


def test_a_dataset_folder_named_demo_is_processed_not_taken_for_the_tool(tmp_path, demo_dir):
    """``inflamap demo OUT participant`` is a BIDS-App call on a folder named ``demo``; the
    tools have console scripts of their own (the old spelling still works, with a note)."""
    import shutil

    from conftest import run_cli

    ds = tmp_path / "demo"
    shutil.copytree(demo_dir / "bids", ds)
    proc = run_cli(
        "demo",
        tmp_path / "out",
        "participant",
        "--participant-label",
        "99",
        "--skip-bids-validation",
        cwd=tmp_path,
        timeout=300,
    )
    # the BIDS-App ran on the folder: it looked for participant 99 there (exit 66)
    assert proc.returncode == 66, proc.stderr
    assert "sub-99 not found; available: sub-01, sub-02" in proc.stderr
    proc = run_cli("templates", "--help", timeout=120)
    assert proc.returncode == 0 and "'inflamap templates' is now 'inflamap-templates'" in (
        proc.stderr
    )
    from pipeline.cli import build_demo_parser, build_templates_parser

    assert build_demo_parser().prog == "inflamap-demo"
    assert build_templates_parser().prog == "inflamap-templates"


def test_installed_command_runs_without_an_activated_environment(small_ds, tmp_path):
    """``/path/to/venv/bin/inflamap`` called by its absolute path with a bare PATH (a cluster
    job that does not activate the environment): the validator is found beside the Python
    that runs inflamap and its warnings are printed, one line per kind."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from conftest import TF_HOME

    exe = Path(sys.executable).parent / "inflamap"
    if not exe.is_file():
        pytest.skip("inflamap is not installed beside this Python (bash .ci/install.sh .)")
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "TEMPLATEFLOW_HOME": str(TF_HOME)}
    p = subprocess.run(
        [str(exe), str(small_ds), str(tmp_path / "out"), "group"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        cwd=tmp_path,
    )
    assert "bids-validator-deno not found" not in p.stderr, p.stderr
    warn = [ln for ln in p.stderr.splitlines() if "BIDS validator warning:" in ln]
    assert any("SIDECAR_KEY_RECOMMENDED" in ln for ln in warn), p.stderr[-2000:]
    assert os.path.isdir(small_ds)  # (the input is untouched: checked elsewhere)


@pytest.mark.parametrize(
    "fullname,label",
    [
        ("sub_01_wf.anat_ses_01_wf.linear_registration", "ses-01 anatomy: linear registration"),
        ("sub_01_wf.ds_anat_ses_01_wf.ds_t1w_mask", "ses-01 anatomy: saved a derivative"),
        ("sub_01_wf.ds_dce_gadobutrol_ses_02_wf.ds_ktrans", "ses-02 DCE: saved a derivative"),
        ("sub_01_wf.gad_gadobutrol_ses_02_wf.percent", "ses-02 gadolinium: percent"),
        (
            "sub_01_wf.dce_gadobutrol_ses_01_wf._motion_correction13",
            "ses-01 DCE: motion correction, frame 14",
        ),
        ("sub_01_wf.anat_wf.n4", "anatomy: n4"),
    ],
)
def test_progress_names_steps_for_people(fullname, label):
    from pipeline.cli.participant import describe_step

    assert describe_step(fullname) == label


def test_progress_names_the_series_of_one_item_of_a_mapnode():
    """nipype names a MapNode's items ``_<name><index>`` without their workflow; the
    progress line gets it back from the item's folder."""
    from types import SimpleNamespace

    from pipeline.cli.participant import describe_step, step_fullname

    item = SimpleNamespace(
        fullname="_motion_correction13",
        base_dir="/w/sub-01/sub_01_wf/dce_gadobutrol_ses_01_wf/motion_correction/mapflow",
    )
    assert describe_step(step_fullname(item)) == "ses-01 DCE: motion correction, frame 14"
    plain = SimpleNamespace(fullname="sub_01_wf.anat_wf.n4", base_dir="/w/sub-01")
    assert step_fullname(plain) == "sub_01_wf.anat_wf.n4"
