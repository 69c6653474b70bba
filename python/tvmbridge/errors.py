"""Exceptions tvmbridge raises beyond Python's built-in ones."""


class UnsupportedOperatorError(NotImplementedError):
    """The model uses operators tvmbridge cannot convert; the message lists all of them."""


def first_line(error: BaseException) -> str:
    """The first line of `error`'s message, for logs and reports that give one line per
    failure; its type's name where the message is empty."""
    message = str(error).strip()
    return message.splitlines()[0] if message else type(error).__name__
