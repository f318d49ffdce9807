"""Voxelwise second-level models of the template-space maps (nilearn)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ..utils import atomic_write_nifti, atomic_write_text
from .gather import (
    _log,
)
from .maps import (
    _design_inputs,
    _finite_or_nan,
    _load_on_grid,
    find_template_maps,
    is_symmetric_template,
    mirror_lr,
)
from .tables import NIFTI, _dumps, _sidecar_path, write_table

CLUSTER_COLUMNS = ["Cluster ID", "X", "Y", "Z", "Peak Stat", "Cluster Size (mm3)"]


MAX_CLUSTERS = 50  # clusters listed per table (the largest)


MAX_EXTENT = 0.25  # suprathreshold share of the mask above which no table is made


def cluster_table(
    z_img, thresholded, threshold, min_voxels=1, mask_voxels=None, max_clusters=MAX_CLUSTERS
):
    """nilearn's cluster table of a thresholded z map, cluster by cluster.

    ``get_clusters_table`` works on the whole volume once per cluster (and compares every
    pair of local maxima within a cluster), which takes minutes on a template grid with
    many clusters; here each cluster (6-connected, each sign, at least ``min_voxels``
    voxels; the ``max_clusters`` largest) goes to it cropped to its bounding box, and the
    clusters are renumbered by sign (positive first) and peak. Returns ``(table, note)``;
    no table (a note) when the suprathreshold voxels cover more than
    :data:`MAX_EXTENT` of the mask: such a map has no localised clusters to list.
    """
    import nibabel as nb
    from nilearn.reporting import get_clusters_table
    from scipy import ndimage

    empty = pd.DataFrame(columns=CLUSTER_COLUMNS)
    data = np.asarray(thresholded.dataobj)
    n_supra = int(np.count_nonzero(data))
    if not np.isfinite(threshold) or n_supra == 0:
        return empty, ""
    if mask_voxels and n_supra > MAX_EXTENT * mask_voxels:
        return empty, (
            f"no cluster table: {n_supra} suprathreshold voxels, "
            f"{100 * n_supra / mask_voxels:.0f} % of the mask"
        )
    z = np.asarray(z_img.dataobj, dtype=np.float32)
    found = []
    for sign in (1, -1):
        labels, _ = ndimage.label(sign * data > 0)
        for i, sl in enumerate(ndimage.find_objects(labels), start=1):
            inside = labels[sl] == i
            size = int(inside.sum())
            if size >= min_voxels:
                found.append((sign, size, float(np.abs(z[sl][inside]).max()), labels, i, sl))
    note = ""
    if len(found) > max_clusters:
        note = f"the {max_clusters} largest of {len(found)} clusters listed"
        found = sorted(found, key=lambda f: -f[1])[:max_clusters]
    found.sort(key=lambda f: (-f[0], -f[2]))
    tables = []
    for rank, (_, _, _, labels, i, sl) in enumerate(found, start=1):
        box = tuple(
            slice(max(s.start - 1, 0), min(s.stop + 1, n)) for s, n in zip(sl, labels.shape)
        )
        crop = z_img.slicer[box]
        one = nb.Nifti1Image(np.where(labels[box] == i, z[box], 0).astype(np.float32), crop.affine)
        with warnings.catch_warnings():  # "no clusters with stat lower than -t": one sign
            warnings.filterwarnings("ignore", message="No clusters found")
            tab = get_clusters_table(one, stat_threshold=float(threshold), two_sided=True)
        if len(tab):
            tab["Cluster ID"] = (
                tab["Cluster ID"].astype(str).str.replace(r"^\d+", str(rank), regex=True)
            )
            tables.append(tab)
    table = pd.concat(tables, ignore_index=True) if tables else empty
    return table[CLUSTER_COLUMNS], note


def fit_voxelwise(
    inputs: pd.DataFrame,
    contrast: dict,
    *,
    smoothing_fwhm=None,
    fdr_alpha=0.05,
    cluster_height_p=0.001,
    cluster_min_voxels=10,
    region=None,
):
    """Second-level model of one design; images and tables in a dict.

    ``inputs``: per participant (index) the map paths of condition ``a`` and ``b``. Two
    groups: a cell-means design (one indicator column per group), contrast ``a − b``. Paired
    sessions: the participant's ``a − b`` difference maps in a one-sample (intercept)
    design. The mask holds the voxels finite in every map and non-zero in any, and inside
    ``region`` (an image, resampled by nearest neighbour to the maps' grid) when given. FDR: voxel
    level, two-sided; cluster: two-sided ``p < cluster_height_p`` and at least
    ``cluster_min_voxels`` voxels.
    """
    import nibabel as nb
    from nilearn.glm import threshold_stats_img
    from nilearn.glm.second_level import SecondLevelModel

    ref, imgs, finite, anyz, design = None, [], None, None, []
    hemis = contrast["type"] == "paired_hemispheres"
    paired = contrast["type"] == "paired_sessions" or hemis
    for _, row in inputs.iterrows():
        conds = (
            ["a"]
            if hemis
            else ["a", "b"]
            if paired
            else [c for c in ("a", "b") if isinstance(row[c], list)]
        )
        loaded = []
        for c in conds:
            img, ref = _load_on_grid(row[c], ref)
            loaded.append(img)
        if hemis:  # ipsilateral minus contralateral: the map minus its mirror image
            data = loaded[0].get_fdata() - mirror_lr(loaded[0]).get_fdata()
        else:
            data = (
                (loaded[0].get_fdata() - loaded[1].get_fdata())
                if paired
                else (loaded[0].get_fdata())
            )
        ok = np.isfinite(data)
        finite = ok if finite is None else finite & ok
        anyz = (ok & (data != 0)) if anyz is None else anyz | (ok & (data != 0))
        imgs.append(nb.Nifti1Image(np.nan_to_num(data).astype(np.float32), ref.affine))
        design.append({"a": 1.0, "b": 0.0} if paired or conds[0] == "a" else {"a": 0.0, "b": 1.0})
    keep = finite & anyz
    if region is not None:
        keep &= _on_grid(region, ref) > 0
    if hemis:  # the difference is antisymmetric: test the headache (left) half only
        ijk = np.indices(keep.shape).reshape(3, -1)
        x = (ref.affine[0, :3] @ ijk + ref.affine[0, 3]).reshape(keep.shape)
        keep &= x < 0
    mask = nb.Nifti1Image(keep.astype(np.uint8), ref.affine)
    if paired:
        dm = pd.DataFrame({"intercept": np.ones(len(imgs))})
        expr = "intercept"
    else:
        dm = pd.DataFrame(design).rename(columns={"a": "groupA", "b": "groupB"})
        expr = "groupA - groupB"
    model = SecondLevelModel(
        mask_img=mask, smoothing_fwhm=smoothing_fwhm, n_jobs=1, minimize_memory=True
    )
    model.fit(imgs, design_matrix=dm)
    res = model.compute_contrast(expr, output_type="all")
    z = res["z_score"]
    with warnings.catch_warnings():  # no voxel survives FDR: threshold inf, empty map
        warnings.filterwarnings("ignore", message="The given float value must not exceed")
        fdr_img, fdr_thr = threshold_stats_img(
            z,
            mask_img=mask,
            alpha=fdr_alpha,
            height_control="fdr",
            cluster_threshold=0,
            two_sided=True,
        )
        cl_img, cl_thr = threshold_stats_img(
            z,
            mask_img=mask,
            alpha=cluster_height_p,
            height_control="fpr",
            cluster_threshold=cluster_min_voxels,
            two_sided=True,
        )

    mask_voxels = int(np.asarray(mask.dataobj).sum())
    n_a = int(dm.iloc[:, 0].sum()) if not paired else len(imgs)
    return {
        "z": z,
        "effect": res["effect_size"],
        "mask": mask,
        "fdr_img": fdr_img,
        "fdr_threshold": _finite_or_nan(fdr_thr),
        "cluster_img": cl_img,
        "cluster_threshold": _finite_or_nan(cl_thr),
        "fdr_clusters": cluster_table(z, fdr_img, fdr_thr, 1, mask_voxels),
        "cluster_clusters": cluster_table(z, cl_img, cl_thr, cluster_min_voxels, mask_voxels),
        "n1": n_a,
        "n2": len(imgs) if paired else len(imgs) - n_a,
        "n_mask_voxels": mask_voxels,
    }


def _on_grid(img, ref) -> np.ndarray:
    """The values of ``img`` on the grid of ``ref`` (nearest neighbour where they differ)."""
    if img.shape[:3] == ref.shape[:3] and np.allclose(img.affine, ref.affine, atol=1e-3):
        return np.asarray(img.dataobj)
    from nilearn.image import resample_to_img

    return np.asarray(
        resample_to_img(
            img, ref, interpolation="nearest", force_resample=True, copy_header=True
        ).dataobj
    )


def analysis_region(template: str, resolution: int, grid, band_mm: float):
    """The voxels a voxelwise design may test, on ``grid`` (an image): the template's brain
    mask (TemplateFlow ``desc-brain_mask``) widened by ``band_mm`` millimetres (Euclidean
    distance on the grid) for maps whose findings lie outside the brain (the meningeal and
    calvarial bands). :class:`pipeline.templates.TemplateError` when TemplateFlow does not
    have the mask."""
    import nibabel as nb
    from scipy import ndimage

    from ..templates import get_template_file

    brain = (
        _on_grid(
            nb.load(get_template_file(template, resolution, desc="brain", suffix="mask")), grid
        )
        > 0
    )
    if band_mm > 0:
        zooms = nb.affines.voxel_sizes(grid.affine)[:3]
        brain = ndimage.distance_transform_edt(~brain, sampling=zooms) <= band_mm
    return nb.Nifti1Image(brain.astype(np.uint8), grid.affine)


def run_voxelwise(
    out: Path, gdir: Path, info: pd.DataFrame, gcfg, template: str, resolution: int = 2
) -> pd.DataFrame:
    """Every design × metric of ``group.voxelwise``: derivatives written, a summary row each."""
    vcfg = gcfg.voxelwise
    cols = [
        "contrast",
        "metric",
        "status",
        "reason",
        "n1",
        "n2",
        "n_mask_voxels",
        "fdr_threshold",
        "fdr_voxels",
        "cluster_threshold",
        "cluster_count",
        "z_map",
        "fdr_map",
        "cluster_map",
    ]
    maps = find_template_maps(out, template, vcfg.maps)
    rows = []
    if maps.empty:
        _log(
            f"voxelwise: no template-space maps (space-{template}, endings "
            f"{', '.join(vcfg.maps)}); skipped"
        )
        return pd.DataFrame(columns=cols)
    if len(info):
        keys = ["participant_id", "session_id"] if "session_id" in info else ["participant_id"]
        maps = maps.merge(info, on=keys, how="left")
    by_name = {c["name"]: c for c in gcfg.contrasts}
    vdir = gdir / "voxelwise"
    min_maps = vcfg.min_maps
    symmetric = is_symmetric_template(template)
    flip = bool(vcfg.flip_to_headache_side) and symmetric
    if vcfg.flip_to_headache_side and not symmetric:
        _log(
            f"voxelwise: {template} is not a symmetric template; maps are not mirrored to "
            "the headache side and paired-hemisphere designs are skipped"
        )
    regions = {}  # metric -> (region image, its description) or (None, why not)

    def region_of(metric, mmaps):
        if metric not in regions:
            import nibabel as nb

            from ..templates import TemplateError

            ending = mmaps["ending"].iloc[0]
            band = float(vcfg.extracerebral_mm.get(ending, 0.0))
            try:
                img = analysis_region(template, resolution, nb.load(mmaps["path"].iloc[0]), band)
            except TemplateError as exc:
                regions[metric] = (None, f"no template brain mask to restrict it to: {exc}")
            else:
                text = f"the {template} brain mask (TemplateFlow desc-brain_mask)" + (
                    f" widened by {band:g} mm (extra-cerebral bands)" if band else ""
                )
                regions[metric] = (img, text)
        return regions[metric]

    for name in vcfg.designs:
        contrast = by_name[name]
        hemis = contrast["type"] == "paired_hemispheres"
        for metric, mmaps in maps.groupby("metric", sort=True):
            row = {"contrast": name, "metric": metric, "status": "skipped"}
            region, region_text = region_of(metric, mmaps)
            if region is None:
                inputs, reason = None, region_text
            elif hemis and not symmetric:
                inputs, reason = None, f"paired hemispheres need a symmetric template ({template})"
            else:
                inputs, reason = _design_inputs(mmaps, contrast, flip=flip or hemis)
            if reason is None:
                if contrast["type"] == "two_group":
                    n1, n2 = int(inputs["a"].notna().sum()), int(inputs["b"].notna().sum())
                elif hemis:
                    n1 = n2 = int(inputs["a"].notna().sum())
                else:
                    n1 = n2 = len(inputs)
                row.update(n1=n1, n2=n2)
                if min(n1, n2) < min_maps:
                    reason = (
                        f"too few maps (n1={n1}, n2={n2}; minimum {min_maps} per "
                        f"{'group' if contrast['type'] == 'two_group' else 'pair'})"
                    )
            if reason is not None:
                row["reason"] = reason
                _log(f"voxelwise {name} {metric}: skipped, {reason}")
                rows.append(row)
                continue
            try:
                res = fit_voxelwise(
                    inputs,
                    contrast,
                    smoothing_fwhm=vcfg.smoothing_fwhm,
                    fdr_alpha=vcfg.fdr_alpha,
                    cluster_height_p=vcfg.cluster_height_p,
                    cluster_min_voxels=vcfg.cluster_min_voxels,
                    region=region,
                )
            except Exception as exc:  # noqa: BLE001 - a design that cannot be fitted is reported
                row["reason"] = f"model failed: {type(exc).__name__}: {exc}"
                _log(f"voxelwise {name} {metric}: skipped, {row['reason']}")
                rows.append(row)
                continue
            entries = [e for c in ("a", "b") for es in inputs[c].dropna() for e in es]
            sources = sorted({str(Path(p).relative_to(out)) for p, _ in entries})
            meta = {
                "Contrast": name,
                "ContrastType": contrast["type"],
                "Conditions": {"a": contrast["label_a"], "b": contrast["label_b"]},
                "Where": contrast["where"],
                "Metric": metric,
                "Template": template,
                "N": {"a": res["n1"], "b": res["n2"]},
                "Design": (
                    "one-sample t on the within-participant differences a - b"
                    if contrast["type"] == "paired_sessions"
                    else "one-sample t on each map minus its left-right mirror "
                    "(headache side left), the left half tested"
                    if hemis
                    else "two-sample t, cell-means design, contrast a - b"
                ),
                "MirroredToHeadacheSide": sorted(
                    str(Path(p).relative_to(out)) for p, m in entries if m
                ),
                "SmoothingFWHM": vcfg.smoothing_fwhm,
                "MaskVoxels": res["n_mask_voxels"],
                "Mask": f"voxels finite in every map, non-zero in any, inside {region_text}",
                "Software": "nilearn SecondLevelModel",
                "Sources": sources,
            }
            stem = f"contrast-{name}_meas-{metric}"
            files = {
                "z_map": (
                    vdir / f"{stem}_stat-z_statmap{NIFTI}",
                    res["z"],
                    {**meta, "Statistic": "z", "Thresholded": False},
                ),
                "effect": (
                    vdir / f"{stem}_stat-effect_statmap{NIFTI}",
                    res["effect"],
                    {**meta, "Statistic": "effect (a - b, metric units)"},
                ),
                "fdr_map": (
                    vdir / f"{stem}_stat-z_desc-fdr_statmap{NIFTI}",
                    res["fdr_img"],
                    {
                        **meta,
                        "Statistic": "z",
                        "HeightControl": "fdr",
                        "Alpha": vcfg.fdr_alpha,
                        "TwoSided": True,
                        "Threshold": res["fdr_threshold"],
                    },
                ),
                "cluster_map": (
                    vdir / f"{stem}_stat-z_desc-cluster_statmap{NIFTI}",
                    res["cluster_img"],
                    {
                        **meta,
                        "Statistic": "z",
                        "HeightControl": "fpr",
                        "ClusterFormingP": vcfg.cluster_height_p,
                        "ClusterMinVoxels": vcfg.cluster_min_voxels,
                        "TwoSided": True,
                        "Threshold": res["cluster_threshold"],
                    },
                ),
            }
            files["mask"] = (
                vdir / f"{stem}_mask{NIFTI}",
                res["mask"],
                {**meta, "Type": "Brain", "Description": "the voxels tested"},
            )
            for key, (path, img, side) in files.items():
                atomic_write_nifti(img, path)
                atomic_write_text(_dumps(side), _sidecar_path(path))
                if key not in ("effect", "mask"):
                    row[key] = str(path.relative_to(gdir))
            notes = []
            for kind in ("fdr", "cluster"):
                table, note = res[f"{kind}_clusters"]
                if note:
                    notes.append(f"{kind}: {note}")
                write_table(
                    table,
                    vdir / f"{stem}_desc-{kind}_clusters.tsv",
                    {
                        **meta,
                        "Description": f"clusters of the {kind}-thresholded z map "
                        "(nilearn get_clusters_table per cluster; coordinates in mm, "
                        "template space; sub-peaks 1a, 1b...)",
                        "Note": note,
                        "StatMap": row[f"{kind}_map"],
                    },
                )
            fdr_vox = int(np.count_nonzero(np.asarray(res["fdr_img"].dataobj)))
            row.update(
                status="done",
                reason="; ".join(notes),
                n_mask_voxels=res["n_mask_voxels"],
                fdr_threshold=res["fdr_threshold"],
                fdr_voxels=fdr_vox,
                cluster_threshold=res["cluster_threshold"],
                cluster_count=n_clusters(res["cluster_clusters"][0]),
            )
            sizes = (
                f"{res['n1']} pairs"
                if contrast["type"] != "two_group"
                else f"{res['n1']} vs {res['n2']} participants"
            )
            _log(
                f"voxelwise {name} {metric}: {sizes}, {fdr_vox} voxel(s) FDR-significant, "
                f"{row['cluster_count']} cluster(s)" + (f" ({row['reason']})" if notes else "")
            )
            rows.append(row)
    voxel = pd.DataFrame(rows, columns=cols)
    for c in ("n1", "n2", "n_mask_voxels", "fdr_voxels", "cluster_count"):
        voxel[c] = voxel[c].astype("Int64")
    return voxel


def n_clusters(table: pd.DataFrame) -> int:
    """Clusters of a nilearn cluster table (sub-peaks ``1a``, ``1b``... are not counted)."""
    if table.empty:
        return 0
    return int(table["Cluster ID"].astype(str).str.fullmatch(r"\d+").sum())
