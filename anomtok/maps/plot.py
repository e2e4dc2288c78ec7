"""``plot_model``: a report folder's maps and plots, from cached tables when they can be trusted.

The one library function behind ``anomtok plot`` and the ``plots`` step of ``anomtok scan``. It
reuses ``DIR/ranked.parquet`` (when ``meta.json`` says it came from the same model files) and
``DIR/umap.parquet`` (when it was made with the same settings from the same matrix or files), so a
re-render neither reloads the weights nor recomputes UMAP. Heavy libraries are imported when it
runs, not when this module is imported.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from ..embeddings import ModelEmbeddings
    from ..ranking import Ranking
    from .options import MapOptions

__all__ = ["plot_model", "PlotResult", "read_ids", "NEGTEMP_FILE", "PLOTS_DIR"]

log = logging.getLogger(__name__)

NEGTEMP_FILE = "negtemp_tokens.csv"  # written by `anomtok negtemp`; marked on the plots when present
PLOTS_DIR = "plots"


@dataclass
class PlotResult:
    """What ``plot_model`` wrote (plot name -> files), the map's facts (None without a map), whether
    the ranking and the map were reused rather than computed, how many tokens were marked, and the
    seconds of each step."""

    files: dict[str, list[Path]]
    map_meta: dict[str, Any] | None
    ranking_reused: bool
    map_reused: bool
    marked: int
    seconds: dict[str, float] = field(default_factory=dict)

    def __repr__(self) -> str:
        """Two lines: the files per plot, and what was reused (not every path)."""
        n = sum(len(v) for v in self.files.values())
        where = next((str(v[0].parent) for v in self.files.values() if v), "nowhere")
        reused = [w for w, r in (("ranking", self.ranking_reused), ("map", self.map_reused)) if r]
        return (
            f"PlotResult: {n} files ({', '.join(self.files)}) in {where}\n"
            f"  reused: {', '.join(reused) or 'nothing'}; {self.marked} marked tokens; .files, .map_meta, .seconds"
        )


def read_ids(path: str | Path) -> list[int]:
    """Token ids from a file: a CSV or parquet table with a ``token_id`` column, a JSON list (or
    an object with ``token_ids``), or integers separated by spaces, commas or new lines (``#``
    starts a comment). anomtok's one token-id reader, ``anomtok.detect.read_token_ids``."""
    from ..detect.glitchlist import read_token_ids

    return read_token_ids(path)


def _title(spec: str, meta: dict[str, Any]) -> str:
    src = str((meta.get("source") or {}).get("source") or spec)
    return Path(src).name if ("/" in src and Path(src).expanduser().exists()) else src


def _counts(out: Path) -> dict[int, int] | None:
    """Negative-temperature counts by token id from the folder's ``negtemp_tokens.csv`` (``anomtok
    negtemp -o DIR``) or ``negtemp/negtemp_tokens.csv`` (a scan), else None."""
    from .html import read_counts

    for path in (out / NEGTEMP_FILE, out / "negtemp" / NEGTEMP_FILE):
        if path.exists():
            try:
                return read_counts(path)
            except InputError as exc:  # an optional input: the map loses the counts, not the page
                log.warning("%s; the interactive map shows no negative-temperature counts", exc)
    return None


def _rank_into(emb: ModelEmbeddings, out: Path, device: str) -> Ranking:
    """Rank ``emb`` and write ``ranked.csv``, ``ranked.parquet`` and ``meta.json`` into ``out`` with
    the rank step's marker, as ``anomtok rank -o`` does (so ``anomtok scan`` reuses them)."""
    from ..export import write_ranking
    from ..ranking import RankOptions, rank
    from ..steps import rank_key

    started = time.perf_counter()
    options = RankOptions(device=device)
    result = rank(emb, options)
    write_ranking(result, out, step_key=rank_key(emb.provenance.to_dict(), options), started=started)
    return result


def plot_model(
    model: Any,
    out_dir: str | Path,
    *,
    ranking: Ranking | None = None,
    map_options: MapOptions | None = None,
    no_map: bool = False,
    label_top: int = 25,
    mark_ids: Iterable[int] | None = None,
    mark_name: str | None = None,
    title: str | None = None,
    formats: Sequence[str] = ("png", "svg"),
    device: str = "auto",
    progress: Callable[[str], None] | None = None,
    html: bool = False,
) -> PlotResult:
    """Rank (or reuse), map (or reuse ``umap.parquet``) and render every plot into ``out_dir/plots``.

    ``model``: a spec for ``anomtok.load`` or loaded ``ModelEmbeddings`` (loaded only when a step
    needs the weights). ``ranking``: the model's ranking when the caller has it (``anomtok scan``);
    otherwise ``out_dir/ranked.parquet`` is reused when it came from the same files, else the model
    is ranked (on ``device``) and the ranking written there. ``map_options``: which rows are mapped
    and how (``MapOptions``; its ``full``/``sample``/``max_full_rows`` are the sampling rule).
    ``no_map``: the histogram and the score/norm plot only. ``mark_ids`` (default: the ids of
    ``out_dir/negtemp_tokens.csv`` when it exists) are drawn as crosses, named ``mark_name``.
    ``title`` (default: the model's name) heads every plot. ``progress`` is called after each step
    with its name. ``html``: also write ``plots/map.html``, the interactive map of every mapped token
    (``anomtok.maps.html``; negative-temperature counts from ``negtemp_tokens.csv`` in ``out_dir`` or
    ``out_dir/negtemp`` when there is one)."""
    from ..embeddings import ModelEmbeddings
    from ..export import read_table
    from ..loading import load
    from ..outputs import check_dir
    from .cache import CACHE_NAME, load_map, source_fingerprint, source_matches
    from .compute import compute_map
    from .options import MapOptions, MapSettings
    from .render import FORMATS, render_all

    for fmt in formats:
        if fmt not in FORMATS:
            raise InputError(f"format must be among {', '.join(FORMATS)}, not {fmt!r}")
    if html and no_map:
        raise InputError("the interactive map (html) needs the map: drop no_map (--no-map)")
    opt = map_options or MapOptions()
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

    # -- the ranking: given, or ranked.parquet when meta.json says it came from these very files
    meta: dict[str, Any] = {}
    frame = None
    if ranking is not None:
        frame, meta = ranking.frame, dict(ranking.meta)
    else:
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
        result = _rank_into(emb, out, device)
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
            log.warning(
                "%d marked ids are not rows of the embedding and are ignored (e.g. %s)", len(unknown), unknown[:5]
            )
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
            from ..export import KNN_FILE, read_knn

            graph = getattr(ranking, "knn", None) or read_knn(out / KNN_FILE)  # the ranking's neighbours
            res = compute_map(
                emb.input.float().cpu().numpy(), frame, opt, cache=cache, source=src, extra_ids=marks, knn=graph
            )
        map_reused = res.from_cache
        tick("map (cached)" if map_reused else "map")

    files = render_all(
        frame,
        out / PLOTS_DIR,
        res,
        title=_title(spec, meta) if title is None else title,
        label_top=label_top,
        mark_ids=marks or None,
        mark_name=name or "marked tokens",
        formats=formats,
    )
    tick("render")
    if html and res is not None:
        from .html import HTML_NAME, render_html

        page = render_html(
            frame, res, out / PLOTS_DIR / HTML_NAME, title=title or _title(spec, meta), negtemp=_counts(out)
        )
        files["map_html"] = [page]
        tick("map.html")
    return PlotResult(
        files=files,
        map_meta=res.meta if res is not None else None,
        ranking_reused=reused,
        map_reused=map_reused,
        marked=len(marks),
        seconds=seconds,
    )
