"""The exceptions anomtok raises on bad input. The CLI turns each into one line and exit code 2."""

from __future__ import annotations

__all__ = ["AnomtokError", "LoadError", "InputError"]


class AnomtokError(Exception):
    """Base class: a problem with what the user gave us, explained in one line."""


class LoadError(AnomtokError):
    """A model, tokenizer or file could not be loaded (missing, corrupt, unsupported)."""


class InputError(AnomtokError, ValueError):
    """An argument or input value is invalid (bad option, NaN matrix, empty prompt, ...)."""
