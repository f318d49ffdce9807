"""Derivatives of sMRIPrep or fMRIPrep (anatomy) and PETPrep (PET head-motion correction)
reused instead of recomputed (``--derivatives``, fMRIPrep's option).

What is read (their BIDS-Derivatives names, one T1w reference per session or per participant):

* ``sub-<l>[_ses-<s>]_desc-preproc_T1w.nii.gz`` — the bias-corrected T1w reference
* ``..._desc-brain_mask.nii.gz`` — its brain mask
* ``..._dseg.nii.gz`` — tissue classes, BIDS order 1 GM, 2 WM, 3 CSF (relabelled to
  inflamap's 1 CSF, 2 GM, 3 WM)
* ``..._label-{CSF,GM,WM}_probseg.nii.gz`` — tissue probabilities
* ``..._from-T1w_to-<template>_mode-image_xfm.h5`` and the inverse — the ANTs composite
  transforms to and from ``anat.template``

Session-level files (``ses-<s>``) are used for their session. Subject-level files (no
``ses-``) only when the participant has one session: with several, sMRIPrep's reference is
an average over sessions, not the T1w each session's post-contrast images are compared
with. A set that is incomplete or lacks the run's template is not reused (a note says why;
the anatomy is recomputed). A set that does not lie where the session's raw T1w lies, or
whose images are not on one grid, is refused (exit 65): it is not this T1w's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError, UsageError

TISSUES = ("CSF", "GM", "WM")
#: BIDS (sMRIPrep/fMRIPrep) dseg value -> inflamap's (1 CSF, 2 GM, 3 WM)
DSEG_TO_INFLAMAP = {0: 0, 1: 2, 2: 3, 3: 1}
#: bounding boxes of the raw and the reused T1w must overlap this much (intersection/union)
MIN_OVERLAP = 0.8


@dataclass(frozen=True)
class AnatomyReuse:
    """One session's reused anatomy (absolute paths)."""

    root: str
    generated_by: str
    t1w_preproc: str
    brain_mask: str
    dseg: str
    probseg: tuple  # CSF, GM, WM
    anat2tpl_xfm: str
    tpl2anat_xfm: str

    def files(self) -> list:
        return [
            self.t1w_preproc,
            self.brain_mask,
            self.dseg,
            *self.probseg,
            self.anat2tpl_xfm,
            self.tpl2anat_xfm,
        ]

    def relative(self) -> list:
        """The files relative to their derivatives folder (for sidecars and the methods)."""
        return [str(Path(f).relative_to(self.root)) for f in self.files()]


def check_derivatives_roots(paths, bids: Path, out: Path, work: Path) -> list:
    """The ``--derivatives`` folders, resolved; :class:`UsageError` naming a folder that is
    not a BIDS-Derivatives dataset or that is the output or work folder."""
    roots = []
    for p in paths or ():
        root = Path(p).resolve()
        if not (root / "dataset_description.json").is_file():
            raise UsageError(
                f"--derivatives {p}: not a BIDS-Derivatives folder (no dataset_description.json); "
                "pass the folder holding sMRIPrep's, fMRIPrep's or PETPrep's sub-<label>/ folders"
            )
        for other, what in ((out, "output"), (work, "work"), (bids, "input dataset")):
            if root == other:
                raise UsageError(
                    f"--derivatives {p}: this is the {what} folder; pass the folder of "
                    "another tool's derivatives"
                )
        roots.append(root)
    return roots


def _generated_by(root: Path) -> str:
    try:
        desc = json.loads((root / "dataset_description.json").read_text())
    except (OSError, ValueError):
        return root.name
    gen = desc.get("GeneratedBy") or []
    if isinstance(gen, list) and gen and isinstance(gen[0], dict) and gen[0].get("Name"):
        return " ".join(str(gen[0][k]) for k in ("Name", "Version") if gen[0].get(k))
    return str(desc.get("Name") or root.name)


