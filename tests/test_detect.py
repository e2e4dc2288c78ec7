"""The glitch-token detector: known hits, offsets and rates on a hand-made tokenizer, glitch-list
loading, streaming with malformed lines, and the CLI's exit codes.

The tokenizer is a byte-level BPE written out by hand, so every id is known: ids 0-255 are the
bytes (id = byte value), then the merges below, then two added special tokens.
"""

from __future__ import annotations

import gzip
import io
import json

import polars as pl
import pytest
from click.testing import CliRunner

from anomtok.cli import cli
from anomtok.detect import DetectRun, GlitchDetector, GlitchList, Hit, LineError, RecordScan, load_glitch_list
from anomtok.errors import InputError
from anomtok.export import write_csv
from anomtok.text import byte_level_decoder

TOKYO, KYO_PART, ZZ, SPACE_ZZ, BOS, UNUSED0 = 260, 261, 262, 263, 264, 265
GLITCH = [SPACE_ZZ, TOKYO, KYO_PART]  # " zz", "東京", the first two bytes (e3 83) of many katakana


def _byte_level(data: bytes) -> str:
    chars = {b: c for c, b in byte_level_decoder().items()}
    return "".join(chars[b] for b in data)


def make_tokenizer():
    """Byte-level BPE: 256 bytes, then 東 (256-257), 京 (258-259), 東京 (260), e3 83 (261),
    zz (262), space+zz (263); added specials <bos> (264), <unused0> (265)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    vocab = {_byte_level(bytes([b])): b for b in range(256)}
    merges = []

    def merge(left: bytes, right: bytes) -> None:
        a, b = _byte_level(left), _byte_level(right)
        vocab[a + b] = len(vocab)
        merges.append((a, b))

    t = "東京".encode()
    merge(t[0:1], t[1:2]), merge(t[0:2], t[2:3])  # 東 = e6 9d b1
    merge(t[3:4], t[4:5]), merge(t[3:5], t[5:6])  # 京 = e4 ba ac
    merge(t[0:3], t[3:6])  # 東京
    merge(b"\xe3", b"\x83")  # two thirds of ト, ワ, ー, ン...: a token that is never a whole character
    merge(b"z", b"z")
    merge(b" ", b"zz")  # " zz": only when the word follows a space
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken("<bos>", special=True), AddedToken("<unused0>", special=True)])
    return tok


@pytest.fixture(scope="module")
def tok():
    return make_tokenizer()


@pytest.fixture(scope="module")
def det(tok):
    return GlitchDetector(tok, GLITCH)


@pytest.fixture()
def tok_file(tok, tmp_path):
    path = tmp_path / "tokenizer.json"
    tok.save(str(path))
    return path


def ranked_frame() -> pl.DataFrame:
    """A ranked.csv as `anomtok rank` writes it, for the hand-made tokenizer."""
    rows = [  # rank, id, bytes, kind, is_reference, score, flagged
        (1, UNUSED0, b"<unused0>", "unused", True, 0.99, False),
        (2, 0xFF, b"\xff", "byte", True, 0.98, False),
        (3, SPACE_ZZ, b" zz", "normal", False, 0.90, True),
        (4, BOS, b"<bos>", "special", False, 0.85, False),
        (5, TOKYO, "東京".encode(), "normal", False, 0.80, True),
        (6, KYO_PART, b"\xe3\x83", "normal", False, 0.70, False),
        (7, ord("a"), b"a", "byte", False, 0.10, False),
    ]
    return pl.DataFrame(
        {
            "rank": [r[0] for r in rows],
            "token_id": [r[1] for r in rows],
            "token": [r[2].decode("utf-8", "backslashreplace") for r in rows],
            "bytes_hex": [r[2].hex() for r in rows],
            "kind": [r[3] for r in rows],
            "is_reference": [r[4] for r in rows],
            "score": [r[5] for r in rows],
            "flagged": [r[6] for r in rows],
        }
    )


# ---------------------------------------------------------------------------------- scan
def test_token_that_exists_only_in_context(det):
    # " zz" is one token after a space; "zz" alone (or after a non-space) is the other token, 262
    assert det.scan("a zz b") == [Hit(SPACE_ZZ, 1, 4, " zz", " zz", 1, None, None)]
    assert det.scan("zz") == []
    assert det.scan("azz") == []
    r = det.analyze("a zz b")
    assert (r.tokens, r.rate) == (4, 0.25)  # a, " zz", " ", b


def test_japanese_offsets_are_characters_of_the_original_text(det):
    text = "東京タワーの東京"  # タ = e3 82 bf, ワ = e3 83 af, ー = e3 83 bc, の = e3 81 ae
    r = det.analyze(text)
    assert [(h.token_id, h.start, h.end, h.text) for h in r.hits] == [
        (TOKYO, 0, 2, "東京"),
        (KYO_PART, 3, 4, "ワ"),  # the token is two of ワ's three bytes: it spans the whole character
        (KYO_PART, 4, 5, "ー"),
        (TOKYO, 6, 8, "東京"),
    ]
    assert r.tokens == 1 + 3 + 2 + 2 + 3 + 1
    assert r.rate == 4 / 12
    assert r.hits[1].token == "\\xe3\\x83"  # printable form of a partial character
    for h in r.hits:
        assert text[h.start : h.end] == h.text


def test_offsets_are_code_points_not_bytes_or_utf16(det):
    # é is two bytes, 😀 four bytes and two UTF-16 units: all one character each
    assert [(h.start, h.end) for h in det.scan("xé zz😀 zz")] == [(2, 5), (6, 9)]
    assert [(h.start, h.end, h.text) for h in det.scan("a zz\r\n")] == [(1, 4, " zz")]


def test_empty_and_clean_texts(det):
    assert det.analyze("").tokens == 0 and det.analyze("").rate == 0.0
    assert det.scan("plain text, nothing to see") == []
    with pytest.raises(InputError, match="must be a str"):
        det.scan(b"bytes")  # type: ignore[arg-type]


def test_special_token_written_in_the_text(tok):
    # tokenizers match added special tokens in raw text: listed explicitly, a literal one is found
    assert [(h.token_id, h.start, h.end) for h in GlitchDetector(tok, [UNUSED0]).scan("x <unused0> y")] == [
        (UNUSED0, 2, 11)
    ]


def test_scan_many_equals_scan(det):
    texts = ["a zz b", "zz", "東京タワーの東京", "", "xé zz😀 zz"] * 3
    assert det.scan_many(texts) == [det.scan(t) for t in texts]
    assert [r.tokens for r in det.analyze_many(texts)] == [det.analyze(t).tokens for t in texts]


def test_scores_and_ranks_come_from_the_list(tok):
    gl = GlitchList(ids=(SPACE_ZZ,), scores={SPACE_ZZ: 0.9}, ranks={SPACE_ZZ: 3}, bytes={SPACE_ZZ: b" zz"})
    (hit,) = GlitchDetector(tok, gl).scan("a zz")
    assert (hit.score, hit.rank, hit.to_dict()["token_id"]) == (0.9, 3, SPACE_ZZ)


def test_detector_ignores_truncation_and_leaves_the_tokenizer_alone():
    tok = make_tokenizer()
    tok.enable_truncation(max_length=2)
    det = GlitchDetector(tok, [SPACE_ZZ])
    assert [h.start for h in det.scan("a b c d zz")] == [7]
    assert tok.truncation is not None and tok.truncation["max_length"] == 2


def test_list_for_another_tokenizer_is_refused(tok):
    with pytest.raises(InputError, match=r"token id 10000 is not in this tokenizer's vocabulary \(ids 0-265\)"):
        GlitchDetector(tok, [10_000])
    with pytest.raises(InputError, match="token id -1 is not in"):
        GlitchDetector(tok, [-1])
    wrong = GlitchList(ids=(SPACE_ZZ,), bytes={SPACE_ZZ: b"xx"}, source="other.csv")
    with pytest.raises(InputError, match=r"does not match this tokenizer.*id 263 is ⟨xx⟩ in the list, ⟨ zz⟩ here"):
        GlitchDetector(tok, wrong)
    with pytest.raises(InputError, match="empty"):
        GlitchDetector(tok, [])


def test_detector_from_a_tokenizer_file(tok_file):
    det = GlitchDetector(tok_file, [TOKYO])
    assert det.scan("in 東京") == [Hit(TOKYO, 3, 5, "東京", "東京", 3, None, None)]  # i, n, " ", 東京


# ---------------------------------------------------------------------------------- glitch lists
@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_glitch_list_from_a_ranked_table(tmp_path, suffix):
    path = tmp_path / f"ranked.{suffix}"
    write_csv(ranked_frame(), path) if suffix == "csv" else ranked_frame().write_parquet(path)
    gl = load_glitch_list(path)  # default: the flagged rows, never the whole vocabulary (issue 9.6)
    assert gl.ids == (SPACE_ZZ, TOKYO) and "flagged" in gl.why
    assert gl.left_out == {"special/unused/unknown/padding tokens": 2, "UTF-8-invalid bytes": 1, "not flagged": 2}
    assert load_glitch_list(path, top=10).ids == (SPACE_ZZ, TOKYO, KYO_PART, ord("a"))  # rank order
    assert gl.scores[TOKYO] == 0.8 and gl.ranks[TOKYO] == 5 and gl.bytes[TOKYO] == "東京".encode()
    assert load_glitch_list(path, top=2).ids == (SPACE_ZZ, TOKYO)
    assert load_glitch_list(path, min_score=0.75).ids == (SPACE_ZZ, TOKYO)
    assert load_glitch_list(path, top=1, min_score=0.75).ids == (SPACE_ZZ,)
    assert load_glitch_list(path, include_special=True, top=4).ids == (UNUSED0, 0xFF, SPACE_ZZ, BOS)
    unflagged = tmp_path / f"old.{suffix}"
    frame = ranked_frame().drop("flagged")
    write_csv(frame, unflagged) if suffix == "csv" else frame.write_parquet(unflagged)
    with pytest.raises(InputError, match="without a flagged column; pass --top K or --min-score"):
        load_glitch_list(unflagged)
    assert len(load_glitch_list(unflagged, top=3)) == 3
    with pytest.raises(
        InputError,
        match=r"no glitch tokens left \(2 special/unused/unknown/padding tokens, 1 UTF-8-invalid bytes, 4 below --min-score 0.95\)",
    ):
        load_glitch_list(path, min_score=0.95)


def test_glitch_csv_without_rank_is_ordered_by_score(tmp_path):
    frame = ranked_frame().drop("rank", "is_reference", "flagged").sort("token_id")
    write_csv(frame, tmp_path / "glitch.csv")
    assert load_glitch_list(tmp_path / "glitch.csv").ids == (SPACE_ZZ, TOKYO, KYO_PART, ord("a"))


def test_glitch_list_of_plain_ids(tmp_path):
    path = tmp_path / "ids.txt"
    path.write_text("# flagged by hand\n263, 260\n\n261 263  # a repeat\n")
    gl = load_glitch_list(path)
    assert gl.ids == (263, 260, 261) and gl.scores == {}
    assert load_glitch_list(path, top=2).ids == (263, 260)
    with pytest.raises(InputError, match="no scores"):
        load_glitch_list(path, min_score=0.5)
    path.write_text("263\n26O\n")
    with pytest.raises(InputError, match=r"ids.txt:2: '26O' is not a token id"):
        load_glitch_list(path)
    path.write_text("# nothing\n")
    with pytest.raises(InputError, match="no token ids"):
        load_glitch_list(path)


def test_read_token_ids_is_the_one_id_file_reader(tmp_path):
    """The reader behind plain id glitch lists, ``plot --mark-ids`` and scan's negtemp marks."""
    from anomtok.detect import read_token_ids
    from anomtok.maps import read_ids

    (tmp_path / "a.csv").write_text("token_id,count\n7,2\n\n3,1\n7,5\n")
    pl.DataFrame({"token_id": [5, None, 2]}).write_parquet(tmp_path / "a.parquet")
    (tmp_path / "a.json").write_text('{"ids": [4, 4, 1]}')
    (tmp_path / "a.txt").write_text("# c\n9; 8,\t7 # x\n\n9\n")
    for name, ids in [("a.csv", [7, 3, 7]), ("a.parquet", [5, 2]), ("a.json", [4, 4, 1]), ("a.txt", [9, 8, 7, 9])]:
        assert read_token_ids(tmp_path / name) == ids == read_ids(tmp_path / name)
    with pytest.raises(InputError, match=r"a.csv:1: 'token_id' is not a token id"):
        read_token_ids(tmp_path / "a.csv", kind="text")
    (tmp_path / "e.txt").write_text("# only a comment\n")
    assert read_token_ids(tmp_path / "e.txt") == []  # empty is the caller's call (detect refuses it)
    (tmp_path / "sup.txt").write_text("1 \u00b2\n")  # isdigit but not a number int() reads
    with pytest.raises(InputError, match=r"sup.txt:1: '²' is not a token id"):
        read_token_ids(tmp_path / "sup.txt")
    for content, reason in [
        ("text\nhello\n", "ColumnNotFoundError"),
        ("token_id\nx\n", "ComputeError"),
        ("", "NoDataError"),
    ]:
        (tmp_path / "b.csv").write_text(content)
        with pytest.raises(InputError, match=f"b.csv: not a readable table of token ids \\({reason}"):
            read_token_ids(tmp_path / "b.csv")
    (tmp_path / "b.json").write_text('{"other": 1}')
    with pytest.raises(InputError, match="not a list of token ids"):
        read_token_ids(tmp_path / "b.json")
    with pytest.raises(InputError, match="no such file"):
        read_token_ids(tmp_path / "missing.txt")


