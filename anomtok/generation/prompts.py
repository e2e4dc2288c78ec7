"""Prompts for a generation run: prompt files, the packaged prompts, and a checked prompt list.

A prompt file has one prompt per non-blank line (UTF-8; ``-`` reads stdin; ``\\n`` inside a
line stands for a newline). The packaged English and Japanese prompts ship in the wheel
(``anomtok/data/prompts_en.txt``, ``prompts_ja.txt``).

>>> [p.name for p in default_prompt_files()]
['prompts_en.txt', 'prompts_ja.txt']
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..inputs import read_stdin_text

__all__ = ["read_prompts", "default_prompt_files", "prompt_list", "MAX_PROMPT_CHARS"]

MAX_PROMPT_CHARS = 100_000


def read_prompts(path: str | os.PathLike) -> list[str]:
    """One prompt per non-blank line of a UTF-8 file (``-`` reads stdin). ``\\n`` inside a line
    stands for a newline. Raises InputError for a missing, unreadable or empty file."""
    p = Path(path)
    try:
        text = read_stdin_text() if str(path) == "-" else p.read_text("utf-8")
    except FileNotFoundError:
        raise InputError(f"{p}: no such prompt file") from None
    except UnicodeDecodeError:
        raise InputError(f"{p}: not UTF-8 text") from None
    except OSError as exc:
        raise InputError(f"{p}: cannot read ({exc.strerror or exc})") from None
    prompts = [line.replace("\\n", "\n") for line in text.splitlines() if line.strip()]
    if not prompts:
        raise InputError(f"{path}: the prompt file is empty (one prompt per line expected)")
    for i, s in enumerate(prompts):
        if len(s) > MAX_PROMPT_CHARS:
            raise InputError(f"{path}: prompt {i + 1} has {len(s)} characters (at most {MAX_PROMPT_CHARS})")
    return prompts


def default_prompt_files() -> list[Path]:
    """The packaged prompts ``anomtok/data/prompts_en.txt`` and ``prompts_ja.txt`` (they ship in
    the wheel, read through ``importlib.resources``)."""
    from ..resources import data_file

    return [data_file("prompts_en.txt"), data_file("prompts_ja.txt")]


def prompt_list(prompts: Any) -> list[str]:
    """The prompts of a run as a checked list: a list of non-empty strings, or a Path to a
    prompt file (read with ``read_prompts``); a bare string is refused as ambiguous."""
    if isinstance(prompts, (str, bytes)):
        raise InputError("prompts must be a list of strings or a Path to a prompt file (a bare string is ambiguous)")
    if isinstance(prompts, os.PathLike):
        return read_prompts(prompts)
    out = list(prompts)
    if not out:
        raise InputError("no prompts given")
    for i, s in enumerate(out):
        if not isinstance(s, str):
            raise InputError(f"prompt {i} is not a string")
        if not s.strip():
            raise InputError(f"prompt {i} is empty")
    return out
