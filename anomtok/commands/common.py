"""What every command shares: one-line errors (``handle_errors``), Ctrl-C/SIGTERM as one line
(``interrupted``, ``Terminated``) and the ``--device`` option.

Here rather than in ``anomtok.cli`` so that a command module imports it without importing
``anomtok.cli``, which registers every command module when it is imported (a cycle when a command
module is imported first). ``anomtok.cli`` re-exports these names.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import click

from ..errors import AnomtokError

__all__ = ["handle_errors", "device_option", "renamed", "take_renamed", "interrupted", "Terminated", "EXIT_BAD_INPUT"]

EXIT_BAD_INPUT = 2

device_option = click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda[:N].")


def renamed(old: str, new: str, dest: str, **attrs: Any) -> Callable[[Any], Any]:
    """The old spelling ``old`` of the option ``new``, kept hidden for one release: it warns on stderr
    and hands its value to ``dest``, the parameter of ``new`` (whose option takes
    ``callback=take_renamed``). Works whichever click >= 8.1 processes the options first."""

    def store(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is None or value is False:
            return value
        click.echo(f"anomtok: warning: {old} is now {new}; the old name goes in the next release", err=True)
        ctx.meta[f"anomtok.renamed.{dest}"] = value
        return value

    attrs.setdefault("help", f"Old spelling of {new}, kept for one release.")
    # a name of its own: the old spelling's derived name is often the new option's (--no-umap and
    # --no-map "no_umap"), and two options of one name share a parsed value (the new one would warn)
    return click.option(old, f"renamed_{dest}", hidden=True, expose_value=False, callback=store, **attrs)


def take_renamed(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """The callback of an option that has an old spelling (``renamed``): the old one's value when given."""
    return ctx.meta.get(f"anomtok.renamed.{param.name}", value)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so every ``finally`` and temporary-file cleanup runs."""


def interrupted(exc: BaseException) -> None:
    """Ctrl-C (exit 130) or SIGTERM (exit 143): one line, no traceback."""
    if isinstance(exc, Terminated):
        click.echo("anomtok: terminated", err=True)
        sys.exit(143)
    click.echo("anomtok: interrupted", err=True)
    sys.exit(130)


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        root = click.get_current_context().find_root().params
        debug = root.get("debug", False)
        if kwargs.get("quiet"):
            from .. import progress

            progress.configure(quiet=True, verbose=root.get("verbose", 0))
        try:
            return fn(*args, **kwargs)
        except AnomtokError as exc:
            if debug:
                raise
            click.echo(f"anomtok: error: {exc}", err=True)
            sys.exit(EXIT_BAD_INPUT)
        except KeyboardInterrupt as exc:
            interrupted(exc)
        except MemoryError:
            click.echo("anomtok: error: out of memory (try a smaller model or --device cuda)", err=True)
            sys.exit(1)
        except (click.exceptions.Exit, click.ClickException, SystemExit):
            raise
        except OSError as exc:  # read-only or full output, a folder where a file is wanted, ...
            if debug:
                raise
            where = f"{exc.filename}: " if exc.filename else ""
            click.echo(f"anomtok: error: {where}{exc.strerror or exc}", err=True)
            sys.exit(EXIT_BAD_INPUT)
        except Exception as exc:  # noqa: BLE001 - never show a traceback unless asked
            if debug:
                raise
            click.echo(
                f"anomtok: internal error: {exc.__class__.__name__}: {exc} (rerun with --debug for the traceback)",
                err=True,
            )
            sys.exit(1)

    return wrapper
