"""k nearest neighbours of every token (anomtok.knn): exact search against brute force, the
approximate search's recall, the neighbourhood columns on planted examples, the graph UMAP gets,
and the ranking's columns for every token."""

from __future__ import annotations

import doctest
import math

import numpy as np
import polars as pl
import pytest
import torch

import anomtok
import anomtok.knn
from anomtok import knn as K
from anomtok import metrics as M
from anomtok.embeddings import ModelEmbeddings, Provenance
from anomtok.tokens import TokenTable


def _rand(V: int, D: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(V, D, generator=g, dtype=torch.float64)


def _brute(E: np.ndarray, keep: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Reference: every pair in float64, each row's others sorted by (-cosine, id)."""
    V = len(E)
    ids = np.full((V, k), -1)
    sims = np.full((V, k), np.nan)
    rows = np.nonzero(keep)[0]
    U = np.zeros_like(E)
    U[rows] = E[rows] / np.linalg.norm(E[rows], axis=1, keepdims=True)
    for i in rows:
        pairs = sorted((-float(U[i] @ U[j]), int(j)) for j in rows if j != i)[:k]
        for p, (neg, j) in enumerate(pairs):
            ids[i, p], sims[i, p] = j, -neg
    return ids, sims


def _assert_same_lists(ids, sims, ref_ids, ref_sims, E: np.ndarray, tie: float = 1e-12) -> None:
    """Equal cosines everywhere; equal ids except between rows whose cosines tie (within ``tie``)."""
    ids, sims = np.asarray(ids), np.asarray(sims, dtype=np.float64)
    np.testing.assert_array_equal(ids == -1, ref_ids == -1)
    np.testing.assert_allclose(sims, ref_sims, atol=1e-12, rtol=0)
    U = E / np.where(np.linalg.norm(E, axis=1, keepdims=True) > 0, np.linalg.norm(E, axis=1, keepdims=True), 1)
    for i, p in zip(*np.nonzero(ids != ref_ids)):
        got, want = ids[i, p], ref_ids[i, p]
        assert abs(U[i] @ U[got] - U[i] @ U[want]) < tie, (i, p, got, want)


def test_module_doctest():
    result = doctest.testmod(anomtok.knn)
    assert result.attempted == 13 and result.failed == 0


# ----------------------------------------------------------------------------- exact search


@pytest.mark.parametrize("block", [1, 3, None])
def test_exact_equals_brute_force_with_ties_zero_and_nan_rows(block):
    E = _rand(23, 4, seed=15)
    E[4] = 0.0
    E[8, 0] = math.inf
    E[17, 2] = math.nan
    E[12] = 2.5 * E[13]  # a parallel pair: cosine 1, and every row is as close to one as to the other
    E[20] = E[21]  # a duplicate pair
    valid = M.valid_rows(E)
    assert (~valid).nonzero().squeeze(1).tolist() == [4, 8, 17]
    ids, sims = K.exact_knn(E, valid, 6, block=block)
    ref_ids, ref_sims = _brute(E.numpy(), valid.numpy(), 6)
    _assert_same_lists(ids.numpy(), sims.numpy(), ref_ids, ref_sims, np.nan_to_num(E.numpy(), posinf=0.0))
    for bad in (4, 8, 17):
        assert (ids[bad] == -1).all() and torch.isnan(sims[bad]).all()
    assert not np.isin(ids.numpy(), [4, 8, 17]).any()  # an invalid row is nobody's neighbour
    assert all(i not in ids[i].tolist() for i in range(23))  # nobody is its own neighbour
    assert ids[12, 0] == 13 and ids[13, 0] == 12 and ids[20, 0] == 21 and ids[21, 0] == 20
    assert abs(float(sims[12, 0]) - 1.0) < 1e-12
    for i in range(23):  # each row's list is distinct ids, nearest first
        row = [j for j in ids[i].tolist() if j >= 0]
        assert len(row) == len(set(row))
        s = sims[i][: len(row)]
        assert bool((s[:-1] >= s[1:]).all())


def test_exact_ties_keep_the_lower_id_first():
    # every product here is exact in floating point, so the ties are exact whatever the summation order
    E = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 2, 0]])
    ids, sims = K.exact_knn(E, M.valid_rows(E), 5)
    assert ids[4].tolist() == [0, 1, 2, 5, 3]  # cos 1/sqrt(2) to 0, 1, 2 and 5: ascending ids; then 3 (cos 0)
    assert ids[1].tolist() == [2, 5, 4, 0, 3]  # 2 and 5 are parallel to 1 (cos 1), then 4 (0.707), then 0 and 3 (0)
    assert torch.allclose(sims[1], torch.tensor([1.0, 1.0, 2**-0.5, 0.0, 0.0]))
    # which of tied rows takes the last place is not specified, but it is one of them
    last = K.exact_knn(E, M.valid_rows(E), 4)[0][1].tolist()
    assert last[:3] == [2, 5, 4] and last[3] in (0, 3)


