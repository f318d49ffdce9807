"""Templates and atlases: TemplateFlow queries and the project-built offline TemplateFlow home.

Real runs ask TemplateFlow (``templateflow.api.get``), which downloads on first use and then
reads ``$TEMPLATEFLOW_HOME``. Machines without a network (CI, tests, cluster nodes) use a home
that either was pre-fetched (``inflamap templates --fetch ...`` on a login node, or the Docker
image) or is built here from data that ships with the installed packages:
``tpl-MNI152NLin2009aSym`` (the ICBM 2009a symmetric template bundled with nilearn: brain
T1w, brain mask and tissue probability maps at 1 and 2 mm) in TemplateFlow's own layout and
names, so that ``templateflow.api.get`` serves it with no network. Where the home already
holds TemplateFlow's skeleton, the builder fills its empty placeholders of the same files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .derivatives import parse_entities

OFFLINE_TEMPLATE = "MNI152NLin2009aSym"


class TemplateError(RuntimeError):
    """A template or atlas cannot be found (exit code 66)."""


def _nilearn_data_dir() -> Path:
    import nilearn

    return Path(nilearn.__file__).parent / "datasets" / "data"


def build_offline_home(home) -> Path:
    """Write ``tpl-MNI152NLin2009aSym`` (res 1 and 2 mm) under ``home``; idempotent.

    Files: ``desc-brain_T1w``, ``desc-brain_mask``, ``label-{GM,WM,CSF}_probseg`` and
    ``template_description.json``. Every file is written to a temporary name and renamed, so
    concurrent builders (many cluster jobs starting at once) never see a partial file.
    """
    import nibabel as nb
    from nibabel.processing import resample_from_to

    from .utils import atomic_write_nifti, atomic_write_text

    home = Path(home)
    tdir = home / f"tpl-{OFFLINE_TEMPLATE}"
    keys = (
        "desc-brain_T1w",
        "desc-brain_mask",
        "label-GM_probseg",
        "label-WM_probseg",
        "label-CSF_probseg",
    )
    targets = [
        tdir / f"tpl-{OFFLINE_TEMPLATE}_res-{res}_{key}.nii.gz" for res in (1, 2) for key in keys
    ]
    # TemplateFlow's skeleton holds 0-byte placeholders of files not yet downloaded
    if all(t.exists() and t.stat().st_size > 0 for t in targets):
        return tdir
    tdir.mkdir(parents=True, exist_ok=True)
    src = _nilearn_data_dir()
    t1 = nb.load(src / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz")
    gm = nb.load(src / "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz")
    wm = nb.load(src / "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz")
    t1d = np.asarray(t1.dataobj, dtype=np.float32)
    brain = (t1d > 0).astype(np.float32)
    gmd = np.asarray(gm.dataobj, dtype=np.float32) / 255.0
    wmd = np.asarray(wm.dataobj, dtype=np.float32) / 255.0
    csf = np.clip(brain - gmd - wmd, 0, 1)
    maps = {
        "desc-brain_T1w": t1d,
        "desc-brain_mask": brain,
        "label-GM_probseg": gmd,
        "label-WM_probseg": wmd,
        "label-CSF_probseg": csf,
    }
    for res in (1, 2):
        aff = np.diag([res, res, res, 1.0])
        aff[:3, 3] = t1.affine[:3, 3]
        shape = tuple(int(np.floor((s - 1) / res)) + 1 for s in t1.shape)
        for key, data in maps.items():
            img = nb.Nifti1Image(data, t1.affine)
            if res != 1:
                img = resample_from_to(img, (shape, aff), order=1)
            out = np.asarray(img.dataobj, dtype=np.float32)
            if key.endswith("_mask"):
                out = (out >= 0.5).astype(np.uint8)
            elif key.endswith("_probseg"):
                out = np.clip(out, 0, 1)
            res_img = nb.Nifti1Image(out, aff)
            res_img.header.set_xyzt_units("mm")
            res_img.header.set_qform(aff, 4)
            res_img.header.set_sform(aff, 4)
            target = tdir / f"tpl-{OFFLINE_TEMPLATE}_res-{res}_{key}.nii.gz"
            if not (target.exists() and target.stat().st_size > 0):
                atomic_write_nifti(res_img, target)
    desc = {
        "Name": "ICBM 2009a Nonlinear Symmetric (as bundled with nilearn)",
        "Identifier": OFFLINE_TEMPLATE,
        "Authors": ["Fonov V", "Evans AC", "Botteron K", "Almli CR", "McKinstry RC", "Collins DL"],
        "ReferencesAndLinks": ["https://doi.org/10.1016/j.neuroimage.2010.07.033"],
        "res": {"1": {"zooms": [1, 1, 1]}, "2": {"zooms": [2, 2, 2]}},
        "GeneratedBy": [
            {
                "Name": "inflamap templates",
                "Description": "Built offline from nilearn's bundled ICBM152 2009a "
                "brain template and tissue maps; CSF = mask - GM - WM.",
            }
        ],
    }
    stamp = tdir / "template_description.json"
    if not stamp.exists():  # keep TemplateFlow's own description where its skeleton has one
        atomic_write_text(json.dumps(desc, indent=2), stamp)
    install_published_atlases(home, OFFLINE_TEMPLATE)
    return tdir


def templateflow_home() -> Path:
    """``$TEMPLATEFLOW_HOME``, else TemplateFlow's own default."""
    home = os.environ.get("TEMPLATEFLOW_HOME")
    if home:
        return Path(home)
    from templateflow import conf

    return Path(conf.TF_HOME)


