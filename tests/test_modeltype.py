"""Issue 9.10: one owner (``anomtok.loading.arch``) decides whether a model is a causal LM; the
GGUF loader, the HF loader and ``load_causal_lm`` agree with it, and ``scan`` plans its steps up
front from it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import anomtok
from anomtok.errors import InputError
from anomtok.generation.model import load_causal_lm
from anomtok.loading.arch import causal_verdict, hf_config_causal, is_causal_lm, model_kind
from anomtok.scan import ScanOptions, plan_steps, scan

VOCAB, HIDDEN = 24, 8


def _tiny_gguf(path: Path, arch: str) -> Path:
    """A GGUF file with only what ``anomtok.load`` reads: a token list and ``token_embd.weight``."""
    import gguf

    w = gguf.GGUFWriter(str(path), arch)
    w.add_tokenizer_model("gpt2")
    w.add_token_list([f"t{i}" for i in range(VOCAB)])
    w.add_tensor("token_embd.weight", np.random.default_rng(0).standard_normal((VOCAB, HIDDEN)).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def _tiny_hf(folder: Path, config: dict, tensor: str = "model.embed_tokens.weight") -> Path:
    """A Hugging Face folder: ``config.json`` and one embedding tensor in ``model.safetensors``."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"vocab_size": VOCAB, **config}))
    save_file({tensor: torch.randn(VOCAB, HIDDEN)}, str(folder / "model.safetensors"))
    return folder


@pytest.mark.parametrize(
    "name, facts, kind",
    [
        ("llama", {}, "decoder"),
        ("gptneox", {}, "decoder"),  # GGUF spelling
        ("gpt_neox", {}, "decoder"),  # HF spelling of the same
        ("gemma3", {"architectures": ["Gemma3ForConditionalGeneration"]}, "decoder"),
        ("modern-bert", {}, "encoder"),  # GGUF
        ("modernbert", {}, "encoder"),  # HF
        ("ModernBert", {}, "encoder"),
        ("nomic_bert", {}, "encoder"),
        ("jina-bert-v2", {}, "encoder"),
        ("xlm-roberta", {}, "encoder"),
        ("gemma-embedding", {}, "encoder"),
        ("t5encoder", {}, "encoder"),
        ("t5", {}, "encoder-decoder"),
        ("bart", {}, "encoder-decoder"),
        ("llada", {}, "diffusion"),
        ("bert", {"is_decoder": True}, "decoder"),
        ("roberta", {"architectures": ["RobertaForCausalLM"]}, "decoder"),
        ("llama", {"is_encoder_decoder": True}, "encoder-decoder"),
        (None, {"architectures": ["FooForCausalLM"]}, "decoder"),
        ("brand-new-arch", {}, None),
    ],
)
def test_model_kind_understands_gguf_and_hf_names(name, facts, kind):
    assert model_kind(name, **facts) == kind
    assert is_causal_lm(name, **facts) == (None if kind is None else kind == "decoder")


def test_verdict_says_why():
    assert causal_verdict("t5") == (False, "t5: an encoder-decoder model, not a causal LM")
    assert causal_verdict("modern-bert") == (False, "modern-bert: an encoder-only model, not a causal LM")
    assert causal_verdict("qwen2")[0] is True
    causal, why = causal_verdict("brand-new-arch")
    assert causal is None and "brand-new-arch" in why
    assert hf_config_causal({"model_type": "t5", "is_encoder_decoder": True})[0] is False


NOT_CAUSAL_GGUF = ["t5", "t5encoder", "modern-bert", "bert", "nomic-bert", "jina-bert-v2", "gemma-embedding"]


@pytest.mark.parametrize("arch", NOT_CAUSAL_GGUF)
def test_gguf_encoder_is_not_causal_everywhere(tmp_path, arch):
    """The embedding loader and the generation loader give the same answer for a GGUF file."""
    path = _tiny_gguf(tmp_path / f"{arch}.gguf", arch)
    emb = anomtok.load(path)
    assert emb.config["causal"] is False
    assert arch in emb.config["causal_why"] and "not a causal LM" in emb.config["causal_why"]
    with pytest.raises(InputError, match="not a causal LM"):
        load_causal_lm(path, device="cpu")


