"""``participants.tsv`` and ``sessions.tsv``: ids checked against the folders, covariates
read, and the USPIO pre/post pairing rule."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from ..errors import DataError, InputMissingError


def read_tsv(path) -> pd.DataFrame:
    """A BIDS TSV table (``n/a`` missing, ids as text); DataError naming an unreadable file."""
    try:
        return pd.read_csv(
            path,
            sep="\t",
            na_values=["n/a"],
            keep_default_na=False,
            dtype={"participant_id": str, "session_id": str},
        )
    except Exception as exc:  # noqa: BLE001 - pandas raises several types
        raise DataError(f"{path}: cannot read as a TSV table ({exc})") from None


def _check_levels(df, column, allowed, path):
    if column in df:
        bad = sorted(set(df[column].dropna().astype(str)) - set(allowed))
        if bad:
            raise DataError(
                f"{path}: column '{column}' has value(s) {bad}; documented values are "
                f"{', '.join(allowed)} (or n/a)"
            )


def _check_ids(df, id_column: str, path: Path, folders: set) -> None:
    """Ids well formed (``sub-<label>``/``ses-<label>``), unique, each with its folder."""
    prefix, what = {"participant_id": ("sub-", "participant"), "session_id": ("ses-", "session")}[
        id_column
    ]
    seen = {}
    for i, value in enumerate(df[id_column].tolist()):
        row = i + 2  # line in the file (line 1: the header)
        text = "" if value is None or (isinstance(value, float) and value != value) else value
        if not re.fullmatch(prefix + r"[A-Za-z0-9]+", str(text)):
            hint = (
                "; remove the spaces"
                if str(text).strip() != str(text)
                and re.fullmatch(prefix + r"[A-Za-z0-9]+", str(text).strip())
                else f"; write {prefix}<label> (letters and digits)"
            )
            raise DataError(
                f"{path}: row {row}: {id_column} {text!r} is not a {what} identifier{hint}"
            )
        if text in seen:
            raise DataError(
                f"{path}: {id_column} {text} is listed twice (rows {seen[text]} "
                f"and {row}); keep one row per {what}"
            )
        seen[text] = row
        if text not in folders:
            raise DataError(
                f"{path}: row {row}: {text} has no folder {path.parent / text}; "
                "fix the identifier (e.g. ses-01, not ses-1) or remove the row"
            )


def _folders(root: Path, prefix: str) -> set:
    return {p.name for p in root.glob(prefix + "*") if p.is_dir()} if root.is_dir() else set()


def read_participants(bids_dir, covariates) -> pd.DataFrame:
    """``participants.tsv``, checked: ``participant_id`` well formed, unique and with a
    folder on every row, ``group`` within the documented values; empty if absent."""
    path = Path(bids_dir) / "participants.tsv"
    if not path.exists():
        return pd.DataFrame(columns=["participant_id"])
    df = read_tsv(path)
    if "participant_id" not in df:
        raise DataError(f"{path}: no 'participant_id' column; add it (sub-<label> per row)")
    _check_ids(df, "participant_id", path, _folders(Path(bids_dir), "sub-"))
    _check_levels(df, "group", covariates.groups, path)
    return df


def read_sessions(bids_dir, subject: str, covariates) -> pd.DataFrame:
    """``sub-<label>_sessions.tsv``, checked like :func:`read_participants` (``session_id``
    rows against the ``ses-*`` folders; ``headache_side``, ``phase`` values); empty if
    absent."""
    folder = Path(bids_dir) / f"sub-{subject}"
    path = folder / f"sub-{subject}_sessions.tsv"
    if not path.exists():
        return pd.DataFrame(columns=["session_id"])
    df = read_tsv(path)
    if "session_id" not in df:
        raise DataError(f"{path}: no 'session_id' column; add it (ses-<label> per row)")
    _check_ids(df, "session_id", path, _folders(folder, "ses-"))
    _check_levels(df, "headache_side", covariates.headache_sides, path)
    _check_levels(df, "phase", covariates.phases, path)
    return df


def _row_dict(row) -> dict:
    return {k: (None if pd.isna(v) else v) for k, v in row.items()}


class DatasetTables:
    """The clinical covariates of a dataset (``participants.tsv``, ``sessions.tsv``), each
    table read and checked once."""

    def __init__(self, bids_dir, covariates, layout=None):
        self.bids_dir = Path(bids_dir)
        self.covariates = covariates
        self._participants = None
        self._sessions = {}

    @property
    def participants(self) -> pd.DataFrame:
        if self._participants is None:
            self._participants = read_participants(self.bids_dir, self.covariates)
        return self._participants

    def sessions(self, subject: str) -> pd.DataFrame:
        if subject not in self._sessions:
            self._sessions[subject] = read_sessions(self.bids_dir, subject, self.covariates)
        return self._sessions[subject]

    def session_row(self, subject: str, session: str | None) -> dict:
        """The ``sessions.tsv`` row of one session (None for n/a), ``{}`` if none."""
        df = self.sessions(subject)
        if session is None or df.empty:
            return {}
        row = df[df["session_id"] == f"ses-{session}"]
        return _row_dict(row.iloc[0].to_dict()) if len(row) else {}

    def participant_row(self, subject: str) -> dict:
        df = self.participants
        row = df[df["participant_id"] == f"sub-{subject}"] if len(df) else df
        return _row_dict(row.iloc[0].to_dict()) if len(row) else {}

    def carried(self, subject: str, session: str | None, columns) -> dict:
        """Values of ``columns`` for one participant and session: the session's row first,
        then the participant's; absent or n/a gives ``"n/a"``."""
        row = dict(self.session_row(subject, session))
        for k, v in self.participant_row(subject).items():
            if row.get(k) is None and v is not None:
                row[k] = v
        return {c: ("n/a" if row.get(c) is None else row[c]) for c in columns}


def uspio_pairs(
    files_by_session: dict,
    agent_class,
    session_rows: dict | None = None,
    pre_column: str = "uspio_pre_session",
) -> list[dict]:
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
                        "without ce-; fix the column or add the series"
                    )
            elif files_by_session[ses]["megre"]:
                pre_ses = ses
            else:
                earlier = [s for s in order[:i] if files_by_session[s]["megre"]]
                if not earlier:
                    raise InputMissingError(
                        f"{post[0]}: no pre-infusion MEGRE series for this post-{agent} series; "
                        "add echo-<n>_MEGRE images without ce- in this or an earlier session, "
                        f"or name the session in the sessions.tsv column '{pre_column}'"
                    )
                pre_ses = earlier[-1]
            pairs.append(
                {
                    "agent": agent,
                    "session": ses,
                    "post": list(post),
                    "pre_session": pre_ses,
                    "pre": list(files_by_session[pre_ses]["megre"]),
                }
            )
    return pairs
