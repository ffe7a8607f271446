"""User-facing errors.

An :class:`AlmanacError` carries a message meant for the user: one line that says what
is wrong and how to fix it. The command line prints it on stderr and exits with 2; the
web UI shows it in an alert. Anything else is a bug and keeps its traceback (in the log).
"""


class AlmanacError(Exception):
    """A mistake the user can fix (bad file, bad spec, unknown symbol...)."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))  # always one line

    @property
    def message(self) -> str:
        return self.args[0]


class DataError(AlmanacError):
    """A data file is unreadable or violates the bar rules."""


class NotFoundError(AlmanacError):
    """A symbol, dataset or run that does not exist."""


class SpecError(AlmanacError):
    """An experiment specification or option is invalid."""
