"""A 2-D map of the embedding matrix (UMAP, cosine, seeded), computed once and cached.

Which rows are mapped
---------------------
The whole vocabulary when it is affordable (``MapOptions.max_full_rows``, or ``full=True``).
Otherwise a stratified sample that always keeps every *required* token: the flagged ones (the
``flag_top`` best by score), the reference/unused ones, every Japanese token (by
``anomtok.japanese.ja_class``, the audit's classifier) and any ids asked for (``extra_ids``, e.g.
negative-temperature tokens); the rest of the budget is spread over (kind, script) strata in
proportion to their sizes. Rows whose vector is NaN, infinite or zero are never mapped (cosine is
undefined for them).

>>> import polars as pl
>>> frame = pl.DataFrame({"token_id": [0, 1, 2, 3, 4, 5], "token": ["a", "b", "東", "c", "d", "e"],
...     "kind": ["normal"] * 5 + ["unused"], "script": ["Latin", "Latin", "Han", "Latin", "Latin", "none"],
...     "score": [0.9, 0.1, 0.2, 0.3, 0.0, 0.5], "is_reference": [False] * 5 + [True],
...     "valid": [True] * 6})
>>> sel = select_rows(frame, sample=4, flag_top=1, seed=0)
>>> sorted(sel.ids.tolist())[:1], {0, 2, 5} <= set(sel.ids.tolist()), len(sel.ids)
([0], True, 4)

The cache
---------
``umap.parquet`` holds ``token_id, x, y, why`` (why the row is on the map: ``all``, ``flagged``,
``reference``, ``japanese``, ``marked`` or ``sampled``) and, in the parquet metadata, the settings
that made it (``MapSettings``), a digest of the matrix and the model's source files. ``load_map``
gives it back only when the settings match, the matrix (or, without it, the source files) is the
same and every token now required is on it; so a re-render never recomputes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import polars as pl

from .cache import atomic_path, file_fingerprint, file_sha256
from .errors import InputError
from .japanese import ja_class

__all__ = [
    "MapOptions", "MapSettings", "Selection", "MapResult", "CACHE_NAME", "CACHE_VERSION",
    "required_reasons", "select_rows", "umap_coords", "matrix_digest",
    "source_fingerprint", "source_matches",
    "write_map", "read_map", "cache_matches", "load_map", "compute_map",
]

log = logging.getLogger(__name__)

CACHE_NAME = "umap.parquet"
CACHE_VERSION = 2  # 2: seed, n_neighbors and min_dist really reach UMAP (1 dropped them)
_META_KEY = b"anomtok.umap"


@dataclass(frozen=True)
class MapOptions:
    """How to build a map. ``full``: True maps every row, False samples, None (default) maps every
    row when there are at most ``max_full_rows`` (the full Gemma 3 vocabulary, 262k rows, takes
    about 3 minutes on 2 cores), else samples ``sample`` rows. An explicit ``sample`` with
    ``full=None`` samples. ``n_epochs=None``: UMAP's default (200 for large inputs)."""

    full: bool | None = None
    sample: int | None = None
    max_full_rows: int = 300_000
    default_sample: int = 50_000
    flag_top: int = 500
    seed: int = 0
    n_neighbors: int = 15
    min_dist: float = 0.1
    n_epochs: int | None = None
    metric: str = "cosine"

    def __post_init__(self) -> None:
        if self.sample is not None and self.sample < 10:
            raise InputError(f"sample must be at least 10 points, not {self.sample}")
        if self.full and self.sample is not None:
            raise InputError("choose either full=True or sample=N, not both")
        if self.n_neighbors < 2:
            raise InputError("n_neighbors must be >= 2")
        if not 0.0 <= self.min_dist <= 1.0:
            raise InputError("min_dist must be in [0, 1]")
        if self.n_epochs is not None and self.n_epochs < 1:
            raise InputError("n_epochs must be >= 1")
        if self.flag_top < 0:
            raise InputError("flag_top must be >= 0")
        from .inputs import UMAP_SEED_MAX, check_seed

        check_seed(self.seed, hi=UMAP_SEED_MAX)  # UMAP's random_state (numpy's RandomState)

    def mode(self, rows: int) -> tuple[str, int]:
        """("full", rows) or ("sample", n) for a matrix of ``rows`` mapped rows."""
        if self.full:
            return "full", rows
        if self.sample is not None:
            return ("full", rows) if self.sample >= rows else ("sample", self.sample)
        if rows <= self.max_full_rows:
            return "full", rows
        return "sample", min(self.default_sample, rows)


