"""The one exception type whose message is shown to users as a single line."""


class MobiledrError(Exception):
    """A user-facing failure: bad input, a missing file, a checkpoint that does not fit.

    The message says what went wrong and where (a file, a key, a row), on one line; the CLI prints it
    and exits non-zero without a traceback.
    """