def _box(img):
    """World-space bounding box (min, max corners) of an image's field of view."""
    import itertools

    import numpy as np

    shape = np.asarray(img.shape[:3]) - 0.5
    corners = np.array(list(itertools.product(*[(-0.5, s) for s in shape])))
    xyz = corners @ img.affine[:3, :3].T + img.affine[:3, 3]
    return xyz.min(axis=0), xyz.max(axis=0)


def _overlap(a, b) -> float:
    import numpy as np

    (alo, ahi), (blo, bhi) = _box(a), _box(b)
    inter = np.prod(np.clip(np.minimum(ahi, bhi) - np.maximum(alo, blo), 0, None))
    union = np.prod(ahi - alo) + np.prod(bhi - blo) - inter
    return float(inter / union) if union > 0 else 0.0


def _check_set(found: AnatomyReuse, raw_t1w: str) -> None:
    import nibabel as nb
    import numpy as np

    ref = nb.load(found.t1w_preproc)
    raw = nb.load(raw_t1w)
    share = _overlap(ref, raw)
    if share < MIN_OVERLAP:
        raise DataError(
            f"{found.t1w_preproc}: its field of view overlaps that of the raw T1w {raw_t1w} "
            f"by {100 * share:.0f} % (at least {100 * MIN_OVERLAP:.0f} % expected): not "
            "derived from it; remove it from --derivatives or check the participant/session"
        )
    for f in (found.brain_mask, found.dseg, *found.probseg):
        img = nb.load(f)
        if img.shape[:3] != ref.shape[:3] or not np.allclose(img.affine, ref.affine, atol=1e-3):
            raise DataError(
                f"{f}: not on the grid of {Path(found.t1w_preproc).name} (shape "
                f"{img.shape[:3]} vs {ref.shape[:3]}); a reused anatomy must be one set"
            )


def find_anatomy(
    roots, subject: str, session, n_sessions: int, template: str, raw_t1w: str
) -> tuple:
    """``(AnatomyReuse or None, note or None)`` for one session: the first folder of
    ``roots`` with a complete set for this session (or, with one session, the participant),
    checked against ``raw_t1w``; a note when a set was found but cannot be reused."""
    notes = []
    for root in roots:
        candidates = []
        if session:
            candidates.append(
                (
                    root / f"sub-{subject}" / f"ses-{session}" / "anat",
                    f"sub-{subject}_ses-{session}",
                )
            )
        candidates.append((root / f"sub-{subject}" / "anat", f"sub-{subject}"))
        for folder, base in candidates:
            # sub-<l>[_ses-<s>] with the T1w's own entities (acq-, rec-...) when it had
            # them; never a resampled copy (space-, res-)
            found_t1w = sorted(
                p
                for p in folder.glob(f"{base}_*desc-preproc_T1w.nii.gz")
                if not any(e in p.name for e in ("_space-", "_res-", "_den-"))
                and (p.name.startswith(f"{base}_desc-") or "_ses-" not in p.name[len(base) :])
            )
            if len(found_t1w) > 1:
                notes.append(
                    f"{folder}: several preprocessed T1w ({', '.join(p.name for p in found_t1w)});"
                    " not reused (which one is this session's is not known); anatomy computed"
                )
                continue
            if not found_t1w:
                continue
            t1w = found_t1w[0]
            prefix = t1w.name[: -len("_desc-preproc_T1w.nii.gz")]
            if session and base == f"sub-{subject}" and n_sessions > 1:
                notes.append(
                    f"{t1w}: subject-level anatomy, but sub-{subject} has {n_sessions} "
                    "sessions here; each session's images are compared with its own T1w, so "
                    "the anatomy is recomputed (run sMRIPrep per session to reuse it)"
                )
                continue
            names = {
                "brain_mask": f"{prefix}_desc-brain_mask.nii.gz",
                "dseg": f"{prefix}_dseg.nii.gz",
                **{f"probseg_{t}": f"{prefix}_label-{t}_probseg.nii.gz" for t in TISSUES},
                "anat2tpl_xfm": f"{prefix}_from-T1w_to-{template}_mode-image_xfm.h5",
                "tpl2anat_xfm": f"{prefix}_from-{template}_to-T1w_mode-image_xfm.h5",
            }
            missing = [n for n in names.values() if not (folder / n).is_file()]
            if missing:
                others = sorted(
                    p.name.split("_to-")[1].split("_")[0]
                    for p in folder.glob(f"{prefix}_from-T1w_to-*_mode-image_xfm.h5")
                )
                why = (
                    f"it has transforms to {', '.join(others)} only, not to anat.template "
                    f"{template} (run it with --output-spaces {template} or set anat.template)"
                    if others and any("_xfm" in m for m in missing)
                    else "missing " + ", ".join(missing)
                )
                notes.append(f"{t1w}: not reused, {why}; the anatomy is recomputed")
                continue
            found = AnatomyReuse(
                root=str(root),
                generated_by=_generated_by(root),
                t1w_preproc=str(t1w),
                brain_mask=str(folder / names["brain_mask"]),
                dseg=str(folder / names["dseg"]),
                probseg=tuple(str(folder / names[f"probseg_{t}"]) for t in TISSUES),
                anat2tpl_xfm=str(folder / names["anat2tpl_xfm"]),
                tpl2anat_xfm=str(folder / names["tpl2anat_xfm"]),
            )
            _check_set(found, raw_t1w)
            return found, None
    if not notes:
        where = f"sub-{subject}" + (f"_ses-{session}" if session else "")
        notes.append(
            f"no sMRIPrep/fMRIPrep anatomy for {where} in "
            f"{', '.join(str(r) for r in roots)} (looked for {where}[_<entities>]"
            "_desc-preproc_T1w.nii.gz); anatomy computed"
        )
    return None, "; ".join(notes)


