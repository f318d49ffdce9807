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

import dataclasses
import difflib
import json
import math
import re
import types
import typing
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import yaml


class ConfigError(ValueError):
    """A configuration file is invalid (exit code 64)."""


# --------------------------------------------------------------------------- the rules


def rule(
    *,
    ge=None,
    gt=None,
    le=None,
    lt=None,
    choices=None,
    length=None,
    min_length=None,
    pattern=None,
    unit="",
    doc="",
):
    """A dataclass field (no default: the defaults are in ``configs/defaults.yml``) with its
    allowed values. Ranges apply to a number or to every number of a list."""
    return field(
        metadata=dict(
            ge=ge,
            gt=gt,
            le=le,
            lt=lt,
            choices=choices,
            length=length,
            min_length=min_length,
            pattern=pattern,
            unit=unit,
            doc=doc,
        )
    )


_LABEL = r"[A-Za-z0-9]+"


def _allowed_text(meta) -> str:
    """The allowed range of a field in words (for messages)."""
    parts = []
    if meta.get("choices") is not None:
        parts.append("one of " + ", ".join(map(str, meta["choices"])))
    lo = (
        f"≥ {meta['ge']:g}"
        if meta.get("ge") is not None
        else f"> {meta['gt']:g}"
        if meta.get("gt") is not None
        else None
    )
    hi = (
        f"≤ {meta['le']:g}"
        if meta.get("le") is not None
        else f"< {meta['lt']:g}"
        if meta.get("lt") is not None
        else None
    )
    rng = " and ".join(p for p in (lo, hi) if p)
    if rng:
        parts.append(rng + (f" {meta['unit']}" if meta.get("unit") else ""))
    if meta.get("length") is not None:
        parts.append(f"a list of {meta['length']}")
    elif meta.get("min_length") is not None:
        parts.append(f"a list of at least {meta['min_length']}")
    if meta.get("pattern") == _LABEL:
        parts.append("letters and digits")
    text = "; ".join(parts) or "see configs/defaults.yml"
    return text + (f" ({meta['doc']})" if meta.get("doc") else "")


def _atlas_file(section):
    """``atlas_file``: an existing NIfTI label image with its ``.tsv`` label table beside it,
    named by ``atlas`` (not a built-in or published atlas name)."""
    path = getattr(section, "atlas_file", None)
    if path is None:
        return
    from .atlas import BUILTIN
    from .published_atlas import ATLASES

    p = Path(path)
    stem = p.name.removesuffix(".gz").removesuffix(".nii")
    tsv = p.with_name(stem + ".tsv")
    if not p.name.endswith((".nii", ".nii.gz")) or not p.is_file() or not tsv.is_file():
        raise _Bad(
            "atlas_file",
            path,
            "an existing NIfTI label image in template space with its label table "
            f"(index, name[, hemisphere]) beside it as {tsv.name}",
        )
    if section.atlas is None or section.atlas in BUILTIN or section.atlas in ATLASES:
        raise _Bad("atlas", section.atlas, "a name of your own for the atlas_file (a label)")


class _Bad(Exception):
    """A bad value: its key, the value and what is allowed (or a whole ``message``)."""

    def __init__(self, key, value, allowed, message=None):
        super().__init__(key)
        self.key, self.value, self.allowed, self.message = key, value, allowed, message


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _in_range(x, meta) -> bool:
    return not (
        (meta["ge"] is not None and x < meta["ge"])
        or (meta["gt"] is not None and x <= meta["gt"])
        or (meta["le"] is not None and x > meta["le"])
        or (meta["lt"] is not None and x >= meta["lt"])
    )


