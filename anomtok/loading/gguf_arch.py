"""How a GGUF file of a supported architecture maps onto a transformers causal LM: pure data and numpy.

For each architecture anomtok loads itself (``anomtok.loading.gguf_torch``) this table says

* which transformers ``model_type`` it becomes (``gemma3`` -> ``gemma3_text``: a GGUF holds only the
  text backbone);
* which GGUF metadata keys fill which config fields (the same keys transformers' own GGUF converter
  reads, ``transformers/integrations/ggml.py``; every other field keeps the config class default,
  as it does there, so both loads build the same config);
* how tensor names map: ``token_embd`` -> ``model.embed_tokens``, ``blk.N.attn_q`` ->
  ``model.layers.N.self_attn.q_proj``, ... (the names in llama.cpp's ``gguf`` package,
  ``gguf.get_tensor_name_map``);
* how llama.cpp's converter changed a tensor on the way in, undone here:
  - llama: the rows of ``attn_q``/``attn_k`` were permuted from the rotate-half rope layout of
    Hugging Face checkpoints to llama.cpp's interleaved one (``LlamaModel.permute`` in
    ``convert_hf_to_gguf.py``); :func:`unpermute_rope_rows` puts them back;
  - gemma3: every RMSNorm weight was stored as ``1 + w`` (Gemma multiplies by ``1 + weight``), so
    1 is subtracted from every ``*norm.weight``.
  qwen2 tensors are stored as they are.

Anything else (an architecture not listed, a llama file that names itself Mistral, which
transformers turns into a ``mistral`` model) is left to transformers' converter by the caller.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["ArchSpec", "ARCHS", "arch_spec", "hf_tensor_name", "unpermute_rope_rows", "config_dict"]

# GGUF key suffix (after "<arch>.") -> transformers config field; shared by the three architectures.
_COMMON_KEYS = {
    "context_length": "max_position_embeddings",
    "block_count": "num_hidden_layers",
    "feed_forward_length": "intermediate_size",
    "embedding_length": "hidden_size",
    "rope.freq_base": "rope_theta",
    "attention.head_count": "num_attention_heads",
    "attention.head_count_kv": "num_key_value_heads",
    "attention.layer_norm_rms_epsilon": "rms_norm_eps",
    "vocab_size": "vocab_size",
}
_TOKENIZER_KEYS = {
    "tokenizer.ggml.bos_token_id": "bos_token_id",
    "tokenizer.ggml.eos_token_id": "eos_token_id",
    "tokenizer.ggml.unknown_token_id": "unk_token_id",
    "tokenizer.ggml.padding_token_id": "pad_token_id",
}

# GGUF tensor base name -> transformers module path; "{i}" is the block number.
_TOP = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}
_BLOCK = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
    "attn_norm": "input_layernorm",
}
_LLAMA_BLOCK = {**_BLOCK, "ffn_norm": "post_attention_layernorm"}
_GEMMA3_BLOCK = {
    **_BLOCK,
    "attn_q_norm": "self_attn.q_norm",
    "attn_k_norm": "self_attn.k_norm",
    "post_attention_norm": "post_attention_layernorm",
    "ffn_norm": "pre_feedforward_layernorm",
    "post_ffw_norm": "post_feedforward_layernorm",
}
_BLOCK_NAME = re.compile(r"blk\.(\d+)\.([a-z0-9_]+)\.(weight|bias)")
_TOP_NAME = re.compile(r"([a-z0-9_]+)\.(weight|bias)")

Transform = Callable[[np.ndarray, str, Mapping[str, Any]], np.ndarray]


def unpermute_rope_rows(w: np.ndarray, n_head: int) -> np.ndarray:
    """Undo llama.cpp's rope permutation of a q/k projection (weight or bias) with ``n_head`` heads.

    llama.cpp regroups each head's rows ``[x0..x(d/2-1), y0..y(d/2-1)]`` into pairs
    ``[x0, y0, x1, y1, ...]``; this is the inverse: view the rows as (head, d/2, 2) and swap the last two axes.
    """
    rows = w.shape[0]
    if n_head <= 0 or rows % (2 * n_head):
        raise ValueError(f"{rows} rows cannot be split into {n_head} rope heads")
    half = rows // n_head // 2
    return w.reshape(n_head, half, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _llama_qk(w: np.ndarray, gguf_name: str, config: Mapping[str, Any]) -> np.ndarray:
    part = gguf_name.split(".")[2] if gguf_name.startswith("blk.") else ""
    if part == "attn_q":
        return unpermute_rope_rows(w, int(config["num_attention_heads"]))
    if part == "attn_k":
        return unpermute_rope_rows(w, int(config.get("num_key_value_heads") or config["num_attention_heads"]))
    return w


def _gemma_norm(w: np.ndarray, gguf_name: str, config: Mapping[str, Any]) -> np.ndarray:
    return w - np.float32(1) if gguf_name.endswith("norm.weight") else w


@dataclass(frozen=True)
class ArchSpec:
    """How one GGUF ``general.architecture`` becomes a transformers causal LM."""

    gguf_arch: str
    model_type: str
    keys: Mapping[str, str]  # "<arch>." suffix -> config field
    block: Mapping[str, str]  # blk.N.<part> -> model.layers.N.<module>
    transform: Transform | None = None
    config_defaults: Mapping[str, Any] = field(default_factory=dict)


ARCHS: dict[str, ArchSpec] = {
    "llama": ArchSpec("llama", "llama", {**_COMMON_KEYS, "rope.dimension_count": "head_dim"}, _LLAMA_BLOCK, _llama_qk),
    "qwen2": ArchSpec("qwen2", "qwen2", _COMMON_KEYS, _LLAMA_BLOCK),
    "gemma3": ArchSpec(
        "gemma3",
        "gemma3_text",
        {**_COMMON_KEYS, "attention.key_length": "head_dim", "attention.sliding_window": "sliding_window"},
        _GEMMA3_BLOCK,
        _gemma_norm,
    ),
}


def arch_spec(metadata: Mapping[str, Any]) -> tuple[ArchSpec | None, str]:
    """(spec, "") for a file anomtok loads itself; (None, why not) for one left to transformers."""
    arch = str(metadata.get("general.architecture", ""))
    spec = ARCHS.get(arch)
    if spec is None:
        return None, f"GGUF architecture {arch or '(none)'!r} is not one anomtok loads itself ({', '.join(ARCHS)})"
    if arch == "llama" and "mistral" in str(metadata.get("general.name", "")).lower():
        return None, "a llama GGUF named Mistral (transformers builds a mistral model from it)"
    return spec, ""


def hf_tensor_name(spec: ArchSpec, gguf_name: str) -> str | None:
    """The state-dict key of a GGUF tensor, or None for one the model has no place for
    (``rope_freqs``, which transformers recomputes from the config)."""
    m = _BLOCK_NAME.fullmatch(gguf_name)
    if m:
        module = spec.block.get(m.group(2))
        return f"model.layers.{m.group(1)}.{module}.{m.group(3)}" if module else None
    m = _TOP_NAME.fullmatch(gguf_name)
    if m and m.group(1) in _TOP:
        return f"{_TOP[m.group(1)]}.{m.group(2)}"
    return None


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def config_dict(spec: ArchSpec, metadata: Mapping[str, Any], tensor_names: set[str]) -> dict[str, Any]:
    """The keyword arguments of the transformers config, from the GGUF metadata alone."""
    out: dict[str, Any] = {"model_type": spec.model_type, **spec.config_defaults}
    if "general.name" in metadata:
        out["_model_name_or_path"] = _plain(metadata["general.name"])
    prefix = spec.gguf_arch + "."
    for suffix, name in spec.keys.items():
        if prefix + suffix in metadata:
            out[name] = _plain(metadata[prefix + suffix])
    for key, name in _TOKENIZER_KEYS.items():
        if key in metadata:
            out[name] = _plain(metadata[key])
    out["tie_word_embeddings"] = "output.weight" not in tensor_names
    if "vocab_size" not in out and metadata.get("tokenizer.ggml.tokens") is not None:
        out["vocab_size"] = len(metadata["tokenizer.ggml.tokens"])
    return out
