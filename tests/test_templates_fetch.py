"""``inflamap-templates --fetch`` on a fresh home (the Docker image's default build):
TemplateFlow's skeleton is installed first, so the files are downloaded, not silently
skipped; a failed download is one line and a non-zero exit. The server is TemplateFlow's
S3 layout on the loopback (``INFLAMAP_TEMPLATEFLOW_S3``), no network needed."""

from __future__ import annotations

import functools
import http.server
import os
import subprocess
import sys
import threading
from pathlib import Path

import nibabel as nb
import numpy as np
import pytest
from conftest import ROOT

# each test places the published atlases on a template (an ANTs SyN registration, ~40 s)
pytestmark = pytest.mark.slow

TEMPLATE = "MNI152NLin2009cAsym"
RUN_TEMPLATES = (
    "import sys; from pipeline.cli import templates_main as m; sys.exit(m(sys.argv[1:]))"
)
NEEDED = [
    f"tpl-{TEMPLATE}_res-02_{k}.nii.gz"
    for k in (
        "desc-brain_T1w",
        "desc-brain_mask",
        "T1w",
        "label-GM_probseg",
        "label-WM_probseg",
        "label-CSF_probseg",
    )
]


@pytest.fixture
def mirror(tmp_path, tf_home):
    """A TemplateFlow mirror on 127.0.0.1 serving the files a run needs: real brain images
    (the offline ICBM 2009a maps under the 2009c names, so that the published atlas can be
    placed on the fetched template), each file's content distinct."""
    root = tmp_path / "mirror"
    (root / f"tpl-{TEMPLATE}").mkdir(parents=True)
    offline = tf_home / "tpl-MNI152NLin2009aSym"
    for i, name in enumerate(NEEDED):
        key = name.split("_res-02_")[1].replace("T1w.nii.gz", "T1w.nii.gz")
        src = offline / f"tpl-MNI152NLin2009aSym_res-2_{key}"
        if key == "T1w.nii.gz":
            src = offline / "tpl-MNI152NLin2009aSym_res-2_desc-brain_T1w.nii.gz"
        img = nb.load(src)
        data = np.asarray(img.dataobj, np.float32) * (1 + 1e-3 * i)  # distinct bytes
        nb.Nifti1Image(data, img.affine).to_filename(root / f"tpl-{TEMPLATE}" / name)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))

    class Quiet(handler.func):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def _templates(home: Path, mirror_url: str, *args):
    env = dict(
        os.environ,
        TEMPLATEFLOW_HOME=str(home),
        INFLAMAP_TEMPLATEFLOW_S3=mirror_url,
        PYTHONPATH=str(ROOT),
    )
    return subprocess.run(
        [
            sys.executable,
            "-c",
            RUN_TEMPLATES,
            *args,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def test_fetch_into_a_fresh_home_downloads_what_a_run_needs(mirror, tmp_path):
    root, url = mirror
    home = tmp_path / "home"
    # the Dockerfile's order: the offline template first, then the fetch
    first = _templates(home, url)
    assert first.returncode == 0, first.stderr
    proc = _templates(home, url, "--fetch", TEMPLATE, "--resolution", "2")
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in NEEDED:
        got = home / f"tpl-{TEMPLATE}" / name
        assert got.stat().st_size > 0, name
        assert got.read_bytes() == (root / f"tpl-{TEMPLATE}" / name).read_bytes(), name
        assert str(got) in proc.stdout
    # the offline template is still there
    assert (home / "tpl-MNI152NLin2009aSym").is_dir()
    # the published default atlases were placed on the fetched template too
    for atlas in ("HarvardOxfordLobes", "HarvardOxfordTSPO"):
        dseg = home / f"tpl-{TEMPLATE}" / f"tpl-{TEMPLATE}_res-02_atlas-{atlas}_dseg.nii.gz"
        assert str(dseg) in proc.stdout
        assert np.asarray(nb.load(dseg).dataobj).max() > 0


def test_a_failed_download_is_one_line_and_exit_66(mirror, tmp_path):
    root, url = mirror
    (root / f"tpl-{TEMPLATE}" / NEEDED[3]).unlink()  # the mirror lacks the GM map
    home = tmp_path / "home"
    proc = _templates(home, url, "--fetch", TEMPLATE, "--resolution", "2")
    assert proc.returncode == 66, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"inflamap: error: {TEMPLATE} res-2 label-GM suffix-probseg: download from {url} failed"
    ), last
    unknown = _templates(home, url, "--fetch", "NoSuchTemplate")
    assert unknown.returncode == 66
    assert "NoSuchTemplate: not a TemplateFlow template" in unknown.stderr
