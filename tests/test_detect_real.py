"""The detector on a real model (marked `real`): Gemma 3 270M, its own ranking, and text that holds
some of its most suspicious tokens in context, next to Japanese."""

from __future__ import annotations

import json

import polars as pl
import pytest
from click.testing import CliRunner

import anomtok
from anomtok.cli import cli
from anomtok.detect import GlitchDetector, GlitchList, load_glitch_list
from anomtok.export import token_bytes

pytestmark = pytest.mark.real

TOP = 1000
# Token strings among Gemma 3's top-ranked tokens, written where its tokenizer produces them: a
# leading space is part of the token, so " SrvGroup" is found after a space (rank 15) and
# "ExternalTaskPojo" (rank 3) would not be: after a space it splits into "▁External" + "TaskPojo".
EXPECTED = (" SrvGroup", " debugDocument", "𒈹", "𒅴", " LOTRAchievement", "ꗡ", "ꗨ")
TEXT = (
    "The scheduler wraps a SrvGroup and calls debugDocument() when a job fails.\n"
    "粘土板には楔形文字 𒈹 と 𒅴 が刻まれていた。\n"
    "Unlock LOTRAchievement first, then read the Vai letters ꗡ ꗨ aloud.\n"
)
CLEAN = "東京タワーに行きました。The weather in Kyoto was lovely.\n"


@pytest.fixture(scope="module")
def gemma(tmp_path_factory):
    """(ranking frame, path of the ranked.csv `anomtok rank` would write, glitch list of the top
    tokens outside the reference set that are ordinary text pieces)."""
    out = tmp_path_factory.mktemp("gemma_rank")
    ranking = anomtok.rank(anomtok.load("gemma-3-270m"), out_dir=out, options=anomtok.RankOptions(nn="off"))
    top = ranking.frame.filter(~pl.col("is_reference") & (pl.col("kind") == "normal")).sort("rank").head(TOP)
    ids = [int(i) for i in top["token_id"]]
    glitch = GlitchList(ids=tuple(ids), scores=dict(zip(ids, top["score"].to_list())),
                        ranks=dict(zip(ids, top["rank"].to_list())), bytes=dict(zip(ids, token_bytes(top))),
                        source="gemma ranking")
    return ranking.frame, out / "ranked.csv", glitch


@pytest.fixture(scope="module")
def detector(gemma):
    return GlitchDetector("gemma-3-270m", gemma[2])


def _expected_ids(glitch: GlitchList) -> dict[str, int]:
    by_text = {b.decode("utf-8", "replace"): i for i, b in glitch.bytes.items()}
    missing = [s for s in EXPECTED if s not in by_text]
    assert not missing, f"no longer among Gemma 3's top {TOP} non-reference tokens: {missing}"
    return {s: by_text[s] for s in EXPECTED}


def test_hits_include_the_known_glitch_tokens(detector, gemma):
    expected = _expected_ids(gemma[2])
    result = detector.analyze(TEXT)
    found = {(h.token_id, h.start, h.end, h.text) for h in result.hits}
    for s, token_id in expected.items():
        start = TEXT.index(s)
        assert (token_id, start, start + len(s), s) in found, s
    for h in result.hits:  # every hit is a listed token covering exactly its characters
        assert h.token_id in detector.ids and TEXT[h.start:h.end] == h.text
        assert h.rank == gemma[2].ranks[h.token_id] and h.score > 0.9
    assert result.tokens > len(result.hits) >= len(EXPECTED)
    # the cuneiform signs sit after Japanese: offsets count characters (each sign is one, and 4 bytes)
    cune = next(h for h in result.hits if h.text == "𒈹")
    assert TEXT[cune.start - 5:cune.start] == "楔形文字 " and cune.end - cune.start == 1


def test_clean_japanese_text_has_no_hits(detector):
    assert detector.scan(CLEAN) == []


def test_cli_on_gemma_with_its_ranked_csv(gemma, tmp_path):
    frame, ranked_csv, glitch = gemma
    (tmp_path / "text.txt").write_text(TEXT, encoding="utf-8")
    (tmp_path / "clean.txt").write_text(CLEAN, encoding="utf-8")
    # the CLI's default filter (no special/unused/padding, no UTF-8-invalid bytes) keeps these tokens
    listed = load_glitch_list(ranked_csv, top=TOP)
    assert set(_expected_ids(glitch).values()) <= set(listed.ids)
    runner = CliRunner()
    args = ["detect", "gemma-3-270m", "--glitch", str(ranked_csv), "--top", str(TOP)]
    res = runner.invoke(cli, args + [str(tmp_path / "text.txt"), "-o", str(tmp_path / "hits.jsonl")])
    assert res.exit_code == 3, res.output
    hits = [json.loads(line) for line in (tmp_path / "hits.jsonl").read_text(encoding="utf-8").splitlines()]
    lines = TEXT.splitlines(keepends=True)
    got = {(h["line"], h["text"]) for h in hits}
    for s in EXPECTED:
        n = next(i for i, line in enumerate(lines, 1) if s in line)
        assert (n, s) in got, s
    for h in hits:
        assert lines[h["line"] - 1][h["start"]:h["end"]] == h["text"]
    assert "glitch tokens found" in res.stdout
    res = runner.invoke(cli, args + [str(tmp_path / "clean.txt")])
    assert res.exit_code == 0, res.output
