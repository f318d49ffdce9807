"""inflamap installs like a Python tool: a wheel built from the source tree, installed into a
fresh virtual environment, carries every module and data file and works when its commands
are called by absolute path without activating the environment.

The environment sees the system's site-packages (the heavy dependencies are not downloaded
again) but imports inflamap from the wheel: the test checks which copy it imported.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT

pytestmark = pytest.mark.slow  # builds a wheel and a virtual environment (~30 s)

#: top-level folders of a working copy that are not the source (environments, caches, runs)
SKIP_TOP = {".git", ".venv", ".cache", "build", "work", "demo", ".pytest_cache"}


def _tracked(prefixes) -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", *prefixes], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return [line for line in out.stdout.splitlines() if line]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout (the tracked files define what the wheel must hold)")
    tmp = tmp_path_factory.mktemp("install")
    src = tmp / "src"
    shutil.copytree(
        ROOT,
        src,
        ignore=lambda d, names: [
            n for n in names if n == "__pycache__" or (Path(d) == ROOT and n in SKIP_TOP)
        ],
    )
    wheels = tmp / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(wheels), str(src)],
        check=True, capture_output=True, text=True, timeout=600,
    )  # fmt:skip
    (wheel,) = wheels.glob("inflamap-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    # the dependencies come from the environment running the tests (a venv's own
    # --system-site-packages would see the base interpreter's, which may have none)
    import sysconfig

    parent = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    probe = [
        str(venv / "bin" / "python"),
        "-c",
        "import sysconfig; print(sysconfig.get_paths()['purelib'])",
    ]
    site = Path(subprocess.run(probe, capture_output=True, text=True, check=True).stdout.strip())
    (site / "_test_parent_env.pth").write_text("\n".join(sorted(parent)) + "\n")
    # and the validator a dependency puts beside the interpreter, as pip would here
    for exe in Path(sys.executable).parent.glob("bids-validator*"):
        (venv / "bin" / exe.name).symlink_to(exe.resolve())
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--no-deps", "--no-index",
         "--ignore-installed", "-q", str(wheel)],
        check=True, capture_output=True, text=True, timeout=600,
    )  # fmt:skip
    return wheel, venv, tmp


def test_the_wheel_holds_every_module_and_data_file(installed):
    wheel, _, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    tracked = _tracked(["pipeline", "workflows", "configs"])
    missing = [f for f in tracked if f not in names and not f.endswith((".md", ".gitignore"))]
    assert not missing, f"tracked files not in the wheel: {missing[:10]}"
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/"))]


def test_installed_commands_work_by_absolute_path(installed, tmp_path):
    _, venv, _ = installed
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    for command in ("inflamap", "inflamap-demo", "inflamap-templates"):
        p = subprocess.run(
            [str(venv / "bin" / command), "--help"],
            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
        )  # fmt:skip
        assert p.returncode == 0, (command, p.stderr[-1000:])
        assert "usage:" in p.stdout
    probe = (
        "import json, pipeline\n"
        "from importlib import resources\n"
        "from pipeline.bids import validator_executable\n"
        "from pipeline.config import default_config\n"
        "from pipeline.demo.anatomy import load_anatomy\n"
        "default_config()\n"
        "tissues = load_anatomy().tissues\n"
        "tpl = resources.files('pipeline.reports').joinpath('templates')\n"
        "print(json.dumps({'file': pipeline.__file__, 'validator': validator_executable(),\n"
        "  'version': pipeline.__version__, 'anatomy': list(tissues.shape),\n"
        "  'templates': sorted(p.name for p in tpl.iterdir())}))\n"
    )
    p = subprocess.run(
        [str(venv / "bin" / "python"), "-c", probe],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )  # fmt:skip
    assert p.returncode == 0, p.stderr[-2000:]
    got = json.loads(p.stdout.strip().splitlines()[-1])
    assert Path(got["file"]).is_relative_to(venv), got["file"]  # the wheel's copy
    assert got["validator"] and os.access(got["validator"], os.X_OK)
    assert len(got["anatomy"]) == 3 and min(got["anatomy"]) > 100  # 1 mm head
    assert any(n.endswith(".j2") for n in got["templates"])
    version = subprocess.run(
        [str(venv / "bin" / "inflamap"), "--version"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )  # fmt:skip
    assert got["version"] in version.stdout + version.stderr


def test_an_explicit_validator_that_is_not_there_is_one_line_exit_64(installed, tmp_path):
    _, venv, _ = installed
    ds = tmp_path / "ds"
    ds.mkdir()
    (ds / "dataset_description.json").write_text('{"Name": "x", "BIDSVersion": "1.10.0"}')
    env = {
        "HOME": str(tmp_path),
        "PATH": "/usr/bin:/bin",
        "INFLAMAP_BIDS_VALIDATOR": str(tmp_path / "nowhere" / "bids-validator-deno"),
    }
    p = subprocess.run(
        [str(venv / "bin" / "inflamap"), str(ds), str(tmp_path / "out"), "group"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )  # fmt:skip
    assert p.returncode == 64, p.stderr[-2000:]
    last = p.stderr.strip().splitlines()[-1]
    assert "INFLAMAP_BIDS_VALIDATOR=" in last and "not an executable file" in last, last
