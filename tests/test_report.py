"""``report.md`` and ``glitch.csv`` rendered from a folder's files (issue 14): every glitch token
carries its evidence from the step files, the cross-check uses the same bands as the README, numbers
are written for people and the settings are a table. The step files here are written by the test,
with known values, next to a real ranking of the tiny model."""

from __future__ import annotations

import json
import re

import polars as pl
import pytest

import anomtok
from anomtok.report import _docs_link, write_report
from anomtok.report_sections import fmt_prob, fmt_ratio, fmt_seconds, fmt_value


@pytest.fixture(scope="module")
def folder(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "r"
    anomtok.rank(str(tiny_model.hf_dir), out_dir=out)
    return out


def _section(text: str, title: str) -> str:
    body = text[text.index(title + "\n") + len(title) + 1 :]
    nxt = re.search(r"^## ", body, re.M)
    return body[: nxt.start()] if nxt else body


def _band(k, overlap, expected, enrichment):
    return {"k": k, "overlap": overlap, "expected": expected, "enrichment": enrichment}


CROSSCHECK = {
    "ks": [100, 1000],
    "top_fractions": [0.02, 0.05],
    "groups": {
        "all": {
            "n_generated": 384,
            "n_distinct": 212,
            "metrics": {
                "score": {
                    "mean_percentile": 25.8431,
                    "topk": {
                        "100": _band(100, 0, 0.0809, 0.0),
                        "1000": _band(1000, 0, 0.8087, 0.0),
                        "top2%": _band(5243, 0, 4.2401, 0.0),
                        "top5%": _band(13108, 73, 10.6006, 6.8864),
                    },
                }
            },
        }
    },
}


def test_glitch_tokens_carry_their_evidence(folder, tmp_path):
    out = tmp_path / "r"
    import shutil

    shutil.copytree(folder, out)
    ranked = pl.read_parquet(out / "ranked.parquet")
    flagged = ranked.filter(pl.col("flagged")).sort("rank")
    a, b, c = flagged["token_id"].to_list()[:3]
    (out / "verify").mkdir()
    pl.DataFrame({"token_id": [a, b], "max_prob": [3.5e-6, 0.5], "verified": [True, False]}).write_csv(
        out / "verify" / "verified.csv"
    )
    (out / "negtemp").mkdir()
    pl.DataFrame({"token_id": [b], "token": ["x"], "count": [7]}).write_csv(out / "negtemp" / "negtemp_tokens.csv")
    (out / "negtemp" / "crosscheck.json").write_text(json.dumps(CROSSCHECK), encoding="utf-8")
    (out / "audit").mkdir()
    pl.DataFrame({"token_id": ranked["token_id"], "round_trip": ["reachable"] * ranked.height}).with_columns(
        pl.when(pl.col("token_id") == c).then(pl.lit("undecodable")).otherwise("round_trip").alias("round_trip")
    ).write_csv(out / "audit" / "audit.csv")
    write_report(out, step_status={"rank": {"status": "ran", "seconds": 26.24}}, total_seconds=47.09)

    glitch = pl.read_csv(out / "glitch.csv", infer_schema_length=10000)
    assert glitch["token_id"].to_list() == flagged["token_id"].to_list()
    assert glitch["max_prob"].to_list()[:3] == [3.5e-6, 0.5, None]
    assert glitch["verified"].to_list()[:3] == [True, False, None]
    assert glitch["negtemp_count"].to_list()[:3] == [0, 7, 0] and glitch["negtemp_count"].sum() == 7
    assert glitch["audit_class"].to_list()[:3] == ["reachable", "reachable", "undecodable"]
    names = dict(ranked.select("token_id", "token").iter_rows())
    nn = dict(ranked.select("token_id", "nn_id").iter_rows())
    assert glitch["nn_id"].to_list() == [nn[i] for i in glitch["token_id"].to_list()]
    assert glitch["nn_token"].to_list() == [names[nn[i]] for i in glitch["token_id"].to_list()]

    text = (out / "report.md").read_text("utf-8")
    section = _section(text, "## Glitch tokens")
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    assert rows[0] == (
        "| rank | id | token | kind | script | score | [verify p](#verification-by-prompting) | "
        "[negtemp](#negative-temperature-generation) | nearest neighbour | [audit](#tokenizer-audit) |"
    )
    first, second, third = (r.split(" | ") for r in rows[1:4])
    assert first[1] == str(a) and first[6] == "3.5×10⁻⁶ ✓" and first[7] == "0"
    assert second[1] == str(b) and second[6] == "0.5" and second[7] == "7"
    assert third[1] == str(c) and third[6] == "–" and third[9] == "undecodable |"
    assert first[8].startswith("<code>") and first[8].endswith(f" {glitch['nn_cos'][0]:.3f}")

    # the same bands as `anomtok negtemp` and the README: 73 in the top 5% against 10.6 by chance
    negtemp = _section(text, "## Negative-temperature generation")
    assert "| prompts | tokens | distinct | mean percentile | top 100 | top 1,000 | top 2% | top 5% |" in negtemp
    assert (
        "| all | 384 | 212 | 25.8 | 0 vs 0.081 (0×) | 0 vs 0.81 (0×) | 0 vs 4.2 (0×) | 73 vs 10.6 (6.9×) |" in negtemp
    )

    run = _section(text, "## Run")
    assert "| rank | ran | 26.2 s |" in run and "Total: 47.1 s on this machine." in run
    assert "| `seed` | 0 |" in run and "{" not in run  # a table, not JSON
    assert "docs/validity.md" in section


def test_number_formats():
    assert [fmt_seconds(x) for x in (0.4213, 26.24, 312.4, 1001, 4000, None)] == [
        "0.42 s",
        "26.2 s",
        "312 s",
        "16 min 41 s",
        "1 h 06 min",
        "–",
    ]
    assert [fmt_ratio(x) for x in (30.0, 6.8864, 0.25, 0.0, float("inf"), None)] == [
        "30×",
        "6.9×",
        "0.25×",
        "0×",
        "–",
        "–",
    ]
    assert [fmt_prob(x) for x in (3.5349e-6, 0.012, 0.5, 0.0)] == ["3.5×10⁻⁶", "0.012", "0.5", "0"]
    assert [fmt_value(x) for x in (6e11, 0.1, True, ["normal"], {"byte": 13, "unused": 6242}, "a|b")] == [
        "600,000,000,000",
        "0.1",
        "yes",
        "normal",
        "byte 13, unused 6,242",
        "a&#124;b",
    ]


def test_validity_link_is_relative_inside_a_checkout(tmp_path):
    (tmp_path / "anomtok").mkdir()
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "validity.md").write_text("x", encoding="utf-8")
    (tmp_path / "reports" / "m").mkdir(parents=True)
    assert _docs_link(tmp_path / "reports" / "m", "validity.md") == "[docs/validity.md](../../docs/validity.md)"
    (tmp_path / "docs" / "validity.md").unlink()
    assert _docs_link(tmp_path / "reports" / "m", "validity.md") == "`docs/validity.md` in the anomtok source"


def test_a_step_table_without_its_column_only_drops_that_evidence(folder, tmp_path, caplog):
    import logging
    import shutil

    out = tmp_path / "r"
    shutil.copytree(folder, out)
    (out / "negtemp").mkdir()
    (out / "negtemp" / "negtemp_tokens.csv").write_text("token_id,token\n1,x\n", encoding="utf-8")  # no count
    (out / "audit").mkdir()
    (out / "audit" / "audit.csv").write_text("id,round_trip\n1,reachable\n", encoding="utf-8")  # no token_id
    with caplog.at_level(logging.WARNING):
        write_report(out)
    glitch = pl.read_csv(out / "glitch.csv", infer_schema_length=10000)
    assert (
        "negtemp_count" not in glitch.columns and "audit_class" not in glitch.columns and "nn_token" in glitch.columns
    )
    assert any(
        "audit.csv: unreadable" in r.getMessage() and "no audit columns" in r.getMessage() for r in caplog.records
    )
