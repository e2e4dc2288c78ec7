"""The ``anomtok`` command line: thin wrappers over the Python API.

Every command maps ``AnomtokError`` to one line on stderr and exit code 2; an unexpected
failure prints one line and exits 1 (``--debug`` shows the traceback).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

import click

from ._version import __version__
from .commands.common import (
    EXIT_BAD_INPUT,
    Terminated,
    device_option,
    handle_errors,
    interrupted,
    renamed,
    take_renamed,
)
from .device import resolve_device

__all__ = [
    "cli",
    "main",
    "usage_error",
    "handle_errors",
    "device_option",
    "interrupted",
    "Terminated",
    "EXIT_BAD_INPUT",
]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="anomtok")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def cli(debug: bool, verbose: int) -> None:
    """anomtok: find the blind spots of a language model's vocabulary.

    MODEL is a packaged alias (gemma-3-270m, smollm2-135m, minilm-l6), a .gguf or .safetensors
    file, a Hugging Face model folder, or a hub id.
    """
    from . import progress

    progress.configure(verbose=verbose)


def _progress(enabled: bool) -> Callable[[str], None] | None:
    if not enabled:
        return None
    start = time.perf_counter()

    def report(step: str) -> None:
        click.echo(f"  {step:<10} {time.perf_counter() - start:6.1f} s", err=True)

    return report


def _rank_options(device: str, nn: str, seed: int):
    from .ranking import RankOptions

    try:
        return RankOptions(device=device, nn=nn, seed=seed)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


# what ``nearest`` sorts by: the ranking's metrics but the nearest-neighbour one (nearest ranks without the k-NN search)
NEAREST_METRICS = ["centroid_l2", "centroid_cos", "norm", "mean_cos", "pc1_removed_cos", "unused_ref_cos", "score"]


@cli.command()
@click.argument("model")
@click.option(
    "-k", "--top", "k", default=50, show_default=True, type=click.IntRange(1, 10_000_000), help="How many tokens."
)
@click.option(
    "--metric",
    default="centroid_l2",
    show_default=True,
    help="What to sort by: " + ", ".join(NEAREST_METRICS) + " (the centroid distance, else the suspicious end first).",
)
@click.option("--far", is_flag=True, help="Farthest from the centroid (the other tail) instead of nearest.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
    help="table for people; csv (spreadsheet-safe, with bytes_hex) or json for programs.",
)
@click.option("--include-padding", is_flag=True, help="Also list embedding rows past the tokenizer's vocabulary.")
@device_option
@handle_errors
def nearest(model: str, k: int, metric: str, far: bool, fmt: str, include_padding: bool, device: str) -> None:
    """The K tokens nearest to (or with --far farthest from) the embedding centroid.

    \b
    Examples:
      anomtok nearest gemma-3-270m -k 20
      anomtok nearest smollm2-135m --far --format csv > far.csv
      anomtok nearest ./my-model --metric unused_ref_cos -k 100
    """
    from . import api
    from .errors import InputError
    from .export import safe_for_spreadsheet
    from .options import NearestOptions

    if metric not in NEAREST_METRICS:  # nn_cos needs the k-NN search, which nearest skips
        raise InputError(f"unknown metric {metric!r} for nearest; choose from {', '.join(NEAREST_METRICS)}")
    options = NearestOptions(
        k=k, metric=metric, far=far, include_padding=include_padding, rank=_rank_options(device, "off", 0)
    )
    frame = api.nearest(model, options)
    cols = ["token_id", "token", "kind", "script", metric] + [
        c for c in ("centroid_l2", "centroid_cos", "norm") if c != metric
    ]
    view = frame.select(["rank"] + cols) if metric == "score" else frame.select(cols)
    if fmt == "csv":
        click.echo(safe_for_spreadsheet(view.with_columns(bytes_hex=frame["bytes_hex"])).write_csv(), nl=False)
    elif fmt == "json":
        click.echo(json.dumps(view.with_columns(bytes_hex=frame["bytes_hex"]).to_dicts(), ensure_ascii=False, indent=1))
    else:
        from .table import format_table

        headers = ["#", *view.columns]
        at = headers.index("token")  # after "rank" too with --metric score
        rows = [[i + 1, *r] for i, r in enumerate(view.iter_rows())]
        rows = [[*r[:at], f"⟨{r[at]}⟩", *r[at + 1 :]] for r in rows]
        click.echo(format_table(rows, headers, right=[h not in ("token", "kind", "script") for h in headers]))


@cli.command("rank")
@click.argument("model")
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option(
    "--nn",
    type=click.Choice(["auto", "exact", "approx", "off"]),
    default="auto",
    show_default=True,
    help="Nearest-neighbour cosine: exact, approximate, or off; auto picks by size.",
)
@click.option(
    "--seed",
    default=0,
    show_default=True,
    type=click.IntRange(0, 2**63 - 1),
    help="Seed of the approximate nearest-neighbour sample.",
)
@click.option(
    "--show",
    "show",
    default=15,
    show_default=True,
    type=click.IntRange(0, 1000),
    callback=take_renamed,
    help="Rows of the ranking to print.",
)
@renamed("--top", "--show", "show", type=click.IntRange(0, 1000))
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")
@click.option(
    "--hash",
    "full_hash",
    is_flag=True,
    help="Record the sha256 of every model file in meta.json (reads them in full; default: a cheap fingerprint).",
)
@device_option
@handle_errors
def rank_cmd(
    model: str, out_dir: str, nn: str, seed: int, show: int, quiet: bool, full_hash: bool, device: str
) -> None:
    """Rank every token of MODEL; write ranked.csv, ranked.parquet and meta.json to OUT.

    \b
    Rank 1 is the most suspicious token by the default score (cosine to the mean of
    known-unused tokens after removing the first principal component; see the README).
    Examples:
      anomtok rank smollm2-135m -o out/smollm2
      anomtok rank ./model.gguf -o out/m --nn off
    """
    from . import api
    from .loading import load
    from .outputs import RANK_WRITES, prepare_output
    from .table import format_table

    t0 = time.perf_counter()
    options = _rank_options(device, nn, seed)
    resolve_device(device)  # fail on a bad device before the slow part
    target = prepare_output(out_dir, inputs=[model], writes=RANK_WRITES)  # unwritable or an input: before loading
    with target:  # a failed or interrupted run leaves no folder behind
        emb = load(model, hash_files=full_hash)
        if not quiet:
            click.echo(f"loaded {emb!r} in {emb.provenance.seconds:.2f} s", err=True)
        result = api.rank(emb, options, out_dir=out_dir, progress=_progress(not quiet))
    if quiet:
        return
    inv = result.meta["invalid_rows"]["count"]
    if inv:
        click.echo(f"warning: {inv} rows are NaN, infinite or zero: kept out of the centroid, ranked first", err=True)
    sc = result.meta["score"]
    click.echo(
        f"score: cosine to the mean of {sc['reference_size']} reference tokens ({sc['reference_source']}) "
        f"on the {sc['matrix']}"
    )
    if show:
        import polars as pl

        top = result.frame.filter(~pl.col("is_reference")).head(show)
        click.echo(f"top {show} tokens outside the reference set (every token is in ranked.csv):")
        rows = [
            [r["rank"], r["token_id"], f"⟨{r['token']}⟩", r["kind"], r["script"], r["score"], r["norm"]]
            for r in top.iter_rows(named=True)
        ]
        click.echo(
            format_table(
                rows,
                ["rank", "token_id", "token", "kind", "script", "score", "norm"],
                right=[True, True, False, False, False, True, True],
            )
        )
    click.echo(f"wrote {out_dir}/ranked.csv, ranked.parquet, meta.json ({time.perf_counter() - t0:.1f} s)", err=True)


def _register_commands() -> None:
    from .commands import register

    register(cli)


_register_commands()


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated()


def main(argv: list[str] | None = None) -> None:
    """The console entry point: signal handlers first (before any heavy import), then click in
    non-standalone mode so that a usage error is one ``anomtok: error:`` line (exit 2) with
    click's hint, and Ctrl-C or SIGTERM anywhere is one line."""
    import signal

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _on_sigterm)
    args = sys.argv[1:] if argv is None else list(argv)
    try:  # what click's own main() does, without its Ctrl-C handling (it prints a blank line first)
        with cli.make_context("anomtok", args) as ctx:
            rv = cli.invoke(ctx)
    except click.exceptions.Exit as exc:  # --help, --version
        sys.exit(exc.exit_code)
    except KeyboardInterrupt as exc:
        interrupted(exc)
    except click.exceptions.Abort:  # click's own Ctrl-C handling (e.g. at a prompt)
        interrupted(KeyboardInterrupt())
    except click.ClickException as exc:
        usage_error(exc)
    except BrokenPipeError:  # `anomtok nearest ... | head`: not an error
        sys.stderr.close()
        sys.exit(0)
    # the command is done: what is left goes with the process, so the collector need not walk the
    # (torch, transformers) objects again at interpreter shutdown, 0.3 to 0.5 s of a lookup here
    import gc

    gc.freeze()
    sys.exit(rv if isinstance(rv, int) else 0)


def usage_error(exc: click.ClickException) -> None:
    """One line: ``anomtok: error: <click's message> (see 'anomtok CMD --help')``, exit 2."""
    if isinstance(exc, click.exceptions.NoArgsIsHelpError):  # bare `anomtok`: the help, as click shows it
        exc.show()
        sys.exit(exc.exit_code)
    hint = ""
    ctx = getattr(exc, "ctx", None)
    if ctx is not None:
        hint = f" (see '{ctx.command_path} {ctx.help_option_names[0] if ctx.help_option_names else '--help'}')"
    message = " ".join(exc.format_message().split())
    click.echo(f"anomtok: error: {message}{hint}", err=True)
    sys.exit(exc.exit_code if exc.exit_code else EXIT_BAD_INPUT)


if __name__ == "__main__":  # pragma: no cover
    main()
