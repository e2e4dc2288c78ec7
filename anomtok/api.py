"""The Python API: one function per CLI command (``anomtok rank`` = ``anomtok.rank``).

Each function takes the command's subject (a model, a tokenizer source, report folders), one
options object (``anomtok.options``; ``RankOptions`` and ``ScanOptions`` live with their
features), or keyword arguments that build one, and returns the feature's result. Building the
options is the check, done once before anything is read or loaded; the CLI builds the same object
from its flags and calls the same function, so both write the same files.

==========================================================================  ====================
``nearest(model, options=None, **kw)`` → polars DataFrame                   ``NearestOptions``
``rank(model, options=None, *, out_dir=None, progress=None, **kw)`` → ``Ranking``  ``RankOptions``
``audit(source, options=None, *, ranking=None, out_dir=None, progress=None, **kw)``  ``AuditOptions``
``negtemp(model, options=None, prompts=None, *, ranking=None, out_dir=None, progress=False, **kw)``  ``NegtempOptions``
``sweep(model, options=None, prompts=None, *, ranking=None, out_dir=None, progress=False, **kw)``  ``SweepOptions``
``verify(model, options=None, *, ranking=None, out_dir=None, progress=False, **kw)``  ``VerifyOptions``
``plot(model, options=None, *, out_dir, mark_ids=None, progress=None, **kw)``  ``PlotOptions``
``scan(model, options=None, *, out_dir, progress=None, **kw)`` → ``ScanResult``  ``ScanOptions``
``compare(folders, options=None, *, out=None, **kw)`` → ``Comparison``       ``CompareOptions``
``detect(model, inputs, options=None, *, glitch, out=None, **kw)`` → ``DetectRun``  ``DetectOptions``
==========================================================================  ====================

``**kw`` are the options' fields, or the fields of their parts (``temperature`` is
``NegtempOptions.sampler.temperature``; see ``anomtok.options.make_options``); with ``options``
too, they replace its values. ``anomtok.negtemp("smollm2-135m", temperature=-1, max_new_tokens=16,
out_dir="out/neg")`` is ``anomtok negtemp smollm2-135m -T -1 -n 16 -o out/neg``.

What the CLI does on top: it checks the output path up front and removes a failed run's partial
output (``anomtok.outputs.prepare_output``), prints, and maps errors to exit codes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import InputError
from .loading import load
from .options import (
    AuditOptions,
    CompareOptions,
    DetectOptions,
    NearestOptions,
    NegtempOptions,
    PlotOptions,
    SweepOptions,
    VerifyOptions,
    make_options,
)

# torch and polars come with the first function that needs them (through the ranking), so that
# ``compare`` and every ``--help`` start without them (issue 13.2).
if TYPE_CHECKING:  # pragma: no cover
    import polars as pl

    from .audit import AuditResult
    from .compare import Comparison
    from .detect import DetectRun
    from .embeddings import ModelEmbeddings
    from .generation import NegtempResult, SweepResult
    from .ranking import Ranking, RankOptions
    from .scan import ScanResult
    from .verify import VerifyResult

__all__ = ["nearest", "rank", "audit", "negtemp", "sweep", "verify", "plot", "scan", "compare", "detect", "COMMANDS"]

# the CLI command each function mirrors (tests/test_api.py checks this against the click group)
COMMANDS = ("nearest", "rank", "audit", "negtemp", "sweep", "verify", "plot", "scan", "compare", "detect")


def _embeddings(model: Any) -> ModelEmbeddings:
    from .embeddings import ModelEmbeddings

    return model if isinstance(model, ModelEmbeddings) else load(model)


def rank(
    model: Any,
    options: RankOptions | None = None,
    *,
    out_dir: str | os.PathLike | None = None,
    progress: Any = None,
    **overrides: Any,
) -> Ranking:
    """Rank every token of ``model`` (a spec for ``anomtok.load`` or loaded embeddings).

    With ``out_dir``, also write ``ranked.csv``, ``ranked.parquet`` and ``meta.json`` there,
    committed together with the ``rank`` step's marker (``.steps/rank.json``), so that ``scan``
    reuses them when the model and the settings are the same (see ``anomtok.steps``).
    """
    from .export import write_ranking
    from .ranking import RankOptions
    from .ranking import rank as _rank
    from .steps import rank_key

    opts = make_options(RankOptions, options, **overrides)
    started = time.perf_counter()
    emb = _embeddings(model)
    result = _rank(emb, opts, progress=progress)
    if out_dir is not None:
        key = rank_key(emb.provenance.to_dict(), opts)
        paths = write_ranking(result, Path(out_dir), step_key=key, started=started)
        result.meta["outputs"] = {k: str(v) for k, v in paths.items()}
    return result


# The columns ``nearest`` gives for a model (from a ``Ranking``: all of its columns).
NEAREST_COLUMNS = ("token_id", "token", "bytes_hex", "kind", "script", "norm", "centroid_l2", "centroid_cos")


def nearest(model: Any, options: NearestOptions | RankOptions | None = None, **overrides: Any) -> pl.DataFrame:
    """The ``k`` tokens nearest to the centroid (``far=True``: farthest), or the top ``k`` by any
    metric of the ranking in its suspicious direction (``far`` flips it); ties: the lower token id
    first. ``model``: a spec, loaded embeddings or a ``Ranking``; a ``RankOptions`` as ``options``
    is how to rank.

    For a model, only the columns shown are computed (``NEAREST_COLUMNS``, the metric, and
    ``rank`` for ``metric="score"``; see ``anomtok.ranking.lookup``): no principal component or
    neighbour search unless the metric needs one. Their values and order are those of the full
    ranking; a ``Ranking`` gives all of its columns."""
    from .ranking import Ranking, RankOptions, lookup, order_by

    if isinstance(options, RankOptions):
        options = NearestOptions(rank=options)
    opts = make_options(NearestOptions, options, **overrides)
    if isinstance(model, Ranking):
        return order_by(model.frame, opts.metric, far=opts.far, include_padding=opts.include_padding).head(opts.k)
    columns = NEAREST_COLUMNS + (("rank",) if opts.metric == "score" else ())
    return lookup(
        _embeddings(model),
        opts.metric,
        opts.k,
        far=opts.far,
        include_padding=opts.include_padding,
        columns=columns,
        options=opts.rank,
    )


def audit(
    source: Any,
    options: AuditOptions | None = None,
    *,
    ranking: Any = None,
    out_dir: str | os.PathLike | None = None,
    progress: Any = None,
    **overrides: Any,
) -> AuditResult:
    """Audit every token of a tokenizer (``source``: anything ``anomtok.load`` takes, a tokenizer
    file, or the alias ``xlmr-tokenizer``); with ``out_dir`` write ``audit.csv``, ``audit.json``
    and ``audit.md``. ``ranking``: a ``Ranking`` or loaded embeddings to line up, instead of the
    options' ``model``."""
    from .audit import audit as run_audit

    opts = make_options(AuditOptions, options, **overrides)
    if ranking is not None and (opts.model is not None or opts.no_rank):
        raise InputError("give either ranking= or the options' model / no_rank, not both")
    return run_audit(
        source,
        out_dir=out_dir,
        ranking=ranking if ranking is not None else opts.ranking(),
        rank_options=opts.rank,
        progress=progress,
    )


