"""Verification by prompting, after Land & Bartolo (2024), *Fishing for Magikarp*.

A ranking only says a token *looks* under-trained. Verification asks the model to repeat it:
a model that learned a token can copy it when shown it a dozen times; a model that never saw it
in training gives it almost no probability. For each candidate:

1. Few-shot repetition prompts (``TEMPLATES``: an echo log, a "what does X mean" exchange, a
   plain run of repeats) are written once around a *placeholder* token, a long ordinary
   alphabetic token that survives encode → decode → encode in every template, and encoded once
   (:func:`make_prompt_set`). Each prompt ends where the answer goes; the answer slot is appended
   and every *slot* (each place the placeholder's id sits) gets the candidate's id
   (:func:`token_prompts`). The candidate's text is never re-encoded: tokens that text can never
   produce (partial UTF-8, unreachable merges) are verified as they are, and the answer position
   holds exactly that token.
2. **Teacher forcing**, no generation: one forward pass over the whole sequence gives, at every
   slot after the first, the model's log-probability (T = 1, over the tokenizer's vocabulary) of
   the candidate *as the next token*, i.e. of repeating it there. The positions read are the last
   ``n_positions`` (3) such slots of each template: the final answer and the in-context repeats
   just before it (the echo log's previous ``in``/``out`` lines, the previous repeats; the
   "meaning" exchange has one answer slot). ``max_prob`` is the maximum over templates and
   positions.
3. ``max_prob < threshold`` (default ``VERIFY_THRESHOLD = 0.01``, the paper's weak/strong
   verification boundaries are 0.1/0.001; 0.01 sits between) = **verified** under-trained.

The paper (and earlier versions of this module) generated three tokens greedily after the
prompt and took the maximum probability of the candidate over those three steps. The first of
them is exactly the final answer slot read here (the same logits of the same prompt: with
``n_positions=1`` the two agree to float rounding, see ``bench/bench_verify.py``); the two later
greedy steps are replaced by the in-context slots before the answer, which teacher forcing reads
from the same forward pass at no extra cost.

Scoring is batched (:func:`score_tokens`): the sequences of one template all have the same
length and the same slots whatever the candidate, so a batch needs no padding; the part of the
prompt before the first slot (identical for every candidate) is run once and its key/value cache
is shared by every batch; logits are computed only at the positions read. Each (token,
template) sequence is computed independently of the others in its batch, so the batched
probabilities equal those of :func:`score_tokens_one_by_one` (one sequence per forward pass, no
shared prefix) to float rounding (tested to ``rtol=1e-5`` in float32). The device and dtype are
those of the loaded model (``load_causal_lm``: ``auto`` = CUDA with bfloat16 when present, else
CPU float32); log-softmax is always taken in float32.

Candidates are the top ``top`` tokens of each ranking metric (among ``kinds``, default ordinary
tokens only: reserved and special tokens are already known), never a reference token (the
tokens the default score is computed from), plus a random sample of the same kinds (never a
reference token either), drawn with ``seed``, as the base rate. The precision of a metric is the
share of its top tokens that verify; its lift is that precision over the base rate. A random
sample of up to ``top`` reference tokens is verified apart, as a sanity row (``reference`` in
``verify.json``): it says whether the model really cannot repeat what the score was told is
unused.

Outputs (``out_dir``): ``verified.csv`` (one row per candidate: probabilities, verdict, which
metric tops it is in, its rank in each metric), ``verify.json`` (precision per metric, base
rate, placeholder, templates, threshold, how the probabilities were read) and ``meta.json``.
``output_echo`` in ``verified.csv`` is the model's own greedy choice at the echo prompt's answer
slot (one token: the first token the previous, generating, versions showed).
"""

from __future__ import annotations

import copy
import inspect
import logging
import math
import os
import random
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from ._version import __version__
from .crosscheck import metric_ranks
from .errors import InputError
from .provenance import run_info
from .ranking import METRICS, Ranking, order_by

__all__ = [
    "VERIFY_THRESHOLD",
    "N_POSITIONS",
    "TEMPLATES",
    "PromptSet",
    "Scores",
    "VerifyResult",
    "verify",
    "check_settings",
    "build_prompts",
    "find_placeholder",
    "make_prompt_set",
    "token_prompts",
    "score_tokens",
    "score_tokens_one_by_one",
]

