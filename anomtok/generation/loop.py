"""Our own batched decode loop: KV cache, left padding, per-step statistics, bounded.

Why not ``transformers.generate``: it refuses ``T <= 0`` ("temperature has to be a strictly
positive float"), and its logits processors turn a masked ``-inf`` into ``+inf`` under a
negative T. This loop calls the model's ``forward`` directly and hands each step's logits to
:mod:`anomtok.generation.sampler`.

What it does right:

* **Left padding** with an attention mask, and position ids counted from each row's first real
  token (``cumsum(mask) - 1``), so a padded row sees exactly the positions it would see alone.
* **Per-sequence random streams**: sequence ``i`` of a run seeded with ``seed`` draws from its
  own generator seeded ``row_seed(seed, i)``, one uniform per step. Batch size and batch
  composition never change what a sequence gets (tested: batched == unbatched).
* Logit columns past the tokenizer's vocabulary (padding rows of the matrix) are masked: they
  are no token, and negative temperature would otherwise pick them first.
* Only the last position's logits are computed in the prefill (``logits_to_keep=1``).
* Bounded: ``max_new_tokens <= MAX_NEW_TOKENS``, ``batch_size <= MAX_BATCH_SIZE``, a wall-clock
  ``timeout_s`` (the running batch stops, later prompts are not started; both are marked
  ``stop_reason="timeout"``), optional stop at EOS, a tqdm progress bar when asked.

Per step and sequence it records the statistics of ``sampler.step_stats``: the chosen token's
log-probability under the model (T = 1), the entropy, top probability and log max/min
probability ratio of the model's distribution, and the log-probability and entropy of the
distribution actually sampled from.

>>> gens = generate(lm, [lm.encode("Temperature is a concept")], SamplerConfig(-0.001),
...                 max_new_tokens=8, seed=0)                                   # doctest: +SKIP
>>> gens[0].token_ids, gens[0].stats["logprob"]                                  # doctest: +SKIP
"""

from __future__ import annotations

import inspect
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from ..errors import InputError
from .sampler import (
    STAT_NAMES,
    SamplerConfig,
    choose,
    draw,
    logits_problem,
    make_generators,
    raise_for_problem,
    row_seed,
    sampling_probs,
    step_stats,
)

__all__ = ["Generation", "generate", "MAX_NEW_TOKENS", "MAX_BATCH_SIZE", "MAX_PROMPTS", "STOP_REASONS"]

log = logging.getLogger(__name__)

MAX_NEW_TOKENS = 4096
MAX_BATCH_SIZE = 512
MAX_PROMPTS = 100_000
STOP_REASONS = ("length", "eos", "timeout")
# Steps between two looks at the logits' health (NaN, +inf, a row all masked): each look makes
# the host wait for the device, so the loop looks every CHECK_EVERY steps and at the end.
CHECK_EVERY = 32


@dataclass
class Generation:
    """One generated sequence. ``stats[name][t]`` is step t's value (see ``STAT_NAMES``);
    ``watched[t]`` is the model's probability (T = 1) of the watched token at step t."""

    index: int
    prompt_ids: list[int]
    token_ids: list[int]
    seed: int | None
    stop_reason: str
    stats: dict[str, list[float]] = field(default_factory=dict)
    watched: list[float] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if d["watched"] is None:
            d.pop("watched")
        return d


def _supports(model: Any, name: str) -> bool:
    try:
        return name in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):  # pragma: no cover
        return False


