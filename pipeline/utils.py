"""Small shared helpers: atomic file writing, write-once files, stale temporaries.

Every derivative is written to a unique temporary name in its target folder and renamed
(``os.replace``, atomic on POSIX file systems), so that a process killed mid-write (SIGKILL,
a cluster job out of time or memory) never leaves a partial file under the final name, and
concurrent writers (many participants' jobs in one derivatives folder) never share a
temporary name. Temporary names are hidden (``.<name>.<random>.tmp``); a rerun removes the
ones a killed run left (:func:`remove_stale_temporaries`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path

TMP_SUFFIX = ".tmp"


def _tmp_path(path: Path) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    os.close(fd)
    return Path(name)


def same_grid(a, b, atol: float = 1e-3) -> bool:
    """Whether two images (anything with ``shape`` and ``affine``) share a voxel grid."""
    import numpy as np

    return tuple(a.shape[:3]) == tuple(b.shape[:3]) and bool(
        np.allclose(a.affine, b.affine, atol=atol)
    )


def atomic_write_text(text: str, path) -> Path:
    """Write ``text`` to ``path`` through a unique temporary file and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_path(path)
    try:
        tmp.write_text(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_once_text(text: str, path) -> bool:
    """Create ``path`` with ``text`` unless it exists; True if this call created it.

    The file is complete before it appears (temporary file, then a hard link to the final
    name, which fails if another process created it first), so among concurrent callers
    exactly one writes it and no reader ever sees it partial. File systems without hard
    links fall back to an atomic rename (then a concurrent caller may replace it with the
    same content).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_path(path)
    try:
        tmp.write_text(text)
        os.chmod(tmp, 0o644)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in (
                errno.EPERM,
                errno.ENOTSUP,
                errno.EOPNOTSUPP,
                errno.EXDEV,
                errno.EMLINK,
                errno.ENOSYS,
            ):
                raise
            if path.exists():
                return False
            os.replace(tmp, path)
        return True
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_nifti(img, path) -> Path:
    """Save a nibabel image to ``path`` atomically (temporary file in the same folder + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_path(path)
    # nibabel picks compression from the suffix: keep it on the temporary name
    tmp_nii = tmp.with_name(tmp.name + "".join(path.suffixes))
    try:
        img.to_filename(str(tmp_nii))
        os.chmod(tmp_nii, 0o644)
        os.replace(tmp_nii, path)
    finally:
        tmp.unlink(missing_ok=True)
        tmp_nii.unlink(missing_ok=True)
    return path


@contextlib.contextmanager
def atomic_output(path):
    """Context manager for writers that take a file name (matplotlib, nilearn): yields a
    temporary name in the same folder with the same extension, renamed to ``path`` when
    the block ends without an error (a killed run leaves no partial ``path``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_path(path)
    tmp_ext = tmp.with_name(tmp.name + "".join(path.suffixes))  # writers read the suffix
    try:
        yield tmp_ext
        os.chmod(tmp_ext, 0o644)
        os.replace(tmp_ext, path)
    finally:
        tmp.unlink(missing_ok=True)
        tmp_ext.unlink(missing_ok=True)


def atomic_copy(src, dst) -> Path:
    """Copy ``src`` to ``dst`` atomically."""
    import shutil

    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_path(dst)
    try:
        shutil.copyfile(src, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    return dst


def is_temporary(path) -> bool:
    """Whether ``path`` is a temporary name of this module (``.<name>.<random>.tmp[.ext]``)."""
    name = Path(path).name
    return name.startswith(".") and (name.endswith(TMP_SUFFIX) or f"{TMP_SUFFIX}." in name)


def remove_stale_temporaries(folder) -> list[Path]:
    """Remove the temporary files that killed writers left below ``folder``; their paths.

    Call it only where no other process is writing (inflamap: a participant's derivatives
    folder, while it holds that participant's lock).
    """
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    for p in folder.rglob(".*"):
        if p.is_file() and is_temporary(p):
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed
