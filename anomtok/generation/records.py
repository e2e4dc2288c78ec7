"""What ``negtemp`` and ``sweep`` write about their generations, shared by both.

``records`` turns ``Generation`` objects into JSON-ready dicts (prompt, ids, text, tokens,
stop reason, seed, per-step statistics); ``settings`` is the sampler part of a ``meta.json``;
``write_jsonl`` writes records atomically, one per line, after ``finite`` has replaced the
nan/inf floats strict JSON has no spelling for; ``out_dir`` checks and makes the output folder.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .loop import Generation
from .sampler import SamplerConfig

__all__ = ["records", "settings", "write_jsonl", "finite", "out_dir"]


def _show(tokens: Any, ids: Sequence[int]) -> str:
    from ..text import display

    return display(b"".join(tokens.bytes[i] for i in ids))


def records(
    gens: list[Generation], texts: list[str], groups: list[str], tokens: Any, temperature: float | None = None
) -> list[dict[str, Any]]:
    """One JSON-ready dict per generation; ``temperature`` (the sweep's) is written second when given."""
    from ..text import display

    out = []
    for g in gens:
        rec: dict[str, Any] = {"index": g.index}
        if temperature is not None:
            rec["temperature"] = temperature
        rec.update(
            {
                "group": groups[g.index],
                "prompt": texts[g.index],
                "prompt_ids": g.prompt_ids,
                "generated_ids": g.token_ids,
                "text": _show(tokens, g.token_ids),
                "tokens": [display(tokens.bytes[i]) for i in g.token_ids],
                "stop_reason": g.stop_reason,
                "seed": g.seed,
                "steps": g.stats,
            }
        )
        out.append(rec)
    return out


def settings(config: SamplerConfig, **kw: Any) -> dict[str, Any]:
    """The ``settings`` of a generation ``meta.json``: the sampler, then ``kw``, then the fixed facts."""
    return {
        "sampler": config.to_dict(),
        "pure_experiment_mode": config.pure,
        **kw,
        "padding_rows_masked": True,
        "per_sequence_seed": "row_seed(seed, prompt index)",
    }


def meta_head(
    command: str,
    emb: Any,
    lm: Any,
    settings: dict[str, Any],
    texts: Sequence[str],
    labels: Sequence[str],
    prompt_files: Sequence[Any] | None,
) -> dict[str, Any]:
    """The first keys of a generation ``meta.json`` (negtemp and sweep): versions, the embedding's
    source, the generation model, ``settings`` and the prompts."""
    from .._version import __version__
    from ..provenance import run_info

    return {
        "anomtok_version": __version__,
        **run_info(command),
        "model": emb.provenance.to_dict(),
        "generation_model": lm.describe(),
        "settings": settings,
        "prompts": {
            "count": len(texts),
            "files": list(prompt_files or []),
            "groups": {g: labels.count(g) for g in sorted(set(labels))},
        },
    }


def write_jsonl(records: list[dict[str, Any]], path: Path) -> None:
    """``records`` as JSON lines (UTF-8, strict JSON), written atomically."""
    from ..cache import atomic_path

    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False, allow_nan=False, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    return str(o)


def finite(x: Any) -> Any:
    """Replace nan/inf floats (from -inf log-probabilities) by None, recursively, for strict JSON."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [finite(v) for v in x]
    return x


def out_dir(path: Any) -> Path:
    """The output folder, checked and created (``anomtok.outputs.make_dir``)."""
    from ..outputs import make_dir

    return make_dir(path)
