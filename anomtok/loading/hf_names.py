"""Which tensors of a Hugging Face checkpoint are the input embedding and the output matrix.

Three ways, tried in this order by ``anomtok.loading.hf_loader``: the safetensors headers alone
when nothing is in doubt (``unambiguous_names``); the parameter names of a weightless
(meta-device) model skeleton built from ``config.json`` (``skeleton_names``, matched to the
checkpoint's keys by ``match_key``); and tensor names and shapes (``heuristic_names``).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import torch

from ..errors import first_line
from .checkpoint import tensor_shapes

__all__ = ["config_errors", "skeleton_names", "match_key", "heuristic_names", "unambiguous_names"]

log = logging.getLogger(__name__)

_EMBED_NAME = re.compile(
    r"(embed_tokens|word_embeddings|wte|tok_embeddings|embed_in|token_embd|shared|embeddings?)\.weight$"
)
_OUTPUT_NAME = re.compile(r"(lm_head|embed_out|output|ff_out)\.weight$")


def config_errors() -> tuple[type[BaseException], ...]:
    """What transformers raises on a ``config.json`` it cannot use, or a model it cannot build from
    it: OSError (unreadable, not JSON), ValueError (unknown or remote-code ``model_type``, no model
    class for it), TypeError / LookupError / AttributeError (missing or mistyped fields),
    AssertionError (a constructor's sanity check), ImportError (a model needing an absent
    package), RuntimeError (an operation the meta device lacks) and huggingface_hub's
    ``StrictDataclassError`` (a field that fails validation)."""
    errors: tuple[type[BaseException], ...] = (
        OSError,
        ValueError,
        TypeError,
        LookupError,
        AttributeError,
        AssertionError,
        ImportError,
        RuntimeError,
    )
    try:
        from huggingface_hub.errors import StrictDataclassError
    except ImportError:  # older huggingface_hub: configs are not validated
        return errors
    return (*errors, StrictDataclassError)


def skeleton_names(config: Any, why: list[str] | None = None) -> tuple[str | None, str | None, bool]:
    """(input name, output name, tied) from a meta-device model skeleton; (None, None, tied) on
    failure, with each class's failure appended to ``why``."""
    import transformers

    text_cfg = config.get_text_config() if hasattr(config, "get_text_config") else config
    tied = bool(getattr(text_cfg, "tie_word_embeddings", getattr(config, "tie_word_embeddings", True)))
    classes = []
    for arch in getattr(config, "architectures", None) or []:
        cls = getattr(transformers, arch, None)
        if cls is not None:
            classes.append(cls)
    classes += [transformers.AutoModelForCausalLM, transformers.AutoModel]
    for cls in classes:
        try:
            with torch.device("meta"):
                model = cls.from_config(config) if cls.__name__.startswith("Auto") else cls(config)
        except config_errors() as exc:  # try the next class
            reason = f"{getattr(cls, '__name__', cls)}: {exc.__class__.__name__}: {first_line(exc)}"
            log.debug("skeleton %s", reason)
            if why is not None:
                why.append(reason)
            continue
        names: dict[int, str] = {}
        for n, p in model.named_parameters(remove_duplicate=False):
            names.setdefault(id(p), n)  # a tied weight keeps its first (embedding) name
        inp = model.get_input_embeddings()
        outm = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
        in_name = names.get(id(inp.weight)) if inp is not None else None
        out_name = (
            names.get(id(outm.weight)) if outm is not None and getattr(outm, "weight", None) is not None else None
        )
        if in_name:
            return in_name, out_name, tied
    return None, None, tied


def match_key(name: str, keys: list[str]) -> str | None:
    """The checkpoint key for a skeleton parameter name, allowing a different module prefix."""
    if name in keys:
        return name
    parts = name.split(".")
    for cut in range(len(parts)):
        suffix = ".".join(parts[cut:])
        hits = [k for k in keys if k == suffix or k.endswith("." + suffix)]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            return None
    return None


def heuristic_names(shapes: dict[str, list[int]], vocab: int | None) -> tuple[str | None, str | None]:
    """(input, output) names from tensor names and shapes: the one embedding-named 2-D tensor
    (not a position or token-type table) and the one output-named 2-D tensor with at least
    ``vocab`` rows; None where there is not exactly one."""
    two_d = {k: s for k, s in shapes.items() if len(s) == 2}
    emb = [k for k in two_d if _EMBED_NAME.search(k) and (vocab is None or two_d[k][0] >= vocab)]
    emb = [k for k in emb if "position" not in k and "type" not in k]
    out = [k for k in two_d if _OUTPUT_NAME.search(k) and (vocab is None or two_d[k][0] >= vocab)]
    return (emb[0] if len(emb) == 1 else None), (out[0] if len(out) == 1 else None)


def unambiguous_names(keymap: dict[str, Path], fmt: str, cfg: dict[str, Any]) -> tuple[str, str | None] | None:
    """(input, output-or-None) straight from the safetensors headers when nothing is in doubt:
    exactly one embedding-named tensor with ``vocab_size`` rows, and either no output-like tensor
    of that shape or an explicit ``tie_word_embeddings``. Saves building a model skeleton (and
    importing transformers); anything ambiguous returns None and the skeleton decides."""
    if fmt != "safetensors":
        return None
    vocab = cfg.get("vocab_size")
    if not isinstance(vocab, int):
        return None
    shapes = tensor_shapes(keymap, fmt)
    h_in, h_out = heuristic_names(shapes, vocab)
    if h_in is None or shapes[h_in][0] != vocab:
        return None
    outs = [k for k, sh in shapes.items() if len(sh) == 2 and sh[0] == vocab and _OUTPUT_NAME.search(k) and k != h_in]
    if not outs:
        return h_in, None
    if "tie_word_embeddings" in cfg and h_out is not None and len(outs) == 1:
        return h_in, None if cfg["tie_word_embeddings"] else h_out
    return None
