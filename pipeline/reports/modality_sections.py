"""The modality sections of a participant report: per gadolinium, DCE, USPIO, PET and
SPECT series, the registration check, the quantitative maps, regional charts, findings and
QC tables."""

from __future__ import annotations

from pipeline import log
from pipeline.utils import same_grid

from .classify import (
    _drawn,
    _fmt,
    _map_sort_key,
    _map_title,
    _modality,
    _section_label,
    _sidecar_qc,
    _units,
    _xfm_for,
    new_section,
)
from .figures import (
    _anat_figure,
    _apply_rigid,
    _load,
    _map_figure,
    _read_table,
    _region_chart,
    _vif_chart,
    mask_to_head,
)
from .index import (
    NUMERIC_TABLE_COLUMNS,
    ORDER,
    REFERENCE_ONLY,
    REGISTRATION_REFERENCE,
    TABLE_MODALITY,
    Deriv,
    SessionFiles,
)

LOG = log.get("report")


class ModalitySections:
    """Mixin of the report builder: the modalities of a session."""

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
            sec = new_section(mod, agent)
            if mod == "gadolinium":
                self._gadolinium_registration(sec, ses, agent, t1w, mask)
            elif mod in REGISTRATION_REFERENCE and t1w is not None:
                self._modality_registration(sec, ses, sessions, mod, files, mask)
            if mod == "uspio" and mask is not None:
                self._uspio_registration(sec, files, agent, mask)
            for f in drawn:
                self._map(sec, f, mod, ses, sessions)
            # listed, not drawn: template copies of native-only maps, fit residuals (in the QC
            # table), the post-infusion R2* (its ΔR2* is drawn); information, not a warning
            sec["other_files"] = [f.name for f in undrawn]
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
        m = _load(mask.path) if mask is not None else None
        src = self._try(
            "post-on-pre figure",
            _anat_figure,
            self.figs,
            pre_img,
            f"{post.stem}_desc-postonpre.png",
            f"pre-contrast T1w with post-contrast ({agent}) edges",
            edges=post_img,
            cut_mask=m,
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
        if m is not None:  # before/after: the pre-contrast T1w, the post fading in
            self._flicker(
                sec, pre_img, post_img, m, post, ("pre-contrast T1w", f"post-contrast ({agent})"),
                f"Registration of the post-contrast ({agent}) T1w to the pre-contrast T1w: the "
                "pre, and the post fading in while the pointer is over the image",
            )  # fmt:skip
        self._similarity(sec, pre_img, post_img, m, "post ↔ pre T1w", post.name)

    def _uspio_registration(self, sec, files, agent, mask):
        """Before/after view of the post-ferumoxytol series registered to the pre one: their
        R2* maps on the pre grid (the anatomy must not move; vessels brighten)."""
        native = [f for f in files if f.suffix == "R2starmap" and f.get("space") is None]
        pre = next((f for f in native if f.get("ce") is None), None)
        post = next((f for f in native if f.get("ce") is not None), None)
        if pre is None or post is None:
            return
        import numpy as np

        def clipped(path):  # R2* of the post series is large in vessels: clip for display
            img = _load(path)
            data = np.asarray(img.dataobj, dtype=np.float32)
            finite = data[np.isfinite(data)]
            hi = float(np.percentile(finite, 98)) if finite.size else 1.0
            return type(img)(np.clip(np.nan_to_num(data), 0, hi), img.affine)

        self._flicker(
            sec, clipped(pre.path), clipped(post.path), _load(mask.path), post,
            ("R2* pre-ferumoxytol", f"R2* post ({agent or post.get('ce')}), registered"),
            "Registration of the post-ferumoxytol series to the pre-ferumoxytol series: the "
            "pre R2* map, and the post R2* map on the pre grid fading in while the pointer is "
            "over the image (the anatomy must not move; vessels brighten)",
        )  # fmt: skip

    def _flicker(self, sec, fixed, moving, mask, source, labels, caption, cuts=4):
        """Add the before/after view of a registration (fixed image, moving one on hover)."""
        src = self._try(
            "before/after view",
            self._before_after,
            fixed,
            moving,
            mask,
            f"{source.stem}_desc-flicker.svg",
            labels,
            cuts=cuts,
        )
        if src:
            sec["figures"].append(
                {
                    "src": src,
                    "kind": "registration",
                    "flicker": True,
                    "caption": caption,
                    "file": source.name,
                }
            )

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
        if m is not None:  # fMRIPrep's before/after view: the T1w, the modality fading in
            self._flicker(
                sec, t1, moved, m, ref,
                ("T1w", ref.suffix if ref.suffix == mod else f"{ref.suffix} ({mod})"),
                f"Registration of the {ref.suffix} to the T1w: the T1w, and the {ref.suffix} "
                "fading in while the pointer is over the image",
            )  # fmt:skip
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
        img = mask_to_head(img, cut_mask)  # no background noise around the head
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
