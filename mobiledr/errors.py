"""The one exception type whose message is shown to users as a single line."""


class MobiledrError(Exception):
    """A user-facing failure: bad input, a missing file, a checkpoint that does not fit.

    The message says what went wrong and where (a file, a key, a row), on one line; the CLI prints it
    and exits non-zero without a traceback.
    """


class GateFailed(MobiledrError):
    """A check ran to completion and its verdict is a failure (an artifact failed parity, a measurement
    failed): the results are written; the command exits 1 so scripts and CI notice."""


class DeviceLost(MobiledrError):
    """A phone went away in the middle of a benchmark (disconnected, locked): no further measurement on
    it can run; the message is the remaining rows' error."""


def one_line(exc: BaseException, limit: int = 400) -> str:
    """An exception as 'Type: first line of its message' (for failures reported, not raised)."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else 'no message'}"[:limit]
