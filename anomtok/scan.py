"""``anomtok scan``: every step on one model, resumable, into one report folder.

Steps, each writing its files atomically and then a marker ``.steps/<step>.json`` (see
``anomtok.steps``: the step's key, i.e. its settings, the model's fingerprint and the content
hashes of the upstream files it reads, and the size and sha256 of each output). A step is reused
only when its key and its outputs are unchanged; ``force`` redoes everything. An interrupted scan
therefore resumes at the step it was in, a half-written or truncated file is never trusted, and
re-ranking with other settings reruns every step built on the ranking.

    rank      ranked.csv, ranked.parquet, meta.json
    audit     audit/audit.csv, audit.json, audit.md
    negtemp   negtemp/generations.jsonl, negtemp_tokens.csv, crosscheck.json   (causal models)
    verify    verify/verified.csv, verify.json                                 (causal models)
    plots     umap.parquet (coordinate cache), plots/*.png|svg, plots/map.html (interactive map)
    report    glitch.csv, report.md
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._version import __version__
from .cache import remove_stale_temps
from .errors import InputError
from .steps import StepCache, files_digest, model_fingerprint, rank_key

__all__ = ["ScanOptions", "ScanPlan", "ScanResult", "plan_steps", "scan", "STEPS"]

log = logging.getLogger(__name__)

STEPS = ("rank", "audit", "negtemp", "verify", "plots", "report")
# verify checks the top N of each of up to 8 metrics: 8 x 2000 + its samples stays under its 20,000 candidates
VERIFY_TOP_MAX = 2000


@dataclass(frozen=True)
class ScanOptions:
    """What a scan does, as the flat settings ``anomtok scan`` takes. ``prompts_per_language``:
    how many prompts of each bundled prompt file (English, Japanese) the negative-temperature
    step uses.

    Building it builds every step's options, each checking its own values: ``rank_options``
    (``RankOptions``), ``negtemp_options`` (``NegtempOptions``), ``verify_options``
    (``VerifyOptions``) and ``map_options`` (``MapOptions``: the full vocabulary up to
    ``umap_full_max_rows`` valid rows, 300,000 by default, else a 50,000-token sample). So a bad temperature fails
    here, before the first step runs, and each step runs with the object that was checked. The
    settings stay flat because a scan sets only a few of each step's settings (the rest keep the
    step's defaults) and the step markers (``.steps/*.json``) record these flat values."""

    generate: bool = True
    verify: bool = True
    umap: bool = True
    force: bool = False
    device: str = "auto"
    seed: int = 0
    temperature: float = -0.001
    max_new_tokens: int = 32
    prompts_per_language: int = 6
    verify_top: int = 5
    umap_sample: int | None = None
    umap_full: bool = False
    umap_full_max_rows: int = 300_000
    label_top: int = 25
    formats: tuple[str, ...] = ("png",)
    # every step's options, built (and so checked) from the fields above
    rank_options: Any = field(init=False, repr=False, compare=False, default=None)
    negtemp_options: Any = field(init=False, repr=False, compare=False, default=None)
    verify_options: Any = field(init=False, repr=False, compare=False, default=None)
    map_options: Any = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        # every option of every step is checked here, before the first step runs
        from .device import resolve_device
        from .generation.options import GenerationOptions
        from .generation.sampler import SamplerConfig
        from .inputs import UMAP_SEED_MAX, check_int, check_seed
        from .maps import MapOptions
        from .options import NegtempOptions, VerifyOptions
        from .ranking import RankOptions

        for name in ("generate", "verify", "umap", "force", "umap_full"):
            if not isinstance(getattr(self, name), bool):
                raise InputError(f"{name} must be True or False, not {getattr(self, name)!r}")
        check_int(self.prompts_per_language, "prompts_per_language", 1)
        check_int(self.verify_top, "verify_top", 1, VERIFY_TOP_MAX, hint=" (verify checks that many per metric)")
        check_seed(self.seed, hi=UMAP_SEED_MAX)  # the maps' UMAP takes it too
        if isinstance(self.temperature, (int, float)) and not math.isfinite(self.temperature):
            raise InputError(f"temperature must be a finite number, not {self.temperature}")
        if not self.formats or any(f not in ("png", "svg") for f in self.formats):
            raise InputError("formats must be png and/or svg")
        check_int(self.label_top, "label_top", 0)
        check_int(self.umap_full_max_rows, "umap_full_max_rows", 1)
        if self.umap_sample is not None:
            check_int(self.umap_sample, "umap_sample", 10, hint=" (points of the map)")
            if self.umap_full:
                raise InputError("choose either umap_full (--full) or umap_sample (--sample N), not both")
        resolve_device(self.device)
        parts = {
            "rank_options": RankOptions(device=self.device, seed=self.seed),
            "negtemp_options": NegtempOptions(
                sampler=SamplerConfig(temperature=self.temperature),
                generation=GenerationOptions(max_new_tokens=self.max_new_tokens, seed=self.seed, device=self.device),
            ),
            "verify_options": VerifyOptions(top=self.verify_top, seed=self.seed, device=self.device),
            "map_options": MapOptions(
                full=True if self.umap_full else None,
                sample=self.umap_sample,
                max_full_rows=self.umap_full_max_rows,
                seed=self.seed,
            ),
        }
        for name, value in parts.items():
            object.__setattr__(self, name, value)


