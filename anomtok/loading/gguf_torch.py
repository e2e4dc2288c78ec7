"""A transformers causal LM built from a GGUF file by anomtok's own reader, without transformers' converter.

transformers' ``from_pretrained(gguf_file=...)`` parses the file with ``gguf.GGUFReader`` (slow on a
large vocabulary), dequantizes every tensor in Python and loads them into a fully initialised model:
90-140 s for Gemma 3 270M on 2 cores. This module does the same job in seconds:

1. the header and metadata come from :class:`anomtok.loading.gguf_reader.GGUFFile`;
2. the config is built from the metadata (:func:`anomtok.loading.gguf_arch.config_dict`: the keys
   transformers reads, so both build the same config);
3. the model is built as a weightless skeleton: parameters are created on the ``meta`` device (no
   memory, no random initialisation), buffers (rope frequencies, Gemma's embedding scale) normally;
4. every tensor is read and dequantized in numpy (threads), renamed to the state-dict key, changed
   back where llama.cpp's converter changed it, and assigned in place (``load_state_dict(assign=True)``);
   tied output embeddings are tied; a parameter left on ``meta`` is an error;
5. the tokenizer is transformers' own GGUF tokenizer (the class ``AutoTokenizer`` picks for this
   config, as ``from_pretrained(gguf_file=...)`` makes it), built from the metadata parsed in step 1
   (``anomtok.loading.gguf_tokenizer``) in a thread while the tensors load. Asked of
   ``AutoTokenizer`` directly, transformers would first rebuild the config with its slow reader.

The ``GGUFFile`` may be the one the embeddings were read with (``ModelEmbeddings.reader``): its
metadata is not parsed again, and the embedding matrices it kept are used as they are.

Architectures: those in ``anomtok.loading.gguf_arch.ARCHS`` (llama, qwen2, gemma3).
:func:`unsupported_reason` says why another file is not loaded here; the caller then uses
transformers' converter. The logits equal those of transformers' own load of the same file
(``tests/test_gguf_torch.py``).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import LoadError
from .gguf_arch import arch_spec, config_dict, hf_tensor_name
from .gguf_reader import GGUFFile

__all__ = ["unsupported_reason", "gguf_config", "load_gguf_causal_lm", "gguf_tokenizer"]

log = logging.getLogger(__name__)


def unsupported_reason(gguf: GGUFFile) -> str:
    """ "" when :func:`load_gguf_causal_lm` can load this file, else why not (one line)."""
    return arch_spec(gguf.metadata)[1]


def gguf_config(gguf: GGUFFile) -> Any:
    """The transformers config of a supported GGUF (LoadError for another)."""
    from transformers import AutoConfig

    spec, why = arch_spec(gguf.metadata)
    if spec is None:
        raise LoadError(f"{gguf.label}: {why}")
    kwargs = config_dict(spec, gguf.metadata, set(gguf.tensors))
    model_type = kwargs.pop("model_type")
    try:
        return AutoConfig.for_model(model_type, **kwargs)
    except (ValueError, KeyError, TypeError) as exc:
        raise LoadError(f"{gguf.label}: transformers has no usable {model_type!r} config ({exc})") from None


@contextlib.contextmanager
def _parameters_on_meta() -> Iterator[None]:
    """Every ``nn.Parameter`` registered inside is moved to the ``meta`` device (no storage, and the
    model's random initialisation runs on nothing); buffers are created as usual."""
    import torch

    register = torch.nn.Module.register_parameter

    def on_meta(module: torch.nn.Module, name: str, param: torch.nn.Parameter | None) -> None:
        register(module, name, param)
        if param is not None and param.device.type != "meta":
            kwargs = {"requires_grad": param.requires_grad}
            module._parameters[name] = type(param)(param.to("meta"), **kwargs)

    torch.nn.Module.register_parameter = on_meta  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        torch.nn.Module.register_parameter = register  # type: ignore[method-assign]


def _skeleton(config: Any, dtype: Any) -> Any:
    from transformers import AutoModelForCausalLM

    with _parameters_on_meta():
        return AutoModelForCausalLM.from_config(config, dtype=dtype)


def _state_dict(gguf: GGUFFile, config: Any, dtype: Any, wanted: set[str]) -> dict[str, Any]:
    """Every GGUF tensor the model has a place for, dequantized, renamed and transformed."""
    import torch

    spec, why = arch_spec(gguf.metadata)
    assert spec is not None, why
    cfg = config.to_dict()
    out: dict[str, Any] = {}
    for name in gguf.tensors:
        key = hf_tensor_name(spec, name)
        if key is None or key not in wanted:
            log.debug("GGUF tensor %s has no place in the model: skipped", name)
            continue
        w = gguf.read_tensor(name)
        if spec.transform is not None:
            w = spec.transform(w, name, cfg)
        t = torch.from_numpy(np.ascontiguousarray(w))
        out[key] = t if t.dtype == dtype else t.to(dtype)
    return out


def _tied_keys(model: Any) -> set[str]:
    """State-dict keys that tying fills (the output matrix of a model with tied embeddings)."""
    cfg = model.config
    text = getattr(cfg, "get_text_config", lambda: cfg)()
    if not getattr(text, "tie_word_embeddings", False):
        return set()
    out = model.get_output_embeddings()
    return {n + ".weight" for n, m in model.named_modules() if m is out}


def load_model(gguf: GGUFFile, dtype: Any) -> tuple[Any, dict[str, float]]:
    """The float model of a supported GGUF, and the seconds its steps took."""
    t0 = time.perf_counter()
    config = gguf_config(gguf)
    model = _skeleton(config, dtype)
    t1 = time.perf_counter()
    wanted = set(model.state_dict())
    tensors = _state_dict(gguf, config, dtype, wanted)
    t2 = time.perf_counter()
    bad = [
        f"{k} {tuple(t.shape)} (model {tuple(model.state_dict()[k].shape)})"
        for k, t in tensors.items()
        if tuple(t.shape) != tuple(model.state_dict()[k].shape)
    ]
    if bad:
        raise LoadError(f"{gguf.label}: tensors do not fit the model built from its metadata: {', '.join(bad[:3])}")
    missing, unexpected = model.load_state_dict(tensors, strict=False, assign=True)
    tied = _tied_keys(model)
    if tied:
        model.tie_weights()
    missing = [k for k in missing if k not in tied]
    if missing or unexpected:
        raise LoadError(f"{gguf.label}: tensors missing from the file: {', '.join((missing + unexpected)[:5])}")
    left = [n for n, p in [*model.named_parameters(), *model.named_buffers()] if p.device.type == "meta"]
    if left:
        raise LoadError(f"{gguf.label}: no weights for {', '.join(left[:5])}")
    model.eval()
    return model, {"skeleton_seconds": round(t1 - t0, 2), "tensors_seconds": round(t2 - t1, 2)}


def gguf_tokenizer(gguf: GGUFFile, path: Path, config: Any) -> Any:
    """transformers' tokenizer for the GGUF file at ``path`` (which ``gguf`` parsed): built from the
    parsed metadata (``anomtok.loading.gguf_tokenizer``), else by ``from_pretrained(gguf_file=...)``."""
    from .gguf_tokenizer import tokenizer_from_gguf, transformers_tokenizer

    tok = tokenizer_from_gguf(gguf, config, path)
    return tok if tok is not None else transformers_tokenizer(path, config)


def load_gguf_causal_lm(path: Path, dtype: Any, gguf: GGUFFile | None = None) -> tuple[Any, Any, dict[str, Any]]:
    """(model, tokenizer, facts) of a supported single-file GGUF; the tokenizer is built in a thread
    while the tensors are read. LoadError for an unsupported or inconsistent file."""
    t0 = time.perf_counter()
    gguf = gguf if gguf is not None else GGUFFile(path)
    why = unsupported_reason(gguf)
    if why:
        raise LoadError(f"{path}: {why}")
    config = gguf_config(gguf)
    with ThreadPoolExecutor(max_workers=1) as pool:
        tok_job = pool.submit(gguf_tokenizer, gguf, path, config)
        try:
            model, seconds = load_model(gguf, dtype)
        except BaseException:
            tok_job.cancel()
            raise
        tok = tok_job.result()
    facts = {"gguf_loader": "anomtok", "gguf_load_seconds": round(time.perf_counter() - t0, 2), **seconds}
    return model, tok, facts
