"""CLI commands beyond ``nearest`` and ``rank``, one module each, each defining ``command``
(a click command). Modules import heavy libraries inside the command body, not at import time."""

from __future__ import annotations

import importlib

import click

# Module names, in the order they appear in --help. A module that does not exist yet is skipped.
MODULES = ("audit", "negtemp", "sweep", "verify", "plot", "scan", "compare", "detect")


def register(group: click.Group) -> None:
    for name in MODULES:
        try:
            mod = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__name__}.{name}":
                continue
            raise
        group.add_command(mod.command)
