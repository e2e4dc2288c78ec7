"""Embeddings from Hugging Face checkpoints: a folder, a ``.safetensors`` file, a sharded folder
with its index, or (only as ``weights_only=True``) a ``.bin`` checkpoint.

The embedding's parameter name comes from a weightless (meta-device) model skeleton built from
``config.json``; only the shard holding that tensor is opened and only that tensor is read.
When no skeleton can be built (unknown architecture, no config), 2-D tensors whose shape and
name look like an embedding are used, and provenance says so.
"""

from __future__ import annotations

import json
import logging
import pickle
import re
import time
import zipfile
from pathlib import Path
from typing import Any

import torch

from ..embeddings import FileInfo, ModelEmbeddings, Provenance
from ..errors import LoadError
from ..tokens import TokenTable
from .arch import hf_config_causal

__all__ = [
    "load_hf_folder",
    "load_safetensors_file",
    "load_tokenizer_table",
    "config_errors",
    "skeleton_names",
    "match_key",
    "first_line",
]

log = logging.getLogger(__name__)

_EMBED_NAME = re.compile(
    r"(embed_tokens|word_embeddings|wte|tok_embeddings|embed_in|token_embd|shared|embeddings?)\.weight$"
)
_OUTPUT_NAME = re.compile(r"(lm_head|embed_out|output|ff_out)\.weight$")


