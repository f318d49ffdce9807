"""Participant report: ``OUTPUT_DIR/sub-<label>.html`` with figures in
``OUTPUT_DIR/sub-<label>/figures/``.

Everything is read from the derivatives on disk (so ``--reports-only`` and the end of a
participant run share this code): per session and modality found, registration overlays,
quantitative maps with colour bars in native and template space, regional bar charts with
ipsi/contra, QC metrics from the JSON sidecars (plus a few computed here: registration
similarity, SNR), the participant's crash files at the top and the methods boilerplate
written at run time (:mod:`pipeline.reports.boilerplate`). A missing modality simply has no
section; a participant with only a T1w still gets a report.

Figures: nilearn and Matplotlib (Agg); HTML: the Jinja2 template
``templates/participant.html.j2``.

.. autofunction:: build_participant_report"""

from __future__ import annotations

import json
import math
import re
import shutil
import tempfile
import time
import warnings
from pathlib import Path

from pipeline import log
from pipeline.utils import same_grid

from .figures import (
    Figures,
    _anat_figure,
    _apply_rigid,
    _load,
    _map_figure,
    _read_table,
    _region_chart,
    _template_mask,
    _template_t1w,
    _vif_chart,
    band_outlines,
    nmi,
)
from .index import (
    MAP_ORDER,
    NATIVE_ONLY,
    NOT_DRAWN,
    NUMERIC_TABLE_COLUMNS,
    ORDER,
    QC_KEYS,
    QC_PATTERN,
    REFERENCE_ONLY,
    REGISTRATION_REFERENCE,
    SUFFIX_MODALITY,
    TABLE_MODALITY,
    TITLES,
    XFM_FROM,
    Deriv,
    SessionFiles,
    _sessions,
    summarise_crashes,
)

LOG = log.get("report")


TEMPLATES = Path(__file__).parent / "templates"


MAX_REPORT_BYTES = 20 * 1024 * 1024


def _fmt(value, spec="") -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int) and spec in ("", "d"):
        return f"{value:d}"
    if isinstance(value, (int, float)):
        if not math.isfinite(float(value)):
            return str(value)
        try:
            return format(float(value), spec if spec and spec != "d" and spec != "s" else ".4g")
        except ValueError:
            return str(value)
    if isinstance(value, (list, tuple)):
        return ", ".join(_fmt(v) for v in value)
    return str(value)


#: readable names of the registration QC values (pipeline.models.brain.registration_qc)
QC_NAMES = {
    "mask_dice": "Dice of the template brain mask in the T1w with the brain mask",
    "volume_ratio": "template brain volume in the T1w / in the template",
    "brain_volume_ml": "brain volume (ml)",
}


def _sidecar_qc(files) -> list[dict]:
    """QC fields of the sidecars of ``files``, each value once (first file that has it)."""
    seen, out = set(), []
    for f in files:
        for key, value in f.sidecar().items():
            if key not in QC_KEYS and not QC_PATTERN.search(key):
                continue
            if isinstance(value, (dict, list)) and key not in QC_KEYS:
                continue
            sig = (key, json.dumps(value, sort_keys=True, default=str))
            if sig in seen:
                continue
            seen.add(sig)
            label, spec = QC_KEYS.get(key, (key, ""))
            out.append({"name": label, "key": key, "value": _fmt(value, spec), "source": f.name})
    return out


def _modality(f: Deriv, session: SessionFiles) -> str | None:
    if f.suffix in SUFFIX_MODALITY:
        return SUFFIX_MODALITY[f.suffix]
    if f.suffix == "residual":
        same = {k: f.get(k) for k in ("ce", "trc")}
        for suffix in ("Ktrans", "R2starmap", "dR2star", "SUV", "SUVR"):
            if any(all(g.get(k) == v for k, v in same.items()) for g in session.find(suffix)):
                return SUFFIX_MODALITY[suffix]
        return "uspio" if f.get("ce") is None and session.find("R2starmap") else "other"
    return None


def _section_label(f: Deriv):
    return f.get("ce") or f.get("trc")


