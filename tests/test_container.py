"""The container recipe, CI and README stay in step (no Docker engine here: static checks
plus running the same install script and entrypoint that the image uses)."""

import re
import shlex
import sys
import tomllib

from conftest import ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text()
CI = (ROOT / ".ci" / "run").read_text()
README = (ROOT / "README.md").read_text()


def _instructions():
    text = re.sub(r"\\\n", " ", DOCKERFILE)
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]


def test_same_python_as_ci_and_package():
    base = next(i for i in _instructions() if i.startswith("FROM "))
    m = re.match(r"FROM python:(\d+)\.(\d+)", base)
    assert m, base
    assert (int(m.group(1)), int(m.group(2))) == sys.version_info[:2]
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["project"]["requires-python"] == ">=3.11,<3.12"


def test_image_and_ci_use_the_same_install_script():
    runs = [i for i in _instructions() if i.startswith("RUN ")]
    assert any(".ci/install.sh /src/inflamap" in r for r in runs)
    assert "bash .ci/install.sh ." in CI
    assert not re.search(r"pip install", DOCKERFILE)  # no second, drifting install path


def test_entrypoint_user_and_templates():
    ins = _instructions()
    assert 'ENTRYPOINT ["inflamap"]' in ins
    users = [i.split()[1] for i in ins if i.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert any("TEMPLATEFLOW_HOME=/opt/templateflow" in i for i in ins)
    from pipeline.cli import build_templates_parser

    for r in (i for i in ins if "inflamap templates" in i):
        for part in r[4:].split("&&"):
            argv = shlex.split(part.strip())
            if argv[:2] == ["inflamap", "templates"]:
                args = build_templates_parser().parse_args(argv[2:])
                assert args.fetch == ["MNI152NLin2009cAsym"]


def test_console_script_points_at_main():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["project"]["scripts"]["inflamap"] == "pipeline.cli:main"
    import pytest

    from pipeline import __version__
    from pipeline.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert meta["project"]["dynamic"] == ["version"] and __version__


def test_readme_test_command_is_what_ci_runs():
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", README, re.S)
    assert len(blocks) >= 2
    first, second = blocks[0].strip(), blocks[1].strip()
    assert "inflamap demo" in first and "participant" in first and "group" in first
    assert CI.strip().splitlines()[-1] == second