# ---------------------------------------------------------------- checkpoint index
def _safetensors_keys(path: Path) -> dict[str, tuple[list[int], str]]:
    """name -> (shape, dtype) from a safetensors header, without reading tensor data."""
    try:
        with path.open("rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise LoadError(f"{path}: truncated safetensors file (no header)")
            n = int.from_bytes(head, "little")
            size = path.stat().st_size
            if n <= 0 or n > size - 8:
                raise LoadError(f"{path}: corrupt or truncated safetensors file (header length {n} > file size {size})")
            header = json.loads(f.read(n))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise LoadError(f"{path}: not a readable safetensors file ({exc})") from None
    out: dict[str, tuple[list[int], str]] = {}
    data_len = size - 8 - n
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            begin, end = info["data_offsets"]
            if end > data_len or begin > end:
                raise LoadError(
                    f"{path}: truncated safetensors file (tensor {name} ends at {end}, data has {data_len} bytes)"
                )
            out[name] = (list(info["shape"]), str(info["dtype"]))
        except (KeyError, TypeError, ValueError):
            raise LoadError(f"{path}: corrupt safetensors header entry {name!r}") from None
    return out


def _weight_map(index: Path) -> dict[str, Path]:
    """Tensor name -> shard file, from a sharded checkpoint's index."""
    try:
        wm = json.loads(index.read_text("utf-8"))["weight_map"]
        return {str(k): index.parent / str(v) for k, v in wm.items()}
    except (OSError, ValueError, LookupError, TypeError, AttributeError) as exc:
        raise LoadError(f"{index}: unreadable index ({exc.__class__.__name__}: {first_line(exc)})") from None


def _checkpoint_map(folder: Path) -> tuple[dict[str, Path], str]:
    """Tensor name -> file holding it, and the format ("safetensors" or "pytorch-bin")."""
    index = folder / "model.safetensors.index.json"
    if index.exists():
        return _weight_map(index), "safetensors"
    files = sorted(folder.glob("*.safetensors"))
    if files:
        return {k: f for f in files for k in _safetensors_keys(f)}, "safetensors"
    bindex = folder / "pytorch_model.bin.index.json"
    if bindex.exists():
        return _weight_map(bindex), "pytorch-bin"
    if (folder / "pytorch_model.bin").exists():
        path = folder / "pytorch_model.bin"
        return {k: path for k in _bin_state(path)}, "pytorch-bin"
    raise LoadError(f"{folder}: no model weights found (no *.safetensors, safetensors index or pytorch_model.bin)")


# ---------------------------------------------------------------- locating the embedding
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


def _heuristic_names(shapes: dict[str, list[int]], vocab: int | None) -> tuple[str | None, str | None]:
    two_d = {k: s for k, s in shapes.items() if len(s) == 2}
    emb = [k for k in two_d if _EMBED_NAME.search(k) and (vocab is None or two_d[k][0] >= vocab)]
    emb = [k for k in emb if "position" not in k and "type" not in k]
    out = [k for k in two_d if _OUTPUT_NAME.search(k) and (vocab is None or two_d[k][0] >= vocab)]
    return (emb[0] if len(emb) == 1 else None), (out[0] if len(out) == 1 else None)


def _bin_state(path: Path) -> dict[str, torch.Tensor]:
    """A ``.bin`` checkpoint, memory-mapped, unpickled only with ``weights_only=True``. A legacy
    (pre-zip, torch < 1.6) checkpoint cannot be memory-mapped: it is read whole, with a warning."""
    mmap = zipfile.is_zipfile(path)
    if not mmap:
        log.warning(
            "%s: not a zip-format torch checkpoint (legacy format, or damaged): it cannot be memory-mapped, "
            "so it is read whole into memory",
            path,
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, LookupError, ValueError) as exc:
        # UnpicklingError: a type weights_only refuses (or not a pickle at all); RuntimeError: a
        # damaged zip archive or storage; EOFError: truncated; KeyError: not a torch file
        raise LoadError(f"{path}: cannot read checkpoint with weights_only=True ({exc.__class__.__name__})") from None
    if not isinstance(state, dict):
        raise LoadError(f"{path}: not a state dict")
    return state


def _unambiguous_names(keymap: dict[str, Path], fmt: str, cfg: dict[str, Any]) -> tuple[str, str | None] | None:
    """(input, output-or-None) straight from the safetensors headers when nothing is in doubt:
    exactly one embedding-named tensor with ``vocab_size`` rows, and either no output-like tensor
    of that shape or an explicit ``tie_word_embeddings``. Saves building a model skeleton (and
    importing transformers); anything ambiguous returns None and the skeleton decides."""
    if fmt != "safetensors":
        return None
    vocab = cfg.get("vocab_size")
    if not isinstance(vocab, int):
        return None
    shapes = _shapes(keymap, fmt)
    h_in, h_out = _heuristic_names(shapes, vocab)
    if h_in is None or shapes[h_in][0] != vocab:
        return None
    outs = [k for k, sh in shapes.items() if len(sh) == 2 and sh[0] == vocab and _OUTPUT_NAME.search(k) and k != h_in]
    if not outs:
        return h_in, None
    if "tie_word_embeddings" in cfg and h_out is not None and len(outs) == 1:
        return h_in, None if cfg["tie_word_embeddings"] else h_out
    return None


def _read(path: Path, key: str, fmt: str) -> torch.Tensor:
    if fmt == "safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                t = f.get_tensor(key)
        except (SafetensorError, OSError, RuntimeError) as exc:
            raise LoadError(f"{path}: cannot read tensor {key} ({exc})") from None
    else:
        state = _bin_state(path)
        if key not in state:
            raise LoadError(f"{path}: no tensor {key}")
        t = state[key]
    return t.detach().to(torch.float32).contiguous()


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
    t0 = time.perf_counter()
    keymap, fmt = _checkpoint_map(folder)
    config = None
    raw_cfg: dict[str, Any] = {}
    if (folder / "config.json").exists():
        try:
            raw_cfg = json.loads((folder / "config.json").read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise LoadError(f"{folder / 'config.json'}: unreadable ({exc})") from None
    fast = _unambiguous_names(keymap, fmt, raw_cfg) if raw_cfg else None
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
        shapes = _shapes(keymap, fmt)
        vocab = raw_cfg.get("vocab_size")
        in_name, h_out = _heuristic_names(shapes, vocab)
        if in_name is None:
            raise LoadError(f"{folder}: no input embedding found among the checkpoint tensors")
        method = "name/shape heuristics (no usable config skeleton)"
        if out_name is None and h_out and raw_cfg.get("tie_word_embeddings", False) is not True:
            out_name = h_out
    path = keymap[in_name]
    E = _read(path, in_name, fmt)
    out = None
    out_path = None
    if out_name is not None and out_name in keymap:
        out_path = keymap[out_name]
        out = _read(out_path, out_name, fmt)
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
    dtype = _dtype_of(path, in_name, fmt)
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
        bytes_read=int(E.numel() * _itemsize(dtype) + (out.numel() * _itemsize(dtype) if out is not None else 0)),
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


def _shapes(keymap: dict[str, Path], fmt: str) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    if fmt != "safetensors":
        for f in sorted(set(keymap.values())):
            out.update({k: list(v.shape) for k, v in _bin_state(f).items() if hasattr(v, "shape")})
        return out
    for f in sorted(set(keymap.values())):
        out.update({k: v[0] for k, v in _safetensors_keys(f).items()})
    return out


def _dtype_of(path: Path, key: str, fmt: str) -> str:
    if fmt == "safetensors":
        info = _safetensors_keys(path).get(key)
        return info[1] if info else "unknown"
    return "torch"


def _itemsize(dtype: str) -> int:
    return {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I8": 1, "U8": 1}.get(dtype, 4)


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its class name when the message is empty)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__
