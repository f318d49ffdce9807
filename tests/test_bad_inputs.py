"""Issue 10: a catalogue of bad inputs, each refused with one line naming the file and the fix,
a BIDS-Apps exit code and nothing written; a batch where one broken participant does not stop
the others; fuzzed headers and sidecars that only ever raise the documented errors.

Every catalogue case builds its own tiny BIDS dataset (8×8×8 images, one participant, only
the files the case needs) and runs ``inflamap`` in-process (``pipeline.cli.main``): the
problems are all found by the preflight (:mod:`pipeline.preflight`) or the argument and
configuration checks, before any nipype step runs. The cases that need file permissions run
the real command line in a subprocess, without the capabilities that let root ignore
permissions (``setpriv``). One batch test runs the real pipeline on a tiny good participant
next to two broken ones.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nb
import numpy as np
import pytest
from conftest import TF_HOME, tree_snapshot
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from pipeline import preflight as pf
from pipeline.cli import main
from pipeline.errors import (
    EX_CANTCREAT,
    EX_DATAERR,
    EX_FAILURE,
    EX_NOINPUT,
    EX_USAGE,
    DataError,
    InflamapError,
)

# hypothesis keeps its example database and caches outside the repository
set_hypothesis_home_dir(os.path.join(tempfile.gettempdir(), "inflamap-hypothesis"))
AFFINE = np.diag([3.0, 3.0, 3.0, 1.0])
SHAPE = (8, 8, 8)
SES = "01"
# the fastest configuration that still runs every anatomical step (the batch test)
# The synthetic images here are noise cubes, not heads: no brain extraction, and the
# registration QC (rightly failing them) flags instead of failing; tests/test_real_head.py
# checks both on a real head.
FAST_CONFIG = """\
anat:
  template: MNI152NLin2009aSym
  template_resolution: 2
  atlas: inflamapLobes
  skull_strip: skip
  qc: {fail: false}
  n4: {iterations: [5], shrink_factor: 2}
  registration:
    rigid_iterations: [5]
    affine_iterations: [5]
    syn_iterations: [1]
    shrink_factors: [4]
    smoothing_sigmas: [2.0]
