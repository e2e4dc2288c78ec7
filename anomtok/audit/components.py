"""The parts of a tokenizer's pipeline, as the audit sees them: the JSON spec and a short name of
its normaliser / pre-tokenizer / decoder (``describe_tokenizer``: the ``tokenizer`` entry of
``audit.json``) and its normaliser without the whitespace plumbing (``content_normalizer``: which
tokens the normaliser really changes)."""

from __future__ import annotations

import json
from typing import Any

from .source import LoadedTokenizer

__all__ = ["component_spec", "content_normalizer", "describe_tokenizer"]


def component_spec(component: Any) -> Any:
    """The JSON spec of a normaliser / pre-tokenizer / decoder (None when it has none, or is custom)."""
    if component is None:
        return None
    try:
        return json.loads(component.__getstate__())
    except Exception as exc:  # noqa: BLE001 - only the tokenizers library's own errors (plain Exception)
        if type(exc) is not Exception:
            raise
        return None  # a custom (Python) component cannot be serialised


def content_normalizer(tok: Any) -> Any:
    """The tokenizer's normaliser without its whitespace plumbing (``Replace(" ", "▁")``,
    ``Prepend("▁")``), so that only changes of content are flagged."""
    if tok.normalizer is None:
        return None
    spec = component_spec(tok.normalizer)
    if spec is None:
        return tok.normalizer

    def plumbing(n: dict) -> bool:
        if n.get("type") == "Prepend":
            return True
        return n.get("type") == "Replace" and n.get("content") == "\u2581"

    if spec.get("type") == "Sequence":
        steps = [n for n in spec["normalizers"] if not plumbing(n)]
        if not steps:
            return None
        spec = {"type": "Sequence", "normalizers": steps}
    elif plumbing(spec):
        return None
    from tokenizers import Tokenizer

    shell = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [],
        "normalizer": spec,
        "pre_tokenizer": None,
        "post_processor": None,
        "decoder": None,
        "model": {"type": "WordLevel", "vocab": {"[UNK]": 0}, "unk_token": "[UNK]"},
    }
    return Tokenizer.from_str(json.dumps(shell)).normalizer


def describe_tokenizer(loaded: LoadedTokenizer) -> dict:
    """The ``tokenizer`` entry of ``audit.json``: model type and options, short names of the
    normaliser, pre-tokenizer and decoder, scheme, vocabulary size and token kinds."""
    tok, table = loaded.tokenizer, loaded.table
    model = {"type": type(tok.model).__name__}
    for attr in ("byte_fallback", "unk_token", "continuing_subword_prefix", "unk_id"):
        if hasattr(tok.model, attr):
            model[attr] = getattr(tok.model, attr)
    parts = {
        k: _component(component_spec(getattr(tok, k, None))) or _name(getattr(tok, k, None))
        for k in ("normalizer", "pre_tokenizer", "decoder")
    }
    return {"model": model, **parts, "scheme": table.scheme, "vocab_size": len(table), "kinds": table.kind_counts()}


def _name(component: Any) -> str | None:
    if component is None:
        return None
    try:
        return repr(component)
    except Exception as exc:  # noqa: BLE001 - only the tokenizers library's own errors (plain Exception)
        if type(exc) is not Exception:
            raise
        return "custom"  # a custom (Python) component


def _component(spec: Any) -> str | None:
    """A short name for a normaliser / pre-tokenizer / decoder spec: ``Sequence[NFKC, Replace]``."""
    if spec is None:
        return None
    kind = spec.get("type", "?")
    for key in ("normalizers", "pretokenizers", "decoders"):
        if key in spec:
            return f"{kind}[{', '.join(_component(s) or '' for s in spec[key])}]"
    if kind == "Metaspace":
        return f"Metaspace(prepend_scheme={spec.get('prepend_scheme')}, split={spec.get('split')})"
    if kind == "ByteLevel":
        return f"ByteLevel(add_prefix_space={spec.get('add_prefix_space')})"
    if kind == "BertNormalizer":
        return f"BertNormalizer(lowercase={spec.get('lowercase')}, strip_accents={spec.get('strip_accents')})"
    return kind