# --- PETPrep ------------------------------------------------------------------------------
#
# PETPrep writes, beside each PET series (its BIDS-Derivatives names, ``<prefix>`` the
# series' name without ``_pet.nii.gz``):
#
# * ``<prefix>_desc-hmc_petref.nii.gz`` — the head-motion-correction reference (PET space)
# * ``<prefix>_from-orig_to-petref_mode-image_xfm.txt`` — one ITK affine per frame
# * ``<prefix>_from-petref_to-T1w_mode-image_xfm.txt`` — the reference to PETPrep's T1w
#
# The motion correction is reused whenever the three are there and fit the series (one
# transform per frame, the reference where the series lies). The transform to the T1w only
# when PETPrep's T1w is this session's T1w: the sidecars of its anatomical derivatives name
# one raw T1w (``Sources``/``RawSources``) and it is the session's. Otherwise PET is
# registered to the T1w here (a note says why).


@dataclass(frozen=True)
class PETReuse:
    """One PET series' reused motion correction (and transform to the T1w)."""

    root: str
    generated_by: str
    petref: str
    hmc_xfm: str
    #: PETPrep's reference → T1w, or None when its T1w is not this session's
    pet2t1w_xfm: str | None = None

    def files(self) -> list:
        return [f for f in (self.petref, self.hmc_xfm, self.pet2t1w_xfm) if f]

    def relative(self) -> list:
        return [str(Path(f).relative_to(self.root)) for f in self.files()]


def itk_transform_blocks(path) -> list:
    """The transforms of an ITK text transform file, each as the text of a one-transform
    file (``#Insight Transform File V1.0`` + one ``#Transform`` block)."""
    text = Path(path).read_text()
    blocks, current = [], None
    for line in text.splitlines():
        if line.startswith("#Transform"):
            current = []
            blocks.append(current)
        elif current is not None and line.strip():
            current.append(line.strip())
    if not text.startswith("#Insight Transform File") or not blocks:
        raise DataError(f"{path}: not an ITK text transform file (#Insight Transform File)")
    out = []
    for lines in blocks:
        if not any(x.startswith("Transform:") for x in lines) or not any(
            x.startswith("Parameters:") for x in lines
        ):
            raise DataError(f"{path}: a #Transform block without Transform/Parameters lines")
        out.append("#Insight Transform File V1.0\n#Transform 0\n" + "\n".join(lines) + "\n")
    return out


