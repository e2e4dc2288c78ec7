"""transformers' tokenizer for a GGUF file, built from the metadata anomtok has already parsed.

``TokenizerClass.from_pretrained(folder, gguf_file=name)`` (transformers >= 5) does three things:

1. reads the file's metadata again with its own reader (``get_gguf_tokenizer``: for Gemma 3 it walks
   the 262,144 token strings one by one, 0.85 s on the benchmark machine);
2. builds the backend tokenizer (``convert_gguf_tokenizer``) with the builder for the file's
   ``tokenizer.ggml.model``; for Gemma's vocabulary, which lists no merges, the builder derives
   515k of them from the vocabulary (1.2 s), builds the BPE (0.4 s) and adds the control tokens;
3. makes the tokenizer class (``GemmaTokenizer``, ``LlamaTokenizer``...) with that backend and the
   file's special tokens and flags.

:func:`tokenizer_from_gguf` does the same without step 1: :func:`tokenizer_inputs` makes what
``get_gguf_tokenizer`` returns from a parsed :class:`~anomtok.loading.gguf_reader.GGUFFile`, step 2
is transformers' own ``convert_gguf_tokenizer``, step 3 the same class with the same keyword
arguments. It also skips the deep copy the class makes of a backend it is handed (a JSON round trip
of the whole vocabulary: 1.05 s for Gemma 3): the backend is built for this tokenizer alone. The
result is the same tokenizer: ``tests/test_gguf_tokenizer.py`` compares the inputs with
``get_gguf_tokenizer``'s, and the backend, vocabulary, special and added tokens, ids and decoded
text on a varied sample with ``from_pretrained(gguf_file=...)``, for tiny GGUFs of each builder
anomtok's own model loader meets (byte-level BPE, sentencepiece with and without Gemma's quirks)
and, marked ``real``, SmolLM2 and Gemma 3.

It returns None, and the caller uses ``from_pretrained``, where it could differ: a transformers
without this GGUF layout (4.x), or token strings that are not valid UTF-8 (transformers' reader
refuses them; anomtok's keeps their bytes).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import LoadError
from .gguf_reader import GGUFFile

__all__ = ["tokenizer_class", "tokenizer_inputs", "tokenizer_from_gguf", "transformers_tokenizer"]

log = logging.getLogger(__name__)

# tokenizer_config key -> the metadata key of the token id it names (transformers' ``_SPECIAL_TOKENS``)
_SPECIAL_TOKENS = {
    "bos_token": "bos_token_id",
    "eos_token": "eos_token_id",
    "unk_token": "unknown_token_id",
    "pad_token": "padding_token_id",
}


def tokenizer_class(config: Any) -> Any:
    """The tokenizer class ``AutoTokenizer`` picks for ``config`` (which it would rebuild from the
    file first, slowly, if asked with ``gguf_file``)."""
    from transformers import AutoTokenizer
    from transformers.models.auto.tokenization_auto import TOKENIZER_MAPPING

    cls: Any = TOKENIZER_MAPPING.get(type(config), None) if type(config) in TOKENIZER_MAPPING else None
    if isinstance(cls, (tuple, list)):  # transformers 4.x: (slow, fast)
        cls = cls[1] or cls[0]
    if cls is None:
        try:
            from transformers import TokenizersBackend as cls  # transformers >= 5: AutoTokenizer's default
        except ImportError:
            cls = AutoTokenizer
    return cls


def transformers_tokenizer(path: Path, config: Any) -> Any:
    """transformers' own tokenizer for a GGUF file: ``tokenizer_class(config).from_pretrained(gguf_file=...)``."""
    try:
        return tokenizer_class(config).from_pretrained(str(path.parent), gguf_file=path.name, trust_remote_code=False)
    except (OSError, ValueError, KeyError, RuntimeError, TypeError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LoadError(f"{path}: transformers could not build its tokenizer ({type(exc).__name__}: {msg})") from None


def _plain(value: Any) -> Any:
    """A metadata value as transformers' reader gives it (numeric arrays as lists)."""
    return value.tolist() if isinstance(value, np.ndarray) else value


def _valid_utf8(strings: Any) -> bool:
    """No string of the list holds bytes that were not UTF-8 (the reader decodes them to surrogates)."""
    try:
        "".join(strings if isinstance(strings, list) else []).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def tokenizer_inputs(metadata: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]] | None:
    """``(architecture, tokenizer_dict, tokenizer_config)`` as transformers' ``get_gguf_tokenizer``
    returns them for the file, from its parsed metadata; None where that is not this transformers'
    layout or a token string is not valid UTF-8."""
    try:
        from transformers.integrations.gguf.gguf_tokenizer_mapping import GGUF_TOKENIZER_MAPPING
    except ImportError:
        return None
    tokens = metadata.get("tokenizer.ggml.tokens")
    merges = metadata.get("tokenizer.ggml.merges")
    if "general.architecture" not in metadata or not _valid_utf8(tokens) or not _valid_utf8(merges):
        return None
    grouped = {
        group: {
            name: _plain(metadata[f"tokenizer.{key}"])
            for key, name in renames.items()
            if f"tokenizer.{key}" in metadata
        }
        for group, renames in GGUF_TOKENIZER_MAPPING.items()
    }
    tokenizer, tokenizer_config = grouped["tokenizer"], grouped["tokenizer_config"]
    kind = tokenizer.get("tokenizer_type")
    if kind == "llama":  # as transformers: llama.cpp adds BOS to a sentencepiece vocabulary that does not say
        tokenizer_config.setdefault("add_bos_token", True)
    elif kind == "gemma4":  # as transformers: the chat template writes <bos> itself
        tokenizer_config["add_bos_token"] = False
    for name, key in _SPECIAL_TOKENS.items():
        token_id = metadata.get(f"tokenizer.ggml.{key}")
        tokenizer_config[name] = tokenizer["tokens"][token_id] if token_id is not None else None
    return str(metadata["general.architecture"]), tokenizer, tokenizer_config


class _Adopt:
    """Hands a backend to a tokenizer class's ``tokenizer_object``, which deep-copies it (a JSON round
    trip of the vocabulary): the copy is the backend itself, built for this tokenizer only."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        return self.backend


def tokenizer_from_gguf(gguf: GGUFFile, config: Any, path: Path) -> Any | None:
    """The tokenizer ``tokenizer_class(config).from_pretrained(str(path.parent), gguf_file=path.name)``
    gives for the file ``gguf`` was parsed from, built from its parsed metadata; None where it could
    differ (see the module docstring) or where it fails (``from_pretrained`` then says why)."""
    inputs = tokenizer_inputs(gguf.metadata)
    if inputs is None:
        return None
    from transformers.integrations.gguf.gguf_tokenizer_mapping import convert_gguf_tokenizer

    architecture, tokenizer_dict, tokenizer_config = inputs
    try:
        backend, extra = convert_gguf_tokenizer(architecture, tokenizer_dict)
        cls = tokenizer_class(config)
        tok = cls(tokenizer_object=_Adopt(backend), name_or_path=str(path.parent), **tokenizer_config, **extra)
    except Exception as exc:  # noqa: BLE001 - third-party code on arbitrary metadata: from_pretrained's error instead
        log.debug("%s: tokenizer from the parsed metadata failed (%s: %s)", gguf.label, type(exc).__name__, exc)
        return None
    if tok.backend_tokenizer is not backend:  # a transformers that no longer copies: build it its own way
        log.debug("%s: the tokenizer class did not take the backend as given", gguf.label)
        return None
    return tok
