"""The map's settings reach UMAP (issue 9.1): tested through ``compute_map``, not ``umap_coords``."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import umap

from anomtok.maps import MapOptions, compute_map


def _matrix(n: int = 300, d: int = 16) -> tuple[np.ndarray, pl.DataFrame]:
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(6, d)) * 3
    M = (centres[rng.integers(0, 6, n)] + rng.normal(size=(n, d))).astype(np.float32)
    frame = pl.DataFrame({"token_id": np.arange(n), "rank": np.arange(1, n + 1), "score": -np.arange(n) / n})
    return M, frame


def _coords(res) -> np.ndarray:
    c = res.coords.sort("token_id")
    return np.stack([c["x"].to_numpy(), c["y"].to_numpy()], axis=1)


def test_seed_changes_coordinates_and_the_same_seed_gives_identical_files(tmp_path):
    M, frame = _matrix()
    a = compute_map(M, frame, MapOptions(full=True, seed=1, n_epochs=20), cache=tmp_path / "a" / "umap.parquet")
    b = compute_map(M, frame, MapOptions(full=True, seed=1, n_epochs=20), cache=tmp_path / "b" / "umap.parquet")
    c = compute_map(M, frame, MapOptions(full=True, seed=2, n_epochs=20), cache=tmp_path / "c" / "umap.parquet")
    assert (tmp_path / "a" / "umap.parquet").read_bytes() == (tmp_path / "b" / "umap.parquet").read_bytes()
    assert np.array_equal(_coords(a), _coords(b))
    assert not np.allclose(_coords(a), _coords(c), atol=1e-3)


def test_n_neighbors_and_min_dist_reach_umap(monkeypatch):
    seen: list[dict] = []
    real = umap.UMAP

    def recording(*args, **kwargs):
        seen.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(umap, "UMAP", recording)
    M, frame = _matrix()
    compute_map(M, frame, MapOptions(full=True, seed=5, n_neighbors=7, min_dist=0.33, n_epochs=10))
    assert len(seen) == 1
    assert seen[0]["random_state"] == 5 and seen[0]["n_neighbors"] == 7
    assert seen[0]["min_dist"] == pytest.approx(0.33) and seen[0]["n_epochs"] == 10
