"""``anomtok detect``: find a model's glitch tokens in text files, JSONL or standard input."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from ..cli import handle_errors

EXIT_GLITCH = 3  # glitch tokens above --max-rate (bad input is 2)
_BIG_INPUT = 8 << 20  # bytes: show the progress bar from this size on (or for stdin)


@click.command("detect")
@click.argument("model")
@click.argument("inputs", nargs=-1, required=True, metavar="TEXT_FILES... | -")
@click.option("--glitch", "glitch", required=True, type=click.Path(dir_okay=False),
              help="ranked.csv / ranked.parquet / glitch.csv from anomtok, or a text file of token ids.")
@click.option("--field", default=None, metavar="NAME", help="JSON field holding the text (dotted path allowed: messages.0.content). "
              "Given: every input is JSONL. Default: 'text' for .jsonl/.ndjson inputs, others are plain text.")
@click.option("--top", type=click.IntRange(1, None), default=None, metavar="K", help="Use only the K highest-ranked tokens of the list.")
@click.option("--min-score", type=float, default=None, metavar="S", help="Use only tokens with score >= S.")
@click.option("--include-special", is_flag=True,
              help="Keep the list's special, unused, unknown and padding tokens and UTF-8-invalid bytes "
              "(left out by default; kept, a literal <unused12> or <bos> written in the text is reported).")
@click.option("--max-rate", type=click.FloatRange(0, 1), default=0.0, show_default=True, metavar="R",
              help="Exit 3 when a document's or the overall glitch rate (hits / tokens) is above this.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True,
              help="Format of the summary.")
@click.option("-o", "--out", "out", type=click.Path(dir_okay=False, allow_dash=True), default=None,
              help="Write the hits (JSONL) here; the summary then goes to stdout.")
@click.option("--progress/--no-progress", default=None, help="Progress bar on stderr (default: large inputs on a terminal).")
@handle_errors
def command(model: str, inputs: tuple[str, ...], glitch: str, field: str | None, top: int | None,
            min_score: float | None, include_special: bool, max_rate: float, fmt: str, out: str | None,
            progress: bool | None) -> None:
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
    from ..cache import atomic_path
    from ..detect import DetectRun, GlitchDetector, check_inputs, load_glitch_list
    from ..outputs import prepare_output

    check_inputs(inputs)  # before the (slow) tokenizer load
    to_file = out is not None and out != "-"
    # the hits file may be none of the inputs (-o t.txt would replace t.txt); checked before any work
    target = prepare_output(out, kind="file", inputs=[*inputs, glitch, model]) if to_file else None
    glitch_list = load_glitch_list(glitch, top=top, min_score=min_score, include_special=include_special)
    detector = GlitchDetector(model, glitch_list)
    run = DetectRun(detector, inputs, field=field or "text", jsonl=True if field else None, max_rate=max_rate)
    left = ", ".join(f"{v} {k}" for k, v in glitch_list.left_out.items())
    click.echo(f"detect: {len(glitch_list)} glitch tokens from {glitch}: {glitch_list.why}"
               f"{f' (left out: {left})' if left else ''}", err=True)

    total = run.total_bytes()
    show = progress if progress is not None else sys.stderr.isatty() and (total is None or total >= _BIG_INPUT)
    from tqdm import tqdm

    with tqdm(total=total, unit="B", unit_scale=True, file=sys.stderr, disable=not show, desc="detect") as bar:
        run.progress = bar.update
        if target is None:
            sys.stdout.flush()
            _write_events(run, getattr(sys.stdout, "buffer", None) or _TextSink(sys.stdout))
            run.check_read()  # nothing readable in any input: bad input, exit 2
        else:
            with target, atomic_path(out) as tmp, open(tmp, "wb") as f:
                _write_events(run, f)
                run.check_read()  # raised here, the hits file is not written

    summary_to_stderr = not to_file
    click.echo(_render(run, fmt, model, glitch, len(glitch_list)), err=summary_to_stderr)
    if run.total.errors:
        click.echo(f"warning: {run.total.errors} lines could not be read (\"type\": \"error\" lines in the hits)", err=True)
    if run.exceeded:
        t = run.total
        click.echo(f"exit {EXIT_GLITCH}: glitch rate {100 * t.rate:.3f}% (highest document {100 * t.max_doc_rate:.3f}%, "
                   f"{t.docs_over} of {t.documents} documents above) with --max-rate {max_rate:g}: {t.hits} hits in {t.tokens} tokens",
                   err=True)
        sys.exit(EXIT_GLITCH)


class _TextSink:
    """A stdout without a binary buffer (some notebooks, IDEs): write decoded text."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def write(self, data: bytes) -> None:
        self.stream.write(data.decode("utf-8"))

    def flush(self) -> None:
        self.stream.flush()


def _write_events(run: Any, stream: Any) -> None:
    dumps = json.dumps
    for event in run:
        records = event.hit_dicts() if hasattr(event, "hit_dicts") else [event.to_dict()]
        if records:
            stream.write("".join(dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8"))
    stream.flush()


_KEYS = ("source", "documents", "records", "tokens", "hits", "rate", "docs_with_hits", "docs_over", "max_doc_rate", "errors")


def _row(summary: Any, source: str | None = None) -> dict[str, Any]:
    d = summary.to_dict() | ({"source": source} if source else {})
    return {k: d[k] for k in _KEYS}


def _summary_rows(run: Any) -> list[dict[str, Any]]:
    """One row per input, and a total row when there are several."""
    rows = [_row(s) for s in run.sources]
    return rows + [_row(run.total, "(total)")] if len(rows) > 1 else rows


def _found_rows(run: Any, limit: int | None) -> list[dict[str, Any]]:
    det = run.detector
    return [{"token_id": i, "token": det.token(i), "hits": n, "score": det.glitch.scores.get(i),
             "rank": det.glitch.ranks.get(i)} for i, n in run.found.most_common(limit)]


def _render(run: Any, fmt: str, model: str, glitch: str, n_glitch: int) -> str:
    if fmt == "json":
        doc = {"model": model, "glitch": glitch, "glitch_tokens": n_glitch, "max_rate": run.max_rate,
               "exceeded": run.exceeded, "sources": [_row(s) for s in run.sources], "total": _row(run.total, "(total)"),
               "found": _found_rows(run, None)}
        return json.dumps(doc, ensure_ascii=False, indent=1)
    rows = _summary_rows(run)
    if fmt == "csv":
        import polars as pl

        from ..export import safe_for_spreadsheet

        frame = pl.DataFrame(rows, schema_overrides={"rate": pl.Float64, "max_doc_rate": pl.Float64})
        return safe_for_spreadsheet(frame, columns=("source",)).write_csv().rstrip("\n")
    from ..table import format_table

    pct = lambda r: f"{100 * r:.3f}%"  # noqa: E731
    body = [[r["source"], r["documents"], r["tokens"], r["hits"], pct(r["rate"]), r["docs_over"],
             pct(r["max_doc_rate"]), r["errors"]] for r in rows]
    text = format_table(body, ["source", "docs", "tokens", "hits", "rate", "docs>max", "max doc rate", "errors"],
                        right=[False] + [True] * 7)
    found = _found_rows(run, 10)
    if found:
        more = f" (10 of {len(run.found)})" if len(run.found) > 10 else ""
        text += f"\n\nglitch tokens found{more}:\n" + format_table(
            [[f["token_id"], f"⟨{f['token']}⟩", f["hits"], f["rank"], f["score"]] for f in found],
            ["token_id", "token", "hits", "rank", "score"], right=[True, False, True, True, True])
    return text
