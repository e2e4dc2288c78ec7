"""A minimal, fast GGUF reader (pure Python + numpy) for the few tensors anomtok needs.

Why not ``gguf.GGUFReader``?  It memory-maps the file and builds a numpy view for every element
of every metadata array, which takes ~10 s on a 262k-token vocabulary, and its dequantizers
work on groups of 16 rows at a time.  anomtok only needs the metadata (tokenizer vocabulary)
and one or two tensors (the input embedding), so this reader:

* parses the header, all metadata key/values and the tensor-info table eagerly, from one
  growing buffered read (string arrays in a tight loop, numeric arrays with ``np.frombuffer``);
* reads the bytes of a tensor only when :meth:`GGUFFile.read_tensor` asks for it
  (``nbytes_read`` counts them);
* accepts either one ``.gguf`` file or the ordered raw chunks of one file (as produced by
  ``split -b``), reading across chunk boundaries without assembling the file;
* dequantizes F32/F16/BF16/Q8_0/Q4_0/Q4_1/Q5_0/Q5_1/Q4_K/Q6_K with vectorised numpy
  (``anomtok.loading.gguf_quants``; in threads: numpy releases the GIL), bit-identical to
  ``gguf.quants.dequantize``, and falls back to ``gguf.quants`` for any other type;
* turns every malformation (truncation, bad magic, absurd lengths, unknown types...) into a
  one-line :class:`anomtok.errors.LoadError` naming the file.

Only little-endian GGUF v2/v3 is supported (what llama.cpp has written since 2023).
"""

from __future__ import annotations

import difflib
import math
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from anomtok.errors import LoadError

from .gguf_quants import DEQUANTIZERS, PIECE_ELEMS, empty_array, ggml_type, run_parallel

__all__ = ["GGUFFile", "TensorInfo"]

_MAGIC = b"GGUF"
_SUPPORTED_VERSIONS = (2, 3)
_MAX_DIMS = 8  # ggml uses 4; anything above this is corruption
_MAX_NESTING = 8
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_HEADER = struct.Struct("<4sIQQ")

# GGUF metadata value types: scalar struct formats and numpy dtypes for arrays.
_STRING, _ARRAY, _BOOL = 8, 9, 7
_SCALAR_FMT = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<B", 10: "<Q", 11: "<q", 12: "<d"}
_SCALAR = {k: struct.Struct(v) for k, v in _SCALAR_FMT.items()}
_NP_DTYPE = {k: np.dtype(v) for k, v in _SCALAR_FMT.items()}


@dataclass(frozen=True)
class TensorInfo:
    """One entry of the tensor-info table. ``shape`` is in numpy order (GGUF dims reversed);
    ``offset`` is absolute in the (logical, possibly chunked) file; ``nbytes`` is 0 for a ggml
    type this reader does not know."""

    name: str
    shape: tuple[int, ...]
    ggml_type: str
    offset: int
    nbytes: int


class _ConcatFile:
    """Random access over the concatenation of one or more files, without copying them."""

    def __init__(self, paths: list[Path], label: str) -> None:
        self.label, self.paths = label, paths
        self.stamps: list[tuple[int, int]] = []
        self.starts: list[int] = []
        self.sizes: list[int] = []
        self.size = 0
        for p in paths:
            try:
                if not p.is_file():
                    raise LoadError(f"GGUF file not found (or not a regular file): {p}")
                st = p.stat()
                self.starts.append(self.size)
                self.sizes.append(st.st_size)
                self.stamps.append((st.st_size, st.st_mtime_ns))
            except OSError as e:
                raise LoadError(f"cannot access GGUF file {p}: {e}") from e
            self.size += self.sizes[-1]

    def readinto(self, offset: int, out: memoryview) -> None:
        """Fill ``out`` with the bytes at ``offset``; LoadError if the files end first."""
        want, done = len(out), 0
        try:
            for path, start, size in zip(self.paths, self.starts, self.sizes):
                pos = offset + done
                if done == want or pos < start:
                    break
                if pos >= start + size:
                    continue
                stop = done + min(want - done, start + size - pos)
                with open(path, "rb") as f:
                    f.seek(pos - start)
                    while done < stop:
                        n = f.readinto(out[done:stop])
                        if not n:
                            break
                        done += n
                if done < stop:
                    break
        except OSError as e:
            raise LoadError(f"cannot read {self.label}: {e}") from e
        if done < want:
            raise LoadError(f"truncated GGUF file {self.label}: wanted {want} bytes at offset {offset}, got {done}")

    def read(self, offset: int, n: int) -> bytes:
        buf = bytearray(n)
        self.readinto(offset, memoryview(buf))
        return bytes(buf)


