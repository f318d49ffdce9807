"""Methods boilerplate: what ran for a participant, with software versions and references.

The text is niworkflows' ``LiterateWorkflow.visit_desc()`` of the participant's workflow, so
it holds the ``__desc__`` of exactly the workflows that were built for that participant (a
participant without DCE has no DCE paragraph). ``[@key]`` citations are resolved from
:data:`pipeline.reports.references.REFERENCES`. It is written at run time, before the
workflow runs, to ``OUTPUT_DIR/logs/sub-<label>/boilerplate.md``, and the participant report
shows it.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

from pipeline.interfaces.ants import ants_version

from .references import REFERENCES

CITATION = re.compile(r"\[(@[\w:.-]+(?:\s*;\s*@[\w:.-]+)*)\]")
BOILERPLATE_NAME = "boilerplate.md"


def boilerplate_path(output_dir, subject: str) -> Path:
    """``OUTPUT_DIR/logs/sub-<label>/boilerplate.md``."""
    label = str(subject).removeprefix("sub-")
    return Path(output_dir) / "logs" / f"sub-{label}" / BOILERPLATE_NAME


def _dist_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def software_versions() -> dict:
    """Versions of the software a participant run uses (name → version)."""
    from pipeline import __version__

    return {
        "inflamap": __version__,
        "Python": sys.version.split()[0],
        "Nipype": _dist_version("nipype"),
        "NiWorkflows": _dist_version("niworkflows"),
        "ANTs": ants_version(),
        "antspyx": _dist_version("antspyx"),
        "TemplateFlow": _dist_version("templateflow"),
        "NiBabel": _dist_version("nibabel"),
        "NumPy": _dist_version("numpy"),
        "SciPy": _dist_version("scipy"),
        "pandas": _dist_version("pandas"),
        "nilearn": _dist_version("nilearn"),
        "Matplotlib": _dist_version("matplotlib"),
        "Jinja2": _dist_version("jinja2"),
    }


def _uses_ants(workflow) -> bool:
    """Whether any node of ``workflow`` runs an ANTs program (in-process or not)."""
    for node in workflow._get_all_nodes():  # noqa: SLF001 - nipype has no public walker
        iface = getattr(node, "interface", None)
        mod = type(iface).__module__ if iface is not None else ""
        if mod.startswith(("pipeline.interfaces.ants", "nipype.interfaces.ants")):
            return True
        if type(iface).__name__ == "MapNode" or hasattr(iface, "_interface"):
            inner = getattr(iface, "_interface", None)
            if inner is not None and type(inner).__module__.startswith(
                ("pipeline.interfaces.ants", "nipype.interfaces.ants")
            ):
                return True
    return False


def workflow_descriptions(workflow) -> list[str]:
    """The ``__desc__`` texts of ``workflow`` and its sub-workflows, in the order and with
    the de-duplication of niworkflows' ``LiterateWorkflow.visit_desc`` (which joins them
    without a break; here each stays a paragraph of its own)."""
    from nipype.pipeline.engine.utils import topological_sort

    out = []

    def visit(wf):
        desc = getattr(wf, "__desc__", None)
        if desc and desc.strip() not in out:
            out.append(desc.strip())
        for node in topological_sort(wf._graph)[0]:  # noqa: SLF001 - as visit_desc does
            if hasattr(node, "visit_desc"):
                visit(node)
        post = getattr(wf, "__postdesc__", None)
        if post and post.strip() not in out:
            out.append(post.strip())

    visit(workflow)
    return out


def resolve_citations(text: str) -> tuple[str, list[str], list[str]]:
    """Replace ``[@a]``/``[@a; @b]`` by author–year; return the text, the keys used (in
    order of first use) and the unresolved keys."""
    used, missing = [], []

    def repl(m):
        parts = []
        for key in (k.strip()[1:] for k in m.group(1).split(";")):
            if key not in used:
                used.append(key)
            ref = REFERENCES.get(key)
            if ref is None:
                if key not in missing:
                    missing.append(key)
                parts.append(f"{key}?")
            else:
                parts.append(ref["short"])
        return "(" + "; ".join(parts) + ")"

    return CITATION.sub(repl, text), used, missing


def make_boilerplate(
    workflow, subject: str, template: str | None = None, versions: dict | None = None
) -> str:
    """Markdown of the methods of one participant's workflow (not yet run)."""
    label = str(subject).removeprefix("sub-")
    versions = versions or software_versions()
    desc = "\n\n".join(workflow_descriptions(workflow))
    n_steps = len(workflow.list_node_names())
    uses_ants = _uses_ants(workflow)
    soft = (
        f"*inflamap* {versions['inflamap']} ran {n_steps} processing steps on Nipype "
        f"{versions['Nipype']} [@nipype1] with NiWorkflows {versions['NiWorkflows']}"
    )
    if uses_ants:
        soft += (
            f"; ANTs {versions['ANTs']} (compiled into antspyx {versions['antspyx']}, "
            "run in-process) performed the ANTs steps [@ants]"
        )
    soft += (
        f"; templates came from TemplateFlow {versions['TemplateFlow']} [@templateflow]"
        + (f" (template *{template}*)" if template else "")
        + f". Images were read and written with NiBabel {versions['NiBabel']}, and "
        f"computations used NumPy {versions['NumPy']}, SciPy {versions['SciPy']} and "
        f"pandas {versions['pandas']} (Python {versions['Python']}). The report figures "
        f"were made with nilearn {versions['nilearn']} [@nilearn] and Matplotlib "
        f"{versions['Matplotlib']}."
    )
    body = f"{desc}\n\n## Software\n\n{soft}\n"
    body, used, missing = resolve_citations(body)
    lines = [
        f"# Methods: sub-{label}",
        "",
        f"*Generated by inflamap {versions['inflamap']} on "  # noqa: ISC004
        f"{time.strftime('%Y-%m-%d %H:%M:%S')} from the workflows built for this "
        "participant: every step named here was scheduled to run, and no other.*",
        "",
        body.rstrip(),
        "",
        "## References",
        "",
    ]
    for key in used:
        ref = REFERENCES.get(key)
        if ref is not None:
            lines.append(f"- {ref['full']}")
    if missing:
        lines += [
            "",
            "Unresolved citation keys (not in pipeline/reports/references.py): "
            + ", ".join(f"`{k}`" for k in missing),
        ]
    return "\n".join(lines) + "\n"


