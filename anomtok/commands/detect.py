"""``anomtok detect``: find a model's glitch tokens in text files, JSONL or standard input.

Parses the options, runs ``anomtok.detect`` and prints what ``anomtok.detect.render`` renders."""

from __future__ import annotations

import sys

import click

from .common import handle_errors

__all__ = ["command", "EXIT_GLITCH"]

EXIT_GLITCH = 3  # glitch tokens above --max-rate (bad input is 2)
_BIG_INPUT = 8 << 20  # bytes: show the progress bar from this size on (or for stdin)


@click.command("detect")
@click.argument("model")
@click.argument("inputs", nargs=-1, required=True, metavar="TEXT_FILES... | -")
@click.option(
    "--glitch",
    "glitch",
    required=True,
    type=click.Path(dir_okay=False),
    help="ranked.csv / ranked.parquet / glitch.csv from anomtok, or a text file of token ids.",
)
@click.option(
    "--field",
    default=None,
    metavar="NAME",
    help="JSON field holding the text (dotted path allowed: messages.0.content). "
    "Given: every input is JSONL. Default: 'text' for .jsonl/.ndjson inputs, others are plain text.",
)
@click.option(
    "--top",
    type=click.IntRange(1, None),
    default=None,
    metavar="K",
    help="Use only the K highest-ranked tokens of the list.",
)
@click.option("--min-score", type=float, default=None, metavar="S", help="Use only tokens with score >= S.")
@click.option(
    "--include-special",
    is_flag=True,
    help="Keep the list's special, unused, unknown and padding tokens and UTF-8-invalid bytes "
    "(left out by default; kept, a literal <unused12> or <bos> written in the text is reported).",
)
@click.option(
    "--max-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    metavar="R",
    help="Exit 3 when a document's or the overall glitch rate (hits / tokens) is above this.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
    help="Format of the summary.",
)
@click.option(
    "-o",
    "--out",
    "out",
    type=click.Path(dir_okay=False, allow_dash=True),
    default=None,
    help="Write the hits (JSONL) here; the summary then goes to stdout.",
)
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar on stderr (default: large inputs on a terminal)."
)
@click.option(
    "--quiet", "-q", is_flag=True, help="Print nothing but errors and the hits (the exit code still says 0 or 3)."
)
@handle_errors
def command(
    model: str,
    inputs: tuple[str, ...],
    glitch: str,
    field: str | None,
    top: int | None,
    min_score: float | None,
    include_special: bool,
    max_rate: float,
    fmt: str,
    out: str | None,
    progress: bool | None,
    quiet: bool,
) -> None:
    """Find the glitch tokens of MODEL in text: every occurrence, and the rate per document.

    \b
    Each input is tokenized as MODEL's tokenizer does it (no BOS/EOS added). Plain text is read
    line by line (a whole file is one document); JSONL records are documents. Every hit is one
    JSON line: source, line, start/end (character offsets in that line or in the record's
    field), text, token_id, token, score, rank. Lines that cannot be read (binary data, invalid
    UTF-8, bad JSON, missing field) are JSON lines with "type": "error"; the run goes on.
    Hits go to stdout and the summary to stderr, or with -o the hits to a file and the summary
    to stdout.
    Exit codes: 0 clean, 3 glitch rate above --max-rate, 2 bad input.
    Examples:
      anomtok rank gemma-3-270m -o out/gemma
      anomtok detect gemma-3-270m --glitch out/gemma/ranked.csv --top 1000 prompts.txt
      anomtok detect gemma-3-270m --glitch out/gemma/ranked.csv --top 1000 --field prompt data.jsonl -o hits.jsonl
      cat answer.txt | anomtok detect smollm2-135m --glitch ids.txt - > hits.jsonl
    """
    from .. import api
    from ..detect import check_inputs
    from ..detect.render import binary_stdout, exceeded_line, list_line, save_hits, summary, write_hits
    from ..options import DetectOptions
    from ..outputs import prepare_output

    options = DetectOptions(
        field=field, top=top, min_score=min_score, include_special=include_special, max_rate=max_rate
    )
    check_inputs(inputs)  # before the (slow) tokenizer load
    to_file = out is not None and out != "-"
    # the hits file may be none of the inputs (-o t.txt would replace t.txt); checked before any work
    target = prepare_output(out, kind="file", inputs=[*inputs, glitch, model]) if to_file else None
    run = api.detect(model, inputs, options, glitch=glitch)  # checked and loaded; the inputs are read below
    glitch_list = run.detector.glitch
    if not quiet:
        click.echo(list_line(glitch_list, glitch), err=True)

    total = run.total_bytes()
    show = progress if progress is not None else sys.stderr.isatty() and (total is None or total >= _BIG_INPUT)
    show = show and not quiet
    from tqdm import tqdm

    with tqdm(total=total, unit="B", unit_scale=True, file=sys.stderr, disable=not show, desc="detect") as bar:
        run.progress = bar.update
        if target is None:
            write_hits(run, binary_stdout())
            run.check_read()  # nothing readable in any input: bad input, exit 2
        else:
            with target:
                save_hits(run, out)  # no input readable: raised there, the hits file is not written

    if not quiet:
        click.echo(summary(run, fmt, model, glitch, len(glitch_list)), err=not to_file)
        if run.total.errors:
            msg = f'warning: {run.total.errors} lines could not be read ("type": "error" lines in the hits)'
            click.echo(msg, err=True)
    if run.exceeded:
        if not quiet:
            click.echo(exceeded_line(run, EXIT_GLITCH), err=True)
        sys.exit(EXIT_GLITCH)
