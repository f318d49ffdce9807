"""The dataset root and the participant/session labels asked for on the command line."""

from __future__ import annotations

import json
import re
from pathlib import Path

from ..errors import DataError, InputMissingError, UsageError

LABEL_RE = re.compile(r"^[A-Za-z0-9]+$")
#: longest participant/session label accepted (labels name workflow nodes and folders)
MAX_LABEL = 64


def check_bids_root(bids_dir) -> Path:
    """The BIDS root as an absolute path, or an error naming what is missing."""
    root = Path(bids_dir)
    if not root.exists():
        raise InputMissingError(f"{bids_dir}: BIDS folder does not exist; check the path")
    if not root.is_dir():
        raise InputMissingError(f"{bids_dir}: not a folder; give the BIDS dataset's root")
    if not (root / "dataset_description.json").is_file():
        raise InputMissingError(
            f"{root / 'dataset_description.json'}: missing; is {bids_dir} the root of a BIDS "
            "dataset?"
        )
    try:
        json.loads((root / "dataset_description.json").read_text())
    except (ValueError, OSError) as exc:
        raise DataError(f"{root / 'dataset_description.json'}: not valid JSON ({exc})") from None
    return root.absolute()


def clean_labels(labels, entity="participant") -> list[str]:
    """Labels without their ``sub-``/``ses-`` prefix; refuse anything not alphanumeric."""
    prefix = {"participant": "sub-", "session": "ses-"}[entity]
    out = []
    for lab in labels or []:
        lab = str(lab)
        lab = lab[len(prefix) :] if lab.startswith(prefix) else lab
        if not LABEL_RE.match(lab):
            raise UsageError(f"--{entity}-label {lab!r}: BIDS labels are letters and digits only")
        if len(lab) > MAX_LABEL:
            raise UsageError(
                f"--{entity}-label {lab[:20]}...: {len(lab)} characters; labels "
                f"longer than {MAX_LABEL} are refused (they name work folders)"
            )
        out.append(lab)
    return sorted(set(out))
