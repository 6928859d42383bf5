"""User-facing errors.

Anything the user can fix (a missing path, a corrupt file, a bad option) raises `MMKitError` with one line that
names the file and the problem. The CLI prints it as `error: ...` and exits with code 2; nothing else is caught.
"""


class MMKitError(Exception):
    """An error caused by the input, reported to the user as one line (exit code 2)."""

    exit_code = 2


class TrainingDiverged(MMKitError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""

    exit_code = 3