log = logging.getLogger(__name__)

VERIFY_THRESHOLD = 0.01
N_POSITIONS = 3
DEFAULT_BATCH_SIZE = 32
MAX_BATCH_SIZE = 1024
PLACEHOLDER = "{t}"
# (name, prompt text with {t} for the token; the prompt ends right where the token is expected)
TEMPLATES: tuple[tuple[str, str], ...] = (
    (
        "echo",
        "This program prints its input unchanged. Log of identical runs:\n"
        + "in: «{t}»\nout: «{t}»\n" * 6
        + "in: «{t}»\nout: «",
    ),
    (
        "meaning",
        "Q: What does the string 'qzvx' mean?\nA: The string 'qzvx' has no particular meaning.\n"
        "Q: What does the string '{t}' mean?\nA: The string '",
    ),
    ("repeat", "The same word, repeated over and over:\n" + "{t}" * 16),
)
MAX_CANDIDATES = 20_000


@dataclass
class VerifyResult:
    frame: pl.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        """A few lines: the verdicts and the precision of each metric (not the frame)."""
        s = self.summary
        base = s.get("base_rate") or {}
        lines = [
            f"VerifyResult: {s.get('n_verified', '?')} of {s.get('n_candidates', self.frame.height)} candidates "
            f"verified (max_prob < {s.get('threshold', '?')}); base rate {base.get('verified', '?')}/{base.get('n', '?')}"
        ]
        prec = ", ".join(f"{m} {p['verified']}/{p['n']}" for m, p in list((s.get("precision") or {}).items())[:8])
        if prec:
            lines.append(f"  precision: {prec}")
        lines.append(f"  .frame ({self.frame.height:,} rows × {self.frame.width} columns), .summary")
        return "\n".join(lines)


# ------------------------------------------------------------------ prompts
def build_prompts(
    encode: Any, placeholder_text: str, placeholder_id: int, templates: Sequence[tuple[str, str]] = TEMPLATES
) -> list[list[int]] | None:
    """Token ids of every template with the placeholder, or None when the placeholder does not
    come out as exactly one ``placeholder_id`` per ``{t}`` in some template."""
    out = []
    for _, text in templates:
        ids = encode(text.replace(PLACEHOLDER, placeholder_text))
        if sum(1 for i in ids if i == placeholder_id) != text.count(PLACEHOLDER):
            return None
        out.append(list(ids))
    return out


def _placeholder_candidates(lm: Any, tokens: Any) -> Iterator[tuple[int, str]]:
    """(id, text) of the ordinary tokens, from the token table when given, else the tokenizer
    (special and added tokens left out; only the pieces that can be a long ASCII word are decoded)."""
    if tokens is not None:
        for i in range(min(lm.n_vocab, len(tokens))):
            if tokens.kinds[i] == "normal":
                yield i, tokens.bytes[i].decode("utf-8", errors="replace")
        return
    tok = lm.tokenizer
    special = set(getattr(tok, "all_special_ids", None) or ())
    special |= set((getattr(tok, "added_tokens_decoder", None) or {}).keys())
    pieces = tok.convert_ids_to_tokens(list(range(lm.n_vocab)))
    for i, piece in enumerate(pieces):
        if i in special or not isinstance(piece, str):
            continue
        core = piece.lstrip("Ġ▁ ")
        if len(core) >= 4 and core.isascii() and core.isalpha():
            yield i, tok.decode([i])


def find_placeholder(
    lm: Any, tokens: Any = None, templates: Sequence[tuple[str, str]] = TEMPLATES, tries: int = 300
) -> tuple[int, str, list[list[int]]]:
    """A long ASCII-alphabetic ordinary token whose text encodes back to itself in every template:
    (its id, its text, the templates' ids built around it). ``tokens``: the model's TokenTable
    (``anomtok.load(...).tokens``); None reads the tokenizer instead."""
    cands = []
    for i, text in _placeholder_candidates(lm, tokens):
        word = text.strip()
        if not (word.isascii() and word.isalpha()) or len(word) < 4:
            continue
        cands.append((text == word, len(set(word.lower())), len(word), -i, i, text))
    cands.sort(reverse=True)
    for *_, i, text in cands[:tries]:
        built = build_prompts(lm.encode, text, i, templates)
        if built is not None:
            return i, text, built
    raise InputError("no placeholder token found: no ordinary alphabetic token survives encoding in the templates")


