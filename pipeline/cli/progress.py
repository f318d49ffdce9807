"""Progress lines: the ``inflamap.cli`` logger (:mod:`pipeline.log`)."""

from __future__ import annotations

from .. import log


def _progress(msg):
    log.get("cli").info(msg)
