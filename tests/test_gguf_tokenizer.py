"""The generation tokenizer built from anomtok's parsed GGUF metadata (``anomtok.loading.gguf_tokenizer``)
is transformers' own GGUF tokenizer (``from_pretrained(gguf_file=...)``): the same inputs, backend,
vocabulary, special and added tokens, and the same ids and text on a varied sample. Tiny GGUFs cover
each builder anomtok's own model loader meets: byte-level BPE with merges (the tiny trained llama;
the same vocabulary as qwen2 with its split regex), sentencepiece without merges for gemma3 (merges
derived from the vocabulary, space-run tokens, byte fallback) and for llama (merges from the scores);
``real``: SmolLM2 and Gemma 3."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from anomtok.loading.gguf_reader import GGUFFile
from anomtok.loading.gguf_tokenizer import tokenizer_from_gguf, tokenizer_inputs, transformers_tokenizer
from anomtok.loading.gguf_torch import gguf_config

pytest.importorskip("transformers.integrations.gguf.gguf_tokenizer_mapping")

TEXTS = [
    "The quick brown fox jumps over the lazy dog. The cat saw a dog.",
    "東京タワーは高い。日本語のテキストとトークン",
    "🍣🎉 👨‍👩‍👧‍👦 emoji ✨ and 🇯🇵",
    "def f(x):\n    return x ** 2  # code {}[]<>\n",
    "   leading and trailing   ",
    "tabs\t\tand\n\nnewlines\r\n  two  spaces    four",
    "  ",
    " ",
    "",
    "Ünïcödé: ﬁ ß Ω 𝔘𝔫𝔦 café naïve",
    "<bos>literal <start_of_turn>user <unused0> <think> <eos>",
    "numbers 123,456.78 and https://example.com/a?b=c&d=e",
]


def _same_tokenizer(ours, theirs, path: Path, all_ids: bool) -> None:
    from transformers.integrations.gguf.gguf_tokenizer_mapping import get_gguf_tokenizer

    assert tokenizer_inputs(GGUFFile(path).metadata) == get_gguf_tokenizer(str(path))
    assert type(ours) is type(theirs)
    assert json.loads(ours.backend_tokenizer.to_str()) == json.loads(theirs.backend_tokenizer.to_str())
    assert len(ours) == len(theirs) and ours.get_vocab() == theirs.get_vocab()
    assert {i: repr(t) for i, t in ours.added_tokens_decoder.items()} == {
        i: repr(t) for i, t in theirs.added_tokens_decoder.items()
    }
    assert ours.special_tokens_map == theirs.special_tokens_map and ours.all_special_ids == theirs.all_special_ids
    for attr in ("bos_token_id", "eos_token_id", "pad_token_id", "unk_token_id", "padding_side", "model_max_length"):
        assert getattr(ours, attr) == getattr(theirs, attr), attr
    for text in TEXTS:
        for special in (True, False):
            ids = theirs(text, add_special_tokens=special)["input_ids"]
            assert ours(text, add_special_tokens=special)["input_ids"] == ids, (text, special)
            for skip in (False, True):
                assert ours.decode(ids, skip_special_tokens=skip) == theirs.decode(ids, skip_special_tokens=skip)
    ids = list(range(len(theirs))) if all_ids else list(range(0, len(theirs), 97))
    assert ours.convert_ids_to_tokens(ids) == theirs.convert_ids_to_tokens(ids)
    assert [ours.decode([i]) for i in ids] == [theirs.decode([i]) for i in ids]


def _check(path: Path, all_ids: bool = True) -> None:
    gf = GGUFFile(path)
    config = gguf_config(gf)
    ours = tokenizer_from_gguf(gf, config, path)
    assert ours is not None, "built by from_pretrained instead"
    _same_tokenizer(ours, transformers_tokenizer(path, config), path, all_ids)


# ------------------------------------------------------------------ tiny GGUFs
def _sentencepiece_vocab() -> tuple[list[str], list[int]]:
    """Specials, an unused and a user-defined token, the 256 byte-fallback pieces, then the 400
    commonest substrings (up to 6 characters, spaces as U+2581) of the sample, and runs of 2 to 4
    spaces stored as spaces (as Gemma's files store them)."""
    tokens = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>", "<unused0>", "<think>"]
    types = [3, 3, 3, 2, 3, 3, 3, 5, 4]
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    types += [6] * 256
    counts: Counter[str] = Counter()
    for text in TEXTS[:6]:
        s = text.replace(" ", "\u2581")
        for n in range(1, 7):
            counts.update(s[i : i + n] for i in range(len(s) - n + 1))
    pieces = [p for p, _ in sorted(counts.items(), key=lambda kv: (-kv[1] * len(kv[0]), kv[0])) if p not in tokens]
    tokens += pieces[:400] + ["  ", "   ", "    "]
    types += [1] * (len(tokens) - len(types))
    return tokens, types


def _write_tokenizer_gguf(path: Path, arch: str, model: str, tokens: list[str], types: list[int], **extra) -> Path:
    import gguf

    w = gguf.GGUFWriter(str(path), arch)
    w.add_name(f"anomtok tokenizer test {arch}/{model}")
    w.add_tokenizer_model(model)
    w.add_tokenizer_pre(extra.get("pre", "default"))
    w.add_token_list(tokens)
    w.add_token_types(types)
    if "scores" in extra:
        w.add_token_scores(extra["scores"])
    if "merges" in extra:
        w.add_token_merges(extra["merges"])
    for name, i in extra.get("ids", {}).items():
        getattr(w, f"add_{name}_token_id")(i)
    if "add_bos" in extra:
        w.add_add_bos_token(extra["add_bos"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_gemma3_sentencepiece_without_merges(tmp_path):
    tokens, types = _sentencepiece_vocab()
    ids = {"bos": 2, "eos": 1, "unk": 3, "pad": 0}
    path = _write_tokenizer_gguf(
        tmp_path / "g.gguf", "gemma3", "llama", tokens, types, scores=[0.0] * len(tokens), ids=ids, add_bos=True
    )
    _check(path)


def test_llama_sentencepiece_merges_from_scores(tmp_path):
    tokens, types = _sentencepiece_vocab()
    scores = [-float(i) for i in range(len(tokens))]
    path = _write_tokenizer_gguf(
        tmp_path / "l.gguf", "llama", "llama", tokens, types, scores=scores, ids={"bos": 2, "eos": 1, "unk": 3}
    )
    _check(path)


def test_byte_level_bpe_of_the_tiny_llama(tiny_model):
    _check(tiny_model.gguf_path)


def test_qwen2_split_regex(tiny_model, tmp_path):
    md = GGUFFile(tiny_model.gguf_path).metadata
    tokens, types = list(md["tokenizer.ggml.tokens"]), md["tokenizer.ggml.token_type"].tolist()
    types[-1] = 4  # a user-defined token too
    ids = {"bos": int(md["tokenizer.ggml.bos_token_id"]), "eos": int(md["tokenizer.ggml.eos_token_id"])}
    merges = list(md["tokenizer.ggml.merges"])
    path = _write_tokenizer_gguf(
        tmp_path / "q.gguf", "qwen2", "gpt2", tokens, types, merges=merges, pre="qwen2", ids=ids
    )
    assert tokenizer_inputs(GGUFFile(path).metadata)[1]["pre_tokenizer_type"] == "qwen2"
    _check(path)


def test_invalid_utf8_token_is_left_to_transformers(tmp_path):
    """anomtok's reader keeps a token's invalid bytes; transformers' reader refuses the file, so the
    tokenizer is not built from the metadata (from_pretrained then says what is wrong)."""
    tokens, types = _sentencepiece_vocab()
    path = _write_tokenizer_gguf(tmp_path / "bad.gguf", "gemma3", "llama", tokens, types, scores=[0.0] * len(tokens))
    data = path.read_bytes()
    at = data.index(b"\xe3\x83\x88")  # a piece of the Japanese sample
    path.write_bytes(data[:at] + b"\xff" + data[at + 1 :])
    gf = GGUFFile(path)
    assert tokenizer_inputs(gf.metadata) is None
    assert tokenizer_from_gguf(gf, gguf_config(gf), path) is None


# ------------------------------------------------------------------ the packaged models
@pytest.mark.real
@pytest.mark.parametrize("alias", ["smollm2-135m", "gemma-3-270m"])
def test_real_models(alias):
    from anomtok.errors import LoadError
    from anomtok.loading.packaged import materialize_gguf

    try:
        path = materialize_gguf(alias)
    except LoadError as exc:
        pytest.skip(str(exc))
    _check(path, all_ids=False)
