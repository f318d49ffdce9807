"""The participant-level regional tables, verified and gathered, with the covariates and
the participants' status."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from .. import log
from ..crashes import crash_files


def _log(msg):
    log.get("group").info(msg)


#: hemisphere values of the regional tables (ipsi/contra/AI: laterality rows)
TABLE_HEMISPHERES = ("left", "right", "bilateral", "ipsi", "contra", "AI")


#: columns parsed as numbers (strictly: a value that is not a number damages the table)
NUMERIC_COLUMNS = ("n_voxels", "mean", "median", "sd")


class DamagedTable(ValueError):
    """A regional table that cannot be used (its message names the file and the problem)."""


def read_regional_table(path: Path, out: Path) -> pd.DataFrame:
    """One participant-level regional table, verified before it is used.

    The table must lie in its participant's (and session's) folder, be complete (every line
    ends and has the header's number of fields), have every column of
    :data:`~pipeline.models.regional.TABLE_COLUMNS`, agree with its file name
    (``participant_id``, ``session_id``), and hold numbers where numbers belong.
    :class:`DamagedTable` names the file and what is wrong.
    """
    from ..derivatives import parse_entities
    from ..models.regional import TABLE_COLUMNS

    rel = path.relative_to(out)
    ents = parse_entities(path)
    sub, ses = ents.get("subject"), ents.get("session")
    if not sub or rel.parts[0] != f"sub-{sub}" or (ses and rel.parts[1] != f"ses-{ses}"):
        raise DamagedTable(f"{path}: its name (sub-{sub}, ses-{ses}) does not match its folder")
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DamagedTable(f"{path}: not a text table (binary content)") from None
    except OSError as exc:
        raise DamagedTable(f"{path}: cannot be read ({exc.strerror})") from None
    if not text.strip():
        raise DamagedTable(f"{path}: empty table")
    if not text.endswith("\n"):
        raise DamagedTable(f"{path}: the last line is cut short (truncated file)")
    lines = text.split("\n")[:-1]
    width = lines[0].count("\t")
    bad = next((i for i, line in enumerate(lines) if line.count("\t") != width), None)
    if bad is not None:
        raise DamagedTable(
            f"{path}: line {bad + 1} has {lines[bad].count(chr(9)) + 1} fields, "
            f"the header {width + 1} (damaged or truncated table)"
        )
    try:
        df = pd.read_csv(path, sep="\t", na_values=["n/a"], keep_default_na=False, dtype=str)
    except Exception as exc:  # noqa: BLE001 - pandas raises several types
        raise DamagedTable(f"{path}: not a readable TSV table ({exc})") from None
    missing = [c for c in TABLE_COLUMNS if c not in df]
    if missing:
        raise DamagedTable(f"{path}: lacks column(s) {', '.join(missing)}")
    if df.empty:
        raise DamagedTable(f"{path}: no rows")
    for column, want in (
        ("participant_id", f"sub-{sub}"),
        ("session_id", f"ses-{ses}" if ses else None),
    ):
        values = set(df[column].dropna())
        if values != ({want} if want else set()):
            raise DamagedTable(
                f"{path}: {column} {sorted(values)} contradicts its file name "
                f"({want or 'no session'})"
            )
    odd = sorted(set(df["hemisphere"].dropna()) - set(TABLE_HEMISPHERES))
    if odd or df["hemisphere"].isna().any() or df["roi"].isna().any():
        raise DamagedTable(
            f"{path}: rows without a roi or with hemisphere values {odd or ['n/a']}"
        )
    for column in NUMERIC_COLUMNS:
        values = pd.to_numeric(df[column], errors="coerce")
        wrong = df[column].notna() & values.isna()
        if wrong.any():
            first = df.loc[wrong, column].iloc[0]
            raise DamagedTable(f"{path}: column {column} holds {first!r}, not a number")
        df[column] = values
    return df


def gather_regional_tables(
    output_dir, participants=None, damaged=None, ignored=None
) -> pd.DataFrame:
    """The verified ``*_regions.tsv`` of the derivatives, concatenated (with their file
    name and atlas).

    Only the folders of ``participants`` (``sub-<label>`` ids; all ``sub-<label>`` folders
    when None) are read: others (``sub-03_old/``, a participant not in participants.tsv) are
    appended to ``ignored``. A table that fails :func:`read_regional_table` is left out and
    ``(participant_id, message)`` appended to ``damaged``.
    """
    out = Path(output_dir)
    damaged = [] if damaged is None else damaged
    ignored = [] if ignored is None else ignored
    frames = []
    for folder in sorted(p for p in out.glob("sub-*") if p.is_dir()):
        if not re.fullmatch(r"sub-[A-Za-z0-9]+", folder.name) or (
            participants is not None and folder.name not in participants
        ):
            ignored.append(folder.name)
            continue
        for path in sorted(folder.rglob("*_regions.tsv")):
            try:
                df = read_regional_table(path, out)
            except DamagedTable as exc:
                damaged.append((folder.name, str(exc)))
                continue
            df["source_table"] = str(path.relative_to(out))
            atlas = re.search(r"_atlas-([A-Za-z0-9]+)_", path.name)
            df.insert(df.columns.get_loc("roi"), "atlas", atlas.group(1) if atlas else "n/a")
            frames.append(df)
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True)


def _merge_covariates(table, sessions, participants):
    """Join sessions.tsv and participants.tsv columns (the BIDS tables win over columns the
    participant level copied into the regional tables)."""
    if len(sessions):
        dup = [
            c for c in sessions.columns if c in table and c not in ("participant_id", "session_id")
        ]
        table = table.drop(columns=dup).merge(
            sessions, on=["participant_id", "session_id"], how="left"
        )
    if len(participants):
        dup = [c for c in participants.columns if c in table and c != "participant_id"]
        table = table.drop(columns=dup).merge(participants, on="participant_id", how="left")
    return table


def _status(out: Path, expected, have, table, damaged=()) -> pd.DataFrame:
    """Participants without outputs (missing), with a crash newer than them (failed), or
    with damaged tables left out (failed)."""
    rows = []
    broken = {}
    for pid, message in damaged:
        broken.setdefault(pid, []).append(message)
    newest = {}
    if len(table):
        for src, pid in (
            table[["source_table", "participant_id"]].drop_duplicates().itertuples(index=False)
        ):
            newest[pid] = max(newest.get(pid, 0.0), (out / src).stat().st_mtime)
    for pid in expected:
        crashes = crash_files(out, pid)
        if pid not in have:
            rows.append(
                {
                    "participant_id": pid,
                    "status": "missing",
                    "crash_files": ";".join(str(c.relative_to(out)) for c in crashes),
                    "reason": " | ".join(broken.get(pid, [])),
                }
            )
            continue
        recent = [c for c in crashes if c.stat().st_mtime > newest.get(pid, 0.0)]
        if pid in broken:
            rows.append(
                {
                    "participant_id": pid,
                    "status": "failed (damaged tables left out)",
                    "crash_files": ";".join(str(c.relative_to(out)) for c in recent),
                    "reason": " | ".join(broken[pid]),
                }
            )
        elif recent:
            rows.append(
                {
                    "participant_id": pid,
                    "status": "failed (partial outputs used)",
                    "crash_files": ";".join(str(c.relative_to(out)) for c in recent),
                }
            )
    return pd.DataFrame(rows, columns=["participant_id", "status", "crash_files", "reason"])