@dataclass(frozen=True)
class MapSettings:
    """What the coordinates depend on; a cached map is reused only when these are equal."""

    mode: str  # "full" or "sample"
    sample: int  # requested number of points (rows for "full")
    flag_top: int
    seed: int
    n_neighbors: int
    min_dist: float
    n_epochs: int | None
    metric: str
    matrix: str  # which matrix: "input"
    rows: int
    dim: int
    umap_version: str
    cache_version: int = CACHE_VERSION

    @classmethod
    def make(cls, options: MapOptions, rows_valid: int, rows: int, dim: int) -> "MapSettings":
        mode, n = options.mode(rows_valid)
        return cls(mode=mode, sample=n, flag_top=options.flag_top, seed=options.seed,
                   n_neighbors=options.n_neighbors, min_dist=options.min_dist, n_epochs=options.n_epochs,
                   metric=options.metric, matrix="input", rows=rows, dim=dim, umap_version=_umap_version())


@dataclass(frozen=True)
class Selection:
    """Rows on the map (sorted ids) and why each is there."""

    ids: np.ndarray  # (n,) int64, sorted
    why: list[str]  # one reason per id
    mode: str
    description: str  # one sentence for the plot: how many points, how chosen

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for w in self.why:
            out[w] = out.get(w, 0) + 1
        return out


@dataclass
class MapResult:
    """Coordinates (``token_id, x, y, why``), the settings and facts that made them, and whether
    they came from the cache."""

    coords: pl.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)
    from_cache: bool = False

    @property
    def description(self) -> str:
        return str(self.meta.get("description", ""))


# ------------------------------------------------------------------------------ pure helpers

def _japanese_mask(frame: pl.DataFrame) -> np.ndarray:
    """Rows whose token is Japanese by ``anomtok.japanese.ja_class`` (the audit's classifier)."""
    tokens = frame["token"].to_list() if "token" in frame.columns else [""] * frame.height
    return np.fromiter((ja_class(t or "") != "" for t in tokens), bool, frame.height)


def required_reasons(frame: pl.DataFrame, flag_top: int, extra_ids: Iterable[int] = ()) -> dict[int, str]:
    """Token ids every map must show, with the first reason that applies: ``flagged`` (the
    ``flag_top`` best by score, padding rows aside), ``marked`` (``extra_ids``), ``reference``
    (reference set or kind unused), ``japanese``. Invalid rows are left out."""
    ids = frame["token_id"].to_numpy()
    valid = frame["valid"].to_numpy() if "valid" in frame.columns else np.ones(frame.height, bool)
    out: dict[int, str] = {}
    if flag_top and "score" in frame.columns:
        f = frame.filter(pl.col("valid") if "valid" in frame.columns else pl.lit(True))
        if "kind" in f.columns:
            f = f.filter(pl.col("kind") != "padding")
        top = f.sort("score", descending=True, nulls_last=True).head(flag_top)
        top = top.filter(pl.col("score").is_not_null())
        for i in top["token_id"].to_list():
            out.setdefault(int(i), "flagged")
    valid_ids = set(ids[valid].tolist())
    for i in extra_ids:
        if int(i) in valid_ids:
            out.setdefault(int(i), "marked")
    ref = np.zeros(frame.height, bool)
    if "is_reference" in frame.columns:
        ref |= frame["is_reference"].fill_null(False).to_numpy()
    if "kind" in frame.columns:
        ref |= (frame["kind"] == "unused").to_numpy()
    for i in ids[ref & valid].tolist():
        out.setdefault(int(i), "reference")
    for i in ids[_japanese_mask(frame) & valid].tolist():
        out.setdefault(int(i), "japanese")
    return out