@dataclass(frozen=True)
class PromptSet:
    """The few-shot prompts of one model, encoded once around a placeholder token.

    ``sequences[j]``: template j's ids *with* the answer slot appended (the placeholder's id at
    every slot); ``slots[j]``: the indices of the slots in it, in order (the last is the answer).
    The first slot cannot be predicted from the context; every later one is a repeat."""

    placeholder_id: int
    placeholder_text: str
    names: tuple[str, ...]
    texts: tuple[str, ...]
    sequences: tuple[tuple[int, ...], ...]
    slots: tuple[tuple[int, ...], ...]

    def answer_positions(self, j: int, n_positions: int = N_POSITIONS) -> tuple[int, ...]:
        """Indices (into ``sequences[j]``) of the slots whose probability is read: the last
        ``n_positions`` slots after the first (fewer when the template has fewer repeats)."""
        _check_positions(n_positions)
        return self.slots[j][1:][-n_positions:]

    def prefix_length(self, j: int) -> int:
        """Tokens before template j's first slot: the same for every candidate."""
        return self.slots[j][0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "placeholder_id": self.placeholder_id,
            "placeholder_text": self.placeholder_text,
            "templates": [
                {"name": n, "text": t, "tokens": len(s), "slots": len(sl)}
                for n, t, s, sl in zip(self.names, self.texts, self.sequences, self.slots)
            ],
        }


def make_prompt_set(lm: Any, tokens: Any = None, templates: Sequence[tuple[str, str]] = TEMPLATES) -> PromptSet:
    """Find the placeholder and encode every template around it (see :func:`find_placeholder`)."""
    ph_id, ph_text, built = find_placeholder(lm, tokens, templates)
    seqs, slots = [], []
    for ids in built:
        seq = tuple(ids) + (ph_id,)
        seqs.append(seq)
        slots.append(tuple(k for k, t in enumerate(seq) if t == ph_id))
    for (name, _), sl in zip(templates, slots):
        if len(sl) < 2:
            raise InputError(f"template {name!r} has no slot after the first: nothing to repeat")
    return PromptSet(
        ph_id, ph_text, tuple(n for n, _ in templates), tuple(t for _, t in templates), tuple(seqs), tuple(slots)
    )


def token_prompts(
    prompts: PromptSet, token_id: int, n_positions: int = N_POSITIONS
) -> list[tuple[list[int], tuple[int, ...]]]:
    """The prompts for one token: per template, (token ids with ``token_id`` spliced into every
    slot, the answer positions whose probability is read). The log-probability of the token at
    position k is read from the logits at position k - 1."""
    out = []
    for j, (seq, sl) in enumerate(zip(prompts.sequences, prompts.slots)):
        at = set(sl)
        ids = [int(token_id) if k in at else t for k, t in enumerate(seq)]
        out.append((ids, prompts.answer_positions(j, n_positions)))
    return out


