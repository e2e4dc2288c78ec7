"""Negative-temperature generation and the temperature sweep, as a Python API.

Sampling at ``T < 0`` equals negating the logits and sampling at ``|T|`` (see
:mod:`.sampler`): ``T = -0.001`` emits, at every step, the token the model finds *least*
likely; ``T = 0`` is greedy. The pure experiment mode (the default ``SamplerConfig``) has no
top-k, top-p, min-p, top-nσ nor repetition penalty.

>>> from anomtok.generation import negtemp, SamplerConfig
>>> res = negtemp("smollm2-135m", ["Temperature is a concept"], SamplerConfig(-0.001),
...               max_new_tokens=16, out_dir="out/negtemp")                       # doctest: +SKIP
>>> res.generations[0]["text"]                                                     # doctest: +SKIP

What lives where (imports flow down this list; each module imports only those above it):

==================  ============================================================================
``sampler``         ``SamplerConfig`` and the per-step sampling maths (sign flip, filters, draws)
``loop``            ``generate``: the batched, left-padded generation loop; ``Generation``
``model``           ``CausalLM`` and ``load_causal_lm`` (GGUF, HF folder, packaged alias); the
                    causal-or-not verdict comes from :mod:`anomtok.loading.arch`
``options``         ``GenerationOptions`` (checked before loading) and ``check_metric``
``prompts``         ``read_prompts``, ``default_prompt_files`` (the packaged EN/JA prompts)
``prepare``         ``load_for_generation``: model, embeddings and a ranking checked to be its own
``crosscheck``      ``crosscheck``: where the produced tokens sit in the embedding ranking
``records``         the JSON records and ``meta.json`` settings that negtemp and sweep write
``negtemp_run``     ``negtemp``: generate, cross-check, write ``generations.jsonl``,
                    ``negtemp_tokens.csv``, ``crosscheck.json``, ``meta.json``
``sweep_plot``      ``plot_sweep``: ``sweep.png`` (matplotlib imported when drawing)
``sweep_run``       ``sweep``: every temperature, ``sweep.csv``, ``sweep.png``,
                    ``sweep_generations.jsonl``, ``meta.json``
==================  ============================================================================

This package re-exports the names callers use, so ``from anomtok.generation import negtemp``
keeps working whatever module a name lives in.
"""

from __future__ import annotations

from .loop import Generation, generate
from .model import CausalLM, load_causal_lm
from .negtemp_run import NegtempResult, negtemp
from .options import GenerationOptions, check_metric
from .prepare import check_ranking_identity, load_for_generation, load_model_and_embeddings, ranking_for
from .prompts import default_prompt_files, read_prompts
from .sampler import SamplerConfig
from .sweep_plot import plot_sweep
from .sweep_run import SWEEP_TEMPERATURES, SweepResult, sweep

__all__ = [
    "SamplerConfig",
    "CausalLM",
    "Generation",
    "load_causal_lm",
    "generate",
    "negtemp",
    "sweep",
    "NegtempResult",
    "SweepResult",
    "read_prompts",
    "default_prompt_files",
    "SWEEP_TEMPERATURES",
    "load_model_and_embeddings",
    "load_for_generation",
    "ranking_for",
    "check_ranking_identity",
    "GenerationOptions",
    "check_metric",
    "plot_sweep",
]
