"""``anomtok audit SOURCE -o DIR``: the tokenizer audit (``anomtok.audit.audit``)."""

from __future__ import annotations

import time

import click

from .common import device_option, handle_errors

__all__ = ["command", "AUDIT_FILES"]

AUDIT_FILES = ("audit.csv", "audit.json", "audit.md")


@click.command("audit")
@click.argument("source")
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option(
    "--model",
    default=None,
    help="Model whose embedding ranking to line up with the audit (default: SOURCE itself when it holds embeddings).",
)
@click.option("--no-rank", is_flag=True, help="Do not rank embeddings, even when SOURCE is a model.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")
@device_option
@handle_errors
def command(source: str, out_dir: str, model: str | None, no_rank: bool, quiet: bool, device: str) -> None:
    """Audit every token of a tokenizer; write audit.csv, audit.json and audit.md to OUT.

    \b
    SOURCE is anything `anomtok rank` takes, or a tokenizer alone: a tokenizer.json, a
    SentencePiece .model, a .gguf file, or the packaged alias xlmr-tokenizer.
    Each token is decoded and re-encoded after a neutral marker; the classes are reachable,
    unreachable-single/-multi/-empty, undecodable (partial UTF-8), special, padding, error.
    Examples:
      anomtok audit xlmr-tokenizer -o out/xlmr
      anomtok audit gemma-3-270m -o out/gemma --no-rank
      anomtok audit ./tokenizer.json -o out/tok --model ./model-folder
    """
    from .. import api
    from ..options import AuditOptions
    from ..outputs import prepare_output
    from ..ranking import RankOptions

    if model is not None and no_rank:
        raise click.UsageError("--model and --no-rank contradict each other")
    options = AuditOptions(model=model, no_rank=no_rank, rank=RankOptions(device=device, nn="off"))
    target = prepare_output(out_dir, inputs=[source, model], writes=AUDIT_FILES)
    t0 = time.perf_counter()
    progress = None if quiet else (lambda step: click.echo(f"  {step:<10} {time.perf_counter() - t0:6.1f} s", err=True))
    with target:
        result = api.audit(source, options, out_dir=out_dir, progress=progress)
    if quiet:
        return
    s = result.summary
    n = s["n_tokens"]
    click.echo(
        f"{s['source']['spec']}: {n:,} tokens ({s['tokenizer']['scheme']}, {s['tokenizer']['model'].get('type')})"
    )
    for cls, count in s["counts"]["round_trip"].items():
        if count:
            click.echo(f"  {cls:<20} {count:>9,}  {100 * count / n:6.2f}%")
    j = s["japanese"]
    cov = j["coverage"]["all"]
    click.echo(
        f"Japanese: {j['tokens']:,} tokens; {cov['single_token']:,}/{cov['chars']:,} inventory characters "
        f"are one token ({cov['single_token_pct']}%)"
    )
    f = j["fertility"]
    if "ja" in f and "en" in f:
        click.echo(f"fertility (tokens/char): ja {f['ja']['tokens_per_char']}, en {f['en']['tokens_per_char']}")
    if s["ranking"]["status"] == "ok" and "top_ranked" in j:
        click.echo(
            f"Japanese tokens in the top {j['top_ranked']['top_k']:,} of the ranking: {j['top_ranked']['count']:,}"
        )
    click.echo(f"wrote {out_dir}/audit.csv, audit.json, audit.md ({time.perf_counter() - t0:.1f} s)", err=True)
