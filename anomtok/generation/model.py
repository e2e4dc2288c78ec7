"""Load a causal language model, with its tokenizer, for any source ``anomtok.load`` accepts.

* Hugging Face folder or hub id: ``AutoModelForCausalLM.from_pretrained`` with
  ``trust_remote_code=False`` and safetensors only (no pickles).
* GGUF file, or a packaged alias shipping one (chunked packages are joined once by
  ``materialize_gguf``): for the llama, qwen2 and gemma3 architectures anomtok builds the torch
  model itself (``anomtok.loading.gguf_torch``: its own reader dequantizes the tensors in numpy into
  a weightless skeleton; the logits equal transformers' own load of the file), in seconds; any
  other architecture, or ``gguf_loader="transformers"``, goes through transformers' converter
  (``from_pretrained(gguf_file=...)``: minutes on a CPU for a large vocabulary). Nothing is cached:
  ``info["gguf_loader"]`` (in ``describe()``, hence meta.json) says which path loaded it. The
  tokenizer is transformers' GGUF tokenizer either way.
* Encoder-only models (BERT, ...) and encoder-decoders raise ``InputError``: "not a causal LM".

``dtype``: ``auto`` is float32 on CPU and bfloat16 on CUDA; or ``float32``, ``bfloat16``,
``float16``. ``device``: ``auto|cpu|cuda[:N]``; ``device_map="auto"`` spreads a model that does
not fit one GPU over all of them (needs the ``accelerate`` package).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..device import resolve_device
from ..errors import InputError, LoadError
from ..loading.arch import causal_verdict, hf_config_causal
from ..loading.packaged import materialize_gguf, packaged_models
from ..loading.registry import FunctionLoader, Registry, Source

__all__ = ["CausalLM", "load_causal_lm", "DTYPES", "resolve_dtype"]

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
GGUF_LOADERS = ("auto", "transformers")


@dataclass
class CausalLM:
    """A causal LM ready for ``anomtok.generation.loop.generate``.

    ``n_vocab`` is the tokenizer's vocabulary size (for a GGUF source, at most the GGUF's own token
    list: transformers' converter may append an ``<|endoftext|>`` the model never had): logit
    columns past it (the padding rows real checkpoints round their matrices up with) belong to no
    token and are masked when generating.
    ``input_device`` is where input ids go (the embedding's device under ``device_map="auto"``).
    """

    model: Any
    tokenizer: Any
    source: str
    format: str
    device: torch.device
    dtype: torch.dtype
    n_vocab: int
    eos_ids: tuple[int, ...]
    pad_id: int
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        """Width of the logits (the output matrix's rows)."""
        out = self.model.get_output_embeddings()
        return int(out.weight.shape[0]) if out is not None else int(self.model.config.vocab_size)

    @property
    def input_device(self) -> torch.device:
        return self.model.get_input_embeddings().weight.device

    @property
    def max_positions(self) -> int | None:
        cfg = getattr(self.model.config, "get_text_config", lambda: self.model.config)()
        n = getattr(cfg, "max_position_embeddings", None)
        return int(n) if isinstance(n, int) and n > 0 else None

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Token ids of ``text`` as the model expects a prompt (the tokenizer's own BOS rule)."""
        return list(self.tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])

    def placement(self) -> dict[str, str]:
        """Where the model runs, as the ``meta.json`` files record it: ``{"device", "dtype"}``."""
        return {"device": str(self.device), "dtype": str(self.dtype).replace("torch.", "")}

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "format": self.format,
            **self.placement(),
            "n_vocab": self.n_vocab,
            "rows": self.rows,
            "eos_ids": list(self.eos_ids),
            "architecture": type(self.model).__name__,
            **self.info,
        }


def resolve_dtype(name: str | torch.dtype, device: torch.device) -> torch.dtype:
    if isinstance(name, torch.dtype):
        if name not in DTYPES.values():
            raise InputError(f"dtype must be one of auto, {', '.join(DTYPES)}, not {name}")
        return name
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if name not in DTYPES:
        raise InputError(f"--dtype must be auto, {', '.join(DTYPES)}, not {name!r}")
    return DTYPES[name]


def _check_causal_config(raw: dict[str, Any], where: str) -> None:
    """InputError unless ``config.json`` describes a decoder-only LM (``anomtok.loading.arch``
    decides; a model type it does not know is accepted when transformers has a causal-LM class for it)."""
    causal, why = hf_config_causal(raw)
    if causal is False:
        raise InputError(f"{where}: {why}: negative-temperature generation and verification need a decoder-only model")
    if causal:
        return
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    mtype = raw.get("model_type")
    if mtype is not None and mtype not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise InputError(f"{where}: model type {mtype!r} is not a causal LM that transformers can generate with")


def _from_pretrained(loader: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return loader.from_pretrained(*args, **kwargs)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise LoadError(f"{args[0]}: transformers could not load it ({exc.__class__.__name__}: {msg})") from None


def _reader_of(embeddings: Any, spec: str) -> Any:
    """The parsed GGUF file ``embeddings`` were read from (``ModelEmbeddings.reader``) when ``spec``
    names the same, unchanged files (a packaged alias: the same chunks), else None."""
    reader = getattr(embeddings, "reader", None)
    if reader is None:
        return None
    try:
        paths = list(Source.of(spec).paths)
    except LoadError:
        return None
    same = [Path(p).resolve() for p in reader.paths] == [p.resolve() for p in paths]
    return reader if same and reader.unchanged() else None


def _load_gguf(
    gguf: Path, dtype: torch.dtype, gguf_loader: str, device_map: str | None = None, reader: Any = None
) -> tuple[Any, Any, dict[str, Any]]:
    """(model, tokenizer, facts) of a GGUF file: anomtok's own loader for the architectures it knows
    (``anomtok.loading.gguf_torch``), else (or when asked) transformers' converter. ``reader``: the
    file already parsed (by the embedding loader: the same file, or a packaged alias's chunks of it)."""
    from ..loading.gguf_reader import GGUFFile
    from ..loading.gguf_torch import load_gguf_causal_lm, unsupported_reason

    gf = reader if reader is not None else GGUFFile([gguf])  # LoadError, naming the file, on anything unreadable
    arch, tokens = str(gf.metadata.get("general.architecture", "unknown")), gf.metadata.get("tokenizer.ggml.tokens")
    causal, why = causal_verdict(arch)
    if causal is False:
        raise InputError(f"{gguf}: GGUF architecture {why}: it cannot generate text")
    info: dict[str, Any] = {
        "gguf": str(gguf),
        "gguf_architecture": arch,
        "gguf_tokens": len(tokens) if tokens else None,
    }
    if device_map == "auto":
        why = "device_map='auto' (transformers spreads the model over the devices while loading it)"
    else:
        why = unsupported_reason(gf) if gguf_loader == "auto" else f"gguf_loader={gguf_loader!r} was asked for"
    if not why:
        model, tok, facts = load_gguf_causal_lm(gguf, dtype, gf)
        return model, tok, {**info, **facts, "gguf_reused": reader is not None}
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .. import progress

    progress.note(
        "%s: %s: converting it with transformers' GGUF converter instead (can take minutes on a CPU)", gguf.name, why
    )
    t0 = time.perf_counter()
    tok = _from_pretrained(AutoTokenizer, str(gguf.parent), gguf_file=gguf.name)
    dm = {"device_map": device_map} if device_map else {}  # transformers needs accelerate (a dependency) here
    model = _from_pretrained(AutoModelForCausalLM, str(gguf.parent), gguf_file=gguf.name, dtype=dtype, **dm)
    facts = {"gguf_loader": "transformers", "gguf_loader_reason": why}
    return model, tok, {**info, **facts, "gguf_load_seconds": round(time.perf_counter() - t0, 2)}


def _eos_ids(model: Any, tok: Any) -> tuple[int, ...]:
    ids: list[int] = []
    for src in (getattr(model, "generation_config", None), model.config, tok):
        v = getattr(src, "eos_token_id", None) if src is not None else None
        if v is None:
            continue
        for i in v if isinstance(v, (list, tuple)) else [v]:
            if isinstance(i, int) and i >= 0 and i not in ids:
                ids.append(i)
    return tuple(ids)


# (format, folder for transformers, the .gguf file for a GGUF, or None for a hub id)
Weights = tuple[str, Path | None]


def _from_alias(source: Source) -> Weights:
    """A packaged alias: its folder, or its GGUF (chunked packages joined once)."""
    if packaged_models()[source.spec].tokenizer_only:  # causal or not is decided by anomtok.loading.arch
        raise InputError(f"{source.spec}: is a tokenizer only, with no weights: it cannot generate text")
    path = materialize_gguf(source.spec) if source.kind == "gguf" else source.path
    if path.is_dir():  # a packaged HF folder: its config.json is checked by load_causal_lm
        return "folder", path
    return "gguf", path


def _from_gguf(source: Source) -> Weights:
    return "gguf", source.path


def _from_folder(source: Source) -> Weights:
    """A model folder (a ``.safetensors`` file: its folder); one with no config.json and a single
    ``.gguf``: that GGUF."""
    folder = source.path if source.kind == "folder" else source.path.parent
    ggufs = sorted(folder.glob("*.gguf"))
    if not (folder / "config.json").exists() and len(ggufs) == 1:
        return "gguf", ggufs[0]
    return "folder", folder


def _refuse(source: Source) -> Exception:
    if source.kind == "tokenizer":
        return InputError(f"{source.spec}: is a tokenizer only, with no weights: it cannot generate text")
    return LoadError(f"{source.spec}: unsupported source")


def _is_alias(source: Source) -> bool:
    return source.alias is not None


WEIGHTS: Registry[Weights] = Registry(
    loaders={
        "gguf": (FunctionLoader(_from_alias, when=_is_alias), FunctionLoader(_from_gguf)),
        "folder": (FunctionLoader(_from_alias, when=_is_alias), FunctionLoader(_from_folder)),
        "safetensors": (FunctionLoader(_from_folder),),
        "file": (FunctionLoader(_from_alias, when=_is_alias),),
        "hub": (FunctionLoader(lambda source: ("hub", None)),),
    },
    refuse=_refuse,
)


def load_causal_lm(
    spec: str | os.PathLike,
    *,
    device: str = "auto",
    dtype: str | torch.dtype = "auto",
    device_map: str | None = None,
    gguf_loader: str = "auto",
    embeddings: Any = None,
) -> CausalLM:
    """Load model and tokenizer for generation (see the module docstring). ``gguf_loader``:
    ``auto`` (anomtok's own GGUF loader where it knows the architecture) or ``transformers``.
    ``embeddings``: the ``ModelEmbeddings`` of the same spec, already loaded; for a GGUF read by
    anomtok's own loader, its parsed file and embedding matrices are reused (not read again; the
    model's embedding then shares memory with ``embeddings.input``)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.perf_counter()
    text = str(spec)
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    if device_map not in (None, "auto"):
        raise InputError(f"device_map must be None or 'auto', not {device_map!r}")
    if gguf_loader not in GGUF_LOADERS:
        raise InputError(f"gguf_loader must be one of {', '.join(GGUF_LOADERS)}, not {gguf_loader!r}")
    kind, folder = WEIGHTS.load(text)
    where = str(folder) if folder is not None else text
    info: dict[str, Any] = {}
    if kind == "gguf" and folder is not None:
        model, tok, info = _load_gguf(folder, dt, gguf_loader, device_map, _reader_of(embeddings, text))
    elif folder is not None:
        cfg_path = folder / "config.json"
        if not cfg_path.exists():
            raise LoadError(f"{folder}: no config.json: not a Hugging Face model folder")
        try:
            raw = json.loads(cfg_path.read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise LoadError(f"{cfg_path}: unreadable ({exc})") from None
        _check_causal_config(raw, text)
    else:
        from transformers import AutoConfig

        cfg = _from_pretrained(AutoConfig, text, trust_remote_code=False)
        _check_causal_config(cfg.to_dict(), text)
    if kind != "gguf":
        kwargs: dict[str, Any] = {"trust_remote_code": False, "use_safetensors": True, "dtype": dt}
        if device_map == "auto":
            kwargs["device_map"] = "auto"
        model = _from_pretrained(AutoModelForCausalLM, where, **kwargs)
        tok = _from_pretrained(AutoTokenizer, where, trust_remote_code=False)
    if device_map is None:
        model = model.to(dev)
    model.eval()
    n_vocab = len(tok)
    if info.get("gguf_tokens"):  # transformers' GGUF tokenizer may add tokens the model never had
        n_vocab = min(n_vocab, int(info["gguf_tokens"]))
    eos = _eos_ids(model, tok)
    pad = tok.pad_token_id if tok.pad_token_id is not None else (eos[0] if eos else 0)
    lm = CausalLM(
        model=model,
        tokenizer=tok,
        source=text,
        format=kind,
        device=dev if device_map is None else model.get_input_embeddings().weight.device,
        dtype=dt,
        n_vocab=n_vocab,
        eos_ids=eos,
        pad_id=int(pad),
        info=info,
    )
    if n_vocab > lm.rows:
        raise LoadError(f"{text}: the tokenizer has {n_vocab} tokens but the model's output has only {lm.rows} rows")
    lm.info["load_seconds"] = round(time.perf_counter() - t0, 2)
    return lm
