"""The ranking finds the tokens a tiny real model never saw, and ranks by any metric both ways."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

import anomtok
from anomtok.embeddings import ModelEmbeddings, Provenance
from anomtok.errors import InputError
from anomtok.tokens import TokenTable


def _auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Probability that a random positive outscores a random negative (ties count half)."""
    pos, neg = scores[positive], scores[~positive]
    order = np.argsort(np.concatenate([pos, neg]), kind="stable")
    ranks = np.empty(order.size)
    ranks[order] = np.arange(1, order.size + 1)
    return float((ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2) / (pos.size * neg.size))


def _evaluate(model, frame: pl.DataFrame) -> tuple[float, float]:
    """(AUC, precision@|unseen|) of the score separating unseen from seen ordinary tokens."""
    f = frame.filter(pl.col("token_id").is_in(list(model.unseen_ids) + list(model.seen_ids))).sort("rank")
    unseen = np.isin(f["token_id"].to_numpy(), model.unseen_ids)
    auc = _auc(f["score"].to_numpy(), unseen)
    k = int(unseen.sum())
    return auc, float(unseen[:k].mean())


@pytest.mark.parametrize("fixture", ["tiny_model", "tiny_model_untied", "tiny_model_noref"])
def test_never_seen_tokens_rank_on_top(fixture, request):
    model = request.getfixturevalue(fixture)
    r = anomtok.rank(anomtok.load(model.hf_dir), options=anomtok.RankOptions(nn="off"))
    auc, prec = _evaluate(model, r.frame)
    assert auc > 0.97, f"{fixture}: AUC {auc:.3f}"
    assert prec > 0.85, f"{fixture}: precision@|unseen| {prec:.3f}"


def test_never_seen_tokens_rank_on_top_when_far_from_the_reference_set(tiny_model):
    """The reference rows redrawn like trained rows (``tests/far_reference.py``): the share of
    reference tokens among the never-seen tokens' 15 nearest neighbours falls from about 0.1 to
    below 0.01, and the default score still ranks the never-seen tokens on top (less well than
    with the reference beside them: AUC about 0.90 against 0.99)."""
    from far_reference import move_reference_rows

    emb = anomtok.load(tiny_model.hf_dir)
    ref_ids = np.nonzero(emb.tokens.reference_mask())[0]
    assert set(tiny_model.unused_ids) <= set(ref_ids.tolist())
    far = ModelEmbeddings(
        input=move_reference_rows(emb.input, ref_ids, tiny_model.seen_ids),
        output=None,
        tokens=emb.tokens,
        provenance=emb.provenance,
    )
    unseen = list(tiny_model.unseen_ids)
    share = {}
    for name, e in (("near", emb), ("far", far)):
        r = anomtok.rank(e, options=anomtok.RankOptions(nn="exact"))
        share[name] = r.frame.filter(pl.col("token_id").is_in(unseen))["knn_ref_share"].mean()
        assert r.meta["score"]["reference_source"] == "token table"
    assert share["near"] > 0.05 and share["far"] < 0.01, share  # the never-seen tokens left the reference behind
    auc, prec = _evaluate(tiny_model, r.frame)
    assert auc > 0.85, f"AUC {auc:.3f}"
    assert prec > 0.75, f"precision@|unseen| {prec:.3f}"


def test_reference_set_comes_from_the_token_table(tiny_model, tiny_model_noref):
    r = anomtok.rank(anomtok.load(tiny_model.hf_dir), options=anomtok.RankOptions(nn="off"))
    ref = set(r.frame.filter(pl.col("is_reference"))["token_id"].to_list())
    assert set(tiny_model.unused_ids) <= ref
    assert set(tiny_model.padding_ids) <= ref
    assert r.meta["score"]["reference_source"] == "token table"
    r2 = anomtok.rank(anomtok.load(tiny_model_noref.hf_dir), options=anomtok.RankOptions(nn="off"))
    # the byte-level vocabulary has the 13 bytes invalid in UTF-8: they are the reference
    assert r2.meta["score"]["reference_kinds"] == {"byte": 13, "padding": len(tiny_model_noref.padding_ids)}


def test_fallback_reference_when_table_has_none(tiny_model_noref):
    emb = anomtok.load(tiny_model_noref.hf_dir)
    # drop every reference row from the table's view: no unused tokens, no invalid bytes, no padding
    keep = emb.tokens.n_vocab
    t = emb.tokens
    kinds = ["normal" if k == "byte" else k for k in t.kinds[:keep]]
    table = TokenTable(pieces=t.pieces[:keep], bytes=t.bytes[:keep], kinds=kinds, n_vocab=keep, scheme=t.scheme)
    bare = ModelEmbeddings(input=emb.input[:keep], output=None, tokens=table, provenance=emb.provenance)
    r = anomtok.rank(bare, options=anomtok.RankOptions(nn="off"))
    assert r.meta["score"]["reference_source"].startswith("fallback")
    auc, _ = _evaluate(tiny_model_noref, r.frame)
    assert auc > 0.9, auc


