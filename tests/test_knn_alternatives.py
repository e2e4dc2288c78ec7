"""The kernels of the k-NN study bench/knn_alternatives.py: the certified bfloat16 search must give
exact lists (falling back where it cannot certify), the bound must hold, and NN-descent by
matmuls must give lists of true cosines without the row itself or repeats."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import knn_alt_kernels as KA  # noqa: E402

from anomtok import knn as K  # noqa: E402


def _unit(V: int, D: int, seed: int) -> torch.Tensor:
    X = torch.randn(V, D, generator=torch.Generator().manual_seed(seed))
    return X / X.norm(dim=1, keepdim=True)


def test_bf16_scores_stay_within_the_bound():
    X = _unit(3000, 96, seed=1)
    S = (X[:300].bfloat16() @ X.bfloat16().T).float()
    assert (S - X[:300] @ X.T).abs().max() <= KA.bf16_error_bound(96)


def test_certified_search_gives_the_exact_lists_and_falls_back_in_dense_spots():
    X = _unit(5000, 64, seed=2)
    # a dense spot: 200 rows within ~1e-3 of one direction, more than the candidates per row
    X[:200] = X[0] + 1e-3 * torch.randn(200, 64, generator=torch.Generator().manual_seed(3))
    X = X / X.norm(dim=1, keepdim=True)
    rows = torch.cat([torch.arange(0, 50), torch.arange(4000, 4300)])
    ids, sims, certified = KA.certified_knn(X, 10, rows, candidates=32, block=128, col_block=1024)
    ex_ids, ex_sims = K.exact_knn(X, torch.ones(5000, dtype=torch.bool), 10, rows=rows)
    np.testing.assert_allclose(sims[rows].numpy(), ex_sims[rows].numpy(), atol=2e-6)
    same = (ids[rows] == ex_ids[rows]).float().mean().item()
    assert same > 0.999, same
    # the 50 dense rows cannot be certified (their 32 candidates all lie within the bound); nearly
    # all the others are
    assert 280 <= certified <= 300, certified


def test_nn_descent_by_matmuls_improves_on_its_start_and_lists_true_cosines():
    X = _unit(4000, 12, seed=4)  # few dimensions: where NN-descent converges, unlike Gemma's 640
    rows = torch.arange(0, 4000, 7)
    ex_ids, ex_sims = K.exact_knn(X, torch.ones(4000, dtype=torch.bool), 10, rows=rows)
    seen = []

    def report(step, ids, sims):
        rec = K.sample_recall(
            ids[rows, :10].numpy(), sims[rows, :10].numpy(), ex_ids[rows].numpy(), ex_sims[rows].numpy()
        )
        seen.append(rec["recall"])

    ids, sims = KA.local_join_knn(X, 16, 3, torch.Generator().manual_seed(0), report)
    assert len(seen) == 4 and seen == sorted(seen) and seen[-1] > seen[0] + 0.05, seen
    assert not (ids == torch.arange(4000)[:, None]).any()
    srt = torch.sort(ids, dim=1).values
    assert not (srt[:, 1:] == srt[:, :-1]).any()
    true = torch.einsum("id,ijd->ij", X, X[ids])
    torch.testing.assert_close(sims, true, atol=1e-5, rtol=0)


def test_a_join_round_keeps_the_best_of_every_pair_it_defines():
    # the definition: row a is compared with every row that shares a join set {v} + the L first
    # neighbours of v + the L closest reverse neighbours of v; its new list is the K best of its
    # old list and those
    X = _unit(800, 12, seed=6)
    V, K, L = 800, 16, 16
    ids, sims, new = KA._cluster_graph(X, K, torch.Generator().manual_seed(0))
    R, _ = KA._reverse(ids, sims, new, L)
    sets = torch.cat([torch.arange(V)[:, None], ids[:, :L], R], 1)
    seen: dict[int, set] = {}
    for row in sets.tolist():
        members = {x for x in row if x >= 0}
        for a in members:
            seen.setdefault(a, set()).update(members)
    got, got_sims, _ = KA._join(X, ids, sims, new, L, per_row=2 * L + 1)
    assert (got != ids).any()  # the round changed lists
    for a in range(V):
        cand = torch.tensor(sorted((seen.get(a, set()) | set(ids[a].tolist())) - {a, -1}))
        want = cand[(X[cand] @ X[a]).topk(K).indices]
        assert set(got[a].tolist()) == set(want.tolist()), a