def _xfm_for(f: Deriv, modality: str, sessions: dict, session: SessionFiles):
    """The rigid transform (``from-X_to-T1w``) and the session whose T1w it maps to."""
    meta = f.sidecar()
    ref_ses = session
    pre = meta.get("PreSession")
    if isinstance(pre, str) and pre.startswith("ses-") and pre[4:] in sessions:
        ref_ses = sessions[pre[4:]]
    froms = XFM_FROM.get(modality, [])
    for ses in (ref_ses, session):
        for frm in froms:
            for x in ses.files:
                if x.suffix != "xfm" or x.get("to") != "T1w" or x.get("from") != frm:
                    continue
                if x.ext not in (".mat", ".h5", ".txt"):
                    continue
                extra = {
                    k: v
                    for k, v in x.entities.items()
                    if k not in ("sub", "ses", "from", "to", "mode")
                }
                if all(f.get(k) == v for k, v in extra.items()):
                    return x, ses
    return None, ref_ses


def _drawn(f: Deriv, modality: str) -> bool:
    """Whether a map gets a figure: every quantitative map in native space (or on the T1w
    grid), the main ones also in template space; not fit residuals or the post R2*."""
    post_r2 = f.suffix == "R2starmap" and f.get("ce") is not None
    if f.suffix in NOT_DRAWN or (post_r2 and ("R2starmap", "post") in NOT_DRAWN):
        return False
    space = f.get("space")
    if space in (None, "T1w"):
        return True
    return f.suffix not in NATIVE_ONLY and (f.suffix, f.get("desc")) not in NATIVE_ONLY


def _map_sort_key(f: Deriv):
    """Maps by kind, each in native then template space (side by side in the report)."""
    try:
        i = MAP_ORDER.index(f.suffix)
    except ValueError:
        i = len(MAP_ORDER)
    return (i, f.get("desc") or "", f.get("ce") or "", f.get("space") is not None, f.name)


def _units(f: Deriv) -> str:
    u = f.sidecar().get("Units")
    return str(u) if u not in (None, "", "arbitrary") else ""


def _map_title(f: Deriv) -> str:
    desc = f.get("desc")
    return f"{f.suffix}" + (
        f" ({desc})" if desc and desc != "fit" else " (fit residual)" if desc == "fit" else ""
    )


