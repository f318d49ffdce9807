"""Preflight: check every input file a participant's run will read, before any workflow runs.

A run of many participants should not find out after hours that one participant's DCE
series is truncated or that a sidecar lacks ``EchoTime``. :func:`preflight_participants`
plans every selected participant (:func:`pipeline.plan.plan_participant`: files by role,
every sidecar and covariate table parsed and checked once) and checks the plan's images,
the very files the participant workflow (:func:`workflows.base.init_single_subject_wf`)
will wire:

* images (:func:`pipeline.nifti_check.check_nifti`): present, readable, really gzip, a
  plausible NIfTI header (refused from the header alone, before memory is allocated), a
  supported data type, plausible voxel sizes, an orthonormal orientation, the dimensionality
  each role needs (DCE 4-D with one volume per frame; PET 3-D or 4-D matching its frames;
  MEGRE echoes 3-D on one grid; T1w, VFA and SPECT 3-D), and one streaming pass over the data
  that refuses empty images and counts non-finite voxels (reported here, treated as invalid
  by the interfaces: ``NonFiniteVoxels`` in the sidecars);
* grids that must agree (VFA flip angles, the echoes of a series, a user's input-function
  mask and its DCE series) (:func:`check_plan`).

Every problem is an :class:`~pipeline.errors.InflamapError` with one line
``PATH: what is wrong; what to fix`` and its BIDS-Apps exit code. One participant's problem
does not stop the others (unless ``--stop-on-first-crash``): it is recorded as a failure of
step ``preflight`` and the participant is not run. :func:`report_failures` prints the
run's summary (participant, step, message, crash file) and chooses the exit code.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

import numpy as np

from .errors import EX_FAILURE, DataError, InflamapError
from .nifti_check import ImageInfo, _shape_text, check_nifti


@dataclass
class ParticipantCheck:
    """The checked inputs of one participant."""

    subject: str
    images: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    def add(self, info: ImageInfo) -> ImageInfo:
        self.images.append(info)
        if info.n_nonfinite:
            self.notes.append(
                f"{info.path}: {info.n_nonfinite} non-finite (NaN/Inf) voxel(s); they are "
                "treated as invalid (masked) and counted in the outputs' sidecars"
            )
        return info


class FailureMessage(str):
    """A participant failure's one-line message (a ``str``), with the step that failed and
    the exit code it stands for."""

    def __new__(cls, text, step: str | None = None, code: int = EX_FAILURE):
        obj = super().__new__(cls, text)
        obj.step = step
        obj.code = code
        return obj


# --------------------------------------------------------------------------- images


def _same_grid(images, what, fix):
    first = images[0]
    for img in images[1:]:
        if img.shape != first.shape or not np.allclose(img.affine, first.affine, atol=1e-3):
            raise DataError(
                f"{img.path}: {what} grid {_shape_text(img.shape)} differs from "
                f"{first.path} ({_shape_text(first.shape)}); {fix}"
            )


def check_vif_mask(path, series: ImageInfo) -> None:
    """A user-drawn input-function mask: readable, on the DCE grid, not empty."""
    info = check_nifti(path, "input-function mask (dce.vif_mask)", (3,))
    if info.shape[:3] != series.shape[:3] or not np.allclose(
        info.affine, series.affine, atol=1e-3
    ):
        raise DataError(
            f"{path}: input-function mask grid {_shape_text(info.shape[:3])} "
            f"differs from the DCE series {series.path} "
            f"({_shape_text(series.shape[:3])}); draw it on the DCE grid"
        )


def check_plan(plan, settings=None) -> ParticipantCheck:
    """Check the bytes, headers and grids of every image of a participant's plan
    (:class:`pipeline.plan.ParticipantPlan`): :func:`check_nifti` with the dimensionality
    and volume count of each role; VFA images and the echoes of a series on one grid; the
    user's input-function masks on their DCE grid. Raises the first problem."""
    report = ParticipantCheck(plan.subject)
    infos = {}
    for path, role, ndim, n_volumes in plan.images():
        infos[path] = report.add(check_nifti(path, role, ndim, n_volumes=n_volumes))
    for ses in plan.sessions:
        for dce in ses.dce:
            _same_grid(
                [infos[f] for f in dce.vfa], "VFA", "the flip angles must be acquired on one grid"
            )
            if dce.vif_mask:
                check_vif_mask(dce.vif_mask, infos[dce.series])
        for pair in ses.uspio:
            for series in (pair.pre, pair.post):
                _same_grid(
                    [infos[f] for f in series.images],
                    "echo",
                    "all echoes of a series must share one grid: export them together",
                )
    return report