def test_glitch_list_errors(tmp_path):
    with pytest.raises(InputError, match="no such glitch list file"):
        load_glitch_list(tmp_path / "missing.csv")
    (tmp_path / "t.csv").write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="not an anomtok table"):
        load_glitch_list(tmp_path / "t.csv")
    with pytest.raises(InputError, match="--top"):
        load_glitch_list(tmp_path / "t.csv", top=0)


# ---------------------------------------------------------------------------------- streaming
def _run(det, data: bytes, name: str = "in.txt", **kw) -> tuple[list, DetectRun]:
    run = DetectRun(det, [(name, io.BytesIO(data))], **kw)
    return list(run), run


def test_plain_text_stream_line_by_line(det):
    data = "a zz b\nclean line\n東京タワーの東京\n".encode()
    events, run = _run(det, data)
    assert [(e.line, e.tokens, [(h.token_id, h.start, h.end) for h in e.hits]) for e in events] == [
        (1, 5, [(SPACE_ZZ, 1, 4)]),  # a, " zz", " ", b, "\n"
        (2, 11, []),
        (3, 13, [(TOKYO, 0, 2), (KYO_PART, 3, 4), (KYO_PART, 4, 5), (TOKYO, 6, 8)]),
    ]
    (s,) = run.sources
    assert (s.documents, s.records, s.tokens, s.hits, s.errors) == (1, 3, 29, 5, 0)  # the file is one document
    assert s.rate == s.max_doc_rate == 5 / 29 and s.docs_over == 1 and run.exceeded
    assert run.found == {TOKYO: 2, KYO_PART: 2, SPACE_ZZ: 1}
    assert events[0].hit_dicts()[0] == {
        "type": "hit",
        "source": "in.txt",
        "line": 1,
        "token_id": SPACE_ZZ,
        "start": 1,
        "end": 4,
        "text": " zz",
        "token": " zz",
        "index": 1,
        "score": None,
        "rank": None,
    }


