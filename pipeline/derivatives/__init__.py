"""BIDS-Derivatives naming and dataset files.

Derivative names are built from the source file's entities (as niworkflows'
``DerivativesDataSink`` does) in the order of the BIDS specification, so that every custom
suffix the modalities need (``Ktrans``, ``R2starmap``, ``SUVR``, ``regions``...) gets a
valid name; writing is atomic (:mod:`pipeline.utils`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .. import __version__
from ..utils import write_once_text
from .registry import bidsignore_patterns

ENTITY_ORDER = (
    ("subject", "sub"),
    ("session", "ses"),
    ("task", "task"),
    ("acquisition", "acq"),
    ("ceagent", "ce"),
    ("tracer", "trc"),
    ("reconstruction", "rec"),
    ("direction", "dir"),
    ("run", "run"),
    ("echo", "echo"),
    ("flip", "flip"),
    ("part", "part"),
    ("from", "from"),
    ("to", "to"),
    ("mode", "mode"),
    ("hemi", "hemi"),
    ("space", "space"),  # before atlas, as the BIDS schema (and its validator) orders them
    ("atlas", "atlas"),
    ("roi", "roi"),
    ("cohort", "cohort"),
    ("res", "res"),
    ("label", "label"),
    ("desc", "desc"),
)
# entities of the source that a derivative inherits unless told otherwise
INHERITED = ("subject", "session", "acquisition", "ceagent", "tracer", "reconstruction", "run")


def parse_entities(path) -> dict:
    """BIDS entities of ``path``'s file name (pybids' parser), keyed by long names (subject,
    session...). Only the name is parsed: folders above a dataset never leak in."""
    from bids.layout import parse_file_entities

    ents = parse_file_entities("/" + Path(path).name)
    return {k: v for k, v in ents.items() if k not in ("extension", "datatype")}


def derivative_relpath(
    source_file, suffix: str, extension: str = ".nii.gz", datatype: str | None = None, **entities
) -> Path:
    """Relative path of a derivative of ``source_file``.

    ``entities`` use the short or long names (``desc="preproc"``, ``space="MNI..."``,
    ``ce=None`` to drop an inherited entity).
    """
    short_to_long = {short: long for long, short in ENTITY_ORDER}
    src = parse_entities(source_file)
    ents = {k: src[k] for k in INHERITED if src.get(k) is not None}
    for key, value in entities.items():
        long = short_to_long.get(key, key)
        if long not in dict(ENTITY_ORDER):
            raise ValueError(f"unknown BIDS entity {key!r} for a derivative name")
        if value is None:
            ents.pop(long, None)
        else:
            value = str(value)
            if not value.isalnum():
                raise ValueError(f"BIDS entity {key}-{value}: labels must be alphanumeric")
            ents[long] = value
    if "subject" not in ents:
        raise ValueError(f"{source_file}: not a BIDS file name (no sub- entity)")
    name = "_".join(f"{short}-{ents[long]}" for long, short in ENTITY_ORDER if long in ents)
    name = f"{name}_{suffix}{extension}"
    if datatype is None:
        datatype = Path(source_file).parent.name
        if datatype not in ("anat", "pet", "func", "perf", "dwi", "fmap", "spect"):
            datatype = "anat"
    folder = Path(f"sub-{ents['subject']}")
    if "session" in ents:
        folder /= f"ses-{ents['session']}"
    return folder / datatype / name


def in_container() -> str | None:
    """``docker``/``apptainer`` when running inside inflamap's image (for GeneratedBy)."""
    if os.environ.get("APPTAINER_CONTAINER") or os.environ.get("SINGULARITY_CONTAINER"):
        return "apptainer"
    return os.environ.get("INFLAMAP_CONTAINER") or None  # set by the Dockerfile


# Derivatives that the BIDS specification does not (yet) describe: listed in the derivatives'
# .bidsignore so that the validator accepts the dataset (as the demo's raw .bidsignore does
# for DCE). Declared with each output in the registry.
NON_BIDS_PATTERNS = bidsignore_patterns()


def write_dataset_description(output_dir, bids_dir) -> Path:
    """``dataset_description.json`` of the derivatives (written once, atomically).

    Many participants' jobs start at once on a cluster and all call this: the file is
    created complete under its final name by exactly one of them
    (:func:`pipeline.utils.write_once_text`) and never rewritten afterwards; one that is not
    valid JSON (e.g. truncated by an older, non-atomic writer) is replaced. The
    ``.bidsignore`` of :data:`NON_BIDS_PATTERNS` is written the same way.
    """
    path = Path(output_dir) / "dataset_description.json"
    if path.exists():
        try:
            json.loads(path.read_text())
            _write_bidsignore(output_dir)
            return path
        except ValueError:
            path.unlink(missing_ok=True)
    gen = {"Name": "inflamap", "Version": __version__}
    container = in_container()
    if container:
        gen["Container"] = {"Type": container, "Tag": f"inflamap:{__version__}"}
    desc = {
        "Name": "inflamap derivatives",
        "BIDSVersion": "1.10.0",
        "DatasetType": "derivative",
        "GeneratedBy": [gen],
        "SourceDatasets": [{"URL": Path(bids_dir).absolute().as_uri()}],
        "DatasetLinks": {"raw": Path(bids_dir).absolute().as_uri()},
    }
    write_once_text(json.dumps(desc, indent=2) + "\n", path)
    _write_bidsignore(output_dir)
    return path


def _write_bidsignore(output_dir) -> None:
    path = Path(output_dir) / ".bidsignore"
    if not path.exists():
        write_once_text("\n".join(NON_BIDS_PATTERNS) + "\n", path)
