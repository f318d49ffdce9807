"""BIDS input: validation, participant/session selection, file queries and covariates.

Entity conventions (see README): pre-contrast ``T1w``; post-contrast ``ce-<agent>_T1w``;
multi-echo GRE ``echo-<n>_MEGRE`` (with or without ``ce-<agent>``); ``flip-<n>_VFA``; DCE
``ce-<agent>_dce`` (4-D, listed in ``.bidsignore``); ``pet/*_pet`` per PET-BIDS. Clinical
covariates come from ``participants.tsv`` and ``sub-<label>_sessions.tsv``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd

from .errors import BIDSValidationError, DataError, InputMissingError, UsageError

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


def validator_executable() -> str | None:
    """``bids-validator-deno`` on ``PATH``, else beside this Python (a virtual environment's
    ``bin/``, where pip installs it, when inflamap is called by its absolute path without
    activating the environment)."""
    exe = shutil.which("bids-validator-deno")
    if exe:
        return exe
    here = Path(sys.executable).parent / "bids-validator-deno"
    return str(here) if here.is_file() and os.access(here, os.X_OK) else None


#: where the validator's warnings of the last validated run are kept (relative to OUTPUT_DIR)
VALIDATOR_WARNINGS = "logs/bids-validator-warnings.txt"


def save_validator_warnings(output_dir, lines) -> Path:
    """Write the validator's warning lines for the reports (replacing an older list)."""
    from .utils import atomic_write_text

    path = Path(output_dir) / VALIDATOR_WARNINGS
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text("".join(f"{line}\n" for line in lines), path)
    return path


