"""Nipype interfaces of inflamap (thin wrappers; numerics live in :mod:`pipeline.models`)."""