class _Builder:
    def __init__(self, out_dir: Path, label: str, figs: Figures, tmpdir: str):
        self.out_dir, self.label, self.figs, self.tmpdir = out_dir, label, figs, tmpdir
        self.warnings = []
        self.cut_masks = {}  # space -> mask whose extent sets the cuts of its figures
        self.qc_failures = []  # sessions whose registration QC failed (kept, flagged)

    def _try(self, what, fn, *args, **kwargs):
        """Run a figure/metric function; a failure becomes a note in the report."""
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - one bad file must not lose the report
            LOG.warning("report sub-%s: %s failed: %s", self.label, what, exc)
            self.warnings.append(f"{what}: {type(exc).__name__}: {exc}")
            return None

    # anatomy ------------------------------------------------------------------------
    def anat_section(self, ses: SessionFiles):
        import numpy as np
        from scipy import ndimage

        sec = {
            "key": "anat",
            "title": TITLES["anat"],
            "agent": None,
            "figures": [],
            "charts": [],
            "qc": [],
            "tables": [],
            "notes": [],
        }
        t1w = ses.one("T1w", desc="preproc", space=None, ce=None)
        mask = ses.one("mask", desc="brain", space=None)
        if t1w is None:
            sec["notes"].append(
                "no preprocessed T1w in this session (the anatomical workflow did not finish)"
            )
            return sec
        t1 = _load(t1w.path)
        if mask is not None:
            m = _load(mask.path)
            mdat = np.asarray(m.dataobj) > 0.5
            vox = float(np.prod(m.header.get_zooms()[:3]))
            sec["qc"].append(
                {
                    "name": "brain volume (cm³)",
                    "key": "computed",
                    "value": f"{mdat.sum() * vox / 1000:.0f}",
                    "source": mask.name,
                }
            )
            rqc = mask.sidecar().get("RegistrationQC") or {}
            for key, value in (rqc.get("Values") or {}).items():
                lo, hi = (rqc.get("Ranges") or {}).get(key, [None, None])
                lo = "-inf" if lo is None else lo
                hi = "inf" if hi is None else hi
                rng = f" (plausible: {lo} to {hi})"
                sec["qc"].append(
                    {
                        "name": f"registration QC: {QC_NAMES.get(key, key)}{rng}",
                        "key": "RegistrationQC",
                        "value": _fmt(value) + ("" if rqc.get("Passed", True) else " — FAILED"),
                        "source": mask.name,
                    }
                )
            if rqc and not rqc.get("Passed", True):
                self.qc_failures.append(
                    (f"ses-{ses.label}: " if ses.label else "")
                    + "registration QC FAILED ("
                    + "; ".join(rqc.get("Failures") or [])
                    + "): the outputs of this session were kept only because QC failures "
                    "were ignored; check the T1w and the figures before using them"
                )
            dat = np.asarray(t1.dataobj)
            far = np.zeros_like(mdat)
            if mdat.any():  # air: outside the head (signal above 10 % of the brain median)
                head = ndimage.binary_fill_holes(
                    ndimage.binary_closing(dat > 0.1 * float(np.median(dat[mdat])), iterations=2)
                )
                far = ~ndimage.binary_dilation(head, iterations=3) & (dat != 0)
            if far.sum() > 100 and mdat.any():
                sd = float(np.std(dat[far]))
                if sd > 0:
                    sec["qc"].append(
                        {
                            "name": "T1w SNR (brain mean / SD of the air "
                            "background; computed for this report)",
                            "key": "computed",
                            "value": f"{float(np.mean(dat[mdat])) / sd:.1f}",
                            "source": t1w.name,
                        }
                    )
            atlas = next(
                (
                    d
                    for d in ses.find("dseg", space=None)
                    if d.get("atlas")
                    and d.get("desc") is None
                    and d.get("ce") is None
                    and d.get("trc") is None
                ),
                None,
            )
            side = atlas.sidecar() if atlas is not None else {}
            if side.get("AtlasType") == "approximate":
                sec["notes"].append(
                    f"The {atlas.get('atlas')} atlas is approximate — "
                    f"{side.get('AtlasDescription', 'geometric, not a published atlas')}; "
                    "its regions are coarse stand-ins for the anatomy they are named after."
                )
            src = self._try(
                "brain mask figure",
                _anat_figure,
                self.figs,
                t1,
                f"{t1w.stem}_desc-brainmask.png",
                "T1w (native) with the brain mask (red)" + (" and atlas labels" if atlas else ""),
                contours=m,
                rois=_load(atlas.path) if atlas else None,
            )
            if src:
                sec["figures"].append(
                    {
                        "src": src,
                        "kind": "registration",
                        "caption": "Native T1w with the participant's brain mask (red "
                        "contour: brain extraction, then GM+WM at the pial hull)"
                        + (f" and the {atlas.get('atlas')} atlas labels" if atlas else ""),
                        "file": t1w.name,
                    }
                )
        tissues = next(
            (d for d in ses.find("dseg", space=None) if not d.get("atlas") and not d.get("desc")),
            None,
        )
        if tissues is not None:
            src = self._try(
                "segmentation figure",
                _anat_figure,
                self.figs,
                t1,
                f"{t1w.stem}_desc-tissues.png",
                "T1w with the CSF/GM (blue) and GM/WM (yellow) boundaries",
                tissues=_load(tissues.path),
                cut_mask=_load(mask.path) if mask is not None else None,
            )
            if src:
                sec["figures"].append(
                    {
                        "src": src,
                        "kind": "registration",
                        "caption": "Tissue segmentation (Atropos): boundaries of CSF and "
                        "grey matter (blue) and of grey and white matter (yellow)",
                        "file": tissues.name,
                    }
                )
        rois = next(
            (
                d
                for d in ses.find("dseg", space=None, desc="extracerebral")
                if d.get("ce") is None and d.get("trc") is None
            ),
            None,
        )
        rois_lut = rois.path.with_name(rois.path.name.replace(".nii.gz", ".tsv")) if rois else None
        if rois is not None and rois_lut.is_file():
            outlines = self._try(
                "band outlines", band_outlines, _load(rois.path), _read_table(rois_lut)
            )
            src = self._try(
                "band figure",
                _anat_figure,
                self.figs,
                t1,
                f"{t1w.stem}_desc-bands.png",
                "T1w with the meningeal (green) and calvarial (orange) bands and the sinuses "
                "(magenta)",
                outlines=outlines,
                cut_mask=_load(mask.path) if mask is not None else None,
            )
            if src:
                sec["figures"].append(
                    {
                        "src": src,
                        "kind": "registration",
                        "caption": "Extra-cerebral regions: meningeal band (green), calvarial "
                        "band over the vault (orange), dural venous sinuses, cavernous sinuses "
                        "and pituitary (magenta)",
                        "file": rois.name,
                    }
                )
        for tpl in ses.find("T1w", desc="preproc", ce=None):
            space = tpl.get("space")
            if not space:
                continue
            timg = _load(tpl.path)
            tmask = self._try("template mask", _template_mask, space, timg)
            caption = (
                f"T1w in {space} space with the template brain-mask contour (red)"
                if tmask
                else f"T1w in {space} space (template mask unavailable from "
                "TemplateFlow: no contour)"
            )
            src = self._try(
                "template registration figure",
                _anat_figure,
                self.figs,
                timg,
                f"{tpl.stem}_desc-tplcontour.png",
                f"T1w in {space}",
                contours=_load(tmask) if tmask else None,
            )
            self.cut_masks[space] = _load(tmask) if tmask else None
            if src:
                sec["figures"].append(
                    {"src": src, "kind": "registration", "caption": caption, "file": tpl.name}
                )
            tt1 = self._try("template T1w", _template_t1w, space, timg)
            if tt1 and tmask:
                self._similarity(
                    sec, timg, _load(tt1), _load(tmask), f"T1w ↔ {space} template", tpl.name
                )
        return sec

    def _similarity(self, sec, a, b, mask_img, what, source):
        import numpy as np
        from nilearn.image import resample_to_img

        if not same_grid(a, b):
            b = resample_to_img(
                b, a, interpolation="continuous", force_resample=True, copy_header=True
            )
        mask = None
        if mask_img is not None:
            if not same_grid(mask_img, a):
                mask_img = resample_to_img(
                    mask_img, a, interpolation="nearest", force_resample=True, copy_header=True
                )
            mask = np.asarray(mask_img.dataobj) > 0.5
        v = self._try(f"similarity {what}", nmi, a, b, mask)
        if v is not None:
            sec["qc"].append(
                {
                    "name": f"registration similarity, {what} (NMI, 1–2, higher "
                    "is better; computed for this report)",
                    "key": "computed",
                    "value": f"{v:.3f}",
                    "source": source,
                }
            )

    # modalities ---------------------------------------------------------------------
    def modality_sections(self, ses: SessionFiles, sessions: dict):
        import numpy as np

        groups = {}
        for f in ses.files:
            if f.ext not in (".nii.gz", ".nii"):
                continue
            mod = _modality(f, ses)
            if mod is None:
                continue
            groups.setdefault((mod, _section_label(f)), []).append(f)
        # the pre-infusion MEGRE maps (no ce-) go with the session's iron-oxide section
        agents = [k for k in groups if k[0] == "uspio" and k[1] is not None]
        if ("uspio", None) in groups and len(agents) == 1:
            groups[agents[0]] = groups.pop(("uspio", None)) + groups[agents[0]]
        for f in ses.files:  # post-contrast T1w without maps (e.g. a failed step)
            if f.suffix == "T1w" and f.get("ce") and f.get("space") is None:
                groups.setdefault(("gadolinium", f.get("ce")), [])
        tables = {}
        for f in ses.files:
            if f.suffix == "regions" and f.ext == ".tsv":
                df = _read_table(f.path)
                mcol = (
                    str(df["modality"].iloc[0])
                    if df is not None and "modality" in df and len(df)
                    else None
                )
                mod = TABLE_MODALITY.get(
                    mcol or "", TABLE_MODALITY.get(f.get("desc", ""), "other")
                )
                key = (mod, None if mod == "anat" else _section_label(f))
                tables.setdefault(key, []).append(f)
                if mod != "anat":
                    groups.setdefault(key, [])
        t1w = ses.one("T1w", desc="preproc", space=None, ce=None)
        mask = ses.one("mask", desc="brain", space=None)
        sections = []
        for mod, agent in sorted(
            groups, key=lambda k: (ORDER.index(k[0]) if k[0] in ORDER else 99, k[1] or "")
        ):
            files = sorted(groups[(mod, agent)], key=_map_sort_key)
            # a map the workflow also wrote on the T1w grid (space-T1w) is drawn once
            on_t1w = {
                (f.suffix, f.get("desc"), f.get("ce"), f.get("trc"))
                for f in files
                if f.get("space") == "T1w"
            }
            drawn, undrawn = [], []
            for f in files:
                if f.suffix in REFERENCE_ONLY or (
                    f.get("space") is None
                    and (f.suffix, f.get("desc"), f.get("ce"), f.get("trc")) in on_t1w
                ):
                    continue
                (drawn if _drawn(f, mod) else undrawn).append(f)
            sec = {
                "key": mod,
                "title": TITLES.get(mod, mod),
                "agent": agent,
                "figures": [],
                "charts": [],
                "qc": [],
                "tables": [],
                "notes": [],
            }
            if mod == "gadolinium":
                self._gadolinium_registration(sec, ses, agent, t1w, mask)
            elif mod in REGISTRATION_REFERENCE and t1w is not None:
                self._modality_registration(sec, ses, sessions, mod, files, mask)
            for f in drawn:
                self._map(sec, f, mod, ses, sessions)
            if undrawn:
                sec["notes"].append(
                    "Written but not drawn (template-space copies of maps "
                    "drawn in native space, fit residuals summarised in the "
                    "QC table, post-infusion R2*): " + ", ".join(f.name for f in undrawn)
                )
            extra = [
                g
                for g in ses.files
                if g.ext == ".tsv"
                and _section_label(g) == agent
                and g.suffix in ("findings", "timeseries")
            ]
            for g in extra:
                if g.suffix == "timeseries" and mod == "dce":
                    src = self._try("input-function chart", _vif_chart, self.figs, g)
                    if src:
                        sec["charts"].append(
                            {
                                "src": src,
                                "caption": "Input function (blood and plasma concentration)",
                                "file": g.name,
                            }
                        )
                elif g.suffix == "findings" and mod == "gadolinium":
                    sec["tables"].append(self._findings_table(g))
            for tsv in tables.get((mod, agent), []):
                self._chart(sec, tsv)
            sec["qc"] += _sidecar_qc(
                files
                + (
                    [g for g in ses.files if g.suffix == "T1w" and g.get("ce") == agent]
                    if mod == "gadolinium"
                    else []
                )
            )
            self._computed_qc(sec, mod, files, np)
            if not (sec["figures"] or sec["charts"] or sec["tables"]):
                sec["notes"].append(
                    "no maps or tables were found for this modality (a step "
                    "may have failed: see the errors above)"
                )
            sections.append(sec)
        # anatomical regional tables go to the anatomy section (returned separately)
        return sections, tables.get(("anat", None), [])

    def _gadolinium_registration(self, sec, ses, agent, t1w, mask):
        post = ses.one("T1w", desc="preproc", space=None, ce=agent)
        if post is None or t1w is None:
            return
        pre_img, post_img = _load(t1w.path), _load(post.path)
        src = self._try(
            "post-on-pre figure",
            _anat_figure,
            self.figs,
            pre_img,
            f"{post.stem}_desc-postonpre.png",
            f"pre-contrast T1w with post-contrast ({agent}) edges",
            edges=post_img,
        )
        if src:
            sec["figures"].append(
                {
                    "src": src,
                    "kind": "registration",
                    "caption": f"Pre-contrast T1w with the edges of the post-contrast "
                    f"({agent}) T1w registered to it (red)",
                    "file": post.name,
                }
            )
        m = _load(mask.path) if mask is not None else None
        self._similarity(sec, pre_img, post_img, m, "post ↔ pre T1w", post.name)

    def _modality_registration(self, sec, ses, sessions, mod, files, mask):
        ref = None
        for suffix in REGISTRATION_REFERENCE[mod]:
            ref = next(
                (
                    f
                    for f in files
                    if f.suffix == suffix
                    and f.get("space") is None
                    and (mod != "uspio" or f.get("ce") is None)
                ),
                None,
            ) or next((f for f in files if f.suffix == suffix and f.get("space") is None), None)
            if ref is not None:
                break
        if ref is None:
            return
        xfm, ref_ses = _xfm_for(ref, mod, sessions, ses)
        t1w = ref_ses.one("T1w", desc="preproc", space=None, ce=None)
        rmask = ref_ses.one("mask", desc="brain", space=None) or mask
        if t1w is None:
            return
        t1 = _load(t1w.path)
        moved, how = self._to_t1w(ref, t1w, xfm)
        if moved is None:
            sec["notes"].append(
                f"{ref.name}: no transform to the T1w and not on its grid: no registration overlay"
            )
            return
        m = _load(rmask.path) if rmask is not None else None
        vmax = None
        if m is not None:
            import numpy as np

            inside = np.asarray(moved.dataobj)[np.asarray(m.dataobj) > 0.5]
            vmax = float(np.percentile(inside, 99)) if inside.size else None
        src = self._try(
            "registration figure",
            _anat_figure,
            self.figs,
            moved,
            f"{ref.stem}_desc-ont1w.png",
            f"{ref.suffix} on the T1w grid, T1w brain mask (red)",
            contours=m,
            edges=None if m is not None else t1,
            vmax=vmax,
        )
        if src:
            sec["figures"].append(
                {
                    "src": src,
                    "kind": "registration",
                    "caption": f"{ref.suffix} brought to the T1w ({how}) with the "
                    "contour of the T1w's brain mask (red)"
                    if m is not None
                    else f"{ref.suffix} brought to the T1w ({how}) with the T1w's edges (red)",
                    "file": ref.name,
                }
            )
        self._similarity(sec, moved, t1, m, f"{ref.suffix} ↔ T1w", ref.name)

    def _to_t1w(self, f, t1w, xfm):
        """``f`` on the grid of ``t1w``: through its transform, or as is on the same grid."""
        img = _load(f.path)
        t1 = _load(t1w.path)
        if xfm is not None:
            moved = self._try(
                f"resampling {f.name}", _apply_rigid, f.path, t1w.path, xfm.path, self.tmpdir
            )
            if moved is not None:
                return moved, f"through {xfm.name}"
        if same_grid(img, t1):
            return img, "same grid"
        return None, None

    def _map(self, sec, f: Deriv, mod, ses, sessions):
        units = _units(f)
        space = f.get("space")
        if space == "T1w":  # resampled to the T1w by the workflow
            t1w = ses.one("T1w", desc="preproc", space=None, ce=None)
            bg = _load(t1w.path) if t1w is not None else None
            img = _load(f.path)
            where = "on the T1w grid (resampled by the workflow)"
            name = f"{f.stem}_desc-map.png"
            mask = ses.one("mask", desc="brain", space=None)
            cut_mask = _load(mask.path) if mask is not None and bg is not None else None
        elif space:
            bg_f = next(
                (
                    s.one("T1w", desc="preproc", space=space, ce=None)
                    for s in [ses, *sessions.values()]
                    if s.one("T1w", desc="preproc", space=space, ce=None)
                ),
                None,
            )
            bg = _load(bg_f.path) if bg_f else None
            img = _load(f.path)
            where = f"{space} space" + ("" if bg is not None else " (no T1w background)")
            name = f"{f.stem}_desc-map.png"
            cut_mask = self.cut_masks.get(space)
        else:
            xfm, ref_ses = _xfm_for(f, mod, sessions, ses) if mod != "gadolinium" else (None, ses)
            t1w = ref_ses.one("T1w", desc="preproc", space=None, ce=None)
            img, how, bg = None, None, None
            if t1w is not None:
                img, how = self._to_t1w(f, t1w, xfm)
                bg = _load(t1w.path) if img is not None else None
            if img is None:
                img, how = _load(f.path), "own grid, no T1w background"
            where = f"native space ({how})"
            name = f"{f.stem}_desc-map.png"
            mask = ref_ses.one("mask", desc="brain", space=None)
            cut_mask = _load(mask.path) if mask is not None and bg is not None else None
        src = self._try(
            f"map figure {f.name}",
            _map_figure,
            self.figs,
            img,
            bg,
            name,
            f"{_map_title(f)} – {'native' if space in (None, 'T1w') else space}",
            units,
            cut_mask=cut_mask,
        )
        if src:
            sec["figures"].append(
                {
                    "src": src,
                    "kind": "map",
                    "caption": f"{_map_title(f)}{' [' + units + ']' if units else ''}, {where}",
                    "file": f.name,
                    "space": space or "native",
                }
            )

    def _chart(self, sec, tsv):
        res = self._try(f"chart {tsv.name}", _region_chart, self.figs, tsv)
        if not res:
            return
        src, note = res
        if src:
            sec["charts"].append(
                {
                    "src": src,
                    "file": tsv.name,
                    "caption": f"Regional {tsv.get('desc', '')} ({tsv.get('atlas', '')} "
                    "atlas and extra-cerebral regions): mean ± sd; AI = "
                    "(ipsi − contra) / mean(ipsi, contra)",
                }
            )
        elif note:
            sec["notes"].append(f"{tsv.name}: {note}")

    def _findings_table(self, g):
        df = _read_table(g.path)
        rows = []
        cols = [
            c
            for c in ("cluster", "roi", "hemisphere", *NUMERIC_TABLE_COLUMNS)
            if df is not None and c in df
        ]
        if df is not None:
            for _, r in df.iterrows():
                rows.append(
                    [_fmt(r[c], ".4g") if c in NUMERIC_TABLE_COLUMNS else str(r[c]) for c in cols]
                )
        return {
            "title": "Enhancement findings (clusters above threshold)",
            "file": g.name,
            "columns": cols,
            "rows": rows,
            "empty": "no cluster above the threshold and minimum volume",
        }

    def _computed_qc(self, sec, mod, files, np):
        for f in files:
            if f.suffix == "residual" and f.get("space") is None:
                img = self._try("residual", _load, f.path)
                if img is None:
                    continue
                d = np.asarray(img.dataobj)
                v = d[d > 0]
                if v.size:
                    sec["qc"].append(
                        {
                            "name": "median fit residual over fitted voxels"
                            + (f" [{_units(f)}]" if _units(f) else ""),
                            "key": "computed",
                            "value": f"{np.median(v):.4g}",
                            "source": f.name,
                        }
                    )
            if f.suffix in ("Ktrans", "dR2star") and f.get("space") is None:
                import nibabel as nb

                d = np.asarray(nb.load(str(f.path)).dataobj, dtype=np.float32)
                finite = d[np.isfinite(d) & (d != 0)]
                n_fit = f.sidecar().get("FittedVoxels")
                if isinstance(n_fit, (int, float)) and n_fit > 0:
                    sec["qc"].append(
                        {
                            "name": f"{f.suffix}: fraction of fitted voxels without "
                            "a finite non-zero value (failed fits; computed)",
                            "key": "computed",
                            "value": f"{max(0.0, 1 - finite.size / n_fit):.4f}",
                            "source": f.name,
                        }
                    )
                if f.suffix == "Ktrans" and finite.size:
                    sec["qc"].append(
                        {
                            "name": "Ktrans: fraction of negative voxels (noise)",
                            "key": "computed",
                            "value": f"{float((finite < 0).mean()):.3f}",
                            "source": f.name,
                        }
                    )


