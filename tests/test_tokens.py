"""Known-answer tests for anomtok.tokens.TokenTable: exact bytes, kinds, scheme and reference set
for hand-written and freshly trained tokenizer.json files and for GGUF tokenizer metadata."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from anomtok.errors import LoadError
from anomtok.text import byte_level_decoder, is_partial_utf8
from anomtok.tokens import INVALID_UTF8_BYTES, KINDS, TokenTable

CORPUS = [
    "hello world, hello there",
    "the quick brown fox jumps over the lazy dog",
    "東京でトークンを数える",
    "こんにちは世界",
    "Привет мир",
    "tabs\tand\nnewlines\r\n",
    "emoji 😀 and café naïve",
] * 4


def _gpt2(data: bytes) -> str:
    """GPT-2 byte-level surface form of ``data``."""
    inverse = {b: ch for ch, b in byte_level_decoder().items()}
    return "".join(inverse[b] for b in data)


# ----------------------------------------------------------------------------- constants


def test_invalid_utf8_bytes_are_exactly_the_bytes_utf8_never_uses():
    """Derived here, not copied: the bytes that occur in no UTF-8 encoding of any code point."""
    every_char = "".join(chr(cp) for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF)
    never = frozenset(range(256)) - frozenset(every_char.encode("utf-8"))
    assert INVALID_UTF8_BYTES == never


def test_kinds_are_exactly_the_kinds_tables_assign():
    """KINDS lists every kind a table can give a row, and nothing else: tables that between them
    have every kind (the hand-made byte-level one, a BPE with an unk token, padding rows) use
    exactly KINDS, and kind_counts counts each in KINDS order."""
    unk = {"model": {"type": "BPE", "vocab": {"<unk>": 0, "a": 1}, "merges": [], "unk_token": "<unk>"}}
    tables = [TokenTable.from_tokenizer_json(_byte_level_spec()).with_rows(22), TokenTable.from_tokenizer_json(unk)]
    assert set().union(*(t.kinds for t in tables)) == set(KINDS)
    assert len(set(KINDS)) == len(KINDS)
    for t in tables:
        counts = t.kind_counts()
        assert counts == {k: t.kinds.count(k) for k in KINDS if k in t.kinds}
        assert list(counts) == [k for k in KINDS if k in counts]


# ----------------------------------------------------------------------------- byte-level BPE (hand-made)


def _byte_level_spec() -> dict:
    vocab = {
        "<|endoftext|>": 0,
        "Ġ": 1,
        "Ċ": 2,
        "!": 3,
        "ÿ": 4,  # 0xFF
        "Ā": 5,  # 0x00
        "Ġhello": 6,
        "ãģ": 7,  # e3 81: a fragment of a kana
        "æĿ±": 8,  # 東
        "ĠĊ": 9,
        "À": 10,  # 0xC0
        "Á": 11,  # 0xC1
        "õ": 12,  # 0xF5
        "ô": 13,  # 0xF4 (valid lead byte of a 4-byte sequence)
        "Ã": 14,  # 0xC3
        # 15..17: added tokens; 18: hole; 19 last
        "world": 19,
    }
    return {
        "version": "1.0",
        "added_tokens": [
            {"id": 0, "content": "<|endoftext|>", "special": True},
            {"id": 15, "content": "<unused0>", "special": True},
            {"id": 16, "content": "<|reserved_special_token_5|>", "special": True},
            {"id": 17, "content": "<|im_start|>", "special": False},
        ],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "vocab": vocab, "merges": []},
    }


def test_byte_level_bytes_kinds_and_scheme():
    t = TokenTable.from_tokenizer_json(_byte_level_spec())
    assert t.scheme == "byte-level"
    assert len(t) == t.n_vocab == 20
    assert t.bytes == [
        b"<|endoftext|>",
        b" ",
        b"\n",
        b"!",
        b"\xff",
        b"\x00",
        b" hello",
        b"\xe3\x81",
        "東".encode(),
        b" \n",
        b"\xc0",
        b"\xc1",
        b"\xf5",
        b"\xf4",
        b"\xc3",
        b"<unused0>",
        b"<|reserved_special_token_5|>",
        b"<|im_start|>",
        b"",
        b"world",
    ]
    assert t.kinds == [
        "special",
        "byte",
        "byte",
        "byte",
        "byte",
        "byte",
        "normal",
        "normal",
        "normal",
        "normal",
        "byte",
        "byte",
        "byte",
        "byte",
        "byte",
        "unused",
        "unused",
        "added",
        "padding",
        "normal",
    ]
    assert t.pieces[6] == "Ġhello" and t.pieces[18] == ""
    assert t.kind_counts() == {"normal": 5, "byte": 10, "special": 1, "unused": 2, "added": 1, "padding": 1}


def test_byte_level_reference_mask():
    t = TokenTable.from_tokenizer_json(_byte_level_spec())
    # 0xFF, 0xC0, 0xC1, 0xF5 single bytes; the two unused tokens; the hole at id 18
    assert np.nonzero(t.reference_mask())[0].tolist() == [4, 10, 11, 12, 15, 16, 18]
    assert t.reference_mask().dtype == bool


def test_byte_level_displays_scripts_and_partial():
    t = TokenTable.from_tokenizer_json(_byte_level_spec())
    assert t.displays[1] == " "
    assert t.displays[2] == "\\n"
    assert t.displays[4] == "\\xff"
    assert t.displays[5] == "\\x00"
    assert t.displays[7] == "\\xe3\\x81"
    assert t.displays[8] == "東"
    assert t.displays[9] == " \\n"
    assert t.scripts[0] == "none"  # special
    assert t.scripts[6] == "Latin"
    assert t.scripts[8] == "Han"
    assert t.scripts[1] == "Common"
    assert t.scripts[7] == "none"  # nothing decodable
    assert t.scripts[15] == t.scripts[18] == "none"
    assert t.partial.tolist() == [is_partial_utf8(b) for b in t.bytes]
    assert np.nonzero(t.partial)[0].tolist() == [4, 7, 10, 11, 12, 13, 14]


def test_tokenizer_json_from_path_equals_from_dict(tmp_path):
    spec = _byte_level_spec()
    p = tmp_path / "tokenizer.json"
    p.write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
    a = TokenTable.from_tokenizer_json(p)
    b = TokenTable.from_tokenizer_json(str(p))
    c = TokenTable.from_tokenizer_json(spec)
    assert a.bytes == b.bytes == c.bytes
    assert a.kinds == b.kinds == c.kinds
    assert a.displays == c.displays and a.scripts == c.scripts


def test_unk_token_of_the_model_is_unknown():
    spec = {"model": {"type": "BPE", "vocab": {"<unk>": 0, "a": 1, "b": 2}, "merges": [], "unk_token": "<unk>"}}
    t = TokenTable.from_tokenizer_json(spec)
    assert t.scheme == "plain"
    assert t.kinds == ["unknown", "normal", "normal"]
    assert t.bytes == [b"<unk>", b"a", b"b"]
    assert t.scripts == ["none", "Latin", "Latin"]


@pytest.mark.parametrize(
    "piece, kind",
    [
        ("<unused0>", "unused"),
        ("<unused12>", "unused"),
        ("[unused3]", "unused"),
        ("<|reserved_special_token_5|>", "unused"),
        ("<|reserved_0|>", "unused"),
        ("<UNUSED_7>", "unused"),
        ("<|im_start|>", "special"),
        ("<s>", "special"),
        ("<unusual>", "special"),
        ("unused", "special"),  # not bracketed: a name, not the convention
    ],
)
def test_unused_convention_on_special_tokens(piece, kind):
    spec = {
        "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []},
        "added_tokens": [{"id": 1, "content": piece, "special": True}],
    }
    t = TokenTable.from_tokenizer_json(spec)
    assert t.kinds == ["normal", kind]
    assert t.bytes[1] == piece.encode()
    assert bool(t.reference_mask()[1]) is (kind == "unused")


# ----------------------------------------------------------------------------- byte-level BPE (trained) + oracle


@pytest.fixture(scope="module")
def trained_byte_level():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer)
    tok.add_special_tokens(["<unused0>", "<unused1>"])
    tok.add_tokens(["<|tool|>"])
    return tok, TokenTable.from_tokenizer_json(json.loads(tok.to_str()))


def test_trained_byte_level_shape_and_kinds(trained_byte_level):
    tok, t = trained_byte_level
    assert t.scheme == "byte-level"
    assert len(t) == t.n_vocab == tok.get_vocab_size(with_added_tokens=True)
    vocab = tok.get_vocab(with_added_tokens=True)
    assert t.kinds[vocab["<|endoftext|>"]] == "special"
    assert t.kinds[vocab["<pad>"]] == "special"
    assert t.kinds[vocab["<unused0>"]] == t.kinds[vocab["<unused1>"]] == "unused"
    assert t.kinds[vocab["<|tool|>"]] == "added"
    # every one of the 256 bytes is a single-byte piece of kind "byte"
    singles = {t.bytes[i][0]: i for i in range(len(t)) if t.kinds[i] == "byte"}
    assert sorted(singles) == list(range(256))
    for b, i in singles.items():
        assert t.pieces[i] == _gpt2(bytes([b]))
    assert t.kind_counts()["byte"] == 256
    ref = np.nonzero(t.reference_mask())[0].tolist()
    assert sorted(ref) == sorted([singles[b] for b in INVALID_UTF8_BYTES] + [vocab["<unused0>"], vocab["<unused1>"]])


def test_oracle_single_id_decode_matches_bytes(trained_byte_level):
    """Decoding one id alone with the tokenizers library gives our bytes, decoded with 'replace'.

    (Added tokens here are ASCII: the library runs non-ASCII added tokens through the ByteLevel
    decoder too, which garbles them; see test_added_token_of_byte_level_tokenizer_json_is_raw_text.)"""
    tok, t = trained_byte_level
    for i in range(len(t)):
        expected = tok.decode([i], skip_special_tokens=False)
        assert t.bytes[i].decode("utf-8", errors="replace") == expected, (i, t.pieces[i])


@pytest.mark.parametrize(
    "text", ["hello world", "東京でトークン", "こんにちは", " Привет\tмир\r\n", "unseen: Ωμέγα ∑ 🤖", "\x00\x7f\u202e"]
)
def test_oracle_encode_then_join_bytes_is_the_text(trained_byte_level, text):
    """The bytes of the ids that encode a text, concatenated, are exactly the text's UTF-8."""
    tok, t = trained_byte_level
    ids = tok.encode(text).ids
    assert b"".join(t.bytes[i] for i in ids) == text.encode("utf-8")


