"""The tiny-model fixtures are what they claim: the ground truth the other tests rely on."""

from __future__ import annotations

import json

import gguf
import numpy as np
import pytest
from safetensors.numpy import load_file
from tokenizers import Tokenizer

try:  # tests/ as a package or as a plain rootdir folder
    from .tinymodel import build_tiny_model
except ImportError:
    from tinymodel import build_tiny_model

ALL = ["tiny_model", "tiny_model_untied", "tiny_model_noref"]


@pytest.fixture(params=ALL)
def model(request):
    return request.getfixturevalue(request.param)


def _gguf_tensor(path, name: str) -> np.ndarray:
    reader = gguf.GGUFReader(str(path))
    (t,) = [t for t in reader.tensors if t.name == name]
    return gguf.dequantize(t.data, t.tensor_type).reshape(tuple(int(d) for d in reversed(t.shape)))


def _gguf_field(reader: gguf.GGUFReader, key: str):
    return reader.fields[key].contents()


def _hf_matrices(m) -> dict[str, np.ndarray]:
    sd = load_file(str(m.hf_dir / "model.safetensors"))
    out = {"embed": sd["model.embed_tokens.weight"]}
    if "lm_head.weight" in sd:
        out["lm_head"] = sd["lm_head.weight"]
    return out


def test_shape_of_the_vocabulary(model):
    assert model.embedding_rows % 64 == 0
    assert model.vocab_size < model.embedding_rows < model.vocab_size + 64
    assert model.padding_ids == tuple(range(model.vocab_size, model.embedding_rows))
    specials = set(model.special_ids.values()) | set(model.unused_ids)
    ordinary = set(range(model.vocab_size)) - specials
    assert set(model.unseen_ids) | set(model.seen_ids) == ordinary
    assert not set(model.unseen_ids) & set(model.seen_ids)
    assert set(model.unseen_merged_ids) <= set(model.unseen_ids)
    assert set(model.unseen_extra_ids) <= set(model.unseen_ids)
    # never-seen ordinary tokens: single bytes, pieces of the extra words, and BPE intermediates
    assert len(model.unseen_ids) >= 40
    assert len(set(model.unseen_extra_ids) & set(model.unseen_merged_ids)) >= 40
    assert len(model.seen_ids) >= 200


