"""anomtok's own GGUF -> torch loader (issue 13.4): same config, same tensors, same logits as
transformers' own load of the same file, on tiny GGUFs written here for llama, qwen2 and gemma3 the
way llama.cpp's converter writes them, on the tiny trained llama, and on SmolLM2 (``real``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anomtok.errors import InputError
from anomtok.generation.model import load_causal_lm
from anomtok.loading.gguf_arch import ARCHS, arch_spec, unpermute_rope_rows
from anomtok.loading.gguf_reader import GGUFFile
from anomtok.loading.gguf_torch import gguf_config, load_model, unsupported_reason

TEXTS = ["the cat saw a dog", "東京 cat", " 42 + 7 = 49", "<unused3> yesterday"]
N_LAYERS, HIDDEN, FFN, HEADS, KV_HEADS, HEAD_DIM, VOCAB = 2, 64, 128, 4, 2, 16, 96


def _llama_cpp_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """convert_hf_to_gguf.py's ``LlamaModel.permute``: rotate-half rows -> interleaved rows."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def test_unpermute_inverts_llama_cpp_permute():
    rng = np.random.default_rng(0)
    for n_head, shape in ((4, (64, 24)), (2, (32, 8)), (3, (48,))):
        w = rng.standard_normal(shape).astype(np.float32)
        p = _llama_cpp_permute(w, n_head)
        assert not np.array_equal(p, w)
        assert np.array_equal(unpermute_rope_rows(p, n_head), w)
    with pytest.raises(ValueError, match="rope heads"):
        unpermute_rope_rows(np.zeros((10, 4), np.float32), 4)


# ------------------------------------------------------------------ tiny GGUFs as llama.cpp writes them
def _hf_model(arch: str):
    from transformers import AutoModelForCausalLM, Gemma3TextConfig, LlamaConfig, Qwen2Config

    common = dict(
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        intermediate_size=FFN,
        num_hidden_layers=N_LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=KV_HEADS,
        max_position_embeddings=128,
        rms_norm_eps=1e-6,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    if arch == "llama":  # untied output, so output.weight is written and mapped
        cfg = LlamaConfig(**common, head_dim=HEAD_DIM, rope_theta=10000.0, tie_word_embeddings=False)
    elif arch == "qwen2":  # q/k/v biases
        cfg = Qwen2Config(**common, rope_theta=1e6, tie_word_embeddings=True)
    else:  # defaults as transformers' GGUF config leaves them (sliding pattern, local rope base, ...)
        cfg = Gemma3TextConfig(**common, head_dim=HEAD_DIM, rope_theta=1e6, sliding_window=8, tie_word_embeddings=True)
    torch.manual_seed(1234)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    with torch.no_grad():  # random everything, norms included (Gemma's start at 0: the +1 must show)
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.2)
    return model.eval()


