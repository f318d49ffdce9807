"""Participant report: ``OUTPUT_DIR/sub-<label>.html`` with figures in
``OUTPUT_DIR/sub-<label>/figures/``.

Everything is read from the derivatives on disk (so ``--reports-only`` and the end of a
participant run share this code): per session and modality found, registration overlays,
quantitative maps with colour bars in native and template space, regional bar charts with
ipsi/contra, QC metrics from the JSON sidecars (plus a few computed here: registration
similarity, SNR), the participant's crash files at the top and the methods boilerplate
written at run time (:mod:`pipeline.reports.boilerplate`). A missing modality simply has no
section; a participant with only a T1w still gets a report.

Figures: nilearn and Matplotlib (Agg); HTML: the Jinja2 template
``templates/participant.html.j2``.

.. autofunction:: build_participant_report"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
import warnings
from pathlib import Path

from pipeline import log

from .anat_section import AnatSection
from .classify import new_section
from .figures import (
    Figures,
)
from .index import (
    _sessions,
    summarise_crashes,
)
from .modality_sections import ModalitySections

LOG = log.get("report")


TEMPLATES = Path(__file__).parent / "templates"


MAX_REPORT_BYTES = 20 * 1024 * 1024


class _Builder(AnatSection, ModalitySections):
    def __init__(self, out_dir: Path, label: str, figs: Figures, tmpdir: str):
        self.out_dir, self.label, self.figs, self.tmpdir = out_dir, label, figs, tmpdir
        self.warnings = []
        self.cut_masks = {}  # space -> mask whose extent sets the cuts of its figures
        self.qc_failures = []  # sessions whose registration QC failed (kept, flagged)

    def _try(self, what, fn, *args, **kwargs):
        """Run a figure/metric function; a failure becomes a note in the report."""
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - one bad file must not lose the report
            LOG.warning("report sub-%s: %s failed: %s", self.label, what, exc)
            self.warnings.append(f"{what}: {type(exc).__name__}: {exc}")
            return None


def participant_labels(out_dir) -> list[str]:
    """Participants with derivatives or logs in ``out_dir``."""
    out = Path(out_dir)
    labels = {p.name[4:] for p in out.glob("sub-*") if p.is_dir()}
    labels |= {p.name[4:] for p in (out / "logs").glob("sub-*") if p.is_dir()}
    return sorted(labels)


def _clear_figures(folder: Path):
    if not folder.is_dir():
        return
    for p in folder.iterdir():
        if p.is_file() and p.suffix in (".png", ".svg"):
            p.unlink()


def build_participant_report(
    output_dir, subject: str, errors=(), run_started=None, dpi: int = 72
) -> Path:
    """Write ``OUTPUT_DIR/sub-<label>.html`` and its figures from the derivatives on disk.

    Parameters
    ----------
    output_dir : path
        the derivatives root
    subject : str
        participant label, with or without ``sub-``
    errors : iterable of str
        further errors to show at the top (e.g. a workflow that could not be built)
    run_started : float or None
        start of the current run (``time.time()``): older crash files are marked as from
        an earlier run
    dpi : int
        resolution of the PNG figures
    """
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    from pipeline import __version__
    from pipeline.utils import atomic_write_text

    from .boilerplate import boilerplate_path, parse_markdown

    t0 = time.time()
    out = Path(output_dir).absolute()
    label = str(subject).removeprefix("sub-")
    figs = Figures(out, label, dpi=dpi)
    _clear_figures(figs.folder)
    figs.folder.mkdir(parents=True, exist_ok=True)
    sessions = _sessions(out, label)
    by_label = {s.label: s for s in sessions}
    ctx_sessions = []
    with (
        tempfile.TemporaryDirectory(prefix="inflamap_report_") as tmpdir,
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")  # nilearn's notes (empty masks...) on every figure
        b = _Builder(out, label, figs, tmpdir)
        for ses in sessions:
            anat = b._try("anatomy section", b.anat_section, ses) or new_section(
                "anat", notes=["failed: see notes"]
            )
            res = b._try("modality sections", b.modality_sections, ses, by_label)
            mods, anat_tables = res if res else ([], [])
            for tsv in anat_tables:
                b._chart(anat, tsv)
            ctx_sessions.append(
                {
                    "label": ses.label,
                    "id": f"ses-{ses.label}" if ses.label else "nosession",
                    "title": f"Session {ses.label}" if ses.label else "Session",
                    "sections": [anat, *mods],
                }
            )
    crashes = summarise_crashes(out, label, since=run_started)
    from pipeline.bids import VALIDATOR_WARNINGS

    vfile = out / VALIDATOR_WARNINGS
    validator = vfile.read_text().splitlines() if vfile.is_file() else None
    bp = boilerplate_path(out, label)
    boiler = None
    if bp.is_file():
        boiler = {"blocks": parse_markdown(bp.read_text()), "file": bp.relative_to(out).as_posix()}
    fig_bytes = sum(p.stat().st_size for p in figs.written if p.exists())
    elapsed = time.time() - t0
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    html = env.get_template("participant.html.j2").render(
        subject=label,
        version=__version__,
        generated=time.strftime("%Y-%m-%d %H:%M:%S"),
        crashes=crashes,
        errors=[*b.qc_failures, *errors],
        warnings=b.warnings if sessions else [],
        validator=validator,
        sessions=ctx_sessions,
        boilerplate=boiler,
        n_figures=len(figs.written),
        figure_mb=f"{fig_bytes / 1e6:.1f}",
        seconds=f"{elapsed:.0f}",
    )
    path = out / f"sub-{label}.html"
    atomic_write_text(html, path)
    total = fig_bytes + path.stat().st_size
    if total > MAX_REPORT_BYTES:
        LOG.warning(
            "report of sub-%s is %.1f MB (over 20 MB): lower the figure dpi", label, total / 1e6
        )
    if not figs.written and figs.folder.is_dir() and not any(figs.folder.iterdir()):
        shutil.rmtree(figs.folder, ignore_errors=True)
    return path


def report_after_run(output_dir, subject: str, errors=(), since=None, progress=print):
    """Write a participant's report at the end of its run; never raises (a report failure
    is printed, the run's exit code is the workflow's)."""
    t0 = time.time()
    try:
        path = build_participant_report(output_dir, subject, errors=errors, run_started=since)
    except Exception as exc:  # noqa: BLE001 - the report must not fail the run
        progress(
            f"sub-{str(subject).removeprefix('sub-')}: report FAILED: {type(exc).__name__}: {exc}"
        )
        return None
    size = report_size(path)
    progress(
        f"sub-{str(subject).removeprefix('sub-')}: report {path} "
        f"({size / 1e6:.1f} MB, {time.time() - t0:.0f} s)"
    )
    return path


def report_size(html_path) -> int:
    """Bytes of a report and of the figures it references."""
    html_path = Path(html_path)
    total = html_path.stat().st_size
    text = html_path.read_text()
    sources = re.findall(r'<img[^>]+src="([^"]+)"', text)
    sources += re.findall(r'<object[^>]+data="([^"]+)"', text)  # the before/after views
    for src in set(sources):
        p = html_path.parent / src
        if p.is_file():
            total += p.stat().st_size
    return total


def run_reports_only(output_dir, labels=(), progress=print) -> int:
    """``--reports-only``: regenerate the reports of ``labels`` (default: every participant
    with derivatives or logs) from the derivatives on disk; nothing is recomputed.
    Returns the exit code (66 when there is nothing to report on)."""
    from pipeline.errors import InputMissingError

    out = Path(output_dir)
    if not out.is_dir():
        raise InputMissingError(
            f"{out}: output folder not found; --reports-only needs the "
            "derivatives of an earlier participant run"
        )
    found = participant_labels(out)
    labels = [str(lb).removeprefix("sub-") for lb in labels] or found
    missing = [lb for lb in labels if lb not in found]
    if missing:
        raise InputMissingError(
            f"{out}: no derivatives or logs for "
            + ", ".join(f"sub-{m}" for m in missing)
            + "; run the participant level first"
        )
    if not labels:
        raise InputMissingError(f"{out}: no sub-<label> folders: nothing to report on")
    failed = 0
    for label in labels:
        if report_after_run(out, label, progress=progress) is None:
            failed += 1
    return 1 if failed else 0