def participant_labels(out_dir) -> list[str]:
    """Participants with derivatives or logs in ``out_dir``."""
    out = Path(out_dir)
    labels = {p.name[4:] for p in out.glob("sub-*") if p.is_dir()}
    labels |= {p.name[4:] for p in (out / "logs").glob("sub-*") if p.is_dir()}
    return sorted(labels)


def _clear_figures(folder: Path):
    if not folder.is_dir():
        return
    for p in folder.iterdir():
        if p.is_file() and p.suffix in (".png", ".svg"):
            p.unlink()


def build_participant_report(
    output_dir, subject: str, errors=(), run_started=None, dpi: int = 72
) -> Path:
    """Write ``OUTPUT_DIR/sub-<label>.html`` and its figures from the derivatives on disk.

    Parameters
    ----------
    output_dir : path
        the derivatives root
    subject : str
        participant label, with or without ``sub-``
    errors : iterable of str
        further errors to show at the top (e.g. a workflow that could not be built)
    run_started : float or None
        start of the current run (``time.time()``): older crash files are marked as from
        an earlier run
    dpi : int
        resolution of the PNG figures
    """
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    from pipeline import __version__
    from pipeline.utils import atomic_write_text

    from .boilerplate import boilerplate_path, parse_markdown

    t0 = time.time()
    out = Path(output_dir).absolute()
    label = str(subject).removeprefix("sub-")
    figs = Figures(out, label, dpi=dpi)
    _clear_figures(figs.folder)
    figs.folder.mkdir(parents=True, exist_ok=True)
    sessions = _sessions(out, label)
    by_label = {s.label: s for s in sessions}
    ctx_sessions = []
    with (
        tempfile.TemporaryDirectory(prefix="inflamap_report_") as tmpdir,
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")  # nilearn's notes (empty masks...) on every figure
        b = _Builder(out, label, figs, tmpdir)
        for ses in sessions:
            anat = b._try("anatomy section", b.anat_section, ses) or {
                "key": "anat",
                "title": TITLES["anat"],
                "agent": None,
                "figures": [],
                "charts": [],
                "qc": [],
                "tables": [],
                "notes": ["failed: see notes"],
            }
            res = b._try("modality sections", b.modality_sections, ses, by_label)
            mods, anat_tables = res if res else ([], [])
            for tsv in anat_tables:
                b._chart(anat, tsv)
            ctx_sessions.append(
                {
                    "label": ses.label,
                    "id": f"ses-{ses.label}" if ses.label else "nosession",
                    "title": f"Session {ses.label}" if ses.label else "Session",
                    "sections": [anat, *mods],
                }
            )
    crashes = summarise_crashes(out, label, since=run_started)
    from pipeline.bids import VALIDATOR_WARNINGS

    vfile = out / VALIDATOR_WARNINGS
    validator = vfile.read_text().splitlines() if vfile.is_file() else None
    bp = boilerplate_path(out, label)
    boiler = None
    if bp.is_file():
        boiler = {"blocks": parse_markdown(bp.read_text()), "file": bp.relative_to(out).as_posix()}
    fig_bytes = sum(p.stat().st_size for p in figs.written if p.exists())
    elapsed = time.time() - t0
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    html = env.get_template("participant.html.j2").render(
        subject=label,
        version=__version__,
        generated=time.strftime("%Y-%m-%d %H:%M:%S"),
        crashes=crashes,
        errors=[*b.qc_failures, *errors],
        warnings=b.warnings if sessions else [],
        validator=validator,
        sessions=ctx_sessions,
        boilerplate=boiler,
        n_figures=len(figs.written),
        figure_mb=f"{fig_bytes / 1e6:.1f}",
        seconds=f"{elapsed:.0f}",
    )
    path = out / f"sub-{label}.html"
    atomic_write_text(html, path)
    total = fig_bytes + path.stat().st_size
    if total > MAX_REPORT_BYTES:
        LOG.warning(
            "report of sub-%s is %.1f MB (over 20 MB): lower the figure dpi", label, total / 1e6
        )
    if not figs.written and figs.folder.is_dir() and not any(figs.folder.iterdir()):
        shutil.rmtree(figs.folder, ignore_errors=True)
    return path


def report_after_run(output_dir, subject: str, errors=(), since=None, progress=print):
    """Write a participant's report at the end of its run; never raises (a report failure
    is printed, the run's exit code is the workflow's)."""
    t0 = time.time()
    try:
        path = build_participant_report(output_dir, subject, errors=errors, run_started=since)
    except Exception as exc:  # noqa: BLE001 - the report must not fail the run
        progress(
            f"sub-{str(subject).removeprefix('sub-')}: report FAILED: {type(exc).__name__}: {exc}"
        )
        return None
    size = report_size(path)
    progress(
        f"sub-{str(subject).removeprefix('sub-')}: report {path} "
        f"({size / 1e6:.1f} MB, {time.time() - t0:.0f} s)"
    )
    return path


def report_size(html_path) -> int:
    """Bytes of a report and of the figures it references."""
    html_path = Path(html_path)
    total = html_path.stat().st_size
    for src in set(re.findall(r'<img[^>]+src="([^"]+)"', html_path.read_text())):
        p = html_path.parent / src
        if p.is_file():
            total += p.stat().st_size
    return total


def run_reports_only(output_dir, labels=(), progress=print) -> int:
    """``--reports-only``: regenerate the reports of ``labels`` (default: every participant
    with derivatives or logs) from the derivatives on disk; nothing is recomputed.
    Returns the exit code (66 when there is nothing to report on)."""
    from pipeline.errors import InputMissingError

    out = Path(output_dir)
    if not out.is_dir():
        raise InputMissingError(
            f"{out}: output folder not found; --reports-only needs the "
            "derivatives of an earlier participant run"
        )
    found = participant_labels(out)
    labels = [str(lb).removeprefix("sub-") for lb in labels] or found
    missing = [lb for lb in labels if lb not in found]
    if missing:
        raise InputMissingError(
            f"{out}: no derivatives or logs for "
            + ", ".join(f"sub-{m}" for m in missing)
            + "; run the participant level first"
        )
    if not labels:
        raise InputMissingError(f"{out}: no sub-<label> folders: nothing to report on")
    failed = 0
    for label in labels:
        if report_after_run(out, label, progress=progress) is None:
            failed += 1
    return 1 if failed else 0
