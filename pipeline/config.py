"""One settings object for a run, in sections, serialisable, read everywhere.

``Settings.execution`` (paths, selection, behaviour), ``Settings.nipype`` (engine resources)
and ``Settings.workflow`` (the YAML configuration: ``configs/defaults.yml`` merged with a
user ``--config`` file). :func:`load_workflow_config` validates user keys against the
defaults and names the bad key with the closest valid one.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import yaml


class ConfigError(ValueError):
    """A configuration file is invalid (exit code 64)."""


def default_config() -> dict:
    """The defaults shipped in ``configs/defaults.yml``."""
    text = resources.files("configs").joinpath("defaults.yml").read_text()
    return yaml.safe_load(text)


def _merge(base: dict, user: dict, where: str, source: str) -> dict:
    out = dict(base)
    for key, value in user.items():
        if key not in base:
            close = difflib.get_close_matches(str(key), list(base), n=1, cutoff=0.6)
            hint = f"; did you mean '{where}{close[0]}'?" if close else (
                f"; valid keys here: {', '.join(sorted(map(str, base)))}")
            raise ConfigError(f"{source}: unknown key '{where}{key}'{hint}")
        default = base[key]
        if isinstance(default, dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: '{where}{key}' must be a mapping of settings")
            out[key] = _merge(default, value, f"{where}{key}.", source)
        elif default is None or value is None:
            out[key] = value
        elif isinstance(default, bool) != isinstance(value, bool) or not isinstance(
                value, (type(default), int) if isinstance(default, float) else type(default)):
            raise ConfigError(
                f"{source}: '{where}{key}' must be of type {type(default).__name__} "
                f"(like the default {default!r}), got {value!r}")
        else:
            out[key] = value
    return out


def load_workflow_config(path=None) -> dict:
    """Defaults merged with the YAML file at ``path`` (validated)."""
    cfg = default_config()
    if path is None:
        return cfg
    path = Path(path)
    try:
        user = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1})" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{at}; fix the syntax") from None
    if user is None:
        return cfg
    if not isinstance(user, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    return _merge(cfg, user, "", str(path))


@dataclass
class ExecutionSettings:
    bids_dir: str = ""
    output_dir: str = ""
    analysis_level: str = "participant"
    work_dir: str = ""
    participant_label: list = field(default_factory=list)
    session_label: list = field(default_factory=list)
    bids_filters: dict = field(default_factory=dict)
    skip_bids_validation: bool = False
    stop_on_first_crash: bool = False
    verbosity: int = 0
    run_uuid: str = ""


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
    workflow: dict = field(default_factory=default_config)

    def to_dict(self) -> dict:
        return asdict(self)

    def dump(self, path) -> Path:
        from .utils import atomic_write_text

        return atomic_write_text(json.dumps(self.to_dict(), indent=2, default=str), path)

    @classmethod
    def from_dict(cls, data: dict) -> "Settings":
        return cls(execution=ExecutionSettings(**data.get("execution", {})),
                   nipype=NipypeSettings(**data.get("nipype", {})),
                   workflow=data.get("workflow") or default_config())

    def agent_class(self, agent: str | None) -> str | None:
        """``gadolinium``/``iron_oxide`` for a ``ce-`` label, None if unknown or absent."""
        if not agent:
            return None
        for cls_name, names in self.workflow["agents"].items():
            if agent.lower() in {n.lower() for n in names}:
                return cls_name
        return None
