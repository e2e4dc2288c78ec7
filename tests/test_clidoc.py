"""docs/cli.md is exactly what every command's --help prints (regenerate: python tests/clidoc.py --update)."""

from __future__ import annotations

import clidoc


def test_cli_reference_matches_the_help_of_every_command():
    committed = clidoc.TARGET.read_text(encoding="utf-8") if clidoc.TARGET.exists() else ""
    assert committed == clidoc.render(), "docs/cli.md is stale: run `python tests/clidoc.py --update`"


def test_every_option_has_help_text():
    import click

    from anomtok.cli import cli

    ctx = click.Context(cli, info_name="anomtok")
    missing = [
        f"{name} {p.opts[0]}"
        for name in cli.list_commands(ctx)
        for p in cli.get_command(ctx, name).params
        if isinstance(p, click.Option) and not p.help and p.opts[0] not in ("--help",)
    ]
    assert not missing, f"options without help text: {missing}"
