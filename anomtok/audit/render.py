"""``audit.md``: the Markdown report of an audit, rendered from the ``audit.json`` dict alone (so it
can be re-rendered without the tokenizer): ``render_markdown`` for the whole report,
``render_japanese_section`` for its Japanese part."""

from __future__ import annotations

import re
from collections.abc import Callable

from ..table import markdown_table
from .japanese import UNREACHABLE_CLASSES
from .roundtrip import CLASSES

__all__ = ["render_markdown", "render_japanese_section"]

_COUNTS = [False, True, True, True, True]  # a label, then four counts
_ID_FIRST = [True, False, False, False, False, False]  # a token id, then text


def _code(s: str) -> str:
    """A token as a Markdown code span inside a table cell: ``⟨…⟩`` shows its edges, pipes are
    escaped, the fence is longer than any backtick run inside."""
    s = f"⟨{s}⟩".replace("|", "\\|")
    fence = "`" * (max(map(len, re.findall(r"`+", s)), default=0) + 1)
    return f"{fence}{s}{fence}"


def render_markdown(summary: dict) -> str:
    """``audit.md`` from the ``audit.json`` dict alone (re-renderable without the tokenizer)."""
    src, tk, c = summary["source"], summary["tokenizer"], summary["counts"]
    n = summary["n_tokens"]
    m = summary["method"]
    lines = [
        f"# Tokenizer audit: {src['spec']}",
        "",
        f"{n:,} token ids; {tk['scheme']} {tk['model'].get('type', '')}; normalizer {tk['normalizer']}; "
        f"pre-tokenizer {tk['pre_tokenizer']}; decoder {tk['decoder']}.",
        "",
        f"Tokenizer: {src['method']}.",
        "",
        f"Round trip: {m['description']}. Marker: {_code(m['marker']) if m['marker'] else 'none'} "
        f"(ids {m['marker_ids']}), second marker {_code(m['second_marker']) if m.get('second_marker') else 'none'}; "
        f"tokens judged per method: {', '.join(f'{k} {v:,}' for k, v in m['tokens_by_method'].items())}.",
        "",
        "## Round-trip classes",
        "",
        markdown_table(
            [[k, f"{v:,}", f"{100 * v / n:.2f}%"] for k, v in c["round_trip"].items()],
            ["class", "tokens", "share"],
            right=[False, True, True],
        ),
    ]
    lines += [
        "",
        f"Causes of unreachability: {', '.join(f'{k}: {v:,}' for k, v in c['cause'].items()) or 'none'}. "
        f"Normaliser changes the text of {c['normalized_changed']:,} tokens; {c['byte_fallback']:,} byte-fallback "
        f"pieces; {c['partial_utf8']:,} tokens are partial UTF-8; {c['decode_errors']:,} decode errors.",
        "",
        "## By kind",
        "",
        markdown_table(
            [[kind, *(f"{row.get(k, 0):,}" for k in CLASSES)] for kind, row in c["kind_x_round_trip"].items()],
            ["kind", *CLASSES],
            right=[False] + [True] * len(CLASSES),
        ),
    ]
    rows = []
    for script, row in list(c["script"].items())[:25]:
        unr = sum(row.get(k, 0) for k in ("unreachable-single", "unreachable-multi", "unreachable-empty"))
        rows.append(
            [script, f"{row['tokens']:,}", f"{row.get('reachable', 0):,}", f"{unr:,}", f"{row.get('undecodable', 0):,}"]
        )
    lines += [
        "",
        "## By script (special and padding rows left out)",
        "",
        markdown_table(rows, ["script", "tokens", "reachable", "unreachable", "undecodable"], right=_COUNTS),
    ]
    lines += [
        "",
        "## Longest tokens",
        "",
        markdown_table(
            [
                [str(r["token_id"]), _code(r["token"]), str(r["n_chars"]), str(r["n_bytes"]), str(r["round_trip"])]
                for r in summary["longest"]
            ],
            ["id", "token", "chars", "bytes", "round trip"],
            right=[True, False, True, True, False],
        ),
    ]
    for cls, rows in summary["examples"].items():
        if not rows:
            continue
        lines += [
            "",
            f"## Examples: {cls}",
            "",
            markdown_table(
                [
                    [
                        str(r["token_id"]),
                        _code(r["token"]),
                        str(r["kind"]),
                        str(r["cause"]),
                        r["reencoded"].replace("|", "\\|"),
                    ]
                    for r in rows[:15]
                ],
                ["id", "token", "kind", "cause", "encodes as"],
                right=_ID_FIRST[:5],
            ),
        ]
    if summary["normalized_examples"]:
        lines += [
            "",
            "## Normalisation effects",
            "",
            markdown_table(
                [
                    [str(r["token_id"]), _code(r["token"]), _code(r["normalized"]), str(r["round_trip"])]
                    for r in summary["normalized_examples"][:15]
                ],
                ["id", "token", "normalized", "round trip"],
                right=_ID_FIRST[:4],
            ),
        ]
    d = summary["duplicates"]
    lines += [
        "",
        "## Duplicated surface forms",
        "",
        f"{d['groups']:,} surfaces are spelled by more than one token ({d['tokens']:,} tokens).",
    ]
    if d["examples"]:
        lines += [""] + [
            "- " + ", ".join(f"{e['token_id']} {_code(e['piece'])} ({e['kind']})" for e in g)
            for g in d["examples"][:15]
        ]
    lines += [""] + render_japanese_section(summary["japanese"], _code)
    r = summary["ranking"]
    lines += [
        "## Provenance",
        "",
        f"anomtok {summary['anomtok_version']}, format {summary['format']}; "
        f"ranking: {r['status']}"
        + (
            f" ({r['source']}, {r['rows']:,} rows, {r['vocab_mismatch_ids']} ids whose bytes differ)"
            if r["status"] == "ok"
            else ""
        )
        + ".",
        "",
    ]
    lines += [
        f"- `{f['path']}` ({f['size']:,} bytes, "
        + (f"sha256 {f['sha256']})" if f.get("sha256") else f"fingerprint {f.get('fingerprint')})")
        if f["size"] is not None
        else f"- `{f['path']}`"
        for f in src["files"]
    ]
    t = summary["seconds"]
    lines += ["", f"Time: load {t['load']} s, audit {t['audit']} s, ranking {t['rank']} s.", ""]
    return "\n".join(lines)