def test_malformed_lines_are_reported_and_the_run_goes_on(det):
    data = b"".join(
        [
            b"\xef\xbb\xbfa zz\n",  # a UTF-8 BOM is not text: dropped
            b"bad \xff\xfe byte\n",  # invalid UTF-8
            "東京\n".encode()[:4] + b"\n",  # a character cut in half
            b"after zz\n",
        ]
    )
    events, run = _run(det, data)
    assert [(type(e).__name__, e.line) for e in events] == [
        ("RecordScan", 1),
        ("LineError", 2),
        ("LineError", 3),
        ("RecordScan", 4),
    ]
    assert events[0].hits[0].start == 1
    assert events[1].error == "invalid UTF-8 (byte 0xff at byte 4)"
    assert events[2].error == "invalid UTF-8 (byte 0xe4 at byte 3)"
    assert [h.text for h in events[3].hits] == [" zz"]
    assert (run.total.records, run.total.errors, run.total.hits) == (2, 2, 2)


def test_a_stray_nul_in_text_is_one_line_error(det):
    events, run = _run(det, b"a zz\nnul \x00 inside\nb zz\n")
    assert [(type(e).__name__, e.line) for e in events] == [("RecordScan", 1), ("LineError", 2), ("RecordScan", 3)]
    assert events[1].error == "binary data (NUL byte at byte 4)"
    # NULs among invalid UTF-8, or NULs in bulk (UTF-16): the whole input is binary, one error
    for data in (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\n" * 3, "a zz\n".encode("utf-16-le")):
        events, _ = _run(det, data)
        assert [(e.line, e.error.split(" (")[0]) for e in events] == [(0, "binary data or UTF-16 text")]


def test_jsonl_records_are_documents_and_bad_records_are_errors(det):
    lines = [
        '{"text": "a zz b", "id": 1}',
        '{"text": "clean"}',
        "",  # blank lines are skipped
        '{"prompt": "no text field"}',
        "{not json",
        "[1, 2]",
        '{"text": 42}',
        '{"text": null}',
        '{"text": "lone \\ud800 surrogate"}',
        '{"text": "東京"}',
    ]
    events, run = _run(det, "\n".join(lines).encode() + b"\n", name="data.jsonl")
    got = [(e.line, e.error) if isinstance(e, LineError) else (e.line, [h.token_id for h in e.hits]) for e in events]
    assert got == [
        (1, [SPACE_ZZ]),
        (2, []),
        (4, "no field 'text'"),
        (5, "bad JSON: Expecting property name enclosed in double quotes (column 2)"),
        (6, "the JSON line is an array, not an object"),
        (7, "field 'text' is a number, not a string"),
        (8, "field 'text' is null, not a string"),
        (9, "field 'text' has an unpaired surrogate (\\ud800)"),
        (10, [TOKYO]),
    ]
    (s,) = run.sources
    assert (s.documents, s.records, s.tokens, s.hits, s.errors, s.docs_with_hits) == (3, 3, 10, 2, 6, 2)
    assert s.max_doc_rate == 1.0 and s.docs_over == 2  # "東京" is one token, and a glitch


def test_jsonl_dotted_field_and_max_rate(det):
    data = b'{"m": [{"c": "a zz b c d e f g"}]}\n{"m": [{"c": "zz zz"}]}\n'
    events, run = _run(det, data, name="chat.jsonl", field="m.0.c", max_rate=0.2)
    assert [len(e.hits) for e in events] == [1, 1]
    (s,) = run.sources
    # rates 1/14 and 1/2 (zz, " zz"): one document above 0.2, though the overall rate 2/16 is below it
    assert (s.tokens, s.docs_over, s.max_doc_rate, run.exceeded) == (16, 1, 0.5, True)
    _, run = _run(det, data, name="chat.jsonl", field="m.0.c", max_rate=0.5)
    assert not run.exceeded


def test_jsonl_chosen_by_suffix_or_forced(det):
    data = b'{"text": "a zz"}\n'
    assert isinstance(_run(det, data, name="x.ndjson")[0][0], RecordScan)
    events, _ = _run(det, data, name="x.txt")  # plain text: the JSON line itself is scanned
    assert events[0].hits[0].start == 11
    events, _ = _run(det, data, name="x.txt", jsonl=True)
    assert events[0].hits[0].start == 1


def test_binary_file_is_one_error_and_the_next_file_is_scanned(det, tmp_path):
    (tmp_path / "blob.bin").write_bytes(bytes(range(256)) * 20)
    (tmp_path / "ok.txt").write_text("a zz\n", encoding="utf-8")
    with gzip.open(tmp_path / "more.txt.gz", "wb") as f:
        f.write("東京\n".encode())
    run = DetectRun(det, [str(tmp_path / "blob.bin"), str(tmp_path / "ok.txt"), str(tmp_path / "more.txt.gz")])
    events = list(run)
    assert isinstance(events[0], LineError) and events[0].line == 0
    assert events[0].error == "binary data or UTF-16 text (NUL byte at byte 0): input skipped"
    assert [[h.token_id for h in e.hits] for e in events[1:]] == [[SPACE_ZZ], [TOKYO]]
    assert [(s.documents, s.errors, s.hits) for s in run.sources] == [(0, 1, 0), (1, 0, 1), (1, 0, 1)]
    assert run.total_bytes() is None  # a .gz input: its size says nothing about the text


def test_overlong_line_is_skipped_without_holding_it(det):
    data = b"a zz\n" + b"x" * 100 + b" zz\n" + b"b zz\n"
    events, _ = _run(det, data, max_line_bytes=16)
    assert [(type(e).__name__, e.line) for e in events] == [("RecordScan", 1), ("LineError", 2), ("RecordScan", 3)]
    assert events[1].error == "line longer than 16 bytes: skipped"


class _Endless(io.RawIOBase):
    """An endless stream of lines: a run must yield results as it reads, not read it all first."""

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        chunk = b"a zz\n" * (len(b) // 5)
        b[: len(chunk)] = chunk
        return len(chunk)


def test_streaming_yields_before_the_end_of_input(det):
    run = DetectRun(det, [("endless", io.BufferedReader(_Endless()))], batch_records=10)
    first = []
    for event in run:
        first.append(event)
        if len(first) == 25:
            break
    assert [e.line for e in first] == list(range(1, 26)) and all(len(e.hits) == 1 for e in first)


def test_run_input_errors(det, tmp_path):
    with pytest.raises(InputError, match="no such file"):
        DetectRun(det, [str(tmp_path / "nope.txt")])
    with pytest.raises(InputError, match="is a directory"):
        DetectRun(det, [str(tmp_path)])
    with pytest.raises(InputError, match="max_rate"):
        DetectRun(det, ["-"], max_rate=-1)


# ---------------------------------------------------------------------------------- CLI
@pytest.fixture()
def runner():
    return CliRunner()


@pytest.fixture()
def files(tmp_path):
    (tmp_path / "ids.txt").write_text(f"{SPACE_ZZ}\n{TOKYO}\n")
    (tmp_path / "clean.txt").write_text("nothing here\nor here\n", encoding="utf-8")
    (tmp_path / "dirty.txt").write_text("clean\n東京 and a zz\n", encoding="utf-8")
    (tmp_path / "data.jsonl").write_bytes(b'{"text": "a zz"}\n{"other": 1}\nnot json\n{"text": "fine"}\n')
    return tmp_path


def _lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def test_cli_clean_exit_0(runner, tok_file, files):
    res = runner.invoke(cli, ["detect", str(tok_file), "--glitch", str(files / "ids.txt"), str(files / "clean.txt")])
    assert res.exit_code == 0, res.output
    assert res.stdout == ""  # no hits
    assert "detect: 2 glitch tokens from" in res.stderr
    table = res.stderr.splitlines()
    header = next(i for i, line in enumerate(table) if line.startswith("source"))
    assert table[header].split() == [
        "source",
        "docs",
        "tokens",
        "hits",
        "rate",
        "docs>max",
        "max",
        "doc",
        "rate",
        "errors",
    ]
    assert table[header + 2].split()[1:] == ["1", "21", "0", "0.000%", "0", "0.000%", "0"]  # one token a byte


def test_cli_hits_exit_3(runner, tok_file, files):
    res = runner.invoke(cli, ["detect", str(tok_file), "--glitch", str(files / "ids.txt"), str(files / "dirty.txt")])
    assert res.exit_code == 3, res.output
    hits = _lines(res.stdout)
    assert [(h["line"], h["token_id"], h["start"], h["end"], h["text"]) for h in hits] == [
        (2, TOKYO, 0, 2, "東京"),
        (2, SPACE_ZZ, 8, 11, " zz"),
    ]  # 東京, " and", " a", " zz"
    assert (
        "exit 3: glitch rate 13.333% (highest document 13.333%, 1 of 1 documents above) with --max-rate 0: 2 hits in 15 tokens"
        in res.stderr
    )
    # 2 hits in 6 + 9 tokens (one per byte but for 東京 and " zz"): below a max rate of 0.25, so clean
    res = runner.invoke(
        cli,
        ["detect", str(tok_file), "--glitch", str(files / "ids.txt"), str(files / "dirty.txt"), "--max-rate", "0.25"],
    )
    assert res.exit_code == 0, res.output


def test_cli_jsonl_to_file_with_json_summary(runner, tok_file, files):
    out = files / "hits.jsonl"
    res = runner.invoke(
        cli,
        [
            "detect",
            str(tok_file),
            "--glitch",
            str(files / "ids.txt"),
            str(files / "data.jsonl"),
            str(files / "clean.txt"),
            "-o",
            str(out),
            "--format",
            "json",
        ],
    )
    assert res.exit_code == 3, res.output
    records = _lines(out.read_text(encoding="utf-8"))
    assert [(r["type"], r["line"]) for r in records] == [("hit", 1), ("error", 2), ("error", 3)]
    assert records[2]["error"].startswith("bad JSON")
    summary = json.loads(res.stdout)
    assert summary["exceeded"] is True and summary["glitch_tokens"] == 2
    assert [(s["source"].rsplit("/", 1)[-1], s["documents"], s["hits"], s["errors"]) for s in summary["sources"]] == [
        ("data.jsonl", 2, 1, 2),
        ("clean.txt", 1, 0, 0),
    ]
    # "a zz" is a, " zz"; "fine" is four bytes; clean.txt is 21 bytes; no newline in a JSON field
    assert summary["total"] == {
        "source": "(total)",
        "documents": 3,
        "records": 4,
        "tokens": 2 + 4 + 21,
        "hits": 1,
        "rate": 1 / 27,
        "docs_with_hits": 1,
        "docs_over": 1,
        "max_doc_rate": 0.5,
        "errors": 2,
    }
    assert summary["found"] == [{"token_id": SPACE_ZZ, "token": " zz", "hits": 1, "score": None, "rank": None}]
    assert "2 lines could not be read" in res.stderr


def test_cli_stdin_field_and_csv(runner, tok_file, files):
    res = runner.invoke(
        cli,
        [
            "detect",
            str(tok_file),
            "--glitch",
            str(files / "ids.txt"),
            "-",
            "--field",
            "t",
            "--format",
            "csv",
            "-o",
            str(files / "h.jsonl"),
        ],
        input='{"t": "東京"}\n{"t": "x"}\n',
    )
    assert res.exit_code == 3, res.output
    assert res.stdout.splitlines() == [
        "source,documents,records,tokens,hits,rate,docs_with_hits,docs_over,max_doc_rate,errors",
        "<stdin>,2,2,2,1,0.5,1,1,1.0,0",
    ]


def test_cli_ranked_table_with_top(runner, tok_file, files):
    write_csv(ranked_frame(), files / "ranked.csv")
    args = ["detect", str(tok_file), "--glitch", str(files / "ranked.csv"), str(files / "dirty.txt")]
    res = runner.invoke(cli, args + ["--top", "1"])
    assert res.exit_code == 3 and [h["token_id"] for h in _lines(res.stdout)] == [SPACE_ZZ]
    assert _lines(res.stdout)[0]["rank"] == 3 and _lines(res.stdout)[0]["score"] == 0.9
    assert "left out: 2 special/unused/unknown/padding tokens, 1 UTF-8-invalid bytes, 3 past --top 1" in res.stderr
    res = runner.invoke(cli, args + ["--min-score", "0.75"])
    assert [h["token_id"] for h in _lines(res.stdout)] == [TOKYO, SPACE_ZZ]
    res = runner.invoke(cli, args)  # no --top: the flagged rows, said in one line
    assert {h["token_id"] for h in _lines(res.stdout)} == {SPACE_ZZ, TOKYO}  # both flagged and in dirty.txt
    assert "detect: 2 glitch tokens from" in res.stderr and "its flagged rows" in res.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--glitch", "MISSING", "TEXT"], "no such glitch list file"),
        (["--glitch", "IDS", "MISSING"], "no such file"),
        (["--glitch", "WRONG", "TEXT"], "token id 999999 is not in this tokenizer's vocabulary"),
    ],
)
def test_cli_bad_input_exit_2(runner, tok_file, files, args, message):
    (files / "wrong.txt").write_text("999999\n")
    names = {
        "MISSING": str(files / "missing"),
        "TEXT": str(files / "dirty.txt"),
        "IDS": str(files / "ids.txt"),
        "WRONG": str(files / "wrong.txt"),
    }
    res = runner.invoke(cli, ["detect", str(tok_file)] + [names.get(a, a) for a in args])
    assert res.exit_code == 2, res.output
    assert res.stdout == ""
    assert res.stderr.startswith("anomtok: error: ") and message in res.stderr
    assert "Traceback" not in res.output


