"""Negative-temperature generation and the temperature sweep, as a Python API.

``negtemp(model, prompts, config)`` loads a causal LM (any source ``anomtok.load`` accepts),
generates from every prompt with our own batched loop (:mod:`.loop`), and cross-checks the
produced tokens against the embedding ranking (:mod:`anomtok.crosscheck`).

Sampling at ``T < 0`` equals negating the logits and sampling at ``|T|`` (see
:mod:`.sampler`): ``T = -0.001`` emits, at every step, the token the model finds *least*
likely; ``T = 0`` is greedy. The pure experiment mode (the default ``SamplerConfig``) has no
top-k, top-p, min-p, top-nσ nor repetition penalty.

>>> from anomtok.generation import negtemp, SamplerConfig
>>> res = negtemp("smollm2-135m", ["Temperature is a concept"], SamplerConfig(-0.001),
...               max_new_tokens=16, out_dir="out/negtemp")                       # doctest: +SKIP
>>> res.generations[0]["text"]                                                     # doctest: +SKIP

Outputs (``out_dir``, each written atomically): ``generations.jsonl``, ``negtemp_tokens.csv``,
``crosscheck.json``, ``meta.json``; the sweep writes ``sweep.csv``, ``sweep.png``,
``sweep_generations.jsonl`` and ``meta.json``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import polars as pl

from .._version import __version__
from ..errors import InputError
from ..inputs import check_int, check_seed, read_stdin_text
from ..provenance import run_info
from .loop import MAX_BATCH_SIZE, MAX_NEW_TOKENS, Generation, generate
from .model import CausalLM, load_causal_lm
from .sampler import SamplerConfig

__all__ = [
    "SamplerConfig", "CausalLM", "Generation", "load_causal_lm", "generate", "negtemp", "sweep",
    "NegtempResult", "SweepResult", "read_prompts", "default_prompt_files", "SWEEP_TEMPERATURES",
    "load_model_and_embeddings", "ranking_for", "GenerationOptions",
]

log = logging.getLogger(__name__)

SWEEP_TEMPERATURES = (-1.0, -0.1, -0.001, 0.001, 0.01, 1.0, 1.8, 20.0, 100.0)
MAX_PROMPT_CHARS = 100_000


# ------------------------------------------------------------------ inputs
def read_prompts(path: str | os.PathLike) -> list[str]:
    """One prompt per non-blank line of a UTF-8 file (``-`` reads stdin). ``\\n`` inside a line
    stands for a newline. Raises InputError for a missing, unreadable or empty file."""
    p = Path(path)
    try:
        text = read_stdin_text() if str(path) == "-" else p.read_text("utf-8")
    except FileNotFoundError:
        raise InputError(f"{p}: no such prompt file") from None
    except UnicodeDecodeError:
        raise InputError(f"{p}: not UTF-8 text") from None
    except OSError as exc:
        raise InputError(f"{p}: cannot read ({exc.strerror or exc})") from None
    prompts = [line.replace("\\n", "\n") for line in text.splitlines() if line.strip()]
    if not prompts:
        raise InputError(f"{path}: the prompt file is empty (one prompt per line expected)")
    for i, s in enumerate(prompts):
        if len(s) > MAX_PROMPT_CHARS:
            raise InputError(f"{path}: prompt {i + 1} has {len(s)} characters (at most {MAX_PROMPT_CHARS})")
    return prompts


def default_prompt_files() -> list[Path]:
    """The packaged prompts ``anomtok/data/prompts_en.txt`` and ``prompts_ja.txt`` (they ship in
    the wheel, read through ``importlib.resources``)."""
    from ..resources import data_file

    return [data_file("prompts_en.txt"), data_file("prompts_ja.txt")]


def _prompt_list(prompts: Any) -> list[str]:
    if isinstance(prompts, (str, bytes)):
        raise InputError("prompts must be a list of strings or a Path to a prompt file (a bare string is ambiguous)")
    if isinstance(prompts, os.PathLike):
        return read_prompts(prompts)
    out = list(prompts)
    if not out:
        raise InputError("no prompts given")
    for i, s in enumerate(out):
        if not isinstance(s, str):
            raise InputError(f"prompt {i} is not a string")
        if not s.strip():
            raise InputError(f"prompt {i} is empty")
    return out


@dataclass(frozen=True)
class GenerationOptions:
    """How a generation run goes, checked when built (before any model is loaded): every bad
    value is an ``InputError`` naming what is allowed."""

    max_new_tokens: int = 64
    seed: int = 0
    batch_size: int = 8
    timeout_s: float | None = None
    stop_at_eos: bool = False
    device: str = "auto"
    dtype: str = "auto"
    device_map: str | None = None

    def __post_init__(self) -> None:
        check_int(self.max_new_tokens, "max_new_tokens", 1, MAX_NEW_TOKENS)
        check_seed(self.seed)
        check_int(self.batch_size, "batch_size", 1, MAX_BATCH_SIZE)
        t = self.timeout_s
        if t is not None and (isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t <= 0):
            raise InputError(f"timeout_s must be a positive number of seconds (or None: no limit), not {t!r}")
        if self.dtype not in DTYPE_NAMES:
            raise InputError(f"dtype must be one of {', '.join(DTYPE_NAMES)}, not {self.dtype!r}")
        if self.device_map not in (None, "auto"):
            raise InputError(f"device_map must be None or 'auto', not {self.device_map!r}")
        from ..device import resolve_device

        resolve_device(self.device)


DTYPE_NAMES = ("auto", "float32", "bfloat16", "float16")


def load_model_and_embeddings(model: Any, *, device: str = "auto", dtype: str = "auto", device_map: str | None = None,
                              embeddings: Any = None) -> tuple[CausalLM, Any]:
    """(CausalLM, ModelEmbeddings) for a spec, or for an already loaded CausalLM."""
    lm, emb, _ = load_for_generation(model, device=device, dtype=dtype, device_map=device_map, embeddings=embeddings)
    return lm, emb


def load_for_generation(model: Any, ranking: Any = None, *, device: str = "auto", dtype: str = "auto",
                        device_map: str | None = None, embeddings: Any = None) -> tuple[CausalLM, Any, Any]:
    """(CausalLM, ModelEmbeddings, ranking) for a spec or a loaded CausalLM, cheapest first: the
    embeddings and token table, then a given ranking (read, and checked to be this model's:
    ``ranking_for``), and only then the model itself. ``ranking`` None is returned as None (rank
    with ``ranking_for`` when needed)."""
    from ..loading import load

    source = model.source if isinstance(model, CausalLM) else str(model)
    emb = embeddings if embeddings is not None else load(source)
    rk = ranking_for(emb, ranking, device=device) if ranking is not None else None
    lm = model if isinstance(model, CausalLM) else load_causal_lm(model, device=device, dtype=dtype, device_map=device_map)
    if len(emb.tokens) < lm.n_vocab:
        raise InputError(f"the token table has {len(emb.tokens)} rows but the tokenizer {lm.n_vocab} tokens")
    return lm, emb, rk


def ranking_for(emb: Any, ranking: Any = None, *, device: str = "auto") -> Any:
    """A Ranking or ranked frame: the one given (object, frame, or ranked.csv/.parquet path),
    checked to be the ranking of ``emb``'s model, or a fresh ``anomtok.rank`` without
    nearest-neighbour cosine (``nn="off"``).

    A ranking from another model is an ``InputError``: another vocabulary size, tokens that spell
    other bytes, or, from the ``meta.json`` written beside a ranked file, another embedding shape.
    Other model files with the same shape and tokens (a copy elsewhere, a fine-tune) are a warning."""
    from ..export import read_table
    from ..ranking import RankOptions, Ranking, rank

    if ranking is None:
        return rank(emb, RankOptions(device=device, nn="off"))
    meta: Any = None
    if isinstance(ranking, (Ranking, pl.DataFrame)):
        frame = ranking.frame if isinstance(ranking, Ranking) else ranking
        meta = ranking.meta if isinstance(ranking, Ranking) else None
        where = "the ranking"
    else:
        frame = read_table(ranking)
        meta = _meta_beside(Path(ranking))
        where = str(ranking)
        ranking = frame
    check_ranking_identity(frame, emb, meta, where=where)
    return ranking


def _meta_beside(path: Path) -> Any:
    """The ``meta.json`` that ``anomtok rank`` wrote beside a ranked file, or None (absent,
    unreadable, or another command's)."""
    from ..export import read_json

    try:
        meta = read_json(path.parent / "meta.json", missing_ok=True)
    except InputError:
        return None
    if isinstance(meta, dict) and isinstance(meta.get("source"), dict) and isinstance(meta.get("shape"), list):
        return meta
    return None


def check_ranking_identity(frame: pl.DataFrame, emb: Any, meta: Any = None, *, where: str = "the ranking") -> None:
    """InputError unless ``frame`` (and its ``meta``, when known) ranks ``emb``'s model."""
    from ..steps import model_fingerprint

    rows = emb.shape[0]
    if frame.height != rows:
        raise InputError(f"{where}: {frame.height:,} rows but the model's embedding has {rows:,}: ranked from another model?")
    if isinstance(meta, dict) and isinstance(meta.get("shape"), list) and list(meta["shape"]) != list(emb.shape):
        raise InputError(f"{where}: ranked from a {' x '.join(map(str, meta['shape']))} embedding, this model's is "
                         f"{' x '.join(map(str, emb.shape))}: another model?")
    if "bytes_hex" in frame.columns and "token_id" in frame.columns:
        spelled = [b.hex() for b in emb.tokens.bytes[:rows]]
        ours = pl.DataFrame({"token_id": list(range(len(spelled))), "ours": spelled},
                            schema={"token_id": pl.Int64, "ours": pl.String})
        theirs = frame.select(pl.col("token_id").cast(pl.Int64), pl.col("bytes_hex").cast(pl.String).fill_null(""))
        joined = ours.join(theirs, on="token_id", how="left")
        differ = int(joined.filter(pl.col("bytes_hex").is_null() | (pl.col("bytes_hex") != pl.col("ours"))).height)
        if differ > max(0, rows // 100):
            raise InputError(f"{where}: {differ:,} of {rows:,} token ids spell other bytes than this model's tokens: "
                             "ranked from another model?")
        if differ:
            log.warning("%s: %d token ids spell other bytes than this model's tokens", where, differ)
    source = meta.get("source") if isinstance(meta, dict) else None
    if isinstance(source, dict) and source.get("files"):
        if model_fingerprint(source) != model_fingerprint(emb.provenance.to_dict()):
            log.warning("%s was ranked from other model files (%s) with the same vocabulary and shape: "
                        "another copy or a fine-tune of this model?", where,
                        ", ".join(str(f.get("path")) for f in source["files"]))


# ------------------------------------------------------------------ negtemp
@dataclass
class NegtempResult:
    generations: list[dict[str, Any]]
    tokens: pl.DataFrame
    crosscheck: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)


def _show(tokens: Any, ids: Sequence[int]) -> str:
    from ..text import display

    return display(b"".join(tokens.bytes[i] for i in ids))


def _records(gens: list[Generation], texts: list[str], groups: list[str], tokens: Any, temperature: float | None = None) -> list[dict[str, Any]]:
    from ..text import display

    out = []
    for g in gens:
        rec: dict[str, Any] = {"index": g.index}
        if temperature is not None:
            rec["temperature"] = temperature
        rec.update({
            "group": groups[g.index], "prompt": texts[g.index], "prompt_ids": g.prompt_ids,
            "generated_ids": g.token_ids, "text": _show(tokens, g.token_ids),
            "tokens": [display(tokens.bytes[i]) for i in g.token_ids], "stop_reason": g.stop_reason, "seed": g.seed,
            "steps": g.stats,
        })
        out.append(rec)
    return out


def _settings(config: SamplerConfig, **kw: Any) -> dict[str, Any]:
    return {"sampler": config.to_dict(), "pure_experiment_mode": config.pure, **kw,
            "padding_rows_masked": True, "per_sequence_seed": "row_seed(seed, prompt index)"}


def _write_jsonl(records: list[dict[str, Any]], path: Path) -> None:
    from ..cache import atomic_path

    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False, allow_nan=False, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    return str(o)


def _finite(x: Any) -> Any:
    """Replace nan/inf floats (from -inf log-probabilities) by None, recursively, for strict JSON."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    return x


def _out_dir(out_dir: Any) -> Path:
    from ..outputs import make_dir

    return make_dir(out_dir)


def negtemp(model: Any, prompts: Any, config: SamplerConfig | None = None, *, max_new_tokens: int = 64,
            seed: int = 0, batch_size: int = 8, stop_at_eos: bool = False, timeout_s: float | None = None,
            device: str = "auto", dtype: str = "auto", device_map: str | None = None, ranking: Any = None,
            embeddings: Any = None, groups: Sequence[str] | None = None, ks: Sequence[int] = (100, 1000),
            top_fractions: Sequence[float] = (0.02, 0.05), out_dir: str | os.PathLike | None = None, progress: bool = False,
            prompt_files: Sequence[str] | None = None) -> NegtempResult:
    """Generate at a (negative) temperature and cross-check the produced tokens with the ranking.

    ``model``: a spec for ``anomtok.load`` or a loaded ``CausalLM``. ``prompts``: a list of
    strings or a Path to a prompt file. ``config`` defaults to ``SamplerConfig(-0.001)``, pure.
    ``groups``: one label per prompt, default ``ja``/``en`` by script. ``ranking``: a Ranking,
    frame or ranked.csv/parquet path; default: ranked now without nearest-neighbour cosine.
    """
    from ..crosscheck import crosscheck, prompt_group
    from ..export import write_csv, write_json

    t0 = time.perf_counter()
    config = config if config is not None else SamplerConfig(temperature=-0.001)
    if not isinstance(config, SamplerConfig):
        raise InputError("config must be a SamplerConfig")
    GenerationOptions(max_new_tokens=max_new_tokens, seed=seed, batch_size=batch_size, timeout_s=timeout_s,
                      stop_at_eos=stop_at_eos, device=device, dtype=dtype, device_map=device_map)
    texts = _prompt_list(prompts)
    labels = list(groups) if groups is not None else [prompt_group(s) for s in texts]
    if len(labels) != len(texts):
        raise InputError(f"groups must have one label per prompt ({len(texts)}), not {len(labels)}")
    lm, emb, rk = load_for_generation(model, ranking, device=device, dtype=dtype, device_map=device_map,
                                      embeddings=embeddings)
    t_load = time.perf_counter()
    ids = [lm.encode(s) for s in texts]
    gens = generate(lm, ids, config, max_new_tokens=max_new_tokens, seed=seed, batch_size=batch_size,
                    stop_at_eos=stop_at_eos, timeout_s=timeout_s, progress=progress)
    t_gen = time.perf_counter()
    rk = rk if rk is not None else ranking_for(emb, None, device=device)
    cc = crosscheck([g.token_ids for g in gens], rk, groups=labels, ks=tuple(ks), top_fractions=tuple(top_fractions))
    records = _records(gens, texts, labels, emb.tokens)
    n_tok = sum(len(g.token_ids) for g in gens)
    meta = {
        "anomtok_version": __version__,
        **run_info("negtemp"),
        "model": emb.provenance.to_dict(),
        "generation_model": lm.describe(),
        "settings": _settings(config, max_new_tokens=max_new_tokens, seed=seed, batch_size=batch_size,
                              stop_at_eos=stop_at_eos, timeout_s=timeout_s, device=str(lm.device),
                              dtype=str(lm.dtype).replace("torch.", "")),
        "prompts": {"count": len(texts), "files": list(prompt_files or []),
                    "groups": {g: labels.count(g) for g in sorted(set(labels))}},
        "ranking": (rk.meta.get("settings") if hasattr(rk, "meta") else "given"),
        "stop_reasons": {r: sum(g.stop_reason == r for g in gens) for r in sorted({g.stop_reason for g in gens})},
        "timings_s": {"load": round(t_load - t0, 2), "generate": round(t_gen - t_load, 2),
                      "tokens_per_s": round(n_tok / max(t_gen - t_load, 1e-9), 2),
                      "crosscheck": round(time.perf_counter() - t_gen, 2)},
    }
    res = NegtempResult(generations=records, tokens=cc.tokens, crosscheck=_finite(cc.summary), meta=meta)
    if out_dir is not None:
        out = _out_dir(out_dir)
        meta["outputs"] = ["generations.jsonl", "negtemp_tokens.csv", "crosscheck.json", "meta.json"]
        _write_jsonl(_finite(records), out / "generations.jsonl")
        write_csv(cc.tokens, out / "negtemp_tokens.csv")
        write_json(res.crosscheck, out / "crosscheck.json")
        write_json(meta, out / "meta.json")
    return res


# ------------------------------------------------------------------ sweep
@dataclass
class SweepResult:
    frame: pl.DataFrame
    generations: list[dict[str, Any]]
    meta: dict[str, Any] = field(default_factory=dict)


def check_metric(metric: Any, ranking: Any = None) -> str:
    """``metric`` is one of the ranking metrics (and, given a ranking, one it has values of)."""
    from ..ranking import METRICS, Ranking

    if metric not in METRICS:
        raise InputError(f"unknown metric {metric!r}; choose from {', '.join(METRICS)}")
    if ranking is not None:
        frame = ranking.frame if isinstance(ranking, Ranking) else ranking
        if metric not in frame.columns or frame[metric].drop_nulls().len() == 0:
            why = " (ranked with --nn off: give --ranking from `anomtok rank`)" if metric == "nn_cos" else ""
            raise InputError(f"the ranking has no values of {metric}{why}")
    return metric


def _mean(values: list[float]) -> float | None:
    vals = [v for v in values if math.isfinite(v)]
    return round(sum(vals) / len(vals), 6) if vals else None


def sweep(model: Any, prompts: Any, temperatures: Sequence[float] = SWEEP_TEMPERATURES, *, max_new_tokens: int = 32,
          seed: int = 0, batch_size: int = 8, metric: str = "score", device: str = "auto", dtype: str = "auto",
          device_map: str | None = None, ranking: Any = None, embeddings: Any = None, timeout_s: float | None = None,
          out_dir: str | os.PathLike | None = None, progress: bool = False,
          prompt_files: Sequence[str] | None = None) -> SweepResult:
    """Generate from the same prompts at each temperature; per T: distinct tokens, mean entropy
    of the model's and of the sampling distribution, mean log-probability, and the mean anomaly
    percentile (``metric``, default ``score``) of the produced tokens, overall and per group.
    ``timeout_s`` applies to each temperature. Writes sweep.csv and sweep.png with ``out_dir``."""
    from ..crosscheck import crosscheck, prompt_group
    from ..export import write_csv, write_json

    temps = [float(t) for t in temperatures]
    if not temps:
        raise InputError("no temperatures to sweep")
    configs = [SamplerConfig(temperature=t) for t in temps]  # validates every T first
    GenerationOptions(max_new_tokens=max_new_tokens, seed=seed, batch_size=batch_size, timeout_s=timeout_s,
                      device=device, dtype=dtype, device_map=device_map)
    check_metric(metric)
    texts = _prompt_list(prompts)
    labels = [prompt_group(s) for s in texts]
    lm, emb, rk = load_for_generation(model, ranking, device=device, dtype=dtype, device_map=device_map,
                                      embeddings=embeddings)
    rk = rk if rk is not None else ranking_for(emb, None, device=device)
    check_metric(metric, rk)
    ids = [lm.encode(s) for s in texts]
    rows, records = [], []
    t0 = time.perf_counter()
    for cfg in configs:
        t1 = time.perf_counter()
        gens = generate(lm, ids, cfg, max_new_tokens=max_new_tokens, seed=seed, batch_size=batch_size,
                        timeout_s=timeout_s, progress=progress)
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
        records.extend(_records(gens, texts, labels, emb.tokens, temperature=cfg.temperature))
    frame = pl.DataFrame(rows)
    meta = {
        "anomtok_version": __version__,
        **run_info("sweep"),
        "model": emb.provenance.to_dict(),
        "generation_model": lm.describe(),
        "settings": _settings(SamplerConfig(), temperatures=temps, max_new_tokens=max_new_tokens, seed=seed,
                              batch_size=batch_size, metric=metric, timeout_s=timeout_s, device=str(lm.device),
                              dtype=str(lm.dtype).replace("torch.", "")),
        "prompts": {"count": len(texts), "files": list(prompt_files or []),
                    "groups": {g: labels.count(g) for g in sorted(set(labels))}},
        "percentile": "100 * rank / N in the metric's suspicious direction; random tokens average 50",
        "seconds": round(time.perf_counter() - t0, 2),
    }
    res = SweepResult(frame=frame, generations=records, meta=meta)
    if out_dir is not None:
        out = _out_dir(out_dir)
        meta["outputs"] = ["sweep.csv", "sweep.png", "sweep_generations.jsonl", "meta.json"]
        write_csv(frame, out / "sweep.csv")
        plot_sweep(frame, out / "sweep.png", title=f"{lm.source}: {len(texts)} prompts x {max_new_tokens} tokens",
                   metric=metric)
        _write_jsonl(_finite(records), out / "sweep_generations.jsonl")
        write_json(meta, out / "meta.json")
    return res


def plot_sweep(frame: pl.DataFrame, path: str | os.PathLike, *, title: str = "", metric: str = "score") -> Path:
    """Four panels against T (symmetric-log axis): distinct tokens, entropies, mean anomaly
    percentile, mean log-probability. Uses matplotlib's Agg canvas directly: no pyplot, no
    global state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ..cache import atomic_path

    T = frame["temperature"].to_list()
    fig = Figure(figsize=(10, 7), dpi=110)
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 2, sharex=True)
    panels = [
        (axes[0][0], [("distinct_tokens", "distinct tokens")], "distinct tokens"),
        (axes[0][1], [("mean_entropy", "model (T=1)"), ("mean_sample_entropy", "sampling distribution")],
         "mean entropy (nats)"),
        (axes[1][0], [("mean_percentile", "all"), ("mean_percentile_en", "EN prompts"),
                      ("mean_percentile_ja", "JA prompts")], f"mean percentile in {metric}\n(0 = most suspicious)"),
        (axes[1][1], [("mean_logprob", "chosen token")], "mean log p(chosen), model at T=1"),
    ]
    for ax, series, ylabel in panels:
        for col, lab in series:
            if col in frame.columns:
                ys = [float("nan") if v is None else v for v in frame[col].to_list()]
                ax.plot(T, ys, marker="o", label=lab)
        ax.set_xscale("symlog", linthresh=1e-3)
        ax.axvline(0.0, color="grey", lw=0.8, ls=":")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        if len(series) > 1:
            ax.legend(fontsize=8)
    axes[1][0].axhline(50.0, color="grey", lw=0.8, ls="--")
    for ax in axes[1]:
        ax.set_xlabel("temperature T (symlog)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    target = Path(path)
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png")
    return target
