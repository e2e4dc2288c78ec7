"""Load a *tokenizer* (not embeddings) from any source: a ``tokenizer.json``, a SentencePiece
``.model``, a Hugging Face folder, the ``tokenizer.ggml.*`` metadata of a GGUF file, a packaged
alias (``gemma-3-270m``, ``smollm2-135m``, ``minilm-l6``, ``xlmr-tokenizer``) or a hub id.

Every source gives the same pair: a runnable ``tokenizers.Tokenizer`` and the ``TokenTable`` of
its vocabulary (exact bytes and kind of every id).

>>> tok, table = load_tokenizer("xlmr-tokenizer")          # doctest: +SKIP
>>> tok.encode("トークン", add_special_tokens=False).tokens  # doctest: +SKIP
['▁', 'トー', 'クン']

How each source becomes a ``tokenizers.Tokenizer``:

* ``tokenizer.json``: read as is (``Tokenizer.from_file``).
* GGUF: rebuilt from ``tokenizer.ggml.tokens/merges/scores/token_type`` by transformers' GGUF
  tokenizer converter (the one ``from_pretrained(gguf_file=...)`` uses): ``gpt2`` = byte-level
  BPE from tokens + merges, ``llama``/``gemma`` = SentencePiece-style BPE with byte fallback (merges
  derived from scores, or from the token order for Gemma), ``t5`` = Unigram. llama.cpp's ``smollm``
  pre-tokenizer (one digit per pre-token) is added, which transformers does not map.
* SentencePiece ``.model``: parsed (``anomtok.audit.sentencepiece``: a ~40-line protobuf reader,
  no ``sentencepiece`` or ``protobuf`` needed) into a Unigram or a byte-fallback BPE (merges ranked by piece score), with
  the model's precompiled normaliser and a ``Metaspace`` pre-tokenizer. This reproduces
  SentencePiece on ordinary text; it is the same conversion transformers applies.
* a folder: its ``tokenizer.json``; else a ``.model``; else transformers' ``AutoTokenizer`` on the
  folder's files (no remote code); else its single ``.gguf``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import LoadError
from ..loading.registry import FunctionLoader, Loader, Registry
from ..tokens import TokenTable
from .sentencepiece import read_sentencepiece_model, tokenizer_from_sentencepiece

__all__ = [
    "LoadedTokenizer",
    "load_tokenizer",
    "read_sentencepiece_model",
    "tokenizer_from_gguf_metadata",
    "TOKENIZERS",
]

_SPM_NAMES = ("tokenizer.model", "sentencepiece.bpe.model", "spiece.model")
_WEIGHT_GLOBS = ("*.safetensors", "pytorch_model.bin", "pytorch_model.bin.index.json")


@dataclass
class LoadedTokenizer:
    """A tokenizer, its token table, and where they came from.

    Unpacks as ``(tokenizer, table)``. ``has_embeddings`` says whether the same source also holds
    an embedding matrix that ``anomtok.load`` can rank (a GGUF model, a folder with weights)."""

    tokenizer: Any  # tokenizers.Tokenizer
    table: TokenTable
    source: str = "<object>"
    format: str = "object"  # tokenizer.json | sentencepiece | gguf | transformers | object
    files: tuple[str, ...] = ()
    method: str = ""
    has_embeddings: bool = False
    notes: list[str] = field(default_factory=list)

    def __iter__(self) -> Iterator[Any]:
        yield self.tokenizer
        yield self.table


def load_tokenizer(source: Any) -> LoadedTokenizer:
    """Load a tokenizer from a path, alias or hub id (see the module docstring), or wrap a
    ``tokenizers.Tokenizer`` / ``(Tokenizer, TokenTable)`` pair. Raises ``LoadError``."""
    if isinstance(source, LoadedTokenizer):
        return source
    if isinstance(source, tuple) and len(source) == 2 and isinstance(source[1], TokenTable):
        return LoadedTokenizer(tokenizer=source[0], table=source[1], method="given")
    if _is_tokenizer(source):
        return LoadedTokenizer(tokenizer=source, table=_table_of(source), method="given tokenizers.Tokenizer")
    if not isinstance(source, (str, os.PathLike)):
        raise LoadError(f"cannot load a tokenizer from a {type(source).__name__}")

    return TOKENIZERS.load(source)


# ---------------------------------------------------------------------------------- sources
def _is_tokenizer(obj: Any) -> bool:
    try:
        from tokenizers import Tokenizer
    except ImportError:  # pragma: no cover - a dependency
        return False
    return isinstance(obj, Tokenizer)


def _table_of(tok: Any) -> TokenTable:
    try:
        spec = json.loads(tok.to_str())
    except Exception as exc:  # noqa: BLE001 - only the tokenizers library's own errors (plain Exception)
        if type(exc) is not Exception:
            raise
        # a custom (Python) component cannot be serialised
        raise LoadError(f"cannot read the vocabulary of this tokenizer ({exc}); pass (tokenizer, TokenTable)") from None
    return TokenTable.from_tokenizer_json(spec)


def _from_json(path: Path, spec: str) -> LoadedTokenizer:
    from tokenizers import Tokenizer

    table = TokenTable.from_tokenizer_json(path)  # clear LoadError for missing/unreadable/not-a-tokenizer
    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as exc:  # noqa: BLE001 - only the tokenizers library's own errors (plain Exception)
        if type(exc) is not Exception:
            raise
        raise LoadError(f"{path}: the tokenizers library cannot read it ({str(exc).splitlines()[0]})") from None
    return LoadedTokenizer(tok, table, spec, "tokenizer.json", (str(path),), "tokenizer.json read by tokenizers")


def _from_folder(folder: Path, spec: str, weights: bool | None = None) -> LoadedTokenizer:
    has_weights = any(any(folder.glob(g)) for g in _WEIGHT_GLOBS) if weights is None else weights
    ggufs = sorted(folder.glob("*.gguf"))
    if (folder / "tokenizer.json").exists():
        out = _from_json(folder / "tokenizer.json", spec)
    elif any((folder / n).exists() for n in _SPM_NAMES):
        out = _from_spm(next(folder / n for n in _SPM_NAMES if (folder / n).exists()), spec)
    elif any((folder / n).exists() for n in ("tokenizer_config.json", "vocab.txt", "vocab.json")):
        out = _from_transformers(folder, spec)
    elif len(ggufs) == 1:
        return _from_gguf(ggufs, spec)
    else:
        raise LoadError(
            f"{folder}: no tokenizer.json, SentencePiece .model, tokenizer files or single .gguf in this folder"
        )
    out.has_embeddings = has_weights or len(ggufs) == 1
    return out


def _from_transformers(folder: Path, spec: str) -> LoadedTokenizer:
    try:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(folder), trust_remote_code=False).backend_tokenizer
    except Exception as exc:  # noqa: BLE001 - narrowed below
        # as in anomtok.loading.hf_loader: ValueError: no tokenizer class or backend fits the files (also bad
        # JSON); OSError: unreadable files; ImportError: a converter needs an absent package; AttributeError:
        # a slow-only tokenizer; a plain Exception: the tokenizers library's own errors
        if type(exc) is not Exception and not isinstance(
            exc, (OSError, ValueError, TypeError, LookupError, AttributeError, ImportError)
        ):
            raise
        raise LoadError(
            f"{folder}: has tokenizer files but no tokenizer could be built ({exc.__class__.__name__}: {exc})"
        ) from None
    return LoadedTokenizer(
        tok, _table_of(tok), spec, "transformers", (str(folder),), "transformers AutoTokenizer (fast)"
    )


def _from_hub(repo_id: str) -> LoadedTokenizer:
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as exc:  # pragma: no cover
        raise LoadError(f"huggingface_hub is needed for hub ids ({exc})") from None
    last: Exception | None = None
    for name in ("tokenizer.json", *_SPM_NAMES):
        try:
            path = Path(hf_hub_download(repo_id, name))
        except Exception as exc:  # noqa: BLE001 - offline, missing file, no such repo: huggingface_hub raises its own
            # errors, OSError, ValueError or its HTTP client's errors (which differ across versions); kept broad
            last = exc
            continue
        out = _from_json(path, repo_id) if name.endswith(".json") else _from_spm(path, repo_id)
        out.has_embeddings = True
        return out
    reason = str(last).splitlines()[0] if last and str(last) else type(last).__name__
    raise LoadError(f"{repo_id}: no tokenizer in the local Hugging Face cache and none could be downloaded ({reason})")


def _tokenizer_file_loaders() -> tuple[Loader[LoadedTokenizer], ...]:
    """A tokenizer file, by suffix: SentencePiece ``.model`` or ``tokenizer.json``."""
    return (
        FunctionLoader(lambda s: _from_spm(s.path, s.spec), when=lambda s: s.path.suffix == ".model"),
        FunctionLoader(lambda s: _from_json(s.path, s.spec), when=lambda s: s.path.suffix == ".json"),
    )


TOKENIZERS: Registry[LoadedTokenizer] = Registry(
    loaders={
        "gguf": (FunctionLoader(lambda s: _from_gguf(list(s.paths), s.spec)),),
        "hub": (FunctionLoader(lambda s: _from_hub(s.spec)),),
        "folder": (FunctionLoader(lambda s: _from_folder(s.path, s.spec)),),
        "safetensors": (FunctionLoader(lambda s: _from_folder(s.path.parent, s.spec, weights=True)),),
        "tokenizer": _tokenizer_file_loaders(),
        "file": _tokenizer_file_loaders(),  # a packaged alias's file
    },
    refuse=lambda s: LoadError(
        f"{s.spec}: not a tokenizer (expected tokenizer.json, a SentencePiece .model, a GGUF file or a folder)"
    ),
)


# ---------------------------------------------------------------------------------- GGUF
_GGUF_KEYS = {  # tokenizer.ggml.<key> -> name in transformers' tokenizer dict
    "model": "tokenizer_type",
    "pre": "pre_tokenizer_type",
    "tokens": "tokens",
    "scores": "scores",
    "token_type": "token_type",
    "merges": "merges",
    "precompiled_charsmap": "precompiled_charsmap",
    "bos_token_id": "bos_token_id",
    "eos_token_id": "eos_token_id",
    "unknown_token_id": "unk_token_id",
    "padding_token_id": "pad_token_id",
    "add_space_prefix": "add_prefix_space",
}


def _gguf_converter():
    try:  # transformers >= 5
        from transformers.integrations.gguf import convert_gguf_tokenizer
    except ImportError:
        try:  # transformers 4.x
            from transformers.integrations.ggml import convert_gguf_tokenizer
        except ImportError as exc:
            raise LoadError(f"this transformers version has no GGUF tokenizer converter ({exc})") from None
    return convert_gguf_tokenizer


def _from_gguf(paths: list[Path], spec: str) -> LoadedTokenizer:
    from ..loading.gguf_reader import GGUFFile

    gf = GGUFFile(paths)
    md = gf.metadata
    table = TokenTable.from_gguf_metadata(md)  # LoadError when there is no vocabulary
    tok = tokenizer_from_gguf_metadata(md)
    files = tuple(str(p) for p in paths)
    model = md.get("tokenizer.ggml.model")
    method = f"rebuilt from GGUF metadata (tokenizer.ggml.model={model}, pre={md.get('tokenizer.ggml.pre')}) by transformers' GGUF converter"
    return LoadedTokenizer(tok, table, spec, "gguf", files, method, has_embeddings="token_embd.weight" in gf.tensors)


def tokenizer_from_gguf_metadata(md: dict[str, Any]) -> Any:
    """A ``tokenizers.Tokenizer`` for the ``tokenizer.ggml.*`` keys of a GGUF file."""
    from tokenizers import pre_tokenizers

    convert = _gguf_converter()
    d: dict[str, Any] = {}
    for key, name in _GGUF_KEYS.items():
        value = md.get(f"tokenizer.ggml.{key}")
        if value is not None:
            d[name] = value.tolist() if hasattr(value, "tolist") else value
    if not d.get("tokens"):
        raise LoadError("the GGUF file has no tokenizer.ggml.tokens: no vocabulary")
    arch = str(md.get("general.architecture", "llama"))
    try:
        tok, _ = convert(arch, d)
    except LoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - third-party converter on arbitrary metadata (ValueError for unsupported
        # types, KeyError for missing keys, ...): any failure is a load error; kept broad
        raise LoadError(
            f"cannot build a tokenizer from this GGUF (tokenizer.ggml.model={d.get('tokenizer_type')}): "
            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from None
    if hasattr(tok, "backend_tokenizer"):  # transformers 4.x returns a PreTrainedTokenizerFast
        tok = tok.backend_tokenizer
    if d.get("tokenizer_type") == "gpt2" and d.get("pre_tokenizer_type") == "smollm":
        # llama.cpp's LLAMA_VOCAB_PRE_TYPE_SMOLLM = SmolLM's tokenizer.json: one digit per pre-token
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Digits(individual_digits=True),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
            ]
        )
    return tok


# ---------------------------------------------------------------------------------- SentencePiece
def _from_spm(path: Path, spec: str) -> LoadedTokenizer:
    tok, table, method = tokenizer_from_sentencepiece(path)
    return LoadedTokenizer(tok, table, spec, "sentencepiece", (str(path),), method)
