"""One logging set-up for inflamap.

Every message goes through the ``inflamap`` logger hierarchy — ``inflamap.cli`` (the run:
progress, preflight, participants), ``inflamap.workflow`` (the participant workflows),
``inflamap.report`` (reports), ``inflamap.group`` (the group level) — and comes out as one
line ``[inflamap MM:SS.s] message`` on standard error (time since the process started),
and, once :func:`log_to_file` is called, in a log file too (with everything logged before,
so the file holds the whole run).

nipype's own loggers keep their configuration (``-v`` raises them).
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
from pathlib import Path

START = time.time()
ROOT = "inflamap"
#: records kept in memory until :func:`log_to_file` opens the file (then replayed)
MAX_BUFFERED = 20_000


class _Format(logging.Formatter):
    def format(self, record):
        el = record.created - START
        text = f"[inflamap {int(el // 60):02d}:{el % 60:04.1f}] {record.getMessage()}"
        if record.levelno >= logging.WARNING:
            text = text.replace("] ", f"] {record.levelname.lower()}: ", 1)
        return text


#: the progress bar shown on the last line of a terminal (None: no bar); ``shared``: another
#: process draws it (participants side by side), so every line first clears the last line
_BAR = {"text": None, "shared": False}
CLEAR_LINE = "\r\x1b[K"


def bar_enabled() -> bool:
    """A progress bar only on an interactive terminal: not when standard error is a file or
    a pipe, not under SLURM (its output files are not terminals), not with ``TERM=dumb`` or
    ``INFLAMAP_PLAIN_PROGRESS`` set; plain lines then."""
    try:
        tty = sys.stderr.isatty()
    except (AttributeError, ValueError):
        tty = False
    return (
        tty
        and not os.environ.get("SLURM_JOB_ID")
        and os.environ.get("TERM", "") != "dumb"
        and not os.environ.get("INFLAMAP_PLAIN_PROGRESS")
    )


def show_bar(text: str) -> None:
    """Draw (or redraw) the progress bar on the last line of the terminal."""
    width = max(20, shutil.get_terminal_size((100, 20)).columns - 1)
    _BAR["text"] = text[:width]
    sys.stderr.write(CLEAR_LINE + _BAR["text"])
    sys.stderr.flush()


def share_terminal() -> None:
    """This process writes lines under a bar another process draws (it redraws the bar)."""
    _BAR["shared"] = True


def clear_bar() -> None:
    """Remove the bar (before the lines that follow a participant)."""
    if _BAR["text"] is not None:
        sys.stderr.write(CLEAR_LINE)
        sys.stderr.flush()
    _BAR["text"] = None


def to_file(name: str, msg: str) -> None:
    """A line for the run's log file only (the step lines a terminal shows as a bar)."""
    logger = logging.getLogger(f"{ROOT}.{name}")
    record = logger.makeRecord(logger.name, logging.INFO, __file__, 0, msg, None, None)
    for h in logging.getLogger(ROOT).handlers:
        if not isinstance(h, _Stderr):
            h.handle(record)


class _Stderr(logging.StreamHandler):
    """Standard error as it is when a record is written (so a caller, or pytest, that
    replaced ``sys.stderr`` gets the lines); a progress bar on the last line is cleared
    before a line and drawn again after it."""

    def __init__(self):
        super().__init__(sys.stderr)

    def emit(self, record):
        bar = _BAR["text"]
        if bar is not None or _BAR["shared"]:
            sys.stderr.write(CLEAR_LINE)
        super().emit(record)
        if bar is not None:
            sys.stderr.write(bar)
            sys.stderr.flush()

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):  # logging.StreamHandler sets it in __init__
        pass


class _Buffer(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records = []

    def emit(self, record):
        if len(self.records) < MAX_BUFFERED:
            self.records.append(record)


def setup(verbosity: int = 0) -> logging.Logger:
    """Configure the ``inflamap`` loggers (idempotent): INFO (DEBUG with ``-vv``) to
    standard error, and a buffer for the log file."""
    logger = logging.getLogger(ROOT)
    if not getattr(logger, "_inflamap_setup", False):
        stderr = _Stderr()
        stderr.setFormatter(_Format())
        logger.addHandler(stderr)
        logger.addHandler(_Buffer())
        logger.propagate = False
        logger._inflamap_setup = True
    logger.setLevel(logging.DEBUG if verbosity > 1 else logging.INFO)
    return logger


def get(name: str) -> logging.Logger:
    """The logger ``inflamap.<name>`` (the set-up made on first use)."""
    setup_done = getattr(logging.getLogger(ROOT), "_inflamap_setup", False)
    if not setup_done:
        setup()
    return logging.getLogger(f"{ROOT}.{name}")


def start_run(verbosity: int = 0) -> None:
    """A new run in this process: no log file yet, an empty buffer (the file of this run
    gets this run's lines only)."""
    setup(verbosity)
    close_file()
    for h in logging.getLogger(ROOT).handlers:
        if isinstance(h, _Buffer):
            h.records.clear()


def log_to_file(path) -> Path:
    """Also write every record, from the start of the process, to ``path``."""
    logger = (
        setup(0)
        if not getattr(logging.getLogger(ROOT), "_inflamap_setup", False)
        else (logging.getLogger(ROOT))
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(_Format())
    for h in list(logger.handlers):
        if isinstance(h, _Buffer):
            for record in h.records:
                handler.handle(record)
            logger.removeHandler(h)
        elif isinstance(h, logging.FileHandler):
            logger.removeHandler(h)
            h.close()
    logger.addHandler(handler)
    return path


def file_only(text: str) -> None:
    """Lines printed in a fixed format elsewhere (the run's failure summary), also in the
    log file."""
    for h in logging.getLogger(ROOT).handlers:
        if isinstance(h, logging.FileHandler) and h.stream is not None:
            h.stream.write(text.rstrip("\n") + "\n")
            h.flush()


def close_file() -> None:
    """Stop writing the log file (a later run in the same process opens its own)."""
    logger = logging.getLogger(ROOT)
    for h in list(logger.handlers):
        if isinstance(h, logging.FileHandler):
            logger.removeHandler(h)
            h.close()
    if not any(isinstance(h, _Buffer) for h in logger.handlers):
        logger.addHandler(_Buffer())


__all__ = ["close_file", "file_only", "get", "log_to_file", "setup", "start_run"]
