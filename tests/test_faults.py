"""Fault injection: runs killed while they write (issue 10, items 2 and 3).

A ``rank`` or ``scan`` subprocess is killed at a deterministic point: ``ANOMTOK_TEST_KILL_AT``
(see ``anomtok.cache._test_kill_hook``) makes it send itself ``ANOMTOK_TEST_KILL_SIGNAL`` right
after the temporary of the named file is created (``<name>:renamed``: right after it was renamed
onto the file). Then: the folder holds either the previous complete set or the complete new one
(never a mix that is reused), the next run leaves no ``.*.tmp`` behind and writes the same files as
an uninterrupted run, and the model files read are unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from anomtok.cli import cli

RANK_FILES = ("ranked.csv", "ranked.parquet", "meta.json")
TEMP = re.compile(r"^\..+\.tmp$")
QUICK_SCAN = ["--no-generate", "--no-verify", "--no-map"]


def _anomtok(*args: str, kill_at: str | None = None, sig: str = "SIGKILL") -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANOMTOK_TEST_KILL")}
    if kill_at:
        env["ANOMTOK_TEST_KILL_AT"] = kill_at
        env["ANOMTOK_TEST_KILL_SIGNAL"] = sig
    return subprocess.run(
        [sys.executable, "-m", "anomtok", *args], env=env, capture_output=True, text=True, timeout=900
    )


def _invoke(*args: str):
    res = CliRunner().invoke(cli, list(args))
    assert res.exit_code == 0, (res.output, res.exception)
    return res


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (dot files included) -> its bytes; temporaries left out."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not TEMP.match(p.name)
    }


def _temps(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*.tmp"))


def _hashes(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _stable_meta(path: Path) -> dict:
    """meta.json without what differs between two identical runs (command line, timings)."""
    meta = json.loads(path.read_text("utf-8"))
    meta.pop("command", None)
    meta.pop("timings_s", None)
    meta.get("source", {}).pop("seconds", None)
    for key in ("seconds", "approx_seconds"):  # the k-NN search's own timings
        (meta.get("knn") or {}).pop(key, None)
    return meta


def _assert_killed(res: subprocess.CompletedProcess, sig: str) -> None:
    assert "Traceback" not in res.stderr, res.stderr
    if sig == "SIGKILL":
        assert res.returncode == -9, (res.returncode, res.stderr)
    else:  # Ctrl-C and SIGTERM: one line, exit 128 + the signal
        code, line = {"SIGINT": (130, "anomtok: interrupted"), "SIGTERM": (143, "anomtok: terminated")}[sig]
        assert res.returncode == code and res.stderr.strip().splitlines()[-1] == line, (res.returncode, res.stderr)


@pytest.fixture(scope="module")
def reference(tiny_model, tmp_path_factory):
    """An uninterrupted ``rank`` of the model the killed runs rank."""
    out = tmp_path_factory.mktemp("reference")
    res = _anomtok("rank", str(tiny_model.hf_dir), "-o", str(out), "-q")
    assert res.returncode == 0, res.stderr
    return out


@pytest.fixture(scope="module")
def previous(tiny_model_untied, tmp_path_factory):
    """A complete earlier scan report of another model (as in the issue: MiniLM's report, then
    SmolLM2 ranked into it), with its step markers."""
    out = tmp_path_factory.mktemp("previous")
    _invoke("scan", str(tiny_model_untied.hf_dir), "-o", str(out), *QUICK_SCAN)
    return out


@pytest.mark.parametrize(
    "sig,kill_at",
    [
        ("SIGINT", "ranked.parquet"),
        ("SIGTERM", "ranked.parquet"),
        ("SIGKILL", "ranked.parquet"),
        ("SIGKILL", "meta.json"),  # the last one: every other temporary is complete
    ],
)
def test_rank_killed_while_writing_keeps_the_previous_report(sig, kill_at, tiny_model, reference, previous, tmp_path):
    out = tmp_path / "report"
    shutil.copytree(previous, out)
    before = _snapshot(out)
    model_before = _hashes(tiny_model.hf_dir)

    res = _anomtok("rank", str(tiny_model.hf_dir), "-o", str(out), "-q", kill_at=kill_at, sig=sig)
    _assert_killed(res, sig)
    # nothing of the new ranking is visible: the previous three files and their marker, unchanged
    assert _snapshot(out) == before
    if sig != "SIGKILL":
        assert _temps(out) == []  # an interrupt or SIGTERM removes the temporaries itself

    # the next run removes the dead run's temporaries and writes what an uninterrupted run writes
    _invoke("rank", str(tiny_model.hf_dir), "-o", str(out), "-q")
    assert _temps(out) == []
    for name in ("ranked.csv", "ranked.parquet"):
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name
    assert _stable_meta(out / "meta.json") == _stable_meta(reference / "meta.json")
    assert _hashes(tiny_model.hf_dir) == model_before


@pytest.mark.parametrize("kill_at", ["ranked.csv:renamed", "rank.json"])
def test_rank_killed_while_committing_is_never_reused(
    kill_at, tiny_model, tiny_model_untied, reference, previous, tmp_path
):
    """Killed between the renames (a mixed folder) or before the marker: there is no marker, so
    scan recomputes the ranking instead of trusting the folder."""
    out = tmp_path / "report"
    shutil.copytree(previous, out)
    res = _anomtok("rank", str(tiny_model.hf_dir), "-o", str(out), "-q", kill_at=kill_at)
    _assert_killed(res, "SIGKILL")
    assert not (out / ".steps" / "rank.json").exists()
    assert (out / "ranked.csv").read_bytes() == (reference / "ranked.csv").read_bytes()
    if kill_at == "ranked.csv:renamed":  # the worst case: the new CSV beside the previous parquet
        assert (out / "ranked.parquet").read_bytes() == (previous / "ranked.parquet").read_bytes()

    res = _invoke("scan", str(tiny_model_untied.hf_dir), "-o", str(out), *QUICK_SCAN)
    assert "rank     running" in res.stderr and "rank     reused" not in res.stderr, res.stderr
    assert _temps(out) == []
    for name in ("ranked.csv", "ranked.parquet"):
        assert (out / name).read_bytes() == (previous / name).read_bytes(), name


def test_scan_reuses_a_standalone_rank_and_not_a_truncated_one(tiny_model, reference, tmp_path):
    """`rank -o D` commits the rank step's marker, so scan reuses it; truncated, it is recomputed."""
    out = tmp_path / "report"
    _invoke("rank", str(tiny_model.hf_dir), "-o", str(out), "-q")
    res = _invoke("scan", str(tiny_model.hf_dir), "-o", str(out), *QUICK_SCAN)
    assert "rank     reused" in res.stderr, res.stderr
    with (out / "ranked.csv").open("r+b") as f:  # truncate -s
        f.truncate((out / "ranked.csv").stat().st_size // 2)
    res = _invoke("scan", str(tiny_model.hf_dir), "-o", str(out), *QUICK_SCAN)
    assert "rank     running" in res.stderr and "rank     reused" not in res.stderr, res.stderr
    assert (out / "ranked.csv").read_bytes() == (reference / "ranked.csv").read_bytes()
    # other ranking settings from `rank` are not scan's: not reused either
    _invoke("rank", str(tiny_model.hf_dir), "-o", str(out), "-q", "--nn", "off")
    res = _invoke("scan", str(tiny_model.hf_dir), "-o", str(out), *QUICK_SCAN)
    assert "rank     reused" not in res.stderr, res.stderr


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM", "SIGKILL"])
def test_scan_killed_in_a_step_resumes_cleanly(sig, tiny_model, reference, tmp_path):
    out = tmp_path / "report"
    model_before = _hashes(tiny_model.hf_dir)
    res = _anomtok("scan", str(tiny_model.hf_dir), "-o", str(out), *QUICK_SCAN, kill_at="audit.csv", sig=sig)
    _assert_killed(res, sig)
    # the rank step finished and is recorded; the audit step, killed, has no marker
    assert (out / ".steps" / "rank.json").is_file()
    assert not (out / ".steps" / "audit.json").exists()
    assert not (out / "audit" / "audit.csv").exists()

    # a concurrent writer's temporaries (its pid is alive: ours) are not the dead run's: kept
    live = [out / f".ranked.csv.{os.getpid()}.abcd1234.tmp", out / "audit" / f".audit.md.{os.getpid()}.abcd1234.tmp"]
    for p in live:
        p.parent.mkdir(exist_ok=True)
        p.write_text("being written")
    res = _invoke("scan", str(tiny_model.hf_dir), "-o", str(out), *QUICK_SCAN)
    assert "rank     reused" in res.stderr and "audit    running" in res.stderr, res.stderr
    assert _temps(out) == sorted(str(p.relative_to(out)) for p in live)
    assert (out / "ranked.csv").read_bytes() == (reference / "ranked.csv").read_bytes()
    assert (out / "audit" / "audit.csv").is_file() and (out / ".steps" / "audit.json").is_file()
    assert _hashes(tiny_model.hf_dir) == model_before
