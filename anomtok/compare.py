"""Compare scan/rank folders: shared glitch tokens for models that share a tokenizer, and a
side-by-side summary for all."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from .errors import InputError
from .export import read_json, read_table
from .report import md_token
from .table import markdown_table

__all__ = ["Comparison", "compare", "vocabulary_hash"]


def vocabulary_hash(frame: pl.DataFrame) -> str:
    """sha256 over (token_id, bytes) of the real tokens: equal hashes = same tokenizer vocabulary."""
    f = frame.filter(pl.col("kind") != "padding").sort("token_id")
    h = hashlib.sha256()
    for i, b in zip(f["token_id"].to_list(), f["bytes_hex"].to_list()):
        h.update(f"{i}:{b or ''}\n".encode())
    return h.hexdigest()


@dataclass
class Comparison:
    summary: pl.DataFrame  # one row per folder
    pairs: list[dict[str, Any]]  # one entry per pair sharing a tokenizer
    markdown: str

    def text(self, fmt: str = "markdown") -> str:
        """The comparison as ``anomtok compare --format`` writes it: ``markdown`` or ``json``."""
        if fmt == "markdown":
            return self.markdown
        if fmt == "json":
            return json.dumps({"summary": self.summary.to_dicts(), "pairs": self.pairs}, ensure_ascii=False, indent=1)
        raise InputError(f"format must be one of markdown, json, not {fmt!r}")

    def __repr__(self) -> str:
        reports = self.summary["report"].to_list() if "report" in self.summary.columns else []
        pairs = "; ".join(
            f"{p['a']} and {p['b']}: {p['shared']} shared, Jaccard {p['jaccard']:.3f}" for p in self.pairs[:3]
        )
        more = f" (+{len(self.pairs) - 3} more)" if len(self.pairs) > 3 else ""
        return (
            f"Comparison of {len(reports)} reports: {', '.join(map(str, reports[:6]))}"
            f"{', ...' if len(reports) > 6 else ''}\n"
            f"  sharing a tokenizer: {pairs + more if pairs else 'no pair'}\n"
            f"  .summary ({self.summary.height} rows), .pairs, .markdown, .text(fmt)"
        )


def _load(folder: Path) -> tuple[dict[str, Any], pl.DataFrame]:
    meta_path, ranked = folder / "meta.json", folder / "ranked.parquet"
    if not meta_path.exists() or not ranked.exists():
        raise InputError(f"{folder}: not an anomtok report (needs meta.json and ranked.parquet; run `anomtok scan`)")
    meta = read_json(meta_path)
    if not isinstance(meta, dict) or not {"source", "shape", "score"} <= set(meta):
        raise InputError(f"{meta_path}: not the meta.json of an anomtok ranking")
    return meta, read_table(ranked)


def compare(folders: list[str | Path], top: int = 25) -> Comparison:
    if len(folders) < 2:
        raise InputError("compare needs at least two report folders")
    rows, data = [], []
    for f in map(Path, folders):
        meta, frame = _load(f)
        flagged = frame.filter(pl.col("flagged"))
        vh = vocabulary_hash(frame)
        scripts = flagged.group_by("script").len().sort(["len", "script"], descending=[True, False]).head(3)
        cc = folder_json(f / "negtemp" / "crosscheck.json")
        enr = None
        if cc:
            enr = (
                (((cc.get("groups") or {}).get("all") or {}).get("metrics") or {})
                .get("score", {})
                .get("mean_percentile")
            )
        rows.append(
            {
                "report": f.name,
                "model": (meta.get("model") or {}).get("name") or meta["source"]["source"],
                "vocab": frame.filter(pl.col("kind") != "padding").height,
                "dim": meta["shape"][1],
                "tied": meta.get("tied"),
                "reference": meta["score"]["reference_size"],
                "flagged": flagged.height,
                "flagged_pct": round(100 * flagged.height / frame.height, 3),
                "top_scripts": ", ".join(f"{r['script']} {r['len']}" for r in scripts.iter_rows(named=True)),
                "negtemp_mean_percentile": enr,
                "vocab_hash": vh[:12],
            }
        )
        data.append((f, frame, set(flagged["token_id"].to_list()), vh))
    summary = pl.DataFrame(rows)
    pairs = []
    lines = [
        "# anomtok comparison",
        "",
        markdown_table([[str(v) if v is not None else "–" for v in r.values()] for r in rows], list(rows[0].keys())),
        "",
    ]
    for i in range(len(data)):
        for j in range(i + 1, len(data)):
            (fa, a, sa, ha), (fb, _b, sb, hb) = data[i], data[j]
            if ha != hb:
                continue
            inter, union = sa & sb, sa | sb
            jac = len(inter) / len(union) if union else 0.0
            shared = a.filter(pl.col("token_id").is_in(sorted(inter))).sort("rank").head(top)
            pairs.append(
                {
                    "a": fa.name,
                    "b": fb.name,
                    "shared": len(inter),
                    "only_a": len(sa - sb),
                    "only_b": len(sb - sa),
                    "jaccard": round(jac, 4),
                    "shared_top": shared.select("token_id", "token").to_dicts(),
                }
            )
            lines += [
                f"## {fa.name} and {fb.name} share a tokenizer",
                "",
                f"Flagged in both: {len(inter):,}; only in {fa.name}: {len(sa - sb):,}; only in {fb.name}: "
                f"{len(sb - sa):,}; Jaccard {jac:.3f}.",
                "",
                "Shared (by rank in the first): " + " ".join(md_token(t, 24) for t in shared["token"].to_list()),
                "",
            ]
    if not pairs:
        lines += ["No two of these folders share a tokenizer vocabulary, so only the summary above applies.", ""]
    return Comparison(summary=summary, pairs=pairs, markdown="\n".join(lines))


def folder_json(path: Path) -> dict[str, Any] | None:
    """An optional JSON file of a report folder: None when absent, InputError when corrupt."""
    return read_json(path, missing_ok=True)
