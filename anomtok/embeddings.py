"""The one object every loader returns: embedding matrices, token table and provenance."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from .tokens import TokenTable

__all__ = ["FileInfo", "Provenance", "ModelEmbeddings"]


@dataclass(frozen=True)
class FileInfo:
    path: str
    size: int
    sha256: str | None  # the full-file hash, only when asked for (``load(..., hash_files=True)``)
    mtime_ns: int | None = None
    fingerprint: str | None = None  # cheap: size, mtime and the first and last MiB (``cache.file_fingerprint``)

    @classmethod
    def of(cls, path: str | Path, *, full_hash: bool = False) -> FileInfo:
        """Describe a file without reading it whole (unless ``full_hash``)."""
        from .cache import file_fingerprint, file_sha256

        p = Path(path)
        st = p.stat()
        return cls(str(p), st.st_size, file_sha256(p) if full_hash else None, st.st_mtime_ns, file_fingerprint(p))


@dataclass(frozen=True)
class Provenance:
    """Where a matrix came from and how it was read."""

    source: str  # what the user asked for (alias, path, hub id)
    format: str  # "gguf", "safetensors", "pytorch-bin", "tokenizer"
    files: tuple[FileInfo, ...]
    input_tensor: str  # name of the input-embedding tensor in the checkpoint
    output_tensor: str | None  # name of the untied output matrix, None when tied / absent
    dtype: str  # storage type of the input embedding (e.g. "Q8_0", "BF16", "F32")
    method: str  # how the tensors were located / read
    notes: tuple[str, ...] = ()
    seconds: float = 0.0
    bytes_read: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ModelEmbeddings:
    """Input embedding ``(V, D)`` float32, optional untied output matrix ``(V', D)``, the token
    table (``len(tokens) == V``) and provenance. ``config`` holds model facts (architecture,
    hidden size, tokenizer scheme) for reports.

    ``reader``: for a GGUF source, the parsed file (``anomtok.loading.gguf_reader.GGUFFile``) the
    matrices came from. ``load_causal_lm(..., embeddings=emb)`` of the same, unchanged files reuses
    its metadata and its embedding matrices (the model's embedding then shares memory with
    ``input``) instead of reading them again."""

    input: torch.Tensor
    output: torch.Tensor | None
    tokens: TokenTable
    provenance: Provenance
    config: dict[str, Any] = field(default_factory=dict)
    reader: Any = field(default=None, repr=False, compare=False)

    @property
    def tied(self) -> bool:
        return self.output is None

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.input.shape[0]), int(self.input.shape[1]))

    def __repr__(self) -> str:
        out = "tied" if self.output is None else f"untied output {tuple(self.output.shape)}"
        return (
            f"ModelEmbeddings({self.provenance.source!r}, input {self.shape}, {out}, "
            f"{self.tokens.n_vocab} tokens, {self.provenance.format}/{self.provenance.dtype})"
        )