def render_japanese_section(sec: dict, code: Callable[[str], str]) -> list[str]:
    """Markdown lines of the Japanese section (``anomtok.audit.japanese.section``; ``code`` renders a
    token safely)."""
    lines = ["## Japanese", ""]
    lines += [
        "Tokens per Japanese class (`anomtok.japanese.ja_class`). `kanji` tokens hold only characters of the "
        f"kanji inventory (the {sec['kanji_inventory']:,} kanji in common Japanese use: JIS X 0208 level 1, Jōyō, "
        "Jinmeiyō, 々〆〇仝) "
        "and may be Chinese too; the "
        f"{sec['foreign_han_tokens']:,} tokens with a Han character outside it (Chinese-only 这, or a rare kanji) "
        "and no kana are not counted as Japanese.",
        "",
    ]
    rows = [
        [
            c,
            f"{v['tokens']:,}",
            f"{v.get('reachable', 0):,}",
            f"{sum(v.get(k, 0) for k in UNREACHABLE_CLASSES):,}",
            f"{v.get('undecodable', 0):,}",
        ]
        for c, v in sec["tokens_by_class"].items()
    ]
    lines.append(markdown_table(rows, ["class", "tokens", "reachable", "unreachable", "undecodable"], right=_COUNTS))
    lines.append(f"| **all** | {sec['tokens']:,} | | {sec['unreachable']['count']:,} | |")  # totals: no reachable split
    cov = sec["coverage"]
    lines += [
        "",
        "### Character coverage",
        "",
        "Each row is one inventory of characters, complete (the inventories overlap); the class rows split "
        f"{cov['all']['label']} by `char_class`. A character is *single* when encoding it mid-text gives one "
        "token that is not the unknown token.",
        "",
    ]
    rows = []
    for v in [cov["all"], *cov["by_inventory"].values(), *cov["by_class"].values()]:
        h = v["tokens_histogram"]
        hist = " / ".join(str(h.get(k, 0)) for k in ("1", "2", "3", "4+"))
        rows.append(
            [
                str(v["label"]),
                f"{v['chars']:,}",
                f"{v['single_token']:,} ({v['single_token_pct']}%)",
                f"{v['in_vocab']:,}",
                str(v["mean_tokens"]),
                f"{v['byte_pieces']:,}",
                hist,
            ]
        )
    lines.append(
        markdown_table(
            rows,
            [
                "characters",
                "count",
                "single token",
                "in vocabulary",
                "mean tokens",
                "byte pieces",
                "tokens: 1 / 2 / 3 / 4+",
            ],
            right=[False] + [True] * 5 + [False],
        )
    )
    listed = [v for v in cov["by_inventory"].values() if "single_chars" in v]
    if listed:
        lines += [""] + [
            f"- One token among {v['label']}: {' '.join(code(c) for c in v['single_chars']) or 'none'}" for v in listed
        ]
    if sec["costly_chars"]:
        lines += [
            "",
            "Characters that are not one token (costliest first): "
            + ", ".join(
                f"{code(r['char'])} {r['codepoint']} = {r['n_tokens']}{' (unknown)' if r['unk'] else ''}"
                for r in sec["costly_chars"][:20]
            ),
        ]
    f = sec["fertility"]
    if "ja" in f and "en" in f:
        # written by hand: its empty corner cell is "| |" (markdown_table writes an empty cell "|  |")
        lines += ["", "### Fertility", "", "| | Japanese sample | English sample |", "|---|---:|---:|"]
        for key, label in (
            ("chars", "characters"),
            ("bytes", "UTF-8 bytes"),
            ("tokens", "tokens"),
            ("tokens_per_char", "tokens per character"),
            ("tokens_per_byte", "tokens per byte"),
            ("chars_per_token", "characters per token"),
            ("byte_piece_tokens", "byte-piece tokens"),
            ("unk_tokens", "unknown tokens"),
        ):
            a, b = f["ja"][key], f["en"][key]
            fmt = (lambda x: f"{x:,}") if isinstance(a, int) else (lambda x: f"{x}")
            lines.append(f"| {label} | {fmt(a)} | {fmt(b)} |")
        if "ja_over_en_tokens_per_char" in f:
            lines += ["", f"Japanese costs {f['ja_over_en_tokens_per_char']}x the tokens per character of English."]
    u = sec["unreachable"]
    lines += [
        "",
        "### Unreachable and undecodable Japanese tokens",
        "",
        f"{u['count']:,} Japanese tokens are unreachable ({', '.join(f'{k}: {v:,}' for k, v in u['by_class'].items()) or 'none'}); "
        f"{sec['undecodable_cjk_fragments']:,} undecodable byte pieces hold the lead byte of a kana/CJK character.",
    ]
    if u["examples"]:
        rows = [
            [
                str(r["token_id"]),
                code(r["token"]),
                str(r["ja_class"]),
                str(r["round_trip"]),
                str(r["cause"]),
                code(r["normalized"]) if r["normalized"] else "",
            ]
            for r in u["examples"][:20]
        ]
        lines += [
            "",
            markdown_table(rows, ["id", "token", "class", "round trip", "cause", "normalized"], right=_ID_FIRST),
        ]
    if "top_ranked" in sec:
        t = sec["top_ranked"]
        lines += [
            "",
            f"### Japanese tokens in the top {t['top_k']:,} of the embedding ranking",
            "",
            f"{t['count']:,} Japanese tokens (or kana/CJK byte pieces) rank in the top {t['top_k']:,}.",
        ]
        if t["tokens"]:
            rows = [
                [
                    str(r["rank"]),
                    str(r["token_id"]),
                    code(r["token"]),
                    str(r["ja_class"] or "fragment"),
                    str(r["round_trip"]),
                    str(r["kind"]),
                ]
                for r in t["tokens"][:50]
            ]
            lines += [
                "",
                markdown_table(
                    rows,
                    ["rank", "id", "token", "class", "round trip", "kind"],
                    right=[True, True, False, False, False, False],
                ),
            ]
    return lines + [""]
