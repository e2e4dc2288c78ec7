"""The step sections of ``report.md`` (negative temperature, verification, tokenizer audit) and the
number formats every section shares: ``26.2 s``, ``30×``, ``3.5×10⁻⁶``, thousands separators.

Each section is rendered from its step's JSON dict alone (``negtemp/crosscheck.json``,
``verify/verify.json``, ``audit/audit.json``), so a report can be re-rendered without the model.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

from .table import markdown_cell, markdown_table

__all__ = [
    "md_token",
    "fmt_seconds",
    "fmt_ratio",
    "fmt_prob",
    "fmt_value",
    "crosscheck_bands",
    "band_label",
    "negtemp_section",
    "verify_section",
    "audit_section",
]

_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def md_token(s: str | None, limit: int = 40) -> str:
    """A token's display form as a Markdown table cell: HTML-escaped, pipes neutralised, spaces shown as ␣."""
    if s is None:
        return ""
    s = s if len(s) <= limit else s[: limit - 1] + "…"
    return "<code>" + html.escape(s.replace(" ", "␣")).replace("|", "&#124;") + "</code>"


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return None if math.isnan(v) else float(v)


def fmt_seconds(v: Any) -> str:
    """Seconds for people: ``0.42 s``, ``26.2 s``, ``312 s``, ``5 min 12 s``, ``1 h 03 min``; ``–`` for none."""
    x = _number(v)
    if x is None:
        return "–"
    if x < 1:
        return f"{x:.2f} s"
    if x < 100:
        return f"{x:.1f} s"
    if x < 600:
        return f"{x:.0f} s"
    m, s = divmod(round(x), 60)
    if m < 60:
        return f"{m} min {s:02d} s"
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min"


def fmt_ratio(v: Any) -> str:
    """A ratio such as a lift or an enrichment: ``30×``, ``6.9×``, ``0.25×``; ``–`` for none or infinity."""
    x = _number(v)
    if x is None or math.isinf(x):
        return "–"
    if x == 0 or x >= 10:
        return f"{x:.0f}×"
    return f"{x:.1f}×" if x >= 1 else f"{x:.2f}×"


def fmt_prob(v: Any) -> str:
    """A probability: ``0.42``, ``0.012``, ``3.5×10⁻⁶``; ``–`` for none."""
    x = _number(v)
    if x is None:
        return "–"
    if x == 0 or x >= 0.01:
        return f"{x:.2g}"
    mant, exp = f"{x:.1e}".split("e")
    return f"{mant}×10{str(int(exp)).translate(_SUPERSCRIPT)}"


def fmt_value(v: Any) -> str:
    """A setting's value: whole numbers with thousands separators, others as written, lists and
    dicts compactly, booleans as yes/no, none as ``–``."""
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float) and v.is_integer() and abs(v) >= 1000:
        return f"{int(v):,}"
    if isinstance(v, (int, float)):
        return markdown_cell(v) if isinstance(v, int) else f"{v:g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(fmt_value(x) for x in v) or "–"
    if isinstance(v, dict):
        return ", ".join(f"{k} {fmt_value(x)}" for k, x in v.items()) or "–"
    return html.escape(str(v)).replace("|", "&#124;")


def band_label(key: str) -> str:
    """``"1000"`` -> ``top 1,000``, ``"top2%"`` -> ``top 2%``."""
    if key.startswith("top") and key.endswith("%"):
        return f"top {key[3:]}"
    return f"top {int(key):,}" if key.isdigit() else f"top {key}"


def crosscheck_bands(cc: dict[str, Any]) -> list[str]:
    """The bands of a cross-check, in its own order: the fixed sizes (``ks``) then the fractions
    (``top_fractions``), as the keys of each metric's ``topk`` (``"100"``, ``"1000"``, ``"top2%"``, ...)."""
    keys = [str(int(k)) for k in cc.get("ks") or []]
    keys += [f"top{100 * float(f):g}%" for f in cc.get("top_fractions") or []]
    return keys


def negtemp_section(out: Path, cc: dict[str, Any], nm: dict[str, Any]) -> list[str]:
    lines = ["## Negative-temperature generation", ""]
    st = nm.get("settings", {})
    temp = (st.get("sampler") or {}).get("temperature", st.get("temperature"))
    lines += [
        f"Logits divided by T = {temp}: a negative temperature makes the *least* likely token the most likely "
        f"one, so the model writes the tokens it knows least (top-k, top-p, repetition penalty off; "
        f"{st.get('max_new_tokens')} new tokens per prompt, seed {st.get('seed')}). Samples:",
        "",
    ]
    gen = out / "negtemp" / "generations.jsonl"
    shown: dict[str, int] = {}
    if gen.exists():
        for line in gen.read_text("utf-8").splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            g = rec.get("group", "?")
            if shown.get(g, 0) >= 2:
                continue
            shown[g] = shown.get(g, 0) + 1
            lines += [f"- ({g}) {md_token(rec.get('prompt'), 60)} → {md_token(rec.get('text'), 160)}"]
    lines += [""]
    bands = crosscheck_bands(cc)
    rows = []
    labels = [band_label(key) for key in bands]
    for g, s in (cc.get("groups") or {}).items():
        m = (s.get("metrics") or {}).get("score") or {}
        top = m.get("topk") if isinstance(m.get("topk"), dict) else {}
        row = [g, markdown_cell(s.get("n_generated")), markdown_cell(s.get("n_distinct"))]
        row.append(markdown_cell(m.get("mean_percentile"), 1))
        for key in bands:
            t = top.get(key) or {}
            if t.get("overlap") is None:
                row.append("–")
                continue
            exp = _number(t.get("expected"))
            exp_s = "–" if exp is None else (f"{exp:.2g}" if exp < 1 else f"{exp:,.1f}")
            row.append(f"{t['overlap']:,} vs {exp_s} ({fmt_ratio(t.get('enrichment'))})")
        rows.append(row)
    if rows:
        lines += [
            "Where the produced tokens sit in the score's ranking: the mean percentile (0 = most suspect; a random "
            "token averages 50), and for each band the distinct produced tokens in it against the number expected "
            "by chance (enrichment in brackets). The same bands as `anomtok negtemp` prints and the README quotes.",
            "",
            markdown_table(rows, ["prompts", "tokens", "distinct", "mean percentile", *labels]),
            "",
        ]
    return lines


