"""The pybids layout of the raw dataset (entities anchored at its root), BIDS filter files,
participant selection and the files of each session."""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import DataError, InputMissingError, UsageError
from .root import LABEL_RE, clean_labels
from .scan import check_json_files
from .tables import _folders

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