# ----------------------------------------------------------------------------- SentencePiece-style BPE with byte fallback

_BYTE_PIECES = [f"<0x{b:02X}>" for b in range(256)]


def _llama_like_spec(modern: bool) -> dict:
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    vocab.update({p: 3 + b for b, p in enumerate(_BYTE_PIECES)})
    vocab.update({"▁": 259, "▁the": 260, "東京": 261, "▁▁": 262, "<unused0>": 263, "ing": 264, "<0x4": 265})
    if modern:  # Llama-2/3-era HF files: no pre-tokenizer, ▁ handled by normalizer and decoder
        pre = None
        dec = {
            "type": "Sequence",
            "decoders": [
                {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
                {"type": "ByteFallback"},
                {"type": "Fuse"},
                {"type": "Strip", "content": " ", "start": 1, "stop": 0},
            ],
        }
    else:
        pre = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True}
        dec = {"type": "Sequence", "decoders": [{"type": "ByteFallback"}, {"type": "Metaspace", "replacement": "▁"}]}
    return {
        "added_tokens": [
            {"id": 0, "content": "<unk>", "special": True},
            {"id": 1, "content": "<s>", "special": True},
            {"id": 2, "content": "</s>", "special": True},
        ],
        "pre_tokenizer": pre,
        "decoder": dec,
        "model": {"type": "BPE", "vocab": vocab, "merges": [], "byte_fallback": True, "unk_token": "<unk>"},
    }