def _synthetic(planted_near: bool, V: int = 400, D: int = 16, n_bad: int = 20, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    E = torch.randn(V, D, generator=g) + 3.0 * torch.ones(D)  # a common offset, like real embeddings
    c = E.mean(0)
    bad = torch.arange(n_bad)
    if planted_near:
        E[bad] = c + 0.01 * torch.randn(n_bad, D, generator=g)
    else:
        E[bad] = c + 20 * torch.randn(n_bad, D, generator=g)
    pieces = [f"t{i}" for i in range(V)]
    table = TokenTable.from_pieces(pieces, scheme="plain")
    prov = Provenance(
        source="synthetic", format="test", files=(), input_tensor="E", output_tensor=None, dtype="F32", method="test"
    )
    return ModelEmbeddings(input=E, output=None, tokens=table, provenance=prov), set(bad.tolist())


@pytest.mark.parametrize("near", [True, False])
def test_both_tails_of_the_centroid_distance(near):
    emb, bad = _synthetic(planted_near=near)
    got = anomtok.nearest(emb, k=len(bad), far=not near)
    assert set(got["token_id"].to_list()) == bad


def test_rank_by_any_metric(tiny_model):
    r = anomtok.rank(anomtok.load(tiny_model.hf_dir), options=anomtok.RankOptions(nn="exact"))
    for metric in anomtok.ranking.METRICS:
        top = r.top(5, metric=metric)
        vals = top[metric].to_list()
        desc = anomtok.ranking.DIRECTIONS[metric]
        assert vals == sorted(vals, reverse=desc)
        far = r.top(5, metric=metric, far=True)[metric].to_list()
        assert far == sorted(far, reverse=not desc)
    with pytest.raises(InputError, match="unknown metric"):
        r.top(5, metric="bytes_hex")


def test_rank_is_a_permutation_and_columns_present(tiny_model):
    r = anomtok.rank(anomtok.load(tiny_model.hf_dir), options=anomtok.RankOptions(nn="exact"))
    f = r.frame
    assert sorted(f["rank"].to_list()) == list(range(1, len(f) + 1))
    for col in [
        "rank",
        "token_id",
        "token",
        "bytes_hex",
        "kind",
        "script",
        "norm",
        "centroid_l2",
        "centroid_cos",
        "mean_cos",
        "pc1_removed_cos",
        "unused_ref_cos",
        "nn_cos",
        "score",
    ]:
        assert col in f.columns
    # every row of the tiny model is valid, so rank is the order of descending score, ties by token id
    assert f["score"].null_count() == 0 and f["valid"].all()
    by_score = np.lexsort((f["token_id"].to_numpy(), -f["score"].to_numpy()))
    assert f.sort("rank")["token_id"].to_list() == f["token_id"].to_numpy()[by_score].tolist()
    assert r.meta["nn_mode"] == "exact"


def test_approximate_nn_is_a_lower_bound_and_exact_on_top(tiny_model):
    emb = anomtok.load(tiny_model.hf_dir)
    exact = anomtok.rank(emb, options=anomtok.RankOptions(nn="exact")).frame.sort("token_id")
    r = anomtok.rank(emb, options=anomtok.RankOptions(nn="approx", nn_top=50, nn_sample=100, nn_degree=20))
    approx = r.frame.sort("token_id")
    e, a = exact["nn_cos"].to_numpy(), approx["nn_cos"].to_numpy()
    ok = np.isfinite(e) & np.isfinite(a)
    assert np.all(a[ok] <= e[ok] + 1e-6)
    flagged = approx["nn_exact"].to_numpy()
    top = r.frame.head(50)["token_id"].to_numpy()  # the top 50 by score, and the 100 rows of the recall sample
    assert flagged[top].all() and 100 <= flagged.sum() <= 150 and flagged.sum() == r.meta["knn"]["exact_rows"]
    np.testing.assert_allclose(a[flagged], e[flagged], atol=1e-6)


def test_bad_options():
    with pytest.raises(InputError, match="nn must be one of"):
        anomtok.RankOptions(nn="fast")
    with pytest.raises(InputError, match="device"):
        anomtok.rank(_synthetic(True)[0], options=anomtok.RankOptions(device="tpu"))


def test_flagged_tokens_are_the_never_seen_ones(tiny_model):
    r = anomtok.rank(anomtok.load(tiny_model.hf_dir), options=anomtok.RankOptions(nn="off"))
    flagged = set(r.frame.filter(pl.col("flagged"))["token_id"].to_list())
    assert r.meta["score"]["flagged"] == len(flagged) > 20
    assert not flagged & set(tiny_model.unused_ids) and not flagged & set(tiny_model.padding_ids)
    precision = len(flagged & set(tiny_model.unseen_ids)) / len(flagged)
    assert precision > 0.9, precision


def _magikarp(M: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """The indicator written out in numpy (float64): first principal component removed, cosine to
    the mean of the reference rows."""
    X = M.astype(np.float64)
    _, _, vt = np.linalg.svd(X - X.mean(0), full_matrices=False)
    X = X - np.outer(X @ vt[0], vt[0])
    t = X[ref].mean(0)
    return X @ t / (np.linalg.norm(X, axis=1) * np.linalg.norm(t))


@pytest.mark.parametrize("fixture", ["tiny_model", "tiny_model_untied"])
def test_score_is_computed_on_the_output_matrix_when_untied(fixture, request):
    """Untied: the indicator is computed on lm_head (the unembedding), not on the input embedding;
    tied: on the embedding. Checked against the safetensors matrices read here."""
    from safetensors.numpy import load_file

    m = request.getfixturevalue(fixture)
    weights = load_file(str(m.hf_dir / "model.safetensors"))
    embed = weights["model.embed_tokens.weight"]
    matrix = weights["lm_head.weight"] if not m.tied else embed
    r = anomtok.rank(anomtok.load(m.hf_dir), options=anomtok.RankOptions(nn="off"))
    f = r.frame.sort("token_id")
    ref = f["is_reference"].to_numpy()
    np.testing.assert_allclose(f["score"].to_numpy(), _magikarp(matrix, ref), atol=2e-4)
    assert r.meta["score"]["matrix"] == ("input embedding" if m.tied else "output (unembedding)")
    if not m.tied:
        # the choice matters: on the input embedding the scores are different
        assert np.abs(_magikarp(embed, ref) - _magikarp(matrix, ref)).max() > 0.1
        np.testing.assert_allclose(f["out_norm"].to_numpy(), np.linalg.norm(matrix, axis=1), rtol=1e-5)
        np.testing.assert_allclose(f["norm"].to_numpy(), np.linalg.norm(embed, axis=1), rtol=1e-5)
    else:
        assert "out_norm" not in f.columns


@pytest.mark.parametrize("q", [0.0, 0.1, 0.5, 1.0])
def test_flag_quantile_sets_the_threshold(tiny_model, q):
    """flagged = outside the reference set, not padding, score >= the q-quantile of the reference
    tokens' scores (numpy's linear quantile here)."""
    r = anomtok.rank(anomtok.load(tiny_model.hf_dir), options=anomtok.RankOptions(nn="off", flag_quantile=q))
    f = r.frame
    ref = f.filter(pl.col("is_reference"))["score"].to_numpy()
    threshold = float(np.quantile(ref.astype(np.float64), q))
    assert r.meta["score"]["flag_threshold"] == pytest.approx(threshold, abs=1e-6)
    want = f.filter(~pl.col("is_reference") & (pl.col("kind") != "padding") & (pl.col("score") >= threshold))
    got = f.filter(pl.col("flagged"))
    # scores within float32 rounding of the threshold may fall either way
    near = set(f.filter((pl.col("score") - threshold).abs() < 1e-6)["token_id"].to_list())
    assert set(got["token_id"].to_list()) - near == set(want["token_id"].to_list()) - near
    assert r.meta["score"]["flagged"] == got.height


def test_min_reference_switches_to_the_fallback_at_its_boundary(tiny_model):
    """The token table of the tiny model has 16 <unusedN>, the 13 bytes invalid in UTF-8 and the
    padding rows: with min_reference at that number it is the reference; one more, and the
    reference is the max(8, 0.1% V) tokens with the highest pc1_removed_cos."""
    m = tiny_model
    emb = anomtok.load(m.hf_dir)
    n_table = len(m.unused_ids) + 13 + len(m.padding_ids)
    at = anomtok.rank(emb, options=anomtok.RankOptions(nn="off", min_reference=n_table))
    assert at.meta["score"]["reference_source"] == "token table"
    assert at.meta["score"]["reference_size"] == n_table
    over = anomtok.rank(emb, options=anomtok.RankOptions(nn="off", min_reference=n_table + 1))
    assert over.meta["score"]["reference_source"].startswith("fallback")
    f = over.frame.sort("token_id")
    k = max(8, int(np.ceil(0.001 * emb.shape[0])))
    # pc1_removed_cos in numpy: first PC removed, cosine to the centroid
    X = emb.input.numpy().astype(np.float64)
    _, _, vt = np.linalg.svd(X - X.mean(0), full_matrices=False)
    X = X - np.outer(X @ vt[0], vt[0])
    c = X.mean(0)
    pc1cos = X @ c / (np.linalg.norm(X, axis=1) * np.linalg.norm(c))
    assert set(np.nonzero(f["is_reference"].to_numpy())[0].tolist()) == set(np.argsort(-pc1cos)[:k].tolist())
    np.testing.assert_allclose(
        f["score"].to_numpy(), _magikarp(emb.input.numpy(), f["is_reference"].to_numpy()), atol=2e-4
    )
