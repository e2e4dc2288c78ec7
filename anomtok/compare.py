"""Compare report folders: a side-by-side summary, and for every pair the glitch tokens both
models flag, matched by their exact bytes (so models with different tokenizers are compared too).

Only the files a committed report keeps are needed: ``meta.json`` and ``glitch.csv`` (the flagged
tokens); a ``rank`` folder without ``glitch.csv`` is read from ``ranked.parquet`` (or
``ranked.csv``). When both folders hold their full ranking, the pair also says whether the two
vocabularies are the same.

Reports with ``glitch.csv`` and a ``meta.json`` that records the vocabulary hash are read with the
csv and json modules alone: ``anomtok compare`` imports no polars, numpy or torch (issue 13.2).
polars is imported only to read a full ranking (a folder without ``glitch.csv``, or an older
``meta.json`` without ``vocabulary_sha256``) and for ``Comparison.summary``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import InputError
from .export import read_json, read_rows
from .report_sections import md_token
from .table import format_table, markdown_table
from .text import display

if TYPE_CHECKING:  # pragma: no cover
    import polars as pl

__all__ = ["Comparison", "compare", "vocabulary_hash", "FORMATS"]

FORMATS = ("table", "markdown", "json")
_PAIR_HEADERS = ["a", "b", "flagged in both", "only in a", "only in b", "Jaccard", "same vocabulary"]
_FLAGGED_COLUMNS = ("token_id", "token", "bytes_hex", "rank", "script")


def vocabulary_hash(frame: pl.DataFrame) -> str:
    """``anomtok.tokens.vocabulary_sha256`` of a full ranking's rows: equal hashes = same tokenizer vocabulary."""
    import polars as pl

    from .tokens import vocabulary_sha256

    # the padding rows out and the ids in order first, by polars: the function's own sort is then
    # quick (0.22 s instead of 0.69 s for Gemma's 262,144 rows)
    f = frame.select("token_id", "bytes_hex", "kind").filter(pl.col("kind") != "padding").sort("token_id")
    return vocabulary_sha256(f["token_id"].to_list(), f["bytes_hex"].to_list(), f["kind"].to_list())


def _shown(hex_: str) -> str:
    return display(bytes.fromhex(hex_))


@dataclass
class Comparison:
    rows: list[dict[str, Any]]  # the summary: one dict per folder
    pairs: list[dict[str, Any]]  # one entry per pair of folders
    markdown: str
    plain: str = ""  # the terminal form
    _summary: Any = field(default=None, init=False, repr=False, compare=False)

    @property
    def summary(self) -> pl.DataFrame:
        """The summary rows as a polars DataFrame (one row per folder), built on first use."""
        if self._summary is None:
            import polars as pl

            self._summary = pl.DataFrame(self.rows)
        return self._summary

    def text(self, fmt: str = "table") -> str:
        """The comparison as ``anomtok compare --format`` writes it: ``table`` (aligned tables for a
        terminal), ``markdown`` or ``json``."""
        if fmt == "table":
            return self.plain
        if fmt == "markdown":
            return self.markdown
        if fmt == "json":
            return json.dumps({"summary": self.rows, "pairs": self.pairs}, ensure_ascii=False, indent=1)
        raise InputError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")

    def __repr__(self) -> str:
        reports = [r["report"] for r in self.rows]
        pairs = "; ".join(
            f"{p['a']} and {p['b']}: {p['shared']} shared, Jaccard {p['jaccard']:.3f}" for p in self.pairs[:3]
        )
        more = f" (+{len(self.pairs) - 3} more)" if len(self.pairs) > 3 else ""
        return (
            f"Comparison of {len(reports)} reports: {', '.join(map(str, reports[:6]))}"
            f"{', ...' if len(reports) > 6 else ''}\n"
            f"  pairs: {pairs + more if pairs else 'none'}\n"
            f"  .summary ({len(self.rows)} rows), .pairs, .text('table' | 'markdown' | 'json')"
        )


@dataclass
class _Folder:
    path: Path
    meta: dict[str, Any]
    flagged: list[dict[str, Any]]  # token_id, token, bytes_hex, rank, script (the flagged rows, best first)
    vocab_hash: str | None  # None when neither meta.json nor a full ranking tells


