"""Teacher-forced scoring of candidate tokens: :func:`score_tokens` (batched, the prompt prefix run
once and its KV cache shared, logits only where they are read, ``settle`` to skip templates that
can no longer change a verdict) and :func:`score_tokens_one_by_one`, the reference path it is
tested against (one sequence per forward pass). See :mod:`anomtok.verify` for the method."""

from __future__ import annotations

import copy
import inspect
import math
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import InputError
from .prompts import N_POSITIONS, VERIFY_THRESHOLD, PromptSet, check_positions, make_prompt_set, token_prompts
from .scores import Scores

__all__ = ["DEFAULT_BATCH_SIZE", "MAX_BATCH_SIZE", "check_batch_size", "score_tokens", "score_tokens_one_by_one"]

DEFAULT_BATCH_SIZE = 32
MAX_BATCH_SIZE = 1024


def check_batch_size(batch_size: int) -> None:
    """``batch_size`` is an integer from 1 to ``MAX_BATCH_SIZE``, else an ``InputError``."""
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise InputError(f"batch_size must be an integer from 1 to {MAX_BATCH_SIZE}, not {batch_size!r}")


def _supports(net: Any, name: str) -> bool:
    try:
        return name in inspect.signature(net.forward).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
        return False


def _cache_argument(net: Any) -> str | None:
    """The name of the forward argument (and output field) holding the KV cache: ``cache`` in
    recent transformers, ``past_key_values`` before; None when the model takes neither."""
    for name in ("cache", "past_key_values"):
        if _supports(net, name):
            return name
    return None


def _prepare(
    model: Any,
    token_ids: Sequence[int],
    prompts: PromptSet | None,
    n_positions: int,
    threshold: float,
    tokens: Any,
    device: str,
    dtype: str,
) -> tuple[Any, list[int], PromptSet]:
    from ..generation.model import CausalLM, load_causal_lm

    if not 0.0 < threshold < 1.0 or not math.isfinite(threshold):
        raise InputError(f"threshold must be in (0, 1), not {threshold}")
    check_positions(n_positions)
    lm = model if isinstance(model, CausalLM) else load_causal_lm(model, device=device, dtype=dtype)
    ids = [int(t) for t in token_ids]
    bad = [t for t in ids if not 0 <= t < lm.n_vocab]
    if bad:
        raise InputError(f"token id {bad[0]} is not a token of the model (0..{lm.n_vocab - 1})")
    ps = prompts if prompts is not None else make_prompt_set(lm, tokens)
    limit = lm.max_positions
    for name, seq in zip(ps.names, ps.sequences):
        if limit and len(seq) > limit:
            raise InputError(f"template {name!r} has {len(seq)} tokens; the model takes at most {limit}")
    return lm, ids, ps


def _read(logits: Any, targets: Any, nv: int) -> tuple[Any, Any]:
    """(log-probabilities of ``targets`` (B,) at every kept position (B, k), greedy choice at the
    last kept position (B,)), over the tokenizer's vocabulary, in float32."""
    import torch

    z = torch.log_softmax(logits[..., :nv].float(), dim=-1)
    lp = z.gather(-1, targets.view(-1, 1, 1).expand(-1, z.shape[1], 1)).squeeze(-1)
    return lp, z[:, -1].argmax(-1)


def _empty(n: int, ps: PromptSet, n_positions: int) -> tuple[np.ndarray, np.ndarray]:
    return np.full((n, len(ps.names), n_positions), np.nan), np.full((n, len(ps.names)), -1, dtype=np.int64)


