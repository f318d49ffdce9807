"""Argument parsers of ``inflamap`` and its tools, and the checks of the resource options."""

from __future__ import annotations

import argparse
import sys

from .. import __version__
from ..errors import EX_USAGE, UsageError

# ANTs seeds its random sampling from the clock unless told: a fixed default keeps a resumed
# run (some steps cached, some rerun) equal to an uninterrupted one
DEFAULT_RANDOM_SEED = 42


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # usage errors exit 64 (EX_USAGE), not argparse's 2
        self.print_usage(sys.stderr)
        self.exit(EX_USAGE, f"inflamap: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="inflamap",
        description=(
            "inflamap: neuroinflammation maps in migraine from MRI and PET (a BIDS-App). "
            "Also: 'inflamap-demo DIR' writes the demo dataset; 'inflamap-templates' prepares "
            "TemplateFlow for offline use."
        ),
    )
    p.add_argument("bids_dir", help="root of the input BIDS dataset (never modified)")
    p.add_argument("output_dir", help="root of the output BIDS-Derivatives dataset")
    p.add_argument("analysis_level", choices=["participant", "group"])
    g = p.add_argument_group("selection")
    g.add_argument(
        "--participant-label",
        "--participant_label",
        nargs="+",
        default=[],
        metavar="LABEL",
        help="participants to process (with or without sub-)",
    )
    g.add_argument(
        "--session-label",
        nargs="+",
        default=[],
        metavar="LABEL",
        help="sessions to process (with or without ses-)",
    )
    g.add_argument(
        "--bids-filter-file",
        metavar="FILE",
        help='JSON of extra BIDS entities per file role, e.g. {"t1w": {"acquisition": "mprage"}}',
    )
    g.add_argument(
        "--derivatives",
        nargs="+",
        metavar="PATH",
        help="sMRIPrep/fMRIPrep/PETPrep derivatives folders: their preprocessed T1w, brain "
        "mask, tissue classes, template transforms and PET head-motion correction are used "
        "instead of being recomputed",
    )
    g.add_argument(
        "--skip-bids-validation",
        "--skip_bids_validation",
        action="store_true",
        help="do not run the BIDS validator first",
    )
    g = p.add_argument_group("resources")
    g.add_argument(
        "-w",
        "--work-dir",
        metavar="DIR",
        help="nipype working folder (cache; a rerun reuses it). Default: "
        "./work. Must not be inside OUTPUT_DIR",
    )
    g.add_argument(
        "--nprocs",
        "--nthreads",
        "--n-cpus",
        type=int,
        default=None,
        help="processes in parallel (default: all cores)",
    )
    g.add_argument(
        "--omp-nthreads",
        type=int,
        default=None,
        help="threads per process (default: min(8, nprocs))",
    )
    g.add_argument("--mem-gb", "--mem", type=float, default=None, help="memory limit, GB")
    g.add_argument(
        "--parallel-participants",
        type=int,
        default=None,
        metavar="N",
        help="participants processed side by side, each with an equal share of --nprocs "
        "(default: one per process, at most memory/3 GB; 1 with --stop-on-first-crash or a "
        "cluster plugin)",
    )
    g.add_argument(
        "--use-plugin",
        metavar="FILE",
        help="nipype plugin YAML (plugin: MultiProc|Linear|SLURMGraph, plugin_args)",
    )
    g.add_argument(
        "--stop-on-first-crash",
        action="store_true",
        help="stop at the first failing participant/step",
    )
    g.add_argument(
        "--random-seed",
        type=int,
        default=None,
        metavar="N",
        help="seed of ANTs' random sampling (ANTS_RANDOM_SEED; default: that "
        f"variable, else {DEFAULT_RANDOM_SEED}), so that reruns and resumed "
        "runs give the same results",
    )
    g.add_argument(
        "--reports-only",
        action="store_true",
        help="participant level: only regenerate the HTML reports "
        "(OUTPUT_DIR/sub-<label>.html) from the derivatives already in "
        "OUTPUT_DIR; nothing is recomputed",
    )
    g = p.add_argument_group("configuration")
    g.add_argument(
        "--config",
        metavar="FILE",
        help="YAML merged over configs/defaults.yml (unknown keys are errors)",
    )
    g.add_argument(
        "--ignore-qc-failures",
        action="store_true",
        help="a registration or brain mask outside its plausible range (anat.qc) flags the "
        "session in its sidecars and report instead of failing it (anat.qc.fail: false)",
    )
    g.add_argument("-v", "--verbose", action="count", default=0)
    g.add_argument("--version", action="version", version=f"inflamap {__version__}")
    return p


