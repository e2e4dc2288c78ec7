"""``anomtok plot``: maps and plots of a model's ranking, re-rendered from cached tables.

Parses the options, calls ``anomtok.plot`` (``anomtok.maps.plot_model``, the library function also
behind the plots step of ``anomtok scan``) and prints what it did.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from ..inputs import UMAP_SEED_MAX
from ..maps.plot import NEGTEMP_FILE, PLOTS_DIR
from .common import device_option, handle_errors

__all__ = ["command"]


@click.command("plot")
@click.argument("model")
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option(
    "--sample",
    type=click.IntRange(10, None),
    default=None,
    help="Map a stratified sample of N tokens (every flagged, unused and Japanese token kept).",
)
@click.option("--full", is_flag=True, help="Map the full vocabulary whatever its size.")
@click.option("--no-map", is_flag=True, help="Skip the UMAP maps; only the histogram and the score/norm plot.")
@click.option(
    "--seed", default=0, show_default=True, type=click.IntRange(0, UMAP_SEED_MAX), help="UMAP and sampling seed."
)
@click.option("--n-epochs", type=click.IntRange(1, None), default=None, help="UMAP epochs (default: UMAP's).")
@click.option("--label-top", default=25, show_default=True, type=click.IntRange(0, 500), help="Tokens to label.")
@click.option(
    "--mark-ids",
    type=click.Path(dir_okay=False),
    help=f"Token ids to mark (CSV/parquet with token_id, JSON list, or plain ids); default: OUT/{NEGTEMP_FILE}.",
)
@click.option("--format", "fmt", default="png,svg", show_default=True, help="Comma-separated: png, svg.")
@click.option(
    "--html",
    is_flag=True,
    help="Also write plots/map.html: every mapped token, pan/zoom, hover, search (opens offline).",
)
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")
@device_option
@handle_errors
def command(
    model: str,
    out_dir: str,
    sample: int | None,
    full: bool,
    no_map: bool,
    seed: int,
    n_epochs: int | None,
    label_top: int,
    mark_ids: str | None,
    fmt: str,
    html: bool,
    quiet: bool,
    device: str,
) -> None:
    """Plot MODEL's embedding maps (UMAP, cosine) and ranking plots into OUT/plots.

    \b
    Reuses OUT/ranked.parquet and OUT/umap.parquet when they were made from the same model files
    (and, for the map, the same settings): a re-render takes seconds. Writes map_score, map_kind,
    map_script, map_japanese, centroid_hist and score_norm as PNG and SVG; with --html also
    map.html, an interactive map to open in a browser (self-contained, no network needed).
    Examples:
      anomtok plot smollm2-135m -o out/smollm2
      anomtok plot gemma-3-270m -o out/gemma --sample 50000 --html
      anomtok plot ./model.gguf -o out/m --mark-ids out/m/negtemp_tokens.csv --format png
    """
    from .. import api
    from ..maps import CACHE_NAME, MapOptions
    from ..options import PlotOptions
    from ..outputs import RANK_WRITES, prepare_output

    formats = tuple(f.strip().lower() for f in fmt.split(",") if f.strip())
    if not formats:
        raise click.BadParameter("give at least one format", param_hint="--format")
    if full and sample is not None:
        raise click.BadParameter("use either --full or --sample, not both", param_hint="--full")
    if html and no_map:
        raise click.BadParameter("the interactive map needs the map: drop --no-map", param_hint="--html")
    options = PlotOptions(
        map=MapOptions(full=True if full else None, sample=sample, seed=seed, n_epochs=n_epochs),
        no_map=no_map,
        label_top=label_top,
        formats=formats,
        device=device,
        html=html,
    )  # device too: before loading
    # the ranking and the map cache are kept when a later step fails: a rerun reuses them
    target = prepare_output(
        out_dir, inputs=[model, mark_ids], writes=(*RANK_WRITES, CACHE_NAME, f"{PLOTS_DIR}/"), keep_partial=True
    )
    start = time.perf_counter()

    def progress(step: str) -> None:
        if not quiet:
            click.echo(f"  {step:<16} {time.perf_counter() - start:6.1f} s", err=True)

    with target:
        result = api.plot(model, options, out_dir=out_dir, mark_ids=mark_ids, progress=progress)
    if quiet:
        return
    if result.map_meta is not None:
        how = (
            "reused from the cache"
            if result.map_reused
            else f"computed in {result.map_meta.get('umap_seconds', 0):.1f} s"
        )
        click.echo(f"map: {result.map_meta.get('description', '')} ({how})", err=True)
    n_files = sum(len(v) for v in result.files.values())
    click.echo(f"wrote {n_files} files to {Path(out_dir) / PLOTS_DIR} ({time.perf_counter() - start:.1f} s)", err=True)
