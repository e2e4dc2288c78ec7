"""`anomtok scan` end to end on the tiny trained model: every section, resumable, comparable."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from anomtok.cli import cli
from anomtok.compare import compare

FAST = ["--prompts-per-language", "2", "--max-new-tokens", "6", "--verify-top", "3"]
SECTIONS = ["## Model", "## Glitch tokens", "## Both tails of the centroid distance", "## Maps and plots",
            "## Negative-temperature generation", "## Verification by prompting", "## Tokenizer audit",
            "### Japanese", "## Run"]
COMPARED = ["ranked.csv", "glitch.csv", "audit/audit.csv", "negtemp/generations.jsonl",
            "negtemp/negtemp_tokens.csv", "verify/verified.csv"]


@pytest.fixture(scope="module")
def full_scan(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("scan") / "report"
    res = CliRunner().invoke(cli, ["scan", str(tiny_model.hf_dir), "-o", str(out), *FAST])
    assert res.exit_code == 0, res.output
    return out


def test_report_has_every_section_and_files(full_scan):
    text = (full_scan / "report.md").read_text("utf-8")
    for section in SECTIONS:
        assert section in text, section
    for name in ["map_score", "map_kind", "map_script", "map_japanese", "centroid_hist", "score_norm"]:
        assert (full_scan / "plots" / f"{name}.png").stat().st_size > 1000
        assert f"plots/{name}.png" in text
    glitch = pl.read_csv(full_scan / "glitch.csv", infer_schema_length=10000)
    ranked = pl.read_parquet(full_scan / "ranked.parquet")
    assert glitch.height == int(ranked["flagged"].sum()) > 0
    assert glitch["rank"].is_sorted()


def test_rerun_reuses_every_step(tiny_model, full_scan):
    before = {p: (full_scan / p).stat().st_mtime_ns for p in COMPARED if p != "glitch.csv"}  # the report is redrawn
    res = CliRunner().invoke(cli, ["scan", str(tiny_model.hf_dir), "-o", str(full_scan), *FAST])
    assert res.exit_code == 0, res.output
    for step in ["rank", "audit", "negtemp", "verify", "plots"]:
        assert f"{step:<8} reused" in res.stderr
    assert {p: (full_scan / p).stat().st_mtime_ns for p in before} == before


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 300) -> None:
    t = time.time()
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"scan ended before {path.name} appeared")
        if time.time() - t > timeout:
            raise AssertionError(f"{path} did not appear")
        time.sleep(0.05)


def test_interrupted_scan_resumes_to_the_same_files(tiny_model, full_scan, tmp_path):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "anomtok", "scan", str(tiny_model.hf_dir), "-o", str(out), *FAST]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    _wait_for(out / ".steps" / "audit.json", proc)  # the negtemp step has just started
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / ".steps" / "negtemp.json").exists()
    assert not (out / "report.md").exists()
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "rank     reused" in res.stderr and "audit    reused" in res.stderr
    assert "negtemp  done" in res.stderr
    for p in COMPARED:
        assert (out / p).read_bytes() == (full_scan / p).read_bytes(), p
    assert not list(out.rglob("*.tmp"))  # a killed writer's temporary files are swept on resume


def test_compare_same_tokenizer(full_scan, tmp_path):
    res = compare([full_scan, full_scan])
    assert res.pairs and res.pairs[0]["jaccard"] == 1.0
    assert res.summary.height == 2


def test_compare_needs_reports(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    res = CliRunner().invoke(cli, ["compare", str(tmp_path / "a"), str(tmp_path / "b")])
    assert res.exit_code == 2 and "not an anomtok report" in res.stderr
