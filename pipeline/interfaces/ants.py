"""ANTs interfaces that run in-process through the ``antspyx`` library.

Debian has no ``ants`` package and no PyPI wheel ships the ANTs executables, but the
``antspyx`` wheel compiles ANTs in, and its ``antsRegistration``, ``antsApplyTransforms`` and
``N4BiasFieldCorrection`` entry points take the usual command-line argument list. These
classes reuse nipype's ANTs interfaces unchanged for everything (inputs, validation,
command-line construction, output naming) and replace only the execution: the argument list
nipype builds is handed to the in-process entry point instead of a subprocess. If a real ANTs
installation is on ``PATH``, it is not used: one engine, one version, reproducible.
"""

from __future__ import annotations

import json
import os
import shlex
import tempfile

from nipype.interfaces import ants as nants
from nipype.interfaces.ants import resampling as _resampling  # noqa: F401 - nants.resampling
from nipype.interfaces.base import traits

#: the ANTs release compiled into the pinned antspyx wheel (0.6.3)
ANTS_VERSION = "2.5.1"
#: how derivatives' sidecars name the software
ANTS_SOFTWARE = f"ANTs {ANTS_VERSION} (antspyx)"


def ants_version() -> str:
    """Version of the ANTs compiled into antspyx, asked from its ``antsRegistration``
    (:data:`ANTS_VERSION` if the probe fails)."""
    import re

    try:
        from ants.internal import get_lib_fn

        with _CapturedFDs() as cap:
            get_lib_fn("antsRegistration")(["--version"])
        m = re.search(r"ANTs Version:\s*v?(\S+)", cap.text)
        if m:
            return m.group(1)
    except Exception:  # noqa: BLE001, S110
        pass
    return ANTS_VERSION


class _CapturedFDs:
    """Capture the C++ library's stdout/stderr (file descriptors 1 and 2) into a file."""

    def __enter__(self):
        self._tmp = tempfile.TemporaryFile(mode="w+b")
        for stream in (os.sys.stdout, os.sys.stderr):
            try:
                stream.flush()
            except Exception:  # pragma: no cover - closed streams  # noqa: BLE001, S110
                pass
        self._saved = [os.dup(1), os.dup(2)]
        os.dup2(self._tmp.fileno(), 1)
        os.dup2(self._tmp.fileno(), 2)
        return self

    def __exit__(self, *exc):
        os.dup2(self._saved[0], 1)
        os.dup2(self._saved[1], 2)
        for fd in self._saved:
            os.close(fd)
        self._tmp.seek(0)
        self.text = self._tmp.read().decode(errors="replace")
        self._tmp.close()
        return False


