"""Embeddings from Hugging Face checkpoints: a folder, a ``.safetensors`` file, a sharded folder
with its index, or (only as ``weights_only=True``) a ``.bin`` checkpoint.

The embedding's parameter name comes from a weightless (meta-device) model skeleton built from
``config.json``; only the shard holding that tensor is opened and only that tensor is read.
When no skeleton can be built (unknown architecture, no config), 2-D tensors whose shape and
name look like an embedding are used, and provenance says so.

The checkpoint's files are read by ``anomtok.loading.checkpoint``; which tensor is the embedding
is decided by ``anomtok.loading.hf_names``. This module puts them together with the tokenizer and
the config into a ``ModelEmbeddings``.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import torch

from ..embeddings import FileInfo, ModelEmbeddings, Provenance
from ..errors import LoadError, first_line
from ..tokens import TokenTable
from .arch import hf_config_causal
from .checkpoint import checkpoint_map, dtype_of, itemsize, read_tensor, tensor_shapes
from .hf_names import config_errors, heuristic_names, match_key, skeleton_names, unambiguous_names

__all__ = [
    "load_hf_folder",
    "load_safetensors_file",
    "load_tokenizer_table",
    # re-exported: their homes are anomtok.loading.hf_names and anomtok.errors
    "config_errors",
    "skeleton_names",
    "match_key",
    "first_line",
]

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- tokenizer
def load_tokenizer_table(folder: Path) -> TokenTable | None:
    """Token table from ``tokenizer.json``; else from a transformers fast tokenizer converted
    from the folder's files (no remote code); None when the folder has no tokenizer."""
    tj = folder / "tokenizer.json"
    if tj.exists():
        return TokenTable.from_tokenizer_json(tj)
    if not any(
        (folder / n).exists()
        for n in ("tokenizer_config.json", "vocab.txt", "tokenizer.model", "vocab.json", "spiece.model")
    ):
        return None
    try:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(folder), trust_remote_code=False)
        spec = json.loads(tok.backend_tokenizer.to_str())
    except (OSError, ValueError, TypeError, LookupError, AttributeError, ImportError) as exc:
        # ValueError: no tokenizer class or backend fits the files (also bad JSON); OSError: unreadable
        # files; ImportError: a converter needs an absent package; AttributeError: a slow-only tokenizer
        raise LoadError(
            f"{folder}: has tokenizer files but no tokenizer could be built "
            f"({exc.__class__.__name__}: {first_line(exc)})"
        ) from None
    except Exception as exc:  # noqa: BLE001 - only the tokenizers library's own errors, which are plain Exception
        if type(exc) is not Exception:
            raise
        raise LoadError(
            f"{folder}: has tokenizer files but the tokenizers library rejects them ({first_line(exc)})"
        ) from None
    return TokenTable.from_tokenizer_json(spec)


