"""``anomtok compare DIR DIR ...``."""

from __future__ import annotations

import click

from .common import handle_errors, renamed, take_renamed

__all__ = ["command"]


@click.command("compare")
@click.argument("folders", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option(
    "--show",
    "top",
    default=25,
    show_default=True,
    type=click.IntRange(1, 10000),
    callback=take_renamed,
    help="Tokens flagged in both to print for each pair of reports.",
)
@renamed("--top", "--show", "top", type=click.IntRange(1, 10000))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "markdown", "json"]),
    default=None,
    help="Output format. Default: a table on the terminal; with -o, json for a .json file, else markdown.",
)
@click.option(
    "-o",
    "--out",
    "out_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the comparison to this file (e.g. cmp.md) instead of the terminal.",
)
@handle_errors
def command(folders: tuple[str, ...], top: int, fmt: str | None, out_file: str | None) -> None:
    """Compare report folders: the glitch tokens each pair of models both flag (matched by their
    exact bytes, so models with different tokenizers are compared too) and a side-by-side summary.
    Reads only meta.json and glitch.csv (ranked.parquet for a `rank` folder).

    \b
    Examples:
      anomtok compare reports/gemma-3-270m reports/smollm2-135m reports/minilm-l6
      anomtok compare reports/gemma-3-270m reports/smollm2-135m -o cmp.md
    """
    from .. import api
    from ..options import CompareOptions
    from ..outputs import prepare_output

    options = CompareOptions(top=top, format=fmt)
    # an output inside a report folder would change that report (-o A/meta.json breaks report A)
    target = prepare_output(out_file, kind="file", report_dirs=folders) if out_file else None
    if target is not None:
        with target:
            api.compare(folders, options, out=out_file)
    else:
        click.echo(api.compare(folders, options).text(options.format or "table"))