def _unpack(model: Any) -> tuple[Any, dict[str, Any]]:
    """(torch module, defaults) from a CausalLM or a bare transformers model."""
    if hasattr(model, "model") and hasattr(model, "tokenizer") and hasattr(model, "n_vocab"):
        return model.model, {
            "eos_ids": tuple(model.eos_ids),
            "pad_id": model.pad_id,
            "n_vocab": model.n_vocab,
            "device": model.input_device,
            "max_positions": model.max_positions,
        }
    dev = next(model.parameters()).device
    cfg = model.config
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None) or getattr(cfg, "eos_token_id", None)
    eos_ids = tuple(eos) if isinstance(eos, (list, tuple)) else ((eos,) if isinstance(eos, int) else ())
    pad = getattr(cfg, "pad_token_id", None)
    return model, {
        "eos_ids": eos_ids,
        "pad_id": pad if isinstance(pad, int) else 0,
        "n_vocab": None,
        "device": dev,
        "max_positions": getattr(cfg, "max_position_embeddings", None),
    }


def _validate(
    prompts: Sequence[Sequence[int]],
    max_new_tokens: int,
    batch_size: int,
    rows: int,
    max_positions: int | None,
    seeds: Sequence[int] | None,
    watch_ids: Sequence[int] | None,
) -> None:
    if (
        not isinstance(max_new_tokens, int)
        or isinstance(max_new_tokens, bool)
        or not 1 <= max_new_tokens <= MAX_NEW_TOKENS
    ):
        raise InputError(f"max_new_tokens must be an integer from 1 to {MAX_NEW_TOKENS}, not {max_new_tokens!r}")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise InputError(f"batch_size must be an integer from 1 to {MAX_BATCH_SIZE}, not {batch_size!r}")
    if len(prompts) == 0:
        raise InputError("no prompts to generate from")
    if len(prompts) > MAX_PROMPTS:
        raise InputError(f"{len(prompts)} prompts: at most {MAX_PROMPTS} per run")
    for i, p in enumerate(prompts):
        if len(p) == 0:
            raise InputError(f"prompt {i} has no tokens")
        bad = [t for t in p if not 0 <= int(t) < rows]
        if bad:
            raise InputError(f"prompt {i}: token id {bad[0]} is outside the model's {rows} rows")
        if max_positions and len(p) + max_new_tokens > max_positions:
            raise InputError(
                f"prompt {i}: {len(p)} tokens + max_new_tokens {max_new_tokens} exceed the model's "
                f"{max_positions} positions"
            )
    for name, seq in (("seeds", seeds), ("watch_ids", watch_ids)):
        if seq is not None and len(seq) != len(prompts):
            raise InputError(f"{name} must have one entry per prompt ({len(prompts)}), not {len(seq)}")


