"""The validation study's pure functions: Wilson intervals, candidate lists, precision@k, rank aggregation."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from anomtok.validity import (
    METRIC_SPECS,
    MetricSpec,
    add_combinations,
    candidates,
    order_for_scoring,
    precision_table,
    random_sample,
    rank_mean,
    rank_percentile,
    wilson,
)


def test_wilson_known_answer():
    # by hand: k=8, n=20, z=1.96: p=0.4, z^2=3.8416, d=1.19208, centre=(0.4+0.09604)/1.19208=0.416113,
    # half=1.96*sqrt(0.012+0.0024010)/1.19208=1.96*0.120004/1.19208=0.197310
    lo, hi = wilson(8, 20)
    assert lo == pytest.approx(0.218803, abs=1e-5)
    assert hi == pytest.approx(0.613423, abs=1e-5)


def test_wilson_edges():
    lo, hi = wilson(0, 50)
    assert lo == 0.0 and hi == pytest.approx(3.8416 / (50 + 3.8416), abs=1e-9)  # the rule-of-three cousin
    lo, hi = wilson(50, 50)
    assert hi == 1.0 and lo == pytest.approx(50 / (50 + 3.8416), abs=1e-9)
    assert wilson(0, 0) == (0.0, 1.0)
    # narrower with more data at the same proportion
    assert np.diff(wilson(50, 100)) < np.diff(wilson(5, 10))


def _toy() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "token_id": [0, 1, 2, 3, 4, 5, 6, 7],
            "kind": ["normal", "normal", "normal", "special", "normal", "normal", "normal", "normal"],
            "is_reference": [False, False, True, False, False, False, False, True],
            "valid": [True, True, True, True, False, True, True, True],
            "m": [0.2, 0.9, 1.0, 5.0, 9.0, 0.9, None, 2.0],
        }
    )


def test_candidates_never_reference_special_or_invalid_and_ties_by_id():
    f = _toy()
    high = candidates(f, MetricSpec("m", "m", True), 10)
    assert high == [1, 5, 0]  # 1 and 5 tie at 0.9: lower id first; 2, 7 reference; 3 special; 4 invalid; 6 null
    assert candidates(f, MetricSpec("m", "m", False), 10) == [0, 1, 5]
    # the same result whatever the row order
    shuffled = f.sample(fraction=1.0, shuffle=True, seed=3)
    assert candidates(shuffled, MetricSpec("m", "m", True), 10) == high


def test_no_reference_token_is_ever_a_candidate_or_random():
    rng = np.random.default_rng(0)
    n = 400
    f = pl.DataFrame(
        {
            "token_id": np.arange(n),
            "kind": ["normal"] * n,
            "is_reference": rng.random(n) < 0.3,
            "valid": [True] * n,
            **{s.column: rng.random(n) for s in METRIC_SPECS if s.column not in ("rank_ref_knn", "rank_ref_nn")},
        }
    )
    # make the reference tokens the most suspicious by every metric
    ref = f["is_reference"].to_numpy()
    f = f.with_columns(
        pl.when(pl.col("is_reference")).then(pl.lit(1e9)).otherwise(pl.col(c)).alias(c)
        for c in ("score", "nn_cos", "knn_mean_cos")
    )
    f = add_combinations(f)
    refs = set(np.nonzero(ref)[0].tolist())
    for s in METRIC_SPECS:
        assert not refs & set(candidates(f, s, 500)), s.name
    assert not refs & set(random_sample(f, 500, 0))


def test_precision_table_toy():
    verdicts = {1: True, 2: True, 3: False, 4: True, 5: False, 6: False}
    t = precision_table(verdicts, {"a": [1, 2, 3, 4], "b": [6, 5, 4, 9]}, ks=(2, 4))
    rows = {(r["metric"], r["k"]): r for r in t.iter_rows(named=True)}
    assert rows[("a", 2)]["precision"] == 1.0 and rows[("a", 2)]["complete"]
    assert rows[("a", 4)]["verified"] == 3 and rows[("a", 4)]["precision"] == 0.75
    assert (rows[("a", 4)]["lo"], rows[("a", 4)]["hi"]) == wilson(3, 4)
    # token 9 has no verdict yet: n counts the judged ones only
    assert rows[("b", 4)]["n"] == 3 and rows[("b", 4)]["verified"] == 1 and not rows[("b", 4)]["complete"]
    assert rows[("b", 2)]["precision"] == 0.0


def test_rank_aggregation():
    p = rank_percentile(np.array([3.0, 1.0, 2.0, 2.0, np.nan]), high=True)
    assert p.tolist() == [4 / 5, 1 / 5, 2.5 / 5, 2.5 / 5, 0.0]
    f = pl.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "b": [4.0, 3.0, 2.0, 1.0]})
    # opposite orders average to the same value
    assert np.allclose(rank_mean(f, [("a", True), ("b", True)]), 0.625)
    assert math.isclose(rank_mean(f, [("a", True), ("b", False)])[3], 1.0)


def test_combination_is_computed_over_eligible_rows_only():
    f = _toy().with_columns(pl.col("m").alias("score"), pl.col("m").alias("knn_mean_cos"), pl.col("m").alias("nn_cos"))
    g = add_combinations(f)
    ok = g.filter(pl.col("rank_ref_knn").is_not_null())["token_id"].to_list()
    assert sorted(ok) == [0, 1, 5, 6]
    assert candidates(g, MetricSpec("rank_ref_knn", "rank_ref_knn", True), 3) == [1, 5, 0]


def test_scoring_order_random_first_then_shallow():
    assert order_for_scoring({"a": [7, 3, 1], "b": [3, 8]}, [9, 1]) == [1, 3, 7, 9, 8]


def test_random_sample_seeded_and_prefix_stable():
    f = pl.DataFrame({"token_id": np.arange(100), "kind": ["normal"] * 100})
    assert random_sample(f, 20, 4) == random_sample(f, 20, 4)
    assert random_sample(f, 20, 4) != random_sample(f, 20, 5)
