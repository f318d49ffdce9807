"""Checking one NIfTI image before anything loads it: present, readable, really gzip, a
NIfTI-1/2 header with plausible dimensions (refused from the header alone, before memory is
allocated), a supported data type, plausible voxel sizes, an orthonormal orientation, then
one streaming pass over the data (the gzip CRC is checked) that refuses empty images and
counts non-finite voxels. Used by the preflight (:mod:`pipeline.preflight`)."""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DataError, InputMissingError

#: largest plausible number of voxels along one spatial axis
MAX_AXIS = 2048
#: largest plausible number of voxels of one 3-D volume
MAX_VOXELS = 1_000_000_000
#: largest plausible number of volumes (frames, echoes) in one file
MAX_VOLUMES = 100_000
#: plausible voxel sizes (mm); outside: pixdim or xyzt_units are wrong
VOXEL_MM = (0.01, 100.0)
#: largest deviation of the orientation's direction cosines from orthonormal (ITK/ANTs
#: refuse, or crash on, files beyond ~1e-4)
MAX_SHEAR = 5e-5
#: extensions between the header and the data larger than this are taken as a corrupt header
MAX_VOX_OFFSET = 256 * 2**20
_CHUNK = 8 * 2**20


@dataclass(frozen=True)
class ImageInfo:
    """What the preflight learned about one image."""

    path: str
    shape: tuple
    zooms: tuple
    affine: np.ndarray
    dtype: str
    n_nonfinite: int = 0


def _shape_text(shape) -> str:
    return "×".join(str(int(s)) for s in shape)


def _open_stream(path: Path, gz: bool):
    return gzip.open(path, "rb") if gz else open(path, "rb")


def _read_head(path: Path, gz: bool, n: int = 544) -> bytes:
    """The first ``n`` bytes of the (decompressed) file; DataError for a broken stream."""
    try:
        with _open_stream(path, gz) as fh:
            return fh.read(n)
    except EOFError:
        raise DataError(
            f"{path}: the gzip stream ends inside the NIfTI header (truncated "
            "file); copy it again from the source"
        ) from None
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise DataError(
            f"{path}: corrupt gzip data ({exc}); copy it again from the source"
        ) from None


def _check_file(path: Path) -> None:
    """Present, a regular file, readable, not empty (errors naming the fix)."""
    if not path.exists():
        if os.path.islink(path):
            target = os.readlink(path)
            raise InputMissingError(
                f"{path}: broken symbolic link (to {target}); a DataLad/git-annex file whose "
                "content is not here? fetch it (datalad get / git annex get) or remove it"
            )
        raise InputMissingError(f"{path}: file not found; check the path")
    if not path.is_file():
        raise DataError(f"{path}: not a regular file; remove it or give the image itself")
    try:
        with open(path, "rb") as fh:
            first = fh.read(2)
    except PermissionError:
        raise InputMissingError(
            f"{path}: cannot be read (permission denied); make it readable "
            "by the user running inflamap (e.g. chmod a+r)"
        ) from None
    except OSError as exc:
        raise InputMissingError(
            f"{path}: cannot be read ({exc.strerror}); check the file "
            "system or copy the file again"
        ) from None
    if not first:
        raise DataError(f"{path}: empty file (0 bytes); export or copy it again")


def _parse_header(path: Path, head: bytes):
    """The nibabel header of the NIfTI-1/2 bytes ``head``; DataError if it is none."""
    import nibabel as nb

    if len(head) < 348:
        raise DataError(
            f"{path}: only {len(head)} bytes, shorter than a NIfTI header; not a "
            "NIfTI image (or truncated): export or copy it again"
        )
    size_le, size_be = struct.unpack("<i", head[:4])[0], struct.unpack(">i", head[:4])[0]
    if 348 in (size_le, size_be) and head[344:348] in (b"n+1\x00", b"ni1\x00"):
        if head[344:348] == b"ni1\x00":
            raise DataError(
                f"{path}: the header of a .hdr/.img pair, not a single-file NIfTI; "
                "save it as one .nii.gz (e.g. nibabel.save(img, 'x.nii.gz'))"
            )
        klass, size = nb.Nifti1Header, 348
    elif 540 in (size_le, size_be) and head[4:8] == b"n+2\x00":
        if len(head) < 540:
            raise DataError(
                f"{path}: the NIfTI-2 header is cut short (truncated file); copy "
                "it again from the source"
            )
        # antspyx's ITK has no NIfTI-2 reader: its tools refuse the file or crash on it
        raise DataError(
            f"{path}: a NIfTI-2 image; ANTs (antspyx) cannot read NIfTI-2: save it as NIfTI-1 "
            "(nibabel: nb.Nifti1Image(np.asanyarray(img.dataobj), img.affine, "
            "img.header).to_filename(...); dimensions must fit NIfTI-1)"
        )
    elif 348 in (size_le, size_be):
        raise DataError(
            f"{path}: an ANALYZE 7.5 header without the NIfTI magic; convert it "
            "to NIfTI (e.g. nibabel or dcm2niix) so that its orientation is known"
        )
    else:
        raise DataError(
            f"{path}: not a NIfTI image (no NIfTI-1/2 header; starts with "
            f"{head[:8]!r}); convert it (e.g. dcm2niix) or remove it"
        )
    try:
        hdr = klass(binaryblock=head[:size], check=False)
    except Exception as exc:  # noqa: BLE001 - nibabel raises several types
        raise DataError(f"{path}: unreadable NIfTI header ({exc}); export it again") from None
    return hdr, size


