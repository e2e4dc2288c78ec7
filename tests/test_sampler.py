"""The pure sampler: negative temperature, masks, filters, draws, per-step statistics."""

from __future__ import annotations

import dataclasses
import doctest
import math

import numpy as np
import pytest
import torch

from anomtok.errors import InputError
from anomtok.generation import sampler as S
from anomtok.generation.sampler import (
    SamplerConfig,
    choose,
    draw,
    effective_logits,
    make_generators,
    row_seed,
    sampling_probs,
    step_stats,
)

NEG_INF = float("-inf")


def _logits(b: int = 8, v: int = 500, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, v, generator=g) * 4


def test_module_doctests():
    res = doctest.testmod(S, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert res.attempted >= 3 and res.failed == 0


# ------------------------------------------------------------------ config validation
@pytest.mark.parametrize("t", [float("nan"), float("inf"), float("-inf"), "0.5", None, True])
def test_bad_temperature_is_a_clear_input_error(t):
    with pytest.raises(InputError, match="temperature"):
        SamplerConfig(temperature=t)


@pytest.mark.parametrize(
    "kw, name",
    [
        ({"top_k": -1}, "top_k"),
        ({"top_k": 1.5}, "top_k"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.2}, "top_p"),
        ({"min_p": -0.1}, "min_p"),
        ({"min_p": float("nan")}, "min_p"),
        ({"top_n_sigma": -1.0}, "top_n_sigma"),
        ({"repetition_penalty": 0.0}, "repetition_penalty"),
        ({"repetition_penalty": float("inf")}, "repetition_penalty"),
    ],
)
def test_bad_filter_settings_are_input_errors(kw, name):
    with pytest.raises(InputError, match=name):
        SamplerConfig(**kw)


def test_config_is_frozen_and_defaults_are_the_pure_experiment():
    c = SamplerConfig(temperature=-0.001)
    assert c.pure and not c.greedy and c.temperature == -0.001
    assert c.to_dict() == {
        "temperature": -0.001,
        "top_k": 0,
        "top_p": 1.0,
        "min_p": 0.0,
        "top_n_sigma": 0.0,
        "repetition_penalty": 1.0,
    }
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.temperature = 1.0  # type: ignore[misc]
    assert SamplerConfig(temperature=0).greedy and SamplerConfig(temperature=-0.0).greedy
    assert not SamplerConfig(temperature=1, top_k=5).pure


# ------------------------------------------------------------------ negative temperature
@pytest.mark.parametrize("t", [-1e-3, -1e-6, -1e-300, -5e-324])
def test_t_to_zero_minus_picks_the_argmin(t):
    z = _logits(16, 1000)
    probs = sampling_probs(z, SamplerConfig(temperature=t))
    assert torch.isfinite(probs).all()
    assert torch.equal(probs.argmax(-1), z.argmin(-1))
    got = choose(z, SamplerConfig(temperature=t), make_generators(range(16)))
    assert torch.equal(got, z.argmin(-1))


def test_masked_logits_stay_masked_under_negative_temperature():
    z = _logits(4, 50)
    z[:, :10] = NEG_INF  # forbidden tokens: the lowest "logits" of all
    for t in (-1e-6, -0.5, -1.0, -100.0):
        e = effective_logits(z, SamplerConfig(temperature=t))
        assert torch.isneginf(e[:, :10]).all() and torch.isfinite(e[:, 10:]).all()
        p = sampling_probs(z, SamplerConfig(temperature=t))
        assert (p[:, :10] == 0).all() and torch.allclose(p.sum(-1), torch.ones(4))
    picks = choose(z, SamplerConfig(temperature=-1e-6), make_generators(range(4)))
    assert torch.equal(picks, z[:, 10:].argmin(-1) + 10)


def test_negative_t_equals_negated_logits_at_abs_t_with_every_filter():
    z = _logits(6, 300)
    seen = torch.zeros_like(z, dtype=torch.bool)
    seen[:, ::7] = True
    for kw in (
        {},
        {"top_k": 20},
        {"top_p": 0.7},
        {"min_p": 0.05},
        {"top_n_sigma": 1.0},
        {"repetition_penalty": 1.5},
        {"top_k": 50, "top_p": 0.9, "min_p": 0.01, "repetition_penalty": 1.2},
    ):
        for t in (0.3, 1.0, 2.0):
            neg = sampling_probs(z, SamplerConfig(temperature=-t, **kw), seen)
            pos = sampling_probs(-z, SamplerConfig(temperature=t, **kw), seen)
            torch.testing.assert_close(neg, pos, atol=1e-7, rtol=0)


