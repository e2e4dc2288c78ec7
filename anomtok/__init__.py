"""anomtok: find the blind spots of a language model's vocabulary (under-trained "glitch" tokens).

>>> import anomtok
>>> emb = anomtok.load("smollm2-135m")          # any alias, .gguf, .safetensors, folder or hub id
>>> ranking = anomtok.rank(emb, out_dir="out")   # every token, rank 1 = most suspicious
>>> anomtok.nearest(emb, k=20)                   # the 20 tokens nearest to the centroid
"""

from ._version import __version__
from .api import nearest, rank
from .embeddings import FileInfo, ModelEmbeddings, Provenance
from .errors import AnomtokError, InputError, LoadError
from .loading import load
from .ranking import RankOptions, Ranking
from .tokens import TokenTable

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