# ------------------------------------------------------------------ scores
@dataclass
class Scores:
    """Teacher-forced repetition scores of a list of tokens.

    ``logp[i, j, k]``: log-probability of token i at the k-th position read in template j (NaN
    where template j has fewer positions, or was skipped by ``settle``); ``top_ids[i, j]``: the
    model's greedy choice at template j's answer slot (-1 when skipped)."""

    token_ids: list[int]
    names: tuple[str, ...]
    logp: np.ndarray
    top_ids: np.ndarray
    threshold: float = VERIFY_THRESHOLD
    n_positions: int = N_POSITIONS
    seconds: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def p_positions(self) -> np.ndarray:
        return np.exp(self.logp)

    @property
    def p_template(self) -> np.ndarray:
        """(n_tokens, n_templates): max over each template's positions (NaN: skipped)."""
        return np.exp(_nanmax(self.logp, axis=2))

    @property
    def max_logp(self) -> np.ndarray:
        return _nanmax(self.logp.reshape(len(self.token_ids), -1), axis=1)

    @property
    def p(self) -> np.ndarray:
        """(n_tokens,): max over templates and positions, the paper's ``max_prob``."""
        return np.exp(self.max_logp)

    @property
    def verified(self) -> np.ndarray:
        return self.p < self.threshold

    @property
    def best_template(self) -> list[str]:
        flat = np.where(np.isnan(self.logp), -np.inf, self.logp).max(axis=2)
        return [self.names[j] for j in np.argmax(flat, axis=1)]

    @property
    def per_second(self) -> float:
        return len(self.token_ids) / self.seconds if self.seconds > 0 else math.inf

    def to_frame(self) -> pl.DataFrame:
        """One row per token: token_id, max_prob, verified, prob_<template>, top_<template>."""
        pt = self.p_template
        cols: dict[str, Any] = {
            "token_id": self.token_ids,
            "max_prob": self.p,
            "verified": self.verified,
            "best_template": self.best_template,
        }
        for j, name in enumerate(self.names):
            cols[f"prob_{name}"] = pt[:, j]
        for j, name in enumerate(self.names):
            cols[f"top_{name}"] = self.top_ids[:, j].astype(np.int64)
        return pl.DataFrame(cols)


def _nanmax(a: np.ndarray, axis: int) -> np.ndarray:
    """Max ignoring NaN; NaN where a slice is all NaN (no warning)."""
    m = np.where(np.isnan(a), -np.inf, a).max(axis=axis) if a.size else np.full(a.shape[:axis], np.nan)
    return np.where(m == -np.inf, np.nan, m)


def _check_positions(n_positions: int) -> None:
    if not isinstance(n_positions, int) or isinstance(n_positions, bool) or not 1 <= n_positions <= 16:
        raise InputError(f"n_positions must be an integer from 1 to 16, not {n_positions!r}")


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
    from .generation.model import CausalLM, load_causal_lm

    if not 0.0 < threshold < 1.0 or not math.isfinite(threshold):
        raise InputError(f"threshold must be in (0, 1), not {threshold}")
    _check_positions(n_positions)
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

    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise InputError(f"batch_size must be an integer from 1 to {MAX_BATCH_SIZE}, not {batch_size!r}")
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
            base = torch.tensor(seq, dtype=torch.long)
            slot_t = torch.tensor(slots, dtype=torch.long) - P
            read = torch.tensor(answer, dtype=torch.long) - 1 - P  # logits at k - 1 predict the token at k
            prefix_cache = None
            if P:
                out = net(
                    input_ids=base[:P].unsqueeze(0).to(dev), use_cache=True, **({"logits_to_keep": 1} if keep else {})
                )
                prefix_cache = getattr(out, cache_kw, None)
                if not hasattr(prefix_cache, "batch_repeat_interleave"):  # no cache, or a legacy tuple: no sharing
                    prefix_cache, P = None, 0
                    slot_t = torch.tensor(slots, dtype=torch.long)
                    read = torch.tensor(answer, dtype=torch.long) - 1
                shared = shared or prefix_cache is not None
            suffix = base[P:]
            pos = torch.arange(P, len(seq), dtype=torch.long)
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
                if prefix_cache is not None:
                    cache = copy.deepcopy(prefix_cache)
                    cache.batch_repeat_interleave(B)
                    kw[cache_kw] = cache
                    kw["attention_mask"] = torch.ones((B, len(seq)), dtype=torch.long, device=dev)
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
            "dtype": str(lm.dtype).replace("torch.", ""),
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
            "dtype": str(lm.dtype).replace("torch.", ""),
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


# ------------------------------------------------------------------ verify
def _roundtrip(lm: Any, token_id: int) -> bool:
    """Does the token's decoded text encode back to exactly this token?"""
    try:
        text = lm.tokenizer.decode([token_id])
        return list(lm.tokenizer(text, add_special_tokens=False)["input_ids"]) == [token_id]
    except (ValueError, TypeError, KeyError, IndexError, OverflowError):  # odd ids in slow tokenizers
        return False