@pytest.mark.parametrize("modern", [False, True])
def test_byte_fallback_bpe(modern):
    t = TokenTable.from_tokenizer_json(_llama_like_spec(modern))
    assert t.scheme == "sentencepiece"
    assert len(t) == 266
    assert t.kinds[:3] == ["unknown", "special", "special"]
    assert t.bytes[:3] == [b"<unk>", b"<s>", b"</s>"]
    for b in range(256):
        assert t.kinds[3 + b] == "byte"
        assert t.bytes[3 + b] == bytes([b])
    assert t.bytes[3 + 0xE3] == b"\xe3"
    assert t.displays[3 + 0xE3] == "\\xe3"
    assert t.displays[3 + 0x41] == "A"
    assert t.displays[3 + 0x0A] == "\\n"
    assert t.bytes[259:266] == [b" ", b" the", "東京".encode(), b"  ", b"<unused0>", b"ing", b"<0x4"]
    assert t.kinds[259:266] == ["normal", "normal", "normal", "normal", "unused", "normal", "normal"]
    expected_ref = sorted([3 + b for b in INVALID_UTF8_BYTES] + [263])
    assert np.nonzero(t.reference_mask())[0].tolist() == expected_ref
    assert t.scripts[260] == "Latin" and t.scripts[261] == "Han" and t.scripts[3 + 0xE3] == "none"


