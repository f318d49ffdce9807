"""Participant reports and methods boilerplate (issue 8, participant side).

A synthetic derivatives folder (tiny images named like the real ones) checks the report's
contents and robustness; the shared ``demo_run`` checks the report and boilerplate of a real
participant run, ``--reports-only`` and, with Debian's ``chromium``, that every image of the
rendered report loads.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, run_cli, tree_snapshot

TEMPLATE = "MNI152NLin2009aSym"
MAX_BYTES = 20 * 1024 * 1024


# ----------------------------------------------------------------------------- helpers


def _files(root: Path) -> dict:
    """Files below ``root`` (size, mtime, hash); folders left out (their mtime changes when
    a figure folder is created)."""
    return {k: v for k, v in tree_snapshot(root).items() if len(v) == 4}


def _img_sources(html: Path) -> list[str]:
    """Every figure a report shows: images and the before/after SVG objects."""
    text = html.read_text()
    return re.findall(r'<img[^>]+src="([^"]+)"', text) + re.findall(
        r'<object[^>]+data="([^"]+)"', text
    )


def _report_bytes(html: Path) -> int:
    return html.stat().st_size + sum(
        (html.parent / s).stat().st_size for s in set(_img_sources(html))
    )


def _check_images_exist(html: Path):
    srcs = _img_sources(html)
    assert srcs, f"{html}: no images"
    for src in srcs:
        assert not src.startswith(("/", "http:", "https:", "data:")), src  # relative files
        assert (html.parent / src).is_file(), f"{html.name} references missing {src}"
    return srcs


def _save(data, affine, path, dtype=np.float32):
    import nibabel as nb

    path.parent.mkdir(parents=True, exist_ok=True)
    nb.Nifti1Image(np.asarray(data, dtype=dtype), affine).to_filename(path)


def _json(path, obj):
    path.write_text(json.dumps(obj))


def _tsv(path, rows, header):
    path.write_text(
        "\t".join(header) + "\n" + "".join("\t".join(map(str, r)) + "\n" for r in rows)
    )


def _regions(ses, modality, metric, lateral):
    rows = []
    for roi in ("frontal", "occipital", "meningeal_occipital"):
        for hemi, m in (("left", 3.0), ("right", 2.0)):
            rows.append(["sub-01", ses, modality, metric, roi, hemi, 50, m, m, 0.5])
        if lateral:
            rows += [
                ["sub-01", ses, modality, metric, roi, "ipsi", 50, 3.0, 3.0, 0.5],
                ["sub-01", ses, modality, metric, roi, "contra", 50, 2.0, 2.0, 0.5],
                ["sub-01", ses, modality, metric, roi, "AI", 50, 0.4, 0.4, "n/a"],
            ]
    rows.append(
        ["sub-01", ses, modality, metric, "superior_sagittal_sinus", "bilateral", 9, 9.0, 9.0, 1.0]
    )
    return rows


REGION_HEADER = [
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
]


@pytest.fixture
def synthetic(tmp_path, tf_home):
    """sub-01 (ses-01: T1w, gadolinium, DCE through a rigid transform, PET on the T1w grid,
    a crash file; ses-02: T1w only) and sub-02 (T1w only, no session)."""
    import ants

    out = tmp_path / "derivatives"
    rng = np.random.default_rng(0)
    aff = np.diag([4.0, 4.0, 4.0, 1.0])
    aff[:3, 3] = [-60, -76, -50]
    shape = (31, 38, 30)
    ii, jj, kk = np.indices(shape)
    c = np.array(shape) / 2
    r = np.sqrt(((ii - c[0]) / 12) ** 2 + ((jj - c[1]) / 15) ** 2 + ((kk - c[2]) / 12) ** 2)
    brain = r < 0.8
    head = r < 1.0
    t1 = np.where(brain, 800.0, np.where(head, 400.0, 5.0)) + rng.normal(0, 10, shape)

    def anat(folder, prefix):
        _save(t1, aff, folder / f"{prefix}_desc-preproc_T1w.nii.gz")
        _json(folder / f"{prefix}_desc-preproc_T1w.json", {"SkullStripped": False})
        _save(brain, aff, folder / f"{prefix}_desc-brain_mask.nii.gz", np.uint8)
        labels = np.where(brain, np.where(ii < c[0], 1, 2), 0)
        _save(labels, aff, folder / f"{prefix}_atlas-inflamapLobes_dseg.nii.gz", np.int16)
        _tsv(
            folder / f"{prefix}_atlas-inflamapLobes_dseg.tsv",
            [[1, "left"], [2, "right"]],
            ["index", "name"],
        )
        # extra-cerebral ROIs: a meningeal and a calvarial shell and a midline "sinus"
        rois = np.where(brain, labels, 0)
        rois[(r >= 0.8) & (r < 0.88)] = 3
        rois[(r >= 0.88) & (r < 0.96)] = 4
        rois[(r >= 0.8) & (r < 0.96) & (np.abs(ii - c[0]) < 1.5) & (kk > c[2])] = 5
        stem = f"{prefix}_atlas-inflamapLobes_desc-extracerebral_dseg"
        _save(rois, aff, folder / f"{stem}.nii.gz", np.int16)
        _tsv(
            folder / f"{stem}.tsv",
            [
                [1, "left", "left"],
                [2, "right", "right"],
                [3, "meningeal_left", "left"],
                [4, "calvarial_left", "left"],
                [5, "superior_sagittal_sinus", "bilateral"],
            ],
            ["index", "name", "hemisphere"],
        )
        # template space: the real template grid (2 mm), a blurred sphere
        import nibabel as nb

        from pipeline.templates import get_template_file

        tpl = nb.load(get_template_file(TEMPLATE, 2, desc="brain", suffix="T1w"))
        _save(
            np.asarray(tpl.dataobj) * 1.02,
            tpl.affine,
            folder / f"{prefix}_space-{TEMPLATE}_desc-preproc_T1w.nii.gz",
        )

    a = out / "sub-01" / "ses-01" / "anat"
    p = "sub-01_ses-01"
    anat(a, p)
    _tsv(
        a / f"{p}_atlas-inflamapLobes_desc-nT1w_regions.tsv",
        _regions("ses-01", "anat", "nT1w", True),
        REGION_HEADER,
    )
    _json(a / f"{p}_atlas-inflamapLobes_desc-nT1w_regions.json", {"HeadacheSide": "left"})
    # gadolinium
    g = f"{p}_ce-gadobutrol"
    _save(t1 * 1.05, aff, a / f"{g}_desc-preproc_T1w.nii.gz")
    pct = np.where(head & ~brain, 30.0, 2.0) + rng.normal(0, 1, shape)
    _save(pct, aff, a / f"{g}_desc-percent_T1w.nii.gz")
    _json(
        a / f"{g}_desc-percent_T1w.json",
        {
            "Units": "%",
            "NormalisationFactor": 0.9693,
            "NormalisationMethod": "reference-tissue",
            "QCWhiteMatterMeanAbsDiffPercent": 1.08,
        },
    )
    _save(pct - 2, aff, a / f"{g}_desc-subtraction_T1w.nii.gz")  # no sidecar
    _tsv(
        a / f"{g}_desc-enhancement_findings.tsv",
        [["sub-01", "ses-01", 1, "meningeal_occipital", "left", 270.0, 10, 73.5, 61.2]],
        [
            "participant_id",
            "session_id",
            "cluster",
            "roi",
            "hemisphere",
            "volume_mm3",
            "n_voxels",
            "peak_percent",
            "mean_percent",
        ],
    )
    _tsv(
        a / f"{g}_atlas-inflamapLobes_desc-percent_regions.tsv",
        _regions("ses-01", "gadolinium", "enhancement", True),
        REGION_HEADER,
    )
    # DCE on its own (shifted) grid with a rigid transform to the T1w
    aff_dce = aff.copy()
    aff_dce[:3, 3] += [2.0, -1.0, 3.0]
    kt = np.where(brain, 0.002, 0.0) + np.where(head & ~brain, 0.01, 0.0)
    kt[~head] = np.nan
    _save(kt, aff_dce, a / f"{g}_Ktrans.nii.gz")
    _json(
        a / f"{g}_Ktrans.json",
        {"Units": "1/min", "Model": "patlak", "VIFVoxels": 24, "FittedVoxels": int(head.sum())},
    )
    _save(np.where(head, 1.2, 0.0), aff_dce, a / f"{g}_T1map.nii.gz")
    _save(np.where(head, 0.01, 0.0), aff_dce, a / f"{g}_desc-fit_residual.nii.gz")
    _save(kt, aff, a / f"{g}_space-{TEMPLATE}_Ktrans.nii.gz")  # (grid differs: still drawn)
    tx = ants.create_ants_transform(transform_type="AffineTransform", dimension=3)
    ants.write_transform(tx, str(a / f"{g}_from-dce_to-T1w_mode-image_xfm.mat"))
    _tsv(
        a / f"{g}_desc-vif_timeseries.tsv",
        [[0.0, 0.0, 0.0], [15.0, 3.0, 5.4], [30.0, 1.0, 1.8]],
        ["time_s", "blood_mM", "plasma_mM"],
    )
    # PET on the T1w grid (no transform)
    pet = out / "sub-01" / "ses-01" / "pet"
    _save(np.where(brain, 1.1, 0.0), aff, pet / f"{p}_trc-PBR28_desc-SUVR_pet.nii.gz")
    _json(pet / f"{p}_trc-PBR28_desc-SUVR_pet.json", {"Units": "unitless"})
    # ses-02: T1w only
    anat(out / "sub-01" / "ses-02" / "anat", "sub-01_ses-02")
    # sub-02 without sessions, T1w only
    anat(out / "sub-02" / "anat", "sub-02")
    # a crash file as nipype writes them (txt)
    logs = out / "logs" / "sub-01"
    logs.mkdir(parents=True)
    (logs / "crash-20260101-120000-root-fit-0a1b.txt").write_text(
        "Node: sub_01_wf.dce_gadobutrol_ses_01_wf.fit\nWorking directory: /w\n\n"
        'Node inputs:\n\nx = 1\n\nTraceback (most recent call last):\n  File "x", line 1\n'
        "ValueError: the input function has no positive peak\n\n"
    )
    return out


# ----------------------------------------------------------------------------- synthetic


@pytest.mark.slow  # a whole report with its registration views and mosaics (~19 s)
def test_report_from_synthetic_derivatives(synthetic):
    from pipeline.reports.participant import build_participant_report

    html = build_participant_report(synthetic, "01")
    assert html == synthetic / "sub-01.html"
    text = html.read_text()
    srcs = _check_images_exist(html)
    assert all(s.startswith("sub-01/figures/") for s in srcs)
    assert _report_bytes(html) < MAX_BYTES
    # errors on top: node and last line of the traceback, before any session
    err = text.index("the input function has no positive peak")
    assert "sub_01_wf.dce_gadobutrol_ses_01_wf.fit" in text
    assert err < text.index('id="ses-01"')
    # sections for what exists, none for what does not
    for title in (
        "Anatomy and registration",
        "Gadolinium enhancement (gadobutrol)",
        "DCE permeability (gadobutrol)",
        "PET uptake (PBR28)",
    ):
        assert title in text, title
    assert "USPIO" not in text
    # registration overlays, maps in both spaces, charts
    names = {Path(s).name for s in srcs}
    assert "sub-01_ses-01_space-MNI152NLin2009aSym_desc-preproc_T1w_desc-tplcontour.png" in names
    # fMRIPrep's before/after view of the template registration (niworkflows): an <object>
    # whose SVG holds the template and the participant's T1w, the latter fading in on hover
    flicker = re.findall(r'<object type="image/svg\+xml" data="([^"]+)"', text)
    assert any("space-MNI152NLin2009aSym_desc-preproc_T1w_desc-flicker.svg" in f for f in flicker)
    assert any("_T1map_desc-flicker.svg" in f for f in flicker)  # DCE → T1w, also
    assert any("ce-gadobutrol_desc-preproc_T1w_desc-flicker.svg" in f for f in flicker)
    # the derivatives not drawn are listed as information, not as a warning note
    assert "Written but not drawn" not in text and "Other derivatives of this section" in text
    svg = (html.parent / flicker[0]).read_text()
    assert "foreground-svg" in svg and "background-svg" in svg and ":hover" in svg
    assert "sub-01_ses-01_ce-gadobutrol_desc-preproc_T1w_desc-postonpre.png" in names
    assert "sub-01_ses-01_desc-preproc_T1w_desc-bands.png" in names  # band outlines
    assert "sub-01_ses-01_ce-gadobutrol_T1map_desc-ont1w.png" in names  # via the .mat
    assert "sub-01_ses-01_ce-gadobutrol_Ktrans_desc-map.png" in names
    assert "sub-01_ses-01_ce-gadobutrol_space-MNI152NLin2009aSym_Ktrans_desc-map.png" in names
    assert "sub-01_ses-01_trc-PBR28_desc-SUVR_pet_desc-map.png" in names
    assert _check_map_units(text) >= 4
    # a map whose sidecar is missing says so instead of showing a bare scale
    assert "enhancement (subtraction) [units not recorded]" in text
    assert (
        "sub-01_ses-01_ce-gadobutrol_atlas-inflamapLobes_desc-percent_regions_chart.svg" in names
    )
    assert "sub-01_ses-01_ce-gadobutrol_desc-vif_timeseries_chart.svg" in names
    assert "through sub-01_ses-01_ce-gadobutrol_from-dce_to-T1w_mode-image_xfm.mat" in text
    # QC from the sidecars and computed ones
    assert "0.9693" in text and "VIFVoxels" in text
    assert "registration similarity, T1w ↔ MNI152NLin2009aSym template" in text
    assert "meningeal_occipital" in text  # the findings table
    # ses-02 (T1w only) has its anatomy section and nothing else
    ses2 = text[text.index('id="ses-02"') : text.index('id="methods"')]
    assert "Anatomy and registration" in ses2 and "Gadolinium" not in ses2
    assert "Report notes" not in text, re.findall(r"<li>([^<]*)</li>", text)[:5]


@pytest.mark.slow  # the official validator on a dataset (~13 s)
def test_validator_warnings_are_in_the_report(synthetic, tmp_path):
    """The BIDS validator's warnings of the run (kept by the CLI in logs/) are shown at the
    top of the report; an empty list says so; without a list nothing is claimed."""
    import shutil

    from pipeline.bids import VALIDATOR_WARNINGS, save_validator_warnings
    from pipeline.reports.participant import build_participant_report

    out = tmp_path / "out"
    shutil.copytree(synthetic, out)
    line = "SIDECAR_KEY_RECOMMENDED [Manufacturer] (2x, e.g. /sub-01/anat/sub-01_T1w.json)"
    save_validator_warnings(out, [line])
    assert (out / VALIDATOR_WARNINGS).read_text() == line + "\n"
    text = build_participant_report(out, "01").read_text()
    assert "BIDS validator warnings" in text and "SIDECAR_KEY_RECOMMENDED [Manufacturer]" in text
    save_validator_warnings(out, [])
    text = build_participant_report(out, "01").read_text()
    assert "reported no warnings" in text and "SIDECAR_KEY_RECOMMENDED" not in text
    (out / VALIDATOR_WARNINGS).unlink()
    text = build_participant_report(out, "01").read_text()
    assert "BIDS validator" not in text


def test_report_of_t1w_only_participant_and_no_boilerplate(synthetic):
    from pipeline.reports.participant import build_participant_report

    html = build_participant_report(synthetic, "sub-02")
    text = html.read_text()
    _check_images_exist(html)
    assert "Anatomy and registration" in text
    for absent in ("Gadolinium", "DCE", "USPIO", "PET"):
        assert absent not in text, absent
    assert "No errors were recorded" in text
    assert "No methods boilerplate was found" in text


@pytest.mark.slow  # builds whole reports, registration views included (~15-20 s)
def test_stale_crash_files_are_marked(synthetic):
    from pipeline.reports.participant import build_participant_report, summarise_crashes

    crashes = summarise_crashes(synthetic, "01", since=time.time() + 10)
    assert crashes and crashes[0]["stale"] and crashes[0]["node"].endswith(".fit")
    text = build_participant_report(synthetic, "01", run_started=time.time() + 10).read_text()
    assert "Crash files from earlier runs" in text
    assert "No errors were recorded for this participant in this run" in text


@pytest.mark.slow  # builds whole reports, registration views included (~15-20 s)
def test_reports_only_cli_on_synthetic(synthetic, tmp_path):
    bids = tmp_path / "bids"
    bids.mkdir()
    (bids / "dataset_description.json").write_text('{"Name": "x", "BIDSVersion": "1.10.0"}')
    before = _files(synthetic)
    work = tmp_path / "work"
    proc = run_cli(bids, synthetic, "participant", "--reports-only", "-w", work)
    assert proc.returncode == 0, proc.stderr
    assert "sub-01: report" in proc.stderr and "sub-02: report" in proc.stderr
    after = _files(synthetic)
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    assert changed, "no report written"
    for k in changed:  # only the reports and their figures
        assert re.fullmatch(r"sub-0[12]\.html|sub-0[12]/figures(/.*)?", k), k
    assert not work.exists()  # nothing was computed
    missing = run_cli(
        bids, synthetic, "participant", "--reports-only", "--participant-label", "07"
    )
    assert missing.returncode == 66 and "sub-07" in missing.stderr


# ----------------------------------------------------------------------------- boilerplate


def test_every_workflow_citation_has_a_reference():
    from pipeline.reports.references import REFERENCES

    keys = set()
    for path in (ROOT / "workflows").glob("*.py"):
        for group in re.findall(r"\[(@[^\]]+)\]", path.read_text()):
            keys |= {k.strip()[1:] for k in group.split(";")}
    assert keys, "no [@key] citations found under workflows/"
    assert keys <= set(REFERENCES), keys - set(REFERENCES)


def test_boilerplate_resolves_citations_and_lists_unknown_ones():
    from nipype.interfaces import utility as niu
    from nipype.pipeline import engine as pe
    from niworkflows.engine.workflows import LiterateWorkflow

    from pipeline.reports.boilerplate import make_boilerplate, parse_markdown

    wf = LiterateWorkflow("top")
    wf.__desc__ = "Top text with `code` and *emphasis*.\n"
    sub = LiterateWorkflow("sub")
    sub.__desc__ = "Bias correction [@n4]; registration [@ants; @nokey].\n"
    sub.add_nodes([pe.Node(niu.IdentityInterface(fields=["a"]), name="n")])
    wf.add_nodes([sub])
    md = make_boilerplate(wf, "01", template=TEMPLATE)
    assert "(Tustison et al. 2010)" in md and "(Avants et al. 2008; nokey?)" in md
    assert "N4ITK: improved N3 bias correction" in md
    assert "Unresolved citation keys" in md and "`nokey`" in md
    assert "ANTs" not in md.split("## Software")[1].split("## References")[0]  # no ANTs node
    blocks = parse_markdown(md)
    kinds = {k for b in blocks if b["type"] == "paragraph" for k, _ in b["inline"]}
    assert {"code", "em", "text"} <= kinds
    assert any(b["type"] == "list" for b in blocks)


# ----------------------------------------------------------------------------- demo run


@pytest.mark.slow
def test_demo_report_and_boilerplate(demo_run):
    out = demo_run["out"]
    stderr = demo_run["participant"].stderr
    for label in ("01", "02"):
        html = out / f"sub-{label}.html"
        assert html.is_file(), stderr[-3000:]
        _check_images_exist(html)
        size = _report_bytes(html)
        assert size < MAX_BYTES, f"sub-{label}: {size / 1e6:.1f} MB"
        m = re.search(rf"sub-{label}: report \S+ \(([\d.]+) MB, (\d+) s\)", stderr)
        assert m, stderr[-3000:]
        print(
            f"sub-{label}: report {size / 1e6:.2f} MB, generated in {m.group(2)} s "
            "(during the participant run)"
        )
    for label in ("01", "02"):
        md = (out / "logs" / f"sub-{label}" / "boilerplate.md").read_text()
        text = (out / f"sub-{label}.html").read_text()
        for word in (
            "N4BiasFieldCorrection",
            "antsRegistration",
            "ANTs 2.5.1",
            "TemplateFlow",
            "Nipype 1.11",
            "nilearn",
            "(Tustison et al. 2010)",
            "## References",
            f"`sub-{label}`",
        ):
            assert word in md, word
        assert "Unresolved citation keys" not in md
        assert "N4BiasFieldCorrection" in text  # the report includes it
        # a modality paragraph is there exactly when its derivatives are
        sub = out / f"sub-{label}"
        ran = {
            "The post-contrast (": any(sub.rglob("*_desc-percent_T1w.nii.gz")),
            "Dynamic contrast-enhanced": any(sub.rglob("*_Ktrans.nii.gz")),
            "Iron-oxide (": any(sub.rglob("*_desc-delta_R2starmap.nii.gz")),
            "SUVR": any(sub.rglob("*_desc-SUVR_pet.nii.gz")),
        }
        assert ran["The post-contrast ("]  # every demo participant has gadolinium
        _check_map_units(text)
        # every registration has its before/after view, USPIO post -> pre included
        views = re.findall(r'<object type="image/svg\+xml" data="([^"]+)"', text)
        for ending in (
            "space-MNI152NLin2009aSym_desc-preproc_T1w_desc-flicker.svg",  # T1w -> template
            "ce-gadobutrol_desc-preproc_T1w_desc-flicker.svg",  # post -> pre T1w
            "_T1map_desc-flicker.svg",  # DCE -> T1w
            "_R2starmap_desc-flicker.svg",  # MEGRE -> T1w
            "_ce-ferumoxytol_R2starmap_desc-flicker.svg",  # post -> pre ferumoxytol
        ):
            assert any(v.endswith(ending) for v in views) == (
                ending != "_ce-ferumoxytol_R2starmap_desc-flicker.svg" or ran["Iron-oxide ("]
            ), (label, ending)
        for marker, present in ran.items():
            assert (marker in md) == present, (label, marker, present)


@pytest.mark.slow
def test_demo_reports_only_regenerates_without_recomputing(demo_run):
    out, work = demo_run["out"], demo_run["work"]
    before = _files(out)
    work_before = tree_snapshot(work)
    t0 = time.time()
    proc = run_cli(
        demo_run["bids"],
        out,
        "participant",
        "--reports-only",
        "--participant-label",
        "01",
        "-w",
        work,
    )
    elapsed = time.time() - t0
    assert proc.returncode == 0, proc.stderr
    after = _files(out)
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    assert "sub-01.html" in changed
    for k in changed:
        assert re.fullmatch(r"sub-01\.html|sub-01/figures(/.*)?", k), k
    assert tree_snapshot(work) == work_before
    html = out / "sub-01.html"
    _check_images_exist(html)
    print(f"--reports-only sub-01: {elapsed:.0f} s (command), {_report_bytes(html) / 1e6:.2f} MB")


# ----------------------------------------------------------------------------- chromium

CHECK_SCRIPT = """
<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var broken = imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); })
                   .map(function (i) { return i.getAttribute('src'); });
  var pre = document.createElement('pre');
  pre.id = 'imgcheck';
  var root = document.documentElement;
  // the widest elements that stick out of the 1400 px window (horizontal scrolling)
  var wide = Array.prototype.slice.call(document.body.querySelectorAll('*'))
    .filter(function (e) { return e.getBoundingClientRect().right > root.clientWidth + 1; })
    .slice(0, 5).map(function (e) { return e.tagName + '.' + e.className + '#' + e.id; });
  pre.textContent = 'IMGCHECK ' + JSON.stringify({total: imgs.length, broken: broken,
    overflow: root.scrollWidth - root.clientWidth, wide: wide});
  document.body.appendChild(pre);
});
</script>
"""


def _check_map_units(text: str) -> int:
    """Every quantitative map of a report names its units (its caption and the title
    over its colour bar); returns how many maps there are."""
    maps = re.findall(r'<img src="([^"]+_desc-map\.png)" alt="([^"]*)"', text)
    assert maps
    for src, alt in maps:
        assert re.search(r"\[[^\]]+\]", alt), (src, alt)
    return len(maps)


def _chromium():
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip(
        "Debian's chromium is not installed (apt-get install -y chromium; CI installs "
        "it with .ci/apt-packages.sh): headless rendering not checked"
    )


def _chromium_args(exe, profile):
    return [
        exe,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
    ]


def _render_and_check(html: Path, tmp_path: Path, min_dark: float = 0.02):
    """Screenshot the report and count the images that did not load (headless chromium)."""
    exe = _chromium()
    # a copy with the checking script, beside a link to the figures (same relative paths)
    view = tmp_path / "view"
    view.mkdir()
    for top in {src.split("/")[0] for src in _img_sources(html)}:  # the figure folders
        (view / top).symlink_to(html.parent / top, target_is_directory=True)
    text = html.read_text().replace("</body>", CHECK_SCRIPT + "</body>")
    page = view / html.name
    page.write_text(text)
    shot = tmp_path / "shot.png"
    args = _chromium_args(exe, tmp_path / "profile")
    dom = subprocess.run(
        args
        + ["--virtual-time-budget=20000", "--window-size=1400,4000", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=300,
    )
    m = re.search(r"IMGCHECK (\{.*?\})</pre>", dom.stdout)
    assert m, f"chromium did not run the check: {dom.stderr[-2000:]}"
    result = json.loads(m.group(1).replace("&quot;", '"'))
    assert result["total"] == len(re.findall(r'<img[^>]+src="', html.read_text())), result
    assert result["broken"] == [], result["broken"]
    # no horizontal scrolling at 1400 px (wide tables scroll inside their own box)
    assert result["overflow"] <= 0, (result["overflow"], result["wide"])
    proc = subprocess.run(
        args
        + [
            "--virtual-time-budget=20000",
            f"--screenshot={shot}",
            "--window-size=1280,4000",
            html.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert shot.is_file(), proc.stderr[-2000:]
    import matplotlib.image as mpimg

    px = mpimg.imread(str(shot))[..., :3]
    assert px.shape[0] >= 3000 and px.shape[1] >= 1200, px.shape
    assert float(px.std()) > 0.05, "blank screenshot"
    dark = (px.mean(axis=2) < 0.3).mean()  # brain slices are drawn on black
    assert dark > min_dark, f"screenshot has almost no image content ({dark:.3f})"
    return result


@pytest.mark.slow  # a browser over a whole report, registration views included (~16 s)
def test_chromium_renders_synthetic_report(synthetic, tmp_path):
    from pipeline.reports.participant import build_participant_report

    html = build_participant_report(synthetic, "01")
    result = _render_and_check(html, tmp_path)
    assert result["total"] > 10


@pytest.mark.slow
def test_chromium_renders_demo_report(demo_run, tmp_path):
    html = demo_run["out"] / "sub-01.html"
    result = _render_and_check(html, tmp_path)
    print(f"chromium: {result['total']} images in sub-01.html, none broken")


def test_chromium_renders_group_report(tmp_path):
    """The group report of a synthetic group run (forest, strip and glass-brain figures)."""
    from test_group_stats import TEMPLATE, _write_dataset

    from pipeline.config import Settings, default_config, load_workflow_config
    from pipeline.group import run_group

    _chromium()
    (tmp_path / "data").mkdir()
    bids, out = _write_dataset(tmp_path / "data")
    keep = ("patientsVsHC", "ictalVsInterictal", "ipsiVsContraIctal")
    defaults = default_config().group.contrasts
    settings = Settings(
        workflow=load_workflow_config(
            overrides={
                "anat": {"template": TEMPLATE},
                "group": {"contrasts": [c for c in defaults if c["name"] in keep]},
            }
        )
    )
    settings.execution.bids_dir, settings.execution.output_dir = str(bids), str(out)
    assert run_group(settings) == 0
    html = out / "group" / "group.html"
    result = _render_and_check(html, tmp_path, min_dark=0.0)  # plots on white
    kinds = {re.sub(r"_.*", "", Path(s).name) for s in _img_sources(html)}
    assert {"forest", "strip", "glass"} <= kinds, kinds
    assert result["total"] >= 6


def test_methods_text_keeps_r2_star_literal(tf_home):
    """'ΔR2* = R2*post − R2*pre' in the USPIO methods is text, not Markdown emphasis."""
    from pipeline.config import default_config
    from pipeline.reports.boilerplate import parse_markdown
    from pipeline.templates import get_template_file
    from workflows.uspio import init_uspio_wf

    tpl = "MNI152NLin2009aSym"
    files = {"template": str(get_template_file(tpl, 2, desc="brain", suffix="T1w"))}
    wf = init_uspio_wf(
        "ferumoxytol", [0.005, 0.01], [0.005, 0.01], tpl, files, default_config().uspio,
        "sub-01", "ses-01",
    )  # fmt:skip
    blocks = parse_markdown(wf.__desc__)
    tokens = [t for b in blocks for t in b.get("inline", [])]
    text = "".join(t[1] for t in tokens)
    assert "ΔR2* = R2*post − R2*pre" in text
    assert not [t for t in tokens if t[0] == "em" and ("post" in t[1] or "R2" in t[1])]


def test_region_chart_leaves_out_empty_rois_and_reads_in_words(tmp_path):
    """A regional table with an empty ROI (no voxels: NaN) and snake_case names: the chart
    shows the others, in words, with the table's units on its axis."""
    import json as _json

    import pandas as pd

    from pipeline.reports.figures import Figures, _region_chart
    from pipeline.reports.index import parse_name

    folder = tmp_path / "sub-01" / "anat"
    folder.mkdir(parents=True)
    stem = folder / "sub-01_ce-gd_atlas-HarvardOxfordLobes_desc-percent_regions"
    rows = []
    for roi, value in (("meningeal_occipital", 12.0), ("superior_sagittal_sinus", 40.0),
                       ("pituitary_gland", float("nan"))):  # fmt:skip
        for hemi in ("left", "right"):
            rows.append({"roi": roi, "hemisphere": hemi, "metric": "percent", "mean": value,
                         "sd": 1.0, "n_voxels": 0 if value != value else 50})  # fmt:skip
    pd.DataFrame(rows).to_csv(f"{stem}.tsv", sep="\t", index=False, na_rep="n/a")
    Path(f"{stem}.json").write_text(_json.dumps({"Units": "%", "HeadacheSide": "left"}))
    rel, why = _region_chart(Figures(tmp_path, "01"), parse_name(Path(f"{stem}.tsv")))
    assert why is None, why
    svg = (tmp_path / rel).read_text()
    assert "meningeal occipital" in svg and "superior sagittal sinus" in svg
    assert "pituitary" not in svg and "meningeal_occipital" not in svg
    assert "percent [%]" in svg