def _dims(path: Path, hdr) -> tuple:
    """Image shape from the header, refusing absurd dimensions before any allocation."""
    dim = [int(d) for d in np.asarray(hdr["dim"]).tolist()]
    n = dim[0]
    if not 1 <= n <= 7:
        raise DataError(
            f"{path}: header dim[0] = {n}, not 1–7 (corrupt header); export the image again"
        )
    shape = tuple(dim[1 : n + 1])
    if any(s <= 0 for s in shape):
        raise DataError(
            f"{path}: header declares a zero or negative size "
            f"({', '.join(map(str, shape))}); export the image again"
        )
    spatial = shape[:3]
    vox = math.prod(spatial)
    vols = math.prod(shape[3:]) if len(shape) > 3 else 1
    if max(spatial) > MAX_AXIS or vox > MAX_VOXELS or vols > MAX_VOLUMES:
        raise DataError(
            f"{path}: header declares dimensions {_shape_text(shape)} ({vox * vols:.3g} "
            f"voxels), beyond what is plausible (≤ {MAX_AXIS} per spatial axis, ≤ "
            f"{MAX_VOXELS:.0e} per volume, ≤ {MAX_VOLUMES} volumes); the header is corrupt: "
            "export the image again"
        )
    # drop trailing singleton dimensions above 4 (5-D+ are refused below)
    while len(shape) > 4 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) > 4:
        raise DataError(
            f"{path}: a {len(shape)}-D image (shape {_shape_text(shape)}); inflamap "
            "reads 3-D volumes and 4-D series: split or reshape it"
        )
    return shape


def _dtype(path: Path, hdr):
    try:
        dtype = hdr.get_data_dtype()
    except Exception:  # noqa: BLE001 - unknown datatype code (several types)
        raise DataError(
            f"{path}: unknown NIfTI datatype code {int(hdr['datatype'])}; export the image again"
        ) from None
    if dtype.kind not in "iuf" or dtype.itemsize == 0:
        what = {"c": "complex", "V": "RGB/structured", "b": "boolean"}.get(dtype.kind, str(dtype))
        raise DataError(
            f"{path}: {what} voxels ({dtype}) are not supported; save real-valued "
            "(e.g. magnitude) images"
        )
    return dtype


def _geometry(path: Path, hdr, shape):
    """Voxel sizes and affine; refuses implausible voxel sizes and sheared orientations."""
    try:
        affine = np.asarray(hdr.get_best_affine(), dtype=float)
        zooms = tuple(float(z) for z in hdr.get_zooms()[:3])
    except Exception as exc:  # noqa: BLE001 - malformed qform/sform (several types)
        raise DataError(
            f"{path}: unreadable orientation in the header ({exc}); fix the "
            "qform/sform (e.g. re-export with dcm2niix)"
        ) from None
    if not np.all(np.isfinite(affine)) or not all(math.isfinite(z) for z in zooms):
        raise DataError(
            f"{path}: the header's orientation (qform/sform) or pixdim has "
            "non-finite values; re-export the image"
        )
    if int(hdr["qform_code"]) == 0 and int(hdr["sform_code"]) == 0:
        raise DataError(
            f"{path}: no orientation in the header (qform_code and sform_code are "
            "0), so left and right cannot be told apart; convert the image again "
            "(e.g. dcm2niix) or set its sform (nibabel: img.set_sform(affine, "
            "code=1))"
        )
    lo, hi = VOXEL_MM
    if any(not lo <= abs(z) <= hi for z in zooms[: len(shape[:3])]):
        raise DataError(
            f"{path}: voxel size {tuple(round(z, 6) for z in zooms)} is "
            f"implausible ({lo:g}–{hi:g} mm expected); fix pixdim and xyzt_units "
            "(millimetres)"
        )
    m = affine[:3, :3]
    norms = np.linalg.norm(m, axis=0)
    if np.any(norms < 1e-8):
        raise DataError(
            f"{path}: the orientation matrix (sform/qform) is singular; fix the "
            "header (e.g. set the sform from the qform) or re-export the image"
        )
    cosines = m / norms
    shear = float(np.max(np.abs(cosines.T @ cosines - np.eye(3))))
    if shear > MAX_SHEAR:
        raise DataError(
            f"{path}: the orientation (sform) is sheared, not a rotation (direction cosines "
            f"off by {shear:.2g}); ITK/ANTs cannot read it: reslice the image, or set the "
            "sform to the qform (nibabel: img.set_sform(img.get_qform()))"
        )
    return zooms, affine