def score_tokens(
    model: Any,
    token_ids: Sequence[int],
    *,
    prompts: PromptSet | None = None,
    n_positions: int = N_POSITIONS,
    threshold: float = VERIFY_THRESHOLD,
    batch_size: int = DEFAULT_BATCH_SIZE,
    share_prefix: bool = True,
    settle: bool = False,
    tokens: Any = None,
    device: str = "auto",
    dtype: str = "auto",
    progress: bool = False,
) -> Scores:
    """Teacher-forced repetition scores of ``token_ids``, batched (see the module docstring).

    ``model``: a loaded ``CausalLM`` or a spec for ``load_causal_lm`` (loaded with ``device``
    ``auto|cpu|cuda[:N]`` and ``dtype``; ``auto`` = bfloat16 on CUDA, float32 on CPU).
    ``prompts``: a :class:`PromptSet` (built with :func:`make_prompt_set` when None, from
    ``tokens`` or the tokenizer). ``batch_size``: sequences (tokens of one template) per forward
    pass. ``share_prefix``: run the prompt part before the first slot once and share its KV cache.
    ``settle``: score the templates cheapest first and skip a token's remaining templates once
    its probability reaches ``threshold`` (its verdict, "not verified", can no longer change):
    the verdicts are those of the full computation, ``p`` is exact for every verified token and
    a lower bound (>= threshold) for the others, and skipped templates are NaN.
    Returns :class:`Scores`; ``scores.p`` is ``max_prob``, ``scores.verified`` is ``p < threshold``."""
    import torch

    check_batch_size(batch_size)
    lm, ids, ps = _prepare(model, token_ids, prompts, n_positions, threshold, tokens, device, dtype)
    net, dev, nv = lm.model, lm.input_device, lm.n_vocab
    keep = _supports(net, "logits_to_keep")
    cache_kw = _cache_argument(net) if share_prefix else None
    cache_ok = cache_kw is not None
    logp, top = _empty(len(ids), ps, n_positions)
    shared = False
    n_batches = len(ps.names) * math.ceil(len(ids) / batch_size) if ids else 0
    bar = _progress_bar(progress, n_batches, len(ids))
    order = list(range(len(ps.names)))
    if settle:  # cheapest first: the fewest tokens each candidate adds after the shared prefix
        order.sort(key=lambda j: len(ps.sequences[j]) - (ps.prefix_length(j) if cache_ok else 0))
    best_lp = np.full(len(ids), -np.inf)
    t0 = time.perf_counter()
    with torch.inference_mode():
        for j in order:
            seq, slots = ps.sequences[j], ps.slots[j]
            todo = [i for i in range(len(ids)) if not (settle and np.exp(best_lp[i]) >= threshold)]
            if bar is not None and len(todo) < len(ids):
                bar.update(math.ceil(len(ids) / batch_size) - math.ceil(len(todo) / batch_size))
            if not todo:
                continue
            answer = ps.answer_positions(j, n_positions)
            P = ps.prefix_length(j) if cache_ok else 0
            # the input stops before the last position read: logits at k - 1 predict the token at k, so
            # the answer slot itself (the last token) is never an input whose output is read
            L = max(answer)
            base = torch.tensor(seq[:L], dtype=torch.long)
            in_slots = [k for k in slots if k < L]
            slot_t = torch.tensor(in_slots, dtype=torch.long) - P
            read = torch.tensor(answer, dtype=torch.long) - 1 - P
            prefix_cache = None
            if P and cache_kw is not None:
                out = net(
                    input_ids=base[:P].unsqueeze(0).to(dev), use_cache=True, **({"logits_to_keep": 1} if keep else {})
                )
                prefix_cache = getattr(out, cache_kw, None)
                if not hasattr(prefix_cache, "batch_repeat_interleave"):  # no cache, or a legacy tuple: no sharing
                    prefix_cache, P = None, 0
                    slot_t = torch.tensor(in_slots, dtype=torch.long)
                    read = torch.tensor(answer, dtype=torch.long) - 1
                shared = shared or prefix_cache is not None
            suffix = base[P:]
            pos = torch.arange(P, L, dtype=torch.long)
            for b0 in range(0, len(todo), batch_size):
                rows = todo[b0 : b0 + batch_size]
                chunk = torch.tensor([ids[i] for i in rows], dtype=torch.long)
                B = len(chunk)
                x = suffix.repeat(B, 1)
                x[:, slot_t] = chunk.unsqueeze(1)
                kw: dict[str, Any] = {
                    "input_ids": x.to(dev),
                    "use_cache": prefix_cache is not None,
                    "position_ids": pos.unsqueeze(0).expand(B, -1).to(dev),
                }
                if prefix_cache is not None and cache_kw is not None:
                    cache = copy.deepcopy(prefix_cache)
                    cache.batch_repeat_interleave(B)
                    kw[cache_kw] = cache
                    kw["attention_mask"] = torch.ones((B, L), dtype=torch.long, device=dev)
                if keep:
                    kw["logits_to_keep"] = read.to(dev)
                logits = net(**kw).logits
                if not keep:
                    logits = logits[:, read.to(logits.device)]
                lp, best = _read(logits, chunk.to(logits.device), nv)
                lp_np = lp.cpu().double().numpy()
                logp[rows, j, : len(answer)] = lp_np
                top[rows, j] = best.cpu().numpy()
                best_lp[rows] = np.maximum(best_lp[rows], lp_np.max(axis=1))
                if bar is not None:
                    bar.update(1)
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - t0
    if progress and not sys.stderr.isatty():
        print(f"anomtok: scored {len(ids)} tokens in {seconds:.1f} s", file=sys.stderr, flush=True)
    return Scores(
        ids,
        ps.names,
        logp,
        top,
        threshold,
        n_positions,
        seconds,
        {
            "method": "teacher forcing, batched",
            "batch_size": batch_size,
            "shared_prefix": shared,
            "settle": settle,
            "device": str(dev),
            "dtype": lm.placement()["dtype"],
            **ps.to_dict(),
        },
    )


