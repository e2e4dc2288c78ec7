"""``anomtok.load(spec)``: one contract for every source of embeddings.

``spec`` may be a packaged alias (``gemma-3-270m``, ``smollm2-135m``, ``minilm-l6``), a ``.gguf``
file, a ``.safetensors`` file, a Hugging Face folder (safetensors, sharded with an index, or
``.bin`` read with ``weights_only=True``), or a hub id (``org/name``), downloaded to the Hugging
Face cache with only the files holding the embedding.

The spec is classified by ``anomtok.loading.registry.Source``; ``EMBEDDINGS`` is the registry of
embedding loaders by source kind. The readers (and torch) are imported when a loader runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import LoadError
from .registry import FunctionLoader, Registry, Source, resolve_source

if TYPE_CHECKING:
    from ..embeddings import ModelEmbeddings

__all__ = ["load", "resolve_source", "EMBEDDINGS"]


def _gguf(source: Source, *, hash_files: bool = False, **_: Any) -> ModelEmbeddings:
    from .gguf_loader import load_gguf

    return load_gguf(list(source.paths), source.spec, hash_files=hash_files)


def _lone_gguf(folder: Path) -> list[Path] | None:
    """The single ``.gguf`` of a folder that has no other weights (safetensors or ``.bin``)."""
    ggufs = sorted(folder.glob("*.gguf"))
    has_weights = (
        any(folder.glob("*.safetensors"))
        or (folder / "pytorch_model.bin").exists()
        or (folder / "pytorch_model.bin.index.json").exists()
    )
    return ggufs if not has_weights and len(ggufs) == 1 else None


def _gguf_in_folder(source: Source, *, hash_files: bool = False, **_: Any) -> ModelEmbeddings:
    from .gguf_loader import load_gguf

    return load_gguf(_lone_gguf(source.path) or [], source.spec, hash_files=hash_files)


def _hf_folder(source: Source, *, hash_files: bool = False, **_: Any) -> ModelEmbeddings:
    from .hf_loader import load_hf_folder

    return load_hf_folder(source.path, source.spec, hash_files=hash_files)


def _safetensors(source: Source, *, hash_files: bool = False, **_: Any) -> ModelEmbeddings:
    from .hf_loader import load_safetensors_file

    return load_safetensors_file(source.path, source.spec, hash_files=hash_files)


def _hub(source: Source, *, hash_files: bool = False, revision: str | None = None) -> ModelEmbeddings:
    from .hf_loader import load_hf_folder
    from .hub import download_embedding_files

    folder = download_embedding_files(source.spec, revision=revision)
    return load_hf_folder(folder, source.spec, hash_files=hash_files)


def _refuse(source: Source) -> LoadError:
    if source.kind == "tokenizer":
        return LoadError(
            f"{source.spec}: is a tokenizer only, with no embedding matrix (use `anomtok audit` for tokenizers)"
        )
    return LoadError(f"{source.spec}: unsupported source")


EMBEDDINGS: Registry[ModelEmbeddings] = Registry(
    loaders={
        "gguf": (FunctionLoader(_gguf),),
        "folder": (
            FunctionLoader(_gguf_in_folder, when=lambda s: _lone_gguf(s.path) is not None),
            FunctionLoader(_hf_folder),
        ),
        "safetensors": (FunctionLoader(_safetensors),),
        "hub": (FunctionLoader(_hub),),
    },
    refuse=_refuse,
)


def load(spec: str | Path, *, hash_files: bool = False, revision: str | None = None) -> ModelEmbeddings:
    """Load the embedding matrices, token table and provenance of a model.

    Reads only the tensors it needs. Never runs remote code, never unpickles (``.bin`` files are
    read with ``weights_only=True``). Raises ``LoadError`` with a one-line reason on bad input.
    Each file is described by size, mtime and a cheap fingerprint (2 MiB of it read, see
    ``cache.file_fingerprint``); ``hash_files=True`` adds a full sha256 (reads every file whole).
    ``revision`` (a hub id's branch, tag or commit) is used by hub ids only.
    """
    return EMBEDDINGS.load(spec, hash_files=hash_files, revision=revision)