def generate(
    model: Any,
    prompts: Sequence[Sequence[int]],
    config: SamplerConfig,
    *,
    max_new_tokens: int = 64,
    seed: int = 0,
    seeds: Sequence[int] | None = None,
    batch_size: int = 8,
    stop_at_eos: bool = False,
    eos_ids: Sequence[int] | None = None,
    pad_id: int | None = None,
    n_vocab: int | None = None,
    timeout_s: float | None = None,
    progress: bool = False,
    watch_ids: Sequence[int] | None = None,
) -> list[Generation]:
    """Generate from every prompt (token id lists) and return one ``Generation`` per prompt, in
    order. ``model``: a ``CausalLM`` (from ``load_causal_lm``) or a transformers causal LM;
    ``eos_ids``, ``pad_id`` and ``n_vocab`` default to the model's. ``seeds`` overrides the
    per-sequence seeds (default ``row_seed(seed, i)``). ``watch_ids``: one token id per prompt
    whose probability is recorded at every step (verification by prompting)."""
    if not isinstance(config, SamplerConfig):
        raise InputError("config must be a SamplerConfig")
    net, d = _unpack(model)
    eos = tuple(int(e) for e in (eos_ids if eos_ids is not None else d["eos_ids"]))
    pad = int(pad_id if pad_id is not None else d["pad_id"])
    dev = d["device"]
    out_emb = net.get_output_embeddings()
    rows = int(out_emb.weight.shape[0]) if out_emb is not None else int(net.config.vocab_size)
    nv = int(n_vocab if n_vocab is not None else (d["n_vocab"] or rows))
    if not 1 <= nv <= rows:
        raise InputError(f"n_vocab must be in 1..{rows}, not {nv}")
    if timeout_s is not None and (not math.isfinite(timeout_s) or timeout_s <= 0):
        raise InputError(f"timeout_s must be a positive number of seconds, not {timeout_s}")
    prompts = [[int(t) for t in p] for p in prompts]
    _validate(prompts, max_new_tokens, batch_size, rows, d["max_positions"], seeds, watch_ids)
    if stop_at_eos and not eos:
        raise InputError("stop_at_eos: the model declares no EOS token (pass eos_ids)")
    row_seeds = [int(s) for s in seeds] if seeds is not None else [row_seed(seed, i) for i in range(len(prompts))]
    keep_logits = _supports(net, "logits_to_keep")
    start = time.perf_counter()
    deadline = start + timeout_s if timeout_s is not None else math.inf
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))  # less padding per batch
    results: list[Generation | None] = [None] * len(prompts)
    bar = None
    if progress:  # a tqdm bar on a terminal, one line at the start and one at the end in a log
        from .. import progress as _progress

        bar = _progress.bar(len(prompts) * max_new_tokens, f"generating {len(prompts)} sequences", "tok")
    try:
        for b0 in range(0, len(order), batch_size):
            idx = order[b0 : b0 + batch_size]
            if time.perf_counter() >= deadline:
                for i in idx:
                    results[i] = Generation(
                        i,
                        prompts[i],
                        [],
                        row_seeds[i] if not config.greedy else None,
                        "timeout",
                        {k: [] for k in STAT_NAMES},
                        [] if watch_ids is not None else None,
                    )
                continue
            batch = _run_batch(
                net,
                [prompts[i] for i in idx],
                config,
                [row_seeds[i] for i in idx],
                max_new_tokens=max_new_tokens,
                stop_at_eos=stop_at_eos,
                eos=eos,
                pad=pad,
                nv=nv,
                dev=dev,
                deadline=deadline,
                keep_logits=keep_logits,
                bar=bar,
                watch=[int(watch_ids[i]) for i in idx] if watch_ids is not None else None,
            )
            for i, g in zip(idx, batch):
                g.index = i
                results[i] = g
    finally:
        if bar is not None:
            bar.close()
    return [r for r in results if r is not None]


def _forward(net: Any, ids: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor, past: Any, keep_logits: bool):
    kw: dict[str, Any] = {"input_ids": ids, "attention_mask": mask, "position_ids": pos, "use_cache": True}
    if past is not None:
        kw["past_key_values"] = past
    if keep_logits:
        kw["logits_to_keep"] = 1
    out = net(**kw)
    return out.logits[:, -1, :].float(), out.past_key_values


