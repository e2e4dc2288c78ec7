"""Render a scan folder into ``report.md`` and ``glitch.csv``, from the files alone.

Nothing here loads a model: the report is rebuilt in well under a second from ``meta.json``,
``ranked.parquet``, ``audit/``, ``negtemp/``, ``verify/`` and ``plots/`` (each optional but the
ranking), so it can be re-rendered after any step. The step sections and the number formats are
in ``anomtok.report_sections``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import polars as pl

from ._version import __version__
from .errors import InputError
from .report_sections import audit_section, fmt_prob, fmt_seconds, fmt_value, md_token, negtemp_section, verify_section
from .table import markdown_cell, markdown_table

__all__ = ["write_report", "render_report", "glitch_table", "md_token"]

log = logging.getLogger(__name__)

GLITCH_COLUMNS = [
    "rank",
    "token_id",
    "token",
    "bytes_hex",
    "kind",
    "script",
    "score",
    "norm",
    "centroid_l2",
    "centroid_cos",
    "pc1_removed_cos",
    "nn_cos",
    "nn_id",
]
PLOTS = [
    ("map_score", "UMAP of the input embedding, coloured by score"),
    ("map_kind", "coloured by token kind"),
    ("map_script", "coloured by script"),
    ("map_japanese", "Japanese view: kana and kanji tokens"),
    ("centroid_hist", "distance to the centroid, both tails marked"),
    ("score_norm", "score vs norm"),
]


def _read_json(path: Path) -> dict[str, Any] | None:
    from .export import read_json

    return read_json(path, missing_ok=True)


def _optional_csv(path: Path, columns: dict[str, str], what: str) -> pl.DataFrame | None:
    """The ``columns`` (old name -> new name) an optional step table has, ``token_id`` first; None
    when it is absent, unreadable or has no ``token_id`` (an unreadable optional input only drops
    its evidence columns, with a warning)."""
    if not path.exists():
        return None
    try:
        f = pl.read_csv(path, infer_schema_length=10000)
        if "token_id" not in f.columns:
            raise pl.exceptions.ColumnNotFoundError("no token_id column")
        keep = [c for c in columns if c in f.columns]
        return f.select(keep).rename({c: columns[c] for c in keep}).unique("token_id", keep="first")
    except (pl.exceptions.PolarsError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        log.warning(
            "%s: unreadable (%s: %s); the glitch table has no %s columns", path, exc.__class__.__name__, first, what
        )
        return None


def glitch_table(
    frame: pl.DataFrame,
    verified: pl.DataFrame | None = None,
    negtemp: pl.DataFrame | None = None,
    audit: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """The flagged tokens (see ``anomtok.ranking``), best first, each with its evidence: the token
    its nearest neighbour is (``nn_token``), and when the step ran, the verification probability
    (``max_prob``, ``verified``), how often negative-temperature generation produced it
    (``negtemp_count``; 0 = never) and its round-trip class in the tokenizer audit (``audit_class``)."""
    cols = [c for c in GLITCH_COLUMNS if c in frame.columns]
    g = frame.filter(pl.col("flagged")).sort("rank").select(cols)
    if "nn_id" in g.columns:
        names = frame.select(pl.col("token_id").alias("nn_id"), pl.col("token").alias("nn_token"))
        g = g.join(names, on="nn_id", how="left").with_columns(
            pl.when(pl.col("nn_id") >= 0).then(pl.col("nn_id")).otherwise(None).alias("nn_id")
        )
    if verified is not None and {"token_id", "max_prob"} <= set(verified.columns):
        g = g.join(
            verified.select([c for c in ("token_id", "max_prob", "verified") if c in verified.columns]),
            on="token_id",
            how="left",
        )
    if negtemp is not None and "negtemp_count" in negtemp.columns:
        g = g.join(negtemp.select("token_id", "negtemp_count"), on="token_id", how="left").with_columns(
            pl.col("negtemp_count").fill_null(0)
        )
    if audit is not None and "audit_class" in audit.columns:
        g = g.join(audit.select("token_id", "audit_class"), on="token_id", how="left")
    return g


def _docs_link(out: Path, page: str) -> str:
    """A relative link to ``docs/<page>`` when the report folder is inside an anomtok checkout,
    else the page named."""
    here = out.resolve()
    for parent in [here, *here.parents]:
        if (parent / "docs" / page).is_file() and (parent / "anomtok").is_dir():
            rel = os.path.relpath(parent / "docs" / page, here).replace(os.sep, "/")
            return f"[docs/{page}]({rel})"
    return f"`docs/{page}` in the anomtok source"


def _glitch_rows(head: pl.DataFrame) -> tuple[list[list[str]], list[str]]:
    cols = set(head.columns)
    headers = ["rank", "id", "token", "kind", "script", "score"]
    extra = [
        (
            "[verify p](#verification-by-prompting)",
            "max_prob",
            lambda r: fmt_prob(r["max_prob"]) + (" ✓" if r.get("verified") else ""),
        ),
        ("[negtemp](#negative-temperature-generation)", "negtemp_count", lambda r: markdown_cell(r["negtemp_count"])),
        (
            "nearest neighbour",
            "nn_token",
            lambda r: "–" if r["nn_id"] is None else f"{md_token(r['nn_token'], 24)} {markdown_cell(r['nn_cos'], 3)}",
        ),
        ("[audit](#tokenizer-audit)", "audit_class", lambda r: r["audit_class"] or "–"),
    ]
    extra = [e for e in extra if e[1] in cols]
    rows = []
    for r in head.iter_rows(named=True):
        row = [f"{r['rank']:,}", str(r["token_id"]), md_token(r["token"]), r["kind"], r["script"]]
        row.append(markdown_cell(r["score"]))
        rows.append(row + [f(r) for _, _, f in extra])
    return rows, headers + [h for h, _, _ in extra]


def render_report(
    out: Path, step_status: dict[str, Any] | None = None, total_seconds: float | None = None
) -> tuple[str, pl.DataFrame]:
    meta = _read_json(out / "meta.json")
    if meta is None or not (out / "ranked.parquet").exists():
        raise InputError(f"{out}: no ranking (meta.json, ranked.parquet); run `anomtok scan` or `anomtok rank` first")
    frame = pl.read_parquet(out / "ranked.parquet")
    glitch = glitch_table(
        frame,
        _optional_csv(
            out / "verify" / "verified.csv",
            {"token_id": "token_id", "max_prob": "max_prob", "verified": "verified"},
            "verification",
        ),
        _optional_csv(
            out / "negtemp" / "negtemp_tokens.csv", {"token_id": "token_id", "count": "negtemp_count"}, "negtemp"
        ),
        _optional_csv(out / "audit" / "audit.csv", {"token_id": "token_id", "round_trip": "audit_class"}, "audit"),
    )
    src = meta.get("source", {})
    model = meta.get("model", {})
    sc = meta.get("score", {})
    name = model.get("name") or src.get("source")
    lines: list[str] = [f"# anomtok report: {name}", ""]
    lines += [
        f"Generated by anomtok {meta.get('anomtok_version', __version__)} from `{src.get('source')}`. "
        "Every figure below is computed from the files in this folder; `anomtok scan` rebuilds them.",
        "",
    ]

    # --- model facts
    lines += ["## Model", ""]
    kinds = meta.get("kind_counts", {})
    files = []
    for f in src.get("files", []):
        digest = (
            f"sha256 `{f['sha256'][:16]}…`"
            if f.get("sha256")
            else f"fingerprint `{(f.get('fingerprint') or '')[4:20]}…`"
        )
        files.append(f"`{Path(f['path']).name}` {digest}")
    tied = "tied" if meta.get("tied") else "untied (output matrix used for the score)"
    facts = [
        [
            "source",
            f"`{src.get('source')}` ({src.get('format')}, input tensor `{src.get('input_tensor')}`, {src.get('dtype')})",
        ],
        ["architecture", str(model.get("architecture"))],
        ["embedding", f"{meta['shape'][0]:,} × {meta['shape'][1]:,}, {tied}"],
        ["token kinds", ", ".join(f"{k} {v:,}" for k, v in kinds.items())],
        ["tokenizer scheme", str(model.get("token_scheme"))],
        ["files", "<br>".join(files)],
        [
            "read",
            f"{src.get('bytes_read', 0) / 1e6:,.0f} MB of tensor data in {fmt_seconds(src.get('seconds'))} ({src.get('method')})",
        ],
    ]
    lines += [markdown_table(facts, ["", ""]), ""]

    # --- the ranking
    n_flag = int(frame["flagged"].sum())
    lines += ["## Glitch tokens", ""]
    lines += [
        f"**The score** of a token is the cosine between its embedding and the mean embedding of the "
        f"**{sc.get('reference_size', 0):,} reference tokens** (tokens known never to be trained; "
        f"{sc.get('reference_source')}: {fmt_value(sc.get('reference_kinds'))}), both taken after removing the "
        f"first principal component of the {sc.get('matrix')}: near 1, the token sits where untrained tokens sit. "
        f"How well it finds tokens the model cannot use: {_docs_link(out, 'validity.md')}.",
        "",
        f"**{n_flag:,} tokens** ({100 * n_flag / max(frame.height, 1):.2f}% of the vocabulary) are flagged: "
        f"{sc.get('flag_rule')} (threshold {markdown_cell(sc.get('flag_threshold'))}). "
        f"Invalid (NaN/inf/zero) rows: {meta.get('invalid_rows', {}).get('count', 0):,}. "
        "The full list, with the evidence columns, is `glitch.csv`; every token is in `ranked.csv`.",
        "",
    ]
    rows, headers = _glitch_rows(glitch.head(40))
    lines += [
        "Evidence for each token: *verify p*, the highest probability the model gives to repeating it "
        "(✓ = verified under-trained, below the threshold; – = not tested); *negtemp*, how often "
        "negative-temperature generation produced it; its *nearest neighbour* in the embedding and their "
        "cosine; its *audit* class (can the tokenizer produce it from its own text?).",
        "",
        markdown_table(rows, headers),
        "",
    ]
    scripts = glitch.group_by("script").len().sort(["len", "script"], descending=[True, False]).head(10)
    lines += [
        "Flagged tokens by script: " + ", ".join(f"{r['script']} {r['len']:,}" for r in scripts.iter_rows(named=True)),
        "",
    ]

    # --- both tails
    real = frame.filter((pl.col("kind") != "padding") & pl.col("valid"))
    near = real.sort("centroid_l2").head(12)["token"].to_list()
    far = real.sort("centroid_l2", descending=True).head(12)["token"].to_list()
    lines += [
        "## Both tails of the centroid distance",
        "",
        "Nearest the centroid: " + " ".join(md_token(t, 20) for t in near),
        "",
        "Farthest from it: " + " ".join(md_token(t, 20) for t in far),
        "",
    ]

    # --- plots
    plots = out / "plots"
    if plots.exists():
        lines += ["## Maps and plots", ""]
        for stem, caption in PLOTS:
            for ext in ("png", "svg"):
                if (plots / f"{stem}.{ext}").exists():
                    lines += [f"![{caption}](plots/{stem}.{ext})", ""]
                    break
        html_map = next((m for m in ("plots/map.html", "map.html") if (out / m).exists()), None)
        if html_map:
            lines += [f"Interactive map (pan, zoom, hover, search; opens offline): [{html_map}]({html_map})", ""]

    # --- the steps
    cc = _read_json(out / "negtemp" / "crosscheck.json")
    if cc is not None:
        lines += negtemp_section(out, cc, _read_json(out / "negtemp" / "meta.json") or {})
    vj = _read_json(out / "verify" / "verify.json")
    if vj is not None:
        lines += verify_section(vj)
    aj = _read_json(out / "audit" / "audit.json")
    if aj is not None:
        lines += audit_section(aj)
    lines += _run_section(meta, step_status, total_seconds)
    return "\n".join(lines), glitch


def _run_section(meta: dict[str, Any], step_status: dict[str, Any] | None, total_seconds: float | None) -> list[str]:
    lines = ["## Run", ""]
    if step_status:
        rows = [
            [k, v.get("status", ""), fmt_seconds(v["seconds"]) if v.get("seconds") is not None else v.get("why", "")]
            for k, v in step_status.items()
        ]
        lines += [markdown_table(rows, ["step", "status", "time"]), ""]
    if total_seconds is not None:
        lines += [f"Total: {fmt_seconds(total_seconds)} on this machine.", ""]
    settings = meta.get("settings") or {}
    if settings:
        lines += [
            "Ranking settings:",
            "",
            markdown_table([[f"`{k}`", fmt_value(v)] for k, v in settings.items()], ["setting", "value"]),
            "",
        ]
    return lines


def write_report(
    out_dir: str | Path, step_status: dict[str, Any] | None = None, total_seconds: float | None = None
) -> dict[str, Path]:
    from .cache import atomic_write_text
    from .export import write_csv

    out = Path(out_dir)
    text, glitch = render_report(out, step_status, total_seconds)
    write_csv(glitch, out / "glitch.csv")
    atomic_write_text(out / "report.md", text)
    return {"report": out / "report.md", "glitch": out / "glitch.csv"}