def test_t_minus_one_draws_follow_softmax_of_minus_logits():
    """Chi-square goodness of fit, fixed seeds: 40,000 rows, one generator each."""
    from scipy.stats import chisquare

    z = torch.tensor([1.5, 0.2, -0.3, 2.2, 0.0, -1.1, 0.7, 1.0, -0.5, 0.4, 2.0, -2.0])
    n = 40_000
    rows = z.expand(n, -1).contiguous()
    gens = make_generators([row_seed(7, i) for i in range(n)])
    picks = choose(rows, SamplerConfig(temperature=-1.0), gens)
    counts = np.bincount(picks.numpy(), minlength=z.numel())
    expected = torch.softmax(-z.double(), -1).numpy() * n
    assert chisquare(counts, expected).pvalue > 1e-3
    # the test has power: the same counts clearly reject softmax(+z) and the uniform distribution
    assert chisquare(counts, torch.softmax(z.double(), -1).numpy() * n).pvalue < 1e-12
    assert chisquare(counts, np.full(z.numel(), n / z.numel())).pvalue < 1e-12


@pytest.mark.parametrize("t", [1e-300, 1e-12, -1e-12, 1e6, -1e6])
def test_extreme_temperatures_give_finite_distributions(t):
    z = _logits(3, 100)
    z[0, 5] = NEG_INF
    p = sampling_probs(z, SamplerConfig(temperature=t))
    assert torch.isfinite(p).all() and torch.allclose(p.sum(-1), torch.ones(3)) and p[0, 5] == 0
    if abs(t) >= 1e6:  # nearly uniform over the unmasked tokens
        assert (p[1:] - 1 / 100).abs().max() < 1e-3


# ------------------------------------------------------------------ greedy and filters
def test_t_zero_is_greedy_argmax():
    z = _logits()
    assert torch.equal(choose(z, SamplerConfig(temperature=0.0)), z.argmax(-1))
    assert torch.equal(sampling_probs(z, SamplerConfig(temperature=0.0)).argmax(-1), z.argmax(-1))


def test_filters_match_transformers_processors():
    """Oracle: transformers' own repetition penalty, temperature, top-k, top-p and min-p."""
    from transformers import (
        MinPLogitsWarper,
        RepetitionPenaltyLogitsProcessor,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    z = _logits(5, 400, seed=3)
    hist = torch.randint(0, 400, (5, 30), generator=torch.Generator().manual_seed(1))
    seen = torch.zeros_like(z, dtype=torch.bool).scatter(-1, hist, True)
    cases = [
        (dict(repetition_penalty=1.3), [RepetitionPenaltyLogitsProcessor(1.3)]),
        (dict(top_k=17), [TopKLogitsWarper(17)]),
        (dict(top_p=0.8), [TopPLogitsWarper(0.8)]),
        (dict(min_p=0.1), [MinPLogitsWarper(0.1)]),
        (
            dict(repetition_penalty=1.2, top_k=40, top_p=0.9),
            [RepetitionPenaltyLogitsProcessor(1.2), None, TopKLogitsWarper(40), TopPLogitsWarper(0.9)],
        ),
    ]
    for t in (0.7, 1.0, 1.8):
        for kw, procs in cases:
            scores = z.clone()
            if procs[0] is not None and isinstance(procs[0], RepetitionPenaltyLogitsProcessor):
                scores = procs[0](hist, scores)
                procs = procs[1:]
            scores = TemperatureLogitsWarper(t)(hist, scores)
            for p in procs:
                if p is not None:
                    scores = p(hist, scores)
            want = torch.softmax(scores, -1)
            got = sampling_probs(z, SamplerConfig(temperature=t, **kw), seen)
            torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)


def test_top_n_sigma_known_answer_and_invariance_to_t():
    z = torch.tensor([[10.0, 9.0, 5.0, 0.0, 0.0, 0.0]])  # mean 4, std (population) = 4.203
    keep = torch.isfinite(effective_logits(z, SamplerConfig(temperature=1.0, top_n_sigma=1.0)))
    assert keep.tolist() == [[True, True, False, False, False, False]]  # cut at 10 - 4.2 = 5.8
    for t in (0.01, 0.5, 3.0):
        assert torch.equal(torch.isfinite(effective_logits(z, SamplerConfig(temperature=t, top_n_sigma=1.0))), keep)
    # at negative T it keeps the *least* likely: flipped z = [-10, -9, -5, 0, 0, 0], cut at 0 - 4.2
    neg = torch.isfinite(effective_logits(z, SamplerConfig(temperature=-1.0, top_n_sigma=1.0)))
    assert neg.tolist() == [[False, False, False, True, True, True]]


def test_top_k_at_negative_t_keeps_the_k_least_likely():
    z = torch.tensor([[5.0, 1.0, 3.0, -2.0, 0.0, 4.0]])
    keep = torch.isfinite(effective_logits(z, SamplerConfig(temperature=-1.0, top_k=2)))
    assert keep.tolist() == [[False, False, False, True, True, False]]