def select_rows(frame: pl.DataFrame, sample: int | None = None, *, flag_top: int = 500, seed: int = 0,
                extra_ids: Iterable[int] = ()) -> Selection:
    """Pick the rows to map (see the module docstring). ``sample=None`` or a sample at least as
    large as the number of valid rows: every valid row. Deterministic for a seed.

    ``frame`` needs ``token_id`` and, when present, uses ``valid``, ``score``, ``kind``,
    ``script``, ``token`` and ``is_reference`` (the columns of ``anomtok.rank``)."""
    ids_all = frame["token_id"].to_numpy().astype(np.int64)
    valid = frame["valid"].to_numpy().astype(bool) if "valid" in frame.columns else np.ones(frame.height, bool)
    n_valid = int(valid.sum())
    n_invalid = frame.height - n_valid
    skipped = f"; {n_invalid} NaN/zero rows left out" if n_invalid else ""
    if sample is None or sample >= n_valid:
        ids = np.sort(ids_all[valid])
        return Selection(ids=ids, why=["all"] * ids.size, mode="full",
                         description=f"{ids.size:,} points: the full vocabulary{skipped}")
    req = required_reasons(frame, flag_top, extra_ids)
    rng = np.random.default_rng(seed)
    budget = max(0, sample - len(req))
    pool_mask = valid & ~np.isin(ids_all, np.fromiter(req.keys(), np.int64, len(req)))
    pool_idx = np.nonzero(pool_mask)[0]
    kinds = frame["kind"].to_numpy() if "kind" in frame.columns else np.full(frame.height, "?", object)
    scripts = frame["script"].to_numpy() if "script" in frame.columns else np.full(frame.height, "?", object)
    strata: dict[tuple[str, str], list[int]] = {}
    for i in pool_idx.tolist():
        strata.setdefault((str(kinds[i]), str(scripts[i])), []).append(i)
    picked = _proportional(strata, budget, rng) if budget and pool_idx.size else []
    chosen = dict(req)
    for i in picked:
        chosen[int(ids_all[i])] = "sampled"
    ids = np.array(sorted(chosen), dtype=np.int64)
    why = [chosen[int(i)] for i in ids]
    c = {w: why.count(w) for w in ("flagged", "marked", "reference", "japanese", "sampled")}
    parts = [f"the top {flag_top} by score ({c['flagged']})"] if flag_top else []
    if c["marked"]:
        parts.append(f"marked tokens ({c['marked']})")
    parts += [f"reference/unused ({c['reference']})", f"Japanese ({c['japanese']})"]
    desc = (f"{ids.size:,} of {n_valid:,} tokens: every one of {', '.join(parts)}, "
            f"plus a sample stratified by kind and script ({c['sampled']:,}, seed {seed}){skipped}")
    return Selection(ids=ids, why=why, mode="sample", description=desc)


def _proportional(strata: Mapping[tuple[str, str], list[int]], budget: int, rng: np.random.Generator) -> list[int]:
    """Draw ``budget`` items over strata in proportion to their sizes (largest remainder), at
    least one from every stratum while the budget allows, without replacement."""
    keys = sorted(strata)
    sizes = np.array([len(strata[k]) for k in keys], dtype=np.float64)
    total = sizes.sum()
    budget = int(min(budget, total))
    if budget <= 0:
        return []
    quota = sizes * budget / total
    alloc = np.floor(quota).astype(np.int64)
    if budget >= len(keys):
        alloc = np.maximum(alloc, 1)
    alloc = np.minimum(alloc, sizes.astype(np.int64))
    # adjust to the exact budget: add by largest remainder, remove from the largest allocations
    rem = quota - np.floor(quota)
    while alloc.sum() < budget:
        room = alloc < sizes
        j = int(np.argmax(np.where(room, rem, -np.inf)))
        alloc[j] += 1
        rem[j] = -1.0 if (rem[j] < 0 or alloc[j] >= sizes[j]) else rem[j] - 1.0
        if not room.any():
            break
    while alloc.sum() > budget:
        alloc[int(np.argmax(alloc))] -= 1
    out: list[int] = []
    for k, n in zip(keys, alloc.tolist()):
        if n:
            members = np.array(strata[k])
            out.extend(rng.choice(members, size=n, replace=False).tolist())
    return out


def _umap_version() -> str:
    try:
        from importlib.metadata import version

        return version("umap-learn")
    except Exception:  # noqa: BLE001 - metadata may be missing in odd installs
        return "unknown"


def umap_coords(matrix: np.ndarray, *, seed: int = 0, n_neighbors: int = 15, min_dist: float = 0.1,
                n_epochs: int | None = None, metric: str = "cosine") -> np.ndarray:
    """``(n, D)`` float32 rows -> ``(n, 2)`` float32 UMAP coordinates (seeded, so single-threaded).

    Every row must be finite and non-zero. ``n_neighbors`` is capped at ``n - 1``."""
    n = int(matrix.shape[0])
    if n < 4:
        raise InputError(f"a map needs at least 4 valid rows, not {n}")
    import umap

    reducer = umap.UMAP(n_components=2, metric=metric, n_neighbors=min(n_neighbors, n - 1),
                        min_dist=min_dist, n_epochs=n_epochs, random_state=seed, low_memory=True,
                        verbose=False)
    from . import progress

    # a rough expectation from measured runs on 2 cores: ~35 s of numba compilation in a fresh
    # process, then ~0.55 ms per row (Gemma 3 270M's 262,144 rows: ~140 s)
    expect = f"roughly {max(1, round((35 + 0.00055 * n) / 60))} min on 2 cores"
    with warnings.catch_warnings(), progress.step(f"UMAP of {n:,} rows", expect=expect):
        warnings.filterwarnings("ignore", message=".*n_jobs value .* overridden.*")
        warnings.filterwarnings("ignore", message=".*gradient function is not yet implemented.*")
        xy = reducer.fit_transform(np.ascontiguousarray(matrix, dtype=np.float32))
    return np.asarray(xy, dtype=np.float32)