@pytest.fixture(scope="module")
def trained_byte_fallback():
    tok = Tokenizer(models.BPE(byte_fallback=True, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Sequence(
        [decoders.ByteFallback(), decoders.Metaspace(replacement="▁", prepend_scheme="always")]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=360, special_tokens=["<unk>", "<s>", "</s>"] + _BYTE_PIECES, show_progress=False
    )
    tok.train_from_iterator(CORPUS, trainer)
    spec = json.loads(tok.to_str())
    # as in a converted SentencePiece model: <0xNN> are plain vocabulary pieces, not added tokens
    spec["added_tokens"] = [a for a in spec["added_tokens"] if not a["content"].startswith("<0x")]
    return Tokenizer.from_str(json.dumps(spec)), TokenTable.from_tokenizer_json(spec)


def test_trained_byte_fallback_table(trained_byte_fallback):
    tok, t = trained_byte_fallback
    assert t.scheme == "sentencepiece"
    vocab = tok.get_vocab()
    for b in range(256):
        i = vocab[f"<0x{b:02X}>"]
        assert (t.kinds[i], t.bytes[i]) == ("byte", bytes([b]))
    assert t.kinds[vocab["<unk>"]] == "unknown"
    assert t.kinds[vocab["<s>"]] == t.kinds[vocab["</s>"]] == "special"
    for piece, i in vocab.items():
        if t.kinds[i] == "normal":
            assert t.bytes[i] == piece.replace("▁", " ").encode()


@pytest.mark.parametrize("text", ["hello world", "東京でトークン", "Ωμέγα 🤖", "the lazy dog"])
def test_trained_byte_fallback_encode_oracle(trained_byte_fallback, text):
    tok, t = trained_byte_fallback
    enc = tok.encode(text)
    # Metaspace(prepend_scheme="always") puts a ▁ in front; unseen characters become <0xNN> pieces
    assert b"".join(t.bytes[i] for i in enc.ids) == (" " + text).encode()


# ----------------------------------------------------------------------------- WordPiece


def test_wordpiece_hand_made():
    spec = {
        "added_tokens": [
            {"id": 0, "content": "[PAD]", "special": True},
            {"id": 2, "content": "[UNK]", "special": True},
            {"id": 3, "content": "[CLS]", "special": True},
        ],
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
        "model": {
            "type": "WordPiece",
            "unk_token": "[UNK]",
            "continuing_subword_prefix": "##",
            "max_input_chars_per_word": 100,
            "vocab": {
                "[PAD]": 0,
                "[unused0]": 1,
                "[UNK]": 2,
                "[CLS]": 3,
                "hello": 4,
                "##ing": 5,
                "##": 6,
                "東": 7,
                "##京": 8,
                "#": 9,
                "##ー": 10,
            },
        },
    }
    t = TokenTable.from_tokenizer_json(spec)
    assert t.scheme == "wordpiece"
    assert t.kinds == [
        "special",
        "unused",
        "unknown",
        "special",
        "normal",
        "normal",
        "normal",
        "normal",
        "normal",
        "normal",
        "normal",
    ]
    assert t.bytes == [
        b"[PAD]",
        b"[unused0]",
        b"[UNK]",
        b"[CLS]",
        b"hello",
        b"ing",
        b"##",
        "東".encode(),
        "京".encode(),
        b"#",
        "ー".encode(),
    ]
    assert np.nonzero(t.reference_mask())[0].tolist() == [1]
    assert t.scripts[:4] == ["none"] * 4
    assert t.scripts[8] == "Han"


def test_wordpiece_custom_prefix():
    spec = {
        "model": {
            "type": "WordPiece",
            "continuing_subword_prefix": "@@",
            "unk_token": "[UNK]",
            "vocab": {"[UNK]": 0, "@@ab": 1, "##ab": 2},
        }
    }
    t = TokenTable.from_tokenizer_json(spec)
    assert t.bytes == [b"[UNK]", b"ab", b"##ab"]
    assert t.kinds == ["unknown", "normal", "normal"]


def test_wordpiece_trained():
    wp = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    wp.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    wp.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(
        vocab_size=150, special_tokens=["[PAD]", "[unused0]", "[UNK]", "[CLS]", "[SEP]"], show_progress=False
    )
    wp.train_from_iterator(CORPUS, trainer)
    t = TokenTable.from_tokenizer_json(json.loads(wp.to_str()))
    vocab = wp.get_vocab()
    assert t.scheme == "wordpiece"
    assert t.kinds[vocab["[unused0]"]] == "unused"
    assert t.kinds[vocab["[UNK]"]] == "unknown"
    assert t.kinds[vocab["[CLS]"]] == t.kinds[vocab["[SEP]"]] == t.kinds[vocab["[PAD]"]] == "special"
    assert np.nonzero(t.reference_mask())[0].tolist() == [vocab["[unused0]"]]
    n_cont = 0
    h = vocab["h"]
    for piece, i in vocab.items():
        if piece.startswith("##") and len(piece) > 2:
            n_cont += 1
            assert t.bytes[i] == piece[2:].encode()
            # the WordPiece decoder glues a continuation piece to the word start before it
            assert wp.decode([h, i]) == (t.bytes[h] + t.bytes[i]).decode()
        elif not piece.startswith("["):
            assert t.bytes[i] == piece.encode()
    assert n_cont > 10


# ----------------------------------------------------------------------------- Unigram


def test_unigram_hand_made():
    spec = {
        "pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always"},
        "decoder": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always"},
        "model": {
            "type": "Unigram",
            "unk_id": 1,
            "byte_fallback": True,
            "vocab": [
                ["<pad>", 0.0],
                ["<unk>", 0.0],
                ["▁", -2.0],
                ["▁hello", -3.0],
                ["<0xE3>", -9.0],
                ["<0xFF>", -9.0],
                ["トークン", -5.0],
                ["<unused5>", 0.0],
            ],
        },
        "added_tokens": [{"id": 0, "content": "<pad>", "special": True}],
    }
    t = TokenTable.from_tokenizer_json(spec)
    assert t.scheme == "sentencepiece"
    assert t.kinds == ["special", "unknown", "normal", "normal", "byte", "byte", "normal", "unused"]
    assert t.bytes == [b"<pad>", b"<unk>", b" ", b" hello", b"\xe3", b"\xff", "トークン".encode(), b"<unused5>"]
    assert np.nonzero(t.reference_mask())[0].tolist() == [5, 7]


def test_unigram_trained():
    ug = Tokenizer(models.Unigram())
    ug.pre_tokenizer = pre_tokenizers.Metaspace()
    ug.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=80, special_tokens=["<pad>", "<unk>"], unk_token="<unk>", show_progress=False
    )
    ug.train_from_iterator(CORPUS, trainer)
    spec = json.loads(ug.to_str())
    t = TokenTable.from_tokenizer_json(spec)
    vocab = ug.get_vocab()
    assert t.scheme == "sentencepiece"
    assert len(t) == ug.get_vocab_size()
    assert t.kinds[vocab["<unk>"]] == "unknown"
    assert t.kinds[vocab["<pad>"]] == "special"
    for piece, i in vocab.items():
        if t.kinds[i] == "normal":
            assert t.bytes[i] == piece.replace("▁", " ").encode()
    text = "hello world"
    enc = ug.encode(text)
    assert b"".join(t.bytes[i] for i in enc.ids) == (" " + text).encode()


