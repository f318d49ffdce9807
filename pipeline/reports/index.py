"""The derivatives a report reads: what each file is (suffix, modality, space, entities),
the sessions of a participant, and its crash files."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

# derivative suffix -> modality section; 'residual' follows its siblings (see _modality)
SUFFIX_MODALITY = {
    "enhancement": "gadolinium",
    "Ktrans": "dce",
    "vp": "dce",
    "ve": "dce",
    "T1map": "dce",
    "dR2star": "uspio",
    "R2starmap": "uspio",
    "SUV": "pet",
    "SUVR": "pet",
    "pet": "pet",
    "ratio": "spect",
}


# suffixes used only as registration references (not drawn as quantitative maps)
REFERENCE_ONLY = {"pet"}


# drawn in native space only (their values are in the QC tables; fewer figures keep the
# report quick to make): fit residuals, the post-agent R2* (ΔR2* is drawn)
NATIVE_ONLY = {"T1map", "R2starmap", "SUV", "ve", ("enhancement", "subtraction")}


NOT_DRAWN = {"residual", ("R2starmap", "post")}


# regional tables: ``modality`` column (or desc) -> section
TABLE_MODALITY = {
    "anat": "anat",
    "gadolinium": "gadolinium",
    "dce": "dce",
    "uspio": "uspio",
    "iron_oxide": "uspio",
    "pet": "pet",
    "spect": "spect",
    "nT1w": "anat",
    "percent": "gadolinium",
    "dR2star": "uspio",
    "SUV": "pet",
    "SUVR": "pet",
    "ratio": "spect",
    "lateEarlyRatio": "spect",
}


TITLES = {
    "anat": "Anatomy and registration to the template",
    "gadolinium": "Gadolinium enhancement",
    "dce": "DCE permeability",
    "uspio": "Iron oxide (USPIO) ΔR2*",
    "pet": "PET uptake",
    "spect": "SPECT uptake ratio",
    "other": "Other maps",
}


ORDER = ["anat", "gadolinium", "dce", "uspio", "pet", "spect", "other"]


# image used to check a modality's registration to the T1w (on the modality's own grid)
REGISTRATION_REFERENCE = {
    "dce": ["T1map", "Ktrans"],
    "uspio": ["R2starmap", "dR2star"],
    "pet": ["pet", "SUV", "SUVR"],
    "spect": ["ratio"],
}


# the 'from-' label of the rigid transform to the T1w written for each modality
XFM_FROM = {
    "dce": ["dce"],
    "uspio": ["MEGRE"],
    "pet": ["pet", "PET"],
    "spect": ["spect", "SPECT"],
    "gadolinium": ["postcontrast"],
}


MAP_ORDER = [
    "enhancement",
    "Ktrans",
    "vp",
    "ve",
    "T1map",
    "dR2star",
    "R2starmap",
    "SUVR",
    "SUV",
    "ratio",
    "residual",
]


# sidecar fields shown as QC metrics (label, format); plus any key matching QC_PATTERN
QC_KEYS = {
    "NormalisationMethod": ("normalisation method", "s"),
    "NormalisationFactor": ("normalisation factor (post → pre)", ".4f"),
    "ReferenceVoxels": ("reference-tissue voxels", "d"),
    "PercentFloor": ("percent-enhancement floor (pre intensity)", ".4g"),
    "QCWhiteMatterMeanAbsDiffPercent": ("white-matter mean |post − pre| (%)", ".3g"),
    "Model": ("model", "s"),
    "VIFRegion": ("input-function region", "s"),
    "VIFVoxels": ("input-function voxels (VIFVoxels)", "d"),
    "VIFPeakBlood_mM": ("input-function peak, blood (mM)", ".3g"),
    "VIFPeakPlasma_mM": ("input-function peak, plasma (mM)", ".3g"),
    "BaselineFrames": ("baseline frames", "d"),
    "FittedVoxels": ("fitted voxels", "d"),
    "FitMethod": ("fit method", "s"),
    "NoiseSigma": ("noise sigma", ".4g"),
    "InvalidFraction": ("fraction of failed voxels (InvalidFraction)", ".4f"),
    "MedianNRMSE": ("median fit residual (NRMSE)", ".4f"),
}


QC_PATTERN = re.compile(r"SNR|Similarity|Residual|NRMSE|Invalid|Failed|Sigma|^QC", re.I)


NUMERIC_TABLE_COLUMNS = ("volume_mm3", "n_voxels", "peak_percent", "mean_percent")


@dataclass
class Deriv:
    """One derivative file: path, entities (short names) and suffix."""

    path: Path
    entities: dict
    suffix: str
    ext: str

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def stem(self) -> str:
        return self.path.name[: -len(self.ext)] if self.ext else self.path.name

    def get(self, key, default=None):
        return self.entities.get(key, default)

    def sidecar(self) -> dict:
        side = self.path.with_name(self.stem + ".json")
        if self.ext == ".json" or not side.is_file():
            return {}
        try:
            data = json.loads(side.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}


def parse_name(path) -> Deriv | None:
    """Entities of a BIDS(-Derivatives) file name, or None if it is not one."""
    path = Path(path)
    name = path.name
    ext = ""
    for e in (".nii.gz", ".nii", ".tsv", ".json", ".mat", ".h5", ".txt"):
        if name.endswith(e):
            ext = e
            break
    base = name[: -len(ext)] if ext else name
    parts = base.split("_")
    if len(parts) < 2 or not parts[0].startswith("sub-"):
        return None
    ents = {}
    for part in parts[:-1]:
        if "-" not in part:
            return None
        k, v = part.split("-", 1)
        ents[k] = v
    return Deriv(path, ents, parts[-1], ext)


@dataclass
class SessionFiles:
    label: str | None
    folder: Path
    files: list = field(default_factory=list)

    def find(self, suffix, ext=".nii.gz", **ents) -> list:
        """Files with ``suffix``/``ext`` whose entities match ``ents`` (None = absent)."""
        out = []
        for f in self.files:
            if f.suffix != suffix or f.ext != ext:
                continue
            if all((f.get(k) is None) if v is None else (f.get(k) == v) for k, v in ents.items()):
                out.append(f)
        return out

    def one(self, suffix, ext=".nii.gz", **ents):
        found = self.find(suffix, ext, **ents)
        return found[0] if found else None


def _sessions(out_dir: Path, label: str) -> list:
    root = out_dir / f"sub-{label}"
    sessions = []
    folders = sorted(p for p in root.glob("ses-*") if p.is_dir()) if root.is_dir() else []
    if not folders and root.is_dir():
        folders = [root]
    for folder in folders:
        ses = folder.name[4:] if folder.name.startswith("ses-") else None
        files = []
        for p in sorted(folder.rglob("*")):
            if not p.is_file() or "figures" in p.relative_to(folder).parts:
                continue
            d = parse_name(p)
            if d is not None and d.get("sub") == label:
                files.append(d)
        if files:
            sessions.append(SessionFiles(ses, folder, files))
    return sessions


def summarise_crashes(out_dir, label: str, since: float | None = None) -> list[dict]:
    """Crash files of a participant (``OUTPUT_DIR/logs/sub-<label>/crash-*``): node name and
    the exception that ended the step (:func:`pipeline.crashes.read_crash`); ``stale`` when
    older than ``since`` (an earlier run)."""
    from pipeline.crashes import crash_files, read_crash

    out = []
    for path in crash_files(out_dir, label):
        crash = read_crash(path)
        out.append(
            {
                "file": path.relative_to(Path(out_dir)).as_posix(),
                "node": crash.node or "unknown node",
                "message": crash.error or "(no traceback)",
                "time": crash.when,
                "stale": since is not None and crash.mtime < since,
            }
        )
    return out
