"""``anomtok plot``: maps and plots of a model's ranking, re-rendered from cached tables.

``plot_model`` is the Python equivalent (what ``anomtok scan`` calls): it reuses
``DIR/ranked.parquet`` and ``DIR/umap.parquet`` when they were made from the same model files with
the same settings, so a re-render neither reloads the weights nor recomputes UMAP.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import click

from ..errors import InputError
from ..inputs import UMAP_SEED_MAX

__all__ = ["command", "plot_model", "PlotResult", "read_ids", "NEGTEMP_FILE"]

log = logging.getLogger(__name__)

NEGTEMP_FILE = "negtemp_tokens.csv"  # written by `anomtok negtemp`; marked on the plots when present
PLOTS_DIR = "plots"

# ``anomtok.cli`` imports this module to register ``command``; importing ``anomtok.cli`` from here
# at import time would be circular when this module is imported first (``plot_model`` is library
# API), so the shared CLI pieces are resolved when the command runs.
_device_option = click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda[:N].")


def _handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from ..cli import handle_errors

        return handle_errors(fn)(*args, **kwargs)

    return wrapper


@dataclass
class PlotResult:
    files: dict[str, list[Path]]
    map_meta: dict[str, Any] | None
    ranking_reused: bool
    map_reused: bool
    marked: int
    seconds: dict[str, float] = field(default_factory=dict)


def read_ids(path: str | Path) -> list[int]:
    """Token ids from a file: a CSV or parquet table with a ``token_id`` column, a JSON list (or
    an object with ``token_ids``), or integers separated by spaces, commas or new lines (``#``
    starts a comment). anomtok's one token-id reader, ``anomtok.detect.read_token_ids``."""
    from ..detect.glitchlist import read_token_ids

    return read_token_ids(path)


def _title(spec: str, meta: dict[str, Any]) -> str:
    src = str((meta.get("source") or {}).get("source") or spec)
    return Path(src).name if ("/" in src and Path(src).expanduser().exists()) else src


def plot_model(model: Any, out_dir: str | Path, *, map_options: Any = None, no_map: bool = False,
               label_top: int = 25, mark_ids: Iterable[int] | None = None, mark_name: str | None = None,
               formats: Sequence[str] = ("png", "svg"), device: str = "auto",
               progress: Callable[[str], None] | None = None) -> PlotResult:
    """Rank (or reuse ``ranked.parquet``), map (or reuse ``umap.parquet``) and render every plot
    into ``out_dir/plots``. ``model``: a spec for ``anomtok.load`` or loaded ``ModelEmbeddings``.
    ``mark_ids`` default: the ids of ``out_dir/negtemp_tokens.csv`` when it exists."""
    from .. import api
    from ..embeddings import ModelEmbeddings
    from ..export import read_table
    from ..loading import load
    from ..plots import FORMATS, render_all
    from ..ranking import RankOptions
    from ..umap_map import CACHE_NAME, MapOptions, MapSettings, compute_map, load_map, source_fingerprint, source_matches

    for fmt in formats:
        if fmt not in FORMATS:
            raise InputError(f"format must be among {', '.join(FORMATS)}, not {fmt!r}")
    opt = map_options or MapOptions()
    from ..outputs import check_dir

    out = check_dir(out_dir)  # created when the first file is written (nothing is left when loading fails)
    seconds: dict[str, float] = {}
    t = time.perf_counter()

    def tick(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        seconds[name] = round(now - t, 2)
        t = now
        if progress:
            progress(name)

    emb = model if isinstance(model, ModelEmbeddings) else None
    spec = emb.provenance.source if emb is not None else str(model)

    # -- the ranking: reuse ranked.parquet when meta.json says it came from these very files
    meta: dict[str, Any] = {}
    frame = None
    ranked, meta_path = out / "ranked.parquet", out / "meta.json"
    if ranked.exists() and meta_path.exists():
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            meta = {}
        if source_matches(spec, meta.get("source")):
            frame = read_table(ranked)
    reused = frame is not None
    if frame is None:
        if emb is None:
            emb = load(model)
            tick("load")
        result = api.rank(emb, out_dir=out, options=RankOptions(device=device))
        frame, meta = result.frame, result.meta
    tick("ranking (reused)" if reused else "ranking")

    # -- marked tokens
    name = mark_name
    if mark_ids is None and (out / NEGTEMP_FILE).exists():
        mark_ids = read_ids(out / NEGTEMP_FILE)
        name = name or "negative-temperature tokens"
    marks: list[int] = []
    if mark_ids is not None:
        known = set(frame["token_id"].to_list())
        marks = sorted({int(i) for i in mark_ids})
        unknown = [i for i in marks if i not in known]
        if unknown:
            log.warning("%d marked ids are not rows of the embedding and are ignored (e.g. %s)", len(unknown), unknown[:5])
            marks = [i for i in marks if i in known]

    # -- the map: reuse umap.parquet when its settings and source match, else compute
    res = None
    map_reused = False
    if not no_map:
        cache = out / CACHE_NAME
        dim = int((meta.get("shape") or [0, 0])[1]) if emb is None else int(emb.input.shape[1])
        valid_rows = int(frame["valid"].sum()) if "valid" in frame.columns else frame.height
        settings = MapSettings.make(opt, valid_rows, frame.height, dim)
        if emb is None:
            res = load_map(cache, settings, frame, source=source_fingerprint(meta.get("source")), extra_ids=marks)
        if res is None:
            if emb is None:
                emb = load(model)
                tick("load")
            src = emb.provenance.to_dict()
            res = compute_map(emb.input.float().cpu().numpy(), frame, opt, cache=cache, source=src, extra_ids=marks)
        map_reused = res.from_cache
        tick("map (cached)" if map_reused else "map")

    files = render_all(frame, out / PLOTS_DIR, res, title=_title(spec, meta), label_top=label_top,
                       mark_ids=marks or None, mark_name=name or "marked tokens", formats=formats)
    tick("render")
    return PlotResult(files=files, map_meta=res.meta if res is not None else None, ranking_reused=reused,
                      map_reused=map_reused, marked=len(marks), seconds=seconds)


@click.command("plot")
@click.argument("model")
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--sample", type=click.IntRange(10, None), default=None,
              help="Map a stratified sample of N tokens (every flagged, unused and Japanese token kept).")