def validate(bids_dir) -> list[str]:
    """Run the official BIDS validator (``bids-validator-deno``); raise on errors, return
    one line per kind of warning (``CODE (n files): message``)."""
    exe = validator_executable()
    if exe is None:
        raise BIDSValidationError(
            "bids-validator-deno not found; install it (pip install bids-validator-deno) or "
            "pass --skip-bids-validation"
        )
    proc = subprocess.run(  # noqa: S603 - the validator, no shell
        [exe, str(bids_dir), "--format", "json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        raise BIDSValidationError(
            f"{bids_dir}: the BIDS validator failed to run ({proc.stderr.strip()[:200]}); "
            "pass --skip-bids-validation to proceed without it"
        ) from None
    issues = report.get("issues", {}).get("issues", [])
    errors = [i for i in issues if i.get("severity") == "error"]
    if errors:
        first = errors[0]
        where = first.get("location", "")
        raise BIDSValidationError(
            f"{bids_dir}{where}: BIDS validation failed with {len(errors)} error(s), first: "
            f"{first.get('code')} {first.get('issueMessage') or ''}".strip()
            + "; fix the dataset or pass --skip-bids-validation"
        )
    warnings: dict[str, list] = {}
    for issue in issues:
        if issue.get("severity") == "warning":
            warnings.setdefault(issue.get("code", "WARNING"), []).append(issue)
    lines = []
    for code, items in sorted(warnings.items()):
        first = items[0]
        keys = sorted({str(i["subCode"]) for i in items if i.get("subCode")})
        what = f" [{', '.join(keys[:6])}{', ...' if len(keys) > 6 else ''}]" if keys else ""
        message = "" if keys else " ".join(str(first.get("issueMessage") or "").split())[:160]
        where = first.get("location", "")
        lines.append(
            f"{code}{what} ({len(items)}x, e.g. {where or 'the dataset'})"
            + (f": {message}" if message else "")
        )
    return lines


#: datatype folders inflamap reads (BIDS datatypes, and ``spect`` of inflamap's convention)
DATATYPES = ("anat", "perf", "pet", "spect")


def _anchored_config(root: str) -> dict:
    """pybids' ``bids`` configuration with every entity pattern anchored at ``root``.

    pybids matches its entity patterns against the absolute path, so folder names above the
    dataset leak into its files (a dataset under ``study_ses-01/`` gives every file session
    01, under ``perf/`` every file the datatype perf). Anchored, a pattern can only match
    within the dataset's own relative path.
    """
    import re as _re

    from bids.layout.models import Config

    base = Config.load("bids")
    prefix = "^" + _re.escape(root.rstrip("/\\")) + r"(?=[/\\])(?:[/\\].*?)??"
    entities = []
    for ent in base.entities.values():
        spec = {
            "name": ent.name,
            "pattern": ent.pattern,
            "mandatory": ent.mandatory,
            "dtype": {int: "int", float: "float", bool: "bool"}.get(ent._dtype, "str"),
        }
        if ent.directory:
            spec["directory"] = ent.directory
        if ent.pattern:
            spec["pattern"] = prefix + ent.pattern
        entities.append(spec)
    return {"name": "bids", "entities": entities}


#: folders pybids does not index (and inflamap does not read)
IGNORED_FOLDERS = ("code", "derivatives", "models", "sourcedata", "stimuli")
#: a JSON sidecar larger than this is not a sidecar (a wrong file, or a link to a device)
MAX_SIDECAR_BYTES = 4 * 2**20
#: entries scanned at most (a dataset larger than this is refused as runaway)
MAX_ENTRIES = 2_000_000


def scan_dataset(root) -> int:
    """Refuse, before the validator or pybids read anything, what would make them hang or
    read without end: a FIFO, socket or device (also through a symbolic link, e.g. to
    ``/dev/zero``), a folder link that loops back, a JSON sidecar over
    :data:`MAX_SIDECAR_BYTES`. Dangling links are allowed (DataLad files not fetched: the
    preflight names them if they are needed). Returns the number of entries seen."""
    import stat

    root = Path(root)
    seen_dirs, n = set(), 0
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            st = folder.stat()
        except OSError as exc:
            raise InputMissingError(f"{folder}: cannot be read ({exc.strerror})") from None
        key = (st.st_dev, st.st_ino)
        if key in seen_dirs:
            raise DataError(
                f"{folder}: a folder link that loops back to {folder.resolve()}; "
                "remove the symbolic link"
            )
        seen_dirs.add(key)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except PermissionError:
            raise InputMissingError(
                f"{folder}: cannot be listed (permission denied); make it "
                "readable by the user running inflamap"
            ) from None
        except OSError as exc:
            raise InputMissingError(f"{folder}: cannot be listed ({exc.strerror})") from None
        for entry in entries:
            n += 1
            if n > MAX_ENTRIES:
                raise DataError(
                    f"{root}: more than {MAX_ENTRIES:,} files and folders; is it "
                    "a BIDS dataset's root?"
                )
            if entry.name.startswith(".") or (folder == root and entry.name in IGNORED_FOLDERS):
                continue
            path = Path(entry.path)
            try:
                st = entry.stat(follow_symlinks=True)
            except FileNotFoundError:
                continue  # a dangling link
            except OSError as exc:
                if exc.errno == 40:  # ELOOP: a link that points to itself
                    raise DataError(f"{path}: a symbolic link that loops; remove it") from None
                raise InputMissingError(f"{path}: cannot be read ({exc.strerror})") from None
            if stat.S_ISDIR(st.st_mode):
                stack.append(path)
            elif not stat.S_ISREG(st.st_mode):
                kind = (
                    "a named pipe (FIFO)"
                    if stat.S_ISFIFO(st.st_mode)
                    else "a socket"
                    if stat.S_ISSOCK(st.st_mode)
                    else "a device"
                )
                via = f" (a link to {os.path.realpath(path)})" if entry.is_symlink() else ""
                raise DataError(
                    f"{path}: {kind}{via}, not a regular file; remove it or "
                    "replace it by the file itself"
                )
            elif entry.name.endswith(".json") and st.st_size > MAX_SIDECAR_BYTES:
                raise DataError(
                    f"{path}: {st.st_size:,} bytes, far larger than a JSON sidecar "
                    f"(≤ {MAX_SIDECAR_BYTES // 2**20} MiB); is it the right file?"
                )
    return n


def check_json_files(root) -> None:
    """Raise :class:`DataError` (or :class:`InputMissingError`) for the first JSON file of
    the dataset (top level and ``sub-*``) that cannot be read as a JSON object."""
    import json

    root = Path(root)
    files = sorted(root.glob("*.json")) + sorted(
        p for d in sorted(root.glob("sub-*")) if d.is_dir() for p in d.rglob("*.json")
    )
    for p in files:
        if not p.exists():
            continue  # a dangling link: reported when (if) it is needed
        try:
            text = p.read_bytes()
        except PermissionError:
            raise InputMissingError(
                f"{p}: cannot be read (permission denied); make it "
                "readable by the user running inflamap (e.g. chmod a+r)"
            ) from None
        except OSError as exc:
            raise InputMissingError(f"{p}: cannot be read ({exc.strerror})") from None
        try:
            meta = json.loads(text.decode("utf-8-sig"))
        except UnicodeDecodeError:
            raise DataError(f"{p}: not UTF-8 text; save the sidecar as UTF-8 JSON") from None
        except ValueError as exc:
            raise DataError(f"{p}: not valid JSON ({exc}); fix the syntax") from None
        if not isinstance(meta, dict):
            raise DataError(
                f"{p}: a sidecar must be a JSON object ({{...}}), found "
                f"{type(meta).__name__}; fix the file"
            )


def get_layout(bids_dir):
    """A pybids layout of the raw dataset (read-only: no database is written into it),
    whose entities come from each file's path relative to the dataset root only.

    pybids reads every JSON sidecar while indexing; an unreadable or invalid one is reported
    as a one-line error naming it (:func:`check_json_files`).
    """
    from bids import BIDSLayout
    from bids.layout.validation import validate_root

    try:
        root, _ = validate_root(str(bids_dir), False)
        return BIDSLayout(
            str(bids_dir), validate=False, derivatives=False, config=[_anchored_config(str(root))]
        )
    except Exception as exc:  # noqa: BLE001 - pybids raises OSError/ValueError/...
        check_json_files(bids_dir)  # raises naming the bad file
        raise DataError(
            f"{bids_dir}: pybids cannot index the dataset "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
            "; check the file names and sidecars"
        ) from None


def in_bids_location(layout, path) -> bool:
    """Whether ``path`` lies where BIDS puts a participant's data file:
    ``sub-<l>/[ses-<s>/]<datatype>/sub-<l>[_ses-<s>]_*``, the folder labels equal to the
    name's. Stray copies (``archive/sub-01/...``, ``sub-01 copy/``, ``anat/old/``) are not."""
    try:
        parts = Path(path).relative_to(layout.root).parts
    except ValueError:
        return False
    if len(parts) not in (3, 4) or not re.fullmatch(r"sub-[A-Za-z0-9]+", parts[0]):
        return False
    prefix = parts[0]
    if len(parts) == 4:
        if not re.fullmatch(r"ses-[A-Za-z0-9]+", parts[1]):
            return False
        prefix += "_" + parts[1]
    return parts[-2] in DATATYPES and parts[-1].startswith(prefix + "_")


#: entities a --bids-filter-file may set per role (participant, session and datatype come
#: from the selection and the roles themselves)
FILTER_ENTITIES = (
    "acquisition",
    "reconstruction",
    "run",
    "echo",
    "flip",
    "ceagent",
    "tracer",
    "task",
    "direction",
    "part",
    "inv",
    "mt",
    "space",
    "chunk",
)
#: the roles of a --bids-filter-file (keys of :func:`collect_session`)
FILTER_ROLES = ("t1w", "t1w_ce", "megre", "megre_ce", "vfa", "dce", "pet", "spect")


def check_filters(filters, source) -> dict:
    """A ``--bids-filter-file``'s content, checked: roles, entities and value types
    (:class:`UsageError` naming the file, the role and the entity)."""
    if not isinstance(filters, dict):
        raise UsageError(
            f"{source}: must be a JSON object mapping roles "
            f"({', '.join(FILTER_ROLES)}) to entities"
        )
    out = {}
    for role, ents in filters.items():
        if role not in FILTER_ROLES:
            raise UsageError(
                f"{source}: unknown role {role!r}; roles are {', '.join(FILTER_ROLES)}"
            )
        if not isinstance(ents, dict):
            raise UsageError(
                f"{source}: role {role!r} must map entities to values, got {type(ents).__name__}"
            )
        for key, value in ents.items():
            if key in ("subject", "session", "datatype", "suffix", "extension"):
                raise UsageError(
                    f"{source}: role {role!r} may not set {key!r} (it comes from "
                    "--participant-label/--session-label and the role); remove it"
                )
            if key not in FILTER_ENTITIES:
                raise UsageError(
                    f"{source}: role {role!r}: unknown entity {key!r}; use one of "
                    f"{', '.join(FILTER_ENTITIES)}"
                )
            values = value if isinstance(value, list) else [value]
            for v in values:
                if v is not None and (
                    isinstance(v, bool)
                    or not isinstance(v, (str, int))
                    or (isinstance(v, str) and not LABEL_RE.match(v))
                ):
                    raise UsageError(
                        f"{source}: role {role!r}: {key} value {v!r} is not a "
                        "BIDS label (letters and digits), an index or null"
                    )
        out[role] = dict(ents)
    return out


def select_participants(layout, labels) -> list[str]:
    """Requested participants that exist (all when none requested)."""
    available = sorted(p[4:] for p in _folders(Path(layout.root), "sub-") if LABEL_RE.match(p[4:]))
    if not available:
        raise InputMissingError(f"{layout.root}: no sub-<label> folders found")
    labels = clean_labels(labels)
    if not labels:
        return available
    missing = [lab for lab in labels if lab not in available]
    if missing:
        raise InputMissingError(
            f"{layout.root}: participant(s) {', '.join('sub-' + m for m in missing)} not found; "
            f"available: {', '.join('sub-' + a for a in available)}"
        )
    return labels


def _one(files, what):
    return files[0].path if files else None


def collect_session(
    layout, subject: str, session: str | None, filters: dict | None = None, agent_class=None
) -> dict:
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
        found = layout.get(**{**base, **kw, **filters.get(role, {})})
        return [f for f in found if in_bids_location(layout, f.path)]

    def one_each(role, files, key, example):
        """``files`` with one file per ``key``; two for one slot (two runs, two
        reconstructions, a copy) is an error: which one is meant cannot be guessed."""
        slots = {}
        for f in files:
            slots.setdefault(key(f.entities), []).append(f.path)
        for paths in slots.values():
            if len(paths) > 1:
                names = ", ".join(Path(p).name for p in sorted(paths)[1:])
                raise DataError(
                    f"{sorted(paths)[0]}: {len(paths)} {role} files for one image ({names} "
                    f"too); keep one, or pick it with --bids-filter-file, e.g. "
                    f'{{"{role}": {example}}}'
                )
        return files

    t1w = q("t1w", suffix="T1w", datatype="anat", ceagent=None, acquisition=None)
    if len(t1w) > 1:  # runs of one T1w: the first run (documented)
        t1w = [f for f in t1w if "run" not in f.entities or f.entities["run"] == 1] or t1w
    one_each("t1w", t1w, lambda e: (), '{"run": 1}')
    out = {
        "t1w": _one(t1w, "T1w"),
        "t1w_ce": [],
        "megre": [],
        "megre_ce": [],
        "vfa": [],
        "dce": [],
        "pet": [],
        "spect": {},
    }
    t1w_ce = [f for f in q("t1w_ce", suffix="T1w", datatype="anat") if f.entities.get("ceagent")]
    for f in one_each("t1w_ce", t1w_ce, lambda e: e["ceagent"], '{"run": 1}'):
        out["t1w_ce"].append((f.entities["ceagent"], f.path))
    echoes = one_each(
        "megre", q("megre", suffix="MEGRE", ceagent=None), lambda e: e.get("echo"), '{"run": 1}'
    )
    out["megre"] = [f.path for f in sorted(echoes, key=lambda f: int(f.entities.get("echo", 0)))]
    by_agent: dict = {}
    post = [f for f in q("megre_ce", suffix="MEGRE") if f.entities.get("ceagent")]
    for f in one_each("megre_ce", post, lambda e: (e["ceagent"], e.get("echo")), '{"run": 1}'):
        by_agent.setdefault(f.entities["ceagent"], []).append(f)
    out["megre_ce"] = [
        (a, [f.path for f in sorted(fs, key=lambda f: int(f.entities["echo"]))])
        for a, fs in sorted(by_agent.items())
    ]
    vfa = one_each("vfa", q("vfa", suffix="VFA"), lambda e: e.get("flip"), '{"run": 1}')
    out["vfa"] = [f.path for f in sorted(vfa, key=lambda f: int(f.entities.get("flip", 0)))]
    dce = one_each("dce", q("dce", suffix="dce"), lambda e: e.get("ceagent"), '{"run": 1}')
    out["dce"] = [(f.entities.get("ceagent"), f.path) for f in dce]
    out["pet"] = [f.path for f in q("pet", suffix="pet", datatype="pet")]
    spect = one_each(
        "spect",
        q("spect", suffix="spect"),
        lambda e: (e.get("tracer"), e.get("acquisition")),
        '{"run": 1}',
    )
    for f in spect:
        tracer = f.entities.get("tracer", "unknown")
        out["spect"].setdefault(tracer, {})[f.entities.get("acquisition")] = f.path
    return out


def sessions_of(layout, subject: str, session_labels=None) -> list:
    """The participant's sessions (``[None]`` for a dataset without sessions)."""
    sessions = sorted(
        p[4:]
        for p in _folders(Path(layout.root) / f"sub-{subject}", "ses-")
        if LABEL_RE.match(p[4:])
    )
    labels = clean_labels(session_labels, "session")
    if not sessions:
        if labels:
            raise InputMissingError(
                f"sub-{subject}: has no sessions, but --session-label was given"
            )
        return [None]
    if labels:
        chosen = [s for s in sessions if s in labels]
        if not chosen:
            raise InputMissingError(
                f"sub-{subject}: none of the sessions {', '.join(labels)} exist; available: "
                f"{', '.join(sessions)}"
            )
        return chosen
    return sessions


def _read_tsv(path: Path) -> pd.DataFrame:
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
    df = _read_tsv(path)
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
    df = _read_tsv(path)
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
