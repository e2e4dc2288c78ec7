"""What kind of model an architecture name is: the one place that decides "causal LM or not".

Negative-temperature generation and verification by prompting need a decoder-only (causal)
language model; ranking and the tokenizer audit work on any model. Both name spaces are
understood: a GGUF ``general.architecture`` (``modern-bert``, ``t5encoder``, ``gptneox``) and a
Hugging Face ``model_type`` (``modernbert``, ``t5``, ``gpt_neox``); case, ``-``, ``_`` and ``.``
are ignored, so ``nomic-bert`` and ``nomic_bert`` are one name.

>>> model_kind("llama"), model_kind("modern-bert"), model_kind("modernbert"), model_kind("t5")
('decoder', 'encoder', 'encoder', 'encoder-decoder')
>>> is_causal_lm("gemma3"), is_causal_lm("t5encoder"), is_causal_lm("some-new-arch")
(True, False, None)
>>> is_causal_lm("bert", is_decoder=True)                        # BERT configured as a decoder
True
>>> is_causal_lm(None, architectures=["FooForCausalLM"])         # the class name decides
True
>>> hf_config_causal({"model_type": "t5", "architectures": ["T5ForConditionalGeneration"]})
(False, 't5: an encoder-decoder model, not a causal LM')

The lists are pure data: no transformers import. ``None`` means "not known here": a caller may
ask transformers (``generation.model`` does) or try and report the failure.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["model_kind", "is_causal_lm", "causal_verdict", "hf_config_causal", "normalize"]


def normalize(name: str) -> str:
    """The comparison key of an architecture name: lower case without ``-``, ``_``, ``.``, spaces."""
    return re.sub(r"[-_.\s]", "", name.lower())


def _keys(names: list[str]) -> frozenset[str]:
    return frozenset(normalize(n) for n in names)


# Encoder-only models: bidirectional attention, no next-token head to generate with.
_ENCODER = _keys(
    [
        # Hugging Face model_type
        "bert",
        "roberta",
        "xlm-roberta",
        "xlm-roberta-xl",
        "roberta-prelayernorm",
        "distilbert",
        "electra",
        "mpnet",
        "deberta",
        "deberta-v2",
        "albert",
        "camembert",
        "ernie",
        "modernbert",
        "xlm",
        "flaubert",
        "mobilebert",
        "squeezebert",
        "convbert",
        "funnel",
        "layoutlm",
        "rembert",
        "nomic_bert",
        "jina_bert",
        "megatron-bert",
        "roformer",
        "big_bird",
        "data2vec-text",
        "roc_bert",
        "xmod",
        "nezha",
        "luke",
        "canine",
        "ibert",
        "longformer",
        "neobert",
        "eurobert",
        "esm",
        "splinter",
        "mra",
        "nystromformer",
        "yoso",
        "tapas",
        "markuplm",
        # GGUF general.architecture (llama.cpp)
        "nomic-bert-moe",
        "neo-bert",
        "jina-bert-v2",
        "jina-bert-v3",
        "modern-bert",
        "t5encoder",
        "gemma-embedding",
    ]
)
# Encoder-decoder models: a decoder, but conditioned on an encoder; not a decoder-only LM.
_ENCODER_DECODER = _keys(
    [
        "t5",
        "mt5",
        "umt5",
        "longt5",
        "switch_transformers",
        "t5gemma",
        "bart",
        "mbart",
        "pegasus",
        "pegasus_x",
        "marian",
        "fsmt",
        "blenderbot",
        "blenderbot-small",
        "led",
        "prophetnet",
        "xlm-prophetnet",
        "plbart",
        "m2m_100",
        "nllb-moe",
        "bigbird_pegasus",
        "whisper",
        "speecht5",
        "mvp",
        "encoder-decoder",
        "seamless_m4t",
    ]
)
# Masked-diffusion language models: they denoise, they do not sample the next token.
_DIFFUSION = _keys(["dream", "llada", "llada-moe"])
# Decoder-only language models (both name spaces; a name missing here is "unknown", not "not causal").
_DECODER = _keys(
    [
        "llama",
        "llama4",
        "llama4_text",
        "mistral",
        "mistral3",
        "mixtral",
        "ministral",
        "gemma",
        "gemma2",
        "gemma3",
        "gemma3_text",
        "gemma3n",
        "gemma3n_text",
        "recurrent_gemma",
        "vaultgemma",
        "qwen",
        "qwen2",
        "qwen2_moe",
        "qwen2vl",
        "qwen3",
        "qwen3_moe",
        "qwen3_next",
        "qwen3vl",
        "qwen3vlmoe",
        "phi",
        "phi2",
        "phi3",
        "phimoe",
        "gpt2",
        "gptj",
        "gpt_neo",
        "gpt_neox",
        "gpt_bigcode",
        "gpt-oss",
        "openai-gpt",
        "starcoder",
        "starcoder2",
        "falcon",
        "falcon_h1",
        "falcon_mamba",
        "mpt",
        "bloom",
        "opt",
        "olmo",
        "olmo2",
        "olmo3",
        "olmoe",
        "stablelm",
        "smollm3",
        "granite",
        "granitemoe",
        "granitehybrid",
        "cohere",
        "cohere2",
        "command-r",
        "deepseek",
        "deepseek2",
        "deepseek_v2",
        "deepseek_v3",
        "internlm2",
        "internlm3",
        "baichuan",
        "chatglm",
        "glm",
        "glm4",
        "glm4moe",
        "glm4_moe",
        "exaone",
        "exaone4",
        "nemotron",
        "nemotron_h",
        "mamba",
        "mamba2",
        "jamba",
        "rwkv",
        "rwkv6",
        "rwkv7",
        "codegen",
        "persimmon",
        "xglm",
        "ctrl",
        "bitnet",
        "lfm2",
        "arcee",
        "ernie4_5",
        "ernie4_5_moe",
        "minicpm",
        "minicpm3",
        "dbrx",
        "arctic",
        "jais",
        "orion",
        "plamo",
        "plamo2",
        "xverse",
        "grok",
        "deci",
        "refact",
        "codeshell",
        "bailingmoe",
        "dots1",
        "seed_oss",
        "apertus",
        "helium",
        "zamba",
        "zamba2",
        "biogpt",
        "modernbert-decoder",
    ]
)
_KINDS = {
    "decoder": "a decoder-only (causal) language model",
    "encoder": "an encoder-only model",
    "encoder-decoder": "an encoder-decoder model",
    "diffusion": "a diffusion language model",
}


def model_kind(
    name: str | None, *, architectures: Iterable[str] = (), is_encoder_decoder: bool = False, is_decoder: bool = False
) -> str | None:
    """``"decoder"``, ``"encoder"``, ``"encoder-decoder"``, ``"diffusion"``, or None when unknown.

    ``name``: a GGUF architecture or Hugging Face ``model_type``; ``architectures``: class names
    from ``config.json`` (``XForCausalLM`` and ``XLMHeadModel`` mean a decoder); the two flags as
    ``config.json`` states them (an encoder family configured ``is_decoder`` is a decoder)."""
    classes = [str(a) for a in architectures or ()]
    if is_encoder_decoder:
        return "encoder-decoder"
    if any("ForCausalLM" in c for c in classes):
        return "decoder"
    key = normalize(name) if name else ""
    if key in _ENCODER_DECODER:
        return "encoder-decoder"
    if key in _DIFFUSION:
        return "diffusion"
    if key in _ENCODER:
        return "decoder" if is_decoder else "encoder"
    if key in _DECODER or any(c.endswith("LMHeadModel") for c in classes):
        return "decoder"
    return None


def is_causal_lm(name: str | None, **facts: Any) -> bool | None:
    """True for a decoder-only LM, False for any other known kind, None when unknown (see ``model_kind``)."""
    kind = model_kind(name, **facts)
    return None if kind is None else kind == "decoder"


def causal_verdict(name: str | None, **facts: Any) -> tuple[bool | None, str]:
    """``(is_causal_lm, reason)``; the reason is one phrase: ``"t5: an encoder-decoder model, not a causal LM"``."""
    kind = model_kind(name, **facts)
    label = name or "/".join(str(a) for a in facts.get("architectures") or ()) or "unknown architecture"
    if kind is None:
        return None, f"{label}: an architecture anomtok does not know (decoder-only or not)"
    if kind == "decoder":
        return True, f"{label}: {_KINDS[kind]}"
    return False, f"{label}: {_KINDS[kind]}, not a causal LM"


def hf_config_causal(cfg: Mapping[str, Any]) -> tuple[bool | None, str]:
    """``causal_verdict`` for the fields of a Hugging Face ``config.json``."""
    return causal_verdict(
        cfg.get("model_type"),
        architectures=cfg.get("architectures") or (),
        is_encoder_decoder=bool(cfg.get("is_encoder_decoder", False)),
        is_decoder=bool(cfg.get("is_decoder", False)),
    )
