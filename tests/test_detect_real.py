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
N_PLANTED = 6
# Sentences the planted tokens are written into; JA_FRAME, the first, puts a non-Latin token right after
# Japanese text (character offsets, not bytes, must come out).
FRAMES = (
    "The scheduler logged{} before it failed.\n",
    "Then it wrote{} to the file.\n",
    "Unlock{} first, then read the rest aloud.\n",
)
JA_FRAME = "粘土板には楔形文字 {} が刻まれていた。\n"
CLEAN = "東京タワーに行きました。The weather in Kyoto was lovely.\n"


@pytest.fixture(scope="module")
def gemma(tmp_path_factory):
    """(ranking frame, path of the ranked.csv `anomtok rank` would write, glitch list of the top
    tokens outside the reference set that are ordinary text pieces)."""
    out = tmp_path_factory.mktemp("gemma_rank")
    ranking = anomtok.rank(anomtok.load("gemma-3-270m"), out_dir=out, options=anomtok.RankOptions(nn="off"))
    top = ranking.frame.filter(~pl.col("is_reference") & (pl.col("kind") == "normal")).sort("rank").head(TOP)
    ids = [int(i) for i in top["token_id"]]
    glitch = GlitchList(
        ids=tuple(ids),
        scores=dict(zip(ids, top["score"].to_list())),
        ranks=dict(zip(ids, top["rank"].to_list())),
        bytes=dict(zip(ids, token_bytes(top))),
        source="gemma ranking",
    )
    return ranking.frame, out / "ranked.csv", glitch


@pytest.fixture(scope="module")
def detector(gemma):
    return GlitchDetector("gemma-3-270m", gemma[2])


@pytest.fixture(scope="module")
def planted(gemma):
    """Text holding some of the listed tokens, chosen at run time, not copied from an earlier run:
    the best-ranked printable tokens of the glitch list that Gemma's own tokenizer (loaded here,
    apart from the detector) produces where they are written. Returns (text, [(id, start, end,
    token text)]), the ids in the order they were planted."""
    from anomtok.audit.source import load_tokenizer

    tok = load_tokenizer("gemma-3-270m").tokenizer
    glitch = gemma[2]
    lines: list[str] = []
    spots: list[tuple[int, int, int, str]] = []
    offset = 0

    def plant(frame: str, token_id: int, s: str) -> bool:
        nonlocal offset
        line = frame.format(s)
        if token_id not in tok.encode(line, add_special_tokens=False).ids:
            return False
        start = offset + line.index(s, len(frame.split("{}")[0]))
        spots.append((token_id, start, start + len(s), s))
        lines.append(line)
        offset += len(line)
        return True

    texts = {}
    for i in glitch.ids:  # by rank
        try:
            s = glitch.bytes[i].decode("utf-8")
        except UnicodeDecodeError:
            continue
        if s.strip() and s.isprintable() and "{" not in s and "}" not in s:
            texts[i] = s
    non_latin = (i for i, s in texts.items() if s == s.strip() and all(ord(c) > 0x2000 for c in s))
    ja = next(i for i in non_latin if plant(JA_FRAME, i, texts[i]))
    for i, s in texts.items():
        if len(spots) >= N_PLANTED:
            break
        if i != ja:
            plant(FRAMES[len(spots) % len(FRAMES)], i, s)
    assert len(spots) == N_PLANTED, spots
    return "".join(lines), spots


def test_hits_include_the_planted_glitch_tokens(detector, gemma, planted):
    text, spots = planted
    result = detector.analyze(text)
    found = {(h.token_id, h.start, h.end, h.text) for h in result.hits}
    for spot in spots:
        assert spot in found, spot
    for h in result.hits:  # every hit is a listed token covering exactly its characters
        assert h.token_id in detector.ids and text[h.start : h.end] == h.text
        assert h.rank == gemma[2].ranks[h.token_id] and h.score == gemma[2].scores[h.token_id]
    assert result.tokens > len(result.hits) >= len(spots)
    # the first token sits after Japanese: offsets count characters, not bytes
    token_id, start, end, s = spots[0]
    assert text[:start].endswith("楔形文字 ") and end - start == len(s) < len(s.encode("utf-8"))


def test_clean_japanese_text_has_no_hits(detector):
    assert detector.scan(CLEAN) == []


def test_cli_on_gemma_with_its_ranked_csv(gemma, planted, tmp_path):
    frame, ranked_csv, glitch = gemma
    text, spots = planted
    (tmp_path / "text.txt").write_text(text, encoding="utf-8")
    (tmp_path / "clean.txt").write_text(CLEAN, encoding="utf-8")
    # the CLI's default filter (no special/unused/padding, no UTF-8-invalid bytes) keeps these tokens
    listed = load_glitch_list(ranked_csv, top=TOP)
    assert {i for i, *_ in spots} <= set(listed.ids)
    runner = CliRunner()
    args = ["detect", "gemma-3-270m", "--glitch", str(ranked_csv), "--top", str(TOP)]
    res = runner.invoke(cli, args + [str(tmp_path / "text.txt"), "-o", str(tmp_path / "hits.jsonl")])
    assert res.exit_code == 3, res.output
    hits = [json.loads(line) for line in (tmp_path / "hits.jsonl").read_text(encoding="utf-8").splitlines()]
    lines = text.splitlines(keepends=True)
    got = {(h["line"], h["start"], h["text"]) for h in hits}
    for _token_id, start, _end, s in spots:  # (line, offset in the line) of each planted token
        n = text.count("\n", 0, start) + 1
        assert (n, start - len("".join(lines[: n - 1])), s) in got, s
    for h in hits:
        assert lines[h["line"] - 1][h["start"] : h["end"]] == h["text"]
    assert "glitch tokens found" in res.stdout
    res = runner.invoke(cli, args + [str(tmp_path / "clean.txt")])
    assert res.exit_code == 0, res.output