def test_exact_with_fewer_rows_than_k_and_a_subset_of_rows():
    E = _rand(6, 3, seed=3)
    E[[1, 4]] = 0.0
    valid = M.valid_rows(E)  # 4 valid rows: 3 neighbours each, places 4 and 5 stay empty
    ids, sims = K.exact_knn(E, valid, 5)
    assert (ids[valid][:, :3] >= 0).all() and (ids[valid][:, 3:] == -1).all()
    assert torch.isnan(sims[valid][:, 3:]).all() and not torch.isnan(sims[valid][:, :3]).any()
    sub_ids, sub_sims = K.exact_knn(E, valid, 5, rows=torch.tensor([0, 1, 5]))  # 1 is invalid: skipped
    assert sub_ids[[0, 5]].tolist() == ids[[0, 5]].tolist()
    assert (sub_ids[[1, 2, 3, 4]] == -1).all()
    one = torch.zeros(3, 2, dtype=torch.float64)
    one[0, 0] = 1.0
    got_ids, got_sims = K.exact_knn(one, M.valid_rows(one), 2)  # a single valid row has no neighbour
    assert (got_ids == -1).all() and torch.isnan(got_sims).all()


def test_exact_graph_gives_the_nearest_neighbour_columns():
    E = _rand(40, 5, seed=4)
    E[7] = math.nan
    valid = M.valid_rows(E)
    g = K.knn_graph(E, valid, 4, method="exact")
    assert g.info["method"] == "exact" and g.exact_rows.tolist() == valid.tolist()
    ref = np.zeros(40, bool)
    cols = K.neighbourhood_columns(g, ref)
    ref_ids, ref_sims = _brute(E.numpy(), valid.numpy(), 4)
    # the graph keeps float32 cosines
    np.testing.assert_allclose(cols["nn_cos"][valid.numpy()], ref_sims[valid.numpy(), 0], atol=1e-6, rtol=0)
    np.testing.assert_allclose(cols["knn_mean_cos"][valid.numpy()], ref_sims[valid.numpy()].mean(1), atol=1e-6, rtol=0)
    assert cols["nn_id"][valid.numpy()].tolist() == ref_ids[valid.numpy(), 0].tolist()
    assert cols["nn_id"][7] == -1 and math.isnan(cols["nn_cos"][7]) and math.isnan(cols["knn_mean_cos"][7])
    assert math.isnan(cols["knn_ref_share"][7]) and (cols["knn_ref_share"][valid.numpy()] == 0).all()


def test_columns_average_over_the_neighbours_a_row_has():
    # 3 valid rows and k = 4: two neighbours each; the means are over those two, not over k
    E = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [0.0, 0.0]], dtype=torch.float64)
    g = K.knn_graph(E, M.valid_rows(E), 4)
    cols = K.neighbourhood_columns(g, np.array([False, False, True, False]))
    assert g.ids[0].tolist() == [1, 2, -1, -1]
    np.testing.assert_allclose(cols["knn_mean_cos"][:3], [0.3, 0.7, 0.4], atol=1e-6)
    assert cols["knn_ref_share"][:3].tolist() == [0.5, 0.5, 0.0]
    assert math.isnan(cols["knn_mean_cos"][3]) and math.isnan(cols["knn_ref_share"][3]) and cols["nn_id"][3] == -1


# ----------------------------------------------------------------------------- approximate search


