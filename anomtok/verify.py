"""Verification by prompting, after Land & Bartolo (2024), *Fishing for Magikarp*.

A ranking only says a token *looks* under-trained. Verification asks the model to repeat it:
a model that learned a token can copy it when shown it a dozen times; a model that never saw it
in training gives it almost no probability. For each candidate:

1. Few-shot repetition prompts (``TEMPLATES``: an echo log, a "what does X mean" exchange, a
   plain run of repeats) are written once around a *placeholder* token, a long ordinary
   alphabetic token that survives encode → decode → encode in every template. The prompt is
   encoded, and every occurrence of the placeholder's id is then replaced by the candidate's
   id. The candidate's text is never re-encoded: tokens that text can never produce (partial
   UTF-8, unreachable merges) are verified as they are.
2. The model continues greedily for ``n_positions`` (3) tokens; at each position we record the
   model's probability of the candidate (T = 1). ``max_prob`` is the maximum over templates
   and positions.
3. ``max_prob < threshold`` (default ``VERIFY_THRESHOLD = 0.01``, the paper's weak/strong
   verification boundary is 0.1/0.001; 0.01 sits between) = **verified** under-trained.

Candidates are the top ``top`` tokens of each ranking metric (among ``kinds``, default ordinary
tokens only: reserved and special tokens are already known), never a reference token (the
tokens the default score is computed from), plus a random sample of the same kinds as the base
rate. The precision of a metric is the share of its top tokens that verify; its lift is that
precision over the base rate. A random sample of up to ``top`` reference tokens is verified
apart, as a sanity row (``reference`` in ``verify.json``): it says whether the model really
cannot repeat what the score was told is unused.

Outputs (``out_dir``): ``verified.csv`` (one row per candidate: probabilities, verdict, which
metric tops it is in, its rank in each metric), ``verify.json`` (precision per metric, base
rate, placeholder, templates, threshold) and ``meta.json``.
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import polars as pl

from ._version import __version__
from .crosscheck import metric_ranks
from .errors import InputError
from .provenance import run_info
from .ranking import METRICS, Ranking, order_by

__all__ = ["VERIFY_THRESHOLD", "TEMPLATES", "VerifyResult", "verify", "build_prompts", "find_placeholder"]

log = logging.getLogger(__name__)

VERIFY_THRESHOLD = 0.01
N_POSITIONS = 3
PLACEHOLDER = "{t}"
# (name, prompt text with {t} for the token; the prompt ends right where the token is expected)
TEMPLATES: tuple[tuple[str, str], ...] = (
    ("echo", "This program prints its input unchanged. Log of identical runs:\n"
             + "in: «{t}»\nout: «{t}»\n" * 6 + "in: «{t}»\nout: «"),
    ("meaning", "Q: What does the string 'qzvx' mean?\nA: The string 'qzvx' has no particular meaning.\n"
                "Q: What does the string '{t}' mean?\nA: The string '"),
    ("repeat", "The same word, repeated over and over:\n" + "{t}" * 16),
)
MAX_CANDIDATES = 20_000


@dataclass
class VerifyResult:
    frame: pl.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)


def build_prompts(encode: Any, placeholder_text: str, placeholder_id: int,
                  templates: Sequence[tuple[str, str]] = TEMPLATES) -> list[list[int]] | None:
    """Token ids of every template with the placeholder, or None when the placeholder does not
    come out as exactly one ``placeholder_id`` per ``{t}`` in some template."""
    out = []
    for _, text in templates:
        ids = encode(text.replace(PLACEHOLDER, placeholder_text))
        if sum(1 for i in ids if i == placeholder_id) != text.count(PLACEHOLDER):
            return None
        out.append(list(ids))
    return out


def find_placeholder(lm: Any, tokens: Any, templates: Sequence[tuple[str, str]] = TEMPLATES,
                     tries: int = 300) -> tuple[int, str, list[list[int]]]:
    """A long ASCII-alphabetic ordinary token whose text encodes back to itself in every template."""
    cands = []
    for i in range(min(lm.n_vocab, len(tokens))):
        if tokens.kinds[i] != "normal":
            continue
        text = tokens.bytes[i].decode("utf-8", errors="replace")
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


def _roundtrip(lm: Any, token_id: int) -> bool:
    try:
        text = lm.tokenizer.decode([token_id])
        return list(lm.tokenizer(text, add_special_tokens=False)["input_ids"]) == [token_id]
    except Exception:  # noqa: BLE001 - tokenizers raise many things on odd ids
        return False


def _select(frame: pl.DataFrame, metrics: Sequence[str], top: int, kinds: Sequence[str], random_n: int,
            seed: int, n_vocab: int) -> tuple[dict[int, set[str]], list[int], list[int]]:
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


def verify(model: Any, ranking: Any = None, *, metrics: Sequence[str] | None = None, top: int = 20,
           random_sample: int = 30, kinds: Sequence[str] = ("normal",), token_ids: Sequence[int] | None = None,
           threshold: float = VERIFY_THRESHOLD, n_positions: int = N_POSITIONS, batch_size: int = 16, seed: int = 0,
           device: str = "auto", dtype: str = "auto", embeddings: Any = None, out_dir: str | os.PathLike | None = None,
           progress: bool = False) -> VerifyResult:
    """Verify the top candidates of a ranking by prompting (see the module docstring).

    ``model``: a spec for ``anomtok.load`` or a loaded ``CausalLM``. ``ranking``: a Ranking, its
    frame, a ranked.csv/parquet path, or None to rank now (``nn="off"``). ``token_ids``: verify
    exactly these instead of the metric tops (the random sample is still drawn, ``random_sample=0``
    to skip it)."""
    from .generation import GenerationOptions, load_for_generation, ranking_for
    from .generation.loop import generate
    from .generation.sampler import SamplerConfig

    if not 0.0 < threshold < 1.0 or not math.isfinite(threshold):
        raise InputError(f"threshold must be in (0, 1), not {threshold}")
    if not isinstance(top, int) or not 1 <= top <= 5000:
        raise InputError(f"top must be an integer from 1 to 5000, not {top!r}")
    if not isinstance(random_sample, int) or not 0 <= random_sample <= 5000:
        raise InputError(f"random_sample must be an integer from 0 to 5000, not {random_sample!r}")
    if not isinstance(n_positions, int) or not 1 <= n_positions <= 16:
        raise InputError(f"n_positions must be an integer from 1 to 16, not {n_positions!r}")
    GenerationOptions(seed=seed, batch_size=batch_size, device=device, dtype=dtype)  # before any loading
    unknown = [m for m in metrics or [] if m not in METRICS]
    if unknown:
        raise InputError(f"unknown metric(s) {', '.join(map(str, unknown))}; choose from {', '.join(METRICS)}")
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
    ph_id, ph_text, built = find_placeholder(lm, emb.tokens)
    t1 = time.perf_counter()
    prompts, watch, where = [], [], []
    for c in cand:
        for j, ids in enumerate(built):
            prompts.append([c if i == ph_id else i for i in ids])
            watch.append(c)
            where.append((c, j))
    gens = generate(lm, prompts, SamplerConfig(temperature=0.0), max_new_tokens=n_positions, batch_size=batch_size,
                    watch_ids=watch, progress=progress)
    probs: dict[int, list[float]] = {c: [math.nan] * len(built) for c in cand}
    outs: dict[int, list[list[int]]] = {c: [[] for _ in built] for c in cand}
    for (c, j), g in zip(where, gens):
        probs[c][j] = max(g.watched or [math.nan])
        outs[c][j] = g.token_ids
    ranks, sizes = metric_ranks(frame, use)
    rows = []
    for c in cand:
        mp = max(probs[c])
        rows.append({
            "token_id": c,
            "token": emb.tokens.displays[c],
            "bytes_hex": emb.tokens.bytes[c].hex(),
            "kind": emb.tokens.kinds[c],
            "script": emb.tokens.scripts[c],
            "max_prob": mp,
            "verified": bool(mp < threshold),
            **{f"prob_{name}": probs[c][j] for j, (name, _) in enumerate(TEMPLATES)},
            "roundtrip": _roundtrip(lm, c),
            "top_of": ";".join(sorted(tops.get(c, set()))),
            "random_sample": c in set(rnd),
            "reference_sample": c in set(refs),
            "output_echo": _show(emb.tokens, outs[c][0]),
        })
    out = pl.DataFrame(rows).join(ranks.with_columns(pl.col("token_id").cast(pl.Int64)), on="token_id", how="left")
    out = out.sort(["max_prob", "token_id"])
    summary = _summary(out, tops, rnd, refs, use, top, threshold, sizes)
    summary.update({
        "threshold": threshold, "n_positions": n_positions, "kinds": list(kinds),
        "placeholder": {"token_id": ph_id, "token": emb.tokens.displays[ph_id]},
        "templates": [{"name": n, "text": t} for n, t in TEMPLATES],
        "seconds": round(time.perf_counter() - t1, 2),
    })
    if out_dir is not None:
        _write(out_dir, out, summary, lm, emb, rk, dict(metrics=use, top=top, random_sample=random_sample,
               kinds=list(kinds), threshold=threshold, n_positions=n_positions, batch_size=batch_size, seed=seed,
               device=str(lm.device), dtype=str(lm.dtype).replace("torch.", ""),
               total_seconds=round(time.perf_counter() - t0, 2)))
    return VerifyResult(frame=out, summary=summary)


def _show(tokens: Any, ids: Sequence[int]) -> str:
    from .text import display

    return display(b"".join(tokens.bytes[i] for i in ids if i < len(tokens.bytes)))


def _summary(out: pl.DataFrame, tops: dict[int, set[str]], rnd: list[int], refs: list[int], metrics: Sequence[str],
             top: int, threshold: float, sizes: dict[str, int]) -> dict[str, Any]:
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
        prec[m] = {"n": len(mine), "verified": int(sum(ver[t] for t in mine)), "precision": round(p, 4),
                   "lift": round(p / base_rate, 4) if base_rate else None}
    n_ver = int(out["verified"].sum())
    return {
        "n_candidates": out.height,
        "n_verified": n_ver,
        "base_rate": {"n": len(base), "verified": int(sum(base)), "rate": round(base_rate, 4) if base_rate is not None else None},
        "precision": prec,
        # sanity row: reference tokens are never candidates; most of them should verify
        "reference": {"n": len(ref), "verified": int(sum(ref)),
                      "rate": round(sum(ref) / len(ref), 4) if ref else None},
        "top": top,
        "verified_share_per_metric": {m: round(sum(1 for t, ms in tops.items() if m in ms and ver[t]) / n_ver, 4)
                                      for m in prec} if n_ver else {},
    }


def _write(out_dir: Any, frame: pl.DataFrame, summary: dict[str, Any], lm: Any, emb: Any, rk: Any,
           settings: dict[str, Any]) -> None:
    from .export import write_csv, write_json

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    write_csv(frame, out / "verified.csv")
    write_json(summary, out / "verify.json")
    write_json({
        "anomtok_version": __version__,
        **run_info("verify"),
        "model": emb.provenance.to_dict(),
        "generation_model": lm.describe(),
        "ranking": getattr(rk, "meta", {}).get("settings") if isinstance(rk, Ranking) else "given",
        "settings": settings,
        "outputs": ["verified.csv", "verify.json", "meta.json"],
    }, out / "meta.json")
