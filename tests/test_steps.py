"""The scan's step cache is keyed on what each step was computed from (issue 9.3)."""

from __future__ import annotations

import os
import shutil

import pytest
from click.testing import CliRunner

from anomtok.cli import cli
from anomtok.steps import StepCache

FAST = ["--prompts-per-language", "1", "--max-new-tokens", "4", "--verify-top", "2", "--no-map"]
STEPS = ["rank", "audit", "negtemp", "verify", "plots"]


def test_step_cache_unit(tmp_path):
    (tmp_path / "a.txt").write_text("one")
    cache = StepCache(tmp_path)
    key = {"settings": {"x": 1}, "model": "m", "reads": {"up": "d1"}}
    assert not cache.done("s", key)
    cache.mark("s", key, ["a.txt"], 1.0)
    assert cache.done("s", key)
    assert not cache.done("s", {**key, "reads": {"up": "d2"}})  # an upstream output changed
    assert not cache.done("s", {**key, "model": "m2"})  # the model changed
    assert not cache.done("s", {**key, "settings": {"x": 2}})  # its own settings changed
    assert not StepCache(tmp_path, force=True).done("s", key)
    (tmp_path / "a.txt").write_text("two")  # same size, other bytes: not trusted
    assert not cache.done("s", key)
    (tmp_path / "a.txt").write_text("one")
    assert cache.done("s", key)
    (tmp_path / ".steps" / "s.json").write_text("{broken")
    assert not cache.done("s", key)


def _scan(model, out, *extra):
    res = CliRunner().invoke(cli, ["scan", str(model), "-o", str(out), *FAST, *extra])
    assert res.exit_code == 0, res.output
    return {s: ("reused" if f"{s:<8} reused" in res.stderr else "ran") for s in STEPS}


@pytest.fixture()
def model_copy(tiny_model, tmp_path):
    dst = tmp_path / "model"
    shutil.copytree(tiny_model.hf_dir, dst)
    return dst


def test_invalidation_by_model_outputs_and_settings(model_copy, tmp_path):
    out = tmp_path / "report"
    assert set(_scan(model_copy, out).values()) == {"ran"}
    assert set(_scan(model_copy, out).values()) == {"reused"}
    # the model file changes (rewritten: new mtime): every step is stale
    weights = next(model_copy.glob("*.safetensors"))
    st = weights.stat()
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns + 5 * 10**9))
    assert set(_scan(model_copy, out).values()) == {"ran"}
    # a truncated ranking is recomputed, not trusted; the rest read the same ranking again
    ranked = out / "ranked.csv"
    with ranked.open("r+b") as f:
        f.truncate(ranked.stat().st_size // 2)
    status = _scan(model_copy, out)
    assert status["rank"] == "ran" and status["audit"] == "reused", status
    # a damaged output is recomputed; negtemp is deterministic, so its reader sees the same file
    (out / "negtemp" / "negtemp_tokens.csv").write_text("token_id\n1\n")
    status = _scan(model_copy, out)
    assert status["negtemp"] == "ran" and status["plots"] == "reused" and status["rank"] == "reused", status
    # other generation settings: negtemp's output changes, so the plots that mark its tokens rerun
    fast = [*FAST]
    fast[fast.index("--max-new-tokens") + 1] = "7"
    res = CliRunner().invoke(cli, ["scan", str(model_copy), "-o", str(out), *fast])
    assert res.exit_code == 0, res.output
    assert "negtemp  reused" not in res.stderr and "plots    reused" not in res.stderr, res.stderr
    assert "rank     reused" in res.stderr and "audit    reused" in res.stderr
    # a step's own setting: it and nothing upstream
    status = _scan(model_copy, out, "--verify-top", "3")  # (and negtemp back to FAST's 4 tokens)
    assert status["verify"] == "ran" and status["rank"] == "reused" and status["audit"] == "reused", status
    assert set(_scan(model_copy, out, "--verify-top", "3", "--force").values()) == {"ran"}


# ----------------------------------------------------------------------------- committing a step (issue 10.2, 10.3)


class Boom(RuntimeError):
    pass


def _write_step(cache, key, texts, fail=False):
    with cache.writer("s", key) as w:
        for rel, text in texts.items():
            w.path(rel).write_text(text)
        if fail:
            raise Boom


def test_step_writer_commits_all_outputs_or_none(tmp_path, monkeypatch):
    import anomtok.cache

    cache = StepCache(tmp_path)
    old, new = {"settings": 1}, {"settings": 2}
    _write_step(cache, old, {"a.txt": "a1", "sub/b.txt": "b1"})
    assert cache.done("s", old)
    # failing while writing: the previous files and marker stay as they were, no temporary left
    with pytest.raises(Boom):
        _write_step(cache, new, {"a.txt": "a2", "sub/b.txt": "b2"}, fail=True)
    assert (tmp_path / "a.txt").read_text() == "a1" and (tmp_path / "sub/b.txt").read_text() == "b1"
    assert cache.done("s", old) and not list(tmp_path.rglob("*.tmp"))
    # interrupted between two renames: a mixed folder, and no marker, so neither key is reused
    real, calls = anomtok.cache.commit_temp, []

    def commit_once(tmp, target):
        calls.append(target)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real(tmp, target)

    monkeypatch.setattr(anomtok.cache, "commit_temp", commit_once)
    with pytest.raises(KeyboardInterrupt):
        _write_step(cache, new, {"a.txt": "a2", "sub/b.txt": "b2"})
    monkeypatch.undo()
    assert (tmp_path / "a.txt").read_text() == "a2" and (tmp_path / "sub/b.txt").read_text() == "b1"
    assert not (tmp_path / ".steps" / "s.json").exists()
    assert not cache.done("s", old) and not cache.done("s", new)
    assert not list(tmp_path.rglob("*.tmp"))
    # a complete write: both files, then the marker that records them
    _write_step(cache, new, {"a.txt": "a2", "sub/b.txt": "b2"})
    assert cache.done("s", new) and (tmp_path / "sub/b.txt").read_text() == "b2"


def test_stale_temporaries_of_dead_writers_are_removed_by_the_next_write(tmp_path):
    import subprocess
    import sys

    from anomtok.cache import atomic_path, atomic_write_text, remove_stale_temps

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    dead_pid = int(dead.stdout)
    live_pid = os.getppid()  # the process that started pytest: alive
    names = {
        "dead": f".ranked.csv.{dead_pid}.ab_c9xyz.tmp",
        "live": f".ranked.csv.{live_pid}.ab_c9xyz.tmp",  # a concurrent run's: kept
        "other": ".notes.tmp",  # not our pattern: kept
        "probe": ".anomtok-probe-abcd1234.tmp",
    }
    for n in names.values():
        (tmp_path / n).write_text("x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / names["dead"]).write_text("x")
    with atomic_path(tmp_path / "m.json") as tmp:  # our own temporary carries our pid
        assert tmp.name.startswith(f".m.json.{os.getpid()}.") and tmp.name.endswith(".tmp")
        tmp.write_text("{}")
    assert not (tmp_path / names["dead"]).exists()
    assert all((tmp_path / names[k]).exists() for k in ("live", "other", "probe"))
    assert (tmp_path / "sub" / names["dead"]).exists()  # a write cleans the folder it writes in
    atomic_write_text(tmp_path / "sub" / "x.txt", "1")
    assert not (tmp_path / "sub" / names["dead"]).exists()
    (tmp_path / "sub" / names["dead"]).write_text("x")
    assert remove_stale_temps(tmp_path, depth=1) == [tmp_path / "sub" / names["dead"]]
