"""The packaged real models (marked `real`; CI runs them): shapes, tying, token kinds, and an
exact CSV round trip of every token."""

from __future__ import annotations

import importlib.util

import polars as pl
import pytest

import anomtok
from anomtok.export import read_table, token_bytes, write_csv

pytestmark = pytest.mark.real

EXPECTED = {
    # alias: (shape, tied, format, input dtype, kind counts that must hold exactly)
    "gemma-3-270m": ((262144, 640), True, "gguf", "Q8_0", {"unused": 6242, "byte": 256}),
    "smollm2-135m": ((49152, 576), True, "gguf", "Q8_0", {"special": 17}),
    "minilm-l6": ((30522, 384), True, "safetensors", "F32", {"unused": 994, "special": 4, "unknown": 1}),
}


def _installed(alias: str) -> bool:
    module = anomtok.loading.packaged.packaged_models()[alias].module
    return importlib.util.find_spec(module) is not None


@pytest.fixture(scope="module", params=list(EXPECTED))
def real(request):
    alias = request.param
    if not _installed(alias):
        pytest.skip(f"{alias} is not installed (make setup installs it)")
    return alias, anomtok.load(alias)


def test_shapes_tying_kinds(real):
    alias, emb = real
    shape, tied, fmt, dtype, kinds = EXPECTED[alias]
    assert emb.shape == shape
    assert emb.tied is tied
    assert emb.provenance.format == fmt and emb.provenance.dtype == dtype
    counts = emb.tokens.kind_counts()
    for k, v in kinds.items():
        assert counts.get(k) == v, (k, counts)
    assert sum(counts.values()) == shape[0]
    assert len(emb.tokens.bytes) == shape[0]


def test_csv_round_trip_every_token(real, tmp_path):
    alias, emb = real
    r = anomtok.rank(emb, options=anomtok.RankOptions(nn="off"))
    path = write_csv(r.frame, tmp_path / "ranked.csv")
    back = read_table(path).sort("token_id")
    assert back["token_id"].to_list() == list(range(emb.shape[0]))
    assert token_bytes(back) == emb.tokens.bytes
    bad_start = back.filter(pl.col("token").str.contains(r"^[=+\-@\t\r]"))
    assert bad_start.height == 0


def test_ranking_reference_and_top(real):
    alias, emb = real
    r = anomtok.rank(emb, options=anomtok.RankOptions(nn="off"))
    assert r.meta["score"]["reference_size"] >= 3
    top = r.frame.head(100)
    # the reference tokens (known never trained) must dominate the very top when the model has them
    if r.meta["score"]["reference_source"] == "token table":
        assert top["is_reference"].sum() >= 30
