"""Progress lines: the ``inflamap.cli`` logger (:mod:`pipeline.log`)."""

from __future__ import annotations

from .. import log


def _progress(msg):
    log.get("cli").info(msg)


def _bar(done: int, total: int, width: int = 24) -> str:
    filled = int(round(width * done / total)) if total else 0
    return "█" * filled + "·" * (width - filled)


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}" if m >= 60 else f"{m}:{s:02d}"
