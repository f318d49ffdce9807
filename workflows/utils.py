"""Small helpers shared by the workflows (used as connection functions)."""


def listify(value):
    """Wrap a single value in a list (for inputs that take one entry per stage)."""
    return [value]


def first(value):
    """The first element of a list output (e.g. one forward transform)."""
    return value[0] if isinstance(value, list) else value
