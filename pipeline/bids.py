"""BIDS input: validation, participant/session selection, file queries and covariates.

Entity conventions (see README): pre-contrast ``T1w``; post-contrast ``ce-<agent>_T1w``;
multi-echo GRE ``echo-<n>_MEGRE`` (with or without ``ce-<agent>``); ``flip-<n>_VFA``; DCE
``ce-<agent>_dce`` (4-D, listed in ``.bidsignore``); ``pet/*_pet`` per PET-BIDS. Clinical
covariates come from ``participants.tsv`` and ``sub-<label>_sessions.tsv``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd

from .errors import BIDSValidationError, DataError, InputMissingError, UsageError

LABEL_RE = re.compile(r"^[A-Za-z0-9]+$")


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
            "dataset?")
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
        lab = lab[len(prefix):] if lab.startswith(prefix) else lab
        if not LABEL_RE.match(lab):
            raise UsageError(
                f"--{entity}-label {lab!r}: BIDS labels are letters and digits only")
        out.append(lab)
    return sorted(set(out))


def validate(bids_dir) -> None:
    """Run the official BIDS validator (``bids-validator-deno``); raise on errors."""
    exe = shutil.which("bids-validator-deno")
    if exe is None:
        raise BIDSValidationError(
            "bids-validator-deno not found; install it (pip install bids-validator-deno) or "
            "pass --skip-bids-validation")
    proc = subprocess.run([exe, str(bids_dir), "--format", "json", "--ignoreWarnings"],
                          capture_output=True, text=True, timeout=600)
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        raise BIDSValidationError(
            f"{bids_dir}: the BIDS validator failed to run ({proc.stderr.strip()[:200]}); "
            "pass --skip-bids-validation to proceed without it") from None
    issues = report.get("issues", {}).get("issues", [])
    errors = [i for i in issues if i.get("severity") == "error"]
    if errors:
        first = errors[0]
        where = first.get("location", "")
        raise BIDSValidationError(
            f"{bids_dir}{where}: BIDS validation failed with {len(errors)} error(s), first: "
            f"{first.get('code')} {first.get('issueMessage') or ''}".strip()
            + "; fix the dataset or pass --skip-bids-validation")


def get_layout(bids_dir):
    """A pybids layout of the raw dataset (read-only: no database is written into it).

    pybids reads every JSON sidecar while indexing; an unreadable or invalid one is reported
    as a one-line error naming it (:func:`pipeline.preflight.check_json_files`).
    """
    from bids import BIDSLayout

    try:
        return BIDSLayout(str(bids_dir), validate=False, derivatives=False)
    except Exception as exc:  # noqa: BLE001 - pybids raises OSError/ValueError/...
        from .preflight import check_json_files

        check_json_files(bids_dir)  # raises naming the bad file
        raise DataError(f"{bids_dir}: pybids cannot index the dataset "
                        f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
                        "; check the file names and sidecars") from None


def select_participants(layout, labels) -> list[str]:
    """Requested participants that exist (all when none requested)."""
    available = sorted(layout.get_subjects())
    if not available:
        raise InputMissingError(f"{layout.root}: no sub-<label> folders found")
    labels = clean_labels(labels)
    if not labels:
        return available
    missing = [lab for lab in labels if lab not in available]
    if missing:
        raise InputMissingError(
            f"{layout.root}: participant(s) {', '.join('sub-' + m for m in missing)} not found; "
            f"available: {', '.join('sub-' + a for a in available)}")
    return labels


def _one(files, what):
    return files[0].path if files else None


def collect_session(layout, subject: str, session: str | None, filters: dict | None = None,
                    agent_class=None) -> dict:
    """Files of one participant/session by role.

    Returns ``{"t1w": path|None, "t1w_ce": [(agent, path)], "megre": [paths],
    "megre_ce": [(agent, [paths])], "vfa": [paths], "dce": [(agent, path)], "pet": [paths],
    "spect": {tracer: {acq: path}}}`` (SPECT: inflamap's convention, ``spect/`` folder).
    ``filters`` (from ``--bids-filter-file``) add entities per role, e.g.
    ``{"t1w": {"acquisition": "mprage"}}``.
    """
    filters = filters or {}
    base = {"subject": subject, "extension": [".nii", ".nii.gz"]}
    if session is not None:
        base["session"] = session

    def q(role, **kw):
        return layout.get(**{**base, **kw, **filters.get(role, {})})

    t1w = q("t1w", suffix="T1w", datatype="anat", ceagent=None, acquisition=None)
    if len(t1w) > 1:
        t1w = [f for f in t1w if "run" not in f.entities or f.entities["run"] == 1] or t1w
    out = {"t1w": _one(t1w, "T1w"), "t1w_ce": [], "megre": [], "megre_ce": [], "vfa": [],
           "dce": [], "pet": [], "spect": {}}
    for f in q("t1w_ce", suffix="T1w", datatype="anat"):
        agent = f.entities.get("ceagent")
        if agent:
            out["t1w_ce"].append((agent, f.path))
    echoes = q("megre", suffix="MEGRE", ceagent=None)
    out["megre"] = [f.path for f in sorted(echoes, key=lambda f: int(f.entities.get("echo", 0)))]
    by_agent: dict = {}
    for f in q("megre_ce", suffix="MEGRE"):
        if f.entities.get("ceagent"):
            by_agent.setdefault(f.entities["ceagent"], []).append(f)
    out["megre_ce"] = [(a, [f.path for f in sorted(fs, key=lambda f: int(f.entities["echo"]))])
                       for a, fs in sorted(by_agent.items())]
    out["vfa"] = [f.path for f in sorted(q("vfa", suffix="VFA"),
                                         key=lambda f: int(f.entities.get("flip", 0)))]
    out["dce"] = [(f.entities.get("ceagent"), f.path) for f in q("dce", suffix="dce")]
    out["pet"] = [f.path for f in q("pet", suffix="pet", datatype="pet")]
    for f in q("spect", suffix="spect"):
        tracer = f.entities.get("tracer", "unknown")
        out["spect"].setdefault(tracer, {})[f.entities.get("acquisition")] = f.path
    return out


def sessions_of(layout, subject: str, session_labels=None) -> list:
    """The participant's sessions (``[None]`` for a dataset without sessions)."""
    sessions = sorted(layout.get_sessions(subject=subject))
    labels = clean_labels(session_labels, "session")
    if not sessions:
        if labels:
            raise InputMissingError(
                f"sub-{subject}: has no sessions, but --session-label was given")
        return [None]
    if labels:
        chosen = [s for s in sessions if s in labels]
        if not chosen:
            raise InputMissingError(
                f"sub-{subject}: none of the sessions {', '.join(labels)} exist; available: "
                f"{', '.join(sessions)}")
        return chosen
    return sessions


def _read_tsv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, sep="\t", na_values=["n/a"], keep_default_na=False,
                           dtype={"participant_id": str, "session_id": str})
    except Exception as exc:
        raise DataError(f"{path}: cannot read as a TSV table ({exc})") from None


