"""The demo dataset: a digital reference object with known ground truth."""

from .generate import EFFECTS, make_demo

__all__ = ["EFFECTS", "make_demo"]
