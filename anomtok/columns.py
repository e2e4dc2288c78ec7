"""The ranking's columns as a small dependency graph: each column, and each value columns share
(the centroid, the matrix without its first principal component, the reference set, the k-NN
graph), is a :class:`Node` that names what it needs. ``Columns(emb, options).frame(names)``
computes the asked-for columns and what they need, nothing else, each once.

So ``anomtok nearest`` (``centroid_l2``, ``centroid_cos``, ``norm``) pays for a centroid and no
principal component or neighbour search; ``--metric score`` pays for the principal component of
the scored matrix and the reference set, not for the k-NN graph; ``rank`` asks for every column.
Every path computes a column with the same code from the same inputs, so a column has the same
values whichever others are asked for (``tests/test_columns.py``).

Worked example (``needed`` lists a column and everything under it, in the order computed)::

    >>> [n for n in needed(["centroid_cos"], on_output=False)]
    ['E', 'valid_mask', 'centroid', 'centroid_cos']
    >>> "knn" in needed(["score"], on_output=False), "E_pc_removed" in needed(["score"], on_output=False)
    (False, True)

A node's ``needs`` are computed before it; ``may_need`` are values it asks for only in some cases
(``Columns.get`` from inside it), e.g. the reference set needs the ``pc1_removed_cos`` of the
scored matrix only when the token table has too few reference tokens. ``Columns.seconds`` has the
time of each node computed (its own, without what it needed).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from . import knn as K
from . import metrics as M
from .device import resolve_device
from .embeddings import ModelEmbeddings
from .errors import InputError

__all__ = ["Node", "Columns", "COLUMNS", "TOKEN_COLUMNS", "graph", "needed", "by_row_blocks", "ROW_BLOCK"]

# Every column of the ranking's table, in its order (out_norm: only when the output matrix is untied).
COLUMNS = (
    "rank",
    "token_id",
    "token",
    "bytes_hex",
    "kind",
    "script",
    "partial_utf8",
    "valid",
    "is_reference",
    "flagged",
    "norm",
    "centroid_l2",
    "centroid_cos",
    "mean_cos",
    "pc1_removed_cos",
    "unused_ref_cos",
    "nn_cos",
    "nn_id",
    "nn_exact",
    "knn_mean_cos",
    "knn_ref_share",
    "score",
    "out_norm",
)
# Columns read from the token table alone (no matrix): computed for given rows only when asked.
TOKEN_COLUMNS = ("token_id", "token", "bytes_hex", "kind", "script", "partial_utf8")


@dataclass(frozen=True)
class Node:
    """One value of the graph: ``fn(cols, *values of needs)``; ``may_need``: asked for through
    ``cols.get`` in some cases only. ``column``: a column of the table (converted to numpy).
    ``step``: the name ``progress`` is told when the node is computed (the slow ones only)."""

    name: str
    needs: tuple[str, ...]
    fn: Callable[..., Any]
    may_need: tuple[str, ...] = ()
    column: bool = False
    step: str | None = None  # reported to ``progress`` when computed (the slow parts)


def _alias(name: str, of: str, column: bool = False) -> Node:
    return Node(name, (of,), lambda c, v: v, column=column)


# Rows per block of a row-wise metric whose temporary is as large as the matrix (``E - centroid``).
# 4,096 x 640 float32 is 10 MB: below glibc's mmap threshold once one block was freed, so the next
# reuse its pages. Gemma 3's centroid_l2 took 0.24 s in one piece (0.30 s of it system time: 671 MB
# of fresh pages), 0.04 s by blocks, the same values (benchmark machine, one core busy elsewhere).
ROW_BLOCK = 4096


def by_row_blocks(fn: Callable[..., torch.Tensor], E: torch.Tensor, valid: torch.Tensor, *args: Any) -> torch.Tensor:
    """``fn(E, valid, *args)`` of a metric computed row by row, ``ROW_BLOCK`` rows at a time: the
    same value for every row, without a temporary the size of ``E``."""
    if E.shape[0] <= ROW_BLOCK:
        return fn(E, valid, *args)
    return torch.cat(
        [fn(E[i : i + ROW_BLOCK], valid[i : i + ROW_BLOCK], *args) for i in range(0, E.shape[0], ROW_BLOCK)]
    )


def _valid(c: Columns, E: torch.Tensor) -> torch.Tensor:
    valid = M.valid_rows(E)
    n_valid = int(valid.sum())
    if n_valid < 2:
        raise InputError(f"the embedding has {n_valid} usable rows out of {E.shape[0]} (all NaN, infinite or zero)")
    return valid


def _reference(c: Columns, xvalid: torch.Tensor) -> tuple[torch.Tensor, str]:
    """(mask, where it came from): the token table's reference tokens, or when it has fewer than
    ``min_reference`` the ``max(8, 0.1% V)`` tokens with the highest ``pc1_removed_cos`` (see
    ``anomtok.ranking``)."""
    V = c.V
    table_ref = torch.from_numpy(c.emb.tokens.reference_mask()).to(c.dev)
    n_table_ref = int((table_ref & xvalid).sum())
    if n_table_ref >= c.opt.min_reference:
        return table_ref & xvalid, "token table"
    k = max(8, math.ceil(0.001 * V))
    xpc1 = c.get("x_pc1_removed_cos")
    ref = torch.zeros(V, dtype=torch.bool, device=c.dev)
    ref[torch.argsort(torch.nan_to_num(xpc1, nan=-math.inf), descending=True)[:k]] = True
    ref &= xvalid
    return ref, (
        f"fallback: the {k} tokens with the highest pc1_removed_cos (the token table has {n_table_ref} reference tokens)"
    )


def _knn(c: Columns, E: torch.Tensor, valid: torch.Tensor) -> K.KnnGraph | None:
    opt = c.opt
    if c.nn_mode == "exact":
        return K.knn_graph(E, valid, opt.knn_k, method="exact")
    if c.nn_mode == "approx":
        score = c.get("score")
        top = torch.argsort(torch.nan_to_num(score, nan=-math.inf), descending=True)[: opt.nn_top]
        return K.knn_graph(
            E,
            valid,
            opt.knn_k,
            method="nndescent",
            seed=opt.seed,
            exact_rows=top,
            recall_sample=opt.nn_sample,
            degree=opt.nn_degree,
        )
    return None


def _neighbourhood(c: Columns, graph: K.KnnGraph | None, reference: tuple[torch.Tensor, str]) -> dict[str, Any]:
    if graph is not None:
        return {**K.neighbourhood_columns(graph, reference[0].cpu().numpy()), "nn_exact": graph.exact_rows}
    V = c.V
    return {
        "nn_cos": np.full(V, np.nan),
        "nn_id": np.full(V, -1, np.int64),
        "knn_mean_cos": np.full(V, np.nan),
        "knn_ref_share": np.full(V, np.nan),
        "nn_exact": np.zeros(V, dtype=bool),
    }


def _flag_threshold(c: Columns, score: torch.Tensor, reference: tuple[torch.Tensor, str]) -> float:
    """The ``flag_quantile`` quantile of the reference tokens' scores (inf without any)."""
    ref_scores = score[reference[0] & torch.isfinite(score)]
    return float(torch.quantile(ref_scores.double(), c.opt.flag_quantile)) if ref_scores.numel() else math.inf