def _check_levels(df, column, allowed, path):
    if column in df:
        bad = sorted(set(df[column].dropna().astype(str)) - set(allowed))
        if bad:
            raise DataError(
                f"{path}: column '{column}' has value(s) {bad}; documented values are "
                f"{', '.join(allowed)} (or n/a)")


def _read_covariates(path: Path, id_column: str, levels: dict) -> pd.DataFrame:
    """A covariate table with its id column, checked against the documented levels."""
    if not path.exists():
        return pd.DataFrame(columns=[id_column])
    df = _read_tsv(path)
    if id_column not in df:
        raise DataError(f"{path}: no '{id_column}' column")
    for column, allowed in levels.items():
        _check_levels(df, column, allowed, path)
    return df


def read_participants(bids_dir, covariates: dict) -> pd.DataFrame:
    """``participants.tsv`` checked against the documented levels; empty if absent."""
    return _read_covariates(Path(bids_dir) / "participants.tsv", "participant_id",
                            {"group": covariates["groups"]})


def read_sessions(bids_dir, subject: str, covariates: dict) -> pd.DataFrame:
    """``sub-<label>_sessions.tsv`` checked against the documented levels; empty if absent."""
    return _read_covariates(
        Path(bids_dir) / f"sub-{subject}" / f"sub-{subject}_sessions.tsv", "session_id",
        {"headache_side": covariates["headache_sides"], "phase": covariates["phases"]})