def _stamps(paths: list[Path]) -> list[tuple[int, int]]:
    return [(st.st_size, st.st_mtime_ns) for st in (p.stat() for p in paths)]


class _HeaderParser:
    """Sequential parser over a buffer that grows (by doubling) as parsing needs more bytes."""

    def __init__(self, src: _ConcatFile) -> None:
        self.src, self.size, self.label = src, src.size, src.label
        self.buf, self.pos = b"", 0

    def fail(self, what: str) -> LoadError:
        return LoadError(f"corrupt GGUF file {self.label}: {what} (at offset {self.pos})")

    def need(self, n: int, what: str) -> None:
        end = self.pos + n
        if end <= len(self.buf):
            return
        if end > self.size:
            raise LoadError(
                f"truncated GGUF file {self.label}: {what} at offset {self.pos} needs {n} bytes, file has {self.size}"
            )
        new_len = min(self.size, max(end, 2 * len(self.buf), 1 << 20))
        self.buf += self.src.read(len(self.buf), new_len - len(self.buf))

    def check_count(self, count: int, min_size: int, what: str) -> None:
        if count * min_size > self.size - self.pos:
            raise LoadError(
                f"truncated or corrupt GGUF file {self.label}: {what} {count} at offset {self.pos} "
                f"does not fit in the file ({self.size} bytes)"
            )

    def scalar(self, st: struct.Struct, what: str) -> Any:
        self.need(st.size, what)
        (v,) = st.unpack_from(self.buf, self.pos)
        self.pos += st.size
        return v

    def string(self, what: str) -> str:
        n = self.scalar(_U64, f"{what} length")
        self.check_count(n, 1, f"{what} length")
        self.need(n, what)
        s = self.buf[self.pos : self.pos + n].decode("utf-8", "surrogateescape")
        self.pos += n
        return s

    def string_array(self, count: int) -> list[str]:
        """The hot loop (262k tokens): one bounds check per string, buffer grown on the slow path."""
        self.check_count(count, 8, "string array count")
        out: list[str] = []
        append, unpack = out.append, _U64.unpack_from
        if count:
            self.need(8, "string length")
        buf, pos, blen = self.buf, self.pos, len(self.buf)
        for i in range(count):  # invariant: the next 8-byte length is inside buf
            (n,) = unpack(buf, pos)
            pos += 8
            end = pos + n
            if end + 8 > blen:
                self.pos = pos
                self.check_count(n, 1, "string length")
                self.need(n + 8 if i + 1 < count else n, "string")
                buf, blen = self.buf, len(self.buf)
            append(buf[pos:end].decode("utf-8", "surrogateescape"))
            pos = end
        self.pos = pos
        return out

    def value(self, vtype: int, depth: int = 0) -> Any:
        if vtype == _STRING:
            return self.string("string value")
        if vtype == _BOOL:
            return bool(self.scalar(_SCALAR[_BOOL], "bool value"))
        if vtype in _SCALAR:
            return self.scalar(_SCALAR[vtype], "value")
        if vtype != _ARRAY:
            raise self.fail(f"unknown metadata value type {vtype}")
        etype = self.scalar(_U32, "array type")
        count = self.scalar(_U64, "array count")
        if etype == _STRING:
            return self.string_array(count)
        if etype in _NP_DTYPE:
            dt = _NP_DTYPE[etype]
            self.check_count(count, dt.itemsize, "array count")
            self.need(count * dt.itemsize, "array")
            arr = np.frombuffer(self.buf, dtype=dt, count=count, offset=self.pos).copy()
            self.pos += count * dt.itemsize
            return arr.astype(bool) if etype == _BOOL else arr
        if etype == _ARRAY and depth < _MAX_NESTING:
            self.check_count(count, 12, "array count")
            return [self.value(_ARRAY, depth + 1) for _ in range(count)]
        raise self.fail(f"unsupported metadata array element type {etype}")