"""
MEGRE_TE = (0.003, 0.008, 0.013)
PET_META = {
    "Units": "Bq/mL",
    "TracerName": "PBR28",
    "TracerRadionuclide": "C11",
    "InjectedRadioactivity": 350.0,
    "InjectedRadioactivityUnits": "MBq",
    "TimeZero": "10:00:00",
    "InjectionStart": 0,
    "FrameTimesStart": [3600],
    "FrameDuration": [1800],
    "ImageDecayCorrected": True,
    "ImageDecayCorrectionTime": 0,
}
DCE_META = {
    "FlipAngle": 15.0,
    "RepetitionTimeExcitation": 0.004,
    "InjectionStart": 25.0,
    "FrameTimesStart": [0.0, 10.0, 20.0, 30.0, 40.0, 50.0],
    "FrameDuration": [10.0] * 6,
}
SPECT_META = {
    "TracerRadionuclide": "Tc99m",
    "Units": "counts",
    "InjectionStart": 0,
    "FrameDuration": [900.0],
    "ImageDecayCorrected": False,
}


def _rng(seed=0):
    return np.random.default_rng(seed)


def write_nifti(path: Path, data=None, affine=AFFINE, dtype=np.float32) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if data is None:
        data = _rng(hash(path.name) % 2**32).uniform(50, 150, SHAPE)
    nb.Nifti1Image(np.asarray(data).astype(dtype), affine).to_filename(str(path))
    return path


def write_json(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1))
    return path


class Tiny:
    """A tiny BIDS dataset: participants with one session (``ses-01``) and a T1w each; the
    cases add only the files they need."""

    def __init__(self, root: Path, subjects=("01",)):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        write_json(
            root / "dataset_description.json",
            {"Name": "inflamap bad inputs", "BIDSVersion": "1.10.0"},
        )
        (root / ".bidsignore").write_text("*_dce.nii.gz\n*_dce.json\n**/spect\n")
        self.rows = {}
        for sub in subjects:
            self.add_participant(sub)

    def add_participant(self, sub, group="MO", weight="70", side="left"):
        self.rows[sub] = {"group": group, "body_weight": weight}
        self.write_participants()
        (self.root / f"sub-{sub}").mkdir(exist_ok=True)
        (self.root / f"sub-{sub}" / f"sub-{sub}_sessions.tsv").write_text(
            f"session_id\tphase\theadache_side\nses-{SES}\tinterictal\t{side}\n"
        )
        self.image("T1w", sub=sub)

    def write_participants(self):
        cols = ["group", "body_weight"]
        lines = ["participant_id\t" + "\t".join(cols)]
        lines += [
            f"sub-{s}\t" + "\t".join(str(r[c]) for c in cols) for s, r in sorted(self.rows.items())
        ]
        (self.root / "participants.tsv").write_text("\n".join(lines) + "\n")

    def path(self, name, datatype="anat", sub="01", ext=".nii.gz") -> Path:
        return (
            self.root / f"sub-{sub}" / f"ses-{SES}" / datatype / f"sub-{sub}_ses-{SES}_{name}{ext}"
        )

    def image(self, name, data=None, meta=None, datatype="anat", sub="01", **kw) -> Path:
        p = write_nifti(self.path(name, datatype, sub), data, **kw)
        if meta is not None:
            write_json(self.path(name, datatype, sub, ".json"), meta)
        return p

    def megre(self, agent=None, tes=MEGRE_TE, shapes=None) -> list:
        ce = f"ce-{agent}_" if agent else ""
        files = []
        for i, te in enumerate(tes, start=1):
            data = None
            if shapes is not None:
                data = _rng(i).uniform(50, 150, shapes[i - 1])
            meta = {"EchoTime": te, "RepetitionTime": 0.04, "FlipAngle": 20.0}
            files.append(self.image(f"{ce}echo-{i}_MEGRE", data, meta))
        return files

    def uspio(self, **post):
        """A pre- and a post-ferumoxytol MEGRE series (the post one with ``post``)."""
        self.megre()
        return self.megre(agent="ferumoxytol", **post)

    def dce(self, meta=None, frames=6, vfa=(2.0, 15.0), three_d=False):
        for i, fa in enumerate(vfa, start=1):
            self.image(f"flip-{i}_VFA", meta={"FlipAngle": fa, "RepetitionTimeExcitation": 0.0054})
        data = _rng(3).uniform(50, 150, SHAPE if three_d else (*SHAPE, frames))
        return self.image("ce-gadobutrol_dce", data, DCE_META if meta is None else meta)

    def pet(self, meta=None, data=None):
        return self.image("trc-PBR28_pet", data, {**PET_META, **(meta or {})}, datatype="pet")

    def spect(self, late=True, nuclide="Tc99m"):
        meta = {**SPECT_META, "TracerRadionuclide": nuclide}
        early = self.image(
            "trc-99mTcAlbumin_acq-early_spect",
            None,
            {**meta, "FrameTimesStart": [1200.0]},
            datatype="spect",
        )
        if late:
            self.image(
                "trc-99mTcAlbumin_acq-late_spect",
                None,
                {**meta, "FrameTimesStart": [10800.0]},
                datatype="spect",
            )
        return early

    @property
    def t1w(self) -> Path:
        return self.path("T1w")


# --------------------------------------------------------------------------- helpers


def _truncate(path: Path, keep=0.5) -> Path:
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * keep)])
    return path


def _absurd_header(path: Path) -> Path:
    """A valid header (and a few KB of data) declaring 4096×4096×4096 float32 voxels."""
    img = nb.Nifti1Image(np.ones(SHAPE, np.float32), AFFINE)
    img.header.set_data_shape((4096, 4096, 4096))
    path.write_bytes(gzip.compress(img.header.binaryblock + b"\0" * 4 + b"\0" * 4096))
    return path


def _sheared(path: Path) -> Path:
    aff = AFFINE.copy()
    aff[0, 1] = 1.0
    img = nb.Nifti1Image(_rng(5).uniform(50, 150, SHAPE).astype(np.float32), aff)
    img.set_qform(None, code=0)
    img.set_sform(aff, code=1)
    img.to_filename(str(path))
    return path


def _nifti2(path: Path) -> Path:
    nb.Nifti2Image(_rng(7).uniform(50, 150, SHAPE).astype(np.float32), AFFINE).to_filename(
        str(path)
    )
    return path


def _no_orientation(path: Path) -> Path:
    img = nb.Nifti1Image(_rng(6).uniform(50, 150, SHAPE).astype(np.float32), AFFINE)
    img.set_qform(None, code=0)
    img.set_sform(None, code=0)
    img.to_filename(str(path))
    return path


def _corrupt_gzip(path: Path) -> Path:
    raw = bytearray(path.read_bytes())
    for i in range(len(raw) // 2, len(raw) // 2 + 16):
        raw[i] ^= 0xFF
    path.write_bytes(bytes(raw))
    return path


def _edit_tsv(path: Path, old: str, new: str) -> Path:
    path.write_text(path.read_text().replace(old, new))
    return path


def _append_row(path: Path, row: str) -> Path:
    path.write_text(path.read_text() + row + "\n")
    return path


def _config(tmp: Path, text: str) -> Path:
    p = tmp / "config.yml"
    p.write_text(text)
    return p


@dataclass
class Case:
    """A bad input: ``build(ds, tmp)`` makes it and returns ``(culprit, extra argv)``."""

    id: str
    build: Callable
    code: int
    fix: str  # a phrase of the "what to fix" part of the message
    argv: list = field(default_factory=list)


def _json(path: Path) -> Path:
    return Path(str(path).replace(".nii.gz", ".json"))


def _set_meta(path: Path, **changes) -> Path:
    side = _json(path)
    meta = json.loads(side.read_text())
    for k, v in changes.items():
        if v is None:
            meta.pop(k, None)
        else:
            meta[k] = v
    write_json(side, meta)
    return side


def _b(fn):
    """Adapt ``fn(ds) -> culprit`` to a case builder without extra arguments."""
    return lambda ds, tmp: (fn(ds), [])


CASES = [
    # --- MEGRE / USPIO
    # (a pre-infusion echo: its sidecar is also inherited by the post echo of that number)
    Case(
        "megre-missing-EchoTime",
        _b(lambda ds: ds.uspio() and _set_meta(ds.path("echo-2_MEGRE"), EchoTime=None)),
        EX_DATAERR,
        "add the echo time in seconds",
    ),
    Case(
        "megre-EchoTime-in-ms",
        _b(lambda ds: _set_meta(ds.uspio()[2], EchoTime=13)),
        EX_DATAERR,
        "BIDS EchoTime is in seconds",
    ),
    Case(
        "megre-echoes-of-different-shapes",
        _b(lambda ds: ds.uspio(shapes=[SHAPE, SHAPE, (8, 8, 6)])[2]),
        EX_DATAERR,
        "must share one grid",
    ),
    Case(
        "megre-fewer-echoes-than-the-fit-needs",
        _b(lambda ds: _json(ds.uspio(tes=MEGRE_TE[:2])[0])),
        EX_DATAERR,
        "add the other echo-<n>_MEGRE files",
    ),
    Case(
        "megre-echo-4d",
        _b(
            lambda ds: (
                ds.image(
                    "ce-ferumoxytol_echo-2_MEGRE",
                    _rng(1).uniform(50, 150, (*SHAPE, 2)),
                    {"EchoTime": 0.008},
                )
                if ds.uspio()
                else None
            )
        ),
        EX_DATAERR,
        "must be one 3-D volume",
    ),
    Case(
        "uspio-post-without-pre-series",
        _b(lambda ds: ds.megre(agent="ferumoxytol")[0]),
        EX_NOINPUT,
        "add echo-<n>_MEGRE images without ce-",
    ),
    # --- DCE / VFA
    Case(
        "dce-missing-FlipAngle",
        _b(lambda ds: _set_meta(ds.dce(), FlipAngle=None)),
        EX_DATAERR,
        "FlipAngle (flip angle in degrees)",
    ),
    Case(
        "dce-missing-RepetitionTimeExcitation",
        _b(lambda ds: _set_meta(ds.dce(), RepetitionTimeExcitation=None, RepetitionTime=0.004)),
        EX_DATAERR,
        "copy it to RepetitionTimeExcitation",
    ),
    Case(
        "dce-non-increasing-frame-times",
        _b(lambda ds: _set_meta(ds.dce(), FrameTimesStart=[0, 10, 20, 20, 40, 50])),
        EX_DATAERR,
        "fix the frame times",
    ),
    Case(
        "dce-FlipAngle-not-a-number",
        _b(lambda ds: _set_meta(ds.dce(), FlipAngle="fifteen")),
        EX_DATAERR,
        "give the flip angle in degrees",
    ),
    Case(
        "dce-no-baseline-before-injection",
        _b(lambda ds: _set_meta(ds.dce(), InjectionStart=5.0)),
        EX_DATAERR,
        "check InjectionStart and FrameTimesStart",
    ),
    Case(
        "dce-3d-where-4d-is-needed",
        _b(lambda ds: ds.dce(three_d=True)),
        EX_DATAERR,
        "give the whole series in one 4-D file",
    ),
    Case(
        "dce-frames-differ-from-sidecar",
        _b(lambda ds: ds.dce(frames=5)),
        EX_DATAERR,
        "fix the sidecar or the image",
    ),
    Case(
        "dce-without-VFA",
        _b(lambda ds: ds.dce(vfa=())),
        EX_NOINPUT,
        "add them (FlipAngle, RepetitionTimeExcitation",
    ),
    Case(
        "vfa-one-flip-angle",
        _b(lambda ds: ds.dce(vfa=(15.0, 15.0)) and ds.path("flip-1_VFA", ext=".json")),
        EX_DATAERR,
        "add the other flip-<n>_VFA images",
    ),
    # --- PET / SPECT
    Case(
        "pet-missing-InjectedRadioactivity",
        _b(lambda ds: _set_meta(ds.pet(), InjectedRadioactivity=None)),
        EX_DATAERR,
        "add them as PET-BIDS describes",
    ),
    Case(
        "pet-unknown-dose-units",
        _b(lambda ds: _set_meta(ds.pet(), InjectedRadioactivityUnits="megabecquerel")),
        EX_DATAERR,
        "accepted: Bq, kBq, MBq",
    ),
    Case(
        "pet-unknown-image-units",
        _b(lambda ds: _set_meta(ds.pet(), Units="kBq/furlong")),
        EX_DATAERR,
        "(e.g. Bq/mL, kBq/cc, uCi/mL)",
    ),
    Case(
        "pet-missing-body-weight",
        _b(
            lambda ds: (
                ds.rows["01"].update(body_weight="n/a"),
                ds.write_participants(),
                ds.path("trc-PBR28_pet", "pet", ext=".json") if ds.pet() else None,
            )[2]
        ),
        EX_DATAERR,
        "add a body_weight column (kg)",
    ),
    Case(
        "pet-frames-differ-from-sidecar",
        _b(lambda ds: ds.pet(data=_rng(2).uniform(1, 9, (*SHAPE, 3)))),
        EX_DATAERR,
        "fix the sidecar or the image",
    ),
    Case(
        "pet-FrameDuration-as-end-times",
        _b(
            lambda ds: _set_meta(
                ds.pet(data=_rng(2).uniform(1, 9, (*SHAPE, 3))),
                FrameTimesStart=[0, 1800, 3600],
                FrameDuration=[1800, 3600, 5400],
            )
        ),
        EX_DATAERR,
        "give each frame's length",
    ),
    Case(
        "spect-missing-late-acquisition",
        _b(lambda ds: ds.spect(late=False)),
        EX_NOINPUT,
        "add the missing one",
    ),
    Case(
        "spect-unknown-radionuclide",
        _b(lambda ds: _json(ds.spect(nuclide="Xx42"))),
        EX_DATAERR,
        "use one of",
    ),
    # --- images: content and headers
    Case(
        "all-zero-volume",
        _b(lambda ds: write_nifti(ds.t1w, np.zeros(SHAPE))),
        EX_DATAERR,
        "export it again",
    ),
    Case(
        "constant-volume",
        _b(lambda ds: write_nifti(ds.t1w, np.full(SHAPE, 7.0))),
        EX_DATAERR,
        "no image content",
    ),
    Case(
        "t1w-4d-where-3d-is-needed",
        _b(lambda ds: write_nifti(ds.t1w, _rng().uniform(1, 2, (*SHAPE, 2)))),
        EX_DATAERR,
        "save that volume alone",
    ),
    Case(
        "t1w-single-slice",
        _b(lambda ds: write_nifti(ds.t1w, _rng().uniform(1, 2, (8, 8, 1)))),
        EX_DATAERR,
        "give the whole volume",
    ),
    Case(
        "absurd-header-dimensions",
        _b(lambda ds: _absurd_header(ds.t1w)),
        EX_DATAERR,
        "the header is corrupt: export the image again",
    ),
    Case(
        "truncated-gzip",
        _b(lambda ds: _truncate(ds.t1w)),
        EX_DATAERR,
        "copy it again from the source",
    ),
    Case(
        "corrupt-gzip-data",
        _b(lambda ds: _corrupt_gzip(ds.pet())),
        EX_DATAERR,
        "copy it again from the source",
    ),
    Case(
        "truncated-uncompressed-nii",
        _b(
            lambda ds: (
                _truncate(write_nifti(ds.path("T1w", ext=".nii"), None))
                if ds.t1w.unlink() is None
                else None
            )
        ),
        EX_DATAERR,
        "copy it again from the source",
    ),
    Case(
        "not-nifti-named-nii.gz",
        _b(lambda ds: (ds.t1w.write_bytes(b"DICM" + bytes(range(256)) * 4), ds.t1w)[1]),
        EX_DATAERR,
        "convert it (e.g. dcm2niix) or fix the name",
    ),
    Case(
        "gzipped-non-nifti",
        _b(
            lambda ds: (
                ds.t1w.write_bytes(gzip.compress(b"this is a text file, not an image\n" * 40)),
                ds.t1w,
            )[1]
        ),
        EX_DATAERR,
        "convert it (e.g. dcm2niix) or remove it",
    ),
    Case(
        "uncompressed-nifti-named-nii.gz",
        _b(
            lambda ds: (
                ds.t1w.write_bytes(
                    nb.Nifti1Image(
                        _rng().uniform(1, 2, SHAPE).astype(np.float32), AFFINE
                    ).to_bytes()
                ),
                ds.t1w,
            )[1]
        ),
        EX_DATAERR,
        "rename it to .nii",
    ),
    Case(
        "sheared-affine", _b(lambda ds: _sheared(ds.t1w)), EX_DATAERR, "set the sform to the qform"
    ),
    Case(
        "voxel-size-in-metres",
        _b(lambda ds: write_nifti(ds.t1w, None, np.diag([0.003, 0.003, 0.003, 1.0]))),
        EX_DATAERR,
        "fix pixdim and xyzt_units",
    ),
    Case(
        "complex-voxels",
        _b(lambda ds: write_nifti(ds.t1w, _rng().uniform(1, 2, SHAPE) + 1j, dtype=np.complex64)),
        EX_DATAERR,
        "save real-valued",
    ),
    Case(
        "broken-symlink-datalad",
        _b(
            lambda ds: (
                ds.t1w.unlink(),
                os.symlink("../../../.git/annex/objects/XX/SHA256E-s1--0.nii.gz", ds.t1w),
                ds.t1w,
            )[2]
        ),
        EX_NOINPUT,
        "datalad get",
    ),
    Case(
        "no-T1w",
        _b(lambda ds: (ds.t1w.unlink(), ds.root / "sub-01")[1]),
        EX_NOINPUT,
        "every session needs one",
    ),
    # --- sidecars and tables
    Case(
        "sidecar-invalid-JSON",
        _b(
            lambda ds: (
                ds.path("T1w", ext=".json").write_text('{"EchoTime": 0.003,'),
                ds.path("T1w", ext=".json"),
            )[1]
        ),
        EX_DATAERR,
        "fix the syntax",
    ),
    Case(
        "sidecar-not-an-object",
        _b(lambda ds: write_json(ds.path("T1w", ext=".json"), [1, 2])),
        EX_DATAERR,
        "a sidecar must be a JSON object",
    ),
    Case(
        "headache_side-outside-documented-set",
        _b(lambda ds: _edit_tsv(ds.root / "sub-01" / "sub-01_sessions.tsv", "left", "both")),
        EX_DATAERR,
        "documented values are left, right, bilateral, none",
    ),
    Case(
        "group-outside-documented-set",
        _b(lambda ds: _edit_tsv(ds.root / "participants.tsv", "MO", "migraine")),
        EX_DATAERR,
        "documented values are HC, MO, MA, HM",
    ),
    # --- command line, configuration, dataset root
    Case(
        "participant-label-with-dotdot",
        lambda ds, tmp: ("--participant-label '../x'", ["--participant-label", "../x"]),
        EX_USAGE,
        "letters and digits only",
    ),
    Case(
        "session-label-with-slash",
        lambda ds, tmp: ("--session-label 'a/b'", ["--session-label", "a/b"]),
        EX_USAGE,
        "letters and digits only",
    ),
    Case(
        "bids-folder-without-dataset_description",
        lambda ds, tmp: (
            (ds.root / "dataset_description.json").unlink(),
            ds.root / "dataset_description.json",
            [],
        )[1:],
        EX_NOINPUT,
        "the root of a BIDS dataset?",
    ),
    Case(
        "config-misspelt-key",
        lambda ds, tmp: ("config.yml", ["--config", _config(tmp, "uspio:\n  min_echos: 2\n")]),
        EX_USAGE,
        "did you mean 'uspio.min_echoes'?",
    ),
    Case(
        "config-misspelt-section",
        lambda ds, tmp: (
            "config.yml",
            ["--config", _config(tmp, "gadolinum:\n  floor_fraction: 0.2\n")],
        ),
        EX_USAGE,
        "did you mean 'gadolinium'?",
    ),
    Case(
        "config-wrong-type",
        lambda ds, tmp: (
            "config.yml",
            ["--config", _config(tmp, "uspio:\n  min_echoes: three\n")],
        ),
        EX_USAGE,
        "allowed: a whole number",
    ),
    Case(
        "config-value-out-of-range",
        lambda ds, tmp: ("config.yml", ["--config", _config(tmp, "dce:\n  hematocrit: 4.5\n")]),
        EX_USAGE,
        "'dce.hematocrit' is 4.5; allowed: ≥ 0.1 and ≤ 0.8",
    ),
    Case(
        "config-value-outside-its-set",
        lambda ds, tmp: (
            "config.yml",
            ["--config", _config(tmp, "dce:\n  model: tofts-extended\n")],
        ),
        EX_USAGE,
        "allowed: one of patlak, extended_tofts",
    ),
    # --- units: a time, angle or rate in the wrong unit is refused, never converted silently
    Case(
        "dce-FrameTimesStart-in-ms",
        _b(
            lambda ds: _set_meta(
                ds.dce(),
                FrameTimesStart=[0, 10000, 20000, 30000, 40000, 50000],
                InjectionStart=25000,
            )
        ),
        EX_DATAERR,
        "looks like milliseconds: BIDS uses seconds",
    ),
    Case(
        "dce-short-series-in-ms",
        _b(
            lambda ds: _set_meta(
                ds.dce(), FrameTimesStart=[0, 2000, 4000, 6000, 8000, 10000], InjectionStart=5000
            )
        ),
        EX_DATAERR,
        "looks like milliseconds: BIDS uses seconds",
    ),
    Case(
        "dce-InjectionStart-in-ms",
        _b(lambda ds: _set_meta(ds.dce(), InjectionStart=25000)),
        EX_DATAERR,
        "BIDS uses seconds on the clock of FrameTimesStart",
    ),
    Case(
        "dce-TR-in-ms",
        _b(lambda ds: _set_meta(ds.dce(), RepetitionTimeExcitation=4.0)),
        EX_DATAERR,
        "looks like milliseconds: BIDS uses seconds",
    ),
    Case(
        "vfa-FlipAngle-in-radians",
        _b(lambda ds: ds.dce(vfa=(0.035, 0.26)) and ds.path("flip-1_VFA", ext=".json")),
        EX_DATAERR,
        "looks like radians; BIDS uses degrees",
    ),
    Case(
        "dce-FlipAngle-in-radians",
        _b(lambda ds: _set_meta(ds.dce(), FlipAngle=0.26)),
        EX_DATAERR,
        "looks like radians; BIDS uses degrees",
    ),
    # --- covariate tables that do not match the dataset
    Case(
        "sessions-tsv-id-matches-no-folder",
        _b(lambda ds: _edit_tsv(ds.root / "sub-01" / "sub-01_sessions.tsv", "ses-01", "ses-1")),
        EX_DATAERR,
        "fix the identifier (e.g. ses-01, not ses-1)",
    ),
    Case(
        "sessions-tsv-duplicate-session",
        _b(
            lambda ds: _edit_tsv(
                ds.root / "sub-01" / "sub-01_sessions.tsv",
                "left\n",
                "left\nses-01\tictal\tright\n",
            )
        ),
        EX_DATAERR,
        "keep one row per session",
    ),
    Case(
        "participants-tsv-trailing-space",
        _b(lambda ds: _edit_tsv(ds.root / "participants.tsv", "sub-01\t", "sub-01 \t")),
        EX_DATAERR,
        "remove the spaces",
    ),
    Case(
        "participants-tsv-conflicting-rows",
        _b(lambda ds: _append_row(ds.root / "participants.tsv", "sub-01\tHC\t70")),
        EX_DATAERR,
        "keep one row per participant",
    ),
    Case(
        "participants-tsv-row-without-folder",
        _b(lambda ds: _append_row(ds.root / "participants.tsv", "sub-09\tHC\t70")),
        EX_DATAERR,
        "has no folder",
    ),
    Case(
        "participants-tsv-without-id-column",
        _b(lambda ds: _edit_tsv(ds.root / "participants.tsv", "participant_id", "subject")),
        EX_DATAERR,
        "add it (sub-<label> per row)",
    ),
    # --- filter files may only narrow a role by the entities of its files
    Case(
        "filter-sets-subject",
        lambda ds, tmp: (
            "filter.json",
            ["--bids-filter-file", write_json(tmp / "filter.json", {"t1w": {"subject": "02"}})],
        ),
        EX_USAGE,
        "may not set 'subject'",
    ),
    Case(
        "filter-sets-session",
        lambda ds, tmp: (
            "filter.json",
            ["--bids-filter-file", write_json(tmp / "filter.json", {"pet": {"session": "02"}})],
        ),
        EX_USAGE,
        "may not set 'session'",
    ),
    Case(
        "filter-unknown-entity",
        lambda ds, tmp: (
            "filter.json",
            [
                "--bids-filter-file",
                write_json(tmp / "filter.json", {"t1w": {"acqusition": "mprage"}}),
            ],
        ),
        EX_USAGE,
        "unknown entity 'acqusition'",
    ),
    Case(
        "filter-role-not-an-object",
        lambda ds, tmp: (
            "filter.json",
            ["--bids-filter-file", write_json(tmp / "filter.json", {"t1w": "mprage"})],
        ),
        EX_USAGE,
        "must map entities to values",
    ),
    Case(
        "filter-unknown-role",
        lambda ds, tmp: (
            "filter.json",
            ["--bids-filter-file", write_json(tmp / "filter.json", {"T1w": {"run": 1}})],
        ),
        EX_USAGE,
        "unknown role 'T1w'",
    ),
    Case(
        "filter-value-not-a-label",
        lambda ds, tmp: (
            "filter.json",
            [
                "--bids-filter-file",
                write_json(tmp / "filter.json", {"t1w": {"acquisition": "{mprage}"}}),
            ],
        ),
        EX_USAGE,
        "is not a BIDS label",
    ),
    # --- files that would make a reader hang or read without end
    Case(
        "sidecar-is-a-fifo",
        _b(
            lambda ds: (
                ds.path("T1w", ext=".json").unlink(missing_ok=True),
                os.mkfifo(ds.path("T1w", ext=".json")),
                ds.path("T1w", ext=".json"),
            )[2]
        ),
        EX_DATAERR,
        "a named pipe (FIFO)",
    ),
    Case(
        "sidecar-links-to-dev-zero",
        _b(
            lambda ds: (
                os.symlink("/dev/zero", ds.path("T1w", ext=".json")),
                ds.path("T1w", ext=".json"),
            )[1]
        ),
        EX_DATAERR,
        "replace it by the file itself",
    ),
    Case(
        "folder-symlink-loop",
        _b(
            lambda ds: (
                os.symlink("..", ds.root / "sub-01" / "ses-01" / "anat" / "again"),
                ds.root / "sub-01" / "ses-01" / "anat" / "again",
            )[1]
        ),
        EX_DATAERR,
        "remove the symbolic link",
    ),
    Case(
        "oversized-sidecar",
        _b(
            lambda ds: (
                ds.path("T1w", ext=".json").write_text('{"x": "' + "a" * (5 * 2**20) + '"}'),
                ds.path("T1w", ext=".json"),
            )[1]
        ),
        EX_DATAERR,
        "is it the right file?",
    ),
    Case(
        "pet-frame-times-in-ms",
        _b(lambda ds: _set_meta(ds.pet(), FrameTimesStart=[3600000], FrameDuration=[1800000])),
        EX_DATAERR,
        "look like milliseconds (BIDS uses seconds)",
    ),
    Case(
        "spect-frame-times-in-ms",
        _b(
            lambda ds: (
                ds.spect(),
                _set_meta(
                    ds.path("trc-99mTcAlbumin_acq-late_spect", "spect"),
                    FrameTimesStart=[10800000.0],
                ),
            )[1]
        ),
        EX_DATAERR,
        "look like milliseconds (BIDS uses seconds)",
    ),
    Case(
        "nifti2-image",
        _b(lambda ds: _nifti2(ds.t1w)),
        EX_DATAERR,
        "ANTs (antspyx) cannot read NIfTI-2: save it as NIfTI-1",
    ),
    # --- which image is meant cannot be guessed: refused, not picked silently
    Case(
        "two-post-contrast-runs",
        _b(
            lambda ds: (ds.image("ce-gadobutrol_run-1_T1w"), ds.image("ce-gadobutrol_run-2_T1w"))[
                0
            ]
        ),
        EX_DATAERR,
        'pick it with --bids-filter-file, e.g. {"t1w_ce": {"run": 1}}',
    ),
    Case(
        "two-dce-series-of-one-agent",
        _b(
            lambda ds: (
                ds.dce(),
                ds.image(
                    "ce-gadobutrol_run-2_dce", _rng(3).uniform(50, 150, (*SHAPE, 6)), DCE_META
                ),
            )[0]
        ),
        EX_DATAERR,
        'pick it with --bids-filter-file, e.g. {"dce": {"run": 1}}',
    ),
    Case(
        "two-T1w-reconstructions",
        _b(lambda ds: (ds.image("rec-norm_T1w"), ds.t1w)[1]),
        EX_DATAERR,
        "keep one, or pick it with --bids-filter-file",
    ),
    Case(
        "no-orientation-in-header",
        _b(lambda ds: _no_orientation(ds.t1w)),
        EX_DATAERR,
        "left and right cannot be told apart",
    ),
    Case(
        "config-vif-mask-placeholder-typo",
        lambda ds, tmp: (
            "config.yml",
            ["--config", _config(tmp, "dce:\n  vif_mask: m/sub-{subjet}.nii.gz\n")],
        ),
        EX_USAGE,
        "only placeholders are {subject} and {session}",
    ),
    # --- resource options and seeds outside their range (before anything is made)
    Case(
        "nprocs-negative",
        lambda ds, tmp: ("--nprocs -1", ["--nprocs", "-1"]),
        EX_USAGE,
        "must be a whole number from 1 to 4096",
    ),
    Case(
        "omp-nthreads-zero",
        lambda ds, tmp: ("--omp-nthreads 0", ["--omp-nthreads", "0"]),
        EX_USAGE,
        "must be a whole number from 1 to 4096",
    ),
    Case(
        "mem-gb-negative",
        lambda ds, tmp: ("--mem-gb -1", ["--mem-gb", "-1"]),
        EX_USAGE,
        "must be a positive number of GB",
    ),
    Case(
        "random-seed-beyond-32-bit",
        lambda ds, tmp: ("--random-seed 99999999999", ["--random-seed", "99999999999"]),
        EX_USAGE,
        "must be an integer from 1 to 2147483647",
    ),
    Case(
        "unknown-plugin",
        lambda ds, tmp: (
            "plugin.yml",
            [
                "--use-plugin",
                _config(tmp, "plugin: Dask\n").rename(tmp / "plugin.yml") or tmp / "plugin.yml",
            ],
        ),
        EX_USAGE,
        "is not supported; use one of MultiProc",
    ),
    Case(
        "participant-label-too-long",
        lambda ds, tmp: ("--participant-label " + "a" * 20, ["--participant-label", "a" * 100]),
        EX_USAGE,
        "labels longer than 64 are refused",
    ),
]


def _last_line(err: str) -> str:
    return err.strip().splitlines()[-1]


def _written_files(out: Path) -> list:
    return [p for p in out.rglob("*") if p.is_file()] if out.exists() else []


@pytest.fixture(scope="module")
def offline_templates(tf_home):
    return tf_home


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_catalogue(case, tmp_path, capsys, offline_templates):
    ds = Tiny(tmp_path / "bids")
    culprit, extra = case.build(ds, tmp_path)
    before = tree_snapshot(ds.root)
    out, work = tmp_path / "out", tmp_path / "work"
    base = tmp_path / "offline.yml"  # the template bundled for offline use
    base.write_text(FAST_CONFIG)
    argv = [
        ds.root,
        out,
        "participant",
        "--skip-bids-validation",
        "-w",
        work,
        "--nprocs",
        "1",
        "--config",
        base,
        *extra,
    ]  # a case's own --config comes last and wins
    t0 = time.time()
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    last = _last_line(err)
    assert code == case.code, err
    # one line naming the file (or option) and what to fix
    assert str(culprit) in last or Path(str(culprit)).name in last, err
    assert case.fix in last, err
    assert (
        last.startswith("  sub-01: ")
        and last.endswith(" (step: preflight)")
        or last.startswith("inflamap: error: ")
    ), err
    # found before anything ran: no step, no derivative, nothing written at all
    assert "running" not in err and "[1/" not in err, err  # no step started or finished
    assert _written_files(out) == [], _written_files(out)
    assert tree_snapshot(ds.root) == before  # the input is never modified
    assert time.time() - t0 < 60


def test_catalogue_covers_the_issue():
    assert len(CASES) >= 75
    assert len({c.id for c in CASES}) == len(CASES)


# ------------------------------------------------------------- not errors: converted, masked


def _settings(bids: Path, out: Path):
    from pipeline.config import Settings

    s = Settings()
    s.execution.bids_dir, s.execution.output_dir = str(bids), str(out)
    return s


def _preflight(ds: Tiny, tmp: Path):
    from pipeline.bids import get_layout

    layout = get_layout(ds.root)
    notes = []
    ready, failures = pf.preflight_participants(
        layout, ["01"], _settings(ds.root, tmp / "o"), progress=notes.append
    )
    return [p.subject for p in ready], failures, notes, layout


def test_pet_dose_in_mci_is_converted_not_refused(tmp_path):
    ds = Tiny(tmp_path / "bids")
    pet = ds.pet({"InjectedRadioactivity": 9.46, "InjectedRadioactivityUnits": "mCi"})
    ready, failures, _, layout = _preflight(ds, tmp_path)
    assert ready == ["01"] and failures == []
    from pipeline.metadata import pet_metadata

    meta = pet_metadata(layout.get_metadata(str(pet)), pet, body_weight=70)
    assert meta.injected_dose_bq == pytest.approx(9.46 * 3.7e7)  # 350 MBq


def test_nan_inf_voxels_are_reported_not_refused(tmp_path):
    ds = Tiny(tmp_path / "bids")
    data = _rng().uniform(50, 150, SHAPE)
    data[0, 0, :3] = np.nan
    data[1, 1, 1] = np.inf
    data[2, 2, 2] = -np.inf
    write_nifti(ds.t1w, data)
    ds.uspio()
    ready, failures, notes, _ = _preflight(ds, tmp_path)
    assert ready == ["01"] and failures == []
    assert any(ds.t1w.name in n and "5 non-finite (NaN/Inf) voxel(s)" in n for n in notes), notes


def test_interfaces_mask_and_count_non_finite_voxels(tmp_path, monkeypatch):
    """R2* (MEGRE read directly): NaN/Inf voxels are not fitted and are counted in the
    provenance that goes into the sidecars; the readers ahead of ANTs make them finite
    (no signal), which the SPECT ratio masks and the DCE fit marks invalid."""
    from pipeline.interfaces.pet import LateEarlyRatio, SPECTCounts
    from pipeline.interfaces.uspio import R2StarMap

    rng = _rng(4)
    tes = [0.004, 0.012, 0.020, 0.028]
    s0 = rng.uniform(800, 1200, (12, 12, 12))
    files = []
    for i, te in enumerate(tes):
        echo = s0 * np.exp(-30.0 * te)
        if i == 2:
            echo[3, 3, 3], echo[4, 4, 4] = np.nan, np.inf
        files.append(write_nifti(tmp_path / f"echo{i}.nii.gz", echo))
    monkeypatch.chdir(tmp_path)
    res = R2StarMap(
        in_files=[str(f) for f in files],
        echo_times=tes,
        method="loglinear",
        noise_floor=False,
        min_echoes=3,
    ).run()
    r2 = nb.load(res.outputs.r2star).get_fdata()
    valid = nb.load(res.outputs.valid).get_fdata()
    assert res.outputs.provenance["NonFiniteVoxels"] == 2
    assert np.isnan(r2[3, 3, 3]) and np.isnan(r2[4, 4, 4]) and valid[3, 3, 3] == 0
    assert np.allclose(r2[0, 0, 0], 30.0, rtol=1e-3) and valid.sum() == 12**3 - 2

    spect = _rng(5).uniform(100, 200, (12, 12, 12))
    spect[5, 5, 5] = np.nan
    counts = SPECTCounts(in_file=str(write_nifti(tmp_path / "early.nii.gz", spect))).run()
    early = nb.load(counts.outputs.out_file).get_fdata()
    assert np.all(np.isfinite(early)) and early[5, 5, 5] == 0
    ratio = LateEarlyRatio(early=counts.outputs.out_file, late=counts.outputs.out_file).run()
    r = nb.load(ratio.outputs.out_file).get_fdata()
    assert np.isnan(r[5, 5, 5]) and np.nanmax(np.abs(r - 1)) < 1e-6
    assert ratio.outputs.provenance["RatioVoxels"] == 12**3 - 1


def test_absurd_dimensions_refused_before_allocating(tmp_path):
    path = _absurd_header(tmp_path / "huge_T1w.nii.gz")
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=r"4096×4096×4096 .* beyond what is plausible"):
            pf.check_nifti(path, "T1w")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20  # 275 GB declared; nothing near it (not even 20 MB) allocated


# --------------------------------------------------------------- permissions (root caveat)


def _unprivileged_prefix() -> list | None:
    """Command prefix under which file permissions apply (root ignores them): [] for a
    normal user; ``setpriv`` dropping CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH for root; None
    when that is not possible here."""
    if os.geteuid() != 0:
        return []
    exe = shutil.which("setpriv")
    if exe is None:
        return None
    prefix = [
        exe,
        "--bounding-set=-dac_override,-dac_read_search",
        "--inh-caps=-dac_override,-dac_read_search",
    ]
    with tempfile.TemporaryDirectory() as d:
        probe = Path(d) / "probe"
        probe.write_text("x")
        probe.chmod(0)
        p = subprocess.run(
            [*prefix, sys.executable, "-c", f"open({str(probe)!r}).read()"],
            capture_output=True,
            check=False,
        )
    return prefix if p.returncode != 0 else None


def _run_unprivileged(prefix, *args):
    env = dict(os.environ, TEMPLATEFLOW_HOME=str(TF_HOME))
    return subprocess.run(
        [*prefix, sys.executable, "-m", "pipeline", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )


@pytest.mark.parametrize(
    "what", ["unreadable-input-file", "unwritable-output-folder", "unwritable-work-folder"]
)
def test_permission_cases(what, tmp_path, offline_templates):
    prefix = _unprivileged_prefix()
    if prefix is None:
        pytest.skip(
            "running as root without a way to drop CAP_DAC_OVERRIDE (setpriv): "
            "file permissions cannot be enforced here"
        )
    ds = Tiny(tmp_path / "bids")
    out, work = tmp_path / "out", tmp_path / "work"
    if what == "unreadable-input-file":
        ds.t1w.chmod(0)
        culprit, code, fix = ds.t1w, EX_NOINPUT, "make it readable"
    elif what == "unwritable-output-folder":
        out.mkdir()
        out.chmod(0o555)
        culprit, code, fix = out, EX_CANTCREAT, "fix its permissions or choose another"
    else:
        work.mkdir()
        work.chmod(0o555)
        culprit, code, fix = work, EX_CANTCREAT, "choose another with -w"
    try:
        p = _run_unprivileged(
            prefix,
            ds.root,
            out,
            "participant",
            "--skip-bids-validation",
            "-w",
            work,
            "--nprocs",
            "1",
            "--config",
            _config(tmp_path, FAST_CONFIG),
        )
    finally:
        ds.t1w.chmod(0o644)
        for folder in (out, work):
            folder.chmod(0o755) if folder.exists() else None
    last = _last_line(p.stderr)
    assert p.returncode == code, p.stderr
    assert str(culprit) in last and fix in last, p.stderr
    assert _written_files(out) == []


# --------------------------------------------------------------------- batch behaviour


def _batch_dataset(root: Path) -> Tiny:
    """sub-01 good (a few NaN/Inf voxels), sub-02 a truncated T1w (refused by the
    preflight), sub-03 a T1w that passes the checks but on which N4 fails (a 1.2 mm field
    of view at 0.1 mm voxels: its B-spline grid cannot be built)."""
    ds = Tiny(root, subjects=("01", "02", "03"))
    good = _rng(11).uniform(50, 150, (12, 12, 12))
    good[5, 5, 5:8] = np.nan
    good[6, 6, 6] = np.inf
    write_nifti(ds.path("T1w", sub="01"), good)
    _truncate(ds.path("T1w", sub="02"))
    write_nifti(
        ds.path("T1w", sub="03"),
        _rng(12).uniform(50, 150, (12, 12, 12)),
        np.diag([0.1, 0.1, 0.1, 1.0]),
    )
    return ds


def _read_only(root: Path, on=True):
    for p in [root, *root.rglob("*")]:
        if not p.is_symlink():
            p.chmod(p.stat().st_mode & ~0o222 if on else p.stat().st_mode | 0o200)


@pytest.mark.e2e
def test_broken_participants_do_not_stop_the_good_one(tmp_path, offline_templates):
    ds = _batch_dataset(tmp_path / "bids")
    cfg = _config(tmp_path, FAST_CONFIG)
    out, work = tmp_path / "out", tmp_path / "work"
    _read_only(ds.root)  # the whole run works on a read-only input
    before = tree_snapshot(ds.root)
    try:
        env = dict(os.environ, TEMPLATEFLOW_HOME=str(TF_HOME))
        p = subprocess.run(
            [
                sys.executable,
                "-m",
                "pipeline",
                ds.root,
                out,
                "participant",
                "--skip-bids-validation",
                "--config",
                cfg,
                "-w",
                work,
                "--nprocs",
                "2",
                "--omp-nthreads",
                "1",
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=900,
            check=False,
        )
    finally:
        after = tree_snapshot(ds.root)
        _read_only(ds.root, on=False)
    err = p.stderr
    assert after == before
    assert p.returncode == EX_FAILURE, err  # a preflight refusal (65) and a crash (1): 1
    # the good participant ran to the end, its non-finite voxels reported
    assert "sub-01 (1/2): done" in err, err
    assert "sub-01_ses-01_T1w.nii.gz: 4 non-finite (NaN/Inf) voxel(s)" in err, err
    assert (
        out / "sub-01" / f"ses-{SES}" / "anat" / f"sub-01_ses-{SES}_desc-preproc_T1w.nii.gz"
    ).is_file()
    # the summary: participant, step, message, crash file
    summary = err[err.index("inflamap: 2 of 3 participant(s) failed:") :].splitlines()
    assert len(summary) == 3, err
    assert (
        summary[1].startswith("  sub-02: ")
        and "sub-02_ses-01_T1w.nii.gz" in summary[1]
        and "copy it again from the source" in summary[1]
    ), err
    assert summary[1].endswith(" (step: preflight)"), err
    assert summary[2].startswith("  sub-03: RuntimeError: "), err
    assert "(step: sub_03_wf.anat_ses_01_wf.n4; crash file: " in summary[2], err
    crash = Path(summary[2].split("; crash file: ")[1].rstrip(")"))
    assert crash.is_file() and crash.parent == out / "logs" / "sub-03"
    # nothing of the participant refused by the preflight; of the crashed one, only the
    # complete outputs of the steps that finished (here the atlas label table); no
    # temporary or truncated file anywhere
    assert _written_files(out / "sub-02") == []
    assert not [f for f in out.rglob(".*") if f.is_file() and ".tmp" in f.name]
    for f in _written_files(out / "sub-03") + _written_files(out / "sub-01"):
        if f.name.endswith(".nii.gz"):
            assert np.asarray(nb.load(str(f)).dataobj).size > 0
        elif f.suffix == ".tsv":
            assert f.read_text().count("\n") >= 2 and f.read_text().endswith("\n")
        elif f.suffix == ".json":
            json.loads(f.read_text())


@pytest.mark.e2e
def test_stop_on_first_crash_runs_nobody(tmp_path, capsys, offline_templates):
    ds = _batch_dataset(tmp_path / "bids")
    out = tmp_path / "out"
    code = main(
        [
            str(a)
            for a in (
                ds.root,
                out,
                "participant",
                "--skip-bids-validation",
                "-w",
                tmp_path / "work",
                "--stop-on-first-crash",
                "--config",
                _config(tmp_path, FAST_CONFIG),
            )
        ]
    )
    err = capsys.readouterr().err
    assert code == EX_DATAERR, err
    assert _last_line(err).startswith("  sub-02: ") and "(step: preflight)" in _last_line(err)
    assert "sub-03" not in err.split("failed:")[-1]
    assert "building workflow" not in err  # sub-01 passed its checks, but nothing ran
    assert _written_files(out) == []


# --------------------------------------------------------------------- fuzz (hypothesis)

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(10**400), 10**400)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(
        [
            "n/a",
            "",
            "NaN",
            "1e400",
            "-0",
            "0.003",
            "MBq",
            "Bq/mL",
            "true",
            "C11",
            "mCi",
            "[11C]",
            "kg",
            "lb",
        ]
    )
)


def _json_containers(children):
    return st.lists(children, max_size=4) | st.dictionaries(
        st.text(max_size=5), children, max_size=3
    )


JSON_VALUES = st.recursive(JSON_SCALARS, _json_containers, max_leaves=8)


def _mutated(base: dict):
    keys = sorted(base) + ["BodyWeight", "BodyWeightUnits", "RepetitionTime", "TimeZero"]
    return st.dictionaries(
        st.sampled_from(keys), JSON_VALUES | st.just("<delete>"), max_size=5
    ).map(lambda ch: {k: v for k, v in {**base, **ch}.items() if v != "<delete>"})


def _only_documented(fn, *args, **kw):
    try:
        fn(*args, **kw)
    except InflamapError as exc:
        msg = str(exc)
        assert msg and "\n" not in msg, msg  # one line
        assert exc.code in (EX_DATAERR, EX_NOINPUT, EX_USAGE), exc  # noqa: PT017


# INFLAMAP_FUZZ_EXAMPLES=N: N random (not derandomised) examples per fuzz test, for a
# longer exploration than the fixed 150 of the suite
_FUZZ_N = int(os.environ.get("INFLAMAP_FUZZ_EXAMPLES", "0"))
FUZZ = settings(
    max_examples=_FUZZ_N or 150,
    deadline=None,
    derandomize=not _FUZZ_N,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@FUZZ
@given(meta=_mutated(PET_META), weight=JSON_SCALARS, n=st.integers(0, 4))
def test_fuzz_pet_sidecar(meta, weight, n):
    from pipeline.metadata import pet_metadata

    _only_documented(pet_metadata, meta, "x_pet.json", body_weight=weight, n_volumes=n)


@FUZZ
@given(
    metas=st.lists(
        _mutated(
            {
                "EchoTime": 0.005,
                "RepetitionTime": 0.04,
                "FlipAngle": 20,
                "MagneticFieldStrength": 3,
            }
        ),
        max_size=5,
    ),
    min_echoes=st.integers(1, 4),
)
def test_fuzz_megre_sidecars(metas, min_echoes):
    from pipeline.metadata import megre_metadata

    _only_documented(
        megre_metadata, metas, [f"e{i}.json" for i in range(len(metas))], min_echoes=min_echoes
    )


@FUZZ
@given(meta=_mutated({**SPECT_META, "FrameTimesStart": [1200.0]}))
def test_fuzz_spect_sidecar(meta):
    from pipeline.metadata import spect_metadata

    _only_documented(spect_metadata, meta, "x_spect.json")


@FUZZ
@given(
    meta=_mutated(DCE_META),
    vfa=st.lists(_mutated({"FlipAngle": 5.0, "RepetitionTimeExcitation": 0.005}), max_size=3),
)
def test_fuzz_dce_and_vfa_sidecars(meta, vfa):
    from pipeline.metadata import dce_metadata, vfa_metadata

    _only_documented(dce_metadata, meta, "x_dce.json")
    _only_documented(vfa_metadata, vfa, [f"v{i}.json" for i in range(len(vfa))])


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@FUZZ
@given(
    text=st.one_of(
        st.text(max_size=60),
        st.binary(max_size=60).map(lambda b: b.decode("latin-1")),
        JSON_VALUES.map(json.dumps),
    )
)
def test_fuzz_sidecar_text(text, fuzz_dir):
    from pipeline.metadata import read_sidecar

    side = fuzz_dir / "sub-01" / "anat" / "sub-01_T1w.json"
    side.parent.mkdir(parents=True, exist_ok=True)
    side.write_text(text, encoding="latin-1" if not text.isascii() else "utf-8", errors="replace")
    _only_documented(read_sidecar, side)
    from pipeline.bids import check_json_files

    _only_documented(check_json_files, fuzz_dir)


HEADER_FIELDS = {
    "dim": st.lists(st.integers(-3, 9000), min_size=8, max_size=8),
    "datatype": st.sampled_from(
        [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 768, 1024, 1280, 1536, 1792, 2048, 2304, 7, 99]
    ),
    "bitpix": st.integers(-8, 256),
    "pixdim": st.lists(
        st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=8, max_size=8
    ),
    "vox_offset": st.floats(allow_nan=True, allow_infinity=True, width=32),
    "scl_slope": st.floats(allow_nan=True, allow_infinity=True, width=32),
    "scl_inter": st.floats(allow_nan=True, allow_infinity=True, width=32),
    "qform_code": st.integers(-2, 5),
    "sform_code": st.integers(-2, 5),
    "quatern_b": st.floats(-2, 2, width=32),
    "quatern_c": st.floats(-2, 2, width=32),
    "quatern_d": st.floats(-2, 2, width=32),
    "srow_x": st.lists(
        st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=4, max_size=4
    ),
    "magic": st.sampled_from([b"n+1", b"ni1", b"n+2", b"xyz", b""]),
    "sizeof_hdr": st.sampled_from([348, 540, 0, -1, 1 << 24]),
}


@settings(FUZZ, max_examples=2 * FUZZ.max_examples)
@given(
    fields=st.dictionaries(st.sampled_from(sorted(HEADER_FIELDS)), st.none(), max_size=4).flatmap(
        lambda d: st.fixed_dictionaries({k: HEADER_FIELDS[k] for k in d})
    ),
    flips=st.lists(st.tuples(st.integers(0, 347), st.integers(1, 255)), max_size=3),
    gz=st.booleans(),
    keep=st.sampled_from([1.0, 1.0, 0.9, 0.3]),
    ndim=st.sampled_from([(3,), (4,), (3, 4)]),
)
def test_fuzz_nifti_headers(fields, flips, gz, keep, ndim, fuzz_dir):
    """Random header fields and byte flips: the checker raises only documented errors, and
    an image it accepts is one nibabel reads in full, with the shape it reported."""
    img = nb.Nifti1Image(
        _rng(7).uniform(1, 9, (6, 6, 5, 2)[: len(ndim) + 2]).astype(np.float32), AFFINE
    )  # 3-D when a role needs 3-D, else 4-D
    hdr = img.header
    hdr["vox_offset"] = 352
    for key, value in fields.items():
        try:
            hdr[key] = value
        except Exception:  # noqa: BLE001, S110 - a value the field cannot hold: leave it
            pass
    block = bytearray(hdr.binaryblock)
    for pos, xor in flips:
        block[pos] ^= xor
    data = np.asarray(img.dataobj).tobytes()
    raw = bytes(block) + b"\0" * 4 + data
    raw = raw[: int(len(raw) * keep)]
    path = fuzz_dir / ("fuzz.nii.gz" if gz else "fuzz.nii")
    path.write_bytes(gzip.compress(raw) if gz else raw)
    try:
        info = pf.check_nifti(path, "image", ndim)
    except InflamapError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc), exc  # noqa: PT017
        event(f"refused: {str(exc)[len(str(path)) + 2 :][:30]}")
        return
    event("accepted")
    loaded = nb.load(str(path))
    assert loaded.shape[:3] == info.shape[:3]
    arr = loaded.get_fdata()
    assert arr.size == int(np.prod(info.shape))


@settings(
    max_examples=8,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    text=st.one_of(JSON_VALUES.map(json.dumps), st.text(max_size=30)),
    tsv=st.text(alphabet="\tab\n01HCMO/-", max_size=40),
)
def test_fuzz_bids_reader(text, tsv, tmp_path_factory):
    """A dataset whose sidecar and participants.tsv are random: the BIDS reader (pybids
    through ``get_layout``) and the covariate tables raise only documented errors."""
    from pipeline.bids import get_layout, read_participants
    from pipeline.config import default_config

    root = tmp_path_factory.mktemp("fuzzbids")
    Tiny(root)
    (root / f"sub-01/ses-{SES}/anat/sub-01_ses-{SES}_T1w.json").write_text(text)
    (root / "participants.tsv").write_text(tsv)
    _only_documented(get_layout, root)
    _only_documented(read_participants, root, default_config().covariates)


@pytest.mark.e2e
def test_nonfinite_voxels_masked_through_t1w_post_contrast_and_pet(tmp_path, offline_templates):
    """NaN/Inf voxels of the T1w, the post-contrast T1w and a PET frame: the run completes,
    those voxels are outside the brain mask and every ROI, have no value (NaN) in the maps
    computed from them, and their count is in the sidecars."""
    ds = Tiny(tmp_path / "bids")
    t1 = _rng(21).uniform(50, 150, SHAPE)
    t1[2, 2, 2], t1[3, 3, 3], t1[4, 2, 5] = np.nan, np.inf, -np.inf
    write_nifti(ds.t1w, t1)
    post = t1 * 1.1
    post[~np.isfinite(post)] = 100.0
    post[5, 5, 5] = np.nan
    ds.image("ce-gadobutrol_T1w", post)
    pet = _rng(23).uniform(1000, 2000, SHAPE)
    pet[1, 6, 3] = np.nan
    ds.pet(data=pet)
    out, work = tmp_path / "out", tmp_path / "work"
    env = dict(os.environ, TEMPLATEFLOW_HOME=str(TF_HOME))
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline",
            ds.root,
            out,
            "participant",
            "--skip-bids-validation",
            "--config",
            _config(tmp_path, FAST_CONFIG + "gadolinium: {normalisation: global-median}\n"),
            "-w",
            work,
            "--nprocs",
            "2",
            "--omp-nthreads",
            "1",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        check=False,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    anat = out / "sub-01" / f"ses-{SES}" / "anat"
    stem = f"sub-01_ses-{SES}"
    bad_t1 = ~np.isfinite(t1)

    def load(path):
        return np.asarray(nb.load(path).dataobj)

    # T1w: out of the brain mask and of every label image; counted in the sidecars
    for name in (
        "desc-brain_mask",
        "atlas-inflamapLobes_dseg",
        "atlas-inflamapLobes_desc-extracerebral_dseg",
    ):
        assert not load(anat / f"{stem}_{name}.nii.gz")[bad_t1].any(), name
    side = json.loads((anat / f"{stem}_desc-preproc_T1w.json").read_text())
    assert side["NonFiniteVoxels"] == 3
    # post-contrast: no value where either image had none, a value everywhere else
    pct = nb.load(anat / f"{stem}_ce-gadobutrol_desc-percent_T1w.nii.gz").get_fdata()
    assert np.isnan(pct[bad_t1]).all()
    assert np.isnan(pct[5, 5, 5])  # post-to-pre is close to identity here
    assert np.isfinite(pct).sum() >= pct.size - 3 - 2
    side = json.loads((anat / f"{stem}_ce-gadobutrol_desc-percent_T1w.json").read_text())
    assert side["NonFiniteVoxels"] >= 4
    # PET: the voxel has no SUV on its own grid, and the sidecar counts it
    petdir = out / "sub-01" / f"ses-{SES}" / "pet"
    suv = nb.load(petdir / f"{stem}_trc-PBR28_desc-SUV_pet.nii.gz").get_fdata()
    assert np.isnan(suv[1, 6, 3]) and np.isfinite(suv).sum() == suv.size - 1
    side = json.loads((petdir / f"{stem}_trc-PBR28_desc-SUV_pet.json").read_text())
    assert side["NonFiniteVoxels"] == 1
    suvr_t1w = nb.load(petdir / f"{stem}_trc-PBR28_space-T1w_desc-SUVR_pet.nii.gz").get_fdata()
    t1w_side = json.loads((petdir / f"{stem}_trc-PBR28_space-T1w_desc-SUVR_pet.json").read_text())
    # the voxel, brought to the T1w grid, and the T1w voxels the (moved) PET does not cover
    outside = t1w_side["OutsideFieldOfViewVoxels"]
    assert 1 <= np.isnan(suvr_t1w).sum() - outside <= 8, (np.isnan(suvr_t1w).sum(), outside)
