"""Command line: ``inflamap BIDS_DIR OUTPUT_DIR {participant,group} [options]``.

Also ``inflamap-demo DIR`` (write the demo dataset) and ``inflamap-templates`` (build the
offline TemplateFlow home, or pre-fetch templates on a machine with network); the old
spellings ``inflamap demo`` and ``inflamap templates`` still work, unless the call is a
BIDS-App call (``inflamap demo OUT participant`` processes a dataset folder named ``demo``).
Exit codes follow the BIDS-Apps execution spec: 0 success, 1 failure, 16 BIDS validation
failed, 64 usage or configuration error, 65 bad data, 66 required input missing, 73 output
not writable.

The package: :mod:`.parser` (options), :mod:`.paths` (folders), :mod:`.plugin`
(resources, nipype plugin), :mod:`.participant` (the participant loop), :mod:`.slurm`
(SLURMGraph waiting), :mod:`.signals`, :mod:`.tools` (demo, templates), :mod:`.main`
(entry points).
"""

from .main import demo_main, dicom_main, main, templates_main
from .parser import build_demo_parser, build_parser, build_templates_parser
from .participant import _ParticipantLock, _status_callback
from .plugin import _plugin
from .slurm import _wait_for_graph_jobs

__all__ = [
    "_ParticipantLock",
    "_plugin",
    "_status_callback",
    "_wait_for_graph_jobs",
    "build_demo_parser",
    "build_parser",
    "build_templates_parser",
    "demo_main",
    "main",
    "templates_main",
    "dicom_main",
]
