"""Round-trip and safety tests for anomtok.export (CSV/parquet/meta.json) and the atomic writes
of anomtok.cache it relies on."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import polars as pl
import pytest

from anomtok.cache import atomic_path, atomic_write_bytes, atomic_write_text
from anomtok.errors import InputError
from anomtok.export import read_table, safe_for_spreadsheet, token_bytes, write_csv, write_json, write_ranking
from anomtok.ranking import Ranking
from anomtok.text import display, spreadsheet_safe

FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "|")

HOSTILE_BYTES = [
    b"=SUM(A1)",
    b"=cmd|' /C calc'!A0",
    b"+1",
    b"-1",
    b"-",
    b"@x",
    b"|x",
    b"\tx",
    b"\rx",
    b"\nx",
    b'a"b',
    b'"=1"',
    b"a,b",
    b",",
    "\u202eevil".encode(),
    "a\u2066b".encode(),
    b"\xe3\x81",  # invalid UTF-8 on its own
    b"\xff",
    b"",
    b"'",
    b"ok",
    " 東京".encode(),
    b"\x00",  # hex "00": leading zeros must survive
    b"\x01\x23",  # hex "0123": looks like an integer
    b"\x1e\x10",  # hex "1e10": looks like a float
    b"\x12\x34",  # hex "1234"
    "\ufeff=1".encode(),
]


def _frame(tokens: list[str] | None = None) -> pl.DataFrame:
    n = len(HOSTILE_BYTES)
    return pl.DataFrame(
        {
            "rank": list(range(1, n + 1)),
            "token_id": [1000 + 7 * i for i in range(n)],
            "token": tokens if tokens is not None else [display(b) for b in HOSTILE_BYTES],
            "bytes_hex": [b.hex() for b in HOSTILE_BYTES],
            "kind": ["normal"] * (n - 1) + ["byte"],
            "score": [0.5 - 0.01 * i if i % 5 else None for i in range(n)],
        }
    )


# ----------------------------------------------------------------------------- CSV


def test_csv_round_trip_of_display_forms(tmp_path):
    frame = _frame()
    path = write_csv(frame, tmp_path / "ranked.csv")
    assert path == tmp_path / "ranked.csv"
    back = read_table(path)
    assert back.columns == frame.columns
    assert back["token_id"].dtype == pl.Int64
    assert back["token_id"].to_list() == frame["token_id"].to_list()
    assert back["bytes_hex"].dtype == pl.String
    assert token_bytes(back) == HOSTILE_BYTES
    assert back["rank"].to_list() == frame["rank"].to_list()
    assert back["score"].to_list() == frame["score"].to_list()
    expected = [spreadsheet_safe(display(b)) for b in HOSTILE_BYTES]
    got = ["" if t is None else t for t in back["token"].to_list()]
    assert got == expected
    # known answers for a few rows
    by_bytes = dict(zip(HOSTILE_BYTES, got))
    assert by_bytes[b"=SUM(A1)"] == "'=SUM(A1)"
    assert by_bytes[b"+1"] == "'+1"
    assert by_bytes[b"-"] == "'-"
    assert by_bytes[b"@x"] == "'@x"
    assert by_bytes[b"|x"] == "'|x"
    assert by_bytes[b"\tx"] == "\\tx"  # escaped by display, so no longer a formula start
    assert by_bytes[b"\nx"] == "\\nx"
    assert by_bytes["\u202eevil".encode()] == "\\u202eevil"
    assert by_bytes[b"\xe3\x81"] == "\\xe3\\x81"
    assert by_bytes[b'a"b'] == 'a"b'
    assert by_bytes[b"a,b"] == "a,b"
    assert by_bytes["\ufeff=1".encode()] == "\\ufeff=1"
    for cell in got:
        assert not cell.startswith(FORMULA_START), cell


def test_csv_of_display_forms_is_one_line_per_row_and_has_no_raw_controls(tmp_path):
    frame = _frame()
    path = write_csv(frame, tmp_path / "t.csv")
    raw = path.read_bytes()
    text = raw.decode("utf-8")  # valid UTF-8 even though tokens are not
    assert len(text.splitlines()) == len(frame) + 1
    for bad in ("\u202e", "\u2066", "\t", "\r", "\x00", "\ufeff"):
        assert bad not in text
    # an independent CSV parser sees the same cells
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == frame.columns
    assert [r[2] for r in rows[1:]] == [spreadsheet_safe(display(b)) for b in HOSTILE_BYTES]
    assert [r[3] for r in rows[1:]] == [b.hex() for b in HOSTILE_BYTES]
    for r in rows[1:]:
        for cell in (r[2],):
            assert not cell.startswith(FORMULA_START)


def test_csv_round_trip_of_raw_hostile_strings(tmp_path):
    """A frame whose token column holds raw text (tabs, CR, LF, quotes, commas, bidi) survives."""
    raw_tokens = [b.decode("utf-8", errors="replace") for b in HOSTILE_BYTES]
    frame = _frame(raw_tokens)
    path = write_csv(frame, tmp_path / "raw.csv")
    back = read_table(path)
    got = ["" if t is None else t for t in back["token"].to_list()]
    assert got == [spreadsheet_safe(t) for t in raw_tokens]
    for original, cell in zip(raw_tokens, got):
        if original.startswith(FORMULA_START):
            assert cell == "'" + original
        else:
            assert cell == original
    assert got[raw_tokens.index("\rx")] == "'\rx"
    assert got[raw_tokens.index("\nx")] == "'\nx"
    assert got[raw_tokens.index("\tx")] == "'\tx"
    assert back["token_id"].to_list() == frame["token_id"].to_list()
    assert token_bytes(back) == HOSTILE_BYTES
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert len(rows) == len(frame) + 1
    assert [r[2] for r in rows[1:]] == got


def test_safe_for_spreadsheet_touches_only_the_token_column():
    frame = pl.DataFrame({"token": ["=a", "b", "-c"], "kind": ["=x", "+y", "z"], "token_id": [1, 2, 3]})
    out = safe_for_spreadsheet(frame)
    assert out["token"].to_list() == ["'=a", "b", "'-c"]
    assert out["kind"].to_list() == ["=x", "+y", "z"]
    assert out["token_id"].to_list() == [1, 2, 3]
    assert frame["token"].to_list() == ["=a", "b", "-c"]  # input not modified
    no_token = pl.DataFrame({"a": ["=1"]})
    assert safe_for_spreadsheet(no_token)["a"].to_list() == ["=1"]


def test_token_bytes_known_answer():
    f = pl.DataFrame({"bytes_hex": ["e381", "", None, "00ff", "20e69db1e4baac"]})
    assert token_bytes(f) == [b"\xe3\x81", b"", b"", b"\x00\xff", " 東京".encode()]


# ----------------------------------------------------------------------------- parquet and write_ranking


def _ranking() -> Ranking:
    meta = {
        "anomtok_version": "0.0-test",
        "model": {"name": "tiny 東京"},
        "shape": [len(HOSTILE_BYTES), 4],
        "score": {"reference_size": 3, "reference_kinds": {"unused": 3}},
        "source": Path("/models/x.gguf"),  # not JSON: written with default=str
    }
    return Ranking(frame=_frame(), meta=meta)


def test_write_ranking_makes_exactly_three_files(tmp_path):
    r = _ranking()
    out = tmp_path / "nested" / "out"
    paths = write_ranking(r, out)
    assert paths == {"csv": out / "ranked.csv", "parquet": out / "ranked.parquet", "meta": out / "meta.json"}
    assert sorted(os.listdir(out)) == ["meta.json", "ranked.csv", "ranked.parquet"]
    # parquet keeps the frame exactly (no spreadsheet prefix there)
    pq = read_table(paths["parquet"])
    assert pq.equals(r.frame)
    assert pq["token"].to_list() == [display(b) for b in HOSTILE_BYTES]
    # csv: same ids and bytes, prefixed tokens
    cs = read_table(paths["csv"])
    assert cs["token_id"].to_list() == r.frame["token_id"].to_list()
    assert token_bytes(cs) == token_bytes(pq) == HOSTILE_BYTES
    # meta.json: UTF-8 kept literally, non-JSON values as strings, trailing newline
    text = paths["meta"].read_text(encoding="utf-8")
    assert "tiny 東京" in text and text.endswith("}\n")
    assert json.loads(text) == {**r.meta, "source": "/models/x.gguf"}


def test_write_ranking_twice_overwrites_and_leaves_no_temp_files(tmp_path):
    r = _ranking()
    write_ranking(r, tmp_path)
    r2 = Ranking(frame=r.frame.head(3), meta={"n": 3})
    write_ranking(r2, tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["meta.json", "ranked.csv", "ranked.parquet"]
    assert len(read_table(tmp_path / "ranked.csv")) == 3
    assert read_table(tmp_path / "ranked.parquet").equals(r2.frame)
    assert json.loads((tmp_path / "meta.json").read_text()) == {"n": 3}


def test_write_ranking_into_a_file_is_an_input_error(tmp_path):
    f = tmp_path / "out"
    f.write_text("x")
    with pytest.raises(InputError, match="not a directory"):
        write_ranking(_ranking(), f)
    assert f.read_text() == "x"


def test_write_json(tmp_path):
    p = write_json({"a": "é", "b": [1, 2]}, tmp_path / "m.json")
    assert p.read_bytes() == '{\n  "a": "é",\n  "b": [\n    1,\n    2\n  ]\n}\n'.encode()


# ----------------------------------------------------------------------------- atomicity


class Boom(RuntimeError):
    pass


def test_atomic_path_success_replaces_and_cleans_up(tmp_path):
    target = tmp_path / "sub" / "f.txt"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        assert tmp.name.startswith(".f.txt.") and tmp.name.endswith(".tmp")
        tmp.write_text("new")
        assert not target.exists()  # nothing visible before the block ends
    assert target.read_text() == "new"
    assert os.listdir(target.parent) == ["f.txt"]


def test_atomic_path_exception_leaves_target_absent(tmp_path):
    target = tmp_path / "f.csv"
    with pytest.raises(Boom):
        with atomic_path(target) as tmp:
            tmp.write_text("half a fi")
            raise Boom
    assert os.listdir(tmp_path) == []


def test_atomic_path_exception_leaves_target_unchanged(tmp_path):
    target = tmp_path / "f.csv"
    target.write_bytes(b"old contents")
    with pytest.raises(Boom):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"new but incomplete")
            raise Boom
    assert target.read_bytes() == b"old contents"
    assert os.listdir(tmp_path) == ["f.csv"]


def test_atomic_write_bytes_and_text(tmp_path):
    atomic_write_bytes(tmp_path / "b", b"\x00\xff")
    atomic_write_text(tmp_path / "t", "東京\n")
    assert (tmp_path / "b").read_bytes() == b"\x00\xff"
    assert (tmp_path / "t").read_bytes() == "東京\n".encode()
    assert sorted(os.listdir(tmp_path)) == ["b", "t"]


def _partial_then_fail(self, file, *args, **kwargs):
    Path(file).write_text("token_id,tok")  # a truncated file...
    raise Boom("disk full")  # ...then the writer dies


def test_write_csv_failure_leaves_no_partial_file(tmp_path, monkeypatch):
    monkeypatch.setattr(pl.DataFrame, "write_csv", _partial_then_fail)
    with pytest.raises(Boom):
        write_csv(_frame(), tmp_path / "ranked.csv")
    assert os.listdir(tmp_path) == []


def test_write_csv_failure_keeps_the_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "ranked.csv"
    write_csv(_frame(), target)
    before = target.read_bytes()
    monkeypatch.setattr(pl.DataFrame, "write_csv", _partial_then_fail)
    with pytest.raises(Boom):
        write_csv(_frame().head(1), target)
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ["ranked.csv"]


def test_write_ranking_failure_in_parquet_leaves_no_partial_parquet(tmp_path, monkeypatch):
    monkeypatch.setattr(pl.DataFrame, "write_parquet", _partial_then_fail)
    with pytest.raises(Boom):
        write_ranking(_ranking(), tmp_path)
    # the three files are committed together (issue 10.2): the complete CSV is not published alone
    assert sorted(os.listdir(tmp_path)) == []


def test_atomic_write_respects_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "m.json", "{}")
        (tmp_path / "plain.json").write_text("{}")
    finally:
        os.umask(old)
    assert (tmp_path / "m.json").stat().st_mode & 0o777 == (tmp_path / "plain.json").stat().st_mode & 0o777 == 0o644


# ----------------------------------------------------------------------------- read_table errors


def test_read_table_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_table(tmp_path / "missing.csv")
    assert issubclass(InputError, ValueError)


@pytest.mark.parametrize(
    "name, content",
    [
        ("garbage.csv", b"\x00\xff\xfe\x01garbage\n\xff\xfe"),
        ("garbage.parquet", b"PAR1 this is not parquet at all"),
        ("empty.parquet", b""),
        ("ranked.parquet", b"token_id,token\n1,a\n"),  # a CSV with a parquet name
    ],
)
def test_read_table_garbage_is_an_input_error(tmp_path, name, content):
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(InputError, match="not a readable table"):
        read_table(p)


def test_read_table_directory_is_an_input_error(tmp_path):
    with pytest.raises(InputError):
        read_table(tmp_path)


def test_read_table_text_without_ranking_columns_is_an_input_error(tmp_path):
    p = tmp_path / "notes.csv"
    p.write_text("hello world\nthis is not a ranking\n")
    with pytest.raises(InputError):
        read_table(p)