# ----------------------------------------------------------------------------- with_rows


def test_with_rows_appends_padding():
    t = TokenTable.from_tokenizer_json(_byte_level_spec())
    p = t.with_rows(23)
    assert len(p) == 23 and p.n_vocab == 20
    assert p.kinds[20:] == ["padding"] * 3
    assert p.bytes[20:] == [b""] * 3
    assert p.pieces[20:] == [""] * 3
    assert p.displays[20:] == ["<row 20>", "<row 21>", "<row 22>"]
    assert p.scripts[20:] == ["none"] * 3
    assert p.partial.tolist() == t.partial.tolist() + [False] * 3
    assert np.nonzero(p.reference_mask())[0].tolist() == [4, 10, 11, 12, 15, 16, 18, 20, 21, 22]
    assert p.kind_counts()["padding"] == 4  # the hole plus three rows
    # the original is untouched
    assert len(t) == 20 and t.kinds[-1] == "normal"
    assert p.bytes[:20] == t.bytes and p.kinds[:20] == t.kinds and p.displays[:20] == t.displays


def test_with_rows_same_size_is_identity():
    t = TokenTable.from_tokenizer_json(_byte_level_spec())
    same = t.with_rows(20)
    assert len(same) == 20 and same.kinds == t.kinds and same.bytes == t.bytes


