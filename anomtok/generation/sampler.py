"""Pure logits processing: temperature (negative included), top-k, top-p, min-p, top-nσ,
repetition penalty, and the per-step statistics the negative-temperature experiment records.

Negative temperature
--------------------
Sampling divides the logits by ``T`` before the softmax: ``p_i ∝ exp(z_i / T)``. For ``T < 0``
that is ``exp(-z_i / |T|)``, so **sampling at T < 0 equals negating the logits and sampling at
|T|**. That is how any engine with a logits hook can do it, and how this module does it:
``effective_logits`` negates, then every other stage works on the negated logits exactly as it
would on ordinary ones. As ``T → 0⁻`` the draw becomes the argmin of the logits (the least
likely token); ``T = -1`` samples from ``softmax(-z)``. ``T = 0`` (either sign of zero) means
greedy, explicitly: the argmax, no draw.

A masked logit (``-inf``, e.g. a token a model forbids) stays masked: negating it would give
``+inf`` and make the forbidden token certain; here it stays ``-inf`` whatever the sign of T.
The division by |T| comes after subtracting the row maximum (as a multiplication by 1/|T|, capped
at float32's maximum), so a tiny ``|T|`` (1e-300) gives ``0`` and
``-inf`` values, never ``nan``.

Order of the stages (the same as transformers' logits processors and warpers), on the
negated logits when ``T < 0``: repetition penalty, division by ``|T|``, top-k, top-p, min-p,
top-nσ. The repetition penalty therefore always discourages repeats, whichever the sign of T.
top-nσ keeps ``z >= max(z) - n·σ(z)``; since the mask is invariant to dividing by ``|T|``, it is
computed on the unscaled logits.

>>> import torch
>>> z = torch.tensor([[2.0, 0.5, -1.0, float("-inf")]])
>>> effective_logits(z, SamplerConfig(temperature=-0.5))
tensor([[-6., -3.,  0., -inf]])
>>> sampling_probs(z, SamplerConfig(temperature=-1e-6)).tolist()
[[0.0, 0.0, 1.0, 0.0]]
>>> choose(z, SamplerConfig(temperature=0.0)).tolist()
[0]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from ..errors import InputError

__all__ = [
    "logits_problem",
    "raise_for_problem",
    "LOGIT_PROBLEMS",
    "SamplerConfig",
    "effective_logits",
    "sampling_probs",
    "choose",
    "draw",
    "step_stats",
    "row_seed",
    "make_generators",
    "STAT_NAMES",
]

# The per-step statistics of ``step_stats`` (the seed article's monitoring metrics, plus two).
_F32_MAX = float(torch.finfo(torch.float32).max)

STAT_NAMES = ("logprob", "entropy", "top_prob", "log_max_min_ratio", "sample_logprob", "sample_entropy")


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


@dataclass(frozen=True)
class SamplerConfig:
    """How one token is chosen from a row of logits.

    temperature          any finite number; ``< 0`` samples the least likely tokens (see the
                         module docstring), ``0`` is greedy (argmax, no draw)
    top_k                keep the k highest (after the sign flip); ``0`` = off
    top_p                nucleus: keep the smallest set with probability >= top_p; ``1.0`` = off
    min_p                keep tokens with p >= min_p * max p; ``0.0`` = off
    top_n_sigma          keep z >= max z - n·std z; ``0.0`` = off
    repetition_penalty   > 1 discourages tokens already in the prompt or output; ``1.0`` = off

    The defaults are the pure experiment mode the seed article prescribes: only the
    temperature acts (``repeat-penalty 1.0, top-k 0, top-p 1.0``).
    """

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    min_p: float = 0.0
    top_n_sigma: float = 0.0
    repetition_penalty: float = 1.0

    def __post_init__(self) -> None:
        t = self.temperature
        if not _is_number(t):
            raise InputError(f"temperature must be a number, not {t!r}")
        if math.isnan(t) or math.isinf(t):
            raise InputError(f"temperature must be finite (any finite value; 0 means greedy), not {t}")
        object.__setattr__(self, "temperature", float(t))
        if not isinstance(self.top_k, int) or isinstance(self.top_k, bool) or self.top_k < 0:
            raise InputError(f"top_k must be an integer >= 0 (0 = off), not {self.top_k!r}")
        checks = (
            ("top_p", lambda v: 0.0 < v <= 1.0, "in (0, 1] (1.0 = off)"),
            ("min_p", lambda v: 0.0 <= v <= 1.0, "in [0, 1] (0.0 = off)"),
            ("top_n_sigma", lambda v: v >= 0.0, ">= 0 (0.0 = off)"),
            ("repetition_penalty", lambda v: v > 0.0, "> 0 (1.0 = off)"),
        )
        for name, ok, rule in checks:
            v = getattr(self, name)
            if not _is_number(v) or not math.isfinite(v) or not ok(v):
                raise InputError(f"{name} must be a finite number {rule}, not {v!r}")
            object.__setattr__(self, name, float(v))

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    @property
    def pure(self) -> bool:
        """Only the temperature acts (no filter, no penalty)."""
        return (
            self.top_k == 0
            and self.top_p == 1.0
            and self.min_p == 0.0
            and self.top_n_sigma == 0.0
            and self.repetition_penalty == 1.0
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _flip(logits: torch.Tensor, negate: bool) -> torch.Tensor:
    """Negate the logits, keeping ``-inf`` (masked) entries at ``-inf``."""
    z = logits.float()
    if not negate:
        return z
    return torch.where(torch.isneginf(z), z, -z)


def _penalize(z: torch.Tensor, penalty: float, seen: torch.Tensor | None) -> torch.Tensor:
    if penalty == 1.0 or seen is None:
        return z
    pen = torch.where(z > 0, z / penalty, z * penalty)
    return torch.where(seen & torch.isfinite(z), pen, z)


LOGIT_PROBLEMS = {
    1: "logits contain NaN or +inf (try a wider dtype: --dtype float32)",
    2: "every token of a row is masked (-inf): nothing to choose from",
}


def logits_problem(logits: torch.Tensor) -> torch.Tensor:
    """A 0-d int64 tensor on the logits' device, computed without waiting for it: 0 when the
    logits can be sampled, else the key of ``LOGIT_PROBLEMS``. The decode loop collects it every
    step and looks at it rarely (``raise_for_problem``), so that a GPU is not made to wait for
    every token."""
    bad = (torch.isnan(logits) | torch.isposinf(logits)).any()
    masked = torch.isneginf(logits).all(dim=-1).any()
    zero = torch.zeros((), dtype=torch.long, device=logits.device)
    return torch.where(bad, zero + 1, torch.where(masked, zero + 2, zero))


def raise_for_problem(code: int) -> None:
    if code:
        raise InputError(LOGIT_PROBLEMS[code])


def _check_logits(logits: torch.Tensor, check: bool = True) -> None:
    if logits.dim() != 2:
        raise InputError(f"logits must be 2-D (batch, vocab), got shape {tuple(logits.shape)}")
    if not check or bool(torch.isfinite(logits).all()):  # the common case: one pass
        return
    raise_for_problem(int(logits_problem(logits)))


def effective_logits(
    logits: torch.Tensor, config: SamplerConfig, seen: torch.Tensor | None = None, *, check: bool = True
) -> torch.Tensor:
    """``(B, V)`` logits after sign flip, repetition penalty, division by ``|T|`` and the filters.

    Filtered or masked tokens are ``-inf``; every other value is finite and ``<= 0`` (the row
    maximum is subtracted before the division). ``seen``: ``(B, V)`` bool, tokens already in the
    sequence, for the repetition penalty. For ``T = 0`` the result is the flipped-penalized
    logits, unscaled and unfiltered (the argmax is what counts). ``check=False``: the caller
    checks the logits itself (``logits_problem``; NaN logits then give meaningless values).
    """
    _check_logits(logits, check)
    t = config.temperature
    z = _flip(logits, t < 0)
    z = _penalize(z, config.repetition_penalty, seen)
    if t == 0.0:
        return z
    neg_inf = torch.tensor(-math.inf, dtype=z.dtype, device=z.device)
    if config.top_n_sigma > 0.0:  # on the unscaled logits: the mask does not depend on |T|
        finite = torch.isfinite(z)
        n = finite.sum(-1, keepdim=True).clamp(min=1)
        zf = torch.where(finite, z, torch.zeros_like(z))
        mean = zf.sum(-1, keepdim=True) / n
        var = (torch.where(finite, (z - mean) ** 2, torch.zeros_like(z))).sum(-1, keepdim=True) / n
        cut = z.max(-1, keepdim=True).values - config.top_n_sigma * var.sqrt()
        z = torch.where(z >= cut, z, neg_inf)
    zmax = z.max(-1, keepdim=True).values
    # multiply by 1/|T|, capped at the float32 maximum: 0 at the row maximum, finite or -inf
    # elsewhere, never nan (dividing by a |T| below float32's range would be 0/0)
    s = (z - zmax) * min(1.0 / abs(t), _F32_MAX) if abs(t) > 1.0 / _F32_MAX else (z - zmax) * _F32_MAX
    if config.top_k > 0 and config.top_k < s.shape[-1]:
        kth = torch.topk(s, config.top_k, dim=-1).values[..., -1:]
        s = torch.where(s >= kth, s, neg_inf)
    if config.top_p < 1.0 or config.min_p > 0.0:
        p = torch.softmax(s, dim=-1)
        if config.top_p < 1.0:
            sp, idx = torch.sort(p, dim=-1, descending=True)
            before = torch.cumsum(sp, dim=-1) - sp  # probability mass strictly before each token
            keep_sorted = before < config.top_p  # the first token is always kept
            keep = torch.zeros_like(keep_sorted).scatter(-1, idx, keep_sorted)
            s = torch.where(keep, s, neg_inf)
        if config.min_p > 0.0:
            pmax = p.max(-1, keepdim=True).values
            s = torch.where(p >= config.min_p * pmax, s, neg_inf)
    return s


def sampling_probs(
    logits: torch.Tensor, config: SamplerConfig, seen: torch.Tensor | None = None, *, check: bool = True
) -> torch.Tensor:
    """The distribution a draw is made from, ``(B, V)`` float32 (one-hot at the argmax for T = 0)."""
    s = effective_logits(logits, config, seen, check=check)
    if config.greedy:
        return torch.nn.functional.one_hot(s.argmax(-1), s.shape[-1]).float()
    return torch.softmax(s, dim=-1)


def row_seed(seed: int, index: int) -> int:
    """The seed of sequence ``index`` of a run seeded with ``seed`` (independent streams).

    Every sequence draws from its own generator, so what a sequence gets depends on the run's
    seed and its own index only, never on which other sequences share its batch."""
    import numpy as np

    state = np.random.SeedSequence(entropy=int(seed) & (2**128 - 1), spawn_key=(int(index),)).generate_state(2)
    return int((int(state[0]) << 31) ^ int(state[1])) & (2**63 - 1)


def make_generators(seeds: Sequence[int]) -> list[torch.Generator]:
    """One CPU generator per sequence (CPU: the same draws whatever the model's device)."""
    return [torch.Generator(device="cpu").manual_seed(int(s)) for s in seeds]


def draw(
    probs: torch.Tensor, generators: Sequence[torch.Generator] | None = None, *, u: torch.Tensor | None = None
) -> torch.Tensor:
    """One token per row by inverse-CDF sampling: a single uniform per row from that row's
    generator, so draws do not depend on batch composition. Zero-probability tokens are never
    returned. ``u``: the rows' uniforms (float64, on the device), drawn beforehand; the decode
    loop draws each row's for all its steps at once (``torch.rand(n, generator=g)`` gives the
    same numbers as ``n`` single draws), so no step copies to the device. Nothing here waits for
    the device."""
    if u is None:
        if generators is None or probs.shape[0] != len(generators):
            n = "no" if generators is None else len(generators)
            raise InputError(f"{probs.shape[0]} rows but {n} generators")
        u = torch.stack([torch.rand((), generator=g, dtype=torch.float64) for g in generators]).to(probs.device)
    cdf = torch.cumsum(probs.double(), dim=-1)
    total = cdf[:, -1:]
    idx = torch.searchsorted(cdf, u.unsqueeze(-1) * total, right=True).squeeze(-1)
    idx = idx.clamp(max=probs.shape[-1] - 1)
    # float rounding at the very top of the CDF could land on a trailing zero: take the last
    # token with probability > 0 at or before it (computed always: a branch would wait for the device)
    bad = probs.gather(-1, idx.unsqueeze(-1)).squeeze(-1) <= 0
    pos = torch.arange(probs.shape[-1], device=probs.device)
    last = torch.where(probs > 0, pos, torch.full_like(pos, -1)).max(-1).values
    return torch.where(bad, last, idx)


def choose(
    logits: torch.Tensor,
    config: SamplerConfig,
    generators: Sequence[torch.Generator] | None = None,
    seen: torch.Tensor | None = None,
    *,
    check: bool = True,
) -> torch.Tensor:
    """The chosen token of every row: argmax for T = 0, else a draw from ``sampling_probs``."""
    if config.greedy:
        return effective_logits(logits, config, seen, check=check).argmax(-1)
    if generators is None:
        raise InputError("sampling at T != 0 needs one generator per row")
    return draw(sampling_probs(logits, config, seen, check=check), generators)


def step_stats(logits: torch.Tensor, chosen: torch.Tensor, probs: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """Per-row statistics of one step, each ``(B,)`` float32.

    Of the model's own distribution ``softmax(z)`` (T = 1, over the unmasked tokens):
    ``logprob`` of the chosen token, ``entropy`` (nats), ``top_prob``, ``log_max_min_ratio``
    (``log(p_max / p_min) = z_max - z_min``, kept as a log because the ratio overflows). Of the
    distribution actually sampled from (``probs``; None for greedy): ``sample_logprob`` of the
    chosen token and ``sample_entropy``.
    """
    z = logits.float()
    lse = torch.logsumexp(z, dim=-1, keepdim=True)
    logp = z - lse  # -inf stays -inf (masked)
    p = logp.exp()
    # H = lse - sum p z over the unmasked tokens (masked ones have p = 0: their z is zeroed)
    ent = (lse.squeeze(-1) - (p * z.nan_to_num(neginf=0.0)).sum(-1)).clamp_min(0.0) + 0.0
    zmax = z.max(-1).values
    zmin = z.masked_fill(torch.isneginf(z), math.inf).min(-1).values
    out = {
        "logprob": logp.gather(-1, chosen.unsqueeze(-1)).squeeze(-1),
        "entropy": ent,
        "top_prob": (zmax - lse.squeeze(-1)).exp(),
        "log_max_min_ratio": zmax - zmin,
    }
    if probs is None:
        out["sample_logprob"] = torch.zeros_like(ent)
        out["sample_entropy"] = torch.zeros_like(ent)
    else:
        out["sample_logprob"] = probs.gather(-1, chosen.unsqueeze(-1)).squeeze(-1).log()
        out["sample_entropy"] = (-torch.special.xlogy(probs, probs).sum(-1)).clamp_min(0.0) + 0.0
    return out