def test_cli_usage_errors_exit_2(runner, tok_file, files):
    res = runner.invoke(cli, ["detect", str(tok_file), "--glitch", str(files / "ids.txt")])  # no input
    assert res.exit_code == 2
    res = runner.invoke(cli, ["detect", str(tok_file), "--glitch", str(files / "ids.txt"), "--top", "0", "-"])
    assert res.exit_code == 2


def test_cli_progress_bar_goes_to_stderr(runner, tok_file, files):
    res = runner.invoke(
        cli, ["detect", str(tok_file), "--glitch", str(files / "ids.txt"), str(files / "clean.txt"), "--progress"]
    )
    assert res.exit_code == 0, res.output
    assert "detect: 100%" in res.stderr and res.stdout == ""


# ---------------------------------------------------------------------------------- a trained vocabulary
def test_ranked_csv_of_a_trained_model(runner, tiny_model, tmp_path):
    """The table `anomtok rank` writes loads as a glitch list, and every hit in real-looking text is a
    listed token whose bytes are inside the characters the hit spans."""
    res = runner.invoke(cli, ["rank", str(tiny_model.hf_dir), "-o", str(tmp_path / "r"), "--nn", "off", "-q"])
    assert res.exit_code == 0, res.output
    gl = load_glitch_list(tmp_path / "r" / "ranked.csv", top=200)
    det = GlitchDetector(tiny_model.hf_dir, gl)
    assert len(gl) == 200 and not {det.table.kinds[i] for i in gl.ids} & {"special", "unused", "padding"}
    ranks = [gl.ranks[i] for i in gl.ids]
    assert ranks == sorted(ranks)
    text = tiny_model.extra_text_path.read_text(encoding="utf-8")
    hits = [h for r in det.analyze_many(text.splitlines(keepends=True)) for h in r.hits]
    assert hits, "the tokenizer-only text should hold some of the 200 most suspicious tokens"
    lines = text.splitlines(keepends=True)
    for r, line in zip(det.analyze_many(lines), lines):
        for h in r.hits:
            assert h.token_id in det.ids and line[h.start : h.end] == h.text
            assert det.table.bytes[h.token_id] in h.text.encode("utf-8")