def _whole(table: Path, column: str, value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        return int(str(value))
    except ValueError:
        raise InputError(f"{table}: not an anomtok table ({column} {value!r} is not a whole number)") from None


def _load(folder: Path) -> _Folder:
    meta_path = folder / "meta.json"
    tables = [folder / n for n in ("glitch.csv", "ranked.parquet", "ranked.csv")]
    if not meta_path.exists() or not any(t.exists() for t in tables):
        raise InputError(
            f"{folder}: not an anomtok report (needs meta.json and glitch.csv or ranked.parquet; run `anomtok scan`)"
        )
    meta = read_json(meta_path)
    if not isinstance(meta, dict) or not {"source", "shape", "score"} <= set(meta):
        raise InputError(f"{meta_path}: not the meta.json of an anomtok ranking")
    full = next((t for t in tables[1:] if t.exists()), None)
    # meta.json's hash (rankings since it was recorded) first, so the answer depends only on
    # committed files; a full ranking of an older run otherwise
    vh = meta.get("vocabulary_sha256")
    glitch = tables[0]
    # the full ranking (polars) only when it is needed: no glitch.csv, or no hash in meta.json
    frame = None
    if full is not None and (vh is None or not glitch.exists()):
        from .export import read_table

        frame = read_table(full)
    if glitch.exists():
        table, flagged = glitch, read_rows(glitch, require=("rank", "token"))
    else:
        assert frame is not None and full is not None
        if "flagged" not in frame.columns:
            raise InputError(f"{full}: not an anomtok ranking (no flagged column)")
        missing = [c for c in ("rank", "token") if c not in frame.columns]
        if missing:
            raise InputError(f"{full}: not an anomtok ranking (no {', '.join(missing)} column)")
        import polars as pl

        picked = [c for c in _FLAGGED_COLUMNS if c in frame.columns]
        table, flagged = full, frame.filter(pl.col("flagged")).select(picked).to_dicts()
    rows: list[dict[str, Any]] = [{c: r.get(c) for c in _FLAGGED_COLUMNS} for r in flagged]
    for r in rows:
        r["rank"] = _whole(table, "rank", r["rank"])
    rows.sort(key=lambda r: r["rank"])
    if vh is None and frame is not None and "kind" in frame.columns:
        vh = vocabulary_hash(frame)
    return _Folder(folder, meta, rows, vh)


def _top_scripts(flagged: list[dict[str, Any]]) -> list[tuple[str | None, int]]:
    """The three most frequent scripts (ties by name, an unknown script first), with their counts."""
    counts: dict[str | None, int] = {}
    for r in flagged:
        counts[r["script"]] = counts.get(r["script"], 0) + 1
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0] is not None, kv[0] or ""))[:3]


def _summary_row(f: _Folder) -> dict[str, Any]:
    meta, flagged = f.meta, f.flagged
    cc = folder_json(f.path / "negtemp" / "crosscheck.json")
    pct = None
    if cc:
        groups = cc.get("groups") or {}
        pct = (((groups.get("all") or {}).get("metrics") or {}).get("score") or {}).get("mean_percentile")
    rows = meta["shape"][0]
    vocab = rows - int((meta.get("kind_counts") or {}).get("padding", 0))
    return {
        "report": f.path.name,
        "model": (meta.get("model") or {}).get("name") or meta["source"].get("source"),
        "vocab": vocab,
        "dim": meta["shape"][1],
        "tied": meta.get("tied"),
        "reference": meta["score"].get("reference_size"),
        "flagged": len(flagged),
        "flagged_pct": round(100 * len(flagged) / max(rows, 1), 3),
        "top_scripts": "; ".join(f"{script} {n:,}" for script, n in _top_scripts(flagged)),
        "negtemp_mean_percentile": pct,
    }


