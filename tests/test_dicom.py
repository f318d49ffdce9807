"""DICOM to inflamap's DCE and SPECT convention (``inflamap-dicom``), on synthetic series
written with pydicom: known frame times, injection times and pixel values; shuffled file
order; the documented errors with nothing written."""

from __future__ import annotations

import json
import random
import shutil

import nibabel as nb
import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")
if shutil.which("dcm2niix") is None:
    pytest.skip("dcm2niix is not installed (pip install dcm2niix)", allow_module_level=True)

from pydicom.dataset import Dataset, FileMetaDataset  # noqa: E402
from pydicom.sequence import Sequence  # noqa: E402
from pydicom.uid import (  # noqa: E402
    ExplicitVRLittleEndian,
    MRImageStorage,
    NuclearMedicineImageStorage,
    generate_uid,
)

from pipeline.cli import dicom_main  # noqa: E402

NX, NY, NZ, NT = 16, 12, 5, 8
T0 = 9 * 3600 + 30 * 60 + 0.5  # 09:30:00.5
STEP = 5.0


def _tm(seconds: float) -> str:
    hh, rest = divmod(seconds, 3600)
    mm, ss = divmod(rest, 60)
    return f"{int(hh):02d}{int(mm):02d}{ss:09.6f}"


def _base(sop_class, series, study, frame_ref, number):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    ds.PatientName, ds.PatientID, ds.Manufacturer = "Test^DRO", "01", "inflamap test"
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame_ref
    ds.SeriesNumber = number
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = "20261130"
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    return ds


def write_dce(folder, temporal_ids=True, bolus_time=T0 + 2 * STEP + 2.0, drop=None, seed=0):
    """A dynamic MR series: NT frames of NZ slices, one file per slice, in shuffled order;
    every voxel of frame t holds 100 + 50 t + slice index."""
    folder.mkdir(parents=True)
    study, series, ref = generate_uid(), generate_uid(), generate_uid()
    files = []
    for t in range(NT):
        for z in range(NZ):
            ds = _base(MRImageStorage, series, study, ref, 7)
            ds.Modality, ds.InstanceNumber = "MR", t * NZ + z + 1
            ds.AcquisitionTime = _tm(T0 + t * STEP + 0.01 * z)  # slices of a frame in turn
            if temporal_ids:
                ds.TemporalPositionIdentifier, ds.NumberOfTemporalPositions = t + 1, NT
            ds.ImagePositionPatient = [-30.0, -20.0, -10.0 + 3.0 * z]
            ds.PixelSpacing, ds.SliceThickness = [2.0, 2.0], 3.0
            ds.Rows, ds.Columns = NY, NX
            ds.FlipAngle, ds.RepetitionTime, ds.EchoTime = 15, 4.5, 1.2
            ds.ScanningSequence, ds.SequenceVariant, ds.MRAcquisitionType = "GR", "SP", "3D"
            ds.ContrastBolusAgent = "Gadobutrol"
            if bolus_time is not None:
                ds.ContrastBolusStartTime = _tm(bolus_time)
            ds.PixelData = np.full((NY, NX), 100 + 50 * t + z, np.uint16).tobytes()
            files.append(ds)
    random.Random(seed).shuffle(files)
    for i, ds in enumerate(files):
        if drop is not None and ds.InstanceNumber == drop:
            continue
        ds.save_as(folder / f"IM{i:04d}", enforce_file_format=True)
    return folder


