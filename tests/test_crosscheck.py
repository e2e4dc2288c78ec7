"""Cross-check of produced tokens against a ranking: known answers on a hand-made ranking."""

from __future__ import annotations

import doctest

import polars as pl
import pytest
from scipy.stats import hypergeom

import anomtok.generation.crosscheck as C
from anomtok.errors import InputError
from anomtok.generation.crosscheck import crosscheck, metric_ranks, prompt_group

N = 1000
PAD = 24


@pytest.fixture()
def frame() -> pl.DataFrame:
    """Tokens 0..999 (normal) then 24 padding rows. ``score`` (high = suspicious) puts token i
    at rank i + 1; ``norm`` (low = suspicious) puts it at rank 1000 - i; ``nn_cos`` is empty."""
    ids = list(range(N + PAD))
    return pl.DataFrame(
        {
            "token_id": ids,
            "token": [f"t{i}" for i in ids],
            "bytes_hex": [f"t{i}".encode().hex() for i in ids],
            "kind": ["normal"] * N + ["padding"] * PAD,
            "script": ["Latin"] * (N + PAD),
            "score": [1.0 - i / N if i < N else None for i in ids],
            "norm": [float(N - i) if i < N else None for i in ids],
            "nn_cos": [None] * (N + PAD),
        },
        schema_overrides={"nn_cos": pl.Float64},
    )


def test_prompt_group_doctest():
    assert doctest.testmod(C).failed == 0
    assert prompt_group("カタカナ") == "ja" and prompt_group("Хронологија") == "en"


def test_metric_ranks_follow_the_suspicious_direction(frame):
    ranks, sizes = metric_ranks(frame)
    assert sizes == {"score": N, "norm": N}  # padding rows and the empty metric are left out
    r = dict(zip(ranks["token_id"].to_list(), ranks["score_rank"].to_list()))
    assert r[0] == 1 and r[999] == 1000 and N not in r
    n = dict(zip(ranks["token_id"].to_list(), ranks["norm_rank"].to_list()))
    assert n[999] == 1 and n[0] == 1000
    with pytest.raises(InputError, match="unknown metric"):
        metric_ranks(frame, ["bogus"])


def test_known_answers(frame):
    cc = crosscheck([[0, 0, 1, 5], [2, 999]], frame, groups=["en", "ja"])
    s = cc.summary
    assert s["population"] == N and s["metrics"] == ["score", "norm"]
    a = s["groups"]["all"]
    assert (a["n_prompts"], a["n_generated"], a["n_distinct"]) == (2, 6, 5)
    sc = a["metrics"]["score"]
    assert sc["mean_percentile"] == pytest.approx((0.1 + 0.2 + 0.3 + 0.6 + 100) / 5, abs=1e-4)
    assert sc["mean_percentile_weighted"] == pytest.approx((2 * 0.1 + 0.2 + 0.3 + 0.6 + 100) / 6, abs=1e-4)
    t100 = sc["topk"]["100"]
    assert (t100["k"], t100["overlap"], t100["expected"], t100["enrichment"]) == (100, 4, 0.5, 8.0)
    assert t100["p_value"] == pytest.approx(hypergeom.sf(3, N, 100, 5))
    assert t100["occurrences_in_topk"] == 5 and t100["occurrence_fraction"] == pytest.approx(5 / 6)
    assert sc["topk"]["top2%"]["k"] == 20 and sc["topk"]["top2%"]["overlap"] == 4
    assert sc["topk"]["top5%"]["k"] == 50 and sc["topk"]["top5%"]["overlap"] == 4
    assert sc["topk"]["1000"]["overlap"] == 5 and sc["topk"]["1000"]["enrichment"] == 1.0
    assert sc["spearman_all"]["rho"] > 0 and sc["spearman_all"]["n"] == N
    nm = a["metrics"]["norm"]
    assert nm["topk"]["100"]["overlap"] == 1 and nm["spearman_all"]["rho"] < 0
    en, ja = s["groups"]["en"], s["groups"]["ja"]
    assert (en["n_distinct"], ja["n_distinct"]) == (3, 2)
    assert (
        en["metrics"]["score"]["topk"]["100"]["overlap"] == 3 and ja["metrics"]["score"]["topk"]["100"]["overlap"] == 1
    )


def test_token_table(frame):
    cc = crosscheck([[0, 0, 1, 5], [2, 999, 0]], frame, groups=["en", "ja"])
    t = cc.tokens
    assert t["token_id"].to_list()[0] == 0  # most produced first
    row = t.row(0, named=True)
    assert (row["count"], row["n_prompts"], row["prompts"], row["groups"]) == (3, 2, "0;1", "en;ja")
    assert (row["score_rank"], row["score_pct"], row["norm_rank"]) == (1, 0.1, 1000)
    assert row["token"] == "t0" and bytes.fromhex(row["bytes_hex"]) == b"t0" and row["kind"] == "normal"
    assert t["count"].sum() == 7
    assert "nn_cos_rank" not in t.columns


def test_random_tokens_are_not_enriched(frame):
    import random

    rng = random.Random(0)
    produced = [[rng.randrange(N) for _ in range(50)] for _ in range(20)]
    sc = crosscheck(produced, frame).summary["groups"]["all"]["metrics"]["score"]
    assert 40 < sc["mean_percentile"] < 60
    assert 0.5 < sc["topk"]["100"]["enrichment"] < 1.6
    assert abs(sc["spearman_all"]["rho"]) < 0.1


def test_padding_rows_are_outside_the_population(frame):
    cc = crosscheck([[N + 1, 0]], frame)
    sc = cc.summary["groups"]["all"]["metrics"]["score"]
    assert cc.summary["groups"]["all"]["n_distinct"] == 2 and sc["n_ranked"] == 1


def test_errors(frame):
    with pytest.raises(InputError, match="not in the ranking"):
        crosscheck([[5000]], frame)
    with pytest.raises(InputError, match="one label per prompt"):
        crosscheck([[1], [2]], frame, groups=["en"])
    with pytest.raises(InputError, match="top_fractions"):
        crosscheck([[1]], frame, top_fractions=(0.0,))
    with pytest.raises(InputError, match="ks"):
        crosscheck([[1]], frame, ks=(0,))
    with pytest.raises(InputError, match="Ranking"):
        crosscheck([[1]], {"token_id": [1]})


def test_nothing_produced_is_reported_not_an_error(frame):
    cc = crosscheck([[], []], frame, groups=["en", "ja"])
    assert cc.summary["groups"]["all"]["n_distinct"] == 0 and cc.tokens.height == 0


def test_on_a_real_ranking_of_the_tiny_model(tiny_model):
    """Tokens the tiny LM never saw in training fill the top of its score: "producing" exactly
    them is strongly enriched, and the count correlates with the score."""
    import anomtok

    rk = anomtok.rank(anomtok.load(tiny_model.hf_dir), options=anomtok.RankOptions(nn="off"))
    cc = crosscheck([list(tiny_model.unseen_ids)], rk, ks=(50,))
    sc = cc.summary["groups"]["all"]["metrics"]["score"]
    assert sc["topk"]["50"]["overlap"] >= 45 and sc["topk"]["50"]["p_value"] < 1e-10
    assert sc["mean_percentile"] < 35 and sc["spearman_all"]["rho"] > 0.5
