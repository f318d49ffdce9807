"""Pure numeric models of inflamap.

Everything below :mod:`pipeline.models` depends on numpy and scipy only (never on nipype),
takes arrays whose last axis is the sampled dimension (echoes, frames, flip angles) so that a
whole volume is one call, validates its inputs and raises :class:`ValueError` with a message
that says what to fix.
"""
