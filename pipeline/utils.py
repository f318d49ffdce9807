"""Small shared helpers: atomic file writing."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _tmp_path(path: Path) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    return Path(name)


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