def score_tokens_one_by_one(
    model: Any,
    token_ids: Sequence[int],
    *,
    prompts: PromptSet | None = None,
    n_positions: int = N_POSITIONS,
    threshold: float = VERIFY_THRESHOLD,
    tokens: Any = None,
    device: str = "auto",
    dtype: str = "auto",
) -> Scores:
    """The reference path: the same scores as :func:`score_tokens`, each (token, template)
    sequence of :func:`token_prompts` in a forward pass of its own (batch size 1, no shared
    prefix, default positions, logits kept only where they are read)."""
    import torch

    lm, ids, ps = _prepare(model, token_ids, prompts, n_positions, threshold, tokens, device, dtype)
    net, dev, nv = lm.model, lm.input_device, lm.n_vocab
    keep = _supports(net, "logits_to_keep")
    logp, top = _empty(len(ids), ps, n_positions)
    t0 = time.perf_counter()
    with torch.inference_mode():
        for i, t in enumerate(ids):
            for j, (seq, answer) in enumerate(token_prompts(ps, t, n_positions)):
                read = torch.tensor(answer, dtype=torch.long, device=dev) - 1
                x = torch.tensor([seq], dtype=torch.long, device=dev)
                out = net(input_ids=x, use_cache=False, **({"logits_to_keep": read} if keep else {}))
                logits = out.logits if keep else out.logits[:, read]
                lp, best = _read(logits, torch.tensor([t], device=logits.device), nv)
                logp[i, j, : len(answer)] = lp[0].cpu().double().numpy()
                top[i, j] = int(best[0])
    return Scores(
        ids,
        ps.names,
        logp,
        top,
        threshold,
        n_positions,
        time.perf_counter() - t0,
        {
            "method": "teacher forcing, one sequence per forward pass",
            "device": str(dev),
            "dtype": lm.placement()["dtype"],
            **ps.to_dict(),
        },
    )


def _progress_bar(progress: bool, n_batches: int, n_tokens: int) -> Any:
    if not progress or not n_batches:
        return None
    if sys.stderr.isatty():
        from tqdm.auto import tqdm

        return tqdm(total=n_batches, unit="batch", desc="verifying", leave=False)
    print(f"anomtok: scoring {n_tokens} tokens ({n_batches} batches)", file=sys.stderr, flush=True)
    return None