def _prompts(prompts: Any, files: Sequence[str], n_each: int | None = None) -> tuple[list[str], list[str]]:
    """(prompt texts, the files they come from): ``prompts`` (a list of strings or a Path), else
    the first ``n_each`` (None: all) of each of ``files`` (default: the packaged prompts)."""
    from .generation import default_prompt_files, read_prompts

    if prompts is not None:
        if files:
            raise InputError("give either prompts or prompt_files, not both")
        from .generation.prompts import prompt_list

        return prompt_list(prompts), [os.fspath(prompts)] if isinstance(prompts, os.PathLike) else []
    paths = list(files) or [str(p) for p in default_prompt_files()]
    texts: list[str] = []
    for f in paths:
        ps = read_prompts(f)
        texts.extend(ps[:n_each] if n_each else ps)
    return texts, paths


def negtemp(
    model: Any,
    options: NegtempOptions | None = None,
    prompts: Any = None,
    *,
    ranking: Any = None,
    out_dir: str | os.PathLike | None = None,
    progress: bool = False,
    **overrides: Any,
) -> NegtempResult:
    """Generate from ``model`` at the options' temperature (default -0.001) and cross-check the
    produced tokens against the ranking; with ``out_dir`` write ``generations.jsonl``,
    ``negtemp_tokens.csv``, ``crosscheck.json`` and ``meta.json``. ``prompts``: a list of strings
    or a prompt file (default: the options' ``prompt_files``, else the packaged prompts);
    ``ranking``: a ``Ranking`` or ranked.csv/parquet (default: rank now, without kNN)."""
    from .generation import negtemp as run_negtemp

    opts = make_options(NegtempOptions, options, **overrides)
    texts, files = _prompts(prompts, opts.prompt_files)
    return run_negtemp(
        model, texts, ranking=ranking, out_dir=out_dir, progress=progress, prompt_files=files, **opts.feature_kwargs()
    )