def check_nifti(
    path, role: str = "image", ndim=(3,), n_volumes: int | None = None, read_data: bool = True
) -> ImageInfo:
    """Check one NIfTI image the run will read.

    Parameters
    ----------
    path : str or Path
        the image (``.nii`` or ``.nii.gz``).
    role : str
        what it is, for messages (``T1w``, ``DCE series``, ...).
    ndim : tuple of int
        accepted dimensionalities (3 and/or 4); a 4-D image with one volume counts as 3-D
        only where 4 is accepted too.
    n_volumes : int, optional
        volumes a 4-D image must have (frames of the sidecar).
    read_data : bool
        stream through the data (CRC, truncation, empty image, non-finite count).

    Returns
    -------
    ImageInfo

    Raises
    ------
    InputMissingError
        missing (or a dangling link), unreadable.
    DataError
        anything else, one line naming the file and the fix.
    """
    path = Path(path)
    _check_file(path)
    gz = path.name.endswith(".gz")
    with open(path, "rb") as fh:
        magic = fh.read(348)
    if gz and magic[:2] != b"\x1f\x8b":
        if len(magic) >= 348 and magic[344:347] in (b"n+1", b"ni1"):
            raise DataError(
                f"{path}: an uncompressed NIfTI named .nii.gz; compress it (gzip) "
                "or rename it to .nii"
            )
        raise DataError(
            f"{path}: not gzip-compressed although named .nii.gz (starts with "
            f"{magic[:8]!r}); not a NIfTI file? convert it (e.g. dcm2niix) or fix "
            "the name"
        )
    if not gz and magic[:2] == b"\x1f\x8b":
        raise DataError(f"{path}: gzip-compressed although named .nii; rename it to .nii.gz")
    head = _read_head(path, gz)
    hdr, hsize = _parse_header(path, head)
    shape = _dims(path, hdr)
    dtype = _dtype(path, hdr)
    zooms, affine = _geometry(path, hdr, shape)

    # dimensionality this role needs
    eff = shape
    if len(shape) == 4 and shape[3] == 1 and 3 in ndim and 4 in ndim:
        eff = shape[:3]
    if len(eff) < 3:
        raise DataError(
            f"{path}: {role} is {len(eff)}-D (shape {_shape_text(shape)}); a 3-D "
            "volume is needed: give the whole volume, not a slice"
        )
    if len(eff) not in ndim:
        if len(eff) == 3:
            frames = f" ({n_volumes} frames in the sidecar)" if n_volumes else ""
            raise DataError(
                f"{path}: {role} is 3-D (shape {_shape_text(shape)}) but must be "
                f"4-D, one volume per frame{frames}; give the whole series in one "
                "4-D file"
            )
        raise DataError(
            f"{path}: {role} is 4-D (shape {_shape_text(shape)}) but must be one "
            "3-D volume; save that volume alone (e.g. nibabel.squeeze_image, "
            "fslroi) or check which file carries this name"
        )
    if min(shape[:3]) < 2:
        raise DataError(
            f"{path}: {role} has a single slice (shape {_shape_text(shape)}); a 3-D "
            "volume is needed (registration works in 3-D): give the whole volume"
        )
    if n_volumes is not None:
        have = shape[3] if len(shape) == 4 else 1
        if have != int(n_volumes):
            raise DataError(
                f"{path}: {role} has {have} volume(s) but its sidecar times "
                f"{int(n_volumes)} frame(s) (FrameTimesStart); fix the sidecar or "
                "the image"
            )

    offset = float(hdr["vox_offset"])
    if offset == 0:  # unset: the data follow the header (as nibabel reads it)
        offset = hsize + 4
    if not math.isfinite(offset) or offset < hsize + 4 or offset > MAX_VOX_OFFSET:
        raise DataError(
            f"{path}: header vox_offset {offset:g} is invalid (the data must follow "
            f"the {hsize}-byte header); export the image again"
        )
    offset = int(offset)
    nbytes = math.prod(shape) * dtype.itemsize
    try:  # nibabel's reading of the scaling (no scaling when scl_slope is 0 or NaN)
        slope, inter = hdr.get_slope_inter()
    except Exception as exc:  # noqa: BLE001 - HeaderDataError and friends
        raise DataError(
            f"{path}: invalid scaling in the header (scl_slope "
            f"{float(hdr['scl_slope']):g}, scl_inter {float(hdr['scl_inter']):g}: "
            f"{exc}); set scl_slope 1 and scl_inter 0, or export the image again"
        ) from None
    slope = 1.0 if slope is None else float(slope)
    inter = 0.0 if inter is None else float(inter)
    if not (math.isfinite(slope) and math.isfinite(inter)):
        raise DataError(
            f"{path}: infinite scl_slope/scl_inter in the header; set scl_slope 1 "
            "and scl_inter 0, or export the image again"
        )
    if not gz:
        size = path.stat().st_size
        if size < offset + nbytes:
            raise DataError(
                f"{path}: truncated: {size} bytes, the header needs "
                f"{offset + nbytes} ({_shape_text(shape)} {dtype}); copy it again "
                "from the source"
            )
    n_nonfinite = 0
    if read_data:
        n_nonfinite = _scan_data(path, gz, offset, nbytes, dtype, slope, inter)
    return ImageInfo(str(path), tuple(shape), zooms, affine, str(dtype), n_nonfinite)


