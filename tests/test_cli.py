"""The CLI: thin over the API, one-line errors with exit code 2, atomic outputs."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import polars as pl
import pytest
from click.testing import CliRunner

from anomtok.cli import cli
from anomtok.export import read_table, token_bytes
from anomtok.loading import load


@pytest.fixture()
def runner():
    return CliRunner()


def test_rank_writes_three_files_that_round_trip(runner, tiny_model, tmp_path):
    out = tmp_path / "out"
    res = runner.invoke(cli, ["rank", str(tiny_model.hf_dir), "-o", str(out), "--top", "5"])
    assert res.exit_code == 0, res.output
    # .steps/rank.json: the rank step's marker, so that scan reuses this ranking (issue 10.2)
    assert sorted(p.name for p in out.iterdir()) == [".steps", "knn.npz", "meta.json", "ranked.csv", "ranked.parquet"]
    emb = load(tiny_model.hf_dir)
    csv = read_table(out / "ranked.csv").sort("token_id")
    assert csv["token_id"].to_list() == list(range(emb.shape[0]))
    assert token_bytes(csv) == emb.tokens.bytes
    pq = pl.read_parquet(out / "ranked.parquet").sort("token_id")
    assert pq["rank"].to_list() == csv["rank"].to_list()
    meta = json.loads((out / "meta.json").read_text())
    assert meta["anomtok_version"] and meta["source"]["files"][0]["fingerprint"].startswith("fp1:")
    assert meta["settings"]["nn"] == "auto"
    # the printed table is the --top 5 rows of ranked.csv outside the reference set, by rank
    printed = [tuple(map(int, m)) for m in re.findall(r"^\s*(\d+)\s+(\d+)\s+⟨", res.stdout, re.M)]
    top = csv.filter(~pl.col("is_reference")).sort("rank").head(5)
    assert printed == list(zip(top["rank"].to_list(), top["token_id"].to_list()))
    assert f"mean of {int(csv['is_reference'].sum())} reference tokens" in res.stdout


def test_nearest_table_csv_json(runner, tiny_model):
    res = runner.invoke(cli, ["nearest", str(tiny_model.gguf_path), "-k", "7"])
    assert res.exit_code == 0, res.output
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 2 + 7 and lines[0].split()[:3] == ["#", "token_id", "token"]
    res = runner.invoke(cli, ["nearest", str(tiny_model.gguf_path), "-k", "7", "--far", "--format", "json"])
    rows = json.loads(res.stdout)
    assert len(rows) == 7 and rows[0]["centroid_l2"] >= rows[-1]["centroid_l2"]
    res = runner.invoke(cli, ["nearest", str(tiny_model.gguf_path), "-k", "3", "--format", "csv"])
    assert res.stdout.splitlines()[0].startswith("token_id,token,kind,script,centroid_l2")


@pytest.mark.parametrize(
    "args, message",
    [
        (["rank", "/does/not/exist", "-o", "OUT"], "no such file"),
        (["nearest", "not-an-alias-or-path"], "no such file"),
        (["nearest", "PATH", "--metric", "bogus"], "unknown metric"),
        (["rank", "PATH", "-o", "OUT", "--device", "cuda:7"], "CUDA"),
    ],
)
def test_errors_are_one_line_exit_2_no_output(runner, tiny_model, tmp_path, args, message):
    out = tmp_path / "o"
    args = [str(tiny_model.hf_dir) if a == "PATH" else str(out) if a == "OUT" else a for a in args]
    res = runner.invoke(cli, args)
    assert res.exit_code == 2, res.output
    assert message in res.stderr
    assert "Traceback" not in res.output and len(res.stderr.strip().splitlines()) == 1
    assert not out.exists() or not any(out.iterdir())


def test_corrupt_file_via_subprocess_has_no_traceback(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\xff" * 40)
    proc = subprocess.run(
        [sys.executable, "-m", "anomtok", "rank", str(bad), "-o", str(tmp_path / "o")], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("anomtok: error:") and "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()


COMMANDS = ["audit", "compare", "detect", "nearest", "negtemp", "plot", "rank", "scan", "sweep", "verify"]


def test_help_lists_every_command_and_each_has_its_own_help(runner):
    res = runner.invoke(cli, ["--help"])
    assert res.exit_code == 0
    listed = res.stdout.split("Commands:\n", 1)[1]
    rows = [line.split(None, 1) for line in listed.splitlines() if line.strip()]
    assert [r[0] for r in rows] == COMMANDS
    assert all(len(r) == 2 and len(r[1]) > 10 for r in rows), rows  # a summary line each
    for name in COMMANDS:
        sub = runner.invoke(cli, [name, "--help"], prog_name="anomtok")
        assert sub.exit_code == 0 and sub.stdout.startswith(f"Usage: anomtok {name} "), (name, sub.output)