def _coerce(value, tp, key, meta):
    """``value`` as type ``tp`` (the annotation), checked against ``meta``; ``_Bad``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(value, inner, key, meta)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise _Bad(key, value, "a mapping of settings")
        return _build(tp, value, key + ".")
    if origin is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise _Bad(key, value, "a list" + (f": {_allowed_text(meta)}" if meta else ""))
        if meta.get("length") is not None and len(value) != meta["length"]:
            raise _Bad(key, value, _allowed_text(meta))
        if meta.get("min_length") is not None and len(value) < meta["min_length"]:
            raise _Bad(key, value, _allowed_text(meta))
        return [_coerce(v, item, f"{key}[{i}]", meta) for i, v in enumerate(value)]
    if tp is dict:
        if not isinstance(value, dict):
            raise _Bad(key, value, "a mapping")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise _Bad(key, value, "true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Bad(
                key,
                value,
                "a whole number"
                + (
                    f", {_allowed_text(meta)}"
                    if any(meta.get(k) is not None for k in ("ge", "gt", "le", "lt", "choices"))
                    else ""
                ),
            )
    elif tp is float:
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
        ):
            raise _Bad(key, value, f"a number, {_allowed_text(meta)}")
        # a whole number stays as written (60, not 60.0, in the sidecars that quote it)
    elif tp is str:
        if not isinstance(value, str):
            raise _Bad(
                key,
                value,
                "a text value" + (f", {_allowed_text(meta)}" if meta.get("choices") else ""),
            )
        if meta.get("pattern") and not re.fullmatch(meta["pattern"], value):
            raise _Bad(key, value, _allowed_text(meta))
    else:  # pragma: no cover - a programming error in the dataclasses below
        raise TypeError(f"{key}: unsupported setting type {tp}")
    if meta.get("choices") is not None and value not in meta["choices"]:
        raise _Bad(key, value, _allowed_text(meta))
    if tp in (int, float) and not _in_range(value, meta):
        raise _Bad(key, value, _allowed_text(meta))
    return value


def _build(cls, data: dict, where: str = ""):
    """The dataclass ``cls`` from the (merged, complete) mapping ``data``."""
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        key = f"{where}{f.name}"
        if f.name not in data:
            raise _Bad(key, None, "a value: the key is missing")
        values[f.name] = _coerce(data[f.name], hints[f.name], key, dict(f.metadata))
    obj = cls(**values)
    check = getattr(obj, "check", None)
    if check is not None:
        try:
            check()
        except _Bad as bad:
            raise _Bad(where + bad.key, bad.value, bad.allowed, bad.message) from None
    return obj


class _Section:
    """Base of the sections: plain dictionaries out (sidecars, dumps)."""

    def to_dict(self) -> dict:
        return asdict(self)


def _levels_match(obj, names, where=""):
    """Registration schedules: one value per level in every list."""
    lengths = {n: len(getattr(obj, n)) for n in names}
    first = names[0]
    for n in names[1:]:
        if lengths[n] != lengths[first]:
            raise _Bad(
                n, getattr(obj, n), f"one value per level, like {first} ({lengths[first]} levels)"
            )


# --------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class RigidRegistrationSettings(_Section):
    """A rigid, mutual-information registration (antsRegistration), coarse to fine."""

    iterations: list[int] = rule(ge=0, le=100000, min_length=1, doc="iterations per level")
    shrink_factors: list[int] = rule(ge=1, le=32, min_length=1)
    smoothing_sigmas: list[float] = rule(ge=0, le=32, min_length=1, unit="voxels")

    def check(self):
        _levels_match(self, ("iterations", "shrink_factors", "smoothing_sigmas"))


@dataclass(frozen=True)
class N4Settings(_Section):
    iterations: list[int] = rule(ge=0, le=10000, min_length=1, doc="per fitting level")
    convergence_threshold: float = rule(gt=0, lt=1)
    shrink_factor: int = rule(ge=1, le=16)
    bspline_fitting_distance: float = rule(gt=0, le=10000, unit="mm")


@dataclass(frozen=True)
class AnatRegistrationSettings(_Section):
    rigid_iterations: list[int] = rule(ge=0, le=100000, min_length=1)
    affine_iterations: list[int] = rule(ge=0, le=100000, min_length=1)
    syn_iterations: list[int] = rule(ge=0, le=100000, min_length=1)
    shrink_factors: list[int] = rule(ge=1, le=32, min_length=1)
    smoothing_sigmas: list[float] = rule(ge=0, le=32, min_length=1, unit="voxels")
    syn_metric: str = rule(choices=("MI", "CC"))
    syn_gradient_step: float = rule(gt=0, le=1)
    fixed_mask_dilation_mm: float = rule(ge=0, le=50, unit="mm")

    def check(self):
        _levels_match(
            self,
            (
                "shrink_factors",
                "rigid_iterations",
                "affine_iterations",
                "syn_iterations",
                "smoothing_sigmas",
            ),
        )


def _band(obj, name):
    lo, hi = getattr(obj, name)
    if not lo < hi:
        raise _Bad(name, [lo, hi], "[inner, outer] with inner < outer (mm from the brain surface)")


@dataclass(frozen=True)
class SegmentationSettings(_Section):
    mrf_smoothing: float = rule(ge=0, le=1, doc="Atropos Markov random field weight")
    iterations: int = rule(ge=1, le=100, doc="Atropos EM iterations")
    closing_mm: float = rule(ge=0, le=10, unit="mm", doc="pial-hull closing radius")


def _range(obj, name, what):
    lo, hi = getattr(obj, name)
    if not lo < hi:
        raise _Bad(name, [lo, hi], f"[low, high] with low < high ({what})")


@dataclass(frozen=True)
class AnatQCSettings(_Section):
    fail: bool = rule(doc="a value out of range fails the session (--ignore-qc-failures: flag)")
    min_mask_dice: float = rule(ge=0, le=1, doc="template mask in the T1w vs the brain mask")
    volume_ratio: list[float] = rule(gt=0, le=10, length=2, doc="registration scaling")
    brain_volume_ml: list[float] = rule(gt=0, le=10000, length=2, unit="ml")

    def check(self):
        _range(self, "volume_ratio", "template brain volume in the T1w / in the template")
        _range(self, "brain_volume_ml", "ml")

    def ranges(self) -> dict:
        """``{value: [low, high]}`` of :func:`pipeline.models.brain.registration_qc`."""
        return {
            "mask_dice": [self.min_mask_dice, None],
            "volume_ratio": list(self.volume_ratio),
            "brain_volume_ml": list(self.brain_volume_ml),
        }


@dataclass(frozen=True)
class AnatSettings(_Section):
    template: str = rule(pattern=_LABEL, doc="a TemplateFlow template identifier")
    template_resolution: int = rule(choices=(1, 2), doc="TemplateFlow res- label")
    atlas: str = rule(pattern=_LABEL)
    atlas_desc: str | None = rule(pattern=_LABEL)
    atlas_file: str | None = rule(doc="a lab's own atlas: NIfTI in template space + .tsv")
    skull_strip: str = rule(
        choices=("deepbet", "skip"), doc="deepbet, or skip for an already brain-extracted T1w"
    )
    n4: N4Settings = rule()
    segmentation: SegmentationSettings = rule()
    registration: AnatRegistrationSettings = rule()
    qc: AnatQCSettings = rule()
    brain_mask_threshold: float = rule(gt=0, le=1, doc="of the template brain probability")
    meningeal_band_mm: list[float] = rule(ge=0, le=30, length=2, unit="mm")
    calvarial_band_mm: list[float] = rule(ge=0, le=40, length=2, unit="mm")
    sinus_margin_mm: float = rule(ge=0, le=20, unit="mm")
    scalp_mm: float = rule(ge=0, le=20, unit="mm", doc="calvarial band this deep in the head")
    same_rois_across_sessions: bool = rule(
        doc="the first session's atlas labels and bands, rigidly carried to the others"
    )

    def check(self):
        _atlas_file(self)
        _band(self, "meningeal_band_mm")
        _band(self, "calvarial_band_mm")
        if self.calvarial_band_mm[0] < self.meningeal_band_mm[1]:
            raise _Bad(
                "calvarial_band_mm",
                self.calvarial_band_mm,
                f"an inner edge ≥ the meningeal band's outer edge "
                f"({self.meningeal_band_mm[1]:g} mm): the bands must not overlap",
            )


@dataclass(frozen=True)
class GadoliniumSettings(_Section):
    normalisation: str = rule(choices=("reference-tissue", "global-median", "none"))
    reference_wm_threshold: float = rule(gt=0, le=1, doc="white-matter probability")
    floor_fraction: float = rule(gt=0, le=1, doc="of the brain median")
    post_bias_degree: int = rule(ge=0, le=3, doc="0: no residual post/pre field")
    finding_threshold_percent: float = rule(gt=0, le=1000, unit="%")
    finding_min_volume_mm3: float = rule(ge=0, le=1e6, unit="mm³")
    finding_noise_sd: float = rule(ge=0, le=100, doc="0: percent threshold only")
    finding_vessel_radius_mm: float = rule(ge=0, le=20, unit="mm", doc="0: keep vessels")
    finding_spread_sd: float = rule(ge=0, le=100, doc="0: no compartment reference")
    registration: RigidRegistrationSettings = rule()


@dataclass(frozen=True)
class RegionalSettings(_Section):
    min_voxels: int = rule(ge=1, le=100000)
    carry_columns: list[str] = rule(pattern=r"[A-Za-z0-9_]+")


@dataclass(frozen=True)
class DCESettings(_Section):
    model: str = rule(choices=("patlak", "extended_tofts"))
    relaxivity: float = rule(gt=0, le=100, unit="1/(mM s)")
    hematocrit: float = rule(ge=0.1, le=0.8, doc="large-vessel haematocrit fraction")
    vif_roi: str = rule(pattern=r"[A-Za-z0-9_]+")
    vif_mask: str | None = rule()
    vif_voxels: int = rule(ge=1, le=100000)
    vif_min_peak_fraction: float = rule(gt=0, le=1)
    delays_s: list[float] = rule(ge=-60, le=120, unit="s")
    motion: RigidRegistrationSettings = rule()

    def check(self):
        if self.vif_mask is not None:
            try:
                ok = bool(self.vif_mask.strip()) and self.vif_mask.format(subject="x", session="y")
            except (KeyError, IndexError, ValueError, AttributeError):
                ok = False
            if not ok:
                raise _Bad(
                    "vif_mask",
                    self.vif_mask,
                    "null or a NIfTI path whose only placeholders are {subject} and {session}",
                )


@dataclass(frozen=True)
class USPIOSettings(_Section):
    fit: str = rule(choices=("nonlinear", "loglinear"))
    min_echoes: int = rule(ge=2, le=64)
    atlas: str | None = rule(pattern=_LABEL, doc="null: no territory table")
    atlas_desc: str | None = rule(pattern=_LABEL)
    atlas_file: str | None = rule(doc="a lab's own atlas: NIfTI in template space + .tsv")
    pre_session_column: str = rule(pattern=r"[A-Za-z0-9_]+")
    registration: RigidRegistrationSettings = rule()

    def check(self):
        _atlas_file(self)


@dataclass(frozen=True)
class PETSettings(_Section):
    window_min: list[float] = rule(ge=0, le=1440, length=2, unit="min after injection")
    min_frame_overlap: float = rule(gt=0, le=1, doc="fraction of a frame's duration")
    suvr_reference: str = rule(
        pattern=r"whole_brain|roi:[A-Za-z0-9_]+(,[A-Za-z0-9_]+)*",
        doc="whole_brain or roi:<name>[,<name>...]",
    )
    atlas: str = rule(pattern=_LABEL)
    atlas_desc: str | None = rule(pattern=_LABEL)
    atlas_file: str | None = rule(doc="a lab's own atlas: NIfTI in template space + .tsv")
    body_weight_column: str = rule(pattern=r"[A-Za-z0-9_]+")
    repair_frame_end_times: bool = rule()
    registration: RigidRegistrationSettings = rule()

    def check(self):
        _atlas_file(self)
        lo, hi = self.window_min
        if not lo < hi:
            raise _Bad(
                "window_min", [lo, hi], "[start, end] with start < end (minutes after injection)"
            )


@dataclass(frozen=True)
class SPECTSettings(_Section):
    early_label: str = rule(pattern=_LABEL)
    late_label: str = rule(pattern=_LABEL)
    ratio_floor_fraction: float = rule(ge=0, lt=1, doc="of the early image's 99th percentile")
    registration: RigidRegistrationSettings = rule()

    def check(self):
        if self.early_label == self.late_label:
            raise _Bad("late_label", self.late_label, "a label other than early_label")


@dataclass(frozen=True)
class AgentSettings(_Section):
    gadolinium: list[str] = rule(pattern=_LABEL, min_length=1)
    iron_oxide: list[str] = rule(pattern=_LABEL, min_length=1)

    def check(self):
        both = {a.lower() for a in self.gadolinium} & {a.lower() for a in self.iron_oxide}
        if both:
            raise _Bad("iron_oxide", sorted(both), "names not also listed as gadolinium")


@dataclass(frozen=True)
class CovariateSettings(_Section):
    groups: list[str] = rule(pattern=_LABEL, min_length=1)
    phases: list[str] = rule(pattern=_LABEL, min_length=1)
    headache_sides: list[str] = rule(pattern=_LABEL, min_length=1)


#: statsmodels ``multipletests`` methods
FDR_METHODS = (
    "fdr_bh",
    "fdr_by",
    "fdr_tsbh",
    "fdr_tsbky",
    "bonferroni",
    "sidak",
    "holm",
    "holm-sidak",
    "simes-hochberg",
    "hommel",
)
#: contrast types a voxelwise design can have
VOXELWISE_TYPES = ("two_group", "paired_sessions", "paired_hemispheres")


@dataclass(frozen=True)
class VoxelwiseSettings(_Section):
    enabled: bool = rule()
    maps: list[str] = rule(
        pattern=r"([A-Za-z0-9]+-[A-Za-z0-9]+_)*[A-Za-z0-9]+",
        doc="BIDS file-name endings such as desc-percent_enhancement",
    )
    designs: list[str] = rule(pattern=_LABEL, doc="contrast names")
    flip_to_headache_side: bool = rule()
    smoothing_fwhm: float | None = rule(ge=0, le=30, unit="mm")
    min_maps: int = rule(ge=2, le=100000)
    fdr_alpha: float = rule(gt=0, le=0.5)
    cluster_height_p: float = rule(gt=0, le=0.1)
    cluster_min_voxels: int = rule(ge=1, le=10**7)

    def check(self):
        from .derivatives.registry import voxelwise_endings

        allowed = voxelwise_endings()  # the template-space maps inflamap writes
        for i, ending in enumerate(self.maps):
            if ending not in allowed:
                raise _Bad(f"maps[{i}]", ending, "one of " + ", ".join(allowed))


@dataclass(frozen=True)
class GroupSettings(_Section):
    value: str = rule(choices=("mean", "median"))
    alpha: float = rule(gt=0, le=0.5, doc="two-sided test level")
    fdr: str = rule(choices=FDR_METHODS)
    ci_level: float = rule(ge=0.5, lt=1)
    target_power: float = rule(gt=0, lt=1)
    min_n: int = rule(ge=2, le=100000)
    covariates: list[str] = rule(pattern=r"[A-Za-z0-9_]+")
    modality_rules: list[dict] = rule()
    contrasts: list[dict] = rule(min_length=1)
    voxelwise: VoxelwiseSettings = rule()
    report: bool = rule()
    report_max_rows: int = rule(ge=1, le=1000)

    def statistics_options(self) -> dict:
        """The keyword arguments of :func:`pipeline.group.models.group_statistics` these settings
        give (its contrasts and options)."""
        return dict(
            contrasts=self.contrasts,
            value=self.value,
            alpha=self.alpha,
            fdr=self.fdr,
            ci_level=self.ci_level,
            target_power=self.target_power,
            min_n=self.min_n,
            covariates=self.covariates,
            modality_rules=self.modality_rules,
        )

    def check(self):
        from .group.contrasts import check_contrasts, check_rules

        try:
            contrasts = check_contrasts(self.contrasts)
            rules = check_rules(self.modality_rules)
        except ValueError as exc:  # their messages name the entry (group.contrasts[i])
            text = str(exc).removeprefix("group.")
            key, _, rest = text.partition(": ")
            raise _Bad(key.split(" ")[0], None, None, message=rest or text) from None
        # normalised (defaults filled in) once, here
        object.__setattr__(self, "contrasts", contrasts)
        object.__setattr__(self, "modality_rules", rules)
        by_name = {c["name"]: c for c in contrasts}
        for i, name in enumerate(self.voxelwise.designs):
            if name not in by_name:
                raise _Bad(
                    f"voxelwise.designs[{i}]", name, "a contrast name: " + ", ".join(by_name)
                )
            if by_name[name]["type"] not in VOXELWISE_TYPES:
                raise _Bad(
                    f"voxelwise.designs[{i}]",
                    name,
                    "a contrast of type "
                    + " or ".join(VOXELWISE_TYPES)
                    + f" (it is {by_name[name]['type']})",
                )


@dataclass(frozen=True)
class WorkflowSettings(_Section):
    """The whole YAML configuration (``configs/defaults.yml`` documents every key)."""

    anat: AnatSettings = rule()
    gadolinium: GadoliniumSettings = rule()
    regional: RegionalSettings = rule()
    dce: DCESettings = rule()
    uspio: USPIOSettings = rule()
    pet: PETSettings = rule()
    spect: SPECTSettings = rule()
    agents: AgentSettings = rule()
    covariates: CovariateSettings = rule()
    group: GroupSettings = rule()

    def agent_class(self, agent: str | None) -> str | None:
        """``gadolinium``/``iron_oxide`` for a ``ce-`` label, None if unknown or absent."""
        if not agent:
            return None
        for cls_name in ("gadolinium", "iron_oxide"):
            if agent.lower() in {n.lower() for n in getattr(self.agents, cls_name)}:
                return cls_name
        return None

    def to_yaml(self) -> str:
        """A complete ``--config`` file giving these settings."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None, width=99)


# --------------------------------------------------------------------------- loading


def default_dict() -> dict:
    """The defaults shipped in ``configs/defaults.yml``, as plain data."""
    text = resources.files("configs").joinpath("defaults.yml").read_text()
    return yaml.safe_load(text)


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
        from .utils import atomic_write_text

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
