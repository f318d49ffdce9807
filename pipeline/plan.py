"""The participant plan: what one participant's run will read and do, computed once.

:func:`plan_participant` walks the participant's sessions and files (the BIDS queries of
:mod:`pipeline.bids`), pairs what belongs together (post- with pre-contrast images, DCE
series with the session's VFA images, post- with pre-ferumoxytol echoes, SPECT early with
late acquisitions), parses every sidecar exactly once (:mod:`pipeline.metadata`) and reads
the clinical covariates. The result, a frozen :class:`ParticipantPlan`, is all that the
rest of the run uses: the preflight (:func:`pipeline.preflight.check_plan`) checks the bytes,
headers and grids of the plan's images and nothing else, and the participant workflow
(:func:`workflows.base.init_single_subject_wf`) only wires it. So the two can never
disagree about which files a participant has or what their metadata say.

Every problem is an :class:`~pipeline.errors.InflamapError` with one line naming the file and
the fix, raised before any image is read or any step runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .errors import DataError, InputMissingError
from .metadata import (
    DCEMetadata,
    MEGREMetadata,
    PETMetadata,
    SPECTMetadata,
    dce_metadata,
    megre_metadata,
    pet_metadata,
    spect_metadata,
    vfa_metadata,
)


def sidecar_of(image) -> str:
    """The JSON sidecar beside ``image`` if it exists, else the image (for messages)."""
    p = Path(image)
    for ext in (".nii.gz", ".nii"):
        if p.name.endswith(ext):
            side = p.with_name(p.name[: -len(ext)] + ".json")
            return str(side) if side.exists() else str(p)
    return str(p)


@dataclass(frozen=True)
class GadoliniumInput:
    """A post-contrast T1w with a gadolinium-based agent (pre: the session's T1w)."""

    agent: str
    post: str


@dataclass(frozen=True)
class DCEInput:
    """A DCE series with its acquisition and the session's VFA images."""

    agent: str
    series: str
    acquisition: DCEMetadata
    vfa: tuple
    vfa_flip_angles: tuple
    vfa_tr: float
    vif_mask: str | None = None


@dataclass(frozen=True)
class PETInput:
    """A PET series with its checked metadata (frame count checked against the image by
    the preflight)."""

    path: str
    metadata: PETMetadata
    genotype: str = "n/a"
    #: PETPrep's motion correction (and transform to the T1w) reused (``--derivatives``)
    reuse: object = None


@dataclass(frozen=True)
class SPECTInput:
    """An early/late SPECT pair of one tracer."""

    tracer: str
    early: str
    late: str
    early_metadata: SPECTMetadata
    late_metadata: SPECTMetadata


@dataclass(frozen=True)
class MEGRESeries:
    """The echoes of one multi-echo GRE series, sorted by echo time."""

    images: tuple
    echo_times_s: tuple
    metadata: MEGREMetadata


@dataclass(frozen=True)
class USPIOInput:
    """A post-ferumoxytol multi-echo series and its pre-infusion series, possibly from
    another session."""

    agent: str
    session: str | None
    pre_session: str | None
    post: MEGRESeries
    pre: MEGRESeries
    #: write the pre series' own maps (False when an earlier pair already does)
    write_pre: bool = True


@dataclass(frozen=True)
class SessionPlan:
    """One session of a participant (``session`` None for a dataset without sessions)."""

    subject: str
    session: str | None
    t1w: str
    #: the session's ``sessions.tsv`` row (None for n/a)
    info: dict = field(default_factory=dict)
    #: ``regional.carry_columns`` values (``participants.tsv``/``sessions.tsv``)
    carry: dict = field(default_factory=dict)
    gadolinium: tuple = ()
    dce: tuple = ()
    pet: tuple = ()
    spect: tuple = ()
    uspio: tuple = ()
    #: the anatomy reused from sMRIPrep/fMRIPrep (``--derivatives``), or None: computed
    anatomy: object = None

    @property
    def participant_id(self) -> str:
        return f"sub-{self.subject}"

    @property
    def session_id(self) -> str:
        return f"ses-{self.session}" if self.session else "n/a"

    @property
    def tag(self) -> str:
        """The session's part of workflow node names."""
        return f"ses_{self.session}" if self.session else "nosession"

    @property
    def headache_side(self):
        return self.info.get("headache_side")


@dataclass(frozen=True)
class ParticipantPlan:
    subject: str
    bids_dir: str
    sessions: tuple
    #: what the plan decided that the user should know (e.g. derivatives not reused)
    notes: tuple = ()

    def images(self):
        """``(path, role, ndim, n_volumes)`` of every image the run reads, once each, with
        the dimensionality its role needs (for :func:`pipeline.preflight.check_plan`)."""
        seen, out = set(), []

        def add(path, role, ndim=(3,), n_volumes=None):
            if path not in seen:
                seen.add(path)
                out.append((path, role, ndim, n_volumes))

        for s in self.sessions:
            add(s.t1w, "T1w")
            if s.anatomy is not None:
                add(s.anatomy.t1w_preproc, f"reused preprocessed T1w ({s.anatomy.generated_by})")
                add(s.anatomy.brain_mask, "reused brain mask")
                add(s.anatomy.dseg, "reused tissue segmentation")
                for f in s.anatomy.probseg:
                    add(f, "reused tissue probability map")
            for g in s.gadolinium:
                add(g.post, f"post-contrast T1w (ce-{g.agent})")
            for d in s.dce:
                add(d.series, "DCE series", (4,), d.acquisition.n_frames)
                for f in d.vfa:
                    add(f, "VFA image")
            for p in s.pet:
                add(p.path, "PET series", (3, 4), p.metadata.n_frames)
                if p.reuse is not None:
                    add(p.reuse.petref, f"reused PET reference ({p.reuse.generated_by})")
            for sp in s.spect:
                add(sp.early, "SPECT early image", (3, 4), 1)
                add(sp.late, "SPECT late image", (3, 4), 1)
            for u in s.uspio:
                for f in u.pre.images + u.post.images:
                    add(f, "MEGRE echo")
        return out


def _reused_pet(pets: tuple, ex, subject, session, t1w, notes: list) -> tuple:
    """The PET inputs with PETPrep's motion correction found in ``--derivatives``."""
    if not ex.derivatives:
        return pets
    from dataclasses import replace

    from .bids.reuse import find_pet

    out = []
    for p in pets:
        found, note = find_pet(
            [Path(r) for r in ex.derivatives],
            subject,
            session,
            p.path,
            ex.bids_dir,
            t1w,
            p.metadata.n_frames,
        )
        if note:
            notes.append(note)
        if found is not None:
            what = "motion correction" + (" and transform to the T1w" if found.pet2t1w_xfm else "")
            notes.append(f"{Path(p.path).name}: {what} reused from {found.generated_by}")
        out.append(replace(p, reuse=found) if found is not None else p)
    return tuple(out)


def resolve_vif_mask(pattern, bids_dir, subject: str, session: str | None) -> str | None:
    """The user's input-function mask (``dce.vif_mask``) for one session, or None.

    ``pattern`` may hold ``{subject}`` and ``{session}`` (labels without prefix); a relative
    path is taken from the BIDS root. Its grid is checked by the preflight.
    """
    if not pattern:
        return None
    try:
        text = str(pattern).format(subject=subject, session=session or "")
    except (KeyError, IndexError, ValueError) as exc:
        from .errors import UsageError

        raise UsageError(
            f"dce.vif_mask {pattern!r}: bad placeholder ({exc}); use {{subject}} and {{session}}"
        ) from None
    path = Path(text)
    if not path.is_absolute():
        path = Path(bids_dir) / path
    if not path.is_file():
        raise InputMissingError(
            f"{path}: input-function mask (dce.vif_mask) not found; draw "
            "it on the DCE grid or unset dce.vif_mask to use the sinus"
        )
    return str(path)


def _dce_inputs(layout, files, subject, session, settings):
    cfg = settings.workflow
    out = []
    for agent, dce in files["dce"]:
        if cfg.agent_class(agent) != "gadolinium":
            continue
        if not files["vfa"]:
            raise InputMissingError(
                f"{dce}: a DCE series needs a T1 map: no flip-<n>_VFA images in this "
                "session; add them (FlipAngle, RepetitionTimeExcitation in their sidecars)"
            )
        acq = dce_metadata(layout.get_metadata(dce), sidecar_of(dce))
        angles, tr = vfa_metadata(
            [layout.get_metadata(f) for f in files["vfa"]], [sidecar_of(f) for f in files["vfa"]]
        )
        out.append(
            DCEInput(
                agent=agent,
                series=dce,
                acquisition=acq,
                vfa=tuple(files["vfa"]),
                vfa_flip_angles=tuple(angles),
                vfa_tr=tr,
                vif_mask=resolve_vif_mask(
                    cfg.dce.vif_mask, settings.execution.bids_dir, subject, session
                ),
            )
        )
    return tuple(out)


def _pet_inputs(layout, files, tables, subject, session, settings, carry):
    cfg = settings.workflow
    out = []
    for pet in files["pet"]:
        weights = tables.carried(subject, session, [cfg.pet.body_weight_column, "weight"])
        weight = next((v for v in weights.values() if v != "n/a"), None)
        meta = pet_metadata(
            layout.get_metadata(pet),
            sidecar_of(pet),
            body_weight=weight,
            repair_end_times=cfg.pet.repair_frame_end_times,
        )
        out.append(
            PETInput(path=pet, metadata=meta, genotype=str(carry.get("tspo_genotype", "n/a")))
        )
    return tuple(out)


def _spect_inputs(layout, files, settings):
    scfg = settings.workflow.spect
    out = []
    for tracer, acqs in files["spect"].items():
        early, late = acqs.get(scfg.early_label), acqs.get(scfg.late_label)
        if early is None or late is None:
            have = next(iter(acqs.values()))
            raise InputMissingError(
                f"{have}: a SPECT uptake ratio needs acq-{scfg.early_label} and "
                f"acq-{scfg.late_label} acquisitions of trc-{tracer}; add the missing one "
                "(found " + ", ".join(f"acq-{a}" for a in acqs) + ")"
            )
        metas = {
            k: spect_metadata(layout.get_metadata(f), sidecar_of(f))
            for k, f in (("early", early), ("late", late))
        }
        if metas["late"].start_s <= metas["early"].start_s:
            raise DataError(
                f"{sidecar_of(late)}: the late acquisition starts before the "
                "early one (FrameTimesStart); check the acq- labels"
            )
        out.append(
            SPECTInput(
                tracer=tracer,
                early=early,
                late=late,
                early_metadata=metas["early"],
                late_metadata=metas["late"],
            )
        )
    return tuple(out)


def _uspio_inputs(layout, all_files, rows, selected, settings):
    """USPIO pairs by the post session (only selected sessions with a T1w)."""
    from .bids import uspio_pairs

    cfg = settings.workflow
    parsed, by_session, pre_done = {}, {}, set()

    def series(echoes):
        key = tuple(echoes)
        if key not in parsed:
            meta = megre_metadata(
                [layout.get_metadata(f) for f in echoes],
                [sidecar_of(f) for f in echoes],
                min_echoes=cfg.uspio.min_echoes,
            )
            parsed[key] = MEGRESeries(
                images=tuple(echoes[i] for i in meta.order),
                echo_times_s=tuple(float(t) for t in meta.echo_times_s),
                metadata=meta,
            )
        return parsed[key]

    for pair in uspio_pairs(all_files, cfg.agent_class, rows, cfg.uspio.pre_session_column):
        if pair["session"] not in selected:
            continue  # post session not selected (or without T1w: nothing to report on)
        pre, post = series(pair["pre"]), series(pair["post"])
        by_session.setdefault(pair["session"], []).append(
            USPIOInput(
                agent=pair["agent"],
                session=pair["session"],
                pre_session=pair["pre_session"],
                post=post,
                pre=pre,
                write_pre=pre.images not in pre_done,
            )
        )
        pre_done.add(pre.images)
    return by_session


def plan_participant(layout, subject: str, settings) -> ParticipantPlan:
    """The plan of one participant: sessions, files by role, parsed metadata, covariates.

    Parameters
    ----------
    layout : :class:`bids.BIDSLayout`
        the input dataset (:func:`pipeline.bids.get_layout`)
    subject : str
        participant label (without ``sub-``)
    settings : :class:`pipeline.config.Settings`

    Raises
    ------
    InflamapError
        the first problem (a missing file or field, a unit mistake, a covariate value outside
        the documented ones), one line naming the file and the fix.
    """
    from .bids import DatasetTables, collect_session, sessions_of

    cfg = settings.workflow
    ex = settings.execution
    tables = DatasetTables(ex.bids_dir, cfg.covariates, layout)
    selected = sessions_of(layout, subject, ex.session_label)
    # every session's files: a selected post-ferumoxytol session may pair with another one
    all_files = {
        ses: collect_session(layout, subject, ses, ex.bids_filters)
        for ses in sessions_of(layout, subject)
    }
    rows = {ses: tables.session_row(subject, ses) for ses in all_files}
    with_t1w = [ses for ses in selected if all_files[ses]["t1w"] is not None]
    if not with_t1w:
        raise InputMissingError(
            f"{Path(ex.bids_dir) / ('sub-' + subject)}: no pre-contrast T1w "
            "(sub-<label>[_ses-<label>]_T1w.nii.gz) found; every session needs one"
        )
    uspio = _uspio_inputs(layout, all_files, rows, set(with_t1w), settings)
    sessions, notes = [], []
    n_with_t1w = sum(1 for f in all_files.values() if f["t1w"] is not None)
    for ses in with_t1w:
        files = all_files[ses]
        carry = tables.carried(subject, ses, cfg.regional.carry_columns)
        anatomy = None
        if ex.derivatives:
            from .bids.reuse import find_anatomy

            anatomy, note = find_anatomy(
                [Path(r) for r in ex.derivatives],
                subject,
                ses,
                n_with_t1w,
                cfg.anat.template,
                files["t1w"],
            )
            if note:
                notes.append(note)
            elif anatomy is not None:
                notes.append(
                    f"ses-{ses}: anatomy reused from {anatomy.generated_by} "
                    f"({Path(anatomy.t1w_preproc).parent})"
                    if ses
                    else f"anatomy reused from {anatomy.generated_by} "
                    f"({Path(anatomy.t1w_preproc).parent})"
                )
        sessions.append(
            SessionPlan(
                subject=subject,
                session=ses,
                t1w=files["t1w"],
                info=rows[ses],
                carry=carry,
                gadolinium=tuple(
                    GadoliniumInput(agent, post)
                    for agent, post in files["t1w_ce"]
                    if cfg.agent_class(agent) == "gadolinium"
                ),
                dce=_dce_inputs(layout, files, subject, ses, settings),
                pet=_reused_pet(
                    _pet_inputs(layout, files, tables, subject, ses, settings, carry),
                    ex,
                    subject,
                    ses,
                    files["t1w"],
                    notes,
                ),
                spect=_spect_inputs(layout, files, settings),
                uspio=tuple(uspio.get(ses, ())),
                anatomy=anatomy,
            )
        )
    return ParticipantPlan(
        subject=subject, bids_dir=str(ex.bids_dir), sessions=tuple(sessions), notes=tuple(notes)
    )


__all__ = [
    "DCEInput",
    "GadoliniumInput",
    "MEGRESeries",
    "PETInput",
    "ParticipantPlan",
    "SPECTInput",
    "SessionPlan",
    "USPIOInput",
    "plan_participant",
    "resolve_vif_mask",
    "sidecar_of",
]
