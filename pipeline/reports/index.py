"""The derivatives a report reads: what each file is (suffix, modality, space, entities),
the sessions of a participant, and its crash files."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.derivatives import registry

# what each derivative is comes from the output registry (pipeline/derivatives/registry.py)
# derivative suffix -> modality section; 'residual' follows its siblings (see _modality)
SUFFIX_MODALITY = registry.map_sections()
# suffixes used only as registration references (not drawn as quantitative maps)
REFERENCE_ONLY = registry.reference_only()
# drawn in native space only (their values are in the QC tables; fewer figures keep the
# report quick to make)
NATIVE_ONLY = registry.native_only()
# never drawn (fit residuals)
NOT_DRAWN = registry.not_drawn()
# regional tables: ``modality`` column (or desc) -> section
TABLE_MODALITY = registry.table_sections()


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


# images used to check a modality's registration to the T1w (on the modality's own grid)
REGISTRATION_REFERENCE = registry.registration_references()
# the 'from-' labels of the rigid transforms to the T1w written for each modality
XFM_FROM = registry.xfm_from()
MAP_ORDER = registry.map_order()


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
    "VIFVolume_ml": ("input-function volume, ml (VIFVolume_ml)", ".3g"),
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
    """One derivative file: path, entities (short names) and ``suffix``: what it holds (the
    registry's kind for a map written as a ``desc-`` of a standard suffix, e.g. ``dR2star``
    for ``desc-delta_R2starmap``; else the file's suffix)."""

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
    """Entities of a BIDS(-Derivatives) file name (pybids' parser, short entity names), or
    None if it is not one."""
    from pipeline.derivatives import ENTITY_ORDER, parse_entities

    path = Path(path)
    if not path.name.startswith("sub-"):
        return None
    ents = parse_entities(path)
    suffix = ents.pop("suffix", None)
    if suffix is None or "subject" not in ents:
        return None
    ext = next((e for e in EXTENSIONS if path.name.endswith(e)), "")
    short = dict(ENTITY_ORDER)
    ents = {short.get(k, k): str(v) for k, v in ents.items()}
    # the report reads what a file holds: desc-delta_R2starmap is a dR2star map
    return Deriv(path, ents, registry.kind_of(suffix, ents.get("desc")), ext)


EXTENSIONS = (".nii.gz", ".nii", ".tsv", ".json", ".mat", ".h5", ".txt")


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
