"""CLI commands beyond ``nearest`` and ``rank``, one module each, each defining ``command``
(a click command). Modules import heavy libraries inside the command body, not at import time."""

from __future__ import annotations

import importlib

import click

# Module names, in the order they appear in --help.
MODULES = ("audit", "negtemp", "sweep", "verify", "plot", "scan", "compare", "detect")


def register(group: click.Group) -> None:
    for name in MODULES:
        group.add_command(importlib.import_module(f"{__name__}.{name}").command)
