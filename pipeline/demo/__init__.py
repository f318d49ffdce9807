"""The demo dataset: a digital reference object with known ground truth.

``make_demo(..., anatomy="colin27")`` (the default, :mod:`.reference`) images a real head
warped per participant with partial volume, and computes every truth on its true tissue;
``anatomy="template"`` (:mod:`.generate`) is the older phantom drawn from the template the
pipeline registers to, with the pipeline's own shells: fast, kept as a fixture for the
end-to-end tests, and no evidence of accuracy (it can only show the pipeline agrees with
itself).
"""

from __future__ import annotations

ANATOMIES = ("colin27", "template")


def make_demo(out_dir, participants=6, resolution=3.0, seed=0, anatomy="colin27", **kwargs):
    """Write a demo dataset (see the module docstring). Returns its folder."""
    if anatomy == "colin27":
        from .reference import make_reference

        return make_reference(out_dir, participants, resolution, seed, **kwargs)
    if anatomy == "template":
        from .generate import make_demo as make_template_demo

        return make_template_demo(out_dir, participants, resolution, seed, **kwargs)
    raise ValueError(f"--anatomy must be one of {', '.join(ANATOMIES)}, not {anatomy!r}")


def __getattr__(name):
    if name == "EFFECTS":  # the template phantom's planted effects (its tests use them)
        from .generate import EFFECTS

        return EFFECTS
    raise AttributeError(name)


__all__ = ["ANATOMIES", "make_demo"]