def test_with_rows_fewer_rows_than_tokens_is_a_load_error():
    t = TokenTable.from_tokenizer_json(_byte_level_spec())
    with pytest.raises(LoadError, match=r"20 tokens.*19 rows"):
        t.with_rows(19)
    with pytest.raises(LoadError):
        t.with_rows(0)


def test_constructor_rejects_mismatched_lengths():
    with pytest.raises(ValueError):
        TokenTable(pieces=["a", "b"], bytes=[b"a"], kinds=["normal", "normal"], n_vocab=2, scheme="plain")


# ----------------------------------------------------------------------------- GGUF metadata

# llama.cpp token types: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte


def test_gguf_llama():
    md = {
        "tokenizer.ggml.model": "llama",
        "tokenizer.ggml.tokens": [
            "<unk>",
            "<s>",
            "</s>",
            "<0x0A>",
            "<0xE3>",
            "<0xC0>",
            "<0xFF>",
            "▁hello",
            "東京",
            "<|im_start|>",
            "<unused0>",
            "▁▁",
        ],
        "tokenizer.ggml.token_type": [2, 3, 3, 6, 6, 6, 6, 1, 1, 4, 5, 1],
    }
    t = TokenTable.from_gguf_metadata(md)
    assert t.scheme == "sentencepiece"
    assert t.kinds == [
        "unknown",
        "special",
        "special",
        "byte",
        "byte",
        "byte",
        "byte",
        "normal",
        "normal",
        "added",
        "unused",
        "normal",
    ]
    assert t.bytes == [
        b"<unk>",
        b"<s>",
        b"</s>",
        b"\n",
        b"\xe3",
        b"\xc0",
        b"\xff",
        b" hello",
        "東京".encode(),
        b"<|im_start|>",
        b"<unused0>",
        b"  ",
    ]
    assert np.nonzero(t.reference_mask())[0].tolist() == [5, 6, 10]
    assert t.displays[3:7] == ["\\n", "\\xe3", "\\xc0", "\\xff"]
    assert t.partial.tolist() == [False, False, False, False, True, True, True, False, False, False, False, False]


