"""``anomtok compare DIR DIR ...``."""

from __future__ import annotations

import click

from ._common import handle_errors

__all__ = ["command"]


@click.command("compare")
@click.argument("folders", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--top", default=25, show_default=True, type=click.IntRange(1, 10000), help="Shared tokens to list.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["markdown", "json"]),
    default="markdown",
    show_default=True,
    help="Output format (with -o: of the file written).",
)
@click.option(
    "-o", "--out", "out_file", type=click.Path(dir_okay=False), default=None, help="Write here instead of stdout."
)
@handle_errors
def command(folders: tuple[str, ...], top: int, fmt: str, out_file: str | None) -> None:
    """Compare report folders: shared glitch tokens (Jaccard) for models that share a tokenizer,
    and a side-by-side summary for all.

    \b
    Example:
      anomtok compare reports/gemma-3-270m reports/smollm2-135m reports/minilm-l6
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
        click.echo(api.compare(folders, options).text(options.format))