def write_spect(folder, acquisition_s, injection_s=9 * 3600.0, value=500):
    """One reconstructed SPECT volume (NM multi-frame: one frame per slice)."""
    folder.mkdir(parents=True)
    ds = _base(NuclearMedicineImageStorage, generate_uid(), generate_uid(), generate_uid(), 3)
    ds.Modality, ds.InstanceNumber = "NM", 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "RECON TOMO", "EMISSION"]
    ds.AcquisitionTime = ds.SeriesTime = _tm(acquisition_s)
    ds.NumberOfFrames, ds.NumberOfSlices = 10, 10
    ds.FrameIncrementPointer = [(0x0054, 0x0080)]
    ds.SliceVector = list(range(1, 11))
    det = Dataset()
    det.ImagePositionPatient, det.ImageOrientationPatient = (
        [-30.0, -20.0, -10.0],
        [1, 0, 0, 0, 1, 0],
    )
    ds.DetectorInformationSequence = Sequence([det])
    ds.ImagePositionPatient = [-30.0, -20.0, -10.0]
    ds.PixelSpacing, ds.SliceThickness, ds.SpacingBetweenSlices = [4.0, 4.0], 4.0, 4.0
    ds.Rows, ds.Columns = NY, NX
    ds.ActualFrameDuration = 900000  # ms
    radio = Dataset()
    radio.RadiopharmaceuticalStartTime = _tm(injection_s)
    radio.RadionuclideTotalDose = 740e6
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator = "C-163A8", "SRT"
    code.CodeMeaning = "^99m^Technetium"
    radio.RadionuclideCodeSequence = Sequence([code])
    ds.RadiopharmaceuticalInformationSequence = Sequence([radio])
    ds.Units, ds.DecayCorrection = "CNTS", "NONE"
    ds.PixelData = np.full((10, NY, NX), value, np.uint16).tobytes()
    ds.save_as(folder / "NM0001", enforce_file_format=True)
    return folder


@pytest.fixture
def bids(tmp_path):
    root = tmp_path / "bids"
    root.mkdir()
    (root / "dataset_description.json").write_text('{"Name": "t", "BIDSVersion": "1.10.0"}')
    return root


def _run(capsys, *args):
    code = dicom_main([str(a) for a in args])
    err = capsys.readouterr().err.strip().splitlines()
    return code, (err[-1] if err else "")