def _flagged(c: Columns, score, reference, valid, threshold: float) -> torch.Tensor:
    """Outside the reference set, not padding, and scoring like the known-unused tokens do."""
    flagged = (~reference[0]) & valid & (torch.nan_to_num(score, nan=-math.inf) >= threshold)
    return flagged & torch.from_numpy(np.asarray(c.emb.tokens.kinds) != "padding").to(c.dev)


def _rank(c: Columns, score: torch.Tensor, valid: torch.Tensor) -> np.ndarray:
    """1 = most suspicious: invalid rows first, then by score (NaN last), ties by token id."""
    key = torch.where(~valid, torch.full_like(score, math.inf), torch.nan_to_num(score, nan=-math.inf))
    order = torch.argsort(key, descending=True, stable=True).cpu().numpy()
    ranks = np.empty(c.V, dtype=np.int64)
    ranks[order] = np.arange(1, c.V + 1)
    return ranks


def _token_column(name: str) -> Node:
    return Node(name, (), lambda c: token_values(c.emb, name), column=True)


def token_values(emb: ModelEmbeddings, name: str, rows: np.ndarray | None = None) -> Any:
    """A column of ``TOKEN_COLUMNS`` for every row, or for ``rows`` (token ids) only."""
    t = emb.tokens
    ids = np.arange(len(t), dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
    if name == "token_id":
        return ids
    if name == "bytes_hex":
        return [t.bytes[i].hex() for i in ids]
    if name == "kind":
        return t.kinds if rows is None else [t.kinds[i] for i in ids]
    full = {"token": "displays", "script": "scripts", "partial_utf8": "partial"}[name]
    if rows is None:
        return getattr(t, full)
    one = {"token": t.display_of, "script": t.script_of, "partial_utf8": t.partial_of}[name]
    values = [one(int(i)) for i in ids]
    return np.array(values, dtype=bool) if name == "partial_utf8" else values


def graph(on_output: bool) -> dict[str, Node]:
    """The nodes for a model whose score is computed on its untied output matrix (``on_output``)
    or on its input embedding."""
    nodes = [
        Node("E", (), lambda c: c.emb.input.to(c.dev, torch.float32)),
        Node("valid_mask", ("E",), _valid, step="valid"),
        Node("centroid", ("E", "valid_mask"), lambda c, E, v: M.centroid(E, v), step="centroid"),
        Node("norm", ("E", "valid_mask"), lambda c, E, v: M.row_norms(E, v), column=True),
        Node(
            "centroid_l2",
            ("E", "valid_mask", "centroid"),
            lambda c, E, v, m: by_row_blocks(M.centroid_l2, E, v, m),
            column=True,
        ),
        Node("centroid_cos", ("E", "valid_mask", "centroid"), lambda c, E, v, m: M.cosine_to(E, m, v), column=True),
        Node("mean_cos", ("E", "valid_mask"), lambda c, E, v: M.mean_cosine(E, v), column=True, step="mean_cos"),
        Node("E_pc_removed", ("E", "valid_mask"), lambda c, E, v: M.remove_first_pc(E, v), step="pc1"),
        Node(
            "pc1_removed_cos",
            ("E_pc_removed", "valid_mask"),
            lambda c, Er, v: M.pc1_removed_centroid_cosine(Er, v),
            column=True,
        ),
        Node("reference", ("x_valid",), _reference, may_need=("x_pc1_removed_cos",)),
        Node(
            "unused_ref_cos",
            ("X", "x_valid", "reference", "X_pc_removed"),
            lambda c, X, xv, ref, Xr: M.reference_cosine(X, xv, ref[0], pc_removed=Xr),
            column=True,
            step="indicator",
        ),
        _alias("score", "unused_ref_cos", column=True),
        Node("is_reference", ("reference",), lambda c, ref: ref[0], column=True),
        _alias("valid", "valid_mask", column=True),
        Node("knn", ("E", "valid_mask"), _knn, may_need=("score",), step="nn_cos"),
        Node("neighbourhood", ("knn", "reference"), _neighbourhood),
        Node("flag_threshold", ("score", "reference"), _flag_threshold),
        Node("flagged", ("score", "reference", "valid_mask", "flag_threshold"), _flagged, column=True),
        Node("rank", ("score", "valid_mask"), _rank, column=True),
    ]
    for name in ("nn_cos", "nn_id", "nn_exact", "knn_mean_cos", "knn_ref_share"):
        nodes.append(Node(name, ("neighbourhood",), lambda c, nb, name=name: nb[name], column=True))
    nodes += [_token_column(name) for name in TOKEN_COLUMNS]
    if on_output:  # the score's matrix: the unembedding, with its own first principal component
        nodes += [
            Node("X", (), lambda c: c.emb.output.to(c.dev, torch.float32)),
            Node("x_valid", ("X", "valid_mask"), lambda c, X, v: M.valid_rows(X) & v),
            Node("X_pc_removed", ("X", "x_valid"), lambda c, X, xv: M.remove_first_pc(X, xv), step="output pc1"),
            Node(
                "x_pc1_removed_cos",
                ("X_pc_removed", "x_valid"),
                lambda c, Xr, xv: M.pc1_removed_centroid_cosine(Xr, xv),
            ),
            Node("out_norm", ("X", "x_valid"), lambda c, X, xv: M.row_norms(X, xv), column=True),
        ]
    else:  # the input embedding again: the same values, computed once
        nodes += [
            _alias("X", "E"),
            _alias("x_valid", "valid_mask"),
            _alias("X_pc_removed", "E_pc_removed"),
            _alias("x_pc1_removed_cos", "pc1_removed_cos"),
        ]
    return {n.name: n for n in nodes}


def needed(names: Iterable[str], on_output: bool) -> list[str]:
    """Every node ``names`` need (``needs``, and ``may_need`` as if taken), in an order that
    computes each after what it needs."""
    nodes, out, seen = graph(on_output), [], set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        node = nodes[name]
        for dep in node.needs + node.may_need:
            visit(dep)
        out.append(name)

    for n in names:
        visit(n)
    return out


class Columns:
    """The columns of one model's ranking, computed on demand and kept (``get``, ``frame``)."""

    def __init__(self, emb: ModelEmbeddings, options: Any, progress: Callable[[str], None] | None = None) -> None:
        self.emb, self.opt, self.progress = emb, options, progress
        self.dev = resolve_device(options.device)
        self.V, self.D = emb.shape
        self.on_output = emb.output is not None and emb.output.shape[0] == self.V
        mode = options.nn
        if mode == "auto":
            mode = "exact" if K.exact_cost(self.V, self.D) <= options.nn_exact_budget else "approx"
        self.nn_mode = mode
        self.nodes = graph(self.on_output)
        self.values: dict[str, Any] = {}
        self.seconds: dict[str, float] = {}
        self._stack: list[tuple[Node, float]] = []  # nodes being computed, and the time their nested gets took

    def get(self, name: str) -> Any:
        """The value of node ``name`` (computed once). Inside a node, only what it declares."""
        if name in self.values:
            return self.values[name]
        if name not in self.nodes:
            raise InputError(f"unknown column {name!r}; choose from {', '.join(self.columns())}")
        if self._stack:
            caller = self._stack[-1][0]
            if name not in caller.needs + caller.may_need:
                raise RuntimeError(f"column {caller.name!r} asked for {name!r}, which it does not declare")
        node = self.nodes[name]
        self._stack.append((node, 0.0))
        t0 = time.perf_counter()
        try:
            value = node.fn(self, *[self.get(dep) for dep in node.needs])
        finally:
            _, nested = self._stack.pop()
        spent = time.perf_counter() - t0
        if self._stack:  # the caller's own time excludes this one
            caller, before = self._stack[-1]
            self._stack[-1] = (caller, before + spent)
        self.values[name] = value
        self.seconds[name] = round(spent - nested, 4)
        if self.progress is not None and node.step:
            self.progress(node.step)
        return value

    def columns(self) -> list[str]:
        """The columns this model's table has, in order."""
        return [n for n in COLUMNS if n in self.nodes]

    def column(self, name: str) -> Any:
        """Column ``name`` for every row: numpy (float columns float64 with NaN), or a list of str."""
        node = self.nodes.get(name)
        if node is None or not node.column:
            raise InputError(f"unknown column {name!r}; choose from {', '.join(self.columns())}")
        value = self.get(name)
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().numpy()
        if isinstance(value, np.ndarray) and value.dtype.kind == "f":
            value = value.astype(np.float64)
        return value

    def frame(self, names: Sequence[str] | None = None) -> Any:
        """A polars DataFrame of ``names`` (default: every column), one row per token, in token
        id order; float columns have null where the metric is undefined (invalid rows)."""
        import polars as pl

        names = self.columns() if names is None else list(names)
        return pl.DataFrame({n: as_series(n, self.column(n)) for n in names})


def as_series(name: str, values: Any) -> Any:
    """A polars Series of a column; float NaN becomes null."""
    import polars as pl

    if isinstance(values, np.ndarray) and values.dtype.kind == "f":
        return pl.Series(name, values.astype(np.float64)).fill_nan(None)
    return pl.Series(name, values)
