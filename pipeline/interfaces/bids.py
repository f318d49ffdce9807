"""Writing derivatives: a sink that names files from source entities and writes atomically."""

from __future__ import annotations

import json
from pathlib import Path

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    Str,
    TraitedSpec,
    traits,
)


class _SinkInputSpec(BaseInterfaceInputSpec):
    base_directory = traits.Directory(mandatory=True, desc="derivatives root")
    bids_dir = traits.Directory(mandatory=True, desc="input BIDS root (for Sources)")
    in_file = File(exists=True, mandatory=True, desc="file to store")
    source_file = File(exists=True, mandatory=True, desc="BIDS file it derives from")
    suffix = Str(mandatory=True)
    extension = Str(desc="default: that of in_file (.nii.gz, .tsv, .h5, ...)")
    datatype = Str()
    entities = traits.Dict(
        traits.Str, traits.Any, desc="entities of the derivative name, e.g. {'desc': 'preproc'}"
    )
    meta_dict = traits.Dict(traits.Str, traits.Any, desc="fields of the JSON sidecar")
    meta_extra = traits.Dict(
        traits.Str,
        traits.Any,
        desc="more sidecar fields (connected from the node that computed them)",
    )
    extra_sources = traits.List(File(exists=True), desc="further BIDS files it derives from")
    sidecar = traits.Bool(True, usedefault=True, desc="write a JSON sidecar")


class _SinkOutputSpec(TraitedSpec):
    out_file = File(desc="the stored derivative")
    out_meta = File(desc="its JSON sidecar")


def _extension(path: str) -> str:
    p = Path(path)
    return "".join(p.suffixes[-2:]) if p.name.endswith(".nii.gz") else p.suffix


class DerivativesSink(SimpleInterface):
    """Copy ``in_file`` into the derivatives under a name derived from ``source_file``.

    The copy is atomic (temporary name in the target folder, then rename); the sidecar lists
    the BIDS ``Sources`` (``bids:raw:`` URIs) and any ``meta_dict`` parameters.
    """

    input_spec = _SinkInputSpec
    output_spec = _SinkOutputSpec

    def _run_interface(self, runtime):
        from pipeline.derivatives import derivative_relpath
        from pipeline.utils import atomic_copy, atomic_write_text

        ext = self.inputs.extension or _extension(self.inputs.in_file)
        kwargs = dict(self.inputs.entities) if self.inputs.entities else {}
        rel = derivative_relpath(
            self.inputs.source_file,
            self.inputs.suffix,
            ext,
            datatype=self.inputs.datatype or None,
            **kwargs,
        )
        out = Path(self.inputs.base_directory) / rel
        atomic_copy(self.inputs.in_file, out)
        self._results["out_file"] = str(out)
        if self.inputs.sidecar:
            root = Path(self.inputs.bids_dir).resolve()
            sources = [self.inputs.source_file, *(self.inputs.extra_sources or [])]
            meta = {
                "Sources": [
                    f"bids:raw:{Path(s).resolve().relative_to(root).as_posix()}" for s in sources
                ]
            }
            meta.update(self.inputs.meta_dict or {})
            meta.update(self.inputs.meta_extra or {})
            side = out.with_name(out.name[: -len(ext)] + ".json")
            atomic_write_text(json.dumps(meta, indent=2, default=str), side)
            self._results["out_meta"] = str(side)
        return runtime
