"""The one exception type the CLI turns into a one-line error message."""


class SaltError(Exception):
    """A user-facing error: the message names the file and the problem."""
