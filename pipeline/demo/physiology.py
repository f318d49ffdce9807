"""The reference demo's physiology: per-tissue parameters (PD, T1, R2*, kinetics, ΔR2*,
SUV, albumin), their spread across participants, the planted effects and the regions the
truth is reported for, and the signal of each code in each acquisition."""

from __future__ import annotations

import numpy as np

from ..models.pharmacokinetics import extended_tofts_concentration, parker_aif
from ..models.signal import spgr_signal
from .anatomy import (
    LOBES,
    TISSUE,
    TISSUE_NAMES,
)
from .common import (
    HEMATOCRIT,
    PET_FRAMES,
    POST_GAD_TIME_S,
    R1_GAD,
    SPECT,
    T1W,
)

PARAM_NAMES = ("pd", "t1", "r2star", "vp", "ve", "ktrans", "uspio_dr2star", "suv", "albumin")
_SKULL = (0.08, 0.50, 200.0, 0.005, 0.05, 0.005, 0.0, 0.30, 0.0)
_BLOOD = (0.85, 1.90, 30.0, 0.550, 0.00, 0.0, 100.0, -1.0, 0.0)  # SUV -1: the blood curve
_CSF = (1.00, 4.00, 4.0, 0.000, 0.00, 0.0, 0.0, 0.10, 0.0)
#: tissue parameters at 3 T: PD (relative), T1 (s), R2* (1/s), vp, ve (fractions), Ktrans
#: (1/min), ferumoxytol ΔR2* at ~24 h (1/s), [11C]PBR28 SUV at 60-90 min, extravasated
#: albumin at the late SPECT (fraction of the voxel, plasma units). Choroid plexus and
#: pituitary have no blood-brain barrier (fenestrated capillaries): they enhance.
TISSUE_PARAMS = {
    "air": (0.0, 1.0, 100.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
    "gm": (0.80, 1.40, 17.0, 0.040, 0.20, 0.0005, 2.5, 1.20, 0.0),
    "wm": (0.70, 0.85, 21.0, 0.020, 0.20, 0.0003, 1.2, 0.90, 0.0),
    "csf": _CSF,
    "csf_ext": _CSF,
    "dura": (0.60, 1.10, 25.0, 0.050, 0.30, 0.10, 5.0, 0.80, 0.02),
    "inner_table": _SKULL,
    "marrow": (0.90, 0.37, 60.0, 0.030, 0.20, 0.05, 8.0, 1.50, 0.03),
    "outer_table": _SKULL,
    "scalp": (0.80, 0.60, 40.0, 0.030, 0.20, 0.08, 3.0, 0.50, 0.02),
    "sinus": _BLOOD,
    "vein": _BLOOD,
    "choroid_plexus": (0.85, 1.60, 20.0, 0.200, 0.30, 0.30, 20.0, 1.00, 0.05),
    "pituitary": (0.75, 1.00, 20.0, 0.100, 0.30, 0.40, 6.0, 1.00, 0.05),
    "cavernous_sinus": _BLOOD,
}
#: between-participant SD (log scale) of every tissue parameter but PD and blood's
SPREAD = 0.05
BLOOD = ("sinus", "vein", "cavernous_sinus")

#: planted effects (MA patients); regions of the anatomy (:mod:`.anatomy`): an AAL lobe or
#: the ACA territory, on the headache side or both sides
EFFECTS = [
    {
        "id": "gad_meningeal_occipital",
        "modality": "gadolinium",
        "phase": "ictal",
        "region": "occipital",
        "side": "headache",
        "tissues": ["dura", "csf_ext"],
        "parameter": ["ktrans", "ve"],
        "size": [0.01, 0.3],
        "change": "+",
        "expect": "enhancement of the dura and subarachnoid space over the occipital lobe on "
        "the headache side",
    },
    {
        "id": "dce_ktrans_occipital",
        "modality": "dce",
        "phase": "ictal",
        "region": "occipital",
        "side": "headache",
        "tissues": ["gm"],
        "parameter": ["ktrans"],
        "size": [0.01],
        "change": "+",
        "expect": "Ktrans +0.01/min in occipital cortex on the headache side",
    },
    {
        "id": "uspio_dr2star_aca",
        "modality": "uspio",
        "phase": "ictal",
        "region": "aca",
        "side": "headache",
        "tissues": ["gm", "wm"],
        "parameter": ["uspio_dr2star"],
        "size": [3.0],
        "change": "+",
        "expect": "ΔR2* +3/s in the ACA territory (AAL medial frontal/parietal) on the "
        "headache side",
    },
    {
        "id": "spect_late_meningeal_occipital",
        "modality": "spect",
        "phase": "ictal",
        "region": "occipital",
        "side": "headache",
        "tissues": ["dura"],
        "parameter": ["albumin"],
        "size": [0.08],
        "change": "+",
        "expect": "late albumin extravasation in the occipital dura on the headache side",
    },
    {
        "id": "pet_suv_occipital",
        "modality": "pet",
        "phase": "any",
        "region": "occipital",
        "side": "both",
        "tissues": ["gm", "dura", "marrow"],
        "parameter": ["suv"],
        "size": [1.15],
        "change": "x",
        "expect": "SUV x1.15 in occipital cortex, dura and diploic marrow",
    },
]
N_EFFECT_BITS = len(EFFECTS)
CODE_STRIDE = 16  # code = tissue + CODE_STRIDE * effect bits

#: truth of inflamap's regional names: roi -> (tissues, region kind, lobe/territory)
_PARENCHYMA = ("gm", "wm")
TRUTH_ROIS = {
    **{lobe: (_PARENCHYMA, "lobe", lobe) for lobe in LOBES},
    **{f"meningeal_{lobe}": (("dura", "csf_ext"), "lobe", lobe) for lobe in LOBES},
    **{
        f"calvarial_{lobe}": (("inner_table", "marrow", "outer_table"), "lobe", lobe)
        for lobe in LOBES
    },
    "aca": (_PARENCHYMA, "aca", None),
    "superior_sagittal_sinus": (("sinus",), "any", None),
    "transverse_sinus": (("sinus",), "any", None),
    "straight_sinus": (("sinus",), "any", None),
    "sigmoid_sinus": (("sinus",), "any", None),
    "cavernous_sinus_pituitary": (("pituitary", "cavernous_sinus"), "any", None),
    "intracerebral_csf": (("csf", "choroid_plexus"), "any", None),
}
_BILATERAL = {"superior_sagittal_sinus", "straight_sinus", "cavernous_sinus_pituitary"}
_BILATERAL |= {"intracerebral_csf"}


# ----------------------------------------------------------------------------- tissue values
class Physiology:
    """Parameters of every code for one participant and session (planted effects applied)."""

    def __init__(self, spread: dict, active: set):
        self.spread = spread
        self.active = active

    def param(self, codes, name):
        codes = np.asarray(codes, int)
        tissue = codes % CODE_STRIDE
        bits = codes // CODE_STRIDE
        j = PARAM_NAMES.index(name)
        val = np.array([TISSUE_PARAMS[TISSUE_NAMES[t]][j] for t in tissue], float)
        val = val * np.array([self.spread[TISSUE_NAMES[t]][j] for t in tissue])
        for b, eff in enumerate(EFFECTS):
            if eff["id"] not in self.active or name not in eff["parameter"]:
                continue
            size = eff["size"][eff["parameter"].index(name)]
            on = (bits >> b) & 1 == 1
            val = np.where(on, val + size if eff["change"] == "+" else val * size, val)
        return val


def participant_spread(rng) -> dict:
    out = {}
    for t in TISSUE_NAMES:
        f = np.exp(rng.normal(scale=SPREAD, size=len(PARAM_NAMES)))
        f[0] = 1.0  # PD: the scale of the images
        if t in BLOOD or t == "air":
            f[:] = 1.0
        out[t] = f
    return out


def gad_conc(phys, codes, t_s, cp):
    """Tissue gadolinium concentration (mM), (n_codes, n_times)."""
    kt = phys.param(codes, "ktrans")
    ve = phys.param(codes, "ve")
    vp = phys.param(codes, "vp")
    out = np.zeros((len(codes), len(t_s)))
    for i in range(len(codes)):
        if kt[i] > 0 or vp[i] > 0:
            out[i] = extended_tofts_concentration(cp, t_s, kt[i], max(ve[i], 1e-6), vp[i])
    return out


def t1w_values(phys, codes, post: bool):
    r1 = 1.0 / phys.param(codes, "t1")
    if post:
        t = np.array([0.0, 60.0, 120.0, 240.0, POST_GAD_TIME_S])
        r1 = r1 + R1_GAD * gad_conc(phys, codes, t, parker_aif(t, 0.0, HEMATOCRIT))[:, -1]
    wm = spgr_signal(0.7, 1 / 0.85, T1W["fa"], T1W["tr"])
    return spgr_signal(phys.param(codes, "pd"), r1, T1W["fa"], T1W["tr"]) / wm * 1000.0


def pet_curves():
    start = np.asarray(PET_FRAMES["start"], float)
    dur = np.asarray(PET_FRAMES["duration"], float)
    mid = (start + dur / 2) / 60.0
    uptake = 1 - np.exp(-mid / 12.0)
    blood = 3.0 * np.exp(-mid / 2.0) + 0.8
    window = (start >= 3600) & (start < 5400)
    return uptake, blood, window, dur


def pet_values(phys, codes):
    """SUV per code and frame, (n_codes, n_frames)."""
    uptake, blood, _, _ = pet_curves()
    suv = phys.param(codes, "suv")
    out = suv[:, None] * uptake[None]
    is_blood = suv < 0
    out[is_blood] = blood[None]
    return out


def spect_values(phys, codes):
    """Early and late albumin concentration per code (plasma units)."""
    tissue = np.asarray(codes) % CODE_STRIDE
    vp = np.where(np.isin(tissue, [TISSUE[b] for b in BLOOD]), 1.0, phys.param(codes, "vp"))
    early = vp
    late = vp * SPECT["late_blood"] + phys.param(codes, "albumin")
    return early, late
