"""Derivative names from source entities, dataset description, atomic writing."""

import json
import os

import pytest

from pipeline.derivatives import derivative_relpath, write_dataset_description
from pipeline.utils import atomic_write_text

SRC = "/data/sub-01/ses-02/anat/sub-01_ses-02_ce-gadobutrol_T1w.nii.gz"


def test_names_follow_entity_order():
    assert str(derivative_relpath(SRC, "T1w", space="MNI152NLin2009cAsym", desc="preproc")) == (
        "sub-01/ses-02/anat/"
        "sub-01_ses-02_ce-gadobutrol_space-MNI152NLin2009cAsym_desc-preproc_T1w.nii.gz"
    )
    xfm = derivative_relpath(
        SRC, "xfm", ".h5", ce=None, **{"from": "T1w", "to": "tpl"}, mode="image"
    )
    assert xfm.name == "sub-01_ses-02_from-T1w_to-tpl_mode-image_xfm.h5"
    echo = "/d/sub-01/anat/sub-01_echo-3_MEGRE.nii.gz"
    assert (
        derivative_relpath(echo, "R2starmap").as_posix() == "sub-01/anat/sub-01_R2starmap.nii.gz"
    )
    pet = "/d/sub-01/ses-01/pet/sub-01_ses-01_trc-PBR28_pet.nii.gz"
    assert derivative_relpath(pet, "SUVR", ".tsv", atlas="x").as_posix() == (
        "sub-01/ses-01/pet/sub-01_ses-01_trc-PBR28_atlas-x_SUVR.tsv"
    )


def test_bad_entities_refused():
    with pytest.raises(ValueError, match="alphanumeric"):
        derivative_relpath(SRC, "T1w", desc="pre-proc")
    with pytest.raises(ValueError, match="unknown BIDS entity"):
        derivative_relpath(SRC, "T1w", colour="red")
    with pytest.raises(ValueError, match="not a BIDS file name"):
        derivative_relpath("/tmp/brain.nii.gz", "T1w")


def test_dataset_description_once(tmp_path, monkeypatch):
    monkeypatch.setenv("INFLAMAP_CONTAINER", "docker")
    p = write_dataset_description(tmp_path, "/data/bids")
    d = json.loads(p.read_text())
    assert d["DatasetType"] == "derivative"
    assert d["GeneratedBy"][0]["Name"] == "inflamap"
    assert d["GeneratedBy"][0]["Container"]["Type"] == "docker"
    assert d["DatasetLinks"]["raw"] == "file:///data/bids"
    p.write_text("{}")
    write_dataset_description(tmp_path, "/data/bids")  # never rewritten
    assert p.read_text() == "{}"


def test_atomic_write_leaves_no_temporary(tmp_path):
    atomic_write_text("a\tb\n", tmp_path / "x" / "t.tsv")
    assert os.listdir(tmp_path / "x") == ["t.tsv"]


def test_atomic_output_for_figure_writers(tmp_path):
    """Figures (matplotlib/nilearn write to a name) appear whole or not at all."""
    from matplotlib.figure import Figure

    from pipeline.utils import atomic_output

    target = tmp_path / "figs" / "plot.png"
    fig = Figure(figsize=(2, 2))
    fig.subplots().plot([0, 1], [1, 0])
    with pytest.raises(RuntimeError):  # noqa: PT012
        with atomic_output(target) as tmp:
            assert tmp.suffix == ".png" and tmp.parent == target.parent
            fig.savefig(tmp)
            assert tmp.stat().st_size > 0
            raise RuntimeError("killed mid-report")
    assert os.listdir(target.parent) == []  # neither the figure nor a temporary
    with atomic_output(target) as tmp:
        fig.savefig(tmp)
    assert os.listdir(target.parent) == ["plot.png"]
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