def test_gguf_gpt2():
    md = {
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.tokens": [
            "<|endoftext|>",
            "Ġhello",
            "ÿ",
            "Ā",
            "Ċ",
            "ãģ",
            "<|im_start|>",
            "[unused3]",
            "Á",
            "<|bad|>",
        ],
        "tokenizer.ggml.token_type": [3, 1, 1, 1, 1, 1, 4, 5, 6, 2],
    }
    t = TokenTable.from_gguf_metadata(md)
    assert t.scheme == "byte-level"
    assert t.kinds == ["special", "normal", "byte", "byte", "byte", "normal", "added", "unused", "byte", "unknown"]
    assert t.bytes == [
        b"<|endoftext|>",
        b" hello",
        b"\xff",
        b"\x00",
        b"\n",
        b"\xe3\x81",
        b"<|im_start|>",
        b"[unused3]",
        b"\xc1",
        b"<|bad|>",
    ]
    assert np.nonzero(t.reference_mask())[0].tolist() == [2, 7, 8]


def test_gguf_bert():
    md = {
        "tokenizer.ggml.model": "bert",
        "tokenizer.ggml.tokens": [
            "[PAD]",
            "[unused0]",
            "[UNK]",
            "[CLS]",
            "▁hello",
            "ing",
            "東",
            "[unused99]",
            "<|user|>",
            "<0xF5>",
        ],
        "tokenizer.ggml.token_type": [3, 5, 2, 3, 1, 1, 1, 3, 4, 6],
    }
    t = TokenTable.from_gguf_metadata(md)
    assert t.scheme == "wordpiece-gguf"
    assert t.kinds == [
        "special",
        "unused",
        "unknown",
        "special",
        "normal",
        "normal",
        "normal",
        "unused",
        "added",
        "byte",
    ]
    assert t.bytes == [
        b"[PAD]",
        b"[unused0]",
        b"[UNK]",
        b"[CLS]",
        b" hello",
        b"ing",
        "東".encode(),
        b"[unused99]",
        b"<|user|>",
        b"\xf5",
    ]
    assert np.nonzero(t.reference_mask())[0].tolist() == [1, 7, 9]


@pytest.mark.parametrize(
    "model, scheme",
    [("t5", "sentencepiece"), ("gemma", "sentencepiece"), ("rwkv", "plain"), ("llama", "sentencepiece")],
)
def test_gguf_scheme_by_model(model, scheme):
    t = TokenTable.from_gguf_metadata(
        {"tokenizer.ggml.model": model, "tokenizer.ggml.tokens": ["a", "b"], "tokenizer.ggml.token_type": [1, 1]}
    )
    assert t.scheme == scheme


def test_gguf_default_model_is_llama_and_types_are_optional():
    t = TokenTable.from_gguf_metadata({"tokenizer.ggml.tokens": ["<0xE3>", "▁a", "<unused1>"]})
    assert t.scheme == "sentencepiece"
    assert t.kinds == ["byte", "normal", "unused"]
    assert t.bytes == [b"\xe3", b" a", b"<unused1>"]


def test_gguf_token_type_of_wrong_length_is_ignored():
    t = TokenTable.from_gguf_metadata(
        {
            "tokenizer.ggml.model": "llama",
            "tokenizer.ggml.tokens": ["<s>", "<0xFF>", "▁x"],
            "tokenizer.ggml.token_type": [3, 6],
        }
    )
    assert t.kinds == ["normal", "byte", "normal"]
    assert t.bytes == [b"<s>", b"\xff", b" x"]


