"""Exceptions tvmbridge raises beyond Python's built-in ones."""


class UnsupportedOperatorError(NotImplementedError):
    """The model uses operators tvmbridge cannot convert; the message lists all of them."""