def _write_gguf(path, arch: str, model, q8: bool) -> None:
    import gguf

    cfg = model.config
    w = gguf.GGUFWriter(str(path), arch)
    w.add_name(f"anomtok tiny {arch}")
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_layer_norm_rms_eps(float(cfg.rms_norm_eps))
    rope = (getattr(cfg, "rope_parameters", None) or {}).get("rope_theta") or getattr(cfg, "rope_theta", None)
    if arch == "gemma3":
        rope = cfg.rope_parameters["full_attention"]["rope_theta"]
        w.add_key_length(HEAD_DIM)
        w.add_value_length(HEAD_DIM)
        w.add_sliding_window(cfg.sliding_window)
    if arch == "llama":
        w.add_rope_dimension_count(HEAD_DIM)
    w.add_rope_freq_base(float(rope))
    w.add_tokenizer_model("gpt2")
    w.add_token_list([f"t{i}" for i in range(VOCAB)])
    w.add_token_types([1] * VOCAB)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_pad_token_id(0)
    name_map = gguf.get_tensor_name_map(gguf.MODEL_ARCH[arch.upper()], cfg.num_hidden_layers)
    for hf_name, tensor in model.state_dict().items():
        if hf_name == "lm_head.weight" and cfg.tie_word_embeddings:
            continue
        base, suffix = hf_name.rsplit(".", 1)
        data = tensor.numpy().copy()
        if arch == "llama" and base.endswith("q_proj"):
            data = _llama_cpp_permute(data, cfg.num_attention_heads)
        elif arch == "llama" and base.endswith("k_proj"):
            data = _llama_cpp_permute(data, cfg.num_key_value_heads)
        if arch == "gemma3" and hf_name.endswith("norm.weight"):
            data = data + 1  # llama.cpp stores Gemma's RMSNorm weights as 1 + w
        name = f"{name_map.get_name(base)}.{suffix}"
        if q8 and data.ndim == 2 and data.shape[-1] % 32 == 0:
            w.add_tensor(
                name,
                gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0),
                raw_dtype=gguf.GGMLQuantizationType.Q8_0,
            )
        else:
            w.add_tensor(name, np.ascontiguousarray(data, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@pytest.fixture(scope="module", params=sorted(ARCHS))
def tiny_arch(request, tmp_path_factory):
    arch = request.param
    folder = tmp_path_factory.mktemp(f"gguf-{arch}")
    model = _hf_model(arch)
    files = {}
    for q8 in (False, True):
        files[q8] = folder / f"tiny-{arch}-{'q8_0' if q8 else 'f32'}.gguf"
        _write_gguf(files[q8], arch, model, q8)
    return arch, model, files


def _transformers_load(path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32).eval()


def _logits(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float()


IDS = [1, 5, 17, 42, 3, 88, 60, 7, 7, 19, 2, 33]


@pytest.mark.parametrize("q8", [False, True], ids=["f32", "q8_0"])
def test_same_config_tensors_and_logits_as_transformers(tiny_arch, q8):
    from transformers import AutoConfig

    arch, _, files = tiny_arch
    path = files[q8]
    gf = GGUFFile(path)
    assert unsupported_reason(gf) == ""
    ours, seconds = load_model(gf, torch.float32)
    theirs = _transformers_load(path)
    ref_cfg = AutoConfig.from_pretrained(str(path.parent), gguf_file=path.name).to_dict()
    mine = gguf_config(gf).to_dict()
    skip = ("transformers_version", "_name_or_path")  # the folder transformers was given
    assert {k: v for k, v in mine.items() if k not in skip} == {k: v for k, v in ref_cfg.items() if k not in skip}
    assert type(ours) is type(theirs)
    a, b = ours.state_dict(), theirs.state_dict()
    assert sorted(a) == sorted(b)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert all(p.device.type == "cpu" for p in [*ours.parameters(), *ours.buffers()])
    if ours.config.tie_word_embeddings:
        assert ours.lm_head.weight.data_ptr() == ours.model.embed_tokens.weight.data_ptr()
    diff = (_logits(ours, IDS) - _logits(theirs, IDS)).abs().max().item()
    assert diff == 0.0, f"{arch}: max |Δlogit| {diff}"


def test_f32_file_gives_the_original_model_back(tiny_arch):
    """The fixture is written as llama.cpp writes (permuted q/k, Gemma norms + 1): loading the F32
    file gives the HF model it came from, so a missing inverse transform cannot go unnoticed."""
    arch, original, files = tiny_arch
    ours, _ = load_model(GGUFFile(files[False]), torch.float32)
    for k, v in original.state_dict().items():  # (w + 1) - 1 is w up to rounding
        torch.testing.assert_close(ours.state_dict()[k], v, atol=1e-6, rtol=0, msg=k)
    torch.testing.assert_close(_logits(ours, IDS), _logits(original, IDS), atol=1e-5, rtol=0)


def test_unsupported_architectures_are_named(tmp_path):
    assert arch_spec({"general.architecture": "phi3"})[0] is None
    assert "phi3" in arch_spec({"general.architecture": "phi3"})[1]
    assert "Mistral" in arch_spec({"general.architecture": "llama", "general.name": "Mistral 7B"})[1]
    assert arch_spec({"general.architecture": "gemma3"})[0].model_type == "gemma3_text"


# ------------------------------------------------------------------ load_causal_lm on the tiny trained llama
def test_load_causal_lm_uses_its_own_loader_and_matches(tiny_model):
    from transformers import AutoTokenizer

    folder_lm = load_causal_lm(tiny_model.hf_dir, device="cpu")
    for path in (tiny_model.gguf_path, tiny_model.gguf_q8_path):
        ours = load_causal_lm(path, device="cpu")
        theirs = load_causal_lm(path, device="cpu", gguf_loader="transformers")
        assert ours.info["gguf_loader"] == "anomtok" and theirs.info["gguf_loader"] == "transformers"
        assert ours.describe()["gguf_loader"] == "anomtok"
        ref_tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        assert type(ours.tokenizer) is type(ref_tok) and len(ours.tokenizer) == len(ref_tok)
        for text in TEXTS:
            assert ours.encode(text) == ref_tok(text)["input_ids"] == theirs.encode(text)
        assert (ours.n_vocab, ours.eos_ids, ours.pad_id) == (theirs.n_vocab, theirs.eos_ids, theirs.pad_id)
        ids = ours.encode("the cat saw a dog")
        assert torch.equal(_logits(ours.model, ids), _logits(theirs.model, ids))
        if path == tiny_model.gguf_path:  # F32: the HF model it was written from
            torch.testing.assert_close(_logits(ours.model, ids), _logits(folder_lm.model, ids), atol=1e-4, rtol=0)
    with pytest.raises(InputError, match="gguf_loader"):
        load_causal_lm(tiny_model.gguf_path, device="cpu", gguf_loader="fast")


# ------------------------------------------------------------------ the packaged SmolLM2 GGUF
@pytest.mark.real
def test_smollm2_logits_equal_transformers_load():
    from anomtok.errors import LoadError
    from anomtok.loading.packaged import materialize_gguf

    try:
        path = materialize_gguf("smollm2-135m")
    except LoadError as exc:
        pytest.skip(str(exc))
    ours = load_causal_lm("smollm2-135m", device="cpu")
    assert ours.info["gguf_loader"] == "anomtok"
    theirs = _transformers_load(path)
    ids = ours.encode("The capital of France is Paris; 東京 is the capital of Japan. 1234")
    diff = (_logits(ours.model, ids) - _logits(theirs, ids)).abs().max().item()
    assert diff == 0.0, f"SmolLM2: max |Δlogit| {diff}"
    a, b = ours.model.state_dict(), theirs.state_dict()
    assert sorted(a) == sorted(b) and all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------ one parse of the file for negtemp
@pytest.mark.parametrize("which", ["tied", "untied"])
def test_embeddings_reader_and_matrices_are_reused(tiny_model, tiny_model_untied, tmp_path, which):
    """``load_causal_lm(..., embeddings=emb)`` builds the model from the GGUF the embeddings were read
    from (not parsed again) and shares its dequantized embedding matrices; the model is the one a
    fresh load gives. Embeddings of another file, or of a file changed since, are not used."""
    import os
    import shutil

    from anomtok.loading import load
    from anomtok.loading.gguf_reader import GGUFFile as Reader

    tm = tiny_model if which == "tied" else tiny_model_untied
    path = tm.gguf_q8_path
    emb = load(path)
    assert isinstance(emb.reader, Reader)
    parsed: list[object] = []
    real_init = Reader.__init__

    def counting_init(self, *a, **k):
        parsed.append(a)
        real_init(self, *a, **k)

    Reader.__init__ = counting_init  # type: ignore[method-assign]
    try:
        ours = load_causal_lm(path, device="cpu", embeddings=emb)
    finally:
        Reader.__init__ = real_init  # type: ignore[method-assign]
    assert parsed == [] and ours.info["gguf_reused"] is True
    assert ours.model.get_input_embeddings().weight.data_ptr() == emb.input.data_ptr()
    if emb.output is not None:
        assert ours.model.get_output_embeddings().weight.data_ptr() == emb.output.data_ptr()
    fresh = load_causal_lm(path, device="cpu")
    assert fresh.info["gguf_reused"] is False
    a, b = ours.model.state_dict(), fresh.model.state_dict()
    assert sorted(a) == sorted(b) and all(torch.equal(a[k], b[k]) for k in a)
    ids = ours.encode("the cat saw a dog")
    assert torch.equal(_logits(ours.model, ids), _logits(fresh.model, ids))

    assert load_causal_lm(path, device="cpu", embeddings=load(tm.gguf_path)).info["gguf_reused"] is False
    copy = tmp_path / path.name
    shutil.copyfile(path, copy)
    emb_copy = load(copy)
    st = copy.stat()
    os.utime(copy, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # changed since it was parsed
    assert load_causal_lm(copy, device="cpu", embeddings=emb_copy).info["gguf_reused"] is False