@pytest.mark.parametrize(
    "md", [{}, {"tokenizer.ggml.tokens": []}, {"tokenizer.ggml.tokens": None, "tokenizer.ggml.model": "gpt2"}]
)
def test_gguf_without_tokens_is_a_load_error(md):
    with pytest.raises(LoadError):
        TokenTable.from_gguf_metadata(md)


def test_gguf_gpt2_user_defined_token_is_raw_text():
    """llama.cpp stores USER_DEFINED tokens of a gpt2 vocabulary as raw text (token_to_piece returns
    them unchanged), so they must not go through the GPT-2 byte map: 'café' is not b'caf\\xe9'."""
    t = TokenTable.from_gguf_metadata(
        {
            "tokenizer.ggml.model": "gpt2",
            "tokenizer.ggml.tokens": ["a", "café", "Łó"],
            "tokenizer.ggml.token_type": [1, 4, 4],
        }
    )
    assert t.bytes[1] == "café".encode()
    assert t.bytes[2] == "Łó".encode()


def test_added_token_of_byte_level_tokenizer_json_is_raw_text():
    """An added token is matched in the raw text (encode('café') gives its id), so its bytes are the
    text's UTF-8 (the library's own single-id decode garbles it to 'caf\\ufffd')."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        ["ab ab"],
        trainers.BpeTrainer(vocab_size=270, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False),
    )
    tok.add_tokens(["café"])
    t = TokenTable.from_tokenizer_json(json.loads(tok.to_str()))
    ids = tok.encode("café").ids
    assert len(ids) == 1 and t.kinds[ids[0]] == "added"
    assert b"".join(t.bytes[i] for i in ids) == "café".encode()


# ----------------------------------------------------------------------------- errors


def test_empty_vocab_is_a_load_error():
    with pytest.raises(LoadError, match="empty vocabulary"):
        TokenTable.from_tokenizer_json({"model": {"type": "BPE", "vocab": {}, "merges": []}})
    with pytest.raises(LoadError, match="empty vocabulary"):
        TokenTable.from_tokenizer_json({"model": {"type": "Unigram", "vocab": []}})
    with pytest.raises(LoadError, match="empty vocabulary"):
        TokenTable.from_pieces([], scheme="plain")


@pytest.mark.parametrize("spec", [{}, {"model": {}}, {"model": {"type": "BPE"}}, {"model": "BPE"}])
def test_spec_without_model_vocab_is_a_load_error(spec):
    with pytest.raises(LoadError, match="model.vocab"):
        TokenTable.from_tokenizer_json(spec)


def test_missing_file_is_a_load_error(tmp_path):
    with pytest.raises(LoadError, match="no such tokenizer file"):
        TokenTable.from_tokenizer_json(tmp_path / "nope.json")


@pytest.mark.parametrize(
    "content",
    [b"", b"{not json", b'{"model": {"vocab": {"a": 0}', b"\xff\xfe\x00garbage", b"[1, 2, 3]", b"null", b'"str"'],
)
def test_invalid_json_file_is_a_load_error(tmp_path, content):
    p = tmp_path / "tokenizer.json"
    p.write_bytes(content)
    with pytest.raises(LoadError):
        TokenTable.from_tokenizer_json(p)


def test_directory_instead_of_file_is_a_load_error(tmp_path):
    with pytest.raises(LoadError, match="not a readable tokenizer.json"):
        TokenTable.from_tokenizer_json(tmp_path)


def test_gguf_unknown_token_types_are_normal():
    # 0 is LLAMA_TOKEN_TYPE_UNDEFINED; 7 and beyond are not defined
    t = TokenTable.from_gguf_metadata(
        {
            "tokenizer.ggml.model": "llama",
            "tokenizer.ggml.tokens": ["▁a", "▁b", "▁c", "<0xFF>"],
            "tokenizer.ggml.token_type": [0, 7, 99, 6],
        }
    )
    assert t.kinds == ["normal", "normal", "normal", "byte"]
    assert t.bytes == [b" a", b" b", b" c", b"\xff"]
