"""The sections of the configuration, one frozen dataclass each, with their rules and the
relations between keys (``check``)."""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from .rules import (
    _LABEL,
    _atlas_file,
    _Bad,
    _levels_match,
    _Section,
    rule,
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
    vif_volume_ml: float = rule(gt=0, le=50, unit="ml", doc="sinus volume combined")
    vif_voxels: int | None = rule(ge=1, le=100000, doc="null: from vif_volume_ml")
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


#: map endings before the BIDS names (0.1): a config written for them is told the new name
RENAMED_ENDINGS = {
    "desc-percent_enhancement": "desc-percent_T1w",
    "desc-subtraction_enhancement": "desc-subtraction_T1w",
    "dR2star": "desc-delta_R2starmap",
    "SUVR": "desc-SUVR_pet",
    "SUV": "desc-SUV_pet",
}


def _allowed_ending(ending: str, allowed) -> str:
    if ending in RENAMED_ENDINGS:
        return f"{RENAMED_ENDINGS[ending]} (the file's BIDS name since inflamap 0.2)"
    return "one of " + ", ".join(allowed)


@dataclass(frozen=True)
class VoxelwiseSettings(_Section):
    enabled: bool = rule()
    maps: list[str] = rule(
        pattern=r"([A-Za-z0-9]+-[A-Za-z0-9]+_)*[A-Za-z0-9]+",
        doc="BIDS file-name endings such as desc-percent_T1w",
    )
    designs: list[str] = rule(pattern=_LABEL, doc="contrast names")
    flip_to_headache_side: bool = rule()
    smoothing_fwhm: float | None = rule(ge=0, le=30, unit="mm")
    min_maps: int = rule(ge=2, le=100000)
    fdr_alpha: float = rule(gt=0, le=0.5)
    cluster_height_p: float = rule(gt=0, le=0.1)
    cluster_min_voxels: int = rule(ge=1, le=10**7)
    extracerebral_mm: dict = rule(
        doc="map ending -> mm the template brain mask is widened by for that map"
    )

    def check(self):
        from ..derivatives.registry import voxelwise_endings

        allowed = voxelwise_endings()  # the template-space maps inflamap writes
        for i, ending in enumerate(self.maps):
            if ending not in allowed:
                raise _Bad(f"maps[{i}]", ending, _allowed_ending(ending, allowed))
        for ending, mm in self.extracerebral_mm.items():
            if ending not in allowed:
                raise _Bad(
                    f"extracerebral_mm.{ending}", mm, "a key: " + _allowed_ending(ending, allowed)
                )
            if isinstance(mm, bool) or not isinstance(mm, (int, float)) or not 0 <= mm <= 30:
                raise _Bad(f"extracerebral_mm.{ending}", mm, "a number of mm from 0 to 30")


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
        from ..group.contrasts import check_contrasts, check_rules

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
