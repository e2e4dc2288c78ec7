"""Which rows of the embedding matrix are mapped, and why each one is there.

The whole vocabulary when it is affordable (see ``MapOptions``). Otherwise a stratified sample
that always keeps every *required* token: the flagged ones (the ``flag_top`` best by score), the
reference/unused ones, every Japanese token (by ``anomtok.japanese.ja_class``, the audit's
classifier) and any ids asked for (``extra_ids``, e.g. negative-temperature tokens); the rest of
the budget is spread over (kind, script) strata in proportion to their sizes. Rows whose vector is
NaN, infinite or zero are never mapped (cosine is undefined for them).

>>> import polars as pl
>>> frame = pl.DataFrame({"token_id": [0, 1, 2, 3, 4, 5], "token": ["a", "b", "東", "c", "d", "e"],
...     "kind": ["normal"] * 5 + ["unused"], "script": ["Latin", "Latin", "Han", "Latin", "Latin", "none"],
...     "score": [0.9, 0.1, 0.2, 0.3, 0.0, 0.5], "is_reference": [False] * 5 + [True],
...     "valid": [True] * 6})
>>> sel = select_rows(frame, sample=4, flag_top=1, seed=0)
>>> sorted(sel.ids.tolist())[:1], {0, 2, 5} <= set(sel.ids.tolist()), len(sel.ids)
([0], True, 4)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import polars as pl

from ..japanese import ja_class

__all__ = ["Selection", "required_reasons", "select_rows"]


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


def select_rows(
    frame: pl.DataFrame, sample: int | None = None, *, flag_top: int = 500, seed: int = 0, extra_ids: Iterable[int] = ()
) -> Selection:
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
        return Selection(
            ids=ids,
            why=["all"] * ids.size,
            mode="full",
            description=f"{ids.size:,} points: the full vocabulary{skipped}",
        )
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
    desc = (
        f"{ids.size:,} of {n_valid:,} tokens: every one of {', '.join(parts)}, "
        f"plus a sample stratified by kind and script ({c['sampled']:,}, seed {seed}){skipped}"
    )
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
