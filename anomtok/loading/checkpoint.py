"""The files of a Hugging Face checkpoint: which file holds each tensor, the tensors' shapes and
dtypes, and reading one tensor.

A folder's index comes from ``model.safetensors.index.json``, the safetensors headers (read
without touching tensor data), ``pytorch_model.bin.index.json`` or a lone ``pytorch_model.bin``.
A ``.bin`` file is unpickled only with ``weights_only=True``. Every unreadable or inconsistent
file is a ``LoadError`` naming it.
"""

from __future__ import annotations

import json
import logging
import pickle
import zipfile
from pathlib import Path

import torch

from ..errors import LoadError, first_line

__all__ = [
    "safetensors_keys",
    "weight_map",
    "checkpoint_map",
    "bin_state",
    "read_tensor",
    "tensor_shapes",
    "dtype_of",
    "itemsize",
]

log = logging.getLogger(__name__)


def safetensors_keys(path: Path) -> dict[str, tuple[list[int], str]]:
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


def weight_map(index: Path) -> dict[str, Path]:
    """Tensor name -> shard file, from a sharded checkpoint's index."""
    try:
        wm = json.loads(index.read_text("utf-8"))["weight_map"]
        return {str(k): index.parent / str(v) for k, v in wm.items()}
    except (OSError, ValueError, LookupError, TypeError, AttributeError) as exc:
        raise LoadError(f"{index}: unreadable index ({exc.__class__.__name__}: {first_line(exc)})") from None


def checkpoint_map(folder: Path) -> tuple[dict[str, Path], str]:
    """Tensor name -> file holding it, and the format ("safetensors" or "pytorch-bin")."""
    index = folder / "model.safetensors.index.json"
    if index.exists():
        return weight_map(index), "safetensors"
    files = sorted(folder.glob("*.safetensors"))
    if files:
        return {k: f for f in files for k in safetensors_keys(f)}, "safetensors"
    bindex = folder / "pytorch_model.bin.index.json"
    if bindex.exists():
        return weight_map(bindex), "pytorch-bin"
    if (folder / "pytorch_model.bin").exists():
        path = folder / "pytorch_model.bin"
        return {k: path for k in bin_state(path)}, "pytorch-bin"
    raise LoadError(f"{folder}: no model weights found (no *.safetensors, safetensors index or pytorch_model.bin)")


def bin_state(path: Path) -> dict[str, torch.Tensor]:
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


def read_tensor(path: Path, key: str, fmt: str) -> torch.Tensor:
    """Tensor ``key`` of checkpoint file ``path`` (format ``fmt``) as a contiguous float32 matrix."""
    if fmt == "safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                t = f.get_tensor(key)
        except (SafetensorError, OSError, RuntimeError) as exc:
            raise LoadError(f"{path}: cannot read tensor {key} ({exc})") from None
    else:
        state = bin_state(path)
        if key not in state:
            raise LoadError(f"{path}: no tensor {key}")
        t = state[key]
    return t.detach().to(torch.float32).contiguous()


def tensor_shapes(keymap: dict[str, Path], fmt: str) -> dict[str, list[int]]:
    """Tensor name -> shape for every tensor of the files in ``keymap``."""
    out: dict[str, list[int]] = {}
    if fmt != "safetensors":
        for f in sorted(set(keymap.values())):
            out.update({k: list(v.shape) for k, v in bin_state(f).items() if hasattr(v, "shape")})
        return out
    for f in sorted(set(keymap.values())):
        out.update({k: v[0] for k, v in safetensors_keys(f).items()})
    return out


def dtype_of(path: Path, key: str, fmt: str) -> str:
    """The stored dtype of tensor ``key`` ("F32", "BF16", ...; "torch" for a ``.bin`` file)."""
    if fmt == "safetensors":
        info = safetensors_keys(path).get(key)
        return info[1] if info else "unknown"
    return "torch"


def itemsize(dtype: str) -> int:
    """Bytes per element of a safetensors dtype (4 when unknown)."""
    return {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I8": 1, "U8": 1}.get(dtype, 4)
