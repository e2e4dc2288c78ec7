"""``anomtok verify``: verify the top candidates of the ranking by prompting (Magikarp-style)."""

from __future__ import annotations

import click

from ..inputs import SEED_MAX
from .common import handle_errors
from .negtemp import model_options

__all__ = ["command", "VERIFY_FILES"]

VERIFY_FILES = ("verified.csv", "verify.json", "meta.json")


@click.command("verify")
@click.argument("model")
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option(
    "--ranking",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="ranked.parquet/ranked.csv from `anomtok rank` (default: rank now, without nn_cos).",
)
@click.option("--metric", "metrics", multiple=True, help="Metric whose top tokens to verify (repeatable; default all).")
@click.option("--top", default=5, show_default=True, type=int, help="Top tokens per metric (as scan --verify-top).")
@click.option(
    "--random",
    "random_sample",
    default=30,
    show_default=True,
    type=int,
    help="Random tokens verified as the base rate.",
)
@click.option("--kinds", default="normal", show_default=True, help="Comma-separated token kinds to consider.")
@click.option("--token-id", "token_ids", multiple=True, type=int, help="Verify these ids instead (repeatable).")
@click.option(
    "--threshold", default=0.01, show_default=True, type=float, help="max_prob below this = verified under-trained."
)
@click.option(
    "--positions",
    "n_positions",
    default=3,
    show_default=True,
    type=int,
    help="Answer slots per prompt at which the token's probability is read (the answer and the "
    "in-context repeats just before it).",
)
@click.option("--batch-size", default=32, show_default=True, type=int, help="Sequences per forward pass.")
@click.option(
    "--settle",
    is_flag=True,
    help="Skip the prompts that can no longer change a verdict (faster; same verdicts, max_prob exact "
    "for verified tokens, a lower bound for the others).",
)
@click.option(
    "--seed", default=0, show_default=True, type=click.IntRange(0, SEED_MAX), help="Seed of the random sample."
)
@model_options
@click.option("--show", default=15, show_default=True, type=click.IntRange(0, 100_000), help="Rows to print.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")
@handle_errors
def command(
    model: str,
    out_dir: str,
    ranking: str | None,
    metrics: tuple[str, ...],
    top: int,
    random_sample: int,
    kinds: str,
    token_ids: tuple[int, ...],
    threshold: float,
    n_positions: int,
    batch_size: int,
    settle: bool,
    seed: int,
    device: str,
    dtype: str,
    device_map: str | None,
    show: int,
    quiet: bool,
) -> None:
    """Ask MODEL to repeat each candidate token (few-shot prompts built around the token id, read by
    teacher forcing: the token placed where the answer goes) and record the highest probability
    it gives it; below --threshold the token is verified under-trained. Writes verified.csv,
    verify.json (precision of each metric) and meta.json.

    \b
    Examples:
      anomtok verify smollm2-135m -o out/verify
      anomtok verify gemma-3-270m --ranking out/gemma/ranked.parquet --metric score --top 50 -o out/v
      anomtok verify ./model --token-id 1234 --token-id 99 -o out/v
    """
    from .. import api
    from ..options import VerifyOptions
    from ..outputs import prepare_output, ranking_inputs
    from ..table import format_table

    if device_map is not None:
        raise click.BadParameter("verify runs on one device; --device-map is not supported here")
    options = VerifyOptions(
        metrics=metrics,
        top=top,
        random_sample=random_sample,
        kinds=tuple(k.strip() for k in kinds.split(",") if k.strip()),
        token_ids=token_ids or None,
        threshold=threshold,
        n_positions=n_positions,
        batch_size=batch_size,
        settle=settle,
        seed=seed,
        device=device,
        dtype=dtype,
    )
    with prepare_output(out_dir, inputs=[model, *ranking_inputs(ranking)], writes=VERIFY_FILES):
        res = api.verify(model, options, ranking=ranking, out_dir=out_dir, progress=not quiet)
    if quiet:
        return
    s = res.summary
    if show:
        view = res.frame.head(show)
        rows = [
            [r["token_id"], f"⟨{r['token']}⟩", f"{r['max_prob']:.2e}", "yes" if r["verified"] else "no", r["top_of"]]
            for r in view.iter_rows(named=True)
        ]
        click.echo(
            format_table(
                rows, ["token_id", "token", "max_prob", "verified", "top of"], right=[True, False, True, False, False]
            )
        )
    base = s["base_rate"]
    click.echo(
        f"verified {s['n_verified']} of {s['n_candidates']} (max_prob < {s['threshold']}); "
        f"base rate {base['verified']}/{base['n']}"
    )
    for m, p in s["precision"].items():
        lift = f"{p['lift']:.2f}" if p["lift"] is not None else "n/a (base rate 0)"
        click.echo(f"  {m:<16} precision {p['verified']}/{p['n']} = {p['precision']:.2f}  lift {lift}")
    ref = s.get("reference") or {}
    if ref.get("n"):
        click.echo(
            f"  {'reference':<16} {ref['verified']}/{ref['n']} verified (sanity check: the tokens the "
            "score is computed from, never candidates)"
        )
    click.echo(f"wrote {out_dir}/verified.csv, verify.json, meta.json", err=True)