def _t1w_sources(folder: Path, prefix: str) -> list:
    """Raw T1w files PETPrep's anatomy names in its sidecars (``Sources``/``RawSources``)."""
    found = []
    for side in sorted(folder.glob(f"{prefix}_*.json")):
        if not any(k in side.name for k in ("desc-preproc_T1w", "desc-brain_mask")):
            continue
        if any(e in side.name for e in ("_space-", "_res-")):
            continue
        try:
            meta = json.loads(side.read_text())
        except (OSError, ValueError):
            continue
        for key in ("Sources", "RawSources"):
            for src in meta.get(key) or []:
                if isinstance(src, str) and src.endswith(("_T1w.nii.gz", "_T1w.nii")):
                    found.append(src)
    return sorted(set(found))


def _same_t1w(sources: list, bids_dir: Path, t1w: str) -> bool:
    rel = Path(t1w).resolve().relative_to(Path(bids_dir).resolve()).as_posix()
    names = {s.split(":", 2)[-1] if s.startswith("bids:") else s for s in sources}
    return len(names) == 1 and next(iter(names)).endswith(rel)


def find_pet(roots, subject: str, session, pet: str, bids_dir, t1w: str, n_frames: int):
    """``(PETReuse or None, note or None)`` for the PET series ``pet``: the first folder of
    ``roots`` with PETPrep's motion correction of it, checked against the series (one
    transform per frame, the reference's field of view on the series'); :class:`DataError`
    when it does not fit the series."""
    import nibabel as nb

    rel = Path(pet).resolve().relative_to(Path(bids_dir).resolve())
    prefix = rel.name[: -len("_pet.nii.gz")] if rel.name.endswith(".nii.gz") else rel.stem[:-4]
    for root in roots:
        folder = root / rel.parent
        petref = folder / f"{prefix}_desc-hmc_petref.nii.gz"
        hmc = folder / f"{prefix}_from-orig_to-petref_mode-image_xfm.txt"
        to_t1w = folder / f"{prefix}_from-petref_to-T1w_mode-image_xfm.txt"
        if not petref.is_file() and not hmc.is_file():
            continue
        if not (petref.is_file() and hmc.is_file()):
            missing = hmc if petref.is_file() else petref
            return None, f"{pet}: PETPrep's motion correction not reused, missing {missing}"
        blocks = itk_transform_blocks(hmc)
        if len(blocks) != n_frames:
            raise DataError(
                f"{hmc}: {len(blocks)} transforms for the {n_frames} frames of {pet}: not "
                "this series' motion correction; remove it from --derivatives"
            )
        share = _overlap(nb.load(petref), nb.load(pet))
        if share < MIN_OVERLAP:
            raise DataError(
                f"{petref}: its field of view overlaps that of {pet} by {100 * share:.0f} % "
                f"(at least {100 * MIN_OVERLAP:.0f} % expected): not this series' reference"
            )
        note, xfm = None, None
        if to_t1w.is_file():
            anat_folders = [(root / f"sub-{subject}" / "anat", f"sub-{subject}")]
            if session:
                anat_folders.insert(
                    0,
                    (root / f"sub-{subject}" / f"ses-{session}" / "anat",
                     f"sub-{subject}_ses-{session}"),
                )  # fmt:skip
            sources = []
            for folder_a, base in anat_folders:
                sources = _t1w_sources(folder_a, base)
                if sources:
                    break
            if _same_t1w(sources, Path(bids_dir), t1w):
                xfm = str(to_t1w)
            else:
                why = (
                    f"its T1w was made from {', '.join(sources)}"
                    if sources
                    else "its anatomical sidecars do not name the T1w it was made from"
                )
                note = (
                    f"{to_t1w.name}: not reused, {why}, not this session's "
                    f"{Path(t1w).name}; PET registered to the T1w here"
                )
        found = PETReuse(str(root), _generated_by(root), str(petref), str(hmc), xfm)
        return found, note
    return None, None
