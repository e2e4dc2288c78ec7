"""``anomtok compare`` on the files a committed report keeps (meta.json, glitch.csv): tokens are
matched across tokenizers by their exact bytes, the terminal gets aligned text and a file
Markdown or JSON (issue 14). Fixtures with a known overlap, then the committed reports/."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from anomtok.cli import cli
from anomtok.compare import compare

REPORTS = Path(__file__).resolve().parent.parent / "reports"
COMMITTED = [REPORTS / n for n in ("gemma-3-270m", "smollm2-135m", "minilm-l6")]
# what `anomtok compare` on committed reports must not import (issue 13.2): numpy alone costs
# about 3x a bare `python -c pass`, polars 15x
HEAVY = ("torch", "transformers", "polars", "umap", "numpy", "pyarrow", "matplotlib", "numba", "sklearn")


def _report(folder: Path, rows: list[tuple[int, str, str]], vocab: int) -> Path:
    """A report folder as committed: meta.json and glitch.csv (rows: token_id, bytes_hex, script)."""
    folder.mkdir(parents=True)
    meta = {
        "source": {"source": folder.name},
        "model": {"name": folder.name.upper()},
        "shape": [vocab, 8],
        "tied": True,
        "score": {"reference_size": 3},
        "kind_counts": {"normal": vocab},
    }
    (folder / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    with open(folder / "glitch.csv", "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["rank", "token_id", "token", "bytes_hex", "kind", "script", "score"])
        for rank, (i, hex_, script) in enumerate(rows, start=1):
            w.writerow([rank, i, bytes.fromhex(hex_).decode("utf-8", "replace"), hex_, "normal", script, 0.9])
    return folder


@pytest.fixture
def pair(tmp_path):
    # "12" (hex 3132, digits only: must stay text), "日" and " b" are in both; ids differ between the two
    a = _report(
        tmp_path / "a", [(5, "3132", "Common"), (6, "e697a5", "Han"), (7, "2062", "Latin"), (8, "61", "Latin")], 100
    )
    b = _report(
        tmp_path / "b", [(40, "2062", "Latin"), (41, "7a", "Latin"), (42, "e697a5", "Han"), (43, "3132", "Common")], 50
    )
    return a, b


def test_tokens_are_matched_by_their_bytes(pair):
    res = compare(list(pair))
    (p,) = res.pairs
    assert (p["shared"], p["only_a"], p["only_b"], p["jaccard"]) == (3, 1, 1, 0.6)
    assert p["same_vocabulary"] is None  # glitch.csv alone cannot tell
    assert [(s["token"], s["id_a"], s["rank_a"], s["id_b"], s["rank_b"]) for s in p["shared_top"]] == [
        ("12", 5, 1, 43, 4),
        ("日", 6, 2, 42, 3),
        (" b", 7, 3, 40, 1),
    ]
    assert res.summary["flagged"].to_list() == [4, 4] and res.summary["vocab"].to_list() == [100, 50]


def test_terminal_gets_text_and_a_file_markdown_or_json(pair, tmp_path):
    a, b = pair
    res = CliRunner().invoke(cli, ["compare", str(a), str(b), "--top", "2"])
    assert res.exit_code == 0, res.output
    assert "|---" not in res.stdout and "<code>" not in res.stdout
    lines = res.stdout.splitlines()
    assert lines[0].split() == [
        "report",
        "model",
        "vocab",
        "flagged",
        "flagged",
        "%",
        "top",
        "scripts",
        "negtemp",
        "pct",
    ]
    assert lines[2].split() == ["a", "A", "100", "4", "4.00", "Latin", "2;", "Common", "1;", "Han", "1", "–"]
    at = next(i for i, line in enumerate(lines) if line.split()[:4] == ["a", "b", "flagged", "in"])
    pair_row = lines[at + 2]
    assert pair_row.split() == ["a", "b", "3", "1", "1", "0.600", "not", "known"]
    assert "flagged in both a and b (first 2 of 3, by rank in a):" in res.stdout
    res = CliRunner().invoke(cli, ["compare", str(a), str(b), "-o", str(tmp_path / "c.md")])
    assert res.exit_code == 0 and res.stdout == ""
    md = (tmp_path / "c.md").read_text("utf-8")
    assert md.startswith("# anomtok comparison\n") and "| a | b | 3 | 1 | 1 | 0.600 | not known |" in md
    res = CliRunner().invoke(cli, ["compare", str(a), str(b), "-o", str(tmp_path / "c.json")])
    assert json.loads((tmp_path / "c.json").read_text("utf-8"))["pairs"][0]["shared"] == 3


def test_corrupt_glitch_csv_is_one_line(pair):
    a, b = pair
    (b / "glitch.csv").write_text("token_id,rank\n1,2\n", encoding="utf-8")
    res = CliRunner().invoke(cli, ["compare", str(a), str(b)])
    assert res.exit_code == 2 and res.stderr.count("\n") == 1
    assert res.stderr.startswith(f"anomtok: error: {b / 'glitch.csv'}: not an anomtok table (no bytes_hex column)")


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "not a readable table (empty file)"),
        (
            "rank,token_id,token,bytes_hex\n1,5,a,61\n2,6,b\n",
            "not a readable table (line 3 has 3 fields, the header 4)",
        ),
        (
            "rank,token_id,token,bytes_hex\n1,x5,a,61\n",
            "not an anomtok table (line 2: token_id 'x5' is not a whole number)",
        ),
        ("rank,token_id,token,bytes_hex\n1.5,5,a,61\n", "not an anomtok table (rank '1.5' is not a whole number)"),
        ("token_id,token,bytes_hex\n5,a,61\n", "not an anomtok table (no rank column)"),
        (b"rank,token_id,token,bytes_hex\n1,5,\xff\xfe,61\n", "not a readable table (UnicodeDecodeError)"),
    ],
    ids=["empty", "ragged", "token-id", "rank", "no-rank", "not-utf8"],
)
def test_a_damaged_glitch_csv_is_one_line(pair, content, message):
    a, b = pair
    target = b / "glitch.csv"
    target.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    res = CliRunner().invoke(cli, ["compare", str(a), str(b)])
    assert res.exit_code == 2 and res.stderr == f"anomtok: error: {target}: {message}\n", res.stderr


def test_a_blank_line_and_a_byte_order_mark_are_read(pair):
    """A glitch.csv saved by a spreadsheet (UTF-8 with a byte order mark, a blank line at the end)
    compares as the original."""
    a, b = pair
    before = compare([a, b]).pairs
    (b / "glitch.csv").write_bytes(b"\xef\xbb\xbf" + (b / "glitch.csv").read_bytes() + b"\r\n")
    assert compare([a, b]).pairs == before


def _heavy_imports(*folders: Path) -> tuple[str, list[str]]:
    """``anomtok compare FOLDERS`` in a fresh process: its stdout, and the heavy libraries it imported."""
    code = (
        "import sys\n"
        "from anomtok.cli import main\n"
        "try:\n"
        "    main(['compare', *sys.argv[1:]])\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        f"print('heavy:' + ','.join(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, *map(str, folders)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("heavy:"), proc.stderr
    return proc.stdout, [m for m in last.removeprefix("heavy:").split(",") if m]


def test_compare_of_committed_reports_imports_no_heavy_library(pair, tmp_path):
    """``anomtok compare`` on folders as committed (meta.json and glitch.csv; with the committed
    reports, exactly their committed files) reads them with the csv and json modules: no polars,
    numpy, torch, transformers or umap (issue 13.2). The Python API's ``.summary`` is still a
    polars DataFrame."""
    out, heavy = _heavy_imports(*pair)
    assert out.splitlines()[0].split()[:2] == ["report", "model"] and heavy == []
    present = [f for f in COMMITTED if (f / "glitch.csv").exists()]
    kept = []
    for f in present:  # only what git keeps: not the ranked.parquet a local scan leaves beside them
        for name in ("meta.json", "glitch.csv", "negtemp/crosscheck.json"):
            if (f / name).exists():
                (tmp_path / f.name / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(f / name, tmp_path / f.name / name)
        kept.append(tmp_path / f.name)
    if len(kept) >= 2:
        out, heavy = _heavy_imports(*kept)
        assert f"{kept[0].name}  " in out and heavy == []
    assert compare(list(pair)).summary.columns[:3] == ["report", "model", "vocab"]


def test_a_full_ranking_beside_glitch_csv_is_read_only_for_an_old_meta_json(pair):
    """A scan's folder also holds ranked.parquet (not committed): when meta.json records the
    vocabulary hash, compare reads glitch.csv alone (here the parquet is not even a parquet);
    without the hash it reads the full ranking to compute it (and says the file is bad)."""
    a, b = pair
    for f in pair:
        meta = json.loads((f / "meta.json").read_text("utf-8"))
        (f / "meta.json").write_text(json.dumps({**meta, "vocabulary_sha256": "0" * 64}), encoding="utf-8")
        (f / "ranked.parquet").write_bytes(b"not a parquet file")
    out, heavy = _heavy_imports(a, b)
    assert ["a", "b", "3", "1", "1", "0.600", "yes"] in [line.split() for line in out.splitlines()] and heavy == []
    assert compare([a, b]).pairs[0]["same_vocabulary"] is True
    (b / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    res = CliRunner().invoke(cli, ["compare", str(a), str(b)])
    assert res.exit_code == 2 and res.stderr.startswith(f"anomtok: error: {b / 'ranked.parquet'}: not a readable table")


def _flagged_bytes(folder: Path) -> set[str]:
    with open(folder / "glitch.csv", encoding="utf-8", newline="") as fh:
        return {r["bytes_hex"] for r in csv.DictReader(fh) if r["bytes_hex"]}


@pytest.mark.skipif(not all((f / "glitch.csv").exists() for f in COMMITTED), reason="the committed reports")
def test_the_committed_reports_compare():
    """The three committed reports (no ranked.parquet: only what is committed), every pair's overlap
    computed here with the csv module."""
    res = CliRunner().invoke(cli, ["compare", *map(str, COMMITTED), "--top", "5"])
    assert res.exit_code == 0, res.output
    sets = {f.name: _flagged_bytes(f) for f in COMMITTED}
    result = compare(COMMITTED, top=5)
    assert len(result.pairs) == 3
    for p in result.pairs:
        sa, sb = sets[p["a"]], sets[p["b"]]
        assert (p["shared"], p["only_a"], p["only_b"]) == (len(sa & sb), len(sa - sb), len(sb - sa))
        row = next(line for line in res.stdout.splitlines() if line.startswith(f"{p['a']}  ") and p["b"] in line)
        assert row.split()[2:5] == [f"{len(sa & sb):,}", f"{len(sa - sb):,}", f"{len(sb - sa):,}"]


def test_vocabulary_hash_of_a_frame_is_the_token_tables_hash():
    """``vocabulary_hash`` (an older report's full ranking, sorted by rank) gives the hash
    ``anomtok.tokens.vocabulary_sha256`` records in meta.json: padding rows left out, ids in order."""
    import polars as pl

    from anomtok.compare import vocabulary_hash
    from anomtok.tokens import vocabulary_sha256

    ids, hexes, kinds = (
        [3, 0, 4, 1, 2],
        ["63", "61", None, "", "62"],
        ["normal", "byte", "padding", "special", "normal"],
    )
    frame = pl.DataFrame({"rank": [1, 2, 3, 4, 5], "token_id": ids, "bytes_hex": hexes, "kind": kinds})
    expected = vocabulary_sha256([0, 1, 2, 3], ["61", "", "62", "63"], ["byte", "special", "normal", "normal"])
    assert vocabulary_hash(frame) == expected == vocabulary_sha256(ids, hexes, kinds)
    assert vocabulary_hash(frame.with_columns(pl.lit("normal").alias("kind"))) != expected  # the padding row counts
