"""``anomtok sweep``: the same prompts at many temperatures, negative ones included."""

from __future__ import annotations

import click

from ..inputs import SEED_MAX
from .common import handle_errors, renamed, take_renamed
from .negtemp import model_options

__all__ = ["command", "SWEEP_FILES"]

SWEEP_FILES = ("sweep.csv", "sweep.png", "sweep_generations.jsonl", "meta.json")


def _temps(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter(f"{text!r}: expected comma-separated numbers, e.g. -1,-0.001,1") from None


@click.command("sweep")
@click.argument("model")
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option(
    "--prompts",
    "prompt_files",
    multiple=True,
    type=click.Path(allow_dash=True),
    help="Prompt file(s), one prompt per line (default: the packaged English and Japanese prompts).",
)
@click.option(
    "--prompts-per-file",
    default=4,
    show_default=True,
    type=click.IntRange(0, 100_000),
    callback=take_renamed,
    help="Prompts taken from the start of each prompt file (0 = all).",
)
@renamed("--n-prompts", "--prompts-per-file", "prompts_per_file", type=click.IntRange(0, 100_000))
@click.option(
    "--temperatures",
    "temps",
    default="-1,-0.1,-0.001,0.001,0.01,1,1.8,20,100",
    show_default=True,
    help="Comma-separated temperatures.",
)
@click.option("-n", "--max-new-tokens", default=32, show_default=True, type=int, help="Tokens per prompt.")
@click.option(
    "--seed",
    default=0,
    show_default=True,
    type=click.IntRange(0, SEED_MAX),
    help="Seed; sequence i draws from its own stream.",
)
@click.option("--batch-size", default=8, show_default=True, type=int, help="Prompts per forward pass.")
@click.option("--metric", default="score", show_default=True, help="Ranking metric for the anomaly percentile.")
@click.option("--timeout", "timeout_s", default=None, type=float, help="Wall-clock limit per temperature, seconds.")
@click.option(
    "--ranking",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="ranked.parquet/ranked.csv from `anomtok rank` (default: rank now, without nn_cos).",
)
@model_options
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")
@handle_errors
def command(
    model: str,
    out_dir: str,
    prompt_files: tuple[str, ...],
    prompts_per_file: int,
    temps: str,
    max_new_tokens: int,
    seed: int,
    batch_size: int,
    metric: str,
    timeout_s: float | None,
    ranking: str | None,
    device: str,
    dtype: str,
    device_map: str | None,
    quiet: bool,
) -> None:
    """Generate from the same prompts at each temperature and write sweep.csv and sweep.png:
    distinct tokens, mean entropy, and the mean anomaly percentile of the produced tokens.

    \b
    Examples:
      anomtok sweep smollm2-135m -o out/sweep
      anomtok sweep gemma-3-270m --temperatures=-1,-0.001,1 --prompts-per-file 2 -n 16 -o out/s
    """
    from .. import api
    from ..generation import GenerationOptions, default_prompt_files
    from ..options import SweepOptions
    from ..outputs import prepare_output, ranking_inputs
    from ..table import format_table

    files = tuple(prompt_files) or tuple(str(p) for p in default_prompt_files())
    # every option checked before the prompts are read and the model loaded
    options = SweepOptions(
        temperatures=tuple(_temps(temps)),
        metric=metric,
        prompt_files=files,
        prompts_per_file=prompts_per_file,
        generation=GenerationOptions(
            max_new_tokens=max_new_tokens,
            seed=seed,
            batch_size=batch_size,
            timeout_s=timeout_s,
            device=device,
            dtype=dtype,
            device_map=device_map,
        ),
    )
    target = prepare_output(out_dir, inputs=[model, *ranking_inputs(ranking), *files], writes=SWEEP_FILES)
    with target:
        res = api.sweep(model, options, ranking=ranking, out_dir=out_dir, progress=not quiet)
    if quiet:
        return
    cols = [
        "temperature",
        "distinct_tokens",
        "mean_entropy",
        "mean_sample_entropy",
        "mean_percentile",
        "mean_percentile_en",
        "mean_percentile_ja",
    ]
    view = res.frame.select([c for c in cols if c in res.frame.columns])
    rows = [["-" if v is None else v for v in r] for r in view.iter_rows()]
    click.echo(format_table(rows, view.columns, right=[True] * len(view.columns)))
    click.echo(
        f"wrote {out_dir}/sweep.csv, sweep.png, sweep_generations.jsonl, meta.json ({res.meta['seconds']:.1f} s)",
        err=True,
    )