def session_info(bids_dir, subject: str, session: str | None, covariates: dict) -> dict:
    """The sessions.tsv row of one session as a dict (NaN for n/a), ``{}`` if none."""
    df = read_sessions(bids_dir, subject, covariates)
    if session is None or df.empty:
        return {}
    row = df[df["session_id"] == f"ses-{session}"]
    if row.empty:
        return {}
    return {k: (None if pd.isna(v) else v) for k, v in row.iloc[0].to_dict().items()}


def carried_covariates(bids_dir, subject: str, session: str | None, covariates: dict,
                       columns) -> dict:
    """Values of ``columns`` for one participant and session, for the regional tables.

    A column is looked up in the session's ``sessions.tsv`` row first, then in the
    participant's ``participants.tsv`` row; absent or n/a gives ``"n/a"``.
    """
    row = dict(session_info(bids_dir, subject, session, covariates))
    parts = read_participants(bids_dir, covariates)
    if "participant_id" in parts:
        prow = parts[parts["participant_id"] == f"sub-{subject}"]
        if len(prow):
            for k, v in prow.iloc[0].to_dict().items():
                if row.get(k) is None and not pd.isna(v):
                    row[k] = v
    return {c: ("n/a" if row.get(c) is None else row[c]) for c in columns}


def uspio_pairs(files_by_session: dict, agent_class, session_rows: dict | None = None,
                pre_column: str = "uspio_pre_session") -> list[dict]:
    """Pair every post-iron-oxide MEGRE series with its pre-infusion series.

    The rule, in order:

    1. the post session's ``sessions.tsv`` row names the pre session in ``pre_column``
       (``ses-<label>`` or ``<label>``);
    2. the same session has a MEGRE series without ``ce-`` (pre and post on one day);
    3. the latest earlier session (in label order) with such a series (ferumoxytol is usually
       imaged ~24 h after a baseline scan, as a session of its own).

    Parameters
    ----------
    files_by_session : dict
        session label (None without sessions) → :func:`collect_session` output, in order
    agent_class : callable
        agent label → class (``iron_oxide`` is paired)
    session_rows : dict or None
        session label → its ``sessions.tsv`` row (dict)

    Returns
    -------
    list of ``{"agent", "session", "post", "pre_session", "pre"}``.
    """
    session_rows = session_rows or {}
    order = list(files_by_session)
    pairs = []
    for i, ses in enumerate(order):
        for agent, post in files_by_session[ses]["megre_ce"]:
            if agent_class(agent) != "iron_oxide":
                continue
            named = session_rows.get(ses, {}).get(pre_column)
            if named:
                pre_ses = str(named).removeprefix("ses-")
                if pre_ses not in files_by_session or not files_by_session[pre_ses]["megre"]:
                    raise DataError(
                        f"{post[0]}: sessions.tsv column '{pre_column}' names ses-{pre_ses} as "
                        "the pre-infusion session, but it has no echo-<n>_MEGRE series "
                        "without ce-; fix the column or add the series")
            elif files_by_session[ses]["megre"]:
                pre_ses = ses
            else:
                earlier = [s for s in order[:i] if files_by_session[s]["megre"]]
                if not earlier:
                    raise InputMissingError(
                        f"{post[0]}: no pre-infusion MEGRE series for this post-{agent} series; "
                        "add echo-<n>_MEGRE images without ce- in this or an earlier session, "
                        f"or name the session in the sessions.tsv column '{pre_column}'")
                pre_ses = earlier[-1]
            pairs.append({"agent": agent, "session": ses, "post": list(post),
                          "pre_session": pre_ses, "pre": list(files_by_session[pre_ses]["megre"])})
    return pairs
