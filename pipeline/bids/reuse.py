"""Anatomical derivatives of sMRIPrep or fMRIPrep reused instead of recomputed
(``--derivatives``, fMRIPrep's option).

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
                "pass the folder holding sMRIPrep's or fMRIPrep's sub-<label>/ folders"
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
