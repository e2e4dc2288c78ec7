"""What every ``meta.json`` records about the run that wrote it: the command and the versions.

``run_info("negtemp")`` gives ``{"command": ..., "versions": {...}}``:

* ``command``: the command line (``anomtok negtemp smollm2-135m -o out``) when anomtok runs
  from its CLI, else the Python API call that wrote the file (``anomtok.negtemp``);
* ``versions``: python, anomtok, torch, transformers, polars, numpy (``None`` when a package
  is not installed). Read from the installed packages' metadata: nothing is imported for it.

>>> info = run_info("rank")
>>> sorted(info["versions"])
['anomtok', 'numpy', 'polars', 'python', 'torch', 'transformers']
"""

from __future__ import annotations

import functools
import os
import platform
import shlex
import sys
from importlib import metadata
from typing import Any

from ._version import __version__

__all__ = ["run_info", "command_line", "versions", "PACKAGES"]

PACKAGES = ("torch", "transformers", "polars", "numpy")


@functools.lru_cache(maxsize=1)
def _versions() -> tuple[tuple[str, str | None], ...]:
    found: list[tuple[str, str | None]] = [("python", platform.python_version()), ("anomtok", __version__)]
    for name in PACKAGES:
        try:
            found.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            found.append((name, None))
    return tuple(found)


def versions() -> dict[str, str | None]:
    """``{"python": "3.11.9", "anomtok": ..., "torch": ..., "transformers": ..., "polars": ..., "numpy": ...}``."""
    return dict(_versions())


def _from_cli() -> Any:
    """The click context of the running anomtok command, or None outside the CLI."""
    click = sys.modules.get("click")  # only when click is already in use: never import it here
    if click is None:
        return None
    ctx = click.get_current_context(silent=True)
    if ctx is None or ctx.find_root().info_name not in ("anomtok", "cli"):
        return None
    return ctx


def command_line(api_call: str) -> str:
    """The command line that runs now, or ``anomtok.<api_call>`` when not run from the CLI."""
    ctx = _from_cli()
    if ctx is None:
        return f"anomtok.{api_call}"
    prog = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if prog in ("anomtok", "anomtok.exe", "__main__.py"):  # the console script or python -m anomtok
        return shlex.join(["anomtok", *sys.argv[1:]])
    return ctx.command_path  # invoked in-process (tests, notebooks): the raw arguments are not known


def run_info(api_call: str) -> dict[str, Any]:
    """``{"command": command_line(api_call), "versions": versions()}``, for a ``meta.json``."""
    return {"command": command_line(api_call), "versions": versions()}
