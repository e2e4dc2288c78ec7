"""Compare report folders: a side-by-side summary, and for every pair the glitch tokens both
models flag, matched by their exact bytes (so models with different tokenizers are compared too).

Only the files a committed report keeps are needed: ``meta.json`` and ``glitch.csv`` (the flagged
tokens); a ``rank`` folder without ``glitch.csv`` is read from ``ranked.parquet`` (or
``ranked.csv``). When both folders hold their full ranking, the pair also says whether the two
vocabularies are the same.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from .errors import InputError
from .export import read_json, read_table
from .report_sections import md_token
from .table import format_table, markdown_table
from .text import display
from .tokens import vocabulary_sha256

__all__ = ["Comparison", "compare", "vocabulary_hash", "FORMATS"]

FORMATS = ("table", "markdown", "json")
_PAIR_HEADERS = ["a", "b", "flagged in both", "only in a", "only in b", "Jaccard", "same vocabulary"]


def vocabulary_hash(frame: pl.DataFrame) -> str:
    """``anomtok.tokens.vocabulary_sha256`` of a full ranking's rows: equal hashes = same tokenizer vocabulary."""
    return vocabulary_sha256(frame["token_id"].to_list(), frame["bytes_hex"].to_list(), frame["kind"].to_list())


def _shown(hex_: str) -> str:
    return display(bytes.fromhex(hex_))


@dataclass
class Comparison:
    summary: pl.DataFrame  # one row per folder
    pairs: list[dict[str, Any]]  # one entry per pair of folders
    markdown: str
    plain: str = ""  # the terminal form

    def text(self, fmt: str = "table") -> str:
        """The comparison as ``anomtok compare --format`` writes it: ``table`` (aligned tables for a
        terminal), ``markdown`` or ``json``."""
        if fmt == "table":
            return self.plain
        if fmt == "markdown":
            return self.markdown
        if fmt == "json":
            return json.dumps({"summary": self.summary.to_dicts(), "pairs": self.pairs}, ensure_ascii=False, indent=1)
        raise InputError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")

    def __repr__(self) -> str:
        reports = self.summary["report"].to_list() if "report" in self.summary.columns else []
        pairs = "; ".join(
            f"{p['a']} and {p['b']}: {p['shared']} shared, Jaccard {p['jaccard']:.3f}" for p in self.pairs[:3]
        )
        more = f" (+{len(self.pairs) - 3} more)" if len(self.pairs) > 3 else ""
        return (
            f"Comparison of {len(reports)} reports: {', '.join(map(str, reports[:6]))}"
            f"{', ...' if len(reports) > 6 else ''}\n"
            f"  pairs: {pairs + more if pairs else 'none'}\n"
            f"  .summary ({self.summary.height} rows), .pairs, .text('table' | 'markdown' | 'json')"
        )


@dataclass
class _Folder:
    path: Path
    meta: dict[str, Any]
    flagged: pl.DataFrame  # token_id, token, bytes_hex, rank, script (the flagged rows, best first)
    vocab_hash: str | None  # None when neither meta.json nor a full ranking tells


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
    frame = read_table(full) if full is not None else None
    if (folder / "glitch.csv").exists():
        flagged = read_table(folder / "glitch.csv")
    else:
        assert frame is not None
        if "flagged" not in frame.columns:
            raise InputError(f"{full}: not an anomtok ranking (no flagged column)")
        flagged = frame.filter(pl.col("flagged"))
    missing = [c for c in ("rank", "token") if c not in flagged.columns]
    if missing:
        raise InputError(f"{folder}: its glitch table has no {', '.join(missing)} column")
    if "script" not in flagged.columns:
        flagged = flagged.with_columns(pl.lit(None, pl.String).alias("script"))
    flagged = flagged.select("token_id", "token", "bytes_hex", "rank", "script").sort("rank")
    # meta.json's hash (rankings since it was recorded) first, so the answer depends only on
    # committed files; a full ranking of an older run otherwise
    vh = meta.get("vocabulary_sha256")
    if vh is None and frame is not None and "kind" in frame.columns:
        vh = vocabulary_hash(frame)
    return _Folder(folder, meta, flagged, vh)


def _summary_row(f: _Folder) -> dict[str, Any]:
    meta, flagged = f.meta, f.flagged
    scripts = flagged.group_by("script").len().sort(["len", "script"], descending=[True, False]).head(3)
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
        "flagged": flagged.height,
        "flagged_pct": round(100 * flagged.height / max(rows, 1), 3),
        "top_scripts": "; ".join(f"{r['script']} {r['len']:,}" for r in scripts.iter_rows(named=True)),
        "negtemp_mean_percentile": pct,
    }


def _pair(a: _Folder, b: _Folder, top: int) -> dict[str, Any]:
    """The flagged tokens of ``a`` and ``b`` matched by exact bytes (tokens without bytes are left out)."""
    ka = a.flagged.filter(pl.col("bytes_hex").is_not_null() & (pl.col("bytes_hex") != "")).unique(
        "bytes_hex", keep="first"
    )
    kb = b.flagged.filter(pl.col("bytes_hex").is_not_null() & (pl.col("bytes_hex") != "")).unique(
        "bytes_hex", keep="first"
    )
    sa, sb = set(ka["bytes_hex"].to_list()), set(kb["bytes_hex"].to_list())
    inter, union = sa & sb, sa | sb
    both = (
        ka.select("bytes_hex", pl.col("rank").alias("rank_a"), pl.col("token_id").alias("id_a"))
        .join(kb.select("bytes_hex", pl.col("rank").alias("rank_b"), pl.col("token_id").alias("id_b")), on="bytes_hex")
        .sort(["rank_a", "rank_b"])
        .head(top)
    )
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
            for r in both.iter_rows(named=True)
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
        summary=pl.DataFrame(rows),
        pairs=pairs,
        markdown=_render(rows, pairs, markdown=True),
        plain=_render(rows, pairs, markdown=False),
    )


def folder_json(path: Path) -> dict[str, Any] | None:
    """An optional JSON file of a report folder: None when absent, InputError when corrupt."""
    return read_json(path, missing_ok=True)