@torch.inference_mode()
def _run_batch(
    net: Any,
    prompts: list[list[int]],
    config: SamplerConfig,
    seeds: list[int],
    *,
    max_new_tokens: int,
    stop_at_eos: bool,
    eos: tuple[int, ...],
    pad: int,
    nv: int,
    dev: torch.device,
    deadline: float,
    keep_logits: bool,
    bar: Any,
    watch: list[int] | None,
) -> list[Generation]:
    B = len(prompts)
    L = max(len(p) for p in prompts)
    ids = torch.full((B, L), pad, dtype=torch.long)
    mask = torch.zeros((B, L), dtype=torch.long)
    for r, p in enumerate(prompts):
        ids[r, L - len(p) :] = torch.tensor(p, dtype=torch.long)
        mask[r, L - len(p) :] = 1
    ids, mask = ids.to(dev), mask.to(dev)
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    # every uniform of every row at once (the same numbers as one draw per step): no per-step copy
    gens = make_generators(seeds) if not config.greedy else None
    uniforms = (
        torch.stack([torch.rand(max_new_tokens, generator=g, dtype=torch.float64) for g in gens]).to(dev)
        if gens is not None
        else None
    )
    seen = None
    if config.repetition_penalty != 1.0:
        seen = torch.zeros((B, nv), dtype=torch.bool, device=dev)
        for r, p in enumerate(prompts):
            seen[r, torch.tensor([t for t in p if t < nv], dtype=torch.long, device=dev)] = True
    eos_t = torch.tensor(eos, dtype=torch.long, device=dev) if eos else None
    watch_t = torch.tensor(watch, dtype=torch.long, device=dev) if watch is not None else None
    finished = torch.zeros(B, dtype=torch.bool, device=dev)
    n_finished = 0  # on the host: no device read to count the running rows
    problem = torch.zeros((), dtype=torch.long, device=dev)
    done_at = [max_new_tokens] * B
    reason = ["length"] * B
    chosen_steps: list[torch.Tensor] = []
    stat_steps: dict[str, list[torch.Tensor]] = {k: [] for k in STAT_NAMES}
    watch_steps: list[torch.Tensor] = []
    logits, past = _forward(net, ids, mask, pos, None, keep_logits)
    for t in range(max_new_tokens):
        z = logits[:, :nv]  # NaN / +inf / all-masked rows: a clear error at the next look
        problem = torch.maximum(problem, logits_problem(z))
        if t % CHECK_EVERY == CHECK_EVERY - 1:
            raise_for_problem(int(problem))
        probs = None if config.greedy else sampling_probs(z, config, seen, check=False)
        if config.greedy:
            tok = choose(z, config, seen=seen, check=False)
        else:
            assert uniforms is not None
            tok = draw(probs, u=uniforms[:, t])
        st = step_stats(z, tok, probs)
        for k in STAT_NAMES:
            stat_steps[k].append(st[k])
        if watch_t is not None:
            watch_steps.append(torch.softmax(z, -1).gather(-1, watch_t.unsqueeze(-1)).squeeze(-1))
        chosen_steps.append(tok)
        if seen is not None:
            seen[torch.arange(B, device=dev), tok] = True
        if bar is not None:
            bar.update(B - n_finished)
        if stop_at_eos and eos_t is not None:  # one look at the device per step: needed to stop
            newly = torch.isin(tok, eos_t) & ~finished
            hits = torch.nonzero(newly).flatten().tolist()
            for r in hits:
                done_at[r], reason[r] = t + 1, "eos"
            if hits:
                finished |= newly
                n_finished += len(hits)
            if n_finished == B:
                break
        if t == max_new_tokens - 1:
            break
        if time.perf_counter() >= deadline:
            for r in range(B):
                if reason[r] == "length":
                    done_at[r], reason[r] = t + 1, "timeout"
            break
        nxt = torch.where(finished, torch.full_like(tok, pad), tok).unsqueeze(-1)
        mask = torch.cat([mask, torch.ones((B, 1), dtype=mask.dtype, device=dev)], dim=-1)
        pos = pos[:, -1:] + 1
        logits, past = _forward(net, nxt, mask, pos, past, keep_logits)
    raise_for_problem(int(problem))
    toks = torch.stack(chosen_steps, dim=1).cpu().tolist()
    stats = {k: torch.stack(v, dim=1).cpu().tolist() for k, v in stat_steps.items()}
    watched = torch.stack(watch_steps, dim=1).cpu().tolist() if watch_t is not None else None
    out = []
    for r in range(B):
        n = min(done_at[r], len(toks[r]))
        out.append(
            Generation(
                index=r,
                prompt_ids=prompts[r],
                token_ids=toks[r][:n],
                seed=None if config.greedy else seeds[r],
                stop_reason=reason[r],
                stats={k: [float(x) for x in stats[k][r][:n]] for k in STAT_NAMES},
                watched=[float(x) for x in watched[r][:n]] if watched is not None else None,
            )
        )
    return out
