"""Entry points: ``inflamap`` (BIDS-App), ``inflamap-demo``, ``inflamap-templates``,
``inflamap-dicom``."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import uuid
from pathlib import Path

from .. import log
from ..errors import InflamapError, UsageError
from .parser import (
    DEFAULT_RANDOM_SEED,
    build_parser,
    check_resources,
)
from .participant import (
    run_participant,
)
from .paths import _check_paths
from .plugin import (
    _allocated_cpus,
    _plugin,
)
from .progress import _progress
from .signals import Terminated, handle_signals
from .tools import run_demo, run_dicom, run_templates

#: the tools that have console scripts of their own (``inflamap-demo``, ``inflamap-templates``)
TOOLS = {"demo": "run_demo", "templates": "run_templates"}


def _is_bids_app_call(argv) -> bool:
    """``BIDS_DIR OUTPUT_DIR participant|group ...``: also when BIDS_DIR is named ``demo``."""
    positional = [a for a in argv if not a.startswith("-")]
    return len(positional) >= 3 and positional[2] in ("participant", "group")


def main(argv=None) -> int:
    """``inflamap BIDS_DIR OUTPUT_DIR participant|group [options]``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in TOOLS and not _is_bids_app_call(argv):
        # the old spelling of the tools (kept working)
        print(f"inflamap: note: 'inflamap {argv[0]}' is now 'inflamap-{argv[0]}'", file=sys.stderr)
        return _guarded(globals()[TOOLS[argv[0]]], argv[1:])
    return _guarded(_main, argv)


def demo_main(argv=None) -> int:
    """``inflamap-demo DIR [--participants N] [--resolution MM] [--seed S]``."""
    return _guarded(run_demo, list(sys.argv[1:] if argv is None else argv))


def dicom_main(argv=None) -> int:
    """``inflamap-dicom dce|spect ...`` (DICOM to inflamap's DCE/SPECT convention)."""
    return _guarded(run_dicom, list(sys.argv[1:] if argv is None else argv))


def templates_main(argv=None) -> int:
    """``inflamap-templates [--fetch TEMPLATE ...] [--resolution R]``."""
    return _guarded(run_templates, list(sys.argv[1:] if argv is None else argv))


def _guarded(fn, argv) -> int:
    """Run ``fn(argv)``: documented errors as one line and their exit code, signals as
    130/143, the caller's signal handlers restored."""
    import signal

    on_main = threading.current_thread() is threading.main_thread()
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)} if on_main else {}
    log.start_run()
    try:
        return fn(argv)
    except InflamapError as exc:
        print(f"inflamap: error: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print("inflamap: interrupted", file=sys.stderr)
        return 130
    except Terminated as exc:
        print(f"inflamap: {exc.describe()}", file=sys.stderr)
        return exc.code
    finally:  # an in-process caller (tests, notebooks) gets its handlers back
        log.close_file()
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def _main(argv) -> int:
    args = build_parser().parse_args(argv)
    check_resources(args)
    if threading.current_thread() is threading.main_thread():
        handle_signals()
    # --omp-nthreads caps ITK, OpenMP and BLAS threads before numpy loads, here and in the
    # processes the run starts (nipype's workers, SLURM jobs)
    from ..resources import limit_threads

    limit_threads(args.omp_nthreads or min(8, args.nprocs or _allocated_cpus()))
    from ..bids import check_filters, clean_labels, get_layout, scan_dataset, validate
    from ..config import ConfigError, Settings, load_workflow_config

    # options and configuration first: a mistake there ends the run before any folder is made
    try:
        workflow_cfg = load_workflow_config(
            args.config,
            overrides={"anat": {"qc": {"fail": False}}} if args.ignore_qc_failures else None,
        )
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    filters = {}
    if args.bids_filter_file:
        try:
            filters = json.loads(Path(args.bids_filter_file).read_text())
        except (OSError, ValueError) as exc:
            raise UsageError(
                f"{args.bids_filter_file}: not a readable JSON filter file ({exc})"
            ) from None
        filters = check_filters(filters, args.bids_filter_file)
    participant_label = clean_labels(args.participant_label)
    session_label = clean_labels(args.session_label, "session")
    if args.random_seed is not None and not 0 < args.random_seed < 2**31:
        raise UsageError(
            f"--random-seed {args.random_seed}: must be an integer from 1 to "
            f"{2**31 - 1} (ANTs' seed is a 32-bit integer)"
        )
    bids, out, work = _check_paths(args)
    settings = Settings(workflow=workflow_cfg)
    ex = settings.execution
    ex.bids_dir, ex.output_dir, ex.analysis_level = str(bids), str(out), args.analysis_level
    ex.work_dir = str(work)
    ex.participant_label = participant_label
    ex.session_label = session_label
    ex.bids_filters = filters
    if args.derivatives:
        from ..bids.reuse import check_derivatives_roots

        ex.derivatives = [
            str(r) for r in check_derivatives_roots(args.derivatives, bids, out, work)
        ]
    ex.skip_bids_validation = args.skip_bids_validation
    ex.stop_on_first_crash = args.stop_on_first_crash
    ex.verbosity = args.verbose
    log.setup(args.verbose)
    ex.run_uuid = f"{time.strftime('%Y%m%d-%H%M%S')}_{uuid.uuid4().hex[:8]}"
    if args.random_seed is not None:
        os.environ["ANTS_RANDOM_SEED"] = str(args.random_seed)
    else:  # inherited by nipype's workers and by SLURM jobs (sbatch exports the environment)
        os.environ.setdefault("ANTS_RANDOM_SEED", str(DEFAULT_RANDOM_SEED))
    _plugin(args, settings)
    if args.reports_only:  # before validation: reads OUTPUT_DIR only
        if args.analysis_level != "participant":
            raise UsageError(
                "--reports-only regenerates the participant reports; use it with 'participant'"
            )
        from ..reports.participant import run_reports_only

        return run_reports_only(out, ex.participant_label, progress=_progress)
    # nothing that could make the validator or pybids hang (FIFOs, devices, link loops)
    scan_dataset(bids)
    if not args.skip_bids_validation:
        _progress("validating the input dataset (bids-validator-deno)")
        ex.validator_warnings = validate(bids)
        for line in ex.validator_warnings:
            _progress(f"BIDS validator warning: {line}")
    if args.analysis_level == "group":
        from ..group import run_group

        return run_group(settings)
    layout = get_layout(bids)
    return run_participant(args, settings, layout, work)
