"""The input, output and work folders, checked (resolved paths) before anything is written."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import OutputError, UsageError


def _check_paths(args):
    from ..bids import check_bids_root

    # every guard compares resolved paths (symbolic links followed, `..` removed), so no
    # route through a link or a relative path writes into the input dataset
    bids = check_bids_root(args.bids_dir).resolve()
    out = Path(args.output_dir).resolve()
    if out == bids or bids in out.parents:
        raise UsageError(
            f"{args.output_dir}: the output folder must be outside the input "
            "BIDS dataset (the input is never written to)"
        )
    if args.analysis_level == "participant":
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(
                f"{out}: cannot create the output folder ({exc.strerror}); "
                "choose a writable location"
            ) from None
    if out.exists() and not os.access(out, os.W_OK | os.X_OK):
        raise OutputError(
            f"{out}: output folder is not writable; fix its permissions or choose another"
        )
    work = (Path(args.work_dir) if args.work_dir else Path.cwd() / "work").resolve()
    if work == out or out in work.parents:
        raise UsageError(f"{work}: the work folder must not be inside the output folder")
    if work == bids or bids in work.parents:
        raise UsageError(f"{work}: the work folder must not be inside the input dataset")
    if args.analysis_level == "participant" and not args.reports_only:
        try:
            work.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(
                f"{work}: cannot create the work folder ({exc.strerror}); "
                "choose a writable location with -w"
            ) from None
        if not os.access(work, os.W_OK | os.X_OK):
            raise OutputError(
                f"{work}: work folder is not writable; fix its permissions or "
                "choose another with -w"
            )
    return bids, out, work