@dataclass
class ScanResult:
    out_dir: Path
    steps: dict[str, dict[str, Any]] = field(
        default_factory=dict
    )  # step -> {"status": ran|reused|skipped, "seconds": s}
    seconds: float = 0.0

    def __repr__(self) -> str:
        """Two lines: where, how long, and each step's status."""
        steps = ", ".join(
            f"{name} {st.get('status')}" + (f" {st['seconds']:.1f} s" if st.get("status") == "ran" else "")
            for name, st in self.steps.items()
        )
        return f"ScanResult: {self.out_dir} in {self.seconds:.1f} s\n  steps: {steps or 'none'}"


@dataclass(frozen=True)
class ScanPlan:
    """Which steps a scan of this model runs: ``skip`` maps a step to why it is left out;
    ``warnings`` are doubts about steps that run anyway."""

    skip: dict[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    def runs(self, step: str) -> bool:
        return step not in self.skip


def plan_steps(config: dict[str, Any], options: ScanOptions) -> ScanPlan:
    """Decide, from the loaded model's ``config`` (``ModelEmbeddings.config``: ``causal`` and
    ``causal_why`` come from ``anomtok.loading.arch``) and the options, which steps run.
    Negative-temperature generation and verification need a decoder-only (causal) LM; a model
    whose kind is unknown runs them, with a warning, and they fail with a clear error if it is not one."""
    causal = config.get("causal")
    why = str(
        config.get("causal_why")
        or f"{config.get('architecture') or 'unknown architecture'}: "
        + ("not a causal LM" if causal is False else "an architecture anomtok does not know")
    )
    skip: dict[str, str] = {}
    warnings: list[str] = []
    for step, wanted, flag in (
        ("negtemp", options.generate, "--no-generate"),
        ("verify", options.verify, "--no-verify"),
    ):
        if not wanted:
            skip[step] = flag
        elif causal is False:
            skip[step] = why
    if causal is None and not {"negtemp", "verify"} <= skip.keys():
        warnings.append(
            f"{why}: negative-temperature generation and verification are tried; they stop with an "
            "error if it is not a decoder-only LM"
        )
    return ScanPlan(skip=skip, warnings=tuple(warnings))


def _prompts(n: int) -> tuple[list[str], list[str]]:
    from .generation import default_prompt_files, read_prompts

    texts: list[str] = []
    files: list[str] = []
    for path in default_prompt_files():
        texts += read_prompts(path)[:n]
        files.append(path.name)
    return texts, files


def scan(
    model: str,
    out_dir: str | Path,
    options: ScanOptions | None = None,
    progress: Callable[[str, str], None] | None = None,
) -> ScanResult:
    """Run every step on ``model`` into ``out_dir`` (see the module docstring)."""
    from .export import read_json, read_table, write_ranking
    from .loading import load
    from .ranking import Ranking
    from .ranking import rank as rank_embeddings

    opt = options or ScanOptions()
    from .outputs import check_dir

    out = check_dir(out_dir)  # created by the first step that writes (nothing is left when loading fails)
    remove_stale_temps(out, depth=1)  # of writers killed mid-write (not of a concurrent run)
    steps = StepCache(out, opt.force)
    result = ScanResult(out_dir=out)
    t_all = time.perf_counter()
    say = progress or (lambda step, msg: None)
    base = {"model": str(model), "anomtok_version": __version__}

    emb = load(model)  # cheap (embedding only); every step needs the token table or provenance
    plan = plan_steps(emb.config, opt)
    for warning in plan.warnings:
        log.warning("%s", warning)
    for step, why in plan.skip.items():  # said once, up front, before the first expensive step
        say(step, f"will be skipped: {why}")
    model_fp = model_fingerprint(emb.provenance.to_dict())

    def run(
        step: str,
        settings: dict[str, Any],
        outputs: list[str],
        fn: Callable[[], None],
        reads: tuple[str, ...] = (),
        key: dict[str, Any] | None = None,
    ) -> None:
        """Run ``step`` unless its key (settings, the model's fingerprint, the content of the
        upstream files it ``reads``) and its outputs are as a finished run left them. A given
        ``key``: ``fn`` commits the outputs and the marker itself (as ``anomtok rank`` does)."""
        commits_itself = key is not None
        if key is None:
            key = {"settings": base | settings, "model": model_fp, "reads": {r: files_digest(out, [r]) for r in reads}}
        if steps.done(step, key):
            result.steps[step] = {"status": "reused", "seconds": steps.seconds(step)}
            say(step, "reused")
            return
        say(step, "running")
        t = time.perf_counter()
        if not commits_itself:
            steps.forget(step)  # interrupted from here on, the step has no marker: never reused
        fn()
        dt = time.perf_counter() - t
        if not commits_itself:
            steps.mark(step, key, [o for o in outputs if (out / o).is_file()], dt)
        result.steps[step] = {"status": "ran", "seconds": round(dt, 2)}
        say(step, f"done in {dt:.1f} s")

    rank_opts = opt.rank_options
    rank_step = rank_key(emb.provenance.to_dict(), rank_opts)

    def do_rank() -> None:  # the same step as `anomtok rank -o`: the files and their marker
        started = time.perf_counter()
        write_ranking(rank_embeddings(emb, rank_opts), out, step_key=rank_step, started=started)

    run("rank", {}, ["ranked.parquet", "ranked.csv", "meta.json"], do_rank, key=rank_step)
    frame = read_table(out / "ranked.parquet")
    ranking = Ranking(frame=frame, meta=read_json(out / "meta.json"))

    def do_audit() -> None:
        from .audit import audit

        audit(model, out_dir=out / "audit", ranking=ranking)

    run("audit", {}, ["audit/audit.json", "audit/audit.md", "audit/audit.csv"], do_audit, reads=("ranked.parquet",))

    if plan.runs("negtemp"):

        def do_negtemp() -> None:
            from .generation import negtemp

            texts, files = _prompts(opt.prompts_per_language)
            negtemp(
                model,
                texts,
                ranking=ranking,
                embeddings=emb,
                out_dir=out / "negtemp",
                progress=True,
                prompt_files=files,
                **opt.negtemp_options.feature_kwargs(),
            )

        run(
            "negtemp",
            {
                "T": opt.temperature,
                "max_new_tokens": opt.max_new_tokens,
                "seed": opt.seed,
                "prompts_per_language": opt.prompts_per_language,
            },
            ["negtemp/generations.jsonl", "negtemp/negtemp_tokens.csv", "negtemp/crosscheck.json"],
            do_negtemp,
            reads=("ranked.parquet",),
        )
    else:
        result.steps["negtemp"] = {"status": "skipped", "why": plan.skip["negtemp"]}
        say("negtemp", "skipped")

    if plan.runs("verify"):

        def do_verify() -> None:
            from .verify import verify

            verify(
                model,
                ranking,
                embeddings=emb,
                out_dir=out / "verify",
                progress=True,
                **opt.verify_options.feature_kwargs(),
            )

        run(
            "verify",
            {"top": opt.verify_top, "seed": opt.seed},
            ["verify/verified.csv", "verify/verify.json"],
            do_verify,
            reads=("ranked.parquet",),
        )
    else:
        result.steps["verify"] = {"status": "skipped", "why": plan.skip["verify"]}
        say("verify", "skipped")

    def do_plots() -> None:
        from .maps import plot_model

        # the ranking is this scan's; the map options say full vocabulary or sample (scan's
        # umap_full_max_rows, 300,000 by default: above it a 50,000-token sample)
        plot_model(
            emb,
            out,
            ranking=ranking,
            map_options=opt.map_options,
            no_map=not opt.umap,
            label_top=opt.label_top,
            mark_ids=_negtemp_ids(out),
            mark_name="negative-temperature tokens",
            title=_title(emb),
            formats=opt.formats,
            html=opt.umap,  # plots/map.html, the interactive map, whenever there is a map
        )

    plot_outputs = ["plots/centroid_hist.png" if "png" in opt.formats else "plots/centroid_hist.svg"]
    plot_outputs += ["plots/map.html"] if opt.umap else []
    run(
        "plots",
        {
            "umap": opt.umap,
            "sample": opt.umap_sample,
            "full": opt.umap_full,
            "seed": opt.seed,
            "label_top": opt.label_top,
            "formats": list(opt.formats),
            "html": opt.umap,
        },
        plot_outputs,
        do_plots,
        reads=("ranked.parquet", "negtemp/negtemp_tokens.csv"),
    )

    # the report is cheap: always rewritten so it reflects every step's current outputs
    say("report", "running")
    t = time.perf_counter()
    result.seconds = time.perf_counter() - t_all
    from .report import write_report

    write_report(out, step_status=result.steps, total_seconds=result.seconds)
    result.steps["report"] = {"status": "ran", "seconds": round(time.perf_counter() - t, 2)}
    result.seconds = time.perf_counter() - t_all
    say("report", "done")
    return result


def _negtemp_ids(out: Path) -> list[int]:
    path = out / "negtemp" / "negtemp_tokens.csv"
    if not path.exists():
        return []
    from .detect.glitchlist import read_token_ids

    try:
        return read_token_ids(path, kind="table")
    except InputError as exc:  # a damaged optional input only loses the marks
        log.warning("could not read %s; maps will not mark negative-temperature tokens", exc)
        return []


def _title(emb: Any) -> str:
    name = emb.config.get("name") or emb.provenance.source
    return f"{name} — {emb.shape[0]:,} × {emb.shape[1]}"
