"""The ``verify`` command's function: candidates from a ranking, scored by teacher forcing, the
verdicts as a frame with each candidate's metric ranks, the precision of each metric and, with
``out_dir``, the files (:mod:`.summary`). See :mod:`anomtok.verify` for the method."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from ..errors import InputError
from ..generation.crosscheck import metric_ranks
from ..ranking import METRICS, Ranking
from .prompts import N_POSITIONS, VERIFY_THRESHOLD, make_prompt_set
from .scoring import DEFAULT_BATCH_SIZE, score_tokens
from .select import MAX_CANDIDATES, check_settings, select_candidates
from .summary import summarize, write_outputs

__all__ = ["VerifyResult", "verify", "roundtrip"]


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


def roundtrip(lm: Any, token_id: int) -> bool:
    """Does the token's decoded text encode back to exactly this token?"""
    try:
        text = lm.tokenizer.decode([token_id])
        return list(lm.tokenizer(text, add_special_tokens=False)["input_ids"]) == [token_id]
    except (ValueError, TypeError, KeyError, IndexError, OverflowError):  # odd ids in slow tokenizers
        return False


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
    from ..generation import load_for_generation, ranking_for

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
    tops: dict[int, set[str]]
    if token_ids is not None:
        tops = {int(t): set() for t in token_ids}
        _, rnd, refs = select_candidates(frame, [], top, kinds, random_sample, seed, lm.n_vocab)
    else:
        tops, rnd, refs = select_candidates(frame, use, top, kinds, random_sample, seed, lm.n_vocab)
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
                "roundtrip": roundtrip(lm, c),
                "top_of": ";".join(sorted(tops.get(c, set()))),
                "random_sample": c in rnd_set,
                "reference_sample": c in ref_set,
                "is_reference": c in is_ref,
                "output_echo": _show(emb.tokens, [int(sc.top_ids[i, echo])]),
            }
        )
    out = pl.DataFrame(rows).join(ranks.with_columns(pl.col("token_id").cast(pl.Int64)), on="token_id", how="left")
    out = out.sort(["max_prob", "token_id"])
    summary = summarize(out, tops, rnd, refs, use, top, threshold, sizes)
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
        write_outputs(
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
                **lm.placement(),
                total_seconds=round(time.perf_counter() - t0, 2),
            ),
        )
    return VerifyResult(frame=out, summary=summary)


def _show(tokens: Any, ids: Sequence[int]) -> str:
    from ..text import display

    return display(b"".join(tokens.bytes[i] for i in ids if i < len(tokens.bytes)))