def published_atlas_files(template: str, resolution: int, atlas: str) -> tuple:
    """``(dseg, label table)`` of a published atlas on ``template`` at ``resolution`` (mm),
    placed in the TemplateFlow home first if it is not there yet."""
    from .published_atlas import atlas_paths

    home = templateflow_home()
    tdir = home / f"tpl-{template}"
    install_published_atlases(home, template)
    for dseg in sorted(tdir.glob(f"tpl-{template}_res-*_atlas-{atlas}_dseg.nii.gz")):
        res = parse_entities(dseg)["res"]
        if res.isdigit() and int(res) == int(resolution):
            return dseg, atlas_paths(tdir, template, atlas, res)[1]
    raise TemplateError(
        f"{atlas}: not placed on {template} at {resolution} mm in {home}; fetch that "
        f"resolution ('inflamap-templates --fetch {template} --resolution {resolution}')"
    )


def install_published_atlases(home, template: str) -> list:
    """The published default atlases (:mod:`pipeline.published_atlas`) on ``template`` in
    ``home`` (placed once, ~40 s; then found); :class:`TemplateError` if they cannot be."""
    from .published_atlas import AtlasBuildError, install

    try:
        return install(home, template)
    except AtlasBuildError as exc:
        raise TemplateError(str(exc)) from None


def get_template_file(template: str, resolution: int, **entities) -> Path:
    """One file from TemplateFlow, or :class:`TemplateError` saying how to get it."""
    try:
        from templateflow import api

        found = api.get(template, resolution=resolution, **entities)
    except Exception as exc:  # network errors, unknown template
        raise TemplateError(
            f"TemplateFlow could not provide {template} {entities} (res {resolution}): {exc}. "
            f"Pre-fetch it with 'inflamap-templates --fetch {template}' on a machine with "
            "network, or set TEMPLATEFLOW_HOME to a pre-fetched home"
        ) from exc
    if isinstance(found, list):
        found = [f for f in found if "_space-" not in str(f)]
        if len(found) != 1:
            raise TemplateError(
                f"TemplateFlow has {len(found) or 'no'} file(s) for {template} {entities} "
                f"(res {resolution}) under "
                f"TEMPLATEFLOW_HOME={os.environ.get('TEMPLATEFLOW_HOME')}; "
                f"pre-fetch it with 'inflamap-templates --fetch {template}' or choose another "
                "template in the config"
            )
        found = found[0]
    return Path(found)


#: what a run needs from a template (T1w, brain T1w and mask, tissue maps)
FETCH_QUERIES = (
    {"desc": "brain", "suffix": "T1w"},
    {"desc": "brain", "suffix": "mask"},
    {"desc": None, "suffix": "T1w"},
    {"label": "GM", "suffix": "probseg"},
    {"label": "WM", "suffix": "probseg"},
    {"label": "CSF", "suffix": "probseg"},
)
#: environment variable naming a TemplateFlow mirror (its S3 layout) instead of TemplateFlow's
MIRROR_ENV = "INFLAMAP_TEMPLATEFLOW_S3"