class GGUFFile:
    """A parsed GGUF file: header, metadata and tensor table are read on construction, tensor data
    only on demand. ``paths`` is one .gguf file or the ordered raw chunks of one (``split -b``).

    Attributes: ``version``; ``metadata`` (key -> int/float/bool/str, string arrays -> list[str]
    decoded with ``surrogateescape``, numeric arrays -> numpy arrays); ``tensors`` (name ->
    TensorInfo); ``data_offset`` (start of the tensor data); ``nbytes_read`` (tensor bytes read).

    ``read_tensor(name, keep=True)`` keeps the array it returns, and later reads of that tensor
    return the same array: the embedding loader keeps the embedding, so a model built from the same
    parsed file (``anomtok.loading.gguf_torch``) shares it instead of reading it again.
    """

    version: int
    metadata: dict[str, Any]
    tensors: dict[str, TensorInfo]
    nbytes_read: int

    def __init__(self, paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> None:
        single = isinstance(paths, (str, os.PathLike))
        path_list = [Path(paths)] if single else [Path(p) for p in paths]  # type: ignore[arg-type]
        if not path_list:
            raise LoadError("no GGUF file given (empty list of chunks)")
        label = str(path_list[0]) + (f" (+{len(path_list) - 1} more chunks)" if len(path_list) > 1 else "")
        self.paths, self.label, self.nbytes_read = path_list, label, 0
        self._src = _ConcatFile(path_list, label)
        self._specs: dict[str, tuple[str, int, int] | None] = {}
        self._kept: dict[str, np.ndarray] = {}
        try:
            self._parse()
        except (struct.error, IndexError, ValueError, UnicodeDecodeError, OverflowError, MemoryError) as e:
            raise LoadError(f"corrupt GGUF file {label}: {type(e).__name__}: {e}") from e

    def _parse(self) -> None:
        p = _HeaderParser(self._src)
        if p.size < 4 or p.src.read(0, 4) != _MAGIC:
            raise LoadError(f"not a GGUF file (bad magic): {self.label}")
        p.need(_HEADER.size, "header")
        _, version, n_tensors, n_kv = _HEADER.unpack_from(p.buf, 0)
        p.pos = _HEADER.size
        if version not in _SUPPORTED_VERSIONS:
            hint = " (big-endian GGUF is not supported)" if version & 0xFFFF == 0 else ""
            raise LoadError(f"unsupported GGUF version {version}{hint} in {self.label}; expected 2 or 3")
        self.version = version
        p.check_count(n_kv, 13, "metadata count")
        p.check_count(n_tensors, 24, "tensor count")

        self.metadata = {}
        for _ in range(n_kv):
            key = p.string("metadata key")
            vtype = p.scalar(_U32, f"type of metadata {key!r}")
            if key in self.metadata:
                raise p.fail(f"duplicate metadata key {key!r}")
            self.metadata[key] = p.value(vtype)

        raw_infos = []
        for _ in range(n_tensors):
            name = p.string("tensor name")
            n_dims = p.scalar(_U32, f"dims of tensor {name!r}")
            if n_dims > _MAX_DIMS:
                raise p.fail(f"tensor {name!r} has {n_dims} dimensions")
            p.need(8 * n_dims, f"shape of tensor {name!r}")
            dims = struct.unpack_from(f"<{n_dims}Q", p.buf, p.pos)
            p.pos += 8 * n_dims
            type_id = p.scalar(_U32, f"type of tensor {name!r}")
            offset = p.scalar(_U64, f"offset of tensor {name!r}")
            raw_infos.append((name, dims, type_id, offset))

        alignment = self.metadata.get("general.alignment", 32)
        if isinstance(alignment, bool) or not isinstance(alignment, int) or alignment <= 0:
            raise LoadError(f"corrupt GGUF file {self.label}: bad general.alignment {alignment!r}")
        data_start = -(-p.pos // alignment) * alignment
        self.data_offset = data_start

        self.tensors = {}
        for name, dims, type_id, offset in raw_infos:
            if name in self.tensors:
                raise p.fail(f"duplicate tensor name {name!r}")
            spec, nbytes = ggml_type(type_id), 0
            if spec is not None:
                if (dims[0] if dims else 1) % spec[1]:
                    raise p.fail(f"tensor {name!r} row size is not a multiple of the {spec[0]} block size")
                nbytes = math.prod(dims) // spec[1] * spec[2]
            if offset % alignment:
                raise p.fail(f"tensor {name!r} data offset {offset} is not a multiple of the alignment {alignment}")
            start = data_start + offset
            if start + nbytes > p.size:
                raise LoadError(
                    f"truncated GGUF file {self.label}: tensor {name!r} needs bytes up to "
                    f"{start + nbytes}, file has {p.size}"
                )
            type_name = spec[0] if spec else f"unknown_type_{type_id}"
            self.tensors[name] = TensorInfo(name, tuple(reversed(dims)), type_name, start, nbytes)
            self._specs[name] = spec
        spans = sorted((t.offset, t.offset + t.nbytes, t.name) for t in self.tensors.values() if t.nbytes)
        for (_, end, a), (start, _, b) in zip(spans, spans[1:]):
            if start < end:
                raise p.fail(f"the data of tensors {a!r} and {b!r} overlap")

    def unchanged(self) -> bool:
        """Whether every file still has the size and modification time it had when parsed."""
        try:
            return self._src.stamps == _stamps(self.paths)
        except OSError:
            return False

    def __repr__(self) -> str:
        n_kv, n_t = len(self.metadata), len(self.tensors)
        return f"GGUFFile({self.label!r}, version={self.version}, {n_kv} keys, {n_t} tensors)"

    def _info(self, name: str) -> tuple[TensorInfo, tuple[str, int, int]]:
        info = self.tensors.get(name)
        if info is None:
            close = difflib.get_close_matches(name, list(self.tensors), n=5, cutoff=0.4) or list(self.tensors)[:5]
            raise LoadError(f"no tensor {name!r} in {self.label}; close names: {', '.join(close) or '(none)'}")
        spec = self._specs[name]
        if spec is None:
            raise LoadError(f"tensor {name!r} in {self.label} has an unknown ggml type ({info.ggml_type})")
        return info, spec

    def _read_raw(self, info: TensorInfo) -> np.ndarray:
        out = np.empty(info.nbytes, dtype=np.uint8)
        self._src.readinto(info.offset, memoryview(out))
        self.nbytes_read += info.nbytes
        return out

    def raw_tensor_bytes(self, name: str) -> memoryview:
        """The undecoded bytes of a tensor (ggml layout)."""
        return memoryview(self._read_raw(self._info(name)[0]))

    def read_tensor(self, name: str, keep: bool = False) -> np.ndarray:
        """The tensor as float32, shape in numpy order (e.g. token_embd -> (n_vocab, n_embd)).
        ``keep``: keep the array, and return it to every later read of ``name`` (see the class)."""
        if name in self._kept:
            return self._kept[name]
        out = self._read_tensor(name)
        if keep:
            self._kept[name] = out
        return out

    def _read_tensor(self, name: str) -> np.ndarray:
        info, (type_name, block, tsize) = self._info(name)
        fn = DEQUANTIZERS.get(type_name)
        if fn is None:
            return self._fallback(self._read_raw(info), info, type_name)
        n_blocks = info.nbytes // tsize
        out = empty_array((n_blocks, block), np.float32)
        step = max(1, PIECE_ELEMS // block)

        def work(start: int) -> None:  # read a piece into a small buffer, dequantize into `out`
            stop = min(n_blocks, start + step)
            raw = np.empty((stop - start) * tsize, dtype=np.uint8)
            self._src.readinto(info.offset + start * tsize, memoryview(raw))
            with np.errstate(all="ignore"):  # corrupt scales give inf/NaN; callers check for NaN
                fn(raw.reshape(-1, tsize), out[start:stop])

        run_parallel(work, range(0, n_blocks, step))
        self.nbytes_read += info.nbytes
        return out.reshape(info.shape)

    def _fallback(self, raw: np.ndarray, info: TensorInfo, type_name: str) -> np.ndarray:
        try:
            from gguf.constants import GGMLQuantizationType
            from gguf.quants import dequantize

            rows = raw.reshape(-1, info.nbytes // max(1, math.prod(info.shape[:-1])))
            out = dequantize(rows, GGMLQuantizationType[type_name])
            return np.asarray(out, dtype=np.float32).reshape(info.shape)
        except Exception as e:  # noqa: BLE001 - third-party code: any failure is a load error
            raise LoadError(f"tensor {info.name!r} in {self.label}: unsupported ggml type {type_name} ({e})") from e