def test_hf_folder_files(model):
    names = {p.name for p in model.hf_dir.iterdir()}
    need = {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"}
    assert need <= names
    assert not any(n.endswith(".bin") for n in names)
    cfg = json.loads((model.hf_dir / "config.json").read_text())
    assert cfg["vocab_size"] == model.embedding_rows
    assert cfg["tie_word_embeddings"] is model.tied
    assert cfg["hidden_size"] == model.hidden_size
    mats = _hf_matrices(model)
    assert mats["embed"].shape == (model.embedding_rows, model.hidden_size)
    assert ("lm_head" in mats) is (not model.tied)


def test_unseen_ids_never_occur_in_the_training_stream(model):
    stream = np.load(model.train_tokens_path)
    assert not np.isin(stream, model.unseen_ids).any()
    assert not np.isin(stream, model.unused_ids).any()
    assert not np.isin(stream, model.padding_ids).any()
    assert np.isin(model.seen_ids, stream).all()
    ids, counts = np.unique(stream, return_counts=True)
    assert dict(zip(ids.tolist(), counts.tolist())) == model.counts


def test_saved_tokenizer_reproduces_the_training_stream(model):
    """The stream is `<bos> doc <eos>` per line of corpus_train.txt, tokenized by the saved tokenizer."""
    tok = Tokenizer.from_file(str(model.hf_dir / "tokenizer.json"))
    assert tok.get_vocab_size(with_added_tokens=True) == model.vocab_size
    docs = model.train_text_path.read_text(encoding="utf-8").splitlines()
    bos, eos = model.special_ids["bos"], model.special_ids["eos"]
    expected = [i for enc in tok.encode_batch(docs, add_special_tokens=False) for i in (bos, *enc.ids, eos)]
    stream = np.load(model.train_tokens_path).tolist()
    assert expected[: len(stream)] == stream
    assert len(expected) - len(stream) < 64  # only the last partial window is dropped
    # and none of the extra text's words is in it
    extra_words = set(model.extra_text_path.read_text(encoding="utf-8").split())
    text = "\n".join(docs).lower()
    assert not [w for w in extra_words if w in text]


def test_unused_ids_are_the_added_special_tokens(model):
    tok = json.loads((model.hf_dir / "tokenizer.json").read_text(encoding="utf-8"))
    added = {t["id"]: t for t in tok["added_tokens"]}
    for n, i in enumerate(model.unused_ids):
        assert added[i]["content"] == f"<unused{n}>" and added[i]["special"]
    for name, i in model.special_ids.items():
        assert added[i]["content"] == f"<{name}>" and added[i]["special"]
    assert set(added) == set(model.unused_ids) | set(model.special_ids.values())
    stm = json.loads((model.hf_dir / "special_tokens_map.json").read_text())
    assert stm.get("additional_special_tokens", []) == [f"<unused{n}>" for n in range(len(model.unused_ids))]
    assert model.unused_ids == tuple(range(model.vocab_size - len(model.unused_ids), model.vocab_size))


def test_noref_has_the_same_ordinary_vocabulary(tiny_model, tiny_model_noref):
    a = json.loads((tiny_model.hf_dir / "tokenizer.json").read_text(encoding="utf-8"))["model"]
    b = json.loads((tiny_model_noref.hf_dir / "tokenizer.json").read_text(encoding="utf-8"))["model"]
    assert a == b
    assert tiny_model_noref.unused_ids == ()
    assert tiny_model_noref.unseen_ids == tiny_model.unseen_ids


def test_training_loss_went_down(model):
    assert model.loss_start > 6.0  # about ln(rows) at init
    assert model.loss_end < 2.5
    assert model.loss_end < 0.4 * model.loss_start


def test_gguf_matches_the_hf_folder(model):
    mats = _hf_matrices(model)
    assert np.array_equal(_gguf_tensor(model.gguf_path, "token_embd.weight"), mats["embed"])
    reader = gguf.GGUFReader(str(model.gguf_path))
    names = {t.name for t in reader.tensors}
    if model.tied:
        assert "output.weight" not in names
    else:
        assert np.array_equal(_gguf_tensor(model.gguf_path, "output.weight"), mats["lm_head"])
    assert _gguf_field(reader, "general.architecture") == "llama"
    assert _gguf_field(reader, "llama.vocab_size") == model.embedding_rows
    assert _gguf_field(reader, "llama.embedding_length") == model.hidden_size
    assert _gguf_field(reader, "tokenizer.ggml.model") == "gpt2"
    tokens = _gguf_field(reader, "tokenizer.ggml.tokens")
    vocab = json.loads((model.hf_dir / "tokenizer.json").read_text(encoding="utf-8"))
    by_id = {i: t for t, i in vocab["model"]["vocab"].items()} | {t["id"]: t["content"] for t in vocab["added_tokens"]}
    assert tokens == [by_id[i] for i in range(model.vocab_size)]
    types = _gguf_field(reader, "tokenizer.ggml.token_type")
    control = set(model.unused_ids) | set(model.special_ids.values())
    assert [i for i, t in enumerate(types) if t == gguf.TokenType.CONTROL] == sorted(control)
    assert _gguf_field(reader, "tokenizer.ggml.bos_token_id") == model.special_ids["bos"]
    assert _gguf_field(reader, "tokenizer.ggml.eos_token_id") == model.special_ids["eos"]
    assert _gguf_field(reader, "tokenizer.ggml.padding_token_id") == model.special_ids["pad"]


def test_gguf_q8_0_is_close(tiny_model_untied):
    m = tiny_model_untied
    mats = _hf_matrices(m)
    reader = gguf.GGUFReader(str(m.gguf_q8_path))
    types = {t.name: t.tensor_type for t in reader.tensors}
    assert types["token_embd.weight"] == gguf.GGMLQuantizationType.Q8_0
    assert types["output_norm.weight"] == gguf.GGMLQuantizationType.F32
    for name, key in (("token_embd.weight", "embed"), ("output.weight", "lm_head")):
        got, want = _gguf_tensor(m.gguf_q8_path, name), mats[key]
        assert got.shape == want.shape
        # Q8_0: per block of 32, scale = max|x| / 127 (stored as f16)
        step = np.abs(want.reshape(want.shape[0], -1, 32)).max(-1, keepdims=True) / 127
        assert (np.abs(got - want).reshape(step.shape[0], -1, 32) <= step * 0.6 + 1e-7).all()


@pytest.mark.parametrize("quant", ["f32", "q8_0"])
def test_transformers_loads_the_gguf_with_the_same_logits(model, quant):
    pytest.importorskip("accelerate", reason="transformers' from_pretrained(gguf_file=...) requires accelerate")
    import torch
    from transformers import AutoModelForCausalLM

    path = model.gguf_path if quant == "f32" else model.gguf_q8_path
    hf = AutoModelForCausalLM.from_pretrained(model.hf_dir)
    gg = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name)
    assert gg.config.vocab_size == model.embedding_rows
    assert gg.config.tie_word_embeddings is model.tied
    x = torch.tensor(np.load(model.train_tokens_path)[:48].astype(np.int64)).view(2, 24)
    with torch.no_grad():
        a, b = hf(x).logits, gg(x).logits
    if quant == "f32":
        torch.testing.assert_close(b, a, atol=1e-4, rtol=0)
        for name, p in hf.state_dict().items():  # q/k un-permuted back exactly
            assert torch.equal(p, gg.state_dict()[name]), name
    else:
        assert (b - a).abs().max() < 0.05 * a.abs().max()