def _select(
    frame: pl.DataFrame, metrics: Sequence[str], top: int, kinds: Sequence[str], random_n: int, seed: int, n_vocab: int
) -> tuple[dict[int, set[str]], list[int], list[int]]:
    """(metric tops, random base-rate sample, reference sanity sample).

    Reference tokens (``is_reference``: what the default score was told is unused) are never
    metric candidates nor part of the base rate: verifying them would partly check what the
    score was given. They get a sanity sample of their own (any kind), reported apart."""
    in_vocab = pl.col("token_id") < n_vocab
    is_ref = pl.col("is_reference") if "is_reference" in frame.columns else pl.lit(False)
    pool = frame.filter(pl.col("kind").is_in(list(kinds)) & in_vocab & ~is_ref)
    tops: dict[int, set[str]] = {}
    for m in metrics:
        valid = pool.filter(pl.col(m).is_not_null() & pl.col(m).is_not_nan())
        for t in order_by(valid, m, include_padding=True).head(top)["token_id"].to_list():
            tops.setdefault(int(t), set()).add(m)
    ids = sorted(pool["token_id"].to_list())
    rnd = sorted(random.Random(seed).sample(ids, min(random_n, len(ids)))) if random_n else []
    refs = sorted(frame.filter(in_vocab & is_ref)["token_id"].to_list())
    ref_sample = sorted(random.Random(seed + 1).sample(refs, min(top, len(refs)))) if metrics else []
    return tops, rnd, ref_sample


def check_settings(
    *,
    metrics: Sequence[str] | None = None,
    top: int = 20,
    random_sample: int = 30,
    kinds: Sequence[str] = ("normal",),
    threshold: float = VERIFY_THRESHOLD,
    n_positions: int = N_POSITIONS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    seed: int = 0,
    device: str = "auto",
    dtype: str = "auto",
) -> None:
    """The settings of ``verify`` checked before anything loads (``anomtok.options.VerifyOptions``
    checks with this too): an ``InputError`` naming what is allowed."""
    from .generation import GenerationOptions
    from .tokens import KINDS

    if not isinstance(threshold, (int, float)) or not 0.0 < threshold < 1.0 or not math.isfinite(threshold):
        raise InputError(f"threshold must be in (0, 1), not {threshold}")
    if not isinstance(top, int) or not 1 <= top <= 5000:
        raise InputError(f"top must be an integer from 1 to 5000, not {top!r}")
    if not isinstance(random_sample, int) or not 0 <= random_sample <= 5000:
        raise InputError(f"random_sample must be an integer from 0 to 5000, not {random_sample!r}")
    _check_positions(n_positions)
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise InputError(f"batch_size must be an integer from 1 to {MAX_BATCH_SIZE}, not {batch_size!r}")
    GenerationOptions(seed=seed, device=device, dtype=dtype)  # seed, device, dtype: before any loading
    unknown = [m for m in metrics or [] if m not in METRICS]
    if unknown:
        raise InputError(f"unknown metric(s) {', '.join(map(str, unknown))}; choose from {', '.join(METRICS)}")
    bad_kinds = [k for k in kinds if k not in KINDS]
    if bad_kinds or not kinds:
        raise InputError(f"kinds must be among {', '.join(KINDS)}, not {', '.join(map(str, bad_kinds)) or 'none'}")


