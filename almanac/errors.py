"""User-facing errors.

An :class:`AlmanacError` carries a message meant for the user: one line that says what
is wrong and how to fix it. The command line prints it on stderr and exits with 2; the
web UI shows it in an alert. Anything else is a bug and keeps its traceback (in the log).
"""


#: The longest message a user sees: one line of at most this many characters.
MAX_MESSAGE_CHARS = 300


def one_line(message: object, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``message`` as one line of at most ``limit`` characters.

    Whitespace runs (newlines included) become one space and control characters are
    shown escaped. A longer message keeps its start (what is wrong) and its end (how to
    fix it) around an ellipsis, so a hostile value quoted inside cannot flood a terminal.
    """
    text = " ".join(str(message).split())
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    if len(text) <= limit:
        return text
    tail = max(limit // 3, 1)
    return f"{text[:limit - tail - 3]} … {text[-tail + 1:]}" if tail > 1 else text[:limit]


class AlmanacError(Exception):
    """A mistake the user can fix (bad file, bad spec, unknown symbol...)."""

    def __init__(self, message: str):
        super().__init__(one_line(message))  # always one bounded line

    @property
    def message(self) -> str:
        return self.args[0]


class DataError(AlmanacError):
    """A data file is unreadable or violates the bar rules."""


class NotFoundError(AlmanacError):
    """A symbol, dataset or run that does not exist."""


class SpecError(AlmanacError):
    """An experiment specification or option is invalid."""
