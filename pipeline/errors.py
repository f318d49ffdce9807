"""Errors that end a run with a BIDS-Apps exit code and a one-line message."""

EX_OK, EX_FAILURE, EX_BIDS_INVALID, EX_USAGE, EX_DATAERR, EX_NOINPUT, EX_CANTCREAT = (
    0,
    1,
    16,
    64,
    65,
    66,
    73,
)


class InflamapError(Exception):
    """Base: ``str(err)`` is the one line shown to the user; ``code`` the exit code."""

    code = EX_FAILURE


class UsageError(InflamapError):
    code = EX_USAGE


class InputMissingError(InflamapError):
    code = EX_NOINPUT


class DataError(InflamapError):
    code = EX_DATAERR


class BIDSValidationError(InflamapError):
    code = EX_BIDS_INVALID


class OutputError(InflamapError):
    code = EX_CANTCREAT
