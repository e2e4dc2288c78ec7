"""anomtok: find the blind spots of a language model's vocabulary (under-trained "glitch" tokens).

>>> import anomtok
>>> emb = anomtok.load("smollm2-135m")          # any alias, .gguf, .safetensors, folder or hub id
>>> ranking = anomtok.rank(emb, out_dir="out")   # every token, rank 1 = most suspicious
>>> anomtok.nearest(emb, k=20)                   # the 20 tokens nearest to the centroid
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from ._version import __version__

# Public names and the module that owns each: imported on first use (PEP 562), so that
# ``import anomtok`` and ``anomtok --help`` do not pay for torch, transformers or polars.
_LAZY = {
    "load": "loading",
    "rank": "api",
    "nearest": "api",
    "RankOptions": "ranking",
    "Ranking": "ranking",
    "ModelEmbeddings": "embeddings",
    "Provenance": "embeddings",
    "FileInfo": "embeddings",
    "TokenTable": "tokens",
    "AnomtokError": "errors",
    "LoadError": "errors",
    "InputError": "errors",
}

if TYPE_CHECKING:  # pragma: no cover
    from .api import nearest, rank
    from .embeddings import FileInfo, ModelEmbeddings, Provenance
    from .errors import AnomtokError, InputError, LoadError
    from .loading import load
    from .ranking import RankOptions, Ranking
    from .tokens import TokenTable


def __getattr__(name: str) -> Any:
    owner = _LAZY.get(name)
    if owner is None:
        raise AttributeError(f"module 'anomtok' has no attribute {name!r}")
    value = getattr(import_module(f".{owner}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "__version__",
    "load",
    "rank",
    "nearest",
    "RankOptions",
    "Ranking",
    "ModelEmbeddings",
    "Provenance",
    "FileInfo",
    "TokenTable",
    "AnomtokError",
    "LoadError",
    "InputError",
]