def matrix_digest(matrix: np.ndarray) -> str:
    """blake2b (128-bit) of the float32 matrix bytes and its shape: identifies the matrix mapped."""
    a = np.ascontiguousarray(matrix, dtype=np.float32)
    h = hashlib.blake2b(digest_size=16)
    h.update(repr(a.shape).encode())
    h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def source_fingerprint(source: Mapping[str, Any] | None) -> list[list[Any]] | None:
    """``[[path, size, identity], ...]`` from a provenance dict (``ModelEmbeddings.provenance.to_dict()``
    or ``meta.json["source"]``); identity is the cheap fingerprint (``cache.file_fingerprint``), or
    the sha256 for provenance written before fingerprints; None when a file has neither."""
    if not source:
        return None
    files = source.get("files") or []
    out = []
    for f in files:
        if isinstance(f, Mapping):
            path, size, ident = f.get("path"), f.get("size"), f.get("fingerprint") or f.get("sha256")
        else:
            path, size, ident = f
        if not ident:
            return None
        out.append([str(path), int(size), str(ident)])
    return out or None


def source_matches(spec: str | os.PathLike, source: Mapping[str, Any] | None) -> bool:
    """True when ``source`` (a provenance dict, e.g. ``meta.json["source"]``) was made from what
    ``spec`` names now: the same spec and the same files, unchanged. Lets a re-render trust
    cached tables without loading the model."""
    if not source:
        return False
    stored = str(source.get("source", ""))
    same_spec = stored == str(spec)
    if not same_spec:
        try:
            same_spec = Path(stored).expanduser().resolve() == Path(spec).expanduser().resolve()
        except (OSError, ValueError):
            same_spec = False
    return same_spec and _files_unchanged(source_fingerprint(source))


def _files_unchanged(fingerprint: list[list[Any]] | None) -> bool:
    """The files of a fingerprint are still there with the same size and identity (a cheap
    fingerprint, recomputed from 2 MiB of each file; an old full sha256, cached by path, size, mtime)."""
    if not fingerprint:
        return False
    try:
        return all(os.path.getsize(p) == size
                   and (file_fingerprint(p) if ident.startswith("fp1:") else file_sha256(p)) == ident
                   for p, size, ident in fingerprint)
    except OSError:
        return False


# ------------------------------------------------------------------------------ cache I/O

def write_map(path: str | os.PathLike, coords: pl.DataFrame, meta: Mapping[str, Any]) -> Path:
    """Write ``coords`` (token_id, x, y, why) with ``meta`` (JSON) in the parquet metadata, atomically."""
    import pyarrow.parquet as pq

    table = coords.to_arrow()
    md = dict(table.schema.metadata or {})
    md[_META_KEY] = json.dumps(meta, ensure_ascii=False, default=str).encode("utf-8")
    table = table.replace_schema_metadata(md)
    target = Path(path)
    with atomic_path(target) as tmp:
        pq.write_table(table, tmp)
    return target


def read_map(path: str | os.PathLike) -> tuple[pl.DataFrame, dict[str, Any]] | None:
    """(coords, meta) from a cache file, or None when it is missing or unreadable."""
    import pyarrow.parquet as pq

    p = Path(path)
    if not p.exists():
        return None
    try:
        table = pq.read_table(p)
        meta = json.loads((table.schema.metadata or {}).get(_META_KEY, b"{}").decode("utf-8"))
        coords = pl.from_arrow(table)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many types on a corrupt file
        log.warning("%s: unreadable map cache (%s), recomputing", p, exc.__class__.__name__)
        return None
    if not isinstance(coords, pl.DataFrame) or not {"token_id", "x", "y"} <= set(coords.columns):
        return None
    return coords, meta