def write_boilerplate(workflow, subject: str, output_dir, template: str | None = None) -> Path:
    """Write ``OUTPUT_DIR/logs/sub-<label>/boilerplate.md`` (atomically) and return it."""
    from pipeline.utils import atomic_write_text

    path = boilerplate_path(output_dir, subject)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(make_boilerplate(workflow, subject, template), path)
    return path


def boilerplate_for_run(
    workflow, subject: str, output_dir, template: str | None = None, progress=print
):
    """:func:`write_boilerplate` for the CLI: a failure is printed, never raised."""
    try:
        return write_boilerplate(workflow, subject, output_dir, template)
    except Exception as exc:  # noqa: BLE001 - the methods text must not stop the run
        progress(
            f"sub-{str(subject).removeprefix('sub-')}: methods boilerplate FAILED: "
            f"{type(exc).__name__}: {exc}"
        )
        return None


_INLINE = re.compile(r"(\\[\\`*_])|(`[^`]+`)|(\*\*[^*]+\*\*)|(\*[^*\s][^*]*\*)")


def _inline(text: str) -> list[tuple[str, str]]:
    """Tokens ``(kind, text)`` of a line of the boilerplate's Markdown subset; ``\\*``,
    ``\\_``, ``\\``` and ``\\\\`` are the characters themselves (``R2\\*`` is R2*, not the
    start of an emphasis)."""
    out, pos = [], 0

    def text_token(chunk):
        if out and out[-1][0] == "text":
            out[-1] = ("text", out[-1][1] + chunk)
        else:
            out.append(("text", chunk))

    for m in _INLINE.finditer(text):
        if m.start() > pos:
            text_token(text[pos : m.start()])
        tok = m.group(0)
        if m.group(1):
            text_token(tok[1])
        elif m.group(2):
            out.append(("code", tok[1:-1]))
        elif m.group(3):
            out.append(("strong", tok[2:-2]))
        else:
            out.append(("em", tok[1:-1]))
        pos = m.end()
    if pos < len(text):
        text_token(text[pos:])
    return out


def parse_markdown(text: str) -> list[dict]:
    """Blocks of the boilerplate's Markdown (headings, paragraphs, ``-`` lists) for the
    report's template; inline code and emphasis become tokens (the template escapes)."""
    blocks = []
    for chunk in re.split(r"\n\s*\n", text.strip()):
        lines = [ln.rstrip() for ln in chunk.splitlines() if ln.strip()]
        if not lines:
            continue
        head = re.match(r"^(#{1,6})\s+(.*)$", lines[0])
        if head and len(lines) == 1:
            blocks.append(
                {"type": "heading", "level": len(head.group(1)), "inline": _inline(head.group(2))}
            )
        elif lines[0].lstrip().startswith("- "):
            items = []
            for ln in lines:
                if ln.lstrip().startswith("- "):
                    items.append(ln.lstrip()[2:])
                elif items:
                    items[-1] += " " + ln.strip()
            blocks.append({"type": "list", "items": [_inline(i) for i in items]})
        else:
            blocks.append(
                {"type": "paragraph", "inline": _inline(" ".join(ln.strip() for ln in lines))}
            )
    return blocks
