"""Reading the inputs of a detection run: text files, JSONL, ``.gz``, standard input.

``check_inputs`` checks paths before any work; ``open_input`` opens one input as a binary stream;
``read_lines`` yields its lines (plain text) or its records' text field (JSONL), and a
``LineError`` for each line that cannot be read (binary data, invalid UTF-8, bad JSON, a missing
field, a line over the size limit), so that a run goes on past bad lines.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import InputError
from ..inputs import stdin_binary

__all__ = ["JSONL_SUFFIXES", "LineError", "check_inputs", "open_input", "read_lines"]

JSONL_SUFFIXES = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")
_BOM = b"\xef\xbb\xbf"
_NUL = b"\0"


@dataclass(frozen=True, slots=True)
class LineError:
    """A line that could not be scanned (``line`` 0: the whole input)."""

    source: str
    line: int
    error: str

    def to_dict(self) -> dict[str, Any]:
        return {"type": "error", "source": self.source, "line": self.line, "error": self.error}


def check_inputs(inputs: Sequence[Any]) -> list[Any]:
    """The inputs of a run, checked before any work: each exists, is a file and is readable
    (``"-"`` and ``(name, stream)`` pairs pass). Raises ``InputError``."""
    return [_check_input(i) for i in inputs]


def _check_input(spec: Any) -> Any:
    if isinstance(spec, tuple):
        return spec
    spec = os.fspath(spec)
    if spec == "-":
        stdin_binary()  # closed stdin (``cmd <&-``) is bad input, found before any work
    else:
        if os.path.isdir(spec):
            raise InputError(f"{spec}: is a directory, not a text file")
        if not os.path.exists(spec):
            raise InputError(f"{spec}: no such file")
        if not os.access(spec, os.R_OK):
            raise InputError(f"{spec}: not readable (permission denied)")
    return spec


def open_input(spec: Any) -> Any:
    """A context manager giving a binary stream; streams we were given are left open."""
    if isinstance(spec, tuple):
        return contextlib.nullcontext(spec[1])
    if spec == "-":
        return contextlib.nullcontext(stdin_binary())
    try:
        return gzip.open(spec, "rb") if spec.endswith(".gz") else open(spec, "rb")  # noqa: SIM115
    except OSError as exc:
        raise InputError(f"{spec}: cannot open ({exc.strerror or exc})") from None


def read_lines(
    stream: Any, name: str, is_jsonl: bool, field: str, max_line_bytes: int, progress: Callable[[int], None] | None
) -> Iterator[tuple[int, str] | LineError]:
    """The lines of one input: ``(line number, text)`` for each line read (plain text: with its
    terminator; JSONL: the text of ``field``, blank lines skipped), a ``LineError`` for each line
    that cannot be (line 0: the whole input is binary). ``stream`` is binary with ``peek``."""
    head = stream.peek(8192)[:8192]
    if _looks_binary(head):
        yield LineError(name, 0, f"binary data or UTF-16 text (NUL byte at byte {head.index(_NUL)}): input skipped")
        return
    path = field.split(".") if field not in ("", ".") else [field]
    n = 0
    while True:
        raw = stream.readline(max_line_bytes)
        if not raw:
            return
        n += 1
        if progress:
            progress(len(raw))
        if len(raw) >= max_line_bytes and not raw.endswith(b"\n"):
            while True:  # skip the rest of an over-long line without holding it
                rest = stream.readline(max_line_bytes)
                if progress:
                    progress(len(rest))
                if not rest or rest.endswith(b"\n"):
                    break
            yield LineError(name, n, f"line longer than {max_line_bytes} bytes: skipped")
            continue
        if n == 1 and raw.startswith(_BOM):
            raw = raw[3:]
        if _NUL in raw:
            yield LineError(name, n, f"binary data (NUL byte at byte {raw.index(_NUL)})")
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield LineError(name, n, f"invalid UTF-8 (byte 0x{raw[exc.start]:02x} at byte {exc.start})")
            continue
        if not is_jsonl:
            yield (n, text)
            continue
        if not text.strip():
            continue
        value = _json_field(text, field, path)
        yield LineError(name, n, value[1]) if isinstance(value, tuple) else (n, value)


def _looks_binary(head: bytes) -> bool:
    """NUL bytes with invalid UTF-8 or in bulk (UTF-16): binary. A stray NUL in valid text is
    left to the line it is on."""
    if _NUL not in head:
        return False
    if head.count(_NUL) * 10 >= len(head):
        return True
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start < len(head) - 3  # not just a character cut by the end of the block
    return False


def _json_field(line: str, field: str, path: list[str]) -> str | tuple[None, str]:
    """The text of ``field`` in a JSON line (a dotted path like ``messages.0.content`` works
    when no key has the dotted name), or ``(None, reason)``."""
    try:
        obj = json.loads(line.rstrip("\r\n"))
    except json.JSONDecodeError as exc:
        return None, f"bad JSON: {exc.msg} (column {exc.colno})"
    if not isinstance(obj, dict):
        return None, f"the JSON line is {_json_type(obj)}, not an object"
    if field in obj:
        value = obj[field]
    else:
        value = obj
        for key in path:
            if isinstance(value, dict) and key in value:
                value = value[key]
            elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
                value = value[int(key)]
            else:
                return None, f"no field {field!r}"
    if not isinstance(value, str):
        return None, f"field {field!r} is {_json_type(value)}, not a string"
    if "\\u" in line:  # only escapes can make an unpaired surrogate, which no tokenizer takes
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            return None, f"field {field!r} has an unpaired surrogate (\\u{ord(value[exc.start]):04x})"
    return value


def _json_type(v: Any) -> str:
    if v is None:
        return "null"
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "an object",
    }.get(type(v), type(v).__name__)
