"""What both demo generators share: acquisition settings, head motion, coil bias, noise,
file writing and the dataset's own files (participants, sessions, description)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from .. import __version__
from ..utils import atomic_write_nifti, atomic_write_text

GAD_AGENT = "gadobutrol"
IRON_AGENT = "ferumoxytol"
R1_GAD = 5.0  # 1/(mM s), gadobutrol at 3 T
HEMATOCRIT = 0.45
T1W = dict(tr=0.008, fa=12.0, te=0.003, snr=100.0)  # SNR of WM at 3 mm voxels
ENHANCEMENT_FLOOR = 0.1  # percent enhancement floor: fraction of the brain median of pre
MEGRE = dict(tr=0.040, fa=20.0, te=(0.003, 0.008, 0.013, 0.018, 0.023, 0.028), snr=60.0)
VFA = dict(tr=0.0054, fa=(2.0, 5.0, 10.0, 15.0), snr=80.0)
DCE = dict(tr=0.004, fa=15.0, dt=15.0, n=24, injection=30.0, snr=50.0)
POST_GAD_TIME_S = 480.0
PET_FRAMES = dict(
    start=[0, 300, 600, 1200, 1800, 2700, 3600, 4200, 4800],
    duration=[300, 300, 600, 600, 900, 900, 600, 600, 600],
)
PET_FWHM_MM = 6.0
# 99mTc-albumin SPECT: early and late acquisitions (s after injection), counts, not
# decay-corrected; blood-pool albumin falls to LATE_BLOOD of its early level
SPECT = dict(
    early=(1200.0, 900.0),
    late=(10800.0, 1200.0),
    fwhm=12.0,
    tracer="99mTcAlbumin",
    half_life=21624.12,
    late_blood=0.85,
    counts=2000.0,
)


def random_rigid(rng, max_mm=5.0, max_deg=5.0):
    """A 4x4 rigid transform with |translation| <= max_mm and rotation angle <= max_deg."""
    from scipy.spatial.transform import Rotation

    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = np.deg2rad(rng.uniform(0.3, 1.0) * max_deg)
    shift = rng.normal(size=3)
    shift *= rng.uniform(0.3, 1.0) * max_mm / np.linalg.norm(shift)
    m = np.eye(4)
    m[:3, :3] = Rotation.from_rotvec(axis * angle).as_matrix()
    m[:3, 3] = shift
    return m


def bias_field(rng, shape, affine, amplitude=0.2):
    """Smooth multiplicative receive-field inhomogeneity (scanner-fixed), mean ~1."""
    ijk = np.indices(shape, dtype=np.float32).reshape(3, -1)
    xyz = (affine[:3, :3] @ ijk + affine[:3, 3:4]) / 100.0
    c = rng.normal(scale=amplitude / 2, size=9)
    x, y, z = xyz
    field = (
        c[0] * x
        + c[1] * y
        + c[2] * z
        + c[3] * x * y
        + c[4] * y * z
        + c[5] * x * z
        + c[6] * x**2
        + c[7] * y**2
        + c[8] * z**2
    )
    return np.exp(field - field.mean()).reshape(shape)


def rician(rng, signal, sigma):
    return np.sqrt(
        (signal + rng.normal(scale=sigma, size=signal.shape)) ** 2
        + rng.normal(scale=sigma, size=signal.shape) ** 2
    )


def save_image(img_data, affine, path, dtype=np.int16, meta=None):
    import nibabel as nb

    data = np.asarray(img_data)
    # integer images (labels, masks) are stored as they are; others are scaled into dtype
    data = (
        data.astype(dtype)
        if np.issubdtype(data.dtype, np.integer) or data.dtype == bool
        else data.astype(np.float32)
    )
    img = nb.Nifti1Image(data, affine)
    img.header.set_xyzt_units("mm", "sec")
    img.header.set_qform(affine, 1)
    img.header.set_sform(affine, 1)
    img.set_data_dtype(dtype)
    atomic_write_nifti(img, path)
    if meta is not None:
        atomic_write_text(json.dumps(meta, indent=2), str(path).replace(".nii.gz", ".json"))


def demo_folders(out_dir, participants: int, resolution: float) -> tuple[Path, Path]:
    """Check a demo request; ``(bids, groundtruth)`` folders of ``out_dir``."""
    if participants < 2:
        raise ValueError("the demo needs at least 2 participants (one control, one patient)")
    if not 1.0 <= resolution <= 6.0:
        raise ValueError("--resolution must be between 1 and 6 mm")
    bids = Path(out_dir) / "bids"
    if bids.exists() and any(bids.iterdir()):
        raise FileExistsError(f"{bids} exists and is not empty; choose a new demo folder")
    return bids, Path(out_dir) / "groundtruth"


def participant_row(rng, pid: str, group: str) -> dict:
    """A participants.tsv row drawn at random (MA patients get a ``headache_side``)."""
    side = str(rng.choice(["left", "right"])) if group == "MA" else "none"
    weight = float(np.round(rng.uniform(55, 95), 1))
    return {
        "participant_id": pid,
        "group": group,
        "age": int(rng.integers(22, 55)),
        "sex": str(rng.choice(["F", "M"], p=[0.7, 0.3])),
        "attacks_per_month": int(rng.integers(2, 12)) if group != "HC" else 0,
        "body_weight": weight,
        "tspo_genotype": str(rng.choice(["HAB", "MAB"])),
        "headache_side": side,
    }


def write_dataset_files(bids: Path, participants: pd.DataFrame, seed: int):
    desc = {
        "Name": "inflamap demo: digital reference object of migraine neuroinflammation imaging",
        "BIDSVersion": "1.10.0",
        "DatasetType": "raw",
        "License": "CC0",
        "Authors": ["inflamap developers"],
        "GeneratedBy": [
            {
                "Name": "inflamap",
                "Version": __version__,
                "Description": f"inflamap demo --seed {seed}",
            }
        ],
    }
    atomic_write_text(json.dumps(desc, indent=2), bids / "dataset_description.json")
    participants.to_csv(bids / "participants.tsv", sep="\t", index=False)
    pjson = {
        "group": {
            "Description": "diagnostic group",
            "Levels": {
                "HC": "healthy control",
                "MO": "migraine without aura",
                "MA": "migraine with aura",
                "HM": "hemiplegic migraine",
            },
        },
        "age": {"Description": "age at first session", "Units": "year"},
        "sex": {"Description": "sex", "Levels": {"F": "female", "M": "male"}},
        "attacks_per_month": {"Description": "migraine attacks per month"},
        "body_weight": {"Description": "body weight", "Units": "kg"},
        "tspo_genotype": {
            "Description": "rs6971 TSPO binding affinity",
            "Levels": {"HAB": "high", "MAB": "mixed", "LAB": "low"},
        },
    }
    atomic_write_text(json.dumps(pjson, indent=2), bids / "participants.json")
    sjson = {
        "phase": {
            "Description": "migraine phase at scan",
            "Levels": {
                "ictal": "during an attack",
                "interictal": "attack-free",
                "provoked": "attack provoked pharmacologically",
                "n/a": "control",
            },
        },
        "headache_side": {
            "Description": "side of the headache (of the usual attacks when interictal)",
            "Levels": {"left": "left", "right": "right", "bilateral": "bilateral", "none": "none"},
        },
        "hours_since_onset": {"Description": "hours since attack onset", "Units": "h"},
        "treatment": {"Description": "acute treatment taken before the scan"},
    }
    for p in participants["participant_id"]:
        atomic_write_text(json.dumps(sjson, indent=2), bids / p / f"{p}_sessions.json")
    readme = (
        "# inflamap demo dataset\n\nSynthetic digital reference object written by "
        "`inflamap demo`. Ground truth is beside this folder in `../groundtruth/`.\n"
    )
    atomic_write_text(readme, bids / "README.md")
    # BIDS has no DCE or SPECT datatype yet: inflamap's conventions (README) are ignored by
    # the validator
    atomic_write_text("*_dce.nii.gz\n*_dce.json\n**/spect\n", bids / ".bidsignore")


# ----------------------------------------------------------------------------- sidecars
def t1w_meta(post: bool) -> dict:
    meta = {
        "MagneticFieldStrength": 3,
        "Manufacturer": "inflamap DRO",
        "RepetitionTime": T1W["tr"],
        "EchoTime": T1W["te"],
        "FlipAngle": T1W["fa"],
    }
    if post:
        meta.update(ContrastBolusIngredient="GADOLINIUM", TimeSinceInjection=POST_GAD_TIME_S)
    return meta


def megre_meta(te: float) -> dict:
    return {
        "MagneticFieldStrength": 3,
        "Manufacturer": "inflamap DRO",
        "EchoTime": te,
        "RepetitionTime": MEGRE["tr"],
        "FlipAngle": MEGRE["fa"],
        "MRAcquisitionType": "3D",
    }


def vfa_meta(fa: float) -> dict:
    return {
        "MagneticFieldStrength": 3,
        "Manufacturer": "inflamap DRO",
        "FlipAngle": fa,
        "RepetitionTimeExcitation": VFA["tr"],
        "PulseSequenceType": "SPGR",
        "MTState": False,
        "SpoilingState": True,
    }


def dce_meta(frame_times) -> dict:
    return {
        "MagneticFieldStrength": 3,
        "Manufacturer": "inflamap DRO",
        "RepetitionTimeExcitation": DCE["tr"],
        "FlipAngle": DCE["fa"],
        "ContrastBolusIngredient": "GADOLINIUM",
        "FrameTimesStart": [float(t) for t in frame_times],
        "FrameDuration": [DCE["dt"]] * DCE["n"],
        "InjectionStart": DCE["injection"],
    }


def pet_meta(dose_mbq: float) -> dict:
    return {
        "Manufacturer": "inflamap DRO",
        "ManufacturersModelName": "synthetic",
        "Units": "Bq/mL",
        "BodyPart": "Brain",
        "TracerName": "PBR28",
        "TracerRadionuclide": "C11",
        "InjectedRadioactivity": dose_mbq,
        "InjectedRadioactivityUnits": "MBq",
        "InjectedMass": 2.0,
        "InjectedMassUnits": "ug",
        "SpecificRadioactivity": dose_mbq / 2.0,
        "SpecificRadioactivityUnits": "MBq/ug",
        "ModeOfAdministration": "bolus",
        "TimeZero": "10:00:00",
        "ScanStart": 0,
        "InjectionStart": 0,
        "FrameTimesStart": PET_FRAMES["start"],
        "FrameDuration": PET_FRAMES["duration"],
        "AcquisitionMode": "list mode",
        "ImageDecayCorrected": True,
        "ImageDecayCorrectionTime": 0,
        "ReconMethodName": "3D-OSEM",
        "ReconMethodParameterLabels": ["iterations", "subsets"],
        "ReconMethodParameterUnits": ["none", "none"],
        "ReconMethodParameterValues": [4, 16],
        "ReconFilterType": "Gaussian",
        "ReconFilterSize": PET_FWHM_MM,
        "AttenuationCorrection": "CT-based",
    }


def spect_meta(acq: str) -> dict:
    t0, dur = SPECT[acq]
    return {
        "Manufacturer": "inflamap DRO",
        "Modality": "NM",
        "TracerName": "99mTc-albumin",
        "TracerRadionuclide": "Tc99m",
        "InjectedRadioactivity": 740.0,
        "InjectedRadioactivityUnits": "MBq",
        "InjectionStart": 0,
        "TimeZero": "09:00:00",
        "FrameTimesStart": [t0],
        "FrameDuration": [dur],
        "Units": "counts",
        "ImageDecayCorrected": False,
        "ReconFilterSize": SPECT["fwhm"],
    }


def spect_counts(rng, concentration, acq: str):
    """Counts of an acquisition (not decay-corrected, Poisson-like noise)."""
    from ..models.pet import decay_factor

    t0, dur = SPECT[acq]
    mid = t0 + dur / 2
    counts = concentration * SPECT["counts"] * decay_factor(mid, SPECT["half_life"]) * dur / 900.0
    return np.clip(counts + rng.normal(size=counts.shape) * np.sqrt(counts + 1.0), 0, None)
