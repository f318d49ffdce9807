"""Sidecar parsers: BIDS JSON metadata of PET and multi-echo GRE turned into checked values.

Each parser takes the sidecar dictionary (for PET the merged metadata of the image, i.e.
after BIDS inheritance) and the sidecar path for messages, and returns a frozen dataclass
in SI-like units (s, Bq, Bq/mL, kg). Bad or missing metadata raise
:class:`pipeline.errors.DataError` (exit 65) with one line naming the file, the field and
what to fix.
"""

from .common import read_sidecar
from .dce import DCEMetadata, dce_metadata, vfa_metadata
from .megre import MEGREMetadata, megre_metadata
from .pet import HALF_LIVES_S, PET_REQUIRED, PETMetadata, pet_metadata, radionuclide_key
from .spect import SPECTMetadata, spect_metadata

__all__ = [
    "HALF_LIVES_S",
    "PET_REQUIRED",
    "DCEMetadata",
    "MEGREMetadata",
    "PETMetadata",
    "SPECTMetadata",
    "dce_metadata",
    "megre_metadata",
    "pet_metadata",
    "radionuclide_key",
    "read_sidecar",
    "spect_metadata",
    "vfa_metadata",
]