def preflight_participants(
    layout, subjects, settings, progress=None, stop_on_first_crash: bool = False
):
    """Plan every participant (:func:`pipeline.plan.plan_participant`) and check the plan's
    images (:func:`check_plan`) before any of them is run.

    Returns
    -------
    ready : list of :class:`pipeline.plan.ParticipantPlan`
        the plans of the participants whose inputs passed (empty after a failure with
        ``stop_on_first_crash``: nothing is run).
    failures : list of ``(subject, FailureMessage, None)``
        the participants that failed, in the format of the run's failure list.
    """
    from .plan import plan_participant

    progress = progress or (lambda msg: None)
    ready, failures = [], []
    for subject in subjects:
        t0 = time.time()
        try:
            plan = plan_participant(layout, subject, settings)
            report = check_plan(plan, settings)
        except InflamapError as exc:
            failures.append((subject, FailureMessage(str(exc), "preflight", exc.code), None))
        except Exception as exc:  # noqa: BLE001 - a checker bug must not stop the others
            failures.append(
                (
                    subject,
                    FailureMessage(
                        f"input check failed unexpectedly ({type(exc).__name__}: {exc}); please "
                        "report it, with --verbose output",
                        "preflight",
                        EX_FAILURE,
                    ),
                    None,
                )
            )
            if getattr(settings.execution, "verbosity", 0):
                import traceback

                traceback.print_exc()
        else:
            for note in (*plan.notes, *report.notes):
                progress(f"sub-{subject}: {note}")
            progress(
                f"sub-{subject}: inputs checked ({len(report.images)} image(s), "
                f"{time.time() - t0:.1f} s)"
            )
            ready.append(plan)
            continue
        progress(f"sub-{subject}: FAILED the input check: {failures[-1][1]}")
        if stop_on_first_crash:
            return [], failures
    return ready, failures


# --------------------------------------------------------------------------- summary


def describe_crash(crash_file) -> tuple:
    """``(step, error)`` of a nipype crash file (:func:`pipeline.crashes.read_crash`)."""
    from .crashes import read_crash

    crash = read_crash(crash_file)
    return crash.node, crash.error


def report_failures(failures, n_participants: int, stream=None) -> int:
    """Print the summary of the failed participants; the exit code of the run.

    Each line is ``  sub-<label>: <message> (step: <step>; crash file: <file>)``: the
    participant, the one-line message (for a crash, the exception of the crash file), the
    step that failed (``preflight``, ``workflow build``, the node of the crash file) and
    the crash file. The exit code is the common
    BIDS-Apps code of the failures when they all are documented errors with one code (e.g.
    65 when every failure is invalid data), else 1.
    """
    from . import log

    stream = stream or sys.stderr
    codes = set()
    lines = [
        f"inflamap: {len({f[0] for f in failures})} of {n_participants} participant(s) failed:"
    ]
    for subject, msg, crash in failures:
        step = getattr(msg, "step", None)
        text = str(msg)
        if crash:
            cstep, cerr = describe_crash(crash)
            step = cstep or step
            text = cerr or text
            codes.add(EX_FAILURE)
        else:
            codes.add(getattr(msg, "code", EX_FAILURE))
        where = [f"step: {step}"] if step else []
        where += [f"crash file: {crash}"] if crash else []
        lines.append(f"  sub-{subject}: {text}" + (f" ({'; '.join(where)})" if where else ""))
    print("\n".join(lines), file=stream)
    log.file_only("\n".join(lines))  # the summary in the run's log file too
    return codes.pop() if len(codes) == 1 else EX_FAILURE


__all__ = [
    "FailureMessage",
    "ImageInfo",
    "ParticipantCheck",
    "check_nifti",
    "check_plan",
    "check_vif_mask",
    "describe_crash",
    "preflight_participants",
    "report_failures",
]