def itk_threads(num_threads) -> str:
    """ITK threads of an in-process ANTs call.

    ITK reads ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS`` once, at its first use in a process,
    and keeps that thread count for the life of the process (later changes of the variable
    are ignored), so one process cannot run its calls with different counts. inflamap's CLI
    sets the variable from ``--omp-nthreads`` before any worker starts
    (:func:`pipeline.resources.limit_threads`): every call of every process of a run then
    uses ``--omp-nthreads`` threads. Without it (interfaces used on their own) the node's
    ``num_threads`` is used, as a subprocess ANTs would.
    """
    preset = os.environ.get("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "")
    if preset.isdigit() and int(preset) > 0:
        return preset
    try:
        return str(max(1, int(num_threads)))
    except (TypeError, ValueError):  # undefined trait
        return "1"


#: transforms whose (sampled, gradient-descent) registration ITK computes differently with
#: different thread counts and schedules; these run in a one-thread helper process
LINEAR_TRANSFORMS = ("Translation", "Rigid", "Similarity", "Affine")

_SERIAL = None  # the helper process (one per process that runs ANTs), started on first use


def _call_ants(program: str, args: list, cwd: str) -> tuple[int, str]:
    """Run an ANTs entry point of antspyx in this process, in ``cwd``; (exit code, output)."""
    from ants.internal import get_lib_fn

    libfn = get_lib_fn(program)
    old = os.getcwd()
    try:
        os.chdir(cwd)
        with _CapturedFDs() as cap:
            code = libfn(args)
    finally:
        os.chdir(old)
    return int(code), cap.text


def serve_single_threaded(stdin, stdout) -> None:
    """The helper's loop: one JSON request per line (``program``, ``args``, ``cwd``), one
    JSON answer per line (``code``, ``text``). ANTs' own output is captured per call."""
    for line in stdin:
        req = json.loads(line)
        try:
            code, text = _call_ants(req["program"], req["args"], req["cwd"])
        except Exception as exc:  # noqa: BLE001 - reported to the caller
            code, text = 1, f"{type(exc).__name__}: {exc}"
        stdout.write(json.dumps({"code": code, "text": text}) + "\n")
        stdout.flush()


def call_single_threaded(program: str, args: list, cwd: str) -> tuple[int, str]:
    """Run an ANTs entry point in a helper process whose ITK uses one thread.

    ITK fixes its thread count at its first use in a process, so a process cannot run one
    call with one thread and the next with several; and ANTs' linear registrations (sampled
    Mattes mutual information with gradient-descent scale estimation) give different
    transforms from run to run with more than one thread (measured: three different results
    in three runs with 2 threads, the same with 1). The helper (``python -m
    pipeline.interfaces.ants``, started once per process and kept for its life; about 2 s
    to start) runs them with one thread, whatever ``--omp-nthreads`` is, so that reruns
    give identical results.
    """
    import subprocess
    import sys

    global _SERIAL
    if _SERIAL is None or _SERIAL.poll() is not None:
        env = dict(os.environ, ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS="1")
        _SERIAL = subprocess.Popen(  # noqa: S603 - our own module, no shell
            [sys.executable, "-m", "pipeline.interfaces.ants"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
    request = json.dumps({"program": program, "args": list(args), "cwd": cwd})
    try:
        _SERIAL.stdin.write(request + "\n")
        _SERIAL.stdin.flush()
        answer = _SERIAL.stdout.readline()
        while answer and not answer.startswith('{"code"'):  # a stray print: skip it
            answer = _SERIAL.stdout.readline()
    except (BrokenPipeError, OSError):
        answer = ""
    if not answer:
        _SERIAL.kill()
        _SERIAL = None
        raise RuntimeError(f"{program}: the one-thread ANTs helper process died (out of memory?)")
    out = json.loads(answer)
    return int(out["code"]), out["text"]


class InProcessANTsMixin:
    """Run a nipype ANTs command line through antspyx's compiled entry point."""

    #: run in the one-thread helper process (:func:`call_single_threaded`)
    def _single_threaded(self) -> bool:
        return False

    def _run_interface(self, runtime, correct_return_codes=(0,)):
        argv = shlex.split(self.cmdline)
        program, args = os.path.basename(argv[0]), argv[1:]
        if self._single_threaded():
            code, text = call_single_threaded(program, args, runtime.cwd)
            where = "antspyx, one-thread helper process"
        else:
            threads = itk_threads(getattr(self.inputs, "num_threads", 1))
            old_env = {k: os.environ.get(k) for k in ("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS",)}
            os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = threads
            try:
                code, text = _call_ants(program, args, runtime.cwd)
            finally:
                for k, v in old_env.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
            where = "antspyx, in-process"
        runtime.stdout = text
        runtime.stderr = ""
        runtime.merged = text
        runtime.returncode = int(code)
        runtime.cmdline = self.cmdline
        runtime.success_codes = correct_return_codes
        runtime.command_path = f"antspyx:{program}"
        runtime.dependencies = []
        if runtime.returncode not in correct_return_codes:
            tail = "\n".join(text.strip().splitlines()[-15:])
            raise RuntimeError(f"{program} ({where}) exited with {code}:\n{tail}")
        return runtime

    @property
    def version(self):  # the nipype version probe runs the executable; we have none
        return ANTS_VERSION


class Registration(InProcessANTsMixin, nants.Registration):
    """``antsRegistration`` (nipype's interface), run in-process; linear-only registrations
    in the one-thread helper process (:func:`call_single_threaded`), for reproducibility
    (a SyN stage with dense sampling gives the same result with any thread count)."""

    def _single_threaded(self) -> bool:
        return all(t in LINEAR_TRANSFORMS for t in self.inputs.transforms)


#: the value ANTs gives voxels outside the moving image before they become NaN (ANTs does
#: not parse ``nan``); far below any image value, exact in float32
OUTSIDE_SENTINEL = -3.0e38


class _ApplyTransformsInputSpec(nants.resampling.ApplyTransformsInputSpec):
    outside_nan = traits.Bool(
        False,
        usedefault=True,
        desc="voxels outside the moving image's field of view become NaN (not the default "
        "value 0), so that no map or table takes them for measured values",
    )


class _ApplyTransformsOutputSpec(nants.resampling.ApplyTransformsOutputSpec):
    n_outside = traits.Int(
        desc="voxels outside the moving image's field of view (with outside_nan)"
    )


class ApplyTransforms(InProcessANTsMixin, nants.ApplyTransforms):
    """``antsApplyTransforms`` (nipype's interface), run in-process; with ``outside_nan``,
    voxels outside the moving image's field of view are NaN."""

    input_spec = _ApplyTransformsInputSpec
    output_spec = _ApplyTransformsOutputSpec

    def _format_arg(self, opt, spec, val):
        if opt == "default_value" and self.inputs.outside_nan:
            return f"--default-value {OUTSIDE_SENTINEL:g}"
        return super()._format_arg(opt, spec, val)

    def _parse_inputs(self, skip=None):
        if self.inputs.outside_nan:
            if not self.inputs.float:
                raise ValueError(
                    "ApplyTransforms: outside_nan needs float=True (NaN is a floating-point value)"
                )
            self.inputs.default_value = OUTSIDE_SENTINEL
        return super()._parse_inputs(skip=skip)

    def _run_interface(self, runtime, correct_return_codes=(0,)):
        runtime = super()._run_interface(runtime, correct_return_codes)
        if self.inputs.outside_nan:
            import nibabel as nb
            import numpy as np

            out = self._list_outputs()["output_image"]
            img = nb.load(out)
            data = np.asarray(img.dataobj, dtype=np.float32)
            outside = data <= OUTSIDE_SENTINEL / 2
            self._n_outside = int(
                outside.any(axis=tuple(range(3, data.ndim))).sum()
                if data.ndim > 3
                else outside.sum()
            )
            if outside.any():
                data[outside] = np.nan
                hdr = img.header.copy()
                hdr.set_data_dtype(np.float32)
                nb.Nifti1Image(data, img.affine, hdr).to_filename(out)
        return runtime

    def _list_outputs(self):
        outputs = super()._list_outputs()
        if self.inputs.outside_nan and hasattr(self, "_n_outside"):
            outputs["n_outside"] = self._n_outside
        return outputs


class N4BiasFieldCorrection(InProcessANTsMixin, nants.N4BiasFieldCorrection):
    """``N4BiasFieldCorrection`` (nipype's interface), run in-process."""


if __name__ == "__main__":  # the one-thread helper (:func:`call_single_threaded`)
    import sys

    serve_single_threaded(sys.stdin, sys.stdout)
