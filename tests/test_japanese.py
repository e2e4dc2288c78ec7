"""Japanese script classes, inventory, coverage and fertility: known answers, and the Japanese
section of an audit of a tiny byte-fallback tokenizer whose costs are known character by character."""

from __future__ import annotations

import polars as pl
import pytest

from anomtok import japanese as ja
from anomtok.audit import audit
from anomtok.tokenizer_source import load_tokenizer


@pytest.mark.parametrize("text, expected", [
    ("ひらがな", "hiragana"), ("カタカナ", "katakana"), ("ｶﾀｶﾅ", "halfwidth_katakana"), ("ﾃﾞｽ", "halfwidth_katakana"),
    ("漢字", "kanji"), ("々", "kanji"), ("〆", "kanji"), ("𠮷", "kanji"), ("﨑", "kanji"),
    ("、", "ja_punct"), ("。」", "ja_punct"), ("・", "ja_punct"), ("〜", "ja_punct"), ("（", "ja_punct"), ("｢", "ja_punct"),
    ("ＡＢＣ", "fullwidth"), ("１２３", "fullwidth"),
    ("ー", "katakana"), ("すごーい", "hiragana"), ("ｰ", "halfwidth_katakana"),
    ("▁東京", "kanji"), (" 2026年", "kanji"), ("東京タワー", "mixed"), ("です。", "mixed"), ("GPUの", "mixed"),
    ("the", ""), ("", ""), ("😀", ""), ("Ünïcödé", ""), ("한국어", ""), ("...", ""),
])
def test_ja_class(text, expected):
    assert ja.ja_class(text) == expected


def test_inventory_origins_are_disjoint_and_skip_ascii():
    inv = ja.inventory("東京はＡＢＣとｶﾀｶﾅ abc\n東", joyo=["東", "京", "都"])
    assert inv["sample"] == sorted(set("東京はＡＢＣとｶﾀｶﾅ"))
    assert inv["joyo"] == ["都"]  # 東 and 京 are listed once, under sample
    kana_total = sum(hi - lo + 1 for lo, hi in ja.KANA_RANGES)
    assert len(inv["kana"]) == kana_total - len(set("はとｶﾀﾅ"))
    everything = [c for v in inv.values() for c in v]
    assert len(everything) == len(set(everything))


def test_default_inventory_reads_the_sample_and_joyo():
    inv = ja.inventory()
    text = ja.read_sample("ja")
    assert set(inv["sample"]) == {c for c in text if not c.isascii() and c.isprintable()}
    if ja.joyo_kanji():
        assert len(ja.joyo_kanji()) == 2136
        assert set(ja.joyo_kanji()) <= set(inv["sample"]) | set(inv["joyo"])
    else:
        assert inv["joyo"] == []


def test_coverage_and_summary_known_answers():
    costs = {"あ": [1], "い": [2], "う": [9, 9, 9], "ｶ": [3], "𠮷": [9, 9, 9, 9], "＠": [0]}
    recs = ja.coverage(list(costs), lambda texts: [costs[t] for t in texts], {"あ": [1], "い": [2]},
                       fragment_ids=frozenset({9}), unk_ids=frozenset({0}))
    got = {r["char"]: (r["n_tokens"], r["single"], r["in_vocab"], r["byte_pieces"], r["unk"]) for r in recs}
    assert got == {"あ": (1, True, True, False, False), "い": (1, True, True, False, False),
                   "う": (3, False, False, True, False), "ｶ": (1, True, False, False, False),
                   "𠮷": (4, False, False, True, False), "＠": (1, False, False, False, True)}
    summary = ja.summarize_coverage(recs, {"sample": list(costs)})
    assert summary["all"]["chars"] == 6 and summary["all"]["single_token"] == 3
    assert summary["all"]["tokens_histogram"] == {"1": 4, "3": 1, "4+": 1}
    assert summary["by_class"]["hiragana"]["single_token"] == 2 and summary["by_class"]["hiragana"]["chars"] == 3


