"""DICOM to inflamap's BIDS convention for the series BIDS has no convention for: DCE and
the early/late SPECT pair.

The images are converted by ``dcm2niix`` (its PyPI wheel; it knows the scanners' quirks);
the timing inflamap needs is read here from the DICOM headers with pydicom, checked, and
written in inflamap's sidecar convention:

* DCE (``inflamap-dicom dce``): ``FrameTimesStart`` (s, the first frame at 0) from each
  frame's ``AcquisitionTime`` (frames by ``TemporalPositionIdentifier``, else by
  acquisition time), ``InjectionStart`` (s, same clock) from ``ContrastBolusStartTime`` or
  the ``--injection-time``/``--injection-frame`` given, ``FlipAngle`` (degrees) and
  ``RepetitionTimeExcitation`` (s, from ``RepetitionTime`` in ms). Written to
  ``sub-<s>/[ses-<t>/]anat/sub-<s>_[ses-<t>_]ce-<agent>_dce.nii.gz``.
* SPECT (``inflamap-dicom spect``): per acquisition ``FrameTimesStart`` (s after the
  injection, ``InjectionStart`` 0) from ``AcquisitionTime`` and the radiopharmaceutical's
  ``RadiopharmaceuticalStartTime`` (or ``--injection-time``), ``FrameDuration`` from
  ``ActualFrameDuration`` (ms), ``TracerRadionuclide``, ``Units`` (``CNTS`` → ``counts``,
  ``BQML`` → ``Bq/mL``) and ``ImageDecayCorrected`` from ``DecayCorrection``. Written to
  ``spect/..._trc-<tracer>_acq-{early,late}_spect.nii.gz``.

Every sidecar is checked with the same parser the pipeline uses before anything is written;
files are written atomically, never over an existing file, and ``.bidsignore`` gets the
lines the convention needs. Errors are one line naming the folder or field and the fix.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from .errors import DataError, InputMissingError, OutputError, UsageError
from .utils import atomic_copy, atomic_write_text

#: ``.bidsignore`` lines of inflamap's DCE and SPECT conventions
BIDSIGNORE = {"dce": ("*_dce.nii.gz", "*_dce.json"), "spect": ("**/spect",)}
UNITS = {"CNTS": "counts", "BQML": "Bq/mL"}


def dicom_time_s(value, what: str, where) -> float:
    """Seconds since midnight of a DICOM TM value (``HHMMSS.ffffff``, ``HH:MM:SS`` too)."""
    text = str(value or "").strip().replace(":", "")
    try:
        hh = int(text[0:2])
        mm = int(text[2:4]) if len(text) >= 4 else 0
        ss = float(text[4:]) if len(text) > 4 else 0.0
    except ValueError:
        hh = mm = ss = -1
    if not text or not (0 <= hh < 24 and 0 <= mm < 60 and 0 <= ss < 61):
        raise DataError(f"{where}: {what} is {value!r}, not a time of day (HHMMSS.ffffff)")
    return hh * 3600 + mm * 60 + ss


def read_series(folder) -> list:
    """Headers (no pixels) of the one DICOM series in ``folder`` (recursively)."""
    import pydicom

    folder = Path(folder)
    if not folder.is_dir():
        raise InputMissingError(f"{folder}: not a folder of DICOM files")
    headers = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:  # noqa: BLE001, S112 - not DICOM (a README, a DICOMDIR...)
            continue
        if "SeriesInstanceUID" in ds:
            headers.append(ds)
    if not headers:
        raise InputMissingError(f"{folder}: no DICOM files found")
    series = {str(ds.SeriesInstanceUID) for ds in headers}
    if len(series) > 1:
        numbers = sorted({str(ds.get("SeriesNumber", "?")) for ds in headers})
        raise UsageError(
            f"{folder}: {len(series)} DICOM series (numbers {', '.join(numbers)}); give a "
            "folder holding one series"
        )
    return headers


def _slice_position(ds, where) -> float:
    """Position of a slice along its normal (mm), from ImagePositionPatient/Orientation."""
    import numpy as np

    try:
        iop = np.asarray(ds.ImageOrientationPatient, float)
        ipp = np.asarray(ds.ImagePositionPatient, float)
    except (AttributeError, TypeError, ValueError):
        raise DataError(
            f"{where}: DICOM files without ImagePositionPatient/ImageOrientationPatient and "
            "without TemporalPositionIdentifier; cannot tell the frames apart"
        ) from None
    return round(float(np.dot(np.cross(iop[:3], iop[3:]), ipp)), 3)


def dce_frames(headers, where) -> list[float]:
    """Start (s since midnight) of each frame of a dynamic series, in time order.

    Frames are the ``TemporalPositionIdentifier`` values when every file has one; else the
    k-th acquisition of every slice position is frame k (a 2-D acquisition times each slice
    on its own). A frame starts with its first slice.
    """
    if any("AcquisitionTime" not in ds for ds in headers):
        raise DataError(f"{where}: DICOM files without AcquisitionTime; cannot time the frames")
    times = [dicom_time_s(ds.AcquisitionTime, "AcquisitionTime", where) for ds in headers]
    groups: dict = {}
    if all("TemporalPositionIdentifier" in ds for ds in headers):
        for ds, t in zip(headers, times):
            groups.setdefault(int(ds.TemporalPositionIdentifier), []).append(t)
        frames = list(groups.values())
    else:
        for ds, t in zip(headers, times):
            groups.setdefault(_slice_position(ds, where), []).append(t)
        counts = {len(v) for v in groups.values()}
        if len(counts) != 1:
            raise DataError(
                f"{where}: slice positions hold different numbers of frames "
                f"({sorted(counts)}); the series is incomplete"
            )
        frames = [list(f) for f in zip(*(sorted(v) for v in groups.values()))]
    sizes = {len(v) for v in frames}
    if len(sizes) != 1:
        raise DataError(
            f"{where}: frames hold different numbers of slices ({sorted(sizes)}); the series "
            "is incomplete"
        )
    starts = sorted(min(v) for v in frames)
    if len(set(starts)) != len(starts):
        raise DataError(f"{where}: two frames start at the same AcquisitionTime")
    return starts


def _dcm2niix(folder, tmp: Path) -> tuple[Path, dict]:
    """The one NIfTI (and its sidecar) dcm2niix makes of ``folder``."""
    exe = shutil.which("dcm2niix") or _beside_python("dcm2niix")
    if exe is None:
        raise UsageError("dcm2niix not found; install it (pip install dcm2niix)")
    out = tmp / "dcm2niix"
    out.mkdir()
    proc = subprocess.run(  # noqa: S603 - dcm2niix, no shell
        [exe, "-b", "y", "-z", "y", "-f", "series", "-o", str(out), str(folder)],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    images = sorted(out.glob("*.nii.gz"))
    if proc.returncode != 0 or len(images) != 1:
        last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise DataError(
            f"{folder}: dcm2niix made {len(images)} image(s) (exit {proc.returncode}: "
            f"{last[0]}); give a folder holding one series"
        )
    side = images[0].with_name(images[0].name.removesuffix(".nii.gz") + ".json")
    return images[0], json.loads(side.read_text()) if side.is_file() else {}


def _beside_python(name: str) -> str | None:
    import sys

    for folder in (Path(sys.executable).parent, Path(sys.base_prefix) / "bin"):
        if (folder / name).is_file():
            return str(folder / name)
    return None


def _bids_target(bids_dir, subject, session, datatype: str, stem_tail: str) -> Path:
    from .bids import LABEL_RE

    bids = Path(bids_dir)
    if not (bids / "dataset_description.json").is_file():
        raise InputMissingError(
            f"{bids}: not a BIDS dataset root (no dataset_description.json); create the "
            "dataset first (e.g. with the tool that converts its other series)"
        )
    for what, label in (("--subject", subject), ("--session", session)):
        if label is not None and not LABEL_RE.match(str(label)):
            raise UsageError(f"{what} {label!r}: a label is letters and digits only")
    parts = [f"sub-{subject}"] + ([f"ses-{session}"] if session else [])
    folder = bids.joinpath(*parts, datatype)
    return folder / f"{'_'.join(parts)}_{stem_tail}"


def _write(image: Path, meta: dict, target: Path) -> Path:
    """The image and its sidecar, each atomically; neither is left alone if one fails."""
    nii = target.with_name(target.name + ".nii.gz")
    side = target.with_name(target.name + ".json")
    for path in (nii, side):
        if path.exists():
            raise OutputError(f"{path}: exists; remove it to convert again")
    try:
        atomic_copy(image, nii)
        atomic_write_text(json.dumps(meta, indent=2) + "\n", side)
    except OSError as exc:
        nii.unlink(missing_ok=True)
        side.unlink(missing_ok=True)
        raise OutputError(f"{target.parent}: cannot write ({exc.strerror or exc})") from None
    return nii


def _bidsignore(bids_dir, kind: str) -> None:
    path = Path(bids_dir) / ".bidsignore"
    lines = path.read_text().splitlines() if path.is_file() else []
    missing = [line for line in BIDSIGNORE[kind] if line not in lines]
    if missing:
        atomic_write_text("\n".join([*lines, *missing]) + "\n", path)


def dce_to_bids(
    dicom_dir,
    bids_dir,
    subject: str,
    session: str | None,
    agent: str,
    injection_time: str | None = None,
    injection_frame: int | None = None,
) -> Path:
    """Convert one DCE series (see the module docstring); returns the NIfTI written."""
    from .metadata import dce_metadata

    where = Path(dicom_dir)
    if not str(agent).isalnum():
        raise UsageError(f"--agent {agent!r}: a ce- label is letters and digits only")
    headers = read_series(dicom_dir)
    starts = dce_frames(headers, where)
    first = headers[0]
    for key in ("FlipAngle", "RepetitionTime"):
        if key not in first or first.get(key) in (None, ""):
            raise DataError(f"{where}: DICOM {key} missing; the DCE model needs it")
    if injection_frame is not None:
        if not 1 <= injection_frame <= len(starts):
            raise UsageError(
                f"--injection-frame {injection_frame}: the series has {len(starts)} frames"
            )
        injection = starts[injection_frame - 1]
        source = f"start of frame {injection_frame} (--injection-frame)"
    elif injection_time is not None:
        injection = dicom_time_s(injection_time, "--injection-time", where)
        source = "--injection-time"
    elif str(first.get("ContrastBolusStartTime", "")).strip():
        injection = dicom_time_s(first.ContrastBolusStartTime, "ContrastBolusStartTime", where)
        source = "DICOM ContrastBolusStartTime"
    else:
        raise UsageError(
            f"{where}: no ContrastBolusStartTime in the DICOM headers; give "
            "--injection-time HH:MM:SS or --injection-frame N (injection at that frame's start)"
        )
    t0 = starts[0]
    target = _bids_target(bids_dir, subject, session, "anat", f"ce-{agent}_dce")
    with tempfile.TemporaryDirectory() as tmp:
        image, meta = _dcm2niix(dicom_dir, Path(tmp))
        n_vol = _n_volumes(image)
        if n_vol != len(starts):
            raise DataError(
                f"{where}: dcm2niix wrote {n_vol} volume(s) but the headers time "
                f"{len(starts)} frames; the series is not one dynamic acquisition"
            )
        meta.update(
            FlipAngle=float(first.FlipAngle),
            RepetitionTimeExcitation=float(first.RepetitionTime) / 1000.0,
            FrameTimesStart=[round(t - t0, 6) for t in starts],
            InjectionStart=round(injection - t0, 6),
            InflamapConversion={
                "InjectionStartSource": source,
                "Clock": "seconds after the first frame's AcquisitionTime",
            },
        )
        dce_metadata(meta, target.with_name(target.name + ".json"))  # the pipeline's check
        out = _write(image, meta, target)
    _bidsignore(bids_dir, "dce")
    return out


def _n_volumes(image: Path) -> int:
    import nibabel as nb

    shape = nb.load(image).shape
    return int(shape[3]) if len(shape) > 3 else 1


def _spect_meta(first, where, injection_time):
    sequence = first.get("RadiopharmaceuticalInformationSequence") or []
    radio = sequence[0] if len(sequence) else None
    if injection_time is not None:
        injection = dicom_time_s(injection_time, "--injection-time", where)
    elif radio is not None and str(radio.get("RadiopharmaceuticalStartTime", "")).strip():
        injection = dicom_time_s(
            radio.RadiopharmaceuticalStartTime, "RadiopharmaceuticalStartTime", where
        )
    else:
        raise UsageError(
            f"{where}: no RadiopharmaceuticalStartTime in the DICOM headers; give "
            "--injection-time HH:MM:SS"
        )
    if "AcquisitionTime" not in first:
        raise DataError(f"{where}: DICOM AcquisitionTime missing; cannot time the acquisition")
    start = dicom_time_s(first.AcquisitionTime, "AcquisitionTime", where)
    if start < injection:  # the scan is on the next day's clock
        start += 86400.0
    if "ActualFrameDuration" not in first:
        raise DataError(f"{where}: DICOM ActualFrameDuration (ms) missing")
    units = UNITS.get(str(first.get("Units", "")).strip().upper())
    if units is None:
        raise DataError(
            f"{where}: DICOM Units {first.get('Units')!r}; inflamap reads CNTS or BQML"
        )
    decay = str(first.get("DecayCorrection", "NONE")).strip().upper()
    meta = {
        "Units": units,
        "InjectionStart": 0,
        "FrameTimesStart": [round(start - injection, 3)],
        "FrameDuration": [float(first.ActualFrameDuration) / 1000.0],
        "ImageDecayCorrected": decay not in ("NONE", ""),
    }
    if meta["ImageDecayCorrected"]:
        meta["ImageDecayCorrectionTime"] = 0 if decay == "ADMIN" else meta["FrameTimesStart"][0]
    return meta, radio


def spect_to_bids(
    early_dir,
    late_dir,
    bids_dir,
    subject: str,
    session: str | None,
    tracer: str,
    radionuclide: str | None = None,
    injection_time: str | None = None,
) -> tuple[Path, Path]:
    """Convert an early/late SPECT pair (see the module docstring); returns both NIfTIs."""
    from .metadata import spect_metadata

    if not str(tracer).isalnum():
        raise UsageError(f"--tracer {tracer!r}: a trc- label is letters and digits only")
    prepared = []
    with tempfile.TemporaryDirectory() as tmp:
        for acq, folder in (("early", early_dir), ("late", late_dir)):
            where = Path(folder)
            headers = read_series(folder)
            meta_t, radio = _spect_meta(headers[0], where, injection_time)
            nuclide = radionuclide or _radionuclide(radio)
            if nuclide is None:
                raise UsageError(
                    f"{where}: the radionuclide is not in the DICOM headers; give --radionuclide "
                    "(e.g. Tc99m)"
                )
            (Path(tmp) / acq).mkdir()
            image, meta = _dcm2niix(folder, Path(tmp) / acq)
            if _n_volumes(image) != 1:
                raise DataError(f"{where}: a SPECT acquisition is one 3-D image")
            meta.pop("DecayCorrection", None)
            meta.update(meta_t, TracerRadionuclide=nuclide)
            target = _bids_target(
                bids_dir, subject, session, "spect", f"trc-{tracer}_acq-{acq}_spect"
            )
            spect_metadata(meta, target.with_name(target.name + ".json"))  # the pipeline's check
            prepared.append((image, meta, target))
        early_t, late_t = (m["FrameTimesStart"][0] for _, m, _ in prepared)
        if late_t <= early_t:
            raise DataError(
                f"{late_dir}: the late acquisition starts {late_t:g} s after the injection, "
                f"not after the early one ({early_t:g} s); are the folders swapped?"
            )
        for *_, target in prepared:  # neither is written when either exists
            for ext in (".nii.gz", ".json"):
                if target.with_name(target.name + ext).exists():
                    raise OutputError(f"{target}{ext}: exists; remove it to convert again")
        written = tuple(_write(*p) for p in prepared)
    _bidsignore(bids_dir, "spect")
    return written


def _radionuclide(radio) -> str | None:
    """``Tc99m``... from the radiopharmaceutical's code meaning (``^99m^Technetium``)."""
    from .metadata import radionuclide_key

    if radio is None:
        return None
    names = {"technetium": "Tc", "indium": "In", "iodine": "I", "gallium": "Ga", "thallium": "Tl"}
    for item in radio.get("RadionuclideCodeSequence") or []:
        text = str(item.get("CodeMeaning", "")).replace("^", " ").split()
        mass = next((t for t in text if t[:1].isdigit()), None)
        element = next((names[t.lower()] for t in text if t.lower() in names), None)
        if mass and element:
            return radionuclide_key(f"{element}{mass}")
    return radionuclide_key(str(radio.get("Radionuclide", "")) or None)
