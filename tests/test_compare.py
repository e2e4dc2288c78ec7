"""``anomtok compare`` on the files a committed report keeps (meta.json, glitch.csv): tokens are
matched across tokenizers by their exact bytes, the terminal gets aligned text and a file
Markdown or JSON (issue 14). Fixtures with a known overlap, then the committed reports/."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from anomtok.cli import cli
from anomtok.compare import compare

REPORTS = Path(__file__).resolve().parent.parent / "reports"
COMMITTED = [REPORTS / n for n in ("gemma-3-270m", "smollm2-135m", "minilm-l6")]


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
