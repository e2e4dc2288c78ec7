"""``anomtok.load(spec)``: one contract for every source of embeddings.

``spec`` may be a packaged alias (``gemma-3-270m``, ``smollm2-135m``, ``minilm-l6``), a ``.gguf``
file, a ``.safetensors`` file, a Hugging Face folder (safetensors, sharded with an index, or
``.bin`` read with ``weights_only=True``), or a hub id (``org/name``), downloaded to the Hugging
Face cache with only the files holding the embedding.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from ..embeddings import ModelEmbeddings
from ..errors import LoadError
from .gguf_loader import load_gguf
from .hf_loader import load_hf_folder, load_safetensors_file
from .packaged import packaged_models, resolve_alias

__all__ = ["load", "resolve_source"]

log = logging.getLogger(__name__)

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


def resolve_source(spec: str | Path) -> tuple[str, list[Path]]:
    """(kind, paths) for a spec, where kind is "gguf", "safetensors", "folder", "tokenizer" or "hub"."""
    text = str(spec)
    if text in packaged_models():
        paths = resolve_alias(text)
        p = paths[0]
        if len(paths) > 1 or p.suffix == ".gguf":
            return "gguf", paths
        if p.is_dir():
            return "folder", paths
        if p.name.endswith(".json"):
            return "tokenizer", paths
        return "file", paths
    path = Path(text).expanduser()
    if path.exists():
        if path.is_dir():
            return "folder", [path]
        if path.suffix == ".gguf":
            return "gguf", [path]
        if path.suffix == ".safetensors":
            return "safetensors", [path]
        if path.suffix in (".json", ".model"):
            return "tokenizer", [path]
        with path.open("rb") as f:
            magic = f.read(4)
        if magic == b"GGUF":
            return "gguf", [path]
        raise LoadError(f"{path}: unknown format (expected .gguf, .safetensors, a model folder or a tokenizer)")
    if _HUB_ID.match(text) and not text.startswith((".", "/", "~")):
        return "hub", []
    raise LoadError(f"{text}: no such file or folder, and not a packaged alias ({', '.join(packaged_models())}) or hub id")


def load(spec: str | Path, *, hash_files: bool = False, revision: str | None = None) -> ModelEmbeddings:
    """Load the embedding matrices, token table and provenance of a model.

    Reads only the tensors it needs. Never runs remote code, never unpickles (``.bin`` files are
    read with ``weights_only=True``). Raises ``LoadError`` with a one-line reason on bad input.
    Each file is described by size, mtime and a cheap fingerprint (2 MiB of it read, see
    ``cache.file_fingerprint``); ``hash_files=True`` adds a full sha256 (reads every file whole).
    """
    kind, paths = resolve_source(spec)
    source = str(spec)
    if kind == "gguf":
        return load_gguf(paths, source, hash_files=hash_files)
    if kind == "folder":
        folder = paths[0]
        ggufs = sorted(folder.glob("*.gguf"))
        has_weights = any(folder.glob("*.safetensors")) or (folder / "pytorch_model.bin").exists() or (
            folder / "pytorch_model.bin.index.json").exists()
        if not has_weights and len(ggufs) == 1:
            return load_gguf(ggufs, source, hash_files=hash_files)
        return load_hf_folder(folder, source, hash_files=hash_files)
    if kind == "safetensors":
        return load_safetensors_file(paths[0], source, hash_files=hash_files)
    if kind == "hub":
        from .hub import download_embedding_files

        folder = download_embedding_files(source, revision=revision)
        return load_hf_folder(folder, source, hash_files=hash_files)
    if kind == "tokenizer":
        raise LoadError(f"{spec}: is a tokenizer only, with no embedding matrix (use `anomtok audit` for tokenizers)")
    raise LoadError(f"{spec}: unsupported source")
