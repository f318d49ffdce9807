"""BIDS input: validation, participant/session selection, file queries and covariates.

Entity conventions (see README): pre-contrast ``T1w``; post-contrast ``ce-<agent>_T1w``;
multi-echo GRE ``echo-<n>_MEGRE`` (with or without ``ce-<agent>``); ``flip-<n>_VFA``; DCE
``ce-<agent>_dce`` (4-D, listed in ``.bidsignore``); ``pet/*_pet`` per PET-BIDS. Clinical
covariates come from ``participants.tsv`` and ``sub-<label>_sessions.tsv``.
"""

from __future__ import annotations

from .layout import (
    check_filters,
    collect_session,
    get_layout,
    in_bids_location,
    select_participants,
    sessions_of,
)
from .root import LABEL_RE, MAX_LABEL, check_bids_root, clean_labels
from .scan import check_json_files, scan_dataset
from .tables import DatasetTables, read_participants, read_sessions, uspio_pairs
from .validator import (
    VALIDATOR_WARNINGS,
    save_validator_warnings,
    validate,
    validator_executable,
)

__all__ = [
    "LABEL_RE",
    "MAX_LABEL",
    "VALIDATOR_WARNINGS",
    "DatasetTables",
    "check_bids_root",
    "check_filters",
    "check_json_files",
    "clean_labels",
    "collect_session",
    "get_layout",
    "in_bids_location",
    "read_participants",
    "read_sessions",
    "save_validator_warnings",
    "scan_dataset",
    "select_participants",
    "sessions_of",
    "uspio_pairs",
    "validate",
    "validator_executable",
]
