"""The scan's step cache is keyed on what each step was computed from (issue 9.3)."""

from __future__ import annotations

import os
import shutil

import pytest
from click.testing import CliRunner

from anomtok.cli import cli
from anomtok.steps import StepCache

FAST = ["--prompts-per-language", "1", "--max-new-tokens", "4", "--verify-top", "2", "--no-umap"]
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
