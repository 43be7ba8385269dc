"""The one exception type the command-line tools turn into a one-line message."""


class BitsnnError(Exception):
    """A problem the user can fix (bad input, missing file, unsupported layer)."""