def verify_section(vj: dict[str, Any]) -> list[str]:
    lines = ["## Verification by prompting", ""]
    lines += [
        f"The top {vj.get('top')} candidates of each metric (kinds {fmt_value(vj.get('kinds'))}) and a random sample "
        f"were prompted to repeat the token (few-shot prompts built around the token id); a token is *verified* "
        f"under-trained when its highest probability over {vj.get('n_positions')} answer positions per prompt "
        f"stays below {vj.get('threshold')}. {markdown_cell(vj.get('n_verified'))} of "
        f"{markdown_cell(vj.get('n_candidates'))} candidates verified"
        + (f", in {fmt_seconds(vj['seconds'])}. " if _number(vj.get("seconds")) is not None else ". ")
        + "Details: `verify/verified.csv`.",
        "",
    ]
    prec = vj.get("precision") or {}
    rows = [
        [
            m,
            markdown_cell(p.get("verified")),
            markdown_cell(p.get("n")),
            markdown_cell(p.get("precision"), 2),
            fmt_ratio(p.get("lift")),
        ]
        for m, p in prec.items()
        if isinstance(p, dict)
    ]
    base = vj.get("base_rate")
    if isinstance(base, dict):
        rows.append(
            [
                "random tokens (base rate)",
                markdown_cell(base.get("verified")),
                markdown_cell(base.get("n")),
                markdown_cell(base.get("precision", base.get("rate")), 2),
                "1×",
            ]
        )
    ref = vj.get("reference")
    if isinstance(ref, dict) and ref.get("n"):
        rows.append(
            [
                "reference tokens (sanity check, never candidates)",
                markdown_cell(ref.get("verified")),
                markdown_cell(ref.get("n")),
                markdown_cell(ref.get("rate"), 2),
                "",
            ]
        )
    if rows:
        lines += [markdown_table(rows, ["candidates from", "verified", "tested", "precision", "lift over random"]), ""]
    return lines


def _japanese(ja: dict[str, Any]) -> list[str]:
    lines = ["### Japanese", ""]
    fert = ja.get("fertility") or {}
    rows = [
        [
            k,
            markdown_cell(v.get("chars")),
            markdown_cell(v.get("tokens")),
            markdown_cell(v.get("tokens_per_char"), 3),
            markdown_cell(v.get("byte_piece_tokens")),
        ]
        for k, v in fert.items()
        if isinstance(v, dict)
    ]
    if rows:
        lines += [
            "Fertility on the bundled samples (`anomtok/data/sample_ja.txt`, `anomtok/data/sample_en.txt`):",
            "",
            markdown_table(rows, ["sample", "characters", "tokens", "tokens per character", "byte-piece tokens"]),
            "",
        ]
    cov = (ja.get("coverage") or {}).get("by_inventory") or {}
    rows = [
        [
            v.get("label", k),
            markdown_cell(v.get("chars")),
            markdown_cell(v.get("single_token")),
            markdown_cell(v.get("single_token_pct"), 1),
            markdown_cell(v.get("mean_tokens"), 2),
        ]
        for k, v in cov.items()
        if isinstance(v, dict)
    ]
    if rows:
        lines += [
            "Character coverage (is the character a single token?):",
            "",
            markdown_table(rows, ["inventory", "characters", "single token", "%", "mean tokens per character"]),
            "",
        ]
    cls = ja.get("tokens_by_class") or {}
    rows = [
        [k, markdown_cell(v.get("tokens")), markdown_cell(v.get("reachable")), markdown_cell(v.get("undecodable", 0))]
        for k, v in cls.items()
        if isinstance(v, dict)
    ]
    if rows:
        lines += [
            "Japanese tokens in the vocabulary:",
            "",
            markdown_table(rows, ["class", "tokens", "reachable", "undecodable"]),
            "",
        ]
    top = ja.get("top_ranked")
    if isinstance(top, dict) and top.get("tokens"):
        first = " ".join(
            md_token(e.get("token"), 20) + f" (#{e.get('rank')})" for e in top["tokens"][:15] if isinstance(e, dict)
        )
        lines += [
            f"{top.get('count')} Japanese tokens (or fragments of Japanese characters) in the top "
            f"{markdown_cell(top.get('top_k'))} of the ranking; the first: {first}",
            "",
        ]
    return lines


def audit_section(aj: dict[str, Any]) -> list[str]:
    lines = ["## Tokenizer audit", ""]
    counts = aj.get("counts", {})
    rt = counts.get("round_trip") or counts.get("classes") or {}
    if rt:
        lines += [markdown_table([[k, v] for k, v in rt.items()], ["round trip", "tokens"]), ""]
    ja = aj.get("japanese")
    if isinstance(ja, dict):
        lines += _japanese(ja)
    lines += ["The full audit is in `audit/audit.md`.", ""]
    return lines
