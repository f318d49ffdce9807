"""The template-space maps of the group level: found by their registry name endings, paired
into design inputs (mirrored to the headache side where asked) and loaded on one grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .gather import (
    _log,
)
from .tables import NIFTI


def _entities(name: str) -> tuple[dict, str]:
    """Entities (long names) and suffix of a file name (pybids' parser)."""
    from ..derivatives import parse_entities

    ents = parse_entities(name)
    return ents, ents.pop("suffix", "")


def metric_label(ending: str) -> str:
    """The metric name of the maps of ``ending`` (``desc-percent_T1w`` → ``percent``,
    ``desc-delta_R2starmap`` → ``dR2star``): the output registry's."""
    from ..derivatives.registry import metric_label as label

    return label(ending)


def _ending(ents: dict, suffix: str) -> str:
    """The ending of a template-space file: its ``desc-`` (if any) and suffix."""
    return f"desc-{ents['desc']}_{suffix}" if ents.get("desc") else suffix


def find_template_maps(output_dir, template: str, endings) -> pd.DataFrame:
    """Template-space maps of the derivatives whose names end with one of ``endings``.

    Returns ``participant_id, session_id, metric, ending, path`` (one map per participant,
    session and metric: the first in name order; duplicates, e.g. two agents, are logged).
    """
    out = Path(output_dir)
    rows = []
    for path in sorted(out.glob(f"sub-*/**/*space-{template}*{NIFTI}")):
        ents, suffix = _entities(path.name)
        if ents.get("space") != template:
            continue
        name_ending = _ending(ents, suffix)
        ents = {"sub": ents["subject"], **({"ses": ents["session"]} if "session" in ents else {})}
        for ending in endings:
            if name_ending == ending:  # whole entities: R2starmap is not desc-delta_R2starmap
                rows.append(
                    {
                        "participant_id": f"sub-{ents['sub']}",
                        "session_id": f"ses-{ents['ses']}" if "ses" in ents else np.nan,
                        "metric": metric_label(ending),
                        "ending": ending,
                        "path": str(path),
                    }
                )
                break
    maps = pd.DataFrame(rows, columns=["participant_id", "session_id", "metric", "ending", "path"])
    dup = maps.duplicated(["participant_id", "session_id", "metric"], keep="first")
    for p in maps.loc[dup, "path"]:
        _log(f"voxelwise: {p} ignored (another map of this metric in the same session)")
    return maps[~dup].reset_index(drop=True)


LATERAL = ("left", "right")


def is_symmetric_template(template: str) -> bool:
    """TemplateFlow names mark symmetric templates with ``Sym`` (``Asym`` is not)."""
    return "Sym" in template and "Asym" not in template


def _design_inputs(maps: pd.DataFrame, contrast: dict, flip: bool = False):
    """Per-participant groups of maps for a design: ``a``/``b`` hold lists of
    ``(path, mirrored)`` (``mirrored``: a session whose headache side is right, when
    ``flip``). Paired hemispheres: every map of a lateral headache in ``a``."""
    from .contrasts import apply_where, isin_values

    if contrast["type"] == "paired_hemispheres":
        if "headache_side" not in maps:
            return None, "column 'headache_side' not in sessions.tsv/participants.tsv"
        rows = apply_where(maps, contrast["where"])
        rows = rows[rows["headache_side"].isin(LATERAL)]
    else:
        column = contrast["column"]
        if column not in maps:
            return None, f"column '{column}' not in participants.tsv/sessions.tsv"
        rows = apply_where(maps, contrast["where"])
    side = rows["headache_side"] if "headache_side" in rows else pd.Series("", index=rows.index)
    rows = rows.assign(
        entry=[(p, bool(flip and s == "right")) for p, s in zip(rows["path"], side)]
    )
    if contrast["type"] == "paired_hemispheres":
        if rows.empty:
            return None, "no map of a session with a lateral headache_side"
        groups = rows.groupby("participant_id")["entry"].apply(list).to_frame("a")
        groups["b"] = None
        return groups, None
    col = rows[column]
    if contrast["type"] == "two_group":
        in_b = isin_values(col, contrast["b"]) & col.notna()
        in_a = (isin_values(col, contrast["a"]) if contrast["a"] else col.notna()) & (
            col.notna() & ~in_b
        )
        rows = rows.assign(cond=np.where(in_a, "a", np.where(in_b, "b", "")))
    else:
        rows = rows.assign(
            cond=np.where(
                isin_values(col, contrast["a"]) & col.notna(),
                "a",
                np.where(isin_values(col, contrast["b"]) & col.notna(), "b", ""),
            )
        )
    rows = rows[rows["cond"] != ""]
    groups = rows.groupby(["participant_id", "cond"])["entry"].apply(list).unstack("cond")
    for c in ("a", "b"):
        if c not in groups:
            groups[c] = None
    if contrast["type"] == "two_group":
        both = groups["a"].notna() & groups["b"].notna()
        return groups[~both], None
    return groups[groups["a"].notna() & groups["b"].notna()], None


def _finite_or_nan(x) -> float:
    """A threshold, NaN when nilearn found none (inf: no voxel survives)."""
    x = float(x)
    return x if np.isfinite(x) else float("nan")


def mirror_lr(img):
    """The image mirrored left-right in world space (x → −x), on its own grid.

    On a grid symmetric about x = 0 (TemplateFlow's symmetric templates) this is an exact
    flip of the voxel axis along x; otherwise the mirrored image is resampled (nilearn,
    linear; non-finite voxels, nearest, stay non-finite).
    """
    import nibabel as nb
    from nilearn.image import resample_to_img

    data = np.asarray(img.dataobj, dtype=np.float32).reshape(img.shape[:3])
    aff = img.affine
    ax = int(np.argmax(np.abs(aff[0, :3])))
    flip = np.eye(4)
    flip[ax, ax], flip[ax, 3] = -1.0, img.shape[ax] - 1
    mirror = np.diag([-1.0, 1.0, 1.0, 1.0])
    if np.allclose(mirror @ aff, aff @ flip, atol=1e-3):
        return nb.Nifti1Image(np.flip(data, axis=ax).copy(), aff)
    finite = np.isfinite(data)
    moved = resample_to_img(
        nb.Nifti1Image(np.where(finite, data, 0), mirror @ aff),
        img,
        interpolation="linear",
        force_resample=True,
        copy_header=True,
    )
    ok = resample_to_img(
        nb.Nifti1Image(finite.astype(np.uint8), mirror @ aff),
        img,
        interpolation="nearest",
        force_resample=True,
        copy_header=True,
    )
    out = np.asarray(moved.dataobj, dtype=np.float32)
    out[np.asarray(ok.dataobj) == 0] = np.nan
    return nb.Nifti1Image(out, aff)


def _load_on_grid(entries, ref):
    """Mean of the maps ``entries`` (``(path, mirrored)``), on the grid of ``ref``
    (resampled when it differs), mirrored left-right where asked."""
    import nibabel as nb
    from nilearn.image import resample_to_img

    data = []
    for p, mirrored in entries:
        img = nb.load(p)
        if ref is not None and (
            img.shape[:3] != ref.shape[:3] or not np.allclose(img.affine, ref.affine, atol=1e-3)
        ):
            img = resample_to_img(
                img, ref, interpolation="continuous", force_resample=True, copy_header=True
            )
        if mirrored:
            img = mirror_lr(img)
        data.append(np.asarray(img.dataobj, dtype=np.float32).reshape(img.shape[:3]))
    ref = ref if ref is not None else nb.load(entries[0][0])
    arr = np.mean(data, axis=0)
    return nb.Nifti1Image(arr, ref.affine), ref
