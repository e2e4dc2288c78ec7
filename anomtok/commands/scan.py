"""``anomtok scan MODEL -o DIR``: ranking, audit, negative temperature, verification, maps, report."""

from __future__ import annotations

import time

import click

from ..inputs import UMAP_SEED_MAX
from .common import device_option, handle_errors, renamed, take_renamed

__all__ = ["command", "SCAN_WRITES"]

# what a scan writes in its folder (see anomtok.scan); an input may not be among them
SCAN_WRITES = (
    "ranked.csv",
    "ranked.parquet",
    "meta.json",
    "umap.parquet",
    "glitch.csv",
    "report.md",
    "audit/",
    "negtemp/",
    "verify/",
    "plots/",
    ".steps/",
)


@click.command("scan")
@click.argument("model")
@click.option(
    "-o",
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Report folder, e.g. reports/gemma-3-270m.",
)
@click.option("--no-generate", is_flag=True, help="Skip negative-temperature generation.")
@click.option("--no-verify", is_flag=True, help="Skip verification by prompting.")
@click.option(
    "--no-map",
    "no_umap",
    is_flag=True,
    callback=take_renamed,
    help="Skip the UMAP maps (histogram and scatter are still drawn).",
)
@renamed("--no-umap", "--no-map", "no_umap", is_flag=True)
@click.option(
    "--sample",
    "umap_sample",
    type=click.IntRange(10, None),
    default=None,
    callback=take_renamed,
    help="Map a stratified sample of N tokens instead of the full vocabulary.",
)
@renamed("--umap-sample", "--sample", "umap_sample", type=click.IntRange(10, None))
@click.option(
    "--full",
    "full_umap",
    is_flag=True,
    callback=take_renamed,
    help="Map the full vocabulary even above 300,000 tokens (the default up to 300,000, e.g. Gemma 3's 262,144).",
)
@renamed("--full-umap", "--full", "full_umap", is_flag=True)
@click.option(
    "--prompts-per-language",
    default=6,
    show_default=True,
    type=click.IntRange(1, 1000),
    help="Packaged prompts of each language (English, Japanese) for negative temperature.",
)
@click.option(
    "--max-new-tokens",
    default=32,
    show_default=True,
    type=click.IntRange(1, 4096),
    help="Tokens generated per prompt at negative temperature.",
)
@click.option(
    "-T",
    "--temperature",
    default=-0.001,
    show_default=True,
    type=float,
    help="Temperature of the generation step (any finite T; negative = least likely tokens).",
)
@click.option(
    "--verify-top",
    default=5,
    show_default=True,
    type=click.IntRange(1, 100000),
    help="Candidates per metric that verification prompts the model with.",
)
@click.option("--svg", is_flag=True, help="Also write SVG plots.")
@click.option(
    "--seed",
    default=0,
    show_default=True,
    type=click.IntRange(0, UMAP_SEED_MAX),
    help="Seed of every random step (generation, verification sample, map).",
)
@click.option("--force", is_flag=True, help="Redo every step even when its outputs are up to date.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")
@device_option
@handle_errors
def command(
    model: str,
    out_dir: str,
    no_generate: bool,
    no_verify: bool,
    no_umap: bool,
    umap_sample: int | None,
    full_umap: bool,
    prompts_per_language: int,
    max_new_tokens: int,
    temperature: float,
    verify_top: int,
    svg: bool,
    seed: int,
    force: bool,
    quiet: bool,
    device: str,
) -> None:
    """Scan MODEL end to end into OUT: report.md, glitch.csv, plots and every step's tables.

    Finished steps are reused (an interrupted scan resumes); --force redoes them.

    \b
    Examples:
      anomtok scan gemma-3-270m -o reports/gemma-3-270m
      anomtok scan minilm-l6 -o reports/minilm-l6          # encoder: no generation step
      anomtok scan ./model.gguf -o out/m --no-map --no-generate
    """
    from .. import api
    from ..outputs import prepare_output
    from ..scan import ScanOptions

    opts = ScanOptions(
        generate=not no_generate,
        verify=not no_verify,
        umap=not no_umap,
        force=force,
        device=device,
        seed=seed,
        temperature=temperature,
        max_new_tokens=max_new_tokens,
        prompts_per_language=prompts_per_language,
        verify_top=verify_top,
        umap_sample=umap_sample,
        umap_full=full_umap,
        formats=("png", "svg") if svg else ("png",),
    )
    start = time.perf_counter()

    def progress(step: str, msg: str) -> None:
        if not quiet:
            click.echo(f"[{time.perf_counter() - start:7.1f} s] {step:<8} {msg}", err=True)

    # checked before any work; a failed first run leaves no empty folder, finished steps are kept
    with prepare_output(out_dir, inputs=[model], writes=SCAN_WRITES, keep_partial=True):
        result = api.scan(model, opts, out_dir=out_dir, progress=progress)
    if not quiet:
        click.echo(f"wrote {out_dir}/report.md and glitch.csv in {result.seconds:.1f} s", err=True)