def _scan_data(path: Path, gz: bool, offset: int, nbytes: int, dtype, slope, inter) -> int:
    """One pass over the voxel data: truncation and CRC (gzip), empty or constant images;
    the number of non-finite voxels."""
    item = dtype.itemsize
    chunk = max(item, _CHUNK - _CHUNK % item)
    lo, hi, nonfinite, seen = math.inf, -math.inf, 0, 0
    floating = dtype.kind == "f"
    try:
        with _open_stream(path, gz) as fh:
            skip = offset
            while skip:
                got = fh.read(min(skip, chunk))
                if not got:
                    break
                skip -= len(got)
            left = nbytes
            while left > 0:
                buf = fh.read(min(left, chunk))
                if not buf:
                    break
                usable = len(buf) - len(buf) % item
                if usable < len(buf):  # rare: a read ending inside a voxel
                    more = fh.read(item - len(buf) % item)
                    buf += more
                    usable = len(buf) - len(buf) % item
                left -= len(buf)
                arr = np.frombuffer(buf[:usable], dtype=dtype)
                if floating:
                    finite = np.isfinite(arr)
                    bad = arr.size - int(np.count_nonzero(finite))
                    if bad:
                        nonfinite += bad
                        arr = arr[finite]
                if arr.size:
                    lo, hi = min(lo, float(arr.min())), max(hi, float(arr.max()))
                seen += usable
            if seen < nbytes:
                raise DataError(
                    f"{path}: truncated: the data end after {seen} of {nbytes} bytes; copy it "
                    "again from the source"
                )
            if gz:  # read to the end: the gzip module checks the CRC and length there
                while fh.read(chunk):
                    pass
    except EOFError:
        raise DataError(
            f"{path}: truncated gzip stream (the file was cut short, e.g. an "
            "interrupted copy); copy it again from the source"
        ) from None
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise DataError(
            f"{path}: corrupt gzip data ({exc}); copy it again from the source"
        ) from None
    except PermissionError:
        raise InputMissingError(
            f"{path}: cannot be read (permission denied); make it readable "
            "by the user running inflamap (e.g. chmod a+r)"
        ) from None
    n = nbytes // item
    if nonfinite == n:
        raise DataError(f"{path}: no finite voxel (all NaN/Inf); export the image again")
    if lo == hi:
        value = lo * slope + inter
        if value == 0:
            raise DataError(
                f"{path}: every voxel is 0 (an empty image); export it again (the "
                "conversion or copy probably failed)"
            )
        raise DataError(
            f"{path}: every voxel has the value {value:g} (no image content); export it again"
        )
    return nonfinite


# --------------------------------------------------------------------------- participants
