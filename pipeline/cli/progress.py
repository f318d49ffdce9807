"""Progress lines on standard error, with the time since the process started."""

from __future__ import annotations

import sys
import time

_START = time.time()  # the process start: progress lines show the time since


def _progress(msg):
    el = time.time() - _START
    print(f"[inflamap {int(el // 60):02d}:{el % 60:04.1f}] {msg}", file=sys.stderr, flush=True)