def test_repetition_penalty_discourages_repeats_at_any_sign_of_t():
    z = torch.tensor([[2.0, 1.0, -1.0, -3.0]])
    seen = torch.tensor([[False, False, False, True]])
    # at T < 0 token 3 (lowest logit) would be the favourite; the penalty pushes it down
    p0 = sampling_probs(z, SamplerConfig(temperature=-1.0))
    p1 = sampling_probs(z, SamplerConfig(temperature=-1.0, repetition_penalty=2.0), seen)
    assert p1[0, 3] < p0[0, 3]
    q0 = sampling_probs(z, SamplerConfig(temperature=1.0))
    q1 = sampling_probs(z, SamplerConfig(temperature=1.0, repetition_penalty=2.0), seen.roll(-3, -1))
    assert q1[0, 0] < q0[0, 0]


# ------------------------------------------------------------------ draws
def test_draw_depends_only_on_the_row_generator():
    z = _logits(5, 200)
    p = sampling_probs(z, SamplerConfig(temperature=-1.0))
    seeds = [row_seed(0, i) for i in range(5)]
    together = draw(p, make_generators(seeds))
    for i in range(5):
        alone = draw(p[i : i + 1], make_generators([seeds[i]]))
        assert alone.item() == together[i].item()
    assert torch.equal(draw(p, make_generators(seeds)), together)  # reproducible


def test_draw_never_returns_zero_probability_tokens():
    p = torch.zeros(2000, 7)
    p[:, [1, 4]] = torch.tensor([0.25, 0.75])
    got = draw(p, make_generators(range(2000)))
    assert set(got.tolist()) == {1, 4}
    assert abs((got == 4).float().mean().item() - 0.75) < 0.04
    # all mass on the last-but-one token, trailing zeros: float rounding can never pick index 6
    q = torch.zeros(500, 7)
    q[:, 5] = 1.0
    assert (draw(q, make_generators(range(500))) == 5).all()


def test_row_seed_is_deterministic_and_distinct():
    a = [row_seed(0, i) for i in range(1000)]
    assert a == [row_seed(0, i) for i in range(1000)]
    assert len(set(a)) == 1000 and all(0 <= s < 2**63 for s in a)
    assert row_seed(1, 0) != row_seed(0, 0) and row_seed(0, 1) != row_seed(1, 0)


def test_sampling_without_generators_is_an_error():
    with pytest.raises(InputError, match="generator"):
        choose(_logits(2, 10), SamplerConfig(temperature=1.0))
    with pytest.raises(InputError, match="rows"):
        draw(torch.full((2, 3), 1 / 3), make_generators([1]))


# ------------------------------------------------------------------ bad logits and statistics
def test_bad_logits_are_clear_errors():
    z = _logits(2, 10)
    z[1, 3] = float("nan")
    with pytest.raises(InputError, match="NaN"):
        sampling_probs(z, SamplerConfig(temperature=-1.0))
    w = _logits(2, 10)
    w[0, :] = NEG_INF
    with pytest.raises(InputError, match="masked"):
        sampling_probs(w, SamplerConfig(temperature=-1.0))
    with pytest.raises(InputError, match="2-D"):
        sampling_probs(torch.zeros(10), SamplerConfig())


def test_step_stats_known_answer():
    z = torch.log(torch.tensor([[0.5, 0.25, 0.125, 0.125]]))
    z = torch.cat([z, torch.full((1, 1), NEG_INF)], -1)  # a masked column does not count
    chosen = torch.tensor([2])
    probs = sampling_probs(z, SamplerConfig(temperature=-1.0))
    st = step_stats(z, chosen, probs)
    assert st["logprob"].item() == pytest.approx(math.log(0.125), abs=1e-6)
    assert st["entropy"].item() == pytest.approx(1.75 * math.log(2), abs=1e-6)
    assert st["top_prob"].item() == pytest.approx(0.5, abs=1e-6)
    assert st["log_max_min_ratio"].item() == pytest.approx(math.log(4), abs=1e-6)
    q = torch.tensor([2.0, 4.0, 8.0, 8.0]) / 22.0  # softmax(-z) over the unmasked ∝ 1/p
    assert st["sample_logprob"].item() == pytest.approx(math.log(q[2].item()), abs=1e-6)
    assert st["sample_entropy"].item() == pytest.approx(float(-(q * q.log()).sum()), abs=1e-6)
    g = step_stats(z, torch.tensor([0]), None)  # greedy: the sampled distribution is a point mass
    assert g["sample_logprob"].item() == 0.0 and g["sample_entropy"].item() == 0.0
    assert set(st) == set(S.STAT_NAMES)
