"""Errors about what the user gave (a run table, a spec, a path): one clear message each."""


class InputError(ValueError):
    """Bad user input. The message names the row/field (or option) and what was expected."""
