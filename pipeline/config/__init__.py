"""One settings object for a run: typed, range-checked sections, read everywhere.

``Settings.execution`` (paths, selection, behaviour), ``Settings.nipype`` (engine resources)
and ``Settings.workflow`` (:class:`WorkflowSettings`: the YAML configuration,
``configs/defaults.yml`` merged with a user ``--config`` file).

The default *values* live in one place, the commented ``configs/defaults.yml`` that users
read; the *rules* (type, range, allowed values, relations between keys) live in one place,
the frozen dataclasses below (one per section). :func:`load_workflow_config` merges the
user's YAML over the defaults (an unknown key is named with the closest valid one), then
builds the dataclasses, checking every value once: a bad value is a :class:`ConfigError`
(exit 64) naming the file, the key, the value and what is allowed, before any participant
is touched. Code reads attributes (``settings.workflow.dce.hematocrit``), never string keys.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from .rules import ConfigError, _Bad, _build, _short
from .sections import WorkflowSettings

# --------------------------------------------------------------------------- loading


def default_dict() -> dict:
    """The defaults shipped in ``configs/defaults.yml``, as plain data."""
    text = resources.files("configs").joinpath("defaults.yml").read_text()
    return yaml.safe_load(text)


#: mappings whose keys are the user's (map endings...): merged over the defaults key by key
#: and checked by their settings section (e.g. ``VoxelwiseSettings.check``), not against
#: the default keys
OPEN_MAPPINGS = {"group.voxelwise.extracerebral_mm"}


def _merge(base: dict, user: dict, where: str, source: str) -> dict:
    """``user`` over ``base``; unknown keys are errors naming the closest valid key.
    Mappings merge key by key; anything else (lists included) replaces the default."""
    out = dict(base)
    for key, value in user.items():
        if key not in base:
            close = difflib.get_close_matches(str(key), list(map(str, base)), n=1, cutoff=0.6)
            hint = (
                f"; did you mean '{where}{close[0]}'?"
                if close
                else (f"; valid keys here: {', '.join(sorted(map(str, base)))}")
            )
            raise ConfigError(f"{source}: unknown key '{where}{key}'{hint}")
        if isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise ConfigError(
                    f"{source}: '{where}{key}' must be a mapping of settings, got {_short(value)}"
                )
            if f"{where}{key}" in OPEN_MAPPINGS:  # keys checked by their section instead
                out[key] = {**base[key], **value}
            else:
                out[key] = _merge(base[key], value, f"{where}{key}.", source)
        else:
            out[key] = value
    return out


def build_workflow_settings(data: dict, source: str = "configuration") -> WorkflowSettings:
    """Typed, checked settings from a complete mapping (defaults already merged)."""
    try:
        return _build(WorkflowSettings, data)
    except _Bad as bad:
        if bad.message:
            raise ConfigError(f"{source}: '{bad.key}': {bad.message}") from None
        value = "" if bad.value is None else f" is {_short(bad.value)}"
        raise ConfigError(f"{source}: '{bad.key}'{value}; allowed: {bad.allowed}") from None


def load_workflow_config(path=None, overrides: dict | None = None) -> WorkflowSettings:
    """Defaults merged with the YAML file at ``path`` and then ``overrides`` (a mapping of
    the same shape), checked: :class:`ConfigError` naming the file, key, value and range."""
    data = default_dict()
    source = "configuration"
    if path is not None:
        path = Path(path)
        source = str(path)
        try:
            user = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read the config file ({exc})") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            at = f" (line {mark.line + 1})" if mark else ""
            raise ConfigError(f"{path}: not valid YAML{at}; fix the syntax") from None
        if user is not None:
            if not isinstance(user, dict):
                raise ConfigError(f"{path}: the top level must be a mapping of sections")
            data = _merge(data, user, "", source)
    if overrides:
        data = _merge(data, overrides, "", source)
    return build_workflow_settings(data, source)


def default_config() -> WorkflowSettings:
    """The shipped defaults, typed."""
    return load_workflow_config()


# --------------------------------------------------------------------------- run settings


@dataclass
class ExecutionSettings:
    bids_dir: str = ""
    output_dir: str = ""
    analysis_level: str = "participant"
    work_dir: str = ""
    participant_label: list = field(default_factory=list)
    session_label: list = field(default_factory=list)
    bids_filters: dict = field(default_factory=dict)
    #: sMRIPrep/fMRIPrep/PETPrep derivatives folders whose anatomy and PET motion correction
    #: are reused (``--derivatives``)
    derivatives: list = field(default_factory=list)
    skip_bids_validation: bool = False
    stop_on_first_crash: bool = False
    verbosity: int = 0
    run_uuid: str = ""
    #: the validator's warning lines (None: not validated), written for the reports once a
    #: run starts
    validator_warnings: list | None = None


@dataclass
class NipypeSettings:
    plugin: str = "MultiProc"
    plugin_args: dict = field(default_factory=dict)
    nprocs: int = 1
    omp_nthreads: int = 1
    mem_gb: float = 0.0


@dataclass
class Settings:
    execution: ExecutionSettings = field(default_factory=ExecutionSettings)
    nipype: NipypeSettings = field(default_factory=NipypeSettings)
    workflow: WorkflowSettings = field(default_factory=default_config)

    def to_dict(self) -> dict:
        return asdict(self)

    def dump(self, path) -> Path:
        from ..utils import atomic_write_text

        return atomic_write_text(json.dumps(self.to_dict(), indent=2, default=str), path)

    @classmethod
    def from_dict(cls, data: dict) -> Settings:
        workflow = data.get("workflow")
        return cls(
            execution=ExecutionSettings(**data.get("execution", {})),
            nipype=NipypeSettings(**data.get("nipype", {})),
            workflow=(
                build_workflow_settings(_merge(default_dict(), workflow, "", "settings"))
                if workflow
                else default_config()
            ),
        )

    def agent_class(self, agent: str | None) -> str | None:
        return self.workflow.agent_class(agent)
