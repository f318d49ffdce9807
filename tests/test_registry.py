"""The output registry: every derivative declared once, and what its readers derive from it
(sink sidecars, ``.bidsignore``, the report's drawing rules, the voxelwise map names)."""

from __future__ import annotations

import fnmatch
from pathlib import Path

import pytest

from pipeline.derivatives import derivative_relpath, write_dataset_description
from pipeline.derivatives.registry import (
    OUTPUTS,
    SECTIONS,
    bidsignore_patterns,
    outputs,
    resolve,
    voxelwise_endings,
)

CONTEXT = {
    "template": "MNI152NLin2009cAsym",
    "atlas": "HarvardOxfordLobes",
    "territory_atlas": "inflamapTerritories",
    "pet_atlas": "HarvardOxfordTSPO",
    "headache_side": "left",
    "t1w_ref": "bids:raw:sub-01/anat/sub-01_T1w.nii.gz",
    "fit": {"FitModel": "monoexponential"},
    "vif_description": "venous input function from the superior sagittal sinus",
    "ants": "ANTs",
    "bias_correction": {},
    "mask_method": "deepbet",
    "segmentation": {},
    "registration": {},
    "meningeal_band_mm": [0, 5],
    "calvarial_band_mm": [4, 12],
    "ve_estimated": True,
    "dce_ref": "bids:raw:sub-01/ses-01/anat/sub-01_ses-01_ce-gadobutrol_dce.nii.gz",
}
#: a source file of each sink (what its derivatives are named after)
SOURCES = {
    "anat": "anat/sub-01_ses-01_T1w.nii.gz",
    "nt1w": "anat/sub-01_ses-01_T1w.nii.gz",
    "gadolinium": "anat/sub-01_ses-01_ce-gadobutrol_T1w.nii.gz",
    "dce": "anat/sub-01_ses-01_ce-gadobutrol_dce.nii.gz",
    "uspio": "anat/sub-01_ses-01_ce-ferumoxytol_echo-1_MEGRE.nii.gz",
    "uspio_pre": "anat/sub-01_ses-01_echo-1_MEGRE.nii.gz",
    "pet": "pet/sub-01_ses-01_trc-PBR28_pet.nii.gz",
    "spect": "spect/sub-01_ses-01_trc-99mTcAlbumin_acq-early_spect.nii.gz",
}
#: suffixes BIDS (or BIDS-Derivatives) defines for the entities inflamap gives them
BIDS_NAMES = {"T1w", "mask", "dseg", "probseg"}


def _relpath(out, ext=".nii.gz") -> str:
    ents, _ = resolve(out, CONTEXT)
    return derivative_relpath(SOURCES[out.sink], out.suffix, ext, **ents).as_posix()


def test_keys_are_unique_within_each_sink_and_every_sink_is_known():
    for sink in SECTIONS:
        keys = [o.key for o in outputs(sink)]
        assert keys and len(keys) == len(set(keys)), sink
    with pytest.raises(KeyError, match="unknown sink"):
        outputs("perfusion")


def test_every_sidecar_has_a_description_and_maps_have_units():
    for out in OUTPUTS:
        ents, meta = resolve(out, CONTEXT)
        if not out.sidecar:
            assert meta is None
            continue
        assert meta.get("Description"), out.field
        if out.report == "map":
            assert meta.get("Units"), out.field


def test_placeholders_fill_in_and_a_missing_atlas_drops_its_outputs():
    dr2 = next(o for o in outputs("uspio") if o.key == "regions_territories")
    ents, meta = resolve(dr2, CONTEXT)
    assert ents["atlas"] == "inflamapTerritories" and meta["HeadacheSide"] == "left"
    assert resolve(dr2, {**CONTEXT, "territory_atlas": None}) is None
    with pytest.raises(KeyError, match="territory_atlas"):
        resolve(dr2, {k: v for k, v in CONTEXT.items() if k != "territory_atlas"})
    # a sidecar placeholder without a value is left out, not written as null
    rois = next(o for o in outputs("anat") if o.key == "rois_native")
    assert "ReferenceSession" not in resolve(rois, CONTEXT)[1]
    assert resolve(rois, {**CONTEXT, "reference_session": "01"})[1]["ReferenceSession"] == "01"
    # merged dictionaries (the fit settings) land in the sidecar
    assert resolve(dr2, CONTEXT)[1]["Description"]
    r2 = next(o for o in outputs("uspio") if o.key == "dr2star")
    assert resolve(r2, CONTEXT)[1]["FitModel"] == "monoexponential"


