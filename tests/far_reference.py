"""A tiny model whose never-seen tokens are *not* near its reference set (issue 11, part 3).

In the tiny trained model the reference rows (the added ``<unusedN>`` tokens and the padding rows)
and the never-seen ordinary tokens received the same updates (none but the shared drift), so they
sit together. Real checkpoints need not be so kind: ``transformers``' ``resize_token_embeddings``
(mean resizing) gives added tokens rows drawn from a normal with the mean and covariance of the
existing rows, so those reference tokens look like trained tokens, far from the never-seen ones.
:func:`move_reference_rows` does that to a matrix, seeded.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def move_reference_rows(
    E: torch.Tensor, reference: Sequence[int], trained: Sequence[int], seed: int = 0
) -> torch.Tensor:
    """A copy of ``E`` whose ``reference`` rows are drawn from N(mean, covariance) of the
    ``trained`` rows (float32, seeded)."""
    X = E.detach().to(torch.float32).clone()
    rows = X[torch.as_tensor(list(trained))]
    mean = rows.mean(0)
    chol = torch.linalg.cholesky(torch.cov(rows.T) + 1e-6 * torch.eye(X.shape[1]))
    g = torch.Generator().manual_seed(seed)
    ref = torch.as_tensor(list(reference))
    X[ref] = mean + torch.randn(len(ref), X.shape[1], generator=g) @ chol.T
    return X
