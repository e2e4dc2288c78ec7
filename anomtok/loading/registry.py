"""Sources and the loaders behind them: a spec is classified once, then a registry keyed by the
kind of source picks the loader.

``Source.of(spec)`` classifies a spec (a packaged alias, a path or a hub id) into one of
``SOURCE_KINDS``:

* ``gguf``: a ``.gguf`` file (by suffix or magic), or the ordered chunks of one;
* ``safetensors``: a single ``.safetensors`` file;
* ``folder``: a folder (a Hugging Face model folder, or one holding a single ``.gguf``);
* ``tokenizer``: a ``tokenizer.json`` or SentencePiece ``.model`` file, nothing else;
* ``hub``: a Hugging Face hub id (``org/name``) that is not a local path;
* ``file``: a packaged alias's file of no other kind.

A packaged alias (``anomtok/data/packaged_models.json``) is classified by the files its package
ships and keeps its name in ``Source.alias``, so a loader that treats aliases apart accepts
``source.alias``.

A ``Loader`` turns sources into one kind of object; a ``Registry`` maps each source kind to its
loaders, tried in order (the first that ``accepts`` the source loads it), and says why it refuses a
source no loader accepts. Three registries: embeddings (``anomtok.loading.EMBEDDINGS``, behind
``anomtok.load``), tokenizers (``anomtok.audit.source``) and causal LMs
(``anomtok.generation.model``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from ..errors import LoadError
from .packaged import packaged_models, resolve_alias

__all__ = ["SOURCE_KINDS", "Source", "resolve_source", "Loader", "FunctionLoader", "Registry"]

SOURCE_KINDS = ("gguf", "safetensors", "folder", "tokenizer", "hub", "file")

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


@dataclass(frozen=True)
class Source:
    """A classified spec: ``kind`` (one of ``SOURCE_KINDS``), its local ``paths`` (none for a hub
    id) and, for a packaged alias, the ``alias``."""

    spec: str
    kind: str
    paths: tuple[Path, ...] = ()
    alias: str | None = None

    @property
    def path(self) -> Path:
        """The first (usually only) path."""
        return self.paths[0]

    @classmethod
    def of(cls, spec: str | os.PathLike[str]) -> Source:
        """Classify ``spec``; ``LoadError`` when it is no file, folder, alias or hub id."""
        text = str(spec)
        if text in packaged_models():
            paths = tuple(resolve_alias(text))
            return cls(text, _alias_kind(paths), paths, alias=text)
        path = Path(text).expanduser()
        if path.exists():
            return cls(text, _path_kind(path), (path,))
        if _HUB_ID.match(text) and not text.startswith((".", "/", "~")):
            return cls(text, "hub")
        raise LoadError(
            f"{text}: no such file or folder, and not a packaged alias ({', '.join(packaged_models())}) or hub id"
        )


def _alias_kind(paths: tuple[Path, ...]) -> str:
    p = paths[0]
    if len(paths) > 1 or p.suffix == ".gguf":
        return "gguf"
    if p.is_dir():
        return "folder"
    if p.name.endswith(".json"):
        return "tokenizer"
    return "file"


def _path_kind(path: Path) -> str:
    if path.is_dir():
        return "folder"
    if path.suffix == ".gguf":
        return "gguf"
    if path.suffix == ".safetensors":
        return "safetensors"
    if path.suffix in (".json", ".model"):
        return "tokenizer"
    with path.open("rb") as f:
        magic = f.read(4)
    if magic == b"GGUF":
        return "gguf"
    raise LoadError(f"{path}: unknown format (expected .gguf, .safetensors, a model folder or a tokenizer)")


def resolve_source(spec: str | os.PathLike[str]) -> tuple[str, list[Path]]:
    """(kind, paths) for a spec, where kind is one of ``SOURCE_KINDS`` (see ``Source.of``)."""
    source = Source.of(spec)
    return source.kind, list(source.paths)


@runtime_checkable
class Loader(Protocol[T_co]):
    """Reads some sources into one kind of object."""

    def accepts(self, source: Source) -> bool:
        """Whether this loader reads ``source`` (asked only for the kinds it is registered under)."""
        ...

    def load(self, source: Source, **options: Any) -> T_co:
        """The object read from ``source``; ``options`` are the registry's (each loader takes them all)."""
        ...


@dataclass(frozen=True)
class FunctionLoader(Generic[T]):
    """A ``Loader`` from a function ``fn(source, **options)``, accepting the sources ``when`` says
    (every source when ``when`` is None)."""

    fn: Callable[..., T]
    when: Callable[[Source], bool] | None = None

    def accepts(self, source: Source) -> bool:
        return self.when is None or self.when(source)

    def load(self, source: Source, **options: Any) -> T:
        return self.fn(source, **options)


@dataclass(frozen=True)
class Registry(Generic[T]):
    """The loaders of one kind of object, keyed by source kind, and the error for a source that no
    loader accepts (``refuse(source)``: a kind with no loader, or loaders that all decline)."""

    loaders: Mapping[str, Sequence[Loader[T]]]
    refuse: Callable[[Source], Exception]

    def loader_for(self, source: Source) -> Loader[T]:
        for loader in self.loaders.get(source.kind, ()):
            if loader.accepts(source):
                return loader
        raise self.refuse(source)

    def load(self, spec: str | os.PathLike[str] | Source, **options: Any) -> T:
        """Classify ``spec`` (unless it is a ``Source`` already) and load it."""
        source = spec if isinstance(spec, Source) else Source.of(spec)
        return self.loader_for(source).load(source, **options)