def test_ve_is_written_only_by_a_model_that_estimates_it():
    ve = [o for o in outputs("dce") if o.suffix == "ve"]
    assert len(ve) == 2  # native and template space
    for out in ve:
        assert resolve(out, CONTEXT) is not None
        assert resolve(out, {**CONTEXT, "ve_estimated": False}) is None


def _ignored(rel: str, pattern: str) -> bool:
    """gitignore-like: a pattern without ``/`` matches a name; with one, the path or a
    folder above the file."""
    if "/" not in pattern.strip("/"):
        return fnmatch.fnmatch(rel.rsplit("/", 1)[-1], pattern.strip("/"))
    parts = rel.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(fnmatch.fnmatch(x, pattern.lstrip("/")) for x in prefixes)


def test_bidsignore_hides_exactly_what_bids_has_no_name_for(tmp_path):
    patterns = bidsignore_patterns()
    for out in OUTPUTS:
        ext = ".tsv" if not out.sidecar or out.suffix in ("regions", "findings") else ".nii.gz"
        if out.suffix == "xfm":
            ext = ".h5"
        rel = _relpath(out, ext)
        name = rel.rsplit("/", 1)[-1]
        hidden = any(_ignored(rel, p) for p in patterns)
        if out.sink == "spect":
            assert hidden, rel  # the whole spect/ folder (no BIDS datatype)
            continue
        standard = (out.suffix in BIDS_NAMES and "/pet/" not in rel) or (
            out.suffix in ("T1map", "R2starmap") and "_ce-" not in name
        )
        assert hidden != standard, (name, hidden)
    write_dataset_description(tmp_path, tmp_path)
    assert (tmp_path / ".bidsignore").read_text().splitlines() == list(patterns)


def test_voxelwise_endings_are_template_maps_and_bad_ones_are_refused(tmp_path):
    from pipeline.config import ConfigError, load_workflow_config

    endings = voxelwise_endings()
    for default in ("desc-percent_enhancement", "Ktrans", "dR2star", "SUVR"):
        assert default in endings
    assert not any(e.endswith(("T1w", "xfm", "mask", "dseg", "regions")) for e in endings)
    cfg = tmp_path / "c.yml"
    cfg.write_text("group:\n  voxelwise:\n    maps: [Ktrans, desc-percent_enhancment]\n")
    with pytest.raises(ConfigError) as err:
        load_workflow_config(cfg)
    text = str(err.value)
    assert "group.voxelwise.maps[1]" in text and "desc-percent_enhancment" in text
    assert "desc-percent_enhancement" in text  # the allowed names are listed


@pytest.mark.parametrize(
    "name,section,drawn",
    [
        ("sub-01_ses-01_ce-gd_Ktrans.nii.gz", "dce", True),
        ("sub-01_ses-01_ce-gd_space-MNI152NLin2009cAsym_Ktrans.nii.gz", "dce", True),
        ("sub-01_ses-01_ce-gd_space-MNI152NLin2009cAsym_ve.nii.gz", "dce", False),
        ("sub-01_ses-01_ce-gd_desc-fit_residual.nii.gz", "dce", False),
        ("sub-01_ses-01_R2starmap.nii.gz", "uspio", True),  # the pre-infusion R2*
        ("sub-01_ses-01_ce-fe_R2starmap.nii.gz", "uspio", False),  # post: its ΔR2* is drawn
        ("sub-01_ses-01_trc-PBR28_space-T1w_SUV.nii.gz", "pet", True),
        ("sub-01_ses-01_trc-PBR28_space-MNI152NLin2009cAsym_SUV.nii.gz", "pet", False),
        ("sub-01_ses-01_ce-gd_desc-subtraction_enhancement.nii.gz", "gadolinium", True),
        (
            "sub-01_ses-01_ce-gd_space-MNI152NLin2009cAsym_desc-subtraction_enhancement.nii.gz",
            "gadolinium",
            False,
        ),
    ],
)
def test_report_draws_what_the_registry_marks(name, section, drawn, tmp_path):
    from pipeline.reports.classify import _drawn
    from pipeline.reports.index import SUFFIX_MODALITY, parse_name

    d = parse_name(Path(tmp_path) / name)
    assert d is not None and SUFFIX_MODALITY.get(d.suffix, section) == section
    assert _drawn(d, section) is drawn
