"""The anatomical section of a participant report: the T1w, brain mask and segmentation,
the registration to the template (overlays, similarity, QC), atlas and ROI outlines."""

from __future__ import annotations

from pipeline import log
from pipeline.utils import same_grid

from .classify import (
    QC_NAMES,
    _fmt,
    new_section,
)
from .figures import (
    _anat_figure,
    _load,
    _read_table,
    _template_mask,
    _template_t1w,
    atlas_colours,
    band_outlines,
    legend_figure,
    nmi,
)
from .index import (
    SessionFiles,
)

LOG = log.get("report")


class AnatSection:
    """Mixin of the report builder: the anatomy of a session."""

    # anatomy ------------------------------------------------------------------------
    def anat_section(self, ses: SessionFiles):
        import nibabel as nb
        import numpy as np
        from scipy import ndimage

        sec = new_section("anat")
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
            rois, rois_cmap, legend = None, None, []
            if atlas is not None:
                lut_path = atlas.path.with_name(atlas.stem + ".tsv")
                lut = _read_table(lut_path) if lut_path.is_file() else None
                coloured = self._try("atlas colours", atlas_colours, nb.load(str(atlas.path)), lut)
                if coloured:
                    rois, rois_cmap, legend = coloured
            src = self._try(
                "brain mask figure",
                _anat_figure,
                self.figs,
                t1,
                f"{t1w.stem}_desc-brainmask.png",
                "T1w (native) with the brain mask (red)" + (" and atlas labels" if atlas else ""),
                contours=m,
                rois=rois,
                rois_cmap=rois_cmap,
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
            if src and legend:  # the colour key of the atlas overlay
                key = self._try(
                    "atlas legend",
                    legend_figure,
                    self.figs,
                    legend,
                    f"{atlas.stem}_desc-legend.svg",
                    f"{atlas.get('atlas')} regions",
                )
                if key:
                    sec["figures"].append(
                        {
                            "src": key,
                            "kind": "registration",
                            "caption": f"Colour key of the {atlas.get('atlas')} atlas overlay",
                            "file": atlas.name,
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
                flick = self._try(
                    "before/after view",
                    self._before_after,
                    _load(tt1),
                    timg,
                    _load(tmask),
                    f"{tpl.stem}_desc-flicker.svg",
                    (f"{space} template", "participant T1w"),
                )
                if flick:
                    sec["figures"].append(
                        {
                            "src": flick,
                            "kind": "registration",
                            "flicker": True,
                            "caption": f"Registration to {space}: the template, and the "
                            "participant's T1w fading in while the pointer is over the image",
                            "file": tpl.name,
                        }
                    )
                self._similarity(
                    sec, timg, _load(tt1), _load(tmask), f"T1w ↔ {space} template", tpl.name
                )
        return sec

    def _before_after(self, fixed, moving, mask, name, labels, cuts=4):
        from nilearn.image import resample_to_img

        if not same_grid(fixed, moving):
            fixed = resample_to_img(
                fixed, moving, interpolation="continuous", force_resample=True, copy_header=True
            )
        if not same_grid(mask, moving):
            mask = resample_to_img(
                mask, moving, interpolation="nearest", force_resample=True, copy_header=True
            )
        return self.figs.save_before_after(fixed, moving, mask, name, labels, cuts=cuts)

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
