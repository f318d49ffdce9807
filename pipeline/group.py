"""Group level: gather the participants' regional tables with their covariates.

The statistics (effect sizes, CIs, FDR, power, voxelwise models) build on the tidy table
written here (``OUTPUT_DIR/group/desc-all_regions.tsv``). Participants without
participant-level outputs are listed in ``group/desc-missing_participants.tsv`` and on the
console, never dropped silently.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

from .errors import InputMissingError
from .utils import atomic_write_text


def gather_regional_tables(output_dir) -> pd.DataFrame:
    """All ``*_regions.tsv`` of the derivatives, concatenated (with their file name)."""
    out = Path(output_dir)
    frames = []
    for path in sorted(out.glob("sub-*/**/*_regions.tsv")):
        df = pd.read_csv(path, sep="\t", na_values=["n/a"], keep_default_na=False)
        df["source_table"] = str(path.relative_to(out))
        frames.append(df)
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True)


def run_group(settings) -> int:
    from .bids import read_participants, read_sessions

    ex = settings.execution
    out = Path(ex.output_dir)
    if not (out / "dataset_description.json").exists():
        raise InputMissingError(
            f"{out}: no participant-level derivatives here; run the participant level first")
    table = gather_regional_tables(out)
    covs = settings.workflow["covariates"]
    participants = read_participants(ex.bids_dir, covs)
    expected = sorted(participants["participant_id"]) if len(participants) else sorted(
        p.name for p in Path(ex.bids_dir).glob("sub-*") if p.is_dir())
    if ex.participant_label:
        expected = [p for p in expected if p[4:] in ex.participant_label]
    have = set(table["participant_id"]) if len(table) else set()
    missing = [p for p in expected if p not in have]
    if table.empty:
        raise InputMissingError(f"{out}: no regional tables (*_regions.tsv) found; run the "
                                "participant level first")
    sessions = []
    for pid in sorted(have):
        s = read_sessions(ex.bids_dir, pid[4:], covs)
        if len(s):
            s.insert(0, "participant_id", pid)
            sessions.append(s)
    if sessions:
        table = table.merge(pd.concat(sessions), on=["participant_id", "session_id"],
                            how="left")
    if len(participants):
        table = table.merge(participants, on="participant_id", how="left")
    gdir = out / "group"
    gdir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(table.to_csv(sep="\t", index=False, na_rep="n/a"),
                      gdir / "desc-all_regions.tsv")
    atomic_write_text(json.dumps({
        "Description": "All participant-level regional tables with participants.tsv and "
                       "sessions.tsv covariates",
        "Sources": sorted(set(table["source_table"]))}, indent=2),
        gdir / "desc-all_regions.json")
    atomic_write_text(pd.DataFrame({"participant_id": missing}).to_csv(sep="\t", index=False),
                      gdir / "desc-missing_participants.tsv")
    if missing:
        print(f"inflamap: {len(missing)} participant(s) without participant-level outputs: "
              f"{', '.join(missing)}", file=sys.stderr)
    print(f"inflamap: group table of {len(have)} participant(s) written to "
          f"{gdir / 'desc-all_regions.tsv'}", file=sys.stderr)
    return 0