def build_demo_parser():
    p = _Parser(
        prog="inflamap-demo",
        description="Write the demo dataset (digital "
        "reference object with ground truth): DIR/bids, DIR/groundtruth, "
        "DIR/inflamap-demo.yml",
    )
    p.add_argument("out_dir")
    p.add_argument("--participants", type=int, default=6)
    p.add_argument("--resolution", type=float, default=3.0, help="voxel size, mm")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--anatomy",
        choices=("colin27", "template"),
        default="colin27",
        help="colin27 (default): a real head warped per participant, truth on true anatomy; "
        "template: the older phantom drawn from the pipeline's template (fast test fixture, "
        "no evidence of accuracy)",
    )
    p.add_argument(
        "--nprocs",
        type=int,
        default=None,
        help="participants written side by side (default: the CPUs allocated to this process)",
    )
    return p


def build_templates_parser():
    p = _Parser(
        prog="inflamap-templates",
        description=(
            "Prepare $TEMPLATEFLOW_HOME: always builds the offline MNI152NLin2009aSym from data "
            "bundled with nilearn; with --fetch, downloads the named TemplateFlow templates "
            "(needs network: run it on a login node before cluster jobs)."
        ),
    )
    p.add_argument("--fetch", nargs="*", default=[], metavar="TEMPLATE")
    p.add_argument("--resolution", type=int, default=2)
    return p


def build_dicom_parser():
    p = _Parser(
        prog="inflamap-dicom",
        description="Convert DICOM series BIDS has no convention for (DCE, early/late "
        "SPECT) into inflamap's convention inside an existing BIDS dataset.",
    )
    sub = p.add_subparsers(dest="kind", required=True)
    dce = sub.add_parser("dce", help="one dynamic contrast-enhanced series")
    dce.add_argument("dicom_dir", help="folder of the DCE series' DICOM files")
    spect = sub.add_parser("spect", help="an early/late SPECT pair")
    spect.add_argument("early_dir", help="folder of the early acquisition")
    spect.add_argument("late_dir", help="folder of the late acquisition")
    for q in (dce, spect):
        q.error = p.error  # usage errors exit 64 here too
        q.add_argument("bids_dir", help="root of the BIDS dataset to write into")
        q.add_argument("--subject", required=True, help="participant label (without sub-)")
        q.add_argument("--session", help="session label (without ses-)")
        q.add_argument("--injection-time", help="HH:MM:SS of the injection (scanner clock)")
    dce.add_argument("--agent", required=True, help="ce- label, e.g. gadobutrol")
    dce.add_argument("--injection-frame", type=int, help="injection at the start of frame N")
    spect.add_argument("--tracer", required=True, help="trc- label, e.g. 99mTcAlbumin")
    spect.add_argument("--radionuclide", help="e.g. Tc99m (default: from the headers)")
    return p


#: nipype execution plugins inflamap supports
PLUGINS = ("MultiProc", "Linear", "SLURMGraph", "SLURM")


def check_resources(args) -> None:
    """``--nprocs``, ``--omp-nthreads`` and ``--mem-gb`` within their ranges (exit 64)."""
    for opt, value, lo in (
        ("--nprocs", args.nprocs, 1),
        ("--omp-nthreads", args.omp_nthreads, 1),
        ("--parallel-participants", getattr(args, "parallel_participants", None), 1),
    ):
        if value is not None and not lo <= value <= 4096:
            raise UsageError(f"{opt} {value}: must be a whole number from {lo} to 4096")
    if args.mem_gb is not None and not (args.mem_gb > 0 and args.mem_gb < 1e5):
        raise UsageError(
            f"--mem-gb {args.mem_gb:g}: must be a positive number of GB "
            "(omit it to use the allocation or the machine's memory)"
        )
