"""The group level: gather, test, fit, report (``inflamap BIDS OUT group``)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from .. import __version__, log
from ..errors import InputMissingError
from .gather import (
    _log,
    _merge_covariates,
    _status,
    gather_regional_tables,
)
from .tables import write_table
from .voxelwise import (
    run_voxelwise,
)


def _roistats_sidecar(gcfg, results, table):
    from .contrasts import COLUMN_DESCRIPTIONS
    from .models import power_column

    desc = dict(COLUMN_DESCRIPTIONS)
    desc[power_column(gcfg.target_power)] = desc.pop("n_for_80_power")
    return {
        "Description": "ROI-level group statistics: one row per contrast x modality x "
        "metric x ROI x hemisphere x test",
        "Value": f"regional-table column '{gcfg.value}', averaged over each participant's "
        "selected sessions",
        "Alpha": gcfg.alpha,
        "CILevel": gcfg.ci_level,
        "FDR": {
            "Method": gcfg.fdr,
            "Family": "contrast x modality x metric x test",
            "Software": "statsmodels.stats.multitest.multipletests",
        },
        "Power": {
            "TargetPower": gcfg.target_power,
            "Software": "statsmodels.stats.power",
            "Note": "achieved power at the observed effect is a function of the p value; "
            "read it with the minimum detectable effect and the required N",
        },
        "Covariates": gcfg.covariates,
        "ModalityRules": gcfg.modality_rules,
        "MinN": gcfg.min_n,
        "Contrasts": gcfg.contrasts,
        "Columns": {c: {"Description": desc.get(c, "")} for c in results.columns},
        "Sources": ["desc-all_regions.tsv"],
        "Software": {"inflamap": __version__},
        "NRows": len(results),
        "NParticipants": int(table["participant_id"].nunique()),
    }


def run_group(settings) -> int:
    from ..bids import read_participants, read_sessions
    from .models import group_statistics

    ex = settings.execution
    out = Path(ex.output_dir)
    if not (out / "dataset_description.json").exists():
        raise InputMissingError(
            f"{out}: no participant-level derivatives here; run the participant level first"
        )
    gcfg = settings.workflow.group
    covs = settings.workflow.covariates
    path = log.log_to_file(out / "logs" / f"run-{ex.run_uuid or 'group'}_group.log")
    _log(f"this run's log: {path}")
    participants = read_participants(ex.bids_dir, covs)
    expected = (
        sorted(participants["participant_id"])
        if len(participants)
        else sorted(
            p.name
            for p in Path(ex.bids_dir).glob("sub-*")
            if p.is_dir() and re.fullmatch(r"sub-[A-Za-z0-9]+", p.name)
        )
    )
    damaged, ignored = [], []
    table = gather_regional_tables(out, set(expected), damaged, ignored)
    for name in ignored:
        _log(
            f"{out / name}: not a participant of {Path(ex.bids_dir) / 'participants.tsv'} "
            "(or of the dataset); ignored"
        )
    for pid, message in damaged:
        _log(f"{message}; left out ({pid} counts as failed)")
    if ex.participant_label:
        expected = [p for p in expected if p[4:] in ex.participant_label]
        if len(table):
            table = table[table["participant_id"].str[4:].isin(ex.participant_label)]
    have = set(table["participant_id"]) if len(table) else set()
    if table.empty:
        raise InputMissingError(
            f"{out}: no regional tables (*_regions.tsv) found; run the participant level first"
        )
    missing = _status(out, expected, have, table, damaged)
    sessions = []
    for pid in sorted(have | set(expected)):
        s = read_sessions(ex.bids_dir, pid[4:], covs)
        if len(s):
            s.insert(0, "participant_id", pid)
            sessions.append(s)
    sessions = pd.concat(sessions, ignore_index=True) if sessions else pd.DataFrame()
    table = _merge_covariates(table, sessions, participants)
    gdir = out / "group"
    gdir.mkdir(parents=True, exist_ok=True)
    write_table(
        table,
        gdir / "desc-all_regions.tsv",
        {
            "Description": "All participant-level regional tables with participants.tsv and "
            "sessions.tsv covariates",
            "Sources": sorted(set(table["source_table"])),
        },
    )
    write_table(
        missing,
        gdir / "desc-missing_participants.tsv",
        {
            "Description": "Participants of participants.tsv (or the BIDS folder) without "
            "participant-level outputs (missing), or with a crash file newer than "
            "their outputs (failed; their outputs are used as they are)",
            "Columns": {
                "participant_id": "participant",
                "status": "missing or failed",
                "crash_files": "crash files under logs/ (';'-separated)",
                "reason": "why tables were left out (damaged tables: file and problem)",
            },
        },
    )
    if len(missing):
        _log(
            f"{len(missing)} participant(s) without complete participant-level outputs: "
            + ", ".join(f"{p} ({s})" for p, s in zip(missing["participant_id"], missing["status"]))
        )
    _log(f"group table of {len(have)} participant(s) written to {gdir / 'desc-all_regions.tsv'}")

    results, datas = group_statistics(table, **gcfg.statistics_options(), return_data=True)
    write_table(results, gdir / "desc-roistats_stats.tsv", _roistats_sidecar(gcfg, results, table))
    n_sig = int(results["significant"].sum())
    _log(
        f"ROI statistics: {int(results['p'].notna().sum())} test(s) over "
        f"{len(gcfg.contrasts)} contrast(s), {n_sig} FDR-significant; "
        f"{gdir / 'desc-roistats_stats.tsv'}"
    )

    voxel = pd.DataFrame()
    if gcfg.voxelwise.enabled:
        info = sessions.copy() if len(sessions) else pd.DataFrame(columns=["participant_id"])
        if len(participants):
            info = (
                info.merge(participants, on="participant_id", how="outer")
                if len(info)
                else participants.copy()
            )
        voxel = run_voxelwise(
            out,
            gdir,
            info,
            gcfg,
            settings.workflow.anat.template,
            settings.workflow.anat.template_resolution,
        )
        write_table(
            voxel,
            gdir / "desc-voxelwise_designs.tsv",
            {
                "Description": (
                    "voxelwise second-level designs fitted or skipped; 'reason' says why a "
                    "design was skipped, or notes on its cluster tables"
                ),
                "Settings": gcfg.voxelwise.to_dict(),
            },
        )
    if gcfg.report:
        from .report import write_group_report

        report = write_group_report(gdir, results, datas, voxel, missing, table, gcfg)
        _log(f"group report: {report}")
    return 0
