"""The temperature sweep: generate from the same prompts at each temperature and measure.

``sweep(model, prompts, temperatures)`` gives one row per temperature: distinct tokens, mean
entropy of the model's and of the sampling distribution, mean log-probability, and the mean
anomaly percentile of the produced tokens (overall and per prompt group). With ``out_dir`` it
writes ``sweep.csv``, ``sweep.png`` (drawn by :mod:`.sweep_plot`), ``sweep_generations.jsonl``
and ``meta.json``.

(The module is not called ``sweep`` so that ``anomtok.generation.sweep`` stays the function.)
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from ..errors import InputError
from .loop import generate
from .options import GenerationOptions, check_metric
from .prepare import load_for_generation, ranking_for
from .prompts import prompt_list
from .records import finite, meta_head, records, settings, write_jsonl
from .records import out_dir as make_out_dir
from .sampler import SamplerConfig
from .sweep_plot import plot_sweep

__all__ = ["SweepResult", "sweep", "SWEEP_TEMPERATURES"]

SWEEP_TEMPERATURES = (-1.0, -0.1, -0.001, 0.001, 0.01, 1.0, 1.8, 20.0, 100.0)


@dataclass
class SweepResult:
    frame: pl.DataFrame
    generations: list[dict[str, Any]]
    meta: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        """A few lines: the temperatures and the percentile at each (not the frame)."""
        f = self.frame
        lines = [f"SweepResult: {f.height} temperatures, {len(self.generations)} generations"]
        if {"temperature", "mean_percentile"} <= set(f.columns):
            pairs = [
                f"T={t:g}: {'-' if p is None else f'{p:.1f}'}" for t, p in zip(f["temperature"], f["mean_percentile"])
            ]
            lines.append("  mean percentile: " + ", ".join(pairs[:9]) + (" ..." if len(pairs) > 9 else ""))
        lines.append(f"  .frame ({f.height} rows × {f.width} columns), .generations, .meta")
        return "\n".join(lines)


def _mean(values: list[float]) -> float | None:
    vals = [v for v in values if math.isfinite(v)]
    return round(sum(vals) / len(vals), 6) if vals else None


def sweep(
    model: Any,
    prompts: Any,
    temperatures: Sequence[float] = SWEEP_TEMPERATURES,
    *,
    max_new_tokens: int = 32,
    seed: int = 0,
    batch_size: int = 8,
    metric: str = "score",
    device: str = "auto",
    dtype: str = "auto",
    device_map: str | None = None,
    ranking: Any = None,
    embeddings: Any = None,
    timeout_s: float | None = None,
    out_dir: str | os.PathLike | None = None,
    progress: bool = False,
    prompt_files: Sequence[str] | None = None,
) -> SweepResult:
    """Generate from the same prompts at each temperature; per T: distinct tokens, mean entropy
    of the model's and of the sampling distribution, mean log-probability, and the mean anomaly
    percentile (``metric``, default ``score``) of the produced tokens, overall and per group.
    ``timeout_s`` applies to each temperature. Writes sweep.csv and sweep.png with ``out_dir``."""
    from ..export import write_csv, write_json
    from .crosscheck import crosscheck, prompt_group

    temps = [float(t) for t in temperatures]
    if not temps:
        raise InputError("no temperatures to sweep")
    configs = [SamplerConfig(temperature=t) for t in temps]  # validates every T first
    GenerationOptions(
        max_new_tokens=max_new_tokens,
        seed=seed,
        batch_size=batch_size,
        timeout_s=timeout_s,
        device=device,
        dtype=dtype,
        device_map=device_map,
    )
    check_metric(metric)
    texts = prompt_list(prompts)
    labels = [prompt_group(s) for s in texts]
    lm, emb, rk = load_for_generation(
        model, ranking, device=device, dtype=dtype, device_map=device_map, embeddings=embeddings
    )
    rk = rk if rk is not None else ranking_for(emb, None, device=device)
    check_metric(metric, rk)
    ids = [lm.encode(s) for s in texts]
    rows, recs = [], []
    t0 = time.perf_counter()
    for cfg in configs:
        t1 = time.perf_counter()
        gens = generate(
            lm,
            ids,
            cfg,
            max_new_tokens=max_new_tokens,
            seed=seed,
            batch_size=batch_size,
            timeout_s=timeout_s,
            progress=progress,
        )
        produced = [g.token_ids for g in gens]
        cc = crosscheck(produced, rk, groups=labels, metrics=[metric])
        flat = [t for p in produced for t in p]
        allst = {k: [x for g in gens for x in g.stats[k]] for k in ("entropy", "sample_entropy", "logprob", "top_prob")}
        row: dict[str, Any] = {
            "temperature": cfg.temperature,
            "n_sequences": len(gens),
            "n_tokens": len(flat),
            "distinct_tokens": len(set(flat)),
            "distinct_ratio": round(len(set(flat)) / len(flat), 6) if flat else None,
            "mean_entropy": _mean(allst["entropy"]),
            "mean_sample_entropy": _mean(allst["sample_entropy"]),
            "mean_logprob": _mean(allst["logprob"]),
            "mean_top_prob": _mean(allst["top_prob"]),
        }
        for g in ("all", "en", "ja"):
            m = cc.summary["groups"].get(g, {}).get("metrics", {}).get(metric)
            suffix = "" if g == "all" else f"_{g}"
            row[f"mean_percentile{suffix}"] = m["mean_percentile"] if m else None
            if g == "all":
                row["mean_percentile_weighted"] = m["mean_percentile_weighted"] if m else None
                top = m["topk"] if m else {}
                for label, col in (("top2%", "top2pct_occurrence_fraction"), ("top5%", "top5pct_occurrence_fraction")):
                    row[col] = top[label]["occurrence_fraction"] if label in top else None
        row["seconds"] = round(time.perf_counter() - t1, 2)
        rows.append(row)
        recs.extend(records(gens, texts, labels, emb.tokens, temperature=cfg.temperature))
    frame = pl.DataFrame(rows)
    meta = {
        **meta_head(
            "sweep",
            emb,
            lm,
            settings(
                SamplerConfig(),
                temperatures=temps,
                max_new_tokens=max_new_tokens,
                seed=seed,
                batch_size=batch_size,
                metric=metric,
                timeout_s=timeout_s,
                **lm.placement(),
            ),
            texts,
            labels,
            prompt_files,
        ),
        "percentile": "100 * rank / N in the metric's suspicious direction; random tokens average 50",
        "seconds": round(time.perf_counter() - t0, 2),
    }
    res = SweepResult(frame=frame, generations=recs, meta=meta)
    if out_dir is not None:
        out = make_out_dir(out_dir)
        meta["outputs"] = ["sweep.csv", "sweep.png", "sweep_generations.jsonl", "meta.json"]
        write_csv(frame, out / "sweep.csv")
        plot_sweep(
            frame,
            out / "sweep.png",
            title=f"{lm.source}: {len(texts)} prompts x {max_new_tokens} tokens",
            metric=metric,
        )
        write_jsonl(finite(recs), out / "sweep_generations.jsonl")
        write_json(meta, out / "meta.json")
    return res