@pytest.mark.parametrize(
    "config, tensor",
    [
        (
            {"model_type": "modernbert", "architectures": ["ModernBertForMaskedLM"]},
            "model.embeddings.tok_embeddings.weight",
        ),
        ({"model_type": "t5", "architectures": ["T5ForConditionalGeneration"]}, "shared.weight"),
        ({"model_type": "bart"}, "model.shared.weight"),
        ({"model_type": "deberta-v2"}, "deberta.embeddings.word_embeddings.weight"),
    ],
)
def test_hf_encoder_is_not_causal_everywhere(tmp_path, config, tensor):
    folder = _tiny_hf(tmp_path / "m", config, tensor)
    emb = anomtok.load(folder)
    assert emb.config["causal"] is False and config["model_type"] in emb.config["causal_why"]
    with pytest.raises(InputError, match="not a causal LM"):
        load_causal_lm(folder, device="cpu")


def test_causal_and_unknown_folders(tmp_path):
    assert anomtok.load(_tiny_hf(tmp_path / "a", {"model_type": "llama"})).config["causal"] is True
    unknown = anomtok.load(_tiny_hf(tmp_path / "b", {"model_type": "brand_new_arch"})).config
    assert unknown["causal"] is None and "brand_new_arch" in unknown["causal_why"]


def test_tiny_model_is_causal_in_both_formats(tiny_model):
    assert anomtok.load(tiny_model.hf_dir).config["causal"] is True
    assert anomtok.load(tiny_model.gguf_path).config["causal"] is True


def test_plan_skips_generation_steps_of_a_non_causal_model():
    opts = ScanOptions()
    plan = plan_steps({"causal": False, "causal_why": "t5: an encoder-decoder model, not a causal LM"}, opts)
    assert plan.skip == {
        "negtemp": "t5: an encoder-decoder model, not a causal LM",
        "verify": "t5: an encoder-decoder model, not a causal LM",
    }
    assert not plan.runs("negtemp") and not plan.runs("verify") and plan.runs("rank") and not plan.warnings

    assert plan_steps({"causal": True, "causal_why": "llama: ..."}, opts).skip == {}
    off = plan_steps({"causal": True}, ScanOptions(generate=False, verify=False))
    assert off.skip == {"negtemp": "--no-generate", "verify": "--no-verify"}
    assert plan_steps({"causal": False}, ScanOptions(generate=False)).skip["negtemp"] == "--no-generate"

    unknown = plan_steps({"causal": None, "causal_why": "foo: an architecture anomtok does not know"}, opts)
    assert unknown.skip == {} and len(unknown.warnings) == 1 and unknown.warnings[0].startswith("foo:")


@pytest.mark.parametrize("arch", ["t5", "modern-bert"])
def test_scan_says_up_front_which_steps_it_skips(tmp_path, arch):
    """Before the first expensive step (rank), scan says negtemp and verify will be skipped and why."""
    path = _tiny_gguf(tmp_path / f"{arch}.gguf", arch)
    said: list[tuple[str, str]] = []

    class Stop(Exception):
        pass

    def progress(step: str, msg: str) -> None:
        said.append((step, msg))
        if step == "rank" and msg == "running":
            raise Stop

    with pytest.raises(Stop):
        scan(str(path), tmp_path / "out", ScanOptions(), progress=progress)
    before_rank = said[:-1]
    assert said[-1] == ("rank", "running")
    assert (
        "negtemp",
        f"will be skipped: {arch}: {'an encoder-decoder' if arch == 't5' else 'an encoder-only'} "
        "model, not a causal LM",
    ) in before_rank
    assert any(step == "verify" and msg.startswith("will be skipped:") for step, msg in before_rank)
