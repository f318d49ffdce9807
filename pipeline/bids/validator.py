"""The official BIDS validator (``bids-validator-deno``): found on ``PATH`` or beside the
running interpreter, its errors refused, its warnings summarised and kept."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from ..errors import BIDSValidationError, UsageError

#: environment variable naming the validator executable explicitly (a site install)
VALIDATOR_ENV = "INFLAMAP_BIDS_VALIDATOR"


def validator_executable() -> str | None:
    """``bids-validator-deno``: the file ``$INFLAMAP_BIDS_VALIDATOR`` names, else the one on
    ``PATH``, else beside this Python (a virtual environment's ``bin/``, where pip installs
    it, when inflamap is called by its absolute path without activating the environment),
    else beside the base Python of that environment (``--system-site-packages``).

    A ``$INFLAMAP_BIDS_VALIDATOR`` that is not an executable file is a usage error naming it.
    """
    named = os.environ.get(VALIDATOR_ENV)
    if named:
        path = Path(named).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise UsageError(
                f"{VALIDATOR_ENV}={named}: not an executable file; point it at "
                "bids-validator-deno or unset it"
            )
        return str(path)
    exe = shutil.which("bids-validator-deno")
    if exe:
        return exe
    for folder in dict.fromkeys(
        [Path(sys.executable).parent, Path(sys.base_prefix) / "bin", Path(sys.prefix) / "bin"]
    ):
        here = folder / "bids-validator-deno"
        if here.is_file() and os.access(here, os.X_OK):
            return str(here)
    return None


#: where the validator's warnings of the last validated run are kept (relative to OUTPUT_DIR)
VALIDATOR_WARNINGS = "logs/bids-validator-warnings.txt"


def save_validator_warnings(output_dir, lines) -> Path:
    """Write the validator's warning lines for the reports (replacing an older list)."""
    from ..utils import atomic_write_text

    path = Path(output_dir) / VALIDATOR_WARNINGS
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text("".join(f"{line}\n" for line in lines), path)
    return path


def validate(bids_dir) -> list[str]:
    """Run the official BIDS validator (``bids-validator-deno``); raise on errors, return
    one line per kind of warning (``CODE (n files): message``)."""
    exe = validator_executable()
    if exe is None:
        raise BIDSValidationError(
            "bids-validator-deno not found; install it (pip install bids-validator-deno) or "
            "pass --skip-bids-validation"
        )
    proc = subprocess.run(  # noqa: S603 - the validator, no shell
        [exe, str(bids_dir), "--format", "json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        raise BIDSValidationError(
            f"{bids_dir}: the BIDS validator failed to run ({proc.stderr.strip()[:200]}); "
            "pass --skip-bids-validation to proceed without it"
        ) from None
    issues = report.get("issues", {}).get("issues", [])
    errors = [i for i in issues if i.get("severity") == "error"]
    if errors:
        first = errors[0]
        where = first.get("location", "")
        raise BIDSValidationError(
            f"{bids_dir}{where}: BIDS validation failed with {len(errors)} error(s), first: "
            f"{first.get('code')} {first.get('issueMessage') or ''}".strip()
            + "; fix the dataset or pass --skip-bids-validation"
        )
    warnings: dict[str, list] = {}
    for issue in issues:
        if issue.get("severity") == "warning":
            warnings.setdefault(issue.get("code", "WARNING"), []).append(issue)
    lines = []
    for code, items in sorted(warnings.items()):
        first = items[0]
        keys = sorted({str(i["subCode"]) for i in items if i.get("subCode")})
        what = f" [{', '.join(keys[:6])}{', ...' if len(keys) > 6 else ''}]" if keys else ""
        message = "" if keys else " ".join(str(first.get("issueMessage") or "").split())[:160]
        where = first.get("location", "")
        lines.append(
            f"{code}{what} ({len(items)}x, e.g. {where or 'the dataset'})"
            + (f": {message}" if message else "")
        )
    return lines


#: datatype folders inflamap reads (BIDS datatypes, and ``spect`` of inflamap's convention)