def _remove_pc1(e: np.ndarray) -> np.ndarray:
    e = e.astype(np.float64)
    _, _, vt = np.linalg.svd(e - e.mean(0), full_matrices=False)
    return e - np.outer(e @ vt[0], vt[0])


def _mean_cos(rows: np.ndarray, v: np.ndarray) -> float:
    return float(((rows @ v) / (np.linalg.norm(rows, axis=1) * np.linalg.norm(v))).mean())


@pytest.mark.parametrize(("fixture", "matrix"), [("tiny_model", "embed"), ("tiny_model_untied", "lm_head")])
def test_unseen_rows_point_where_the_unused_rows_point(fixture, matrix, request):
    """Magikarp-style: after removing the first principal component, the never-trained rows share
    a direction with the <unusedN> rows (the softmax pushes every never-target row the same way)."""
    m = request.getfixturevalue(fixture)
    e = _remove_pc1(_hf_matrices(m)[matrix])
    ref = e[list(m.unused_ids)].mean(0)
    unseen, seen = _mean_cos(e[list(m.unseen_ids)], ref), _mean_cos(e[list(m.seen_ids)], ref)
    assert unseen > seen + 0.25, (unseen, seen)


def test_untied_input_rows_of_unseen_tokens_keep_their_init_scale(tiny_model_untied):
    """With no gradient, an input row only decays: its norm stays near init, well under the seen rows'."""
    m = tiny_model_untied
    norms = np.linalg.norm(_hf_matrices(m)["embed"], axis=1)
    init_norm = 0.02 * np.sqrt(m.hidden_size)
    for group in (m.unseen_ids, m.unused_ids, m.padding_ids):
        assert 0.7 * init_norm < norms[list(group)].mean() < 1.05 * init_norm
    assert norms[list(m.seen_ids)].mean() > 1.8 * norms[list(m.unseen_ids)].mean()


def test_builder_is_deterministic_and_can_pad_the_gguf_vocabulary(tmp_path):
    """Two short builds with one seed give identical weights; `gguf_pad_vocab` adds llama.cpp's
    `[PAD{i}]` placeholder tokens (type UNUSED) so the GGUF has one token per embedding row."""
    a = build_tiny_model(tmp_path / "a", tied=False, steps=2)
    b = build_tiny_model(tmp_path / "b", tied=False, steps=2, gguf_pad_vocab=True)
    for name in ("model.safetensors", "tokenizer.json"):
        assert (a.hf_dir / name).read_bytes() == (b.hf_dir / name).read_bytes()
    assert (a.train_tokens_path.read_bytes()) == (b.train_tokens_path.read_bytes())
    ra, rb = gguf.GGUFReader(str(a.gguf_path)), gguf.GGUFReader(str(b.gguf_path))
    ta, tb = _gguf_field(ra, "tokenizer.ggml.tokens"), _gguf_field(rb, "tokenizer.ggml.tokens")
    assert len(ta) == a.vocab_size and len(tb) == b.embedding_rows
    assert tb == ta + [f"[PAD{i}]" for i in b.padding_ids]
    types = _gguf_field(rb, "tokenizer.ggml.token_type")
    assert types[a.vocab_size :] == [gguf.TokenType.UNUSED] * len(b.padding_ids)
    assert np.array_equal(
        _gguf_tensor(a.gguf_path, "token_embd.weight"), _gguf_tensor(b.gguf_path, "token_embd.weight")
    )