def sweep(
    model: Any,
    options: SweepOptions | None = None,
    prompts: Any = None,
    *,
    ranking: Any = None,
    out_dir: str | os.PathLike | None = None,
    progress: bool = False,
    **overrides: Any,
) -> SweepResult:
    """Generate from the same prompts at each of the options' temperatures; with ``out_dir``
    write ``sweep.csv``, ``sweep.png``, ``sweep_generations.jsonl`` and ``meta.json``.
    ``prompts``: a list of strings or a prompt file (default: the first ``prompts_per_file`` of each of
    the options' ``prompt_files``, else of the packaged prompts)."""
    from .generation import sweep as run_sweep

    opts = make_options(SweepOptions, options, **overrides)
    texts, files = _prompts(prompts, opts.prompt_files, opts.prompts_per_file or None)
    return run_sweep(
        model, texts, ranking=ranking, out_dir=out_dir, progress=progress, prompt_files=files, **opts.feature_kwargs()
    )


def verify(
    model: Any,
    options: VerifyOptions | None = None,
    *,
    ranking: Any = None,
    out_dir: str | os.PathLike | None = None,
    progress: bool = False,
    **overrides: Any,
) -> VerifyResult:
    """Verify the top candidates of the ranking by prompting (see ``anomtok.verify``); with
    ``out_dir`` write ``verified.csv``, ``verify.json`` and ``meta.json``. ``ranking``: a
    ``Ranking`` or ranked.csv/parquet (default: rank now, without kNN)."""
    from .verify import verify as run_verify

    opts = make_options(VerifyOptions, options, **overrides)
    return run_verify(model, ranking, out_dir=out_dir, progress=progress, **opts.feature_kwargs())


def plot(
    model: Any,
    options: PlotOptions | None = None,
    *,
    out_dir: str | os.PathLike,
    mark_ids: Any = None,
    progress: Any = None,
    **overrides: Any,
) -> Any:
    """Rank (or reuse ``out_dir/ranked.parquet``), map (or reuse ``umap.parquet``) and render every
    plot into ``out_dir/plots``. ``mark_ids``: token ids to mark, or a file of them (default: the
    ids of ``out_dir/negtemp_tokens.csv`` when it exists). Returns a ``PlotResult``."""
    from .maps.plot import NEGTEMP_FILE, plot_model

    opts = make_options(PlotOptions, options, **overrides)
    name = None
    if isinstance(mark_ids, (str, os.PathLike)):
        from .detect import read_token_ids

        name = "negative-temperature tokens" if Path(mark_ids).name == NEGTEMP_FILE else "marked tokens"
        mark_ids = read_token_ids(mark_ids)
    return plot_model(
        model,
        Path(out_dir),
        map_options=opts.map,
        no_map=opts.no_map,
        label_top=opts.label_top,
        mark_ids=mark_ids,
        mark_name=name,
        formats=opts.formats,
        device=opts.device,
        progress=progress,
        html=opts.html,
    )


