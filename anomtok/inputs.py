"""Checks shared by every command on what the user gives: seeds, integer options, standard input.

Each raises ``InputError`` (one line, exit 2 at the CLI) before anything slow runs.

>>> check_seed(7)
7
>>> check_seed(2**64)
Traceback (most recent call last):
...
anomtok.errors.InputError: seed must be an integer from 0 to 9223372036854775807, not 18446744073709551616
"""

from __future__ import annotations

import sys
from typing import IO, Any

from .errors import InputError

__all__ = ["SEED_MAX", "UMAP_SEED_MAX", "check_seed", "check_int", "stdin_binary", "read_stdin_text"]

# Seeds reach torch's manual_seed (ranking), numpy's SeedSequence (generation) and Python's
# random.Random (verify's samples), which all take 0 .. 2**63 - 1; UMAP's random_state (numpy's
# legacy RandomState, through ``plot`` and ``scan``) takes only 0 .. 2**32 - 1.
SEED_MAX = 2**63 - 1
UMAP_SEED_MAX = 2**32 - 1


def check_int(value: Any, name: str, lo: int, hi: int | None = None, *, hint: str = "") -> int:
    """``value`` as an int in ``lo..hi`` (``hi`` None: no upper bound), else InputError."""
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= lo and (hi is None or value <= hi)
    if not ok:
        span = f"from {lo} to {hi}" if hi is not None else f">= {lo}"
        raise InputError(f"{name} must be an integer {span}{hint}, not {value!r}")
    return int(value)


def check_seed(value: Any, name: str = "seed", hi: int = SEED_MAX) -> int:
    """A seed: an integer from 0 to ``hi`` (``SEED_MAX``; ``UMAP_SEED_MAX`` for a seed UMAP uses)."""
    return check_int(value, name, 0, hi)


def stdin_binary() -> IO[bytes]:
    """Standard input as a binary stream; InputError when it is closed (``cmd <&-``)."""
    stream = sys.stdin
    if stream is None or getattr(stream, "closed", False):
        raise InputError("stdin is closed: nothing to read from '-'")
    buffer = getattr(stream, "buffer", None)
    if buffer is None:  # a text-only stream (notebooks, tests): its text as UTF-8 bytes
        import io

        return io.BytesIO(stream.read().encode("utf-8", "surrogateescape"))
    return buffer


def read_stdin_text(encoding: str = "utf-8") -> str:
    """All of standard input decoded as ``encoding``; InputError when stdin is closed or is not
    text in that encoding."""
    stream = sys.stdin
    if stream is None or getattr(stream, "closed", False):
        raise InputError("stdin is closed: nothing to read from '-'")
    buffer = getattr(stream, "buffer", None)
    if buffer is None:  # a text-only stream (notebooks, tests)
        return stream.read()
    try:
        return buffer.read().decode(encoding)
    except UnicodeDecodeError:
        raise InputError("stdin: not UTF-8 text") from None
