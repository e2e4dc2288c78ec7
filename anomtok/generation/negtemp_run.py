"""The negative-temperature run: generate, cross-check with the ranking, write.

``negtemp(model, prompts, config)`` loads a causal LM (any source ``anomtok.load`` accepts),
generates from every prompt with the batched loop (:mod:`.loop`), and cross-checks the produced
tokens against the embedding ranking (:mod:`.crosscheck`). With ``out_dir`` it writes
``generations.jsonl``, ``negtemp_tokens.csv``, ``crosscheck.json`` and ``meta.json``, each
atomically.

(The module is not called ``negtemp`` so that ``anomtok.generation.negtemp`` stays the function.)
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from ..errors import InputError
from .loop import generate
from .options import GenerationOptions
from .prepare import load_for_generation, ranking_for
from .prompts import prompt_list
from .records import finite, meta_head, records, settings, write_jsonl
from .records import out_dir as make_out_dir
from .sampler import SamplerConfig

__all__ = ["NegtempResult", "negtemp"]


@dataclass
class NegtempResult:
    generations: list[dict[str, Any]]
    tokens: pl.DataFrame
    crosscheck: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        """A few lines: what was generated and where it sits in the ranking (not the records)."""
        sampler = (self.meta.get("settings") or {}).get("sampler") or {}
        lines = [f"NegtempResult: {len(self.generations)} generations at T = {sampler.get('temperature', '?')}"]
        for group, g in list((self.crosscheck.get("groups") or {}).items())[:3]:
            s = (g.get("metrics") or {}).get("score") or {}
            pct = (
                f"; score: mean percentile {s['mean_percentile']:.1f} (random 50)"
                if s.get("mean_percentile") is not None
                else ""
            )
            lines.append(f"  {group}: {g.get('n_generated', 0)} tokens, {g.get('n_distinct', 0)} distinct{pct}")
        lines.append(f"  .generations, .tokens ({self.tokens.height:,} rows), .crosscheck, .meta")
        return "\n".join(lines)


def negtemp(
    model: Any,
    prompts: Any,
    config: SamplerConfig | None = None,
    *,
    max_new_tokens: int = 64,
    seed: int = 0,
    batch_size: int = 8,
    stop_at_eos: bool = False,
    timeout_s: float | None = None,
    device: str = "auto",
    dtype: str = "auto",
    device_map: str | None = None,
    ranking: Any = None,
    embeddings: Any = None,
    groups: Sequence[str] | None = None,
    ks: Sequence[int] = (100, 1000),
    top_fractions: Sequence[float] = (0.02, 0.05),
    out_dir: str | os.PathLike | None = None,
    progress: bool = False,
    prompt_files: Sequence[str] | None = None,
) -> NegtempResult:
    """Generate at a (negative) temperature and cross-check the produced tokens with the ranking.

    ``model``: a spec for ``anomtok.load`` or a loaded ``CausalLM``. ``prompts``: a list of
    strings or a Path to a prompt file. ``config`` defaults to ``SamplerConfig(-0.001)``, pure.
    ``groups``: one label per prompt, default ``ja``/``en`` by script. ``ranking``: a Ranking,
    frame or ranked.csv/parquet path; default: ranked now without nearest-neighbour cosine.
    """
    from ..export import write_csv, write_json
    from .crosscheck import crosscheck, prompt_group

    t0 = time.perf_counter()
    config = config if config is not None else SamplerConfig(temperature=-0.001)
    if not isinstance(config, SamplerConfig):
        raise InputError("config must be a SamplerConfig")
    GenerationOptions(
        max_new_tokens=max_new_tokens,
        seed=seed,
        batch_size=batch_size,
        timeout_s=timeout_s,
        stop_at_eos=stop_at_eos,
        device=device,
        dtype=dtype,
        device_map=device_map,
    )
    texts = prompt_list(prompts)
    labels = list(groups) if groups is not None else [prompt_group(s) for s in texts]
    if len(labels) != len(texts):
        raise InputError(f"groups must have one label per prompt ({len(texts)}), not {len(labels)}")
    lm, emb, rk = load_for_generation(
        model, ranking, device=device, dtype=dtype, device_map=device_map, embeddings=embeddings
    )
    t_load = time.perf_counter()
    ids = [lm.encode(s) for s in texts]
    gens = generate(
        lm,
        ids,
        config,
        max_new_tokens=max_new_tokens,
        seed=seed,
        batch_size=batch_size,
        stop_at_eos=stop_at_eos,
        timeout_s=timeout_s,
        progress=progress,
    )
    t_gen = time.perf_counter()
    rk = rk if rk is not None else ranking_for(emb, None, device=device)
    cc = crosscheck([g.token_ids for g in gens], rk, groups=labels, ks=tuple(ks), top_fractions=tuple(top_fractions))
    recs = records(gens, texts, labels, emb.tokens)
    n_tok = sum(len(g.token_ids) for g in gens)
    meta = {
        **meta_head(
            "negtemp",
            emb,
            lm,
            settings(
                config,
                max_new_tokens=max_new_tokens,
                seed=seed,
                batch_size=batch_size,
                stop_at_eos=stop_at_eos,
                timeout_s=timeout_s,
                **lm.placement(),
            ),
            texts,
            labels,
            prompt_files,
        ),
        "ranking": (rk.meta.get("settings") if hasattr(rk, "meta") else "given"),
        "stop_reasons": {r: sum(g.stop_reason == r for g in gens) for r in sorted({g.stop_reason for g in gens})},
        "timings_s": {
            "load": round(t_load - t0, 2),
            "generate": round(t_gen - t_load, 2),
            "tokens_per_s": round(n_tok / max(t_gen - t_load, 1e-9), 2),
            "crosscheck": round(time.perf_counter() - t_gen, 2),
        },
    }
    res = NegtempResult(generations=recs, tokens=cc.tokens, crosscheck=finite(cc.summary), meta=meta)
    if out_dir is not None:
        out = make_out_dir(out_dir)
        meta["outputs"] = ["generations.jsonl", "negtemp_tokens.csv", "crosscheck.json", "meta.json"]
        write_jsonl(finite(recs), out / "generations.jsonl")
        write_csv(cc.tokens, out / "negtemp_tokens.csv")
        write_json(res.crosscheck, out / "crosscheck.json")
        write_json(meta, out / "meta.json")
    return res
