"""``anomtok negtemp``: generate at a negative temperature and cross-check with the ranking."""

from __future__ import annotations

import time

import click

from ..inputs import SEED_MAX
from .common import device_option, handle_errors

__all__ = ["command", "NEGTEMP_FILES", "sampler_options", "model_options"]

NEGTEMP_FILES = ("generations.jsonl", "negtemp_tokens.csv", "crosscheck.json", "meta.json")
_DTYPES = click.Choice(["auto", "float32", "bfloat16", "float16"])


def sampler_options(fn):
    """--top-k, --top-p, --min-p, --top-n-sigma, --repeat-penalty (all off by default)."""
    for opt in reversed(
        [
            click.option(
                "--top-k",
                default=0,
                show_default=True,
                type=int,
                help="Keep the k most likely (after the sign flip); 0 = off.",
            ),
            click.option("--top-p", default=1.0, show_default=True, type=float, help="Nucleus sampling; 1.0 = off."),
            click.option(
                "--min-p", default=0.0, show_default=True, type=float, help="Keep p >= min_p * max p; 0 = off."
            ),
            click.option(
                "--top-n-sigma", default=0.0, show_default=True, type=float, help="Keep z >= max z - n*std z; 0 = off."
            ),
            click.option(
                "--repeat-penalty", default=1.0, show_default=True, type=float, help="Repetition penalty; 1.0 = off."
            ),
        ]
    ):
        fn = opt(fn)
    return fn


def model_options(fn):
    for opt in reversed(
        [
            device_option,
            click.option(
                "--dtype",
                default="auto",
                show_default=True,
                type=_DTYPES,
                help="Model dtype: auto = float32 on CPU, bfloat16 on CUDA.",
            ),
            click.option(
                "--device-map",
                type=click.Choice(["auto"]),
                default=None,
                help="'auto': spread a model too big for one GPU over all GPUs (needs accelerate).",
            ),
        ]
    ):
        fn = opt(fn)
    return fn


@click.command("negtemp")
@click.argument("model")
@click.option(
    "-T",
    "--temperature",
    default=-0.001,
    show_default=True,
    type=float,
    help="Any finite T; negative samples the least likely tokens; 0 = greedy.",
)
@click.option(
    "--prompts",
    "prompt_files",
    multiple=True,
    type=click.Path(allow_dash=True),
    help="Prompt file, one prompt per line (repeatable; - = stdin; default: the packaged "
    "English and Japanese prompts).",
)
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option(
    "-n", "--max-new-tokens", default=32, show_default=True, type=int, help="Tokens per prompt (at most 4096)."
)
@click.option(
    "--seed",
    default=0,
    show_default=True,
    type=click.IntRange(0, SEED_MAX),
    help="Seed; sequence i draws from its own stream.",
)
@click.option("--batch-size", default=8, show_default=True, type=int, help="Prompts per forward pass.")
@click.option("--stop-at-eos", is_flag=True, help="Stop a sequence at the model's end-of-sequence token.")
@click.option("--timeout", "timeout_s", default=None, type=float, help="Wall-clock limit for generation, seconds.")
@click.option(
    "--ranking",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="ranked.parquet/ranked.csv from `anomtok rank` (default: rank now, without nn_cos).",
)
@sampler_options
@model_options
@click.option("--show", default=3, show_default=True, type=click.IntRange(0, 1000), help="Generations to print.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")
@handle_errors
def command(
    model: str,
    temperature: float,
    prompt_files: tuple[str, ...],
    out_dir: str,
    max_new_tokens: int,
    seed: int,
    batch_size: int,
    stop_at_eos: bool,
    timeout_s: float | None,
    ranking: str | None,
    top_k: int,
    top_p: float,
    min_p: float,
    top_n_sigma: float,
    repeat_penalty: float,
    device: str,
    dtype: str,
    device_map: str | None,
    show: int,
    quiet: bool,
) -> None:
    """Generate from MODEL at temperature T (default -0.001) and cross-check the produced tokens
    against the embedding ranking. Writes generations.jsonl, negtemp_tokens.csv, crosscheck.json
    and meta.json to OUT.

    \b
    Sampling at T < 0 equals negating the logits and sampling at |T|: at T = -0.001 the model
    emits its least likely token at every step. Top-k, top-p, min-p, top-n-sigma and the
    repetition penalty are off unless asked for (the pure experiment).
    Examples:
      anomtok negtemp smollm2-135m -T -0.001 -o out/neg            # the packaged prompts
      anomtok negtemp gemma-3-270m --prompts prompts_ja.txt -n 32 --timeout 600 -o out/g
    """
    from .. import api
    from ..generation import GenerationOptions, SamplerConfig
    from ..options import NegtempOptions
    from ..outputs import prepare_output, ranking_inputs
    from ..text import display

    if not prompt_files:
        from ..generation import default_prompt_files

        prompt_files = tuple(str(p) for p in default_prompt_files())
    options = NegtempOptions(
        sampler=SamplerConfig(
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            min_p=min_p,
            top_n_sigma=top_n_sigma,
            repetition_penalty=repeat_penalty,
        ),
        generation=GenerationOptions(
            max_new_tokens=max_new_tokens,
            seed=seed,
            batch_size=batch_size,
            timeout_s=timeout_s,
            stop_at_eos=stop_at_eos,
            device=device,
            dtype=dtype,
            device_map=device_map,
        ),
        prompt_files=prompt_files,
    )
    target = prepare_output(out_dir, inputs=[model, *ranking_inputs(ranking), *prompt_files], writes=NEGTEMP_FILES)
    t0 = time.perf_counter()
    with target:
        res = api.negtemp(model, options, ranking=ranking, out_dir=out_dir, progress=not quiet)
    if quiet:
        return
    for rec in res.generations[:show]:
        click.echo(f"[{rec['index']}] {display(rec['prompt'].encode())}")
        click.echo(f"  -> {rec['text']}")
    from ..report_sections import band_label

    for group, g in res.crosscheck["groups"].items():
        s = g.get("metrics", {}).get("score")
        if not s:
            continue
        tops = "; ".join(f"{band_label(k)}: {v['overlap']} (random {v['expected']:.2f})" for k, v in s["topk"].items())
        click.echo(
            f"{group}: {g['n_prompts']} prompts, {g['n_generated']} tokens, {g['n_distinct']} distinct; score: "
            f"mean percentile {s['mean_percentile']:.1f} (random 50); {tops}"
        )
    st = res.meta["timings_s"]
    click.echo(
        f"wrote {out_dir}/generations.jsonl, negtemp_tokens.csv, crosscheck.json, meta.json "
        f"({st['tokens_per_s']} tok/s, {time.perf_counter() - t0:.1f} s)",
        err=True,
    )