def verify(
    model: Any,
    ranking: Any = None,
    *,
    metrics: Sequence[str] | None = None,
    top: int = 20,
    random_sample: int = 30,
    kinds: Sequence[str] = ("normal",),
    token_ids: Sequence[int] | None = None,
    threshold: float = VERIFY_THRESHOLD,
    n_positions: int = N_POSITIONS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    seed: int = 0,
    device: str = "auto",
    dtype: str = "auto",
    embeddings: Any = None,
    out_dir: str | os.PathLike | None = None,
    progress: bool = False,
    settle: bool = False,
) -> VerifyResult:
    """Verify the top candidates of a ranking by prompting (see the module docstring).

    ``model``: a spec for ``anomtok.load`` or a loaded ``CausalLM``. ``ranking``: a Ranking, its
    frame, a ranked.csv/parquet path, or None to rank now (``nn="off"``). ``token_ids``: verify
    exactly these instead of the metric tops (the random sample is still drawn, ``random_sample=0``
    to skip it). ``batch_size``: sequences per forward pass; ``settle``: skip the templates that
    can no longer change a verdict (:func:`score_tokens`; their ``prob_*`` columns are then empty)."""
    from .generation import load_for_generation, ranking_for

    check_settings(
        metrics=metrics,
        top=top,
        random_sample=random_sample,
        kinds=kinds,
        threshold=threshold,
        n_positions=n_positions,
        batch_size=batch_size,
        seed=seed,
        device=device,
        dtype=dtype,
    )
    t0 = time.perf_counter()
    # the embeddings, then a given ranking checked to be this model's, and only then the model
    lm, emb, rk = load_for_generation(model, ranking, device=device, dtype=dtype, embeddings=embeddings)
    rk = rk if rk is not None else ranking_for(emb, None, device=device)
    frame = rk.frame if isinstance(rk, Ranking) else rk
    known = [m for m in METRICS if m in frame.columns and frame[m].drop_nulls().len() > 0]
    use = list(metrics) if metrics else known
    bad = [m for m in use if m not in known]
    if bad:
        raise InputError(f"unknown or empty metric(s) {', '.join(bad)}; choose from {', '.join(known)}")
    if token_ids is not None:
        tops = {int(t): set() for t in token_ids}
        _, rnd, refs = _select(frame, [], top, kinds, random_sample, seed, lm.n_vocab)
    else:
        tops, rnd, refs = _select(frame, use, top, kinds, random_sample, seed, lm.n_vocab)
    cand = sorted(set(tops) | set(rnd) | set(refs))
    if not cand:
        raise InputError("no candidate tokens to verify")
    if len(cand) > MAX_CANDIDATES:
        raise InputError(f"{len(cand)} candidates: at most {MAX_CANDIDATES} per run (lower --top)")
    bad_ids = [t for t in cand if not 0 <= t < lm.n_vocab]
    if bad_ids:
        raise InputError(f"token id {bad_ids[0]} is not a token of the model (0..{lm.n_vocab - 1})")
    ps = make_prompt_set(lm, emb.tokens)
    sc = score_tokens(
        lm,
        cand,
        prompts=ps,
        n_positions=n_positions,
        threshold=threshold,
        batch_size=batch_size,
        settle=settle,
        progress=progress,
    )
    is_ref = (
        set(frame.filter(pl.col("is_reference"))["token_id"].to_list()) if "is_reference" in frame.columns else set()
    )
    ranks, sizes = metric_ranks(frame, use)
    p, ver, pt, best = sc.p, sc.verified, sc.p_template, sc.best_template
    echo = ps.names.index("echo") if "echo" in ps.names else 0
    rnd_set, ref_set = set(rnd), set(refs)
    rows = []
    for i, c in enumerate(cand):
        rows.append(
            {
                "token_id": c,
                "token": emb.tokens.displays[c],
                "bytes_hex": emb.tokens.bytes[c].hex(),
                "kind": emb.tokens.kinds[c],
                "script": emb.tokens.scripts[c],
                "max_prob": float(p[i]),
                "verified": bool(ver[i]),
                **{f"prob_{name}": float(pt[i, j]) for j, name in enumerate(ps.names)},
                "best_template": best[i],
                "roundtrip": _roundtrip(lm, c),
                "top_of": ";".join(sorted(tops.get(c, set()))),
                "random_sample": c in rnd_set,
                "reference_sample": c in ref_set,
                "is_reference": c in is_ref,
                "output_echo": _show(emb.tokens, [int(sc.top_ids[i, echo])]),
            }
        )
    out = pl.DataFrame(rows).join(ranks.with_columns(pl.col("token_id").cast(pl.Int64)), on="token_id", how="left")
    out = out.sort(["max_prob", "token_id"])
    summary = _summary(out, tops, rnd, refs, use, top, threshold, sizes)
    summary.update(
        {
            "threshold": threshold,
            "n_positions": n_positions,
            "kinds": list(kinds),
            "placeholder": {"token_id": ps.placeholder_id, "token": emb.tokens.displays[ps.placeholder_id]},
            "templates": [{"name": n, "text": t} for n, t in zip(ps.names, ps.texts)],
            "scoring": {
                "method": "teacher forcing",
                "read": "log-softmax (T = 1) of the token at the last n_positions "
                "slots after the first of each template (the answer and the in-context repeats before it); "
                "max_prob = max over templates and positions",
                "positions_per_template": {n: len(ps.answer_positions(j, n_positions)) for j, n in enumerate(ps.names)},
                "tokens_per_template": {n: len(s) for n, s in zip(ps.names, ps.sequences)},
                "batch_size": batch_size,
                "settle": settle,
                "shared_prefix": sc.info["shared_prefix"],
                "candidates_per_second": round(sc.per_second, 2),
            },
            "seconds": round(sc.seconds, 2),
        }
    )
    if out_dir is not None:
        _write(
            out_dir,
            out,
            summary,
            lm,
            emb,
            rk,
            dict(
                metrics=use,
                top=top,
                random_sample=random_sample,
                kinds=list(kinds),
                threshold=threshold,
                n_positions=n_positions,
                batch_size=batch_size,
                settle=settle,
                seed=seed,
                device=str(lm.device),
                dtype=str(lm.dtype).replace("torch.", ""),
                total_seconds=round(time.perf_counter() - t0, 2),
            ),
        )
    return VerifyResult(frame=out, summary=summary)