def _files(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize("temporal_ids", [True, False], ids=["temporal-ids", "by-time"])
def test_dce_series_becomes_inflamaps_convention(tmp_path, bids, capsys, temporal_ids):
    src = write_dce(tmp_path / "dicom", temporal_ids=temporal_ids)
    code, err = _run(capsys, "dce", src, bids, "--subject", "01", "--session", "01",
                     "--agent", "gadobutrol")  # fmt:skip
    assert code == 0, err
    stem = bids / "sub-01/ses-01/anat/sub-01_ses-01_ce-gadobutrol_dce"
    meta = json.loads(stem.with_suffix(".json").read_text())
    np.testing.assert_allclose(meta["FrameTimesStart"], np.arange(NT) * STEP, atol=1e-6)
    assert meta["InjectionStart"] == pytest.approx(2 * STEP + 2.0 - 0.0, abs=1e-6)
    assert meta["FlipAngle"] == 15 and meta["RepetitionTimeExcitation"] == pytest.approx(0.0045)
    assert "ContrastBolusStartTime" in meta["InflamapConversion"]["InjectionStartSource"]
    data = np.asarray(nb.load(f"{stem}.nii.gz").dataobj)
    assert data.shape == (NX, NY, NZ, NT)
    # each volume is one frame, in time order (whatever the file order)
    np.testing.assert_allclose(data.mean(axis=(0, 1, 2)), 100 + 50 * np.arange(NT) + 2)
    assert "*_dce.nii.gz" in (bids / ".bidsignore").read_text().splitlines()
    # the sidecar is what the pipeline reads: its own parser accepts it
    from pipeline.metadata import dce_metadata

    parsed = dce_metadata(meta, f"{stem}.json")
    assert parsed.n_baseline == 3 and parsed.n_frames == NT


def test_dce_injection_from_the_command_line(tmp_path, bids, capsys):
    src = write_dce(tmp_path / "dicom", bolus_time=None)
    code, err = _run(capsys, "dce", src, bids, "--subject", "01", "--agent", "gadobutrol")
    assert code == 64 and "--injection-time" in err and "ContrastBolusStartTime" in err, err
    assert _files(bids) == ["dataset_description.json"]  # nothing written
    code, err = _run(capsys, "dce", src, bids, "--subject", "01", "--agent", "gadobutrol",
                     "--injection-frame", "4")  # fmt:skip
    assert code == 0, err
    meta = json.loads((bids / "sub-01/anat/sub-01_ce-gadobutrol_dce.json").read_text())
    assert meta["InjectionStart"] == pytest.approx(3 * STEP)
    # converting again would overwrite: refused, files untouched
    before = (bids / "sub-01/anat/sub-01_ce-gadobutrol_dce.json").read_bytes()
    code, err = _run(capsys, "dce", src, bids, "--subject", "01", "--agent", "gadobutrol",
                     "--injection-time", "09:30:12")  # fmt:skip
    assert code == 73 and "exists" in err, err
    assert (bids / "sub-01/anat/sub-01_ce-gadobutrol_dce.json").read_bytes() == before


@pytest.mark.parametrize(
    "case,code,words",
    [
        ("incomplete", 65, "different numbers of slices"),
        ("no-baseline", 65, "frame(s) start before InjectionStart"),
        ("two-series", 64, "2 DICOM series"),
        ("not-bids", 66, "dataset_description.json"),
        ("bad-label", 64, "letters and digits"),
    ],
)
def test_dce_refusals_are_one_line_and_write_nothing(tmp_path, bids, capsys, case, code, words):
    src = write_dce(tmp_path / "dicom", drop=7 if case == "incomplete" else None)
    args = ["dce", src, bids, "--subject", "01", "--agent", "gadobutrol"]
    if case == "no-baseline":
        args += ["--injection-frame", "2"]
    if case == "two-series":
        write_dce(src / "other", seed=1)
    if case == "not-bids":
        (bids / "dataset_description.json").unlink()
    if case == "bad-label":
        args[4] = "0-1"
    got, err = _run(capsys, *args)
    assert got == code and words in err, err
    assert len(err.splitlines()) == 1
    assert not (bids / "sub-01").exists()


def test_spect_pair_becomes_inflamaps_convention(tmp_path, bids, capsys):
    early = write_spect(tmp_path / "early", 9 * 3600 + 20 * 60)
    late = write_spect(tmp_path / "late", 12 * 3600, value=300)
    code, err = _run(capsys, "spect", early, late, bids, "--subject", "01", "--session", "02",
                     "--tracer", "99mTcAlbumin")  # fmt:skip
    assert code == 0, err
    folder = bids / "sub-01/ses-02/spect"
    metas = {}
    for acq in ("early", "late"):
        stem = folder / f"sub-01_ses-02_trc-99mTcAlbumin_acq-{acq}_spect"
        metas[acq] = json.loads(stem.with_suffix(".json").read_text())
        img = np.asarray(nb.load(f"{stem}.nii.gz").dataobj)
        assert img.ndim == 3 and img.mean() == (500 if acq == "early" else 300)
    assert metas["early"]["FrameTimesStart"] == [1200.0]
    assert metas["late"]["FrameTimesStart"] == [10800.0]
    for m in metas.values():
        assert m["InjectionStart"] == 0 and m["FrameDuration"] == [900.0]
        assert m["TracerRadionuclide"] == "Tc99m" and m["Units"] == "counts"
        assert m["ImageDecayCorrected"] is False
    assert "**/spect" in (bids / ".bidsignore").read_text().splitlines()
    from pipeline.metadata import spect_metadata

    early_meta = spect_metadata(metas["early"], "early.json")
    assert early_meta.start_s == 1200.0


def test_spect_folders_swapped_are_refused(tmp_path, bids, capsys):
    early = write_spect(tmp_path / "early", 9 * 3600 + 20 * 60)
    late = write_spect(tmp_path / "late", 12 * 3600)
    code, err = _run(capsys, "spect", late, early, bids, "--subject", "01",
                     "--tracer", "99mTcAlbumin")  # fmt:skip
    assert code == 65 and "swapped" in err, err
    assert not (bids / "sub-01").exists()