def cache_matches(meta: Mapping[str, Any], settings: MapSettings, *, digest: str | None = None,
                  source: list[list[Any]] | None = None) -> str | None:
    """None when a cached map made with ``meta`` can be reused, else the reason it cannot.

    The settings must be equal; then the matrix digest when one is given, else the source files
    (the same fingerprint, and the files unchanged on disk)."""
    if meta.get("settings") != asdict(settings):
        return "made with other settings"
    if digest is not None:
        return None if meta.get("matrix_sha") == digest else "made from another matrix"
    cached_source = meta.get("source_files")
    if not cached_source or source is None or cached_source != source:
        return "made from other source files"
    if not _files_unchanged(source):
        return "the source files changed"
    return None


def load_map(path: str | os.PathLike, settings: MapSettings, frame: pl.DataFrame, *,
             digest: str | None = None, source: list[list[Any]] | None = None,
             extra_ids: Iterable[int] = ()) -> MapResult | None:
    """The cached map when it can be reused for ``frame`` (see ``cache_matches``; in sample mode
    every token now required must also be on it), else None."""
    got = read_map(path)
    if got is None:
        return None
    coords, meta = got
    why = cache_matches(meta, settings, digest=digest, source=source)
    if why is None and settings.mode == "sample":
        on_map = set(coords["token_id"].to_list())
        missing = [i for i in required_reasons(frame, settings.flag_top, extra_ids) if i not in on_map]
        if missing:
            why = f"{len(missing)} required tokens are not on it"
    if why is not None:
        log.info("%s: not reused (%s)", path, why)
        return None
    return MapResult(coords=coords, meta=dict(meta), from_cache=True)


def compute_map(matrix: np.ndarray, frame: pl.DataFrame, options: MapOptions | None = None, *,
                cache: str | os.PathLike | None = None, source: Mapping[str, Any] | None = None,
                extra_ids: Iterable[int] = (), progress: Callable[[str], None] | None = None) -> MapResult:
    """The map of ``matrix`` (``(V, D)``, row i = token id i; ``frame`` in any order), from ``cache`` when it
    holds a reusable one, else computed (and written to ``cache`` when given).

    ``source`` is the model's provenance dict, stored so that a later call without the matrix
    (``load_map(..., source=...)``) can still trust the cache."""
    opt = options or MapOptions()
    M = np.asarray(matrix, dtype=np.float32)
    if M.ndim != 2 or M.shape[0] != frame.height:
        raise InputError(f"the matrix has shape {M.shape} but the table has {frame.height} rows")
    extra = [int(i) for i in extra_ids]
    ids = frame["token_id"].to_numpy()
    if ids.size and (ids.min() < 0 or ids.max() >= M.shape[0] or np.unique(ids).size != ids.size):
        raise InputError("the table's token_id column must hold each row index of the matrix once")
    if "valid" in frame.columns:
        valid = frame["valid"].to_numpy().astype(bool)
    else:  # rows in token-id order, like the matrix
        valid_by_id = np.isfinite(M).all(axis=1) & (np.abs(M).sum(axis=1) > 0)
        valid = valid_by_id[ids]
        frame = frame.with_columns(valid=pl.Series(valid))
    settings = MapSettings.make(opt, int(valid.sum()), int(M.shape[0]), int(M.shape[1]))
    t0 = time.perf_counter()
    digest = matrix_digest(M)
    fp = source_fingerprint(source)
    if cache is not None:
        hit = load_map(cache, settings, frame, digest=digest, extra_ids=extra)
        if hit is not None:
            if progress:
                progress("map (cached)")
            return hit
    sel = select_rows(frame, settings.sample if settings.mode == "sample" else None,
                      flag_top=opt.flag_top, seed=opt.seed, extra_ids=extra)
    t1 = time.perf_counter()
    # the matrix row of a token is its id
    xy = umap_coords(M[sel.ids], seed=opt.seed, n_neighbors=opt.n_neighbors, min_dist=opt.min_dist,
                     n_epochs=opt.n_epochs, metric=opt.metric)
    seconds = time.perf_counter() - t1
    coords = pl.DataFrame({"token_id": sel.ids, "x": xy[:, 0], "y": xy[:, 1], "why": sel.why})
    meta = {
        "settings": asdict(settings),
        "matrix_sha": digest,
        "source_files": fp,
        "source": (source or {}).get("source"),
        "points": int(sel.ids.size),
        "valid_rows": int(valid.sum()),
        "why_counts": sel.counts(),
        "description": sel.description,
    }
    if cache is not None:
        write_map(cache, coords, meta)  # no timings in the file: the same settings give the same bytes
    meta = {**meta, "umap_seconds": round(seconds, 2), "total_seconds": round(time.perf_counter() - t0, 2)}
    if progress:
        progress("map")
    return MapResult(coords=coords, meta=meta, from_cache=False)
