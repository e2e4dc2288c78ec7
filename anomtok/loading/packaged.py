"""Aliases for real models that PyPI packages ship (see ``anomtok/data/packaged_models.json``)."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..cache import cache_dir
from ..errors import LoadError
from ..resources import data_file

__all__ = ["PackagedModel", "packaged_models", "resolve_alias", "materialize_gguf"]


@dataclass(frozen=True)
class PackagedModel:
    alias: str
    description: str
    module: str
    locate: str
    install: str
    causal: bool
    tokenizer_only: bool = False


@lru_cache(maxsize=1)
def packaged_models() -> dict[str, PackagedModel]:
    raw = json.loads(data_file("packaged_models.json").read_text("utf-8"))
    return {k: PackagedModel(alias=k, **v) for k, v in raw.items() if not k.startswith("_")}


def _module_dir(model: PackagedModel) -> Path:
    try:
        spec = importlib.util.find_spec(model.module)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise LoadError(f"{model.alias}: its package is not installed; run: {model.install}")
    return Path(list(spec.submodule_search_locations)[0])


def resolve_alias(alias: str) -> list[Path]:
    """Files of a packaged model: one path (file or folder), or the ordered chunks of one GGUF."""
    model = packaged_models()[alias]
    base = _module_dir(model)
    if model.locate == "gguf-chunks":
        chunks: list[Path] = []
        for i in range(1, 100):
            sub = f"{model.module}_part{i}"
            spec = importlib.util.find_spec(sub)
            if spec is None:
                break
            found = sorted(Path(list(spec.submodule_search_locations)[0]).glob("data/*.part*"))
            chunks.extend(found)
        if not chunks:
            raise LoadError(f"{alias}: the chunk packages are not installed; run: {model.install}")
        return chunks
    path = base / model.locate
    if not path.exists():
        raise LoadError(f"{alias}: {path} is missing from the installed package; reinstall with: {model.install}")
    return [path]


def materialize_gguf(alias: str) -> Path:
    """A single GGUF file for an alias (chunked packages are joined once into the user cache,
    checked against the sha256 the package declares). Needed by engines that want one file."""
    paths = resolve_alias(alias)
    if len(paths) == 1:
        return paths[0]
    model = packaged_models()[alias]
    try:
        mod = importlib.import_module(model.module)
    except ImportError as exc:
        raise LoadError(f"{alias}: cannot import {model.module} ({exc}); run: {model.install}") from None
    target = cache_dir() / "packaged" / getattr(mod, "MODEL_NAME", f"{alias}.gguf")
    expected_size = sum(p.stat().st_size for p in paths)
    stamp = target.with_suffix(target.suffix + ".ok")
    if target.exists() and stamp.exists() and target.stat().st_size == expected_size:
        return target
    try:
        out = mod.assemble(output_path=target, overwrite=True)
    except (OSError, ValueError) as exc:
        raise LoadError(f"{alias}: could not assemble the GGUF file: {exc}") from None
    stamp.write_text(str(getattr(mod, "EXPECTED_SHA256", "")))
    return Path(out)