def _clustered(V: int = 3000, D: int = 24, clusters: int = 30, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(clusters, D, generator=g)
    member = torch.randint(0, clusters, (V,), generator=g)
    return (centres[member] + 0.35 * torch.randn(V, D, generator=g)).to(torch.float32)


def test_approximate_recall_on_a_clustered_matrix():
    E = _clustered()
    E[[5, 6]] = 0.0
    E[9, 3] = math.nan
    valid = M.valid_rows(E)
    k = 10
    ids, sims = K.nndescent_knn(E, valid, k, degree=20, seed=0)
    ex_ids, ex_sims = K.exact_knn(E, valid, k)
    rows = np.random.default_rng(1).choice(np.nonzero(valid.numpy())[0], 500, replace=False)
    rec = K.sample_recall(ids[rows], sims[rows], ex_ids.numpy()[rows], ex_sims.numpy()[rows])
    assert rec["recall"] >= 0.95 and rec["recall_ids"] >= 0.95, rec
    assert rec["mean_cos_error"] >= -1e-6
    # the reported cosines are the true cosines of the pairs
    with np.errstate(invalid="ignore", divide="ignore"):  # rows 5, 6 and 9 are not in the sample
        U = E.numpy() / np.linalg.norm(E.numpy(), axis=1, keepdims=True)
    has = ids[rows] >= 0
    true = np.einsum("id,ijd->ij", U[rows], U[np.maximum(ids[rows], 0)])
    np.testing.assert_allclose(sims[rows][has], true[has], atol=1e-5)
    assert not np.isin(ids, [5, 6, 9]).any() and (ids[[5, 6, 9]] == -1).all()
    assert all(i not in ids[i] for i in range(len(E)))
    # seeded: the same graph again
    again, _ = K.nndescent_knn(E, valid, k, degree=20, seed=0)
    np.testing.assert_array_equal(ids, again)


def test_approximate_search_orders_negative_cosines_too():
    # pynndescent reports every cosine <= 0 as 0: with 7 rows the graph holds every row, and the
    # lists must be the exact ones, negative cosines and their order included
    E = _rand(7, 3, seed=11).to(torch.float32)
    valid = M.valid_rows(E)
    ids, sims = K.nndescent_knn(E, valid, 6, degree=60)
    ex_ids, ex_sims = K.exact_knn(E, valid, 6)
    assert (ex_sims < 0).sum() > 5
    np.testing.assert_array_equal(ids, ex_ids.numpy())
    np.testing.assert_allclose(sims, ex_sims.numpy(), atol=1e-6)
    # row 0 has only negative cosines, all different; its 3 nearest are the 3 least negative ones,
    # wherever pynndescent put them in its (12-row) graph
    g = torch.Generator().manual_seed(12)
    F = torch.cat(
        [
            torch.tensor([[1.0, 0, 0, 0]]),
            torch.cat([-torch.linspace(0.1, 0.9, 11)[:, None], torch.randn(11, 3, generator=g)], dim=1),
        ]
    )
    valid = M.valid_rows(F)
    ids, sims = K.nndescent_knn(F, valid, 3, degree=12)
    ex_ids, ex_sims = K.exact_knn(F, valid, 3)
    assert (ex_sims[0] < 0).all()
    assert ids[0].tolist() == ex_ids[0].tolist()
    np.testing.assert_allclose(sims[0], ex_sims[0].numpy(), atol=1e-6)


def test_approximate_graph_measures_its_recall_and_keeps_exact_rows():
    # structureless data and a small graph: the search misses neighbours, so the exact rows matter
    E = _rand(2000, 48, seed=2).to(torch.float32)
    valid = M.valid_rows(E)
    top = torch.tensor([0, 1, 2, 3])
    g = K.knn_graph(E, valid, 8, method="nndescent", seed=3, exact_rows=top, recall_sample=300, degree=9)
    info = g.info
    assert info["method"] == "nndescent" and info["recall_sample"] == 300 and info["k"] == 8
    assert 0.3 < info["recall"] < 0.99, info
    sample = np.sort(np.random.default_rng(3).choice(np.nonzero(valid.numpy())[0], 300, replace=False))
    exact_rows = np.union1d(sample, top.numpy())
    assert np.nonzero(g.exact_rows)[0].tolist() == exact_rows.tolist() and info["exact_rows"] == exact_rows.size
    ex_ids, ex_sims = K.exact_knn(E, valid, 8)
    np.testing.assert_array_equal(g.ids[exact_rows], ex_ids.numpy()[exact_rows])
    # the reported recall is the recall of the approximate lists on that very sample
    a_ids, a_sims = K.nndescent_knn(E, valid, 8, degree=9, seed=3)
    want = K.sample_recall(a_ids[sample], a_sims[sample], ex_ids.numpy()[sample], ex_sims.numpy()[sample])
    assert info["recall"] == want["recall"] and info["recall_ids"] == want["recall_ids"]
    assert not np.array_equal(a_ids[sample], ex_ids.numpy()[sample])  # so the graph's sample rows were replaced
    rest = np.setdiff1d(np.arange(2000), exact_rows)
    np.testing.assert_array_equal(g.ids[rest], a_ids[rest])  # the other rows keep the approximate lists


def test_sample_recall_counts_ties_as_found_and_strict_ids_apart():
    e_ids = np.array([[1, 2, 3], [0, 2, 3]])
    e_sims = np.array([[0.9, 0.8, 0.7], [0.9, 0.5, 0.4]])
    # row 0: 4 ties with 3 at the k-th cosine (found, not the same id); row 1: 5 is below the k-th: missed
    a_ids = np.array([[1, 2, 4], [0, 2, 5]])
    a_sims = np.array([[0.9, 0.8, 0.7], [0.9, 0.5, 0.3]])
    got = K.sample_recall(a_ids, a_sims, e_ids, e_sims)
    assert got == pytest.approx(
        {"recall": 5 / 6, "recall_ids": 4 / 6, "nn1": 1.0, "mean_cos_error": 0.1 / 3 / 2, "rows": 2}, abs=1e-6
    )
    # a row with fewer than k neighbours is scored on the places it has; a row with none is skipped
    e_ids2 = np.array([[1, -1, -1], [-1, -1, -1]])
    e_sims2 = np.array([[0.5, np.nan, np.nan], [np.nan] * 3])
    got2 = K.sample_recall(np.array([[1, -1, -1], [-1, -1, -1]]), e_sims2.copy(), e_ids2, e_sims2)
    assert got2["recall"] == 1.0 and got2["rows"] == 1


# ----------------------------------------------------------------------------- the columns


def _circle(degrees: list[float]) -> torch.Tensor:
    a = torch.tensor(degrees, dtype=torch.float64) * math.pi / 180
    return torch.stack([torch.cos(a), torch.sin(a)], dim=1)


def test_knn_ref_share_on_a_planted_example():
    # reference tokens at 0, 10, 20, 30 degrees; ordinary ones at 60..63; the planted token at 44:
    # its 4 nearest are 30 (14 deg), 60 (16), 61 (17), 62 (18): one reference token of four
    angles = [0, 10, 20, 30, 60, 61, 62, 63, 44]
    E = _circle(angles)
    ref = np.array([True] * 4 + [False] * 5)
    valid = M.valid_rows(E)
    cols4 = K.neighbourhood_columns(K.knn_graph(E, valid, 4), ref)
    assert cols4["knn_ref_share"][8] == 0.25
    assert cols4["nn_id"][8] == 3
    want = np.mean(np.cos(np.radians([14, 16, 17, 18])))
    assert abs(cols4["knn_mean_cos"][8] - want) < 1e-6  # float32 cosines in the graph
    assert abs(cols4["nn_cos"][8] - math.cos(math.radians(14))) < 1e-6
    cols2 = K.neighbourhood_columns(K.knn_graph(E, valid, 2), ref)
    assert cols2["knn_ref_share"][8] == 0.5  # 30 and 60
    assert cols2["knn_ref_share"][0] == 1.0 and cols2["knn_ref_share"][5] == 0.0  # 10, 20 / 60, 62
    assert cols4["knn_ref_share"][2] == 0.75  # 20: 10, 30, 0, then 44 (24 deg) before 60 (40 deg)


# ----------------------------------------------------------------------------- the graph for UMAP


def test_umap_knn_puts_each_point_first_and_maps_to_positions():
    E = _rand(12, 3, seed=5)
    E[4] = 0.0
    valid = M.valid_rows(E)
    g = K.knn_graph(E, valid, 5)
    rows = np.nonzero(valid.numpy())[0]  # every valid row, in id order, as the map passes them
    got = g.umap_knn(rows, n_neighbors=4)
    assert got is not None
    idx, dist = got
    assert idx.shape == (11, 4) and dist.shape == (11, 4) and idx.dtype == np.int64 and dist.dtype == np.float32
    assert (idx[:, 0] == np.arange(11)).all() and (dist[:, 0] == 0).all()
    np.testing.assert_array_equal(rows[idx[:, 1:]], g.ids[rows, :3])
    np.testing.assert_allclose(dist[:, 1:], 1 - g.sims[rows, :3], atol=1e-6)
    assert g.umap_knn(rows, n_neighbors=7) is None  # asks for more neighbours than the graph has
    assert g.umap_knn(rows[:6], n_neighbors=4) is None  # a sample: neighbours outside it


def test_graph_matches_only_its_matrix():
    E = _rand(50, 6, seed=6).to(torch.float32)
    E[3] = 0.0
    g = K.knn_graph(E, M.valid_rows(E), 5)
    X = E.numpy().copy()
    assert g.matches(X) and g.matches(X * 3.0)  # cosines do not change with the scale
    X[17] += 0.5
    assert not g.matches(X)
    assert not g.matches(E.numpy()[:49])


# ----------------------------------------------------------------------------- the ranking


def _embeddings(V: int = 300, D: int = 12, seed: int = 0) -> ModelEmbeddings:
    E = _clustered(V, D, clusters=12, seed=seed)
    E[10] = 0.0
    E[11, 0] = math.nan
    E[12, 5] = math.inf
    pieces = [f"t{i}" for i in range(V - 8)] + [f"<unused{i}>" for i in range(8)]
    table = TokenTable.from_pieces(pieces, scheme="plain")
    prov = Provenance(
        source="synthetic", format="test", files=(), input_tensor="E", output_tensor=None, dtype="F32", method="test"
    )
    return ModelEmbeddings(input=E, output=None, tokens=table, provenance=prov)


@pytest.mark.parametrize("nn", ["exact", "approx"])
def test_ranking_has_the_neighbourhood_columns_for_every_token(nn):
    emb = _embeddings()
    opts = anomtok.RankOptions(nn=nn, knn_k=10, nn_degree=16, nn_sample=50, nn_top=20)
    r = anomtok.rank(emb, options=opts)
    f = r.frame.sort("token_id")
    invalid = ~f["valid"].to_numpy()
    assert np.nonzero(invalid)[0].tolist() == [10, 11, 12]
    for col in ("nn_cos", "knn_mean_cos", "knn_ref_share"):
        assert f[col].is_null().to_numpy().tolist() == invalid.tolist(), col
    assert (f["nn_id"].to_numpy()[invalid] == -1).all() and (f["nn_id"].to_numpy()[~invalid] >= 0).all()
    g = r.knn
    assert g is not None and g.ids.shape == (300, 10)
    # the columns are the graph's, and the share is over the reference set of the table
    ref = f["is_reference"].to_numpy()
    assert ref.sum() >= 3
    share = (ref[g.ids[~invalid]]).mean(axis=1)
    np.testing.assert_allclose(f["knn_ref_share"].to_numpy()[~invalid], share)
    np.testing.assert_allclose(f["knn_mean_cos"].to_numpy()[~invalid], g.sims[~invalid].mean(axis=1), rtol=1e-6)
    np.testing.assert_array_equal(f["nn_id"].to_numpy(), np.where(invalid, -1, g.ids[:, 0]))
    assert r.meta["knn"]["k"] == 10
    if nn == "exact":
        assert r.meta["nn_mode"] == "exact" and f["nn_exact"].to_numpy().tolist() == (~invalid).tolist()
    else:
        assert r.meta["nn_mode"].startswith("approx: pynndescent NN-descent")
        assert r.meta["knn"]["recall"] >= 0.95 and r.meta["knn"]["recall_sample"] == 50
        top = r.frame.filter(pl.col("valid")).head(20)["token_id"].to_list()
        assert f["nn_exact"].to_numpy()[top].all() and 20 < f["nn_exact"].sum() <= 70
        exact = anomtok.rank(emb, options=anomtok.RankOptions(nn="exact", knn_k=10)).frame.sort("token_id")
        e, a = exact["nn_cos"].to_numpy(), f["nn_cos"].to_numpy()
        ok = ~invalid
        assert np.all(a[ok] <= e[ok] + 1e-6)  # an approximate neighbour is never nearer than the nearest
        marked = f["nn_exact"].to_numpy()
        np.testing.assert_allclose(a[marked], e[marked], atol=1e-6)


def test_ranking_without_neighbours():
    r = anomtok.rank(_embeddings(), options=anomtok.RankOptions(nn="off"))
    f = r.frame
    assert r.knn is None and r.meta["nn_mode"] == "off" and r.meta["knn"] is None
    for col in ("nn_cos", "knn_mean_cos", "knn_ref_share"):
        assert f[col].is_null().all()
    assert (f["nn_id"] == -1).all() and not f["nn_exact"].any()


# ----------------------------------------------------------------------------- kept for the map


def test_the_graph_is_written_next_to_the_ranking_and_read_back(tmp_path):
    from anomtok.export import KNN_FILE, read_knn, write_ranking

    r = anomtok.rank(_embeddings(), options=anomtok.RankOptions(nn="exact", knn_k=6))
    paths = write_ranking(r, tmp_path)
    assert paths["knn"] == tmp_path / KNN_FILE
    g = read_knn(tmp_path / KNN_FILE)
    np.testing.assert_array_equal(g.ids, r.knn.ids)
    np.testing.assert_array_equal(g.sims, r.knn.sims)
    np.testing.assert_array_equal(g.exact_rows, r.knn.exact_rows)
    assert g.info == {
        k: v for k, v in r.knn.info.items() if k not in ("seconds", "approx_seconds")
    }  # timings: meta.json
    (tmp_path / KNN_FILE).write_bytes(b"not a zip")
    assert read_knn(tmp_path / KNN_FILE) is None and read_knn(tmp_path / "missing.npz") is None
    off = anomtok.rank(_embeddings(), options=anomtok.RankOptions(nn="off"))
    assert "knn" not in write_ranking(off, tmp_path / "off") and not (tmp_path / "off" / KNN_FILE).exists()


def _map_inputs(n: int = 300):
    X = _clustered(n, 16, clusters=6, seed=7).numpy()
    frame = pl.DataFrame({"token_id": np.arange(n), "rank": np.arange(1, n + 1), "score": -np.arange(n) / n})
    return X, frame


def test_the_map_gives_umap_the_ranking_graph(monkeypatch):
    from anomtok.maps import MapOptions, compute_map
    from anomtok.maps import umap as maps_umap

    X, frame = _map_inputs()
    g = K.knn_graph(torch.from_numpy(X), M.valid_rows(torch.from_numpy(X)), 15)
    seen: list = []
    monkeypatch.setattr(maps_umap, "umap_coords", lambda A, **kw: seen.append(kw["precomputed_knn"]) or A[:, :2].copy())
    res = compute_map(X, frame, MapOptions(full=True, n_neighbors=12), knn=g)
    want = g.umap_knn(np.arange(300), 12)
    np.testing.assert_array_equal(seen[-1][0], want[0])
    np.testing.assert_array_equal(seen[-1][1], want[1])
    assert res.meta["knn"] == {"from": "the ranking", "method": "exact", "k": 15}
    # another matrix, a sample of the rows, more neighbours than the graph has: UMAP searches itself
    compute_map(X[::-1].copy(), frame, MapOptions(full=True), knn=g)
    compute_map(X, frame, MapOptions(sample=100, flag_top=0), knn=g)
    res = compute_map(X, frame, MapOptions(full=True, n_neighbors=30), knn=g)
    assert seen[1:] == [None, None, None] and res.meta["knn"] == "umap-learn's own search"


def test_umap_runs_on_the_graph_without_searching_again(monkeypatch):
    import umap.umap_

    from anomtok.maps import MapOptions, compute_map

    X, frame = _map_inputs()
    g = K.knn_graph(torch.from_numpy(X), M.valid_rows(torch.from_numpy(X)), 15)

    def boom(*a, **k):
        raise AssertionError("UMAP searched the neighbours again")

    monkeypatch.setattr(umap.umap_, "nearest_neighbors", boom)
    res = compute_map(X, frame, MapOptions(full=True, n_epochs=10), knn=g)
    xy = res.coords.sort("token_id").select("x", "y").to_numpy()
    assert xy.shape == (300, 2) and np.isfinite(xy).all()