def scan(
    model: Any, options: Any = None, *, out_dir: str | os.PathLike, progress: Any = None, **overrides: Any
) -> ScanResult:
    """Scan ``model`` end to end into ``out_dir``: ranking, audit, negative temperature,
    verification, maps, ``report.md`` and ``glitch.csv`` (see ``anomtok.scan``); finished steps
    are reused. ``options``: a ``ScanOptions`` (its flat fields as keywords: ``generate=False``)."""
    from .scan import ScanOptions
    from .scan import scan as run_scan

    opts = make_options(ScanOptions, options, **overrides)
    return run_scan(model, Path(out_dir), opts, progress=progress)


def compare(
    folders: Iterable[str | os.PathLike],
    options: CompareOptions | None = None,
    *,
    out: str | os.PathLike | None = None,
    **overrides: Any,
) -> Comparison:
    """Compare report folders (from ``scan`` or ``rank``): the glitch tokens each pair of models both
    flag, matched by their exact bytes across tokenizers, and a side-by-side summary. With ``out``,
    write the comparison there as the options' ``format`` (by default markdown, json for a
    ``.json`` name); ``result.text()`` is the terminal form."""
    from .cache import atomic_write_text
    from .compare import compare as run_compare

    opts = make_options(CompareOptions, options, **overrides)
    if isinstance(folders, (str, os.PathLike)):
        raise InputError("compare takes a list of report folders (at least two)")
    result = run_compare([Path(f) for f in folders], top=opts.top)
    if out is not None:
        fmt = opts.format or ("json" if str(out).endswith(".json") else "markdown")
        atomic_write_text(out, result.text(fmt) + "\n")
    return result


def detect(
    model: Any,
    inputs: Any,
    options: DetectOptions | None = None,
    *,
    glitch: Any,
    out: str | os.PathLike | None = None,
    **overrides: Any,
) -> DetectRun:
    """Find the glitch tokens of ``model`` (its tokenizer) in ``inputs`` (text or JSONL files,
    ``"-"`` for stdin). ``glitch``: ranked.csv / glitch.csv / a file of ids (its rows chosen by the
    options' ``top``, ``min_score``, ``include_special``), or a ``GlitchList`` or token ids.

    Returns the ``DetectRun``: without ``out`` not read yet (iterate it for the hits; its
    summaries are complete when the iteration ends); with ``out``, the hits are written there as
    JSON lines (atomically; ``InputError`` and no file when no input could be read) and the run
    is complete."""
    from .detect import DetectRun, GlitchDetector, check_inputs, load_glitch_list

    opts = make_options(DetectOptions, options, **overrides)
    inputs = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    check_inputs(inputs)  # before the (slow) tokenizer load
    if isinstance(glitch, (str, os.PathLike)):
        glitch = load_glitch_list(glitch, top=opts.top, min_score=opts.min_score, include_special=opts.include_special)
    elif opts.top is not None or opts.min_score is not None or opts.include_special:
        raise InputError("top, min_score and include_special choose rows of a glitch list file, not of given ids")
    run = DetectRun(
        GlitchDetector(model, glitch),
        inputs,
        field=opts.field or "text",
        jsonl=True if opts.field else None,
        max_rate=opts.max_rate,
    )
    if out is not None:
        from .detect.render import save_hits

        save_hits(run, out)
    return run
