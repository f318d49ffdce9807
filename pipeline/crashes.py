"""nipype crash files: the one reader (run summary, participant report, group level).

nipype writes a crash file per failed step into ``OUTPUT_DIR/logs/sub-<label>/``
(``crash-<YYYYMMDD>-<HHMMSS>-<user>-<node>-<uuid>.txt``, or ``.pklz``). :func:`read_crash`
gives the step, the exception that ended it (the first exception line after the innermost
traceback frame, with its continuation lines) and when it was written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_EXCEPTION_LINE = re.compile(r"^\s*([A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)): ?(.*)$")
_WHEN = re.compile(r"crash-(\d{8})-(\d{6})")


@dataclass(frozen=True)
class Crash:
    """What a crash file says."""

    path: Path
    node: str | None  #: the step (``Node:``)
    error: str | None  #: ``ExceptionType: message`` (at most 300 characters of message)
    when: str  #: ``YYYY-MM-DD HH:MM:SS`` from the file name, or ""
    mtime: float


def _error(lines: list) -> str | None:
    frames = [i for i, line in enumerate(lines) if line.strip().startswith('File "')]
    start = frames[-1] + 1 if frames else 0
    for i in range(start, len(lines)):
        m = _EXCEPTION_LINE.match(lines[i])
        if m:
            parts = [m.group(3).strip()]
            for more in lines[i + 1 : i + 4]:  # a message continued on the next lines
                if not more.strip() or more.strip().startswith(("Traceback", 'File "')):
                    break
                parts.append(more.strip())
            text = " ".join(p for p in parts if p)
            return f"{m.group(1)}: {text[:300]}".rstrip(": ")
    last = next((line.strip() for line in reversed(lines) if line.strip()), None)
    return last


def read_crash(path) -> Crash:
    """The step, error and time of one crash file (text or pickled); never raises for an
    unreadable file (its fields are then None)."""
    path = Path(path)
    node, lines = None, []
    if path.suffix == ".pklz":
        try:
            from nipype.utils.filemanip import loadcrash

            crash = loadcrash(str(path))
            node = str(crash.get("node", "")) or None
            lines = "".join(crash.get("traceback", [])).splitlines()
        except Exception:  # noqa: BLE001, S110 - a damaged pickle: nothing to say
            pass
    else:
        try:
            lines = path.read_text(errors="replace").splitlines()
        except OSError:
            lines = []
        node = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("Node:")), None)
    m = _WHEN.match(path.name)
    when = ""
    if m:
        d, t = m.groups()
        when = f"{d[:4]}-{d[4:6]}-{d[6:]} {t[:2]}:{t[2:4]}:{t[4:]}"
    try:
        mtime = path.stat().st_mtime
    except OSError:
        mtime = 0.0
    return Crash(
        path=path, node=node, error=_error(lines) if lines else None, when=when, mtime=mtime
    )


def crash_files(out_dir, participant: str) -> list[Path]:
    """A participant's crash files (``participant``: ``sub-<label>`` or the label), oldest
    name first."""
    label = str(participant).removeprefix("sub-")
    folder = Path(out_dir) / "logs" / f"sub-{label}"
    return sorted(folder.glob("crash-*")) if folder.is_dir() else []


__all__ = ["Crash", "crash_files", "read_crash"]