@click.option("--full", is_flag=True, help="Map the full vocabulary whatever its size.")
@click.option("--no-map", is_flag=True, help="Skip the UMAP maps; only the histogram and the score/norm plot.")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0, UMAP_SEED_MAX), help="UMAP and sampling seed.")
@click.option("--n-epochs", type=click.IntRange(1, None), default=None, help="UMAP epochs (default: UMAP's).")
@click.option("--label-top", default=25, show_default=True, type=click.IntRange(0, 500), help="Tokens to label.")
@click.option("--mark-ids", type=click.Path(dir_okay=False),
              help=f"Token ids to mark (CSV/parquet with token_id, JSON list, or plain ids); default: OUT/{NEGTEMP_FILE}.")
@click.option("--format", "fmt", default="png,svg", show_default=True, help="Comma-separated: png, svg.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")
@_device_option
@_handle_errors
def command(model: str, out_dir: str, sample: int | None, full: bool, no_map: bool, seed: int, n_epochs: int | None,
            label_top: int, mark_ids: str | None, fmt: str, quiet: bool, device: str) -> None:
    """Plot MODEL's embedding maps (UMAP, cosine) and ranking plots into OUT/plots.

    \b
    Reuses OUT/ranked.parquet and OUT/umap.parquet when they were made from the same model files
    (and, for the map, the same settings): a re-render takes seconds. Writes map_score, map_kind,
    map_script, map_japanese, centroid_hist and score_norm as PNG and SVG.
    Examples:
      anomtok plot smollm2-135m -o out/smollm2
      anomtok plot gemma-3-270m -o out/gemma --sample 50000
      anomtok plot ./model.gguf -o out/m --mark-ids out/m/negtemp_tokens.csv --format png
    """
    from ..outputs import RANK_WRITES, prepare_output
    from ..umap_map import CACHE_NAME, MapOptions

    formats = tuple(f.strip().lower() for f in fmt.split(",") if f.strip())
    if not formats:
        raise click.BadParameter("give at least one format", param_hint="--format")
    if full and sample is not None:
        raise click.BadParameter("use either --full or --sample, not both", param_hint="--full")
    options = MapOptions(full=True if full else None, sample=sample, seed=seed, n_epochs=n_epochs)
    from ..device import resolve_device

    resolve_device(device)  # a bad --device before the model loads
    # the ranking and the map cache are kept when a later step fails: a rerun reuses them
    target = prepare_output(out_dir, inputs=[model, mark_ids], writes=(*RANK_WRITES, CACHE_NAME, f"{PLOTS_DIR}/"),
                            keep_partial=True)
    ids = read_ids(mark_ids) if mark_ids else None
    start = time.perf_counter()

    def progress(step: str) -> None:
        if not quiet:
            click.echo(f"  {step:<16} {time.perf_counter() - start:6.1f} s", err=True)

    with target:
        result = plot_model(model, out_dir, map_options=options, no_map=no_map, label_top=label_top, mark_ids=ids,
                            mark_name=(("negative-temperature tokens" if Path(mark_ids).name == NEGTEMP_FILE
                                        else "marked tokens") if mark_ids else None), formats=formats, device=device,
                            progress=progress)
    if quiet:
        return
    if result.map_meta is not None:
        how = "reused from the cache" if result.map_reused else f"computed in {result.map_meta.get('umap_seconds', 0):.1f} s"
        click.echo(f"map: {result.map_meta.get('description', '')} ({how})", err=True)
    n_files = sum(len(v) for v in result.files.values())
    click.echo(f"wrote {n_files} files to {Path(out_dir) / PLOTS_DIR} ({time.perf_counter() - start:.1f} s)", err=True)
