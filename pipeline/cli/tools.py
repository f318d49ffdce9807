"""``inflamap-demo``, ``inflamap-templates`` and ``inflamap-dicom``."""

from __future__ import annotations

from pathlib import Path

from ..errors import InputMissingError, UsageError
from .parser import (
    build_demo_parser,
    build_dicom_parser,
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
    from .plugin import _allocated_cpus

    nprocs = _allocated_cpus() if args.nprocs is None else args.nprocs
    if nprocs < 1:
        raise UsageError(f"--nprocs {args.nprocs}: must be at least 1")
    if args.anatomy != "colin27":  # the template phantom is drawn from the template
        build_offline_home(_tf_home())
        _make_demo(make_demo, args, {})
    else:  # the reference head does not need the template: its home is built alongside
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        from ..demo.common import demo_folders

        try:  # a wrong request ends before any work starts
            demo_folders(args.out_dir, args.participants, args.resolution)
        except (ValueError, FileExistsError) as exc:
            raise UsageError(str(exc)) from None
        with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as side:
            home = side.submit(build_offline_home, _tf_home())
            _make_demo(make_demo, args, {"n_procs": nprocs})
            home.result()
    _progress(f"demo written to {args.out_dir} (BIDS: {Path(args.out_dir) / 'bids'})")
    return 0


def _make_demo(make_demo, args, extra: dict):
    try:
        make_demo(
            args.out_dir,
            participants=args.participants,
            resolution=args.resolution,
            seed=args.seed,
            anatomy=args.anatomy,
            progress=_progress,
            **extra,
        )
    except (ValueError, FileExistsError) as exc:
        raise UsageError(str(exc)) from None


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


def run_dicom(argv) -> int:
    """``inflamap-dicom dce|spect ...``: DICOM into inflamap's DCE/SPECT convention."""
    from ..dicom import dce_to_bids, spect_to_bids

    args = build_dicom_parser().parse_args(argv)
    if args.kind == "dce":
        out = dce_to_bids(
            args.dicom_dir,
            args.bids_dir,
            args.subject,
            args.session,
            args.agent,
            injection_time=args.injection_time,
            injection_frame=args.injection_frame,
        )
        print(out)
    else:
        for out in spect_to_bids(
            args.early_dir,
            args.late_dir,
            args.bids_dir,
            args.subject,
            args.session,
            args.tracer,
            radionuclide=args.radionuclide,
            injection_time=args.injection_time,
        ):
            print(out)
    return 0
