"""ggml tensor types and their vectorised numpy dequantizers (used by ``anomtok.loading.gguf_reader``).

Each dequantizer takes the blocks of a tensor as ``uint8`` of shape ``(n, type_size)`` and writes
``float32`` of shape ``(n, block_size)``; each mirrors the arithmetic of ``gguf.quants`` exactly, so
the results are bit-identical. Other types are left to ``gguf.quants`` by the reader.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

__all__ = ["GGML_TYPES", "ggml_type", "DEQUANTIZERS", "PIECE_ELEMS", "run_parallel", "empty_array"]

# ggml type id -> (name, elements per block, bytes per block); same values as gguf.constants.
GGML_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4),
    1: ("F16", 1, 2),
    2: ("Q4_0", 32, 18),
    3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22),
    7: ("Q5_1", 32, 24),
    8: ("Q8_0", 32, 34),
    9: ("Q8_1", 32, 40),
    10: ("Q2_K", 256, 84),
    11: ("Q3_K", 256, 110),
    12: ("Q4_K", 256, 144),
    13: ("Q5_K", 256, 176),
    14: ("Q6_K", 256, 210),
    15: ("Q8_K", 256, 292),
    24: ("I8", 1, 1),
    25: ("I16", 1, 2),
    26: ("I32", 1, 4),
    27: ("I64", 1, 8),
    28: ("F64", 1, 8),
    30: ("BF16", 1, 2),
}


def ggml_type(type_id: int) -> tuple[str, int, int] | None:
    """Name/block size/type size of a ggml type id; consults the gguf package for rare types."""
    if type_id in GGML_TYPES:
        return GGML_TYPES[type_id]
    try:
        from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

        qtype = GGMLQuantizationType(type_id)
        return (qtype.name, *GGML_QUANT_SIZES[qtype])
    except (ImportError, ValueError, KeyError):
        return None


# ---- dequantizers: (blocks uint8 (n, type_size), out float32 (n, block_size)) -> None ----
# Each mirrors the arithmetic of gguf.quants exactly, so results are bit-identical.


def _f16(a: np.ndarray) -> np.ndarray:
    return a.view("<f2").astype(np.float32)


def _plain(dtype: str) -> Callable[[np.ndarray, np.ndarray], None]:
    def fn(b: np.ndarray, out: np.ndarray) -> None:
        out[...] = b.view(dtype)

    return fn


def _bf16(b: np.ndarray, out: np.ndarray) -> None:
    np.left_shift(b.view("<u2"), 16, out=out.view(np.uint32), dtype=np.uint32)


def _nibbles(qs: np.ndarray) -> np.ndarray:
    """(n, 16) packed bytes -> (n, 32) uint8: low nibbles first, then high nibbles."""
    q = np.empty((qs.shape[0], 32), dtype=np.uint8)
    np.bitwise_and(qs, 0x0F, out=q[:, :16])
    np.right_shift(qs, 4, out=q[:, 16:])
    return q


def _q8_0(b: np.ndarray, out: np.ndarray) -> None:
    np.multiply(b[:, 2:].view(np.int8), _f16(b[:, :2]), out=out)


def _q4_0(b: np.ndarray, out: np.ndarray) -> None:
    np.multiply(_nibbles(b[:, 2:]).view(np.int8) - np.int8(8), _f16(b[:, :2]), out=out)


def _q4_1(b: np.ndarray, out: np.ndarray) -> None:
    np.multiply(_nibbles(b[:, 4:]), _f16(b[:, :2]), out=out)
    out += _f16(b[:, 2:4])


def _q5(b: np.ndarray, qh_at: int) -> np.ndarray:
    q = _nibbles(b[:, qh_at + 4 :])
    q |= np.unpackbits(b[:, qh_at : qh_at + 4], axis=1, bitorder="little") << np.uint8(4)
    return q


def _q5_0(b: np.ndarray, out: np.ndarray) -> None:
    np.multiply(_q5(b, 2).view(np.int8) - np.int8(16), _f16(b[:, :2]), out=out)


def _q5_1(b: np.ndarray, out: np.ndarray) -> None:
    np.multiply(_q5(b, 4), _f16(b[:, :2]), out=out)
    out += _f16(b[:, 2:4])


def _q4_k(b: np.ndarray, out: np.ndarray) -> None:
    n = b.shape[0]
    d, dmin = _f16(b[:, 0:2]), _f16(b[:, 2:4])
    s = b[:, 4:16].reshape(n, 3, 4)
    sd, sm, smd = s[:, 0], s[:, 1], s[:, 2]
    sc = np.concatenate([sd & 0x3F, (smd & 0x0F) | ((sd >> 2) & 0x30)], axis=-1)
    mn = np.concatenate([sm & 0x3F, (smd >> 4) | ((sm >> 2) & 0x30)], axis=-1)
    dsc = (d * sc.astype(np.float32)).reshape(n, 8, 1)
    dm = (dmin * mn.astype(np.float32)).reshape(n, 8, 1)
    qs = b[:, 16:].reshape(n, 4, 1, 32) >> np.array([0, 4], dtype=np.uint8).reshape(1, 1, 2, 1)
    q = (qs & np.uint8(0x0F)).reshape(n, 8, 32)
    o = out.reshape(n, 8, 32)
    np.multiply(dsc, q, out=o)
    o -= dm


def _q6_k(b: np.ndarray, out: np.ndarray) -> None:
    n = b.shape[0]
    ql = b[:, :128].reshape(n, 2, 1, 64) >> np.array([0, 4], dtype=np.uint8).reshape(1, 1, 2, 1)
    ql = (ql & np.uint8(0x0F)).reshape(n, 8, 32)
    qh = b[:, 128:192].reshape(n, 2, 1, 32) >> np.array([0, 2, 4, 6], dtype=np.uint8).reshape(1, 1, 4, 1)
    qh = (qh & np.uint8(0x03)).reshape(n, 8, 32)
    q = (ql | (qh << np.uint8(4))).view(np.int8) - np.int8(32)
    d = (_f16(b[:, 208:210]) * b[:, 192:208].view(np.int8).astype(np.float32)).reshape(n, 16, 1)
    np.multiply(d, q.reshape(n, 16, 16), out=out.reshape(n, 16, 16))


DEQUANTIZERS: dict[str, Callable[[np.ndarray, np.ndarray], None]] = {
    "F32": _plain("<f4"),
    "F16": _plain("<f2"),
    "F64": _plain("<f8"),
    "BF16": _bf16,
    "I8": _plain("i1"),
    "I16": _plain("<i2"),
    "I32": _plain("<i4"),
    "I64": _plain("<i8"),
    "Q8_0": _q8_0,
    "Q4_0": _q4_0,
    "Q4_1": _q4_1,
    "Q5_0": _q5_0,
    "Q5_1": _q5_1,
    "Q4_K": _q4_k,
    "Q6_K": _q6_k,
}

# numpy asks the kernel for transparent huge pages (madvise) for every allocation from 4 MiB up.
# On the 2-core VM the benchmarks ran on, first touching 671 MB so allocated (Gemma's float32
# embedding) cost 0.07 to 1.5 s of system time (the kernel compacting memory to find huge pages),
# against a steady 0.22 to 0.45 s with ordinary 4 KiB pages faulted in one at a time, and 0.23 s
# with the mapping populated when it is made (MAP_POPULATE; see bench/README.md, bench_lookup.py).
_OWN_MAPPING_BYTES = 1 << 22
_POPULATE = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_POPULATE", 0)


def empty_array(shape: tuple[int, ...], dtype: np.dtype | type = np.float32) -> np.ndarray:
    """An uninitialised array; from 4 MiB up on an anonymous memory mapping of its own (ordinary
    pages, populated at once, freed when the array is), instead of numpy's huge-page allocation."""
    dt = np.dtype(dtype)
    n = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
    if n < _OWN_MAPPING_BYTES:
        return np.empty(shape, dtype=dt)
    return np.frombuffer(mmap.mmap(-1, n, flags=_POPULATE), dtype=dt).reshape(shape)


PIECE_ELEMS = 1 << 20  # output floats per work item (4 MiB): small, cache-friendly buffers


def run_parallel(work: Callable[[int], None], items: range) -> None:
    """Run ``work`` over ``items`` in threads (numpy and file reads release the GIL)."""
    workers = min(len(items), os.cpu_count() or 1, 8)
    if workers <= 1:
        for i in items:
            work(i)
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(work, items))
