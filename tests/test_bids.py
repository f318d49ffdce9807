"""BIDS queries and covariates on the demo and on real PET-BIDS/qMRI example sidecars."""

import json
import shutil

import pandas as pd
import pytest
from conftest import SHARED

from pipeline.bids import (
    DatasetTables,
    check_bids_root,
    clean_labels,
    collect_session,
    get_layout,
    read_participants,
    read_sessions,
    select_participants,
    sessions_of,
)
from pipeline.config import default_config
from pipeline.errors import DataError, InputMissingError, UsageError

COV = default_config().covariates


def test_collect_session_roles(demo_dir):
    layout = get_layout(demo_dir / "bids")
    assert select_participants(layout, []) == ["01", "02"]
    assert sessions_of(layout, "01") == ["01", "02"]
    f = collect_session(layout, "01", "01")
    assert f["t1w"].endswith("sub-01_ses-01_T1w.nii.gz")
    assert [a for a, _ in f["t1w_ce"]] == ["gadobutrol"]
    assert [p.split("_echo-")[1][0] for p in f["megre"]] == ["1", "2", "3", "4", "5", "6"]
    assert f["megre_ce"][0][0] == "ferumoxytol" and len(f["megre_ce"][0][1]) == 6
    assert len(f["vfa"]) == 4 and f["vfa"][0].endswith("flip-1_VFA.nii.gz")
    assert f["dce"][0][0] == "gadobutrol" and f["dce"][0][1].endswith("_dce.nii.gz")
    assert len(f["pet"]) == 1
    assert collect_session(layout, "01", "02")["pet"] == []  # PET only in ses-01


def test_bids_filter_selects_entities(demo_dir):
    layout = get_layout(demo_dir / "bids")
    f = collect_session(layout, "01", "01", {"megre": {"echo": [1, 2]}})
    assert len(f["megre"]) == 2


def test_session_info_and_labels(demo_dir):
    truth = json.loads((demo_dir / "groundtruth" / "groundtruth.json").read_text())
    for pid, p in truth["participants"].items():
        info = DatasetTables(demo_dir / "bids", COV).session_row(pid[4:], "02")
        assert info["headache_side"] == p["headache_side"]
        assert info["phase"] == ("ictal" if p["group"] == "MA" else None)  # n/a -> None
    assert clean_labels(["sub-01", "02", "02"]) == ["01", "02"]
    for bad in ["../x", "0 1", "sub-", "a/b"]:
        with pytest.raises(UsageError, match="letters and digits"):
            clean_labels([bad])


def test_missing_participant_lists_available(demo_dir):
    layout = get_layout(demo_dir / "bids")
    with pytest.raises(InputMissingError, match="sub-99 not found; available: sub-01, sub-02"):
        select_participants(layout, ["99"])
    with pytest.raises(InputMissingError, match="none of the sessions 09 exist"):
        sessions_of(layout, "01", ["09"])


def test_out_of_vocabulary_covariates(tmp_path, demo_dir):
    root = tmp_path / "ds"
    shutil.copytree(demo_dir / "bids", root, ignore=shutil.ignore_patterns("*.nii.gz"))
    p = pd.read_csv(root / "participants.tsv", sep="\t")
    p.loc[0, "group"] = "migraine"
    p.to_csv(root / "participants.tsv", sep="\t", index=False)
    with pytest.raises(
        DataError,
        match=r"participants.tsv: column 'group' has value\(s\) "
        r"\['migraine'\]",
    ):
        read_participants(root, COV)
    s = root / "sub-02" / "sub-02_sessions.tsv"
    s.write_text(
        s.read_text().replace("none", "both").replace("left", "both").replace("right", "both")
    )
    with pytest.raises(DataError, match="sub-02_sessions.tsv: column 'headache_side'"):
        read_sessions(root, "02", COV)


def test_check_bids_root_messages(tmp_path):
    with pytest.raises(InputMissingError, match="does not exist"):
        check_bids_root(tmp_path / "nope")
    with pytest.raises(InputMissingError, match="dataset_description.json: missing"):
        check_bids_root(tmp_path)
    (tmp_path / "dataset_description.json").write_text("{oops")
    with pytest.raises(DataError, match="not valid JSON"):
        check_bids_root(tmp_path)


def test_real_pet_bids_participants_table():
    """pet002 (real PET-BIDS example): participants.tsv without a group column reads fine."""
    df = read_participants(SHARED / "data" / "bids-examples" / "pet002", COV)
    assert list(df["participant_id"]) == ["sub-01", "sub-02"]
    assert df["weight"].tolist() == [51, 51.2]
