"""One name per idea across the commands (issue 14): ``--top`` is how many of the top tokens a
command works on, ``--show`` how many rows it prints, the map options are spelled the same in
``plot`` and ``scan``; the old spellings still work for one release, hidden, with a warning."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from anomtok.cli import cli


def _visible(command: str) -> set[str]:
    cmd = cli.commands[command]
    return {o for p in cmd.params if not getattr(p, "hidden", False) for o in getattr(p, "opts", [])}


def test_the_map_options_are_spelled_alike():
    for command in ("plot", "scan"):
        assert {"--sample", "--full", "--no-map"} <= _visible(command), command
        assert not {"--umap-sample", "--full-umap", "--no-umap"} & _visible(command), command


def test_rows_printed_are_show_and_top_tokens_are_top():
    for command in ("rank", "compare", "negtemp", "verify"):
        assert "--show" in _visible(command), command
    assert "--top" not in _visible("rank") and "--top" not in _visible("compare")
    for command in ("nearest", "verify", "detect"):
        assert "--top" in _visible(command), command


def test_every_option_has_help():
    missing = [
        f"{name} {p.opts[0]}"
        for name, cmd in cli.commands.items()
        for p in cmd.params
        if getattr(p, "opts", None) and p.opts[0].startswith("-") and not p.hidden and not p.help
    ]
    assert not missing


@pytest.fixture(scope="module")
def ranked(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("names") / "r"
    res = CliRunner().invoke(cli, ["rank", str(tiny_model.hf_dir), "-o", str(out), "--nn", "off", "--show", "3"])
    assert res.exit_code == 0, res.output
    return out


def test_rank_show_and_its_old_spelling(tiny_model, ranked, tmp_path):
    shown = CliRunner().invoke(
        cli, ["rank", str(tiny_model.hf_dir), "-o", str(tmp_path / "a"), "--nn", "off", "--show", "4"]
    )
    old = CliRunner().invoke(
        cli, ["rank", str(tiny_model.hf_dir), "-o", str(tmp_path / "b"), "--nn", "off", "--top", "4"]
    )
    assert shown.exit_code == old.exit_code == 0
    assert old.stdout == shown.stdout and len(shown.stdout.splitlines()) == 2 + 2 + 4  # two notes, header, rule, rows
    assert "anomtok: warning: --top is now --show" in old.stderr and "warning" not in shown.stderr


def test_compare_show_and_its_old_spelling(ranked):
    new = CliRunner().invoke(cli, ["compare", str(ranked), str(ranked), "--show", "2"])
    old = CliRunner().invoke(cli, ["compare", str(ranked), str(ranked), "--top", "2"])
    assert new.exit_code == old.exit_code == 0 and new.stdout == old.stdout
    assert "(first 2 of" in new.stdout and "--top is now --show" in old.stderr


def test_nearest_top_is_k_and_metric_is_a_choice(tiny_model):
    a = CliRunner().invoke(cli, ["nearest", str(tiny_model.hf_dir), "-k", "3", "--device", "cpu"])
    b = CliRunner().invoke(cli, ["nearest", str(tiny_model.hf_dir), "--top", "3", "--device", "cpu"])
    assert a.exit_code == b.exit_code == 0 and a.stdout == b.stdout and len(a.stdout.splitlines()) == 5
    bad = CliRunner().invoke(cli, ["nearest", str(tiny_model.hf_dir), "--metric", "nn_cos"])
    assert bad.exit_code == 2 and bad.stderr.startswith("anomtok: error: unknown metric 'nn_cos' for nearest")


@pytest.mark.parametrize(
    "args", [["--full", "--sample", "100"], ["--full-umap", "--umap-sample", "100"], ["--full", "--umap-sample", "100"]]
)
def test_scan_map_options_new_and_old_spellings(tiny_model, tmp_path, args):
    """Both spellings reach the same setting: the conflict is refused before any step, naming the new one."""
    res = CliRunner().invoke(cli, ["scan", str(tiny_model.hf_dir), "-o", str(tmp_path / "s"), *args])
    assert res.exit_code == 2, res.output
    assert "choose either umap_full (--full) or umap_sample (--sample N)" in res.stderr
    assert not (tmp_path / "s").exists()
    old = [a for a in args if a in ("--full-umap", "--umap-sample")]
    assert res.stderr.count("is now") == len(old), res.stderr  # only an old spelling warns


def test_defaults_agree_between_scan_and_the_single_commands():
    from anomtok.options import NegtempOptions, SweepOptions, VerifyOptions
    from anomtok.scan import ScanOptions

    scan = ScanOptions()
    assert NegtempOptions().generation.max_new_tokens == SweepOptions().generation.max_new_tokens
    assert NegtempOptions().generation.max_new_tokens == scan.max_new_tokens
    assert VerifyOptions().top == scan.verify_top
    cli_defaults = {c: {p.name: p.default for p in cli.commands[c].params} for c in cli.commands}
    assert cli_defaults["negtemp"]["max_new_tokens"] == cli_defaults["scan"]["max_new_tokens"] == scan.max_new_tokens
    assert cli_defaults["sweep"]["max_new_tokens"] == scan.max_new_tokens
    assert cli_defaults["verify"]["top"] == cli_defaults["scan"]["verify_top"] == scan.verify_top
    for name, params in cli_defaults.items():
        if "seed" in params:
            assert params["seed"] == 0, name
        if "device" in params:
            assert params["device"] == "auto", name


def test_negtemp_summary_has_the_report_bands(tiny_model, tmp_path):
    """The line negtemp prints per prompt group counts the same bands as report.md and the README."""
    prompts = tmp_path / "p.txt"
    prompts.write_text("the cat\n東京\n", encoding="utf-8")
    args = ["negtemp", str(tiny_model.hf_dir), "--prompts", str(prompts), "-n", "3", "-o", str(tmp_path / "n")]
    res = CliRunner().invoke(cli, [*args, "--device", "cpu", "--show", "0"])
    assert res.exit_code == 0, res.output
    (line,) = [ln for ln in res.stdout.splitlines() if ln.startswith("all: ")]
    bands = [part.split(":")[0] for part in line.split("; ")[2:]]
    assert bands == ["top 100", "top 1,000", "top 2%", "top 5%"], line


def test_sweep_prompts_per_file_and_its_old_spelling(capsys):
    """Prompt counts are named for what they count: ``scan --prompts-per-language`` (the packaged
    English and Japanese files), ``sweep --prompts-per-file`` (any files); ``--n-prompts`` warns."""
    assert "--prompts-per-file" in _visible("sweep") and "--n-prompts" not in _visible("sweep")
    assert "--prompts-per-language" in _visible("scan")
    sweep = cli.commands["sweep"]
    new = sweep.make_context("sweep", ["m", "-o", "x", "--prompts-per-file", "2"]).params["prompts_per_file"]
    assert "warning" not in capsys.readouterr().err
    old = sweep.make_context("sweep", ["m", "-o", "x", "--n-prompts", "2"]).params["prompts_per_file"]
    assert new == old == 2 and "--n-prompts is now --prompts-per-file" in capsys.readouterr().err