def _show(tokens: Any, ids: Sequence[int]) -> str:
    from .text import display

    return display(b"".join(tokens.bytes[i] for i in ids if i < len(tokens.bytes)))


def _summary(
    out: pl.DataFrame,
    tops: dict[int, set[str]],
    rnd: list[int],
    refs: list[int],
    metrics: Sequence[str],
    top: int,
    threshold: float,
    sizes: dict[str, int],
) -> dict[str, Any]:
    ver = dict(zip(out["token_id"].to_list(), out["verified"].to_list()))
    base = [ver[t] for t in rnd]
    base_rate = sum(base) / len(base) if base else None
    ref = [ver[t] for t in refs]
    prec: dict[str, Any] = {}
    for m in metrics:
        mine = [t for t, ms in tops.items() if m in ms]
        if not mine:
            continue
        p = sum(ver[t] for t in mine) / len(mine)
        prec[m] = {
            "n": len(mine),
            "verified": int(sum(ver[t] for t in mine)),
            "precision": round(p, 4),
            "lift": round(p / base_rate, 4) if base_rate else None,
        }
    n_ver = int(out["verified"].sum())
    return {
        "n_candidates": out.height,
        "n_verified": n_ver,
        "base_rate": {
            "n": len(base),
            "verified": int(sum(base)),
            "rate": round(base_rate, 4) if base_rate is not None else None,
        },
        "precision": prec,
        # sanity row: reference tokens are never candidates; most of them should verify
        "reference": {"n": len(ref), "verified": int(sum(ref)), "rate": round(sum(ref) / len(ref), 4) if ref else None},
        "top": top,
        "verified_share_per_metric": {
            m: round(sum(1 for t, ms in tops.items() if m in ms and ver[t]) / n_ver, 4) for m in prec
        }
        if n_ver
        else {},
    }


def _write(
    out_dir: Any, frame: pl.DataFrame, summary: dict[str, Any], lm: Any, emb: Any, rk: Any, settings: dict[str, Any]
) -> None:
    from .export import write_csv, write_json
    from .outputs import make_dir

    out = make_dir(out_dir)
    write_csv(frame, out / "verified.csv")
    write_json(summary, out / "verify.json")
    write_json(
        {
            "anomtok_version": __version__,
            **run_info("verify"),
            "model": emb.provenance.to_dict(),
            "generation_model": lm.describe(),
            "ranking": getattr(rk, "meta", {}).get("settings") if isinstance(rk, Ranking) else "given",
            "settings": settings,
            "outputs": ["verified.csv", "verify.json", "meta.json"],
        },
        out / "meta.json",
    )