def test_fertility_known_answer():
    f = ja.fertility({"ja": "東京", "en": "abcd"}, lambda t: [5, 5, 5] if t == "東京" else [1, 2],
                     fragment_ids=frozenset({5}))
    assert f["ja"] == {"chars": 2, "bytes": 6, "tokens": 3, "tokens_per_char": 1.5, "tokens_per_byte": 0.5,
                       "chars_per_token": 0.6667, "byte_piece_tokens": 3, "unk_tokens": 0}
    assert f["en"]["tokens_per_char"] == 0.5


def _tiny_fallback_tokenizer():
    """Byte-fallback BPE, NFKC normaliser, no merges: the vocabulary is <unk>, the 256 byte pieces
    and the characters あ い カ 東 京 ー a b. So あ costs 1 token, う 3 (its UTF-8 bytes), ｶ 1 (NFKC
    makes it カ) though ｶ is not in the vocabulary, 𠮷 4."""
    from tokenizers import Tokenizer, decoders, models, normalizers

    pieces = ["<unk>"] + [f"<0x{b:02X}>" for b in range(256)] + list("あいカ東京ーab") + ["東京"]
    vocab = {p: i for i, p in enumerate(pieces)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[("東", "京")], unk_token="<unk>", byte_fallback=True))
    tok.normalizer = normalizers.NFKC()
    tok.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Fuse()])
    return tok, vocab


def test_japanese_section_of_an_audit():
    tok, vocab = _tiny_fallback_tokenizer()
    result = audit(tok, ranking=False, samples={"ja": "あいう、ｶ東京𠮷ー", "en": "ab ab"})
    sec = result.summary["japanese"]
    cov = {r["char"]: r for r in ja.coverage(
        list("あいう、ｶ東京𠮷ー"), lambda texts: [tok.encode(t).ids for t in texts], {})}
    assert {c: r["n_tokens"] for c, r in cov.items()} == {"あ": 1, "い": 1, "う": 3, "、": 3, "ｶ": 1, "東": 1,
                                                          "京": 1, "𠮷": 4, "ー": 1}
    sample = sec["coverage"]["by_origin"]["sample"]
    assert sample["chars"] == 9 and sample["single_token"] == 6 and sample["in_vocab"] == 5
    assert sample["byte_pieces"] == 3 and sample["tokens_histogram"] == {"1": 6, "3": 2, "4+": 1}
    assert sec["fertility"]["ja"]["tokens"] == 1 + 1 + 3 + 3 + 1 + 1 + 4 + 1  # 東京 is one merged token
    assert sec["fertility"]["en"]["tokens"] == 5  # a b ' ' a b: the space is a byte piece
    assert sec["fertility"]["en"]["byte_piece_tokens"] == 0  # <0x20> is a whole character
    assert sec["fertility"]["ja"]["byte_piece_tokens"] == 10
    assert sec["tokens_by_class"]["hiragana"]["tokens"] == 2
    assert sec["tokens_by_class"]["kanji"]["tokens"] == 3 and sec["tokens_by_class"]["katakana"]["tokens"] == 2
    # <0xE3>..<0xE9> are undecodable pieces with a kana/CJK lead byte
    assert sec["undecodable_cjk_fragments"] == 7
    assert sec["unreachable"]["count"] == 0


def test_top_ranked_japanese_tokens():
    tok, vocab = _tiny_fallback_tokenizer()
    result = audit(tok, ranking=False, samples={"ja": "あ", "en": "a"})
    frame = result.frame.with_columns(rank=(pl.lit(len(vocab)) - pl.col("token_id")).cast(pl.Int64))
    sec = ja.section(frame, load_tokenizer(tok).table,
                     lambda texts: [tok.encode(t).ids for t in texts], lambda t: tok.encode(t).ids,
                     samples={"ja": "あ", "en": "a"}, top_k=5)
    ranked = [(r["rank"], r["token"]) for r in sec["top_ranked"]["tokens"]]
    assert ranked == [(1, "東京"), (4, "ー"), (5, "京")]  # ranks 2 and 3 are b and a
    lines = ja.render_section(sec, lambda s: f"`{s}`")
    assert any("top 5" in line for line in lines) and any("東京" in line for line in lines)
