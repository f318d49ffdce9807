"""A bounded scan of an untrusted dataset before anything reads it (FIFOs, device links,
loops, huge sidecars), and the JSON sidecars checked as JSON objects."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import DataError, InputMissingError

IGNORED_FOLDERS = ("code", "derivatives", "models", "sourcedata", "stimuli")
#: a JSON sidecar larger than this is not a sidecar (a wrong file, or a link to a device)
MAX_SIDECAR_BYTES = 4 * 2**20
#: entries scanned at most (a dataset larger than this is refused as runaway)
MAX_ENTRIES = 2_000_000


def scan_dataset(root) -> int:
    """Refuse, before the validator or pybids read anything, what would make them hang or
    read without end: a FIFO, socket or device (also through a symbolic link, e.g. to
    ``/dev/zero``), a folder link that loops back, a JSON sidecar over
    :data:`MAX_SIDECAR_BYTES`. Dangling links are allowed (DataLad files not fetched: the
    preflight names them if they are needed). Returns the number of entries seen."""
    import stat

    root = Path(root)
    seen_dirs, n = set(), 0
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            st = folder.stat()
        except OSError as exc:
            raise InputMissingError(f"{folder}: cannot be read ({exc.strerror})") from None
        key = (st.st_dev, st.st_ino)
        if key in seen_dirs:
            raise DataError(
                f"{folder}: a folder link that loops back to {folder.resolve()}; "
                "remove the symbolic link"
            )
        seen_dirs.add(key)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except PermissionError:
            raise InputMissingError(
                f"{folder}: cannot be listed (permission denied); make it "
                "readable by the user running inflamap"
            ) from None
        except OSError as exc:
            raise InputMissingError(f"{folder}: cannot be listed ({exc.strerror})") from None
        for entry in entries:
            n += 1
            if n > MAX_ENTRIES:
                raise DataError(
                    f"{root}: more than {MAX_ENTRIES:,} files and folders; is it "
                    "a BIDS dataset's root?"
                )
            if entry.name.startswith(".") or (folder == root and entry.name in IGNORED_FOLDERS):
                continue
            path = Path(entry.path)
            try:
                st = entry.stat(follow_symlinks=True)
            except FileNotFoundError:
                continue  # a dangling link
            except OSError as exc:
                if exc.errno == 40:  # ELOOP: a link that points to itself
                    raise DataError(f"{path}: a symbolic link that loops; remove it") from None
                raise InputMissingError(f"{path}: cannot be read ({exc.strerror})") from None
            if stat.S_ISDIR(st.st_mode):
                stack.append(path)
            elif not stat.S_ISREG(st.st_mode):
                kind = (
                    "a named pipe (FIFO)"
                    if stat.S_ISFIFO(st.st_mode)
                    else "a socket"
                    if stat.S_ISSOCK(st.st_mode)
                    else "a device"
                )
                via = f" (a link to {os.path.realpath(path)})" if entry.is_symlink() else ""
                raise DataError(
                    f"{path}: {kind}{via}, not a regular file; remove it or "
                    "replace it by the file itself"
                )
            elif entry.name.endswith(".json") and st.st_size > MAX_SIDECAR_BYTES:
                raise DataError(
                    f"{path}: {st.st_size:,} bytes, far larger than a JSON sidecar "
                    f"(≤ {MAX_SIDECAR_BYTES // 2**20} MiB); is it the right file?"
                )
    return n


def check_json_files(root) -> None:
    """Raise :class:`DataError` (or :class:`InputMissingError`) for the first JSON file of
    the dataset (top level and ``sub-*``) that cannot be read as a JSON object."""
    import json

    root = Path(root)
    files = sorted(root.glob("*.json")) + sorted(
        p for d in sorted(root.glob("sub-*")) if d.is_dir() for p in d.rglob("*.json")
    )
    for p in files:
        if not p.exists():
            continue  # a dangling link: reported when (if) it is needed
        try:
            text = p.read_bytes()
        except PermissionError:
            raise InputMissingError(
                f"{p}: cannot be read (permission denied); make it "
                "readable by the user running inflamap (e.g. chmod a+r)"
            ) from None
        except OSError as exc:
            raise InputMissingError(f"{p}: cannot be read ({exc.strerror})") from None
        try:
            meta = json.loads(text.decode("utf-8-sig"))
        except UnicodeDecodeError:
            raise DataError(f"{p}: not UTF-8 text; save the sidecar as UTF-8 JSON") from None
        except ValueError as exc:
            raise DataError(f"{p}: not valid JSON ({exc}); fix the syntax") from None
        if not isinstance(meta, dict):
            raise DataError(
                f"{p}: a sidecar must be a JSON object ({{...}}), found "
                f"{type(meta).__name__}; fix the file"
            )
