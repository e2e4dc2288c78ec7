"""Known-answer, reference-implementation and invariance tests for anomtok.metrics."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
import torch

import anomtok.metrics
from anomtok import knn as K
from anomtok import metrics as M


def _rand(V: int = 40, D: int = 8, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(V, D, generator=g, dtype=torch.float64)


def _orthogonal(D: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(D, D, generator=g, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))  # a uniformly random orthogonal matrix


def _close(a: torch.Tensor, b, atol: float = 1e-9) -> None:
    np.testing.assert_allclose(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), atol=atol, rtol=0)


# ----------------------------------------------------------------------------- docstring


def test_module_doctest():
    result = doctest.testmod(anomtok.metrics, extraglobs={"torch": torch, **{n: getattr(M, n) for n in M.__all__}})
    assert result.attempted == 5
    assert result.failed == 0


def test_docstring_example_exact():
    E = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    valid = M.valid_rows(E)
    assert valid.tolist() == [True, True, True, False]
    _close(M.centroid(E, valid), [2 / 3, 2 / 3], atol=1e-7)
    cc = M.centroid_cosine(E, valid)
    _close(cc[:3], [math.sqrt(0.5), math.sqrt(0.5), 1.0], atol=1e-6)
    assert math.isnan(cc[3])
    _close(M.row_norms(E, valid)[:3], [1.0, 1.0, math.sqrt(2)], atol=1e-6)
    # mean cosine to the other two: row0: (0 + .7071)/2, row2: (.7071 + .7071)/2
    _close(M.mean_cosine(E, valid)[:3], [math.sqrt(0.5) / 2, math.sqrt(0.5) / 2, math.sqrt(0.5)], atol=1e-6)
    # centroid distance: |[1,0]-[2/3,2/3]| = sqrt(1/9+4/9)
    _close(M.centroid_l2(E, valid)[:3], [math.sqrt(5) / 3, math.sqrt(5) / 3, math.sqrt(2) / 3], atol=1e-6)


# ----------------------------------------------------------------------------- valid rows


def test_valid_rows_nan_inf_zero():
    E = torch.tensor(
        [
            [1.0, 2.0, 3.0],
            [math.nan, 0.0, 0.0],
            [0.0, math.inf, 0.0],
            [0.0, 0.0, -math.inf],
            [0.0, 0.0, 0.0],
            [-0.0, 0.0, -0.0],
            [0.0, 0.0, 1e-3],
            [math.nan, math.inf, 1.0],
        ]
    )
    assert M.valid_rows(E).tolist() == [True, False, False, False, False, False, True, False]
    assert M.valid_rows(E).dtype == torch.bool


def test_valid_rows_finite_nonzero_extreme_magnitudes():
    E = torch.tensor([[3e19, 4e19], [1e-30, 0.0], [1.0, 0.0]], dtype=torch.float32)
    assert M.valid_rows(E).tolist() == [True, True, True]


# ----------------------------------------------------------------------------- numpy references


def test_centroid_l2_cosine_against_numpy():
    E = _rand(50, 6, seed=3)
    E[7] = 0.0
    E[11, 2] = math.nan
    E[20, 0] = math.inf
    valid = M.valid_rows(E)
    keep = np.ones(50, bool)
    keep[[7, 11, 20]] = False
    assert valid.numpy().tolist() == keep.tolist()

    X = E.numpy()
    c = X[keep].mean(axis=0)
    _close(M.centroid(E, valid), c, atol=1e-12)

    with np.errstate(invalid="ignore", divide="ignore"):  # the invalid rows, not compared
        l2 = np.linalg.norm(X - c, axis=1)
        cos = (X @ c) / (np.linalg.norm(X, axis=1) * np.linalg.norm(c))
        norms = np.linalg.norm(X, axis=1)
    got_l2, got_cos, got_norm = M.centroid_l2(E, valid), M.centroid_cosine(E, valid), M.row_norms(E, valid)
    _close(got_l2[keep], l2[keep], atol=1e-12)
    _close(got_cos[keep], cos[keep], atol=1e-12)
    _close(got_norm[keep], norms[keep], atol=1e-12)
    for out in (got_l2, got_cos, got_norm):
        assert torch.isnan(out[~torch.from_numpy(keep)]).all()

    v = torch.from_numpy(np.arange(6, dtype=np.float64) - 2.5)
    with np.errstate(invalid="ignore", divide="ignore"):
        ref = (X @ v.numpy()) / (np.linalg.norm(X, axis=1) * np.linalg.norm(v.numpy()))
    _close(M.cosine_to(E, v, valid)[keep], ref[keep], atol=1e-12)


def test_centroid_l2_accepts_a_given_centroid():
    E = _rand(10, 3, seed=4)
    valid = M.valid_rows(E)
    c = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    _close(M.centroid_l2(E, valid, c), np.linalg.norm(E.numpy() - c.numpy(), axis=1), atol=1e-12)


def test_centroid_with_no_valid_row_raises():
    E = torch.zeros(3, 2)
    with pytest.raises(ValueError):
        M.centroid(E, M.valid_rows(E))


@pytest.mark.parametrize("dtype, atol", [(torch.float64, 1e-12), (torch.float32, 1e-6)])
def test_mean_cosine_equals_brute_force(dtype, atol):
    E = _rand(25, 5, seed=5).to(dtype)
    E[3] = 0.0
    E[9, 1] = math.nan
    valid = M.valid_rows(E)
    keep = valid.numpy()
    X = E.numpy()[keep].astype(np.float64)
    U = X / np.linalg.norm(X, axis=1, keepdims=True)
    S = U @ U.T
    n = len(X)
    brute = (S.sum(axis=1) - np.diag(S)) / (n - 1)
    got = M.mean_cosine(E, valid)
    assert got.dtype == dtype
    _close(got[torch.from_numpy(keep)], brute, atol=atol)
    assert math.isnan(got[3]) and math.isnan(got[9])


def test_mean_cosine_with_fewer_than_two_rows_is_nan():
    E = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    out = M.mean_cosine(E, M.valid_rows(E))
    assert out.shape == (2,) and torch.isnan(out).all()


# ----------------------------------------------------------------------------- invariances


def _cosine_metrics(E: torch.Tensor, ref: torch.Tensor) -> dict[str, torch.Tensor]:
    valid = M.valid_rows(E)
    return {
        "centroid_cos": M.centroid_cosine(E, valid),
        "mean_cos": M.mean_cosine(E, valid),
        "reference_cos": M.reference_cosine(E, valid, ref),
        "reference_cos_keep_pc": M.reference_cosine(E, valid, ref, drop_first_pc=False),
        "pc1_removed_cos": M.pc1_removed_centroid_cosine(M.remove_first_pc(E, valid), valid),
        "knn_cos": K.exact_knn(E, valid, 3)[1],  # cosines to the 3 nearest
    }


@pytest.mark.parametrize("transform", ["rotation", "scale_up", "scale_down", "rotation_and_scale"])
def test_cosine_metrics_invariant_to_rotation_and_scaling(transform):
    E = _rand(60, 7, seed=6) + 0.5  # a non-zero mean, like real embeddings
    E[5] = 0.0
    ref = torch.zeros(60, dtype=torch.bool)
    ref[[1, 2, 3, 5]] = True
    Q = _orthogonal(7)
    F = {"rotation": E @ Q, "scale_up": E * 37.0, "scale_down": E * 0.01, "rotation_and_scale": (E @ Q) * 3.0}[
        transform
    ]
    a, b = _cosine_metrics(E, ref), _cosine_metrics(F, ref)
    for name in a:
        assert torch.equal(torch.isnan(a[name]), torch.isnan(b[name])), name
        _close(b[name][~torch.isnan(a[name])], a[name][~torch.isnan(a[name])], atol=1e-9)
    # distances rotate with the space and scale with it
    valid = M.valid_rows(E)
    if transform == "rotation":
        _close(M.centroid_l2(F, valid)[valid], M.centroid_l2(E, valid)[valid], atol=1e-9)
    if transform == "scale_up":
        _close(M.centroid_l2(F, valid)[valid], 37.0 * M.centroid_l2(E, valid)[valid], atol=1e-9)


def test_nearest_neighbor_ids_invariant_to_rotation():
    E = _rand(30, 6, seed=7)
    valid = M.valid_rows(E)
    ids, _ = K.exact_knn(E, valid, 3)
    ids_rot, _ = K.exact_knn(E @ _orthogonal(6, seed=8), valid, 3)
    assert ids.tolist() == ids_rot.tolist()


def test_cosine_metrics_invariant_to_tiny_scale():
    E = _rand(20, 4, seed=9) + 0.3
    valid = M.valid_rows(E)
    small = E * 1e-13
    assert M.valid_rows(small).tolist() == valid.tolist()
    _close(M.centroid_cosine(small, valid), M.centroid_cosine(E, valid), atol=1e-9)
    _close(M.mean_cosine(small, valid), M.mean_cosine(E, valid), atol=1e-9)


# ----------------------------------------------------------------------------- first PC


def test_first_pc_recovers_a_planted_direction():
    g = torch.Generator().manual_seed(10)
    V, D = 300, 12
    d = torch.randn(D, generator=g, dtype=torch.float64)
    d /= d.norm()
    mean = torch.randn(D, generator=g, dtype=torch.float64)
    E = (
        mean
        + 0.1 * torch.randn(V, D, generator=g, dtype=torch.float64)
        + 3.0 * torch.randn(V, 1, generator=g, dtype=torch.float64) * d
    )
    valid = M.valid_rows(E)
    pc = M.first_pc(E, valid)
    assert pc.shape == (D,) and pc.dtype == E.dtype
    _close(pc.norm(), 1.0, atol=1e-12)
    assert abs(float(pc @ d)) > 0.999
    # sign convention: the centroid projects non-negatively
    assert float(pc @ M.centroid(E, valid)) >= 0
    # numpy reference: top right singular vector of the centred valid rows
    X = E.numpy() - E.numpy().mean(axis=0)
    ref = np.linalg.svd(X, full_matrices=False)[2][0]
    assert abs(float(np.dot(ref, pc.numpy()))) > 1 - 1e-9
    # removing it leaves rows orthogonal to it
    R = M.remove_first_pc(E, valid)
    _close(R @ pc, np.zeros(V), atol=1e-9)
    _close(R + torch.outer(E @ pc, pc), E, atol=1e-9)


def test_first_pc_ignores_invalid_rows():
    g = torch.Generator().manual_seed(11)
    d = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    E = (
        0.05 * torch.randn(100, 3, generator=g, dtype=torch.float64)
        + torch.randn(100, 1, generator=g, dtype=torch.float64) * d
    )
    E[0] = torch.tensor([1e6, 0.0, 0.0])  # a huge outlier that is...
    E[0, 2] = math.nan  # ...invalid
    valid = M.valid_rows(E)
    assert not valid[0]
    pc = M.first_pc(E, valid)
    assert abs(float(pc @ d)) > 0.99


def test_first_pc_translation_invariant():
    E = _rand(80, 5, seed=12) * torch.tensor([5.0, 1.0, 0.5, 0.2, 0.1], dtype=torch.float64)
    valid = M.valid_rows(E)
    shift = torch.tensor([3.0, -7.0, 1.0, 2.0, 0.5], dtype=torch.float64)
    assert abs(float(M.first_pc(E, valid) @ M.first_pc(E + shift, valid))) > 1 - 1e-9


def _spectrum(V: int, D: int, ratio: float, seed: int, dtype=torch.float64, shift: float = 0.5) -> torch.Tensor:
    """Rows with a covariance whose top eigenvalue is ``ratio`` times the second, in a random basis."""
    g = torch.Generator().manual_seed(seed)
    scale = torch.linspace(1.0, 0.2, D, dtype=torch.float64)
    scale[0] = ratio**0.5
    basis = torch.linalg.qr(torch.randn(D, D, generator=g, dtype=torch.float64))[0]
    E = (torch.randn(V, D, generator=g, dtype=torch.float64) * scale) @ basis + shift
    return E.to(dtype)


@pytest.mark.parametrize(
    "V, D, ratio, dtype, atol",
    [
        (400, 16, 9.0, torch.float64, 1e-10),
        (3000, 64, 1.5, torch.float64, 1e-9),
        (2000, 32, 1.2, torch.float64, 1e-9),
        (400, 16, 9.0, torch.float32, 1e-5),
        (3000, 64, 1.5, torch.float32, 1e-4),
        (20000, 32, 1.3, torch.float64, 1e-9),  # more rows than the 4,096 of the starting sample
        (20000, 48, 2.0, torch.float32, 1e-4),
    ],
)
def test_power_pc_equals_the_full_decomposition(V, D, ratio, dtype, atol):
    """The iterative first principal component (issue 13.3) against ``eigh`` of the covariance:
    same vector, same sign, on small matrices, with invalid rows among them."""
    E = _spectrum(V, D, ratio, seed=V + D)
    E[5], E[9] = math.nan, 0.0
    E = E.to(dtype)
    valid = M.valid_rows(E)
    X = M._clean(E, valid)
    n = int(valid.sum())
    raw = M.power_pc(X, X.sum(0, dtype=torch.float64) / n, n)
    assert raw is not None  # converged: this is not the fallback
    full = M.first_pc(E, valid, method="eigh")
    fast = M.first_pc(E, valid, method="power")
    assert fast.dtype == E.dtype
    _close(fast, full, atol=atol)
    assert float(fast @ M.centroid(E, valid)) > 0
    # numpy's SVD of the centred rows agrees (up to sign)
    Xn = E[valid].double().numpy()
    ref = np.linalg.svd(Xn - Xn.mean(0), full_matrices=False)[2][0]
    assert abs(float(np.dot(ref, fast.double().numpy()))) > 1 - (1e-8 if dtype == torch.float64 else 1e-6)


def test_power_pc_sign_when_the_centroid_has_no_projection():
    """Rows and their negatives: the centroid is zero, so the largest entry is made positive, by
    both methods."""
    half = torch.round(8 * _spectrum(200, 12, 4.0, seed=3, shift=0.0))  # integers: exact sums
    E = torch.cat([half, -half])
    valid = M.valid_rows(E)
    assert float(M.centroid(E, valid).abs().max()) == 0.0
    for method in ("eigh", "power"):
        pc = M.first_pc(E, valid, method=method)
        assert float(pc[torch.argmax(pc.abs())]) > 0, method
    _close(M.first_pc(E, valid, method="power"), M.first_pc(E, valid, method="eigh"), atol=1e-10)


def test_power_pc_falls_back_when_the_top_eigenvalue_is_not_separated():
    """Two equal top eigenvalues: no unique component and no convergence; ``first_pc`` falls back
    to the full decomposition (a unit vector of the top eigenspace)."""
    g = torch.Generator().manual_seed(4)
    D, V = 10, 5000
    E = torch.randn(V, D, generator=g, dtype=torch.float64)
    Q = torch.linalg.qr(E - E.mean(0))[0]  # orthonormal columns of mean zero: a diagonal covariance
    E = Q * torch.tensor([3.0, 3.0] + [1.0] * (D - 2), dtype=torch.float64) * math.sqrt(V)
    valid = M.valid_rows(E)
    n = int(valid.sum())
    assert M.power_pc(E, E.sum(0) / n, n, max_iter=20) is None
    pc = M.first_pc(E, valid, method="power")
    assert float(pc[2:].abs().max()) < 1e-9 and abs(float(pc.norm()) - 1) < 1e-12


def test_first_pc_auto_iterates_on_large_matrices(monkeypatch):
    calls = []
    real = M.power_pc
    monkeypatch.setattr(M, "power_pc", lambda *a, **k: calls.append(1) or real(*a, **k))
    E = _spectrum(500, 16, 4.0, seed=5)
    valid = M.valid_rows(E)
    M.first_pc(E, valid)
    assert calls == []  # 500 * 16 * 16 is below POWER_MIN_COST: the full decomposition
    monkeypatch.setattr(M, "POWER_MIN_COST", 1000)
    M.first_pc(E, valid)
    assert calls == [1]
    with pytest.raises(ValueError, match="method must be"):
        M.first_pc(E, valid, method="svd")


# ----------------------------------------------------------------------------- reference cosine


def test_reference_cosine_puts_planted_rows_on_top():
    g = torch.Generator().manual_seed(13)
    V, D = 200, 16
    E = torch.randn(V, D, generator=g, dtype=torch.float64)
    common = torch.randn(D, generator=g, dtype=torch.float64)
    common = 2.0 * common / common.norm()
    planted = [17, 42, 99, 150]
    reference = [190, 191, 192, 193, 194]
    for i in planted + reference:
        E[i] = common + 0.05 * torch.randn(D, generator=g, dtype=torch.float64)
    ref = torch.zeros(V, dtype=torch.bool)
    ref[reference] = True
    valid = M.valid_rows(E)
    for drop in (True, False):
        s = M.reference_cosine(E, valid, ref, drop_first_pc=drop)
        top = torch.argsort(s, descending=True)[: len(planted) + len(reference)].tolist()
        assert sorted(top) == sorted(planted + reference)
        assert float(s[planted].min()) > 0.95
    # passing the PC-removed matrix gives the same values
    pr = M.remove_first_pc(E, valid)
    _close(M.reference_cosine(E, valid, ref, pc_removed=pr), M.reference_cosine(E, valid, ref), atol=1e-12)
    # known answer without the PC step: cosine to the mean of the reference rows
    target = E[reference].mean(dim=0)
    _close(M.reference_cosine(E, valid, ref, drop_first_pc=False), M.cosine_to(E, target, valid), atol=1e-12)


def test_reference_cosine_ignores_invalid_reference_rows_and_needs_one():
    E = _rand(20, 4, seed=14)
    E[0] = 0.0
    valid = M.valid_rows(E)
    ref = torch.zeros(20, dtype=torch.bool)
    ref[[0, 1]] = True
    only1 = torch.zeros(20, dtype=torch.bool)
    only1[1] = True
    _close(
        M.reference_cosine(E, valid, ref, drop_first_pc=False)[1:],
        M.reference_cosine(E, valid, only1, drop_first_pc=False)[1:],
        atol=1e-12,
    )
    with pytest.raises(ValueError):
        M.reference_cosine(E, valid, torch.zeros(20, dtype=torch.bool))
    none_valid = torch.zeros(20, dtype=torch.bool)
    none_valid[0] = True
    with pytest.raises(ValueError):
        M.reference_cosine(E, valid, none_valid)


# (the nearest-neighbour tests are in test_knn.py)


# ----------------------------------------------------------------------------- invalid rows


def test_invalid_rows_give_nan_everywhere_and_do_not_move_the_centroid():
    E = _rand(30, 5, seed=20)
    valid_before = M.valid_rows(E)
    c_before = M.centroid(E, valid_before)
    ref = torch.zeros(30, dtype=torch.bool)
    ref[[1, 2, 3]] = True
    base = {
        "norm": M.row_norms(E, valid_before),
        "l2": M.centroid_l2(E, valid_before),
        "ccos": M.centroid_cosine(E, valid_before),
        "mcos": M.mean_cosine(E, valid_before),
        "ref": M.reference_cosine(E, valid_before, ref),
    }

    bad = E.clone().to(torch.float64)
    extra = torch.zeros(4, 5, dtype=torch.float64)
    extra[0, 0] = math.nan
    extra[1, 3] = math.inf
    extra[2] = 0.0
    extra[3] = torch.tensor([math.nan, math.inf, -math.inf, 1e300, 0.0])
    bad = torch.cat([bad, extra])
    ref_bad = torch.cat([ref, torch.tensor([True, True, True, False])])  # invalid reference rows too
    valid = M.valid_rows(bad)
    assert valid.tolist() == [True] * 30 + [False] * 4

    _close(M.centroid(bad, valid), c_before, atol=1e-12)
    _close(M.first_pc(bad, valid), M.first_pc(E, valid_before), atol=1e-9)
    outs = {
        "norm": M.row_norms(bad, valid),
        "l2": M.centroid_l2(bad, valid),
        "ccos": M.centroid_cosine(bad, valid),
        "mcos": M.mean_cosine(bad, valid),
        "ref": M.reference_cosine(bad, valid, ref_bad),
        "pc1": M.pc1_removed_centroid_cosine(M.remove_first_pc(bad, valid), valid),
    }
    nn_ids, nn_vals = K.exact_knn(bad, valid, 3)
    for name, out in outs.items():
        assert out.shape == (34,)
        assert torch.isnan(out[30:]).all(), name
        assert not torch.isnan(out[:30]).any(), name
        if name in base:
            _close(out[:30], base[name], atol=1e-9)
    assert torch.isnan(nn_vals[30:]).all() and (nn_ids[30:] == -1).all()
    assert (nn_ids[:30] < 30).all() and (nn_ids[:30] >= 0).all()
    assert not torch.isnan(M.remove_first_pc(bad, valid)).any()