# ---------------------------------------------------------------- entry points
def load_hf_folder(folder: Path, source: str, *, hash_files: bool = False) -> ModelEmbeddings:
    """The embeddings (input, and output when untied), token table and config of a Hugging Face
    folder; ``source`` is the spec recorded in the provenance, ``hash_files`` hashes whole files."""
    t0 = time.perf_counter()
    keymap, fmt = checkpoint_map(folder)
    config = None
    raw_cfg: dict[str, Any] = {}
    if (folder / "config.json").exists():
        try:
            raw_cfg = json.loads((folder / "config.json").read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise LoadError(f"{folder / 'config.json'}: unreadable ({exc})") from None
    fast = unambiguous_names(keymap, fmt, raw_cfg) if raw_cfg else None
    if fast is None and raw_cfg:
        try:
            from transformers import AutoConfig

            config = AutoConfig.from_pretrained(str(folder), trust_remote_code=False)
        except config_errors() as exc:
            log.warning(
                "%s: transformers cannot read it (%s: %s); the embedding is found by tensor names and shapes",
                folder / "config.json",
                exc.__class__.__name__,
                first_line(exc),
            )
    notes: list[str] = []
    in_name = out_name = None
    tied = bool(raw_cfg.get("tie_word_embeddings", True))
    method = "meta skeleton from config.json"
    if fast is not None:
        in_name, out_name = fast
        method = "safetensors headers: one embedding-shaped tensor; no output head, or tying explicit in config.json"
    elif config is not None:
        failures: list[str] = []
        sk_in, sk_out, tied = skeleton_names(config, failures)
        if sk_in is None:
            log.warning(
                "%s: no model skeleton could be built from config.json (%s); the embedding is found by "
                "tensor names and shapes",
                folder,
                "; ".join(failures) or "no input embedding in any skeleton",
            )
        keys = list(keymap)
        if sk_in:
            in_name = match_key(sk_in, keys)
        if sk_out and not tied:
            out_name = match_key(sk_out, keys) or sk_out
    if in_name is None:
        shapes = tensor_shapes(keymap, fmt)
        vocab = raw_cfg.get("vocab_size")
        in_name, h_out = heuristic_names(shapes, vocab)
        if in_name is None:
            raise LoadError(f"{folder}: no input embedding found among the checkpoint tensors")
        method = "name/shape heuristics (no usable config skeleton)"
        if out_name is None and h_out and raw_cfg.get("tie_word_embeddings", False) is not True:
            out_name = h_out
    path = keymap[in_name]
    E = read_tensor(path, in_name, fmt)
    out = None
    out_path = None
    if out_name is not None and out_name in keymap:
        out_path = keymap[out_name]
        out = read_tensor(out_path, out_name, fmt)
        if out.shape == E.shape and torch.equal(out, E):
            notes.append(f"{out_name} equals {in_name}: treated as tied")
            out, out_name, out_path = None, None, None
        elif out.ndim != 2 or out.shape[1] != E.shape[1]:
            raise LoadError(f"{folder}: output matrix {out_name} has shape {tuple(out.shape)}, input {tuple(E.shape)}")
    elif out_name is not None:
        notes.append(f"config says untied but {out_name} is not in the checkpoint: treated as tied")
        out_name = None
    if E.ndim != 2:
        raise LoadError(f"{folder}: tensor {in_name} is not a matrix (shape {tuple(E.shape)})")
    tokens = load_tokenizer_table(folder)
    if tokens is None:
        notes.append("no tokenizer found: tokens are ids only")
        tokens = TokenTable.from_pieces([f"<id {i}>" for i in range(E.shape[0])], scheme="plain")
    tokens = tokens.with_rows(E.shape[0])
    used = sorted({p for p in (path, out_path) if p is not None})
    files = tuple(FileInfo.of(p, full_hash=hash_files) for p in used)
    dtype = dtype_of(path, in_name, fmt)
    prov = Provenance(
        source=source,
        format=fmt,
        files=files,
        input_tensor=in_name,
        output_tensor=out_name,
        dtype=dtype,
        method=method,
        notes=tuple(notes),
        seconds=time.perf_counter() - t0,
        bytes_read=int(E.numel() * itemsize(dtype) + (out.numel() * itemsize(dtype) if out is not None else 0)),
    )
    if raw_cfg:
        causal, why = hf_config_causal(raw_cfg)
    else:
        causal, why = False, "no config.json: not runnable as a causal LM"
    cfg = {
        "architecture": (raw_cfg.get("architectures") or [raw_cfg.get("model_type", "unknown")])[0],
        "model_type": raw_cfg.get("model_type"),
        "hidden_size": int(E.shape[1]),
        "token_scheme": tokens.scheme,
        "causal": causal,  # None: a model type anomtok.loading.arch does not know
        "causal_why": why,
    }
    return ModelEmbeddings(input=E, output=out, tokens=tokens, provenance=prov, config=cfg)


def load_safetensors_file(path: Path, source: str, *, hash_files: bool = False) -> ModelEmbeddings:
    """A single ``.safetensors`` file: its folder supplies config and tokenizer when present."""
    folder = path.parent
    others = [p for p in folder.glob("*.safetensors") if p != path]
    if (folder / "model.safetensors.index.json").exists() or not others:
        return load_hf_folder(folder, source, hash_files=hash_files)
    raise LoadError(f"{path}: its folder holds other safetensors files without an index; pass the folder instead")
