"""Negative-temperature generation on the packaged real models (marked ``real``; kept short:
two prompts, four tokens each). The GGUF is loaded by anomtok's own loader (seconds; nothing is
cached); the module's cache folder holds Gemma 3's joined GGUF, shared by its tests."""

from __future__ import annotations

import json

import polars as pl
import pytest

from anomtok.errors import LoadError
from anomtok.generation import SamplerConfig, negtemp
from anomtok.loading.packaged import resolve_alias

pytestmark = pytest.mark.real

PROMPTS = ["Temperature is a concept", "温度とは何ですか？"]
N_NEW = 4


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("real-generation-cache")


@pytest.mark.parametrize("alias", ["smollm2-135m", "gemma-3-270m"])
def test_negative_temperature_output_and_complete_crosscheck(alias, shared_cache, tmp_path, monkeypatch):
    try:
        resolve_alias(alias)
    except LoadError as exc:
        pytest.skip(str(exc))
    monkeypatch.setenv("ANOMTOK_CACHE", str(shared_cache))
    out = tmp_path / alias
    res = negtemp(
        alias, PROMPTS, SamplerConfig(temperature=-0.001), max_new_tokens=N_NEW, seed=0, device="cpu", out_dir=out
    )
    assert sorted(p.name for p in out.iterdir()) == [
        "crosscheck.json",
        "generations.jsonl",
        "meta.json",
        "negtemp_tokens.csv",
    ]
    gens = [json.loads(s) for s in (out / "generations.jsonl").read_text("utf-8").splitlines()]
    assert [g["group"] for g in gens] == ["en", "ja"]
    n_vocab = res.meta["generation_model"]["n_vocab"]
    for g in gens:
        assert len(g["generated_ids"]) == N_NEW and all(0 <= t < n_vocab for t in g["generated_ids"])
        assert g["text"].strip()
        # the least likely token at each step: far below a uniform guess (log 1/V)
        assert max(g["steps"]["logprob"]) < -12
    cc = json.loads((out / "crosscheck.json").read_text())
    assert set(cc["groups"]) == {"all", "en", "ja"}
    for name, grp in cc["groups"].items():
        assert grp["n_generated"] == N_NEW * (2 if name == "all" else 1)
        assert set(grp["metrics"]) == set(cc["metrics"]) and "score" in cc["metrics"]
        for m in grp["metrics"].values():
            assert set(m["topk"]) == {"100", "1000", "top2%", "top5%"}
            assert m["spearman_all"]["n"] > 40_000 and m["mean_percentile"] is not None
    table = pl.read_csv(out / "negtemp_tokens.csv", schema_overrides={"bytes_hex": pl.String, "prompts": pl.String})
    assert table["count"].sum() == 2 * N_NEW
    assert {"score_rank", "score_pct", "kind", "script"} <= set(table.columns)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["model"]["source"] == alias and all(f["fingerprint"].startswith("fp1:") for f in meta["model"]["files"])
    assert meta["settings"]["pure_experiment_mode"] is True