def _by_bytes(flagged: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The flagged rows with bytes, the best-ranked one for each byte string (tokens without bytes are left out)."""
    out: dict[str, dict[str, Any]] = {}
    for r in flagged:  # best first
        if r["bytes_hex"] and r["bytes_hex"] not in out:
            out[r["bytes_hex"]] = r
    return out


def _pair(a: _Folder, b: _Folder, top: int) -> dict[str, Any]:
    """The flagged tokens of ``a`` and ``b`` matched by exact bytes (tokens without bytes are left out)."""
    ka, kb = _by_bytes(a.flagged), _by_bytes(b.flagged)
    sa, sb = set(ka), set(kb)
    inter, union = sa & sb, sa | sb
    both = sorted(
        (
            {
                "bytes_hex": h,
                "rank_a": ka[h]["rank"],
                "id_a": ka[h]["token_id"],
                "rank_b": kb[h]["rank"],
                "id_b": kb[h]["token_id"],
            }
            for h in inter
        ),
        key=lambda r: (r["rank_a"], r["rank_b"]),
    )[:top]
    same = None if a.vocab_hash is None or b.vocab_hash is None else a.vocab_hash == b.vocab_hash
    return {
        "a": a.path.name,
        "b": b.path.name,
        "shared": len(inter),
        "only_a": len(sa - sb),
        "only_b": len(sb - sa),
        "jaccard": round(len(inter) / len(union), 4) if union else 0.0,
        "same_vocabulary": same,
        "shared_top": [
            {
                "token": _shown(r["bytes_hex"]),
                "bytes_hex": r["bytes_hex"],
                **{k: r[k] for k in ("id_a", "rank_a", "id_b", "rank_b")},
            }
            for r in both
        ],
    }


def _yes_no(v: bool | None) -> str:
    return "not known" if v is None else ("yes" if v else "no")


def _render(rows: list[dict[str, Any]], pairs: list[dict[str, Any]], markdown: bool) -> str:
    heads = [
        "report",
        "model",
        "vocab",
        "dim",
        "tied",
        "reference",
        "flagged",
        "flagged %",
        "top scripts",
        "negtemp pct",
    ]
    cells = [
        [r["report"], r["model"], f"{r['vocab']:,}", str(r["dim"]), _yes_no(r["tied"]), f"{r['reference']:,}"]
        + [f"{r['flagged']:,}", f"{r['flagged_pct']:.2f}", r["top_scripts"] or "–"]
        + ["–" if r["negtemp_mean_percentile"] is None else f"{r['negtemp_mean_percentile']:.1f}"]
        for r in rows
    ]
    pair_cells = [
        [p["a"], p["b"], f"{p['shared']:,}", f"{p['only_a']:,}", f"{p['only_b']:,}", f"{p['jaccard']:.3f}"]
        + [_yes_no(p["same_vocabulary"])]
        for p in pairs
    ]
    right = [False, False, True, True, False, True, True, True, False, True]
    note = (
        "Flagged tokens matched by their exact bytes (the bytes_hex column), so models with different "
        "tokenizers are compared too; negtemp pct: mean score percentile of the tokens negative-temperature "
        "generation produced (random = 50)."
    )
    if not markdown:  # a terminal is narrow: the model's size and reference set are in the Markdown and JSON
        keep = [0, 1, 2, 6, 7, 8, 9]
        heads, right = [heads[i] for i in keep], [right[i] for i in keep]
        cells = [[r[i] for i in keep] for r in cells]
    if markdown:
        out = ["# anomtok comparison", "", markdown_table(cells, heads, right), "", note, ""]
        out += [markdown_table(pair_cells, _PAIR_HEADERS, [False, False, True, True, True, True, False]), ""]
    else:
        out = [
            format_table(cells, heads, right),
            "",
            format_table(pair_cells, _PAIR_HEADERS, [False, False, True, True, True, True, False]),
            "",
        ]
    for p in pairs:
        if not p["shared_top"]:
            continue
        title = f"flagged in both {p['a']} and {p['b']} (first {len(p['shared_top'])} of {p['shared']:,}, by rank in {p['a']})"
        heads2 = ["token", f"id in {p['a']}", f"rank in {p['a']}", f"id in {p['b']}", f"rank in {p['b']}"]
        if markdown:
            rows2 = [
                [md_token(s["token"], 30), str(s["id_a"]), f"{s['rank_a']:,}", str(s["id_b"]), f"{s['rank_b']:,}"]
                for s in p["shared_top"]
            ]
            out += [f"## {title}", "", markdown_table(rows2, heads2, [False, True, True, True, True]), ""]
        else:
            rows2 = [[f"⟨{s['token']}⟩", s["id_a"], s["rank_a"], s["id_b"], s["rank_b"]] for s in p["shared_top"]]
            out += [title + ":", format_table(rows2, heads2, [False, True, True, True, True]), ""]
    if not markdown:
        out.append(note)
    return "\n".join(out).rstrip("\n")


def compare(folders: list[str | Path], top: int = 25) -> Comparison:
    if len(folders) < 2:
        raise InputError("compare needs at least two report folders")
    loaded = [_load(Path(f)) for f in folders]
    rows = [_summary_row(f) for f in loaded]
    pairs = [_pair(loaded[i], loaded[j], top) for i in range(len(loaded)) for j in range(i + 1, len(loaded))]
    return Comparison(
        rows=rows, pairs=pairs, markdown=_render(rows, pairs, markdown=True), plain=_render(rows, pairs, markdown=False)
    )


def folder_json(path: Path) -> dict[str, Any] | None:
    """An optional JSON file of a report folder: None when absent, InputError when corrupt."""
    return read_json(path, missing_ok=True)
