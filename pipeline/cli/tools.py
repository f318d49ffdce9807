"""``inflamap-demo`` and ``inflamap-templates``."""

from __future__ import annotations

from pathlib import Path

from ..errors import InputMissingError, UsageError
from .parser import (
    build_demo_parser,
    build_templates_parser,
)
from .progress import _progress


def _tf_home() -> Path:
    from ..templates import templateflow_home

    return templateflow_home()


def run_demo(argv) -> int:
    args = build_demo_parser().parse_args(argv)
    from ..demo import make_demo
    from ..templates import build_offline_home

    build_offline_home(_tf_home())
    try:
        make_demo(
            args.out_dir,
            participants=args.participants,
            resolution=args.resolution,
            seed=args.seed,
            anatomy=args.anatomy,
            progress=_progress,
        )
    except (ValueError, FileExistsError) as exc:
        raise UsageError(str(exc)) from None
    _progress(f"demo written to {args.out_dir} (BIDS: {Path(args.out_dir) / 'bids'})")
    return 0


def run_templates(argv) -> int:
    args = build_templates_parser().parse_args(argv)
    from ..templates import build_offline_home, fetch_templates

    home = _tf_home()
    print(build_offline_home(home))
    if args.fetch:
        from ..templates import TemplateError

        try:
            for f in fetch_templates(args.fetch, args.resolution, home=home):
                print(f)
        except TemplateError as exc:
            raise InputMissingError(str(exc)) from None
    return 0