def fetch_templates(templates, resolution: int = 2, home=None, s3_root=None) -> list:
    """Download what a run needs from each template into ``home`` (default
    ``$TEMPLATEFLOW_HOME``); the paths. Needs network (TemplateFlow's S3, or the mirror of
    ``s3_root`` / ``$INFLAMAP_TEMPLATEFLOW_S3``).

    TemplateFlow lists a template's files in a skeleton of empty placeholders that ships
    with the package; a home created by :func:`build_offline_home` has no skeleton, and
    TemplateFlow then finds nothing to download (it returned ``[]``, and a build "fetched"
    nothing). The skeleton is installed here first (existing files are kept), and every file
    is checked after the download: :class:`TemplateError` (one line) for anything missing.
    """
    from templateflow.client import TemplateFlowClient

    home = Path(
        home or os.environ.get("TEMPLATEFLOW_HOME") or Path.home() / ".cache" / "templateflow"
    )
    s3_root = s3_root or os.environ.get(MIRROR_ENV) or None
    kwargs = {"s3_root": s3_root.rstrip("/")} if s3_root else {}
    client = TemplateFlowClient(root=home, autoupdate=False, **kwargs)
    client.cache.update(local=True, overwrite=False, silent=True)  # the skeleton (no network)
    source = s3_root or "TemplateFlow (templateflow.s3.amazonaws.com)"
    got = []
    for tpl in templates:
        if not (home / f"tpl-{tpl}").is_dir():
            raise TemplateError(
                f"{tpl}: not a TemplateFlow template (no tpl-{tpl} in its "
                "list); check the name (e.g. MNI152NLin2009cAsym)"
            )
        for query in FETCH_QUERIES:
            what = f"{tpl} res-{resolution} " + " ".join(
                f"{k}-{v}" for k, v in query.items() if v is not None
            )
            try:
                found = client.get(tpl, resolution=resolution, **query)
            except Exception as exc:  # noqa: BLE001 - requests/OS errors of the download
                raise TemplateError(
                    f"{what}: download from {source} failed ({type(exc).__name__}: "
                    f"{str(exc).splitlines()[0][:120] if str(exc) else ''}); run "
                    f"'inflamap-templates --fetch {tpl}' on a machine with network, or set "
                    f"{MIRROR_ENV} to a mirror"
                ) from None
            files = [Path(f) for f in (found if isinstance(found, list) else [found])]
            if not files:
                raise TemplateError(
                    f"{what}: TemplateFlow lists no such file; choose "
                    "another template or resolution"
                )
            empty = [f for f in files if not f.is_file() or f.stat().st_size == 0]
            if empty:
                raise TemplateError(
                    f"{empty[0]}: not downloaded (empty placeholder); check "
                    f"the network or {MIRROR_ENV}"
                )
            got.extend(files)
        got.extend(install_published_atlases(home, tpl))
    return got


def atlas_files(
    template: str,
    resolution: int,
    atlas: str,
    atlas_desc=None,
    key: str = "atlas",
    atlas_file=None,
) -> dict:
    """``{key: dseg, key_lut: tsv}`` of a lab's own atlas file (``atlas_file``, its label
    table beside it), a TemplateFlow atlas or a published atlas inflamap places on the
    template (:mod:`pipeline.published_atlas`, placed on first use); ``{}`` for a built-in
    one or none."""
    from pathlib import Path

    from .atlas import BUILTIN
    from .published_atlas import ATLASES

    if atlas_file:
        path = Path(atlas_file).resolve()
        stem = path.name.removesuffix(".gz").removesuffix(".nii")
        return {key: str(path), f"{key}_lut": str(path.with_name(stem + ".tsv"))}
    if atlas is None or atlas in BUILTIN:
        return {}
    if atlas in ATLASES:
        dseg, lut = published_atlas_files(template, resolution, atlas)
        return {key: str(dseg), f"{key}_lut": str(lut)}
    return {
        key: str(
            get_template_file(
                template,
                resolution,
                atlas=atlas,
                desc=atlas_desc,
                suffix="dseg",
                extension=".nii.gz",
            )
        ),
        f"{key}_lut": str(
            get_template_file(
                template, None, atlas=atlas, desc=atlas_desc, suffix="dseg", extension=".tsv"
            )
        ),
    }


def template_inputs(
    template: str, resolution: int, atlas: str, atlas_desc=None, atlas_file=None
) -> dict:
    """Files the anatomical workflow needs from TemplateFlow (resolved before the run)."""
    files = {
        "template": get_template_file(template, resolution, desc="brain", suffix="T1w"),
        "template_mask": get_template_file(template, resolution, desc="brain", suffix="mask"),
        "gm_probseg": get_template_file(template, resolution, label="GM", suffix="probseg"),
        "wm_probseg": get_template_file(template, resolution, label="WM", suffix="probseg"),
    }
    files = {k: str(v) for k, v in files.items()}
    return {**files, **atlas_files(template, resolution, atlas, atlas_desc, atlas_file=atlas_file)}