def test_maps_are_drawn_within_the_head_only():
    """Background noise farther than the margin from the brain is not drawn; the extra-
    cerebral bands (within the margin) are; another grid leaves the map as it is."""
    import nibabel as nb
    import numpy as np

    from pipeline.reports.figures import HEAD_MARGIN_MM, mask_to_head

    aff = np.diag([2.0, 2.0, 2.0, 1.0])
    brain = np.zeros((60, 60, 60), np.uint8)
    brain[20:40, 20:40, 20:40] = 1
    data = np.random.default_rng(0).normal(5, 1, brain.shape).astype(np.float32)
    out = np.asarray(mask_to_head(nb.Nifti1Image(data, aff), nb.Nifti1Image(brain, aff)).dataobj)
    steps = int(HEAD_MARGIN_MM // 2)
    assert (out[20:40, 20:40, 20:40] == data[20:40, 20:40, 20:40]).all()
    assert out[30, 30, 40 + steps - 1] == data[30, 30, 40 + steps - 1]  # a band voxel
    assert (out[:, :, 40 + steps + 1 :] == 0).all() and (out[:2] == 0).all()
    other = nb.Nifti1Image(brain[:50], aff)
    assert np.array_equal(np.asarray(mask_to_head(nb.Nifti1Image(data, aff), other).dataobj), data)


def test_atlas_overlay_has_a_colour_key_that_matches_it(tmp_path):
    """Each atlas region gets one colour in the overlay and the same colour, with its name,
    in the key (names in words; absent labels left out)."""
    import nibabel as nb
    import numpy as np
    import pandas as pd
    from matplotlib.colors import to_hex

    from pipeline.reports.figures import Figures, atlas_colours, legend_figure

    data = np.zeros((10, 10, 10), np.int16)
    data[:5] = 3
    data[5:, :5] = 7
    lut = pd.DataFrame(
        {"index": [3, 7, 9], "name": ["frontal_lobe", "thalamus", "absent"],
         "hemisphere": ["left", "right", "left"]}
    )  # fmt:skip
    img, cmap, entries = atlas_colours(nb.Nifti1Image(data, np.eye(4)), lut)
    out = np.asarray(img.dataobj)
    assert set(np.unique(out)) == {0, 1, 2} and (out[:5] == 1).all()
    assert [(n, h) for n, h, _ in entries] == [("frontal lobe", "left"), ("thalamus", "right")]
    assert [c for *_, c in entries] == [to_hex(cmap(i)) for i in range(cmap.N)]
    src = legend_figure(Figures(tmp_path, "01"), entries, "key.svg", "inflamapLobes regions")
    svg = (tmp_path / src).read_text()
    assert "frontal lobe (left)" in svg and "thalamus (right)" in svg and "absent" not in svg
    for *_, colour in entries:
        assert colour.lower() in svg.lower()


def test_map_mosaics_cut_through_the_largest_effect(tmp_path):
    """A smooth 8 mm blob of +6 in noise, and one stray voxel of +40 elsewhere: every axis
    of the mosaic has a cut through the blob (within a voxel), not through the stray voxel,
    and the other cuts spread over the brain."""
    import nibabel as nb

    from pipeline.reports.cuts import peak_cuts
    from pipeline.reports.figures import Figures, _map_figure

    aff = np.array([[2.0, 0, 0, -60], [0, 2.0, 0, -70], [0, 0, 2.0, -40], [0, 0, 0, 1]])
    shape = (60, 70, 50)
    rng = np.random.default_rng(4)
    data = rng.normal(0, 1, shape).astype(np.float32)
    ijk = np.indices(shape).transpose(1, 2, 3, 0) @ aff[:3, :3].T + aff[:3, 3]
    centre = np.array([24.0, -30.0, 12.0])  # mm
    data += 6 * np.exp(-((ijk - centre) ** 2).sum(-1) / (2 * 4.0**2))
    data[10, 10, 10] = 40.0  # one stray voxel
    brain = np.zeros(shape, np.uint8)
    brain[5:55, 5:65, 5:45] = 1
    img, mask = nb.Nifti1Image(data, aff), nb.Nifti1Image(brain, aff)
    cuts, peak = peak_cuts(img, mask, 4)
    assert np.abs(np.array(peak) - centre).max() <= 2.0, peak
    for i, ax in enumerate("xyz"):
        assert len(cuts[ax]) == 4
        assert min(abs(c - centre[i]) for c in cuts[ax]) <= 2.0, (ax, cuts[ax])
        assert cuts[ax][-1] - cuts[ax][0] > 40  # spread over the brain, not bunched
    # nothing finite: no peak, nilearn's own cuts
    assert peak_cuts(nb.Nifti1Image(np.full(shape, np.nan, np.float32), aff), mask)[1] is None
    figs = Figures(tmp_path, "01")
    src = _map_figure(figs, img, None, "blob.png", "test map", "%", cut_mask=mask)
    assert (tmp_path / src).read_bytes()[:4] == b"\x89PNG"
