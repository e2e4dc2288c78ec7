"""The exceptions anomtok raises on bad input. The CLI turns each into one line and exit code 2.

``first_line(exc)`` is how a third-party error is quoted inside one of them: its first line.
"""

from __future__ import annotations

__all__ = ["AnomtokError", "LoadError", "InputError", "first_line"]


class AnomtokError(Exception):
    """Base class: a problem with what the user gave us, explained in one line."""


class LoadError(AnomtokError):
    """A model, tokenizer or file could not be loaded (missing, corrupt, unsupported)."""


class InputError(AnomtokError, ValueError):
    """An argument or input value is invalid (bad option, NaN matrix, empty prompt, ...)."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its class name when the message is empty).

    >>> first_line(ValueError("bad header\\nat byte 8"))
    'bad header'
    >>> first_line(KeyError())
    'KeyError'
    """
    text = str(exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__
