"""The Python API mirrors the CLI one to one (issue 12.3).

* every CLI command (read from the click group, so a new command without an API function fails
  here) is a callable ``anomtok.<command>`` listed in ``anomtok.__all__``;
* the API function and the CLI write the same files on the tiny model (bytes equal, JSON equal
  apart from the timing and command fields, parquet equal as tables);
* options are checked once, when built: a bad value fails before anything loads, for ``scan``
  too (``ScanOptions`` builds every step's options);
* result reprs are short.
"""

from __future__ import annotations

import inspect
import json
import math
import re
import sys
import types
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

import anomtok
from anomtok import api
from anomtok.cli import cli
from anomtok.errors import InputError
from anomtok.options import make_options

# fields that differ between two identical runs (time) or between the CLI and the API (command)
VOLATILE = {
    "command",
    "seconds",
    "timings_s",
    "total_seconds",
    "started",
    "finished",
    "candidates_per_second",
    "tokens_per_s",
    "umap_seconds",
    "load_seconds",
    "written",
    "time",
}
SECONDS = re.compile(r"\d+(\.\d+)? s\b")


def _invoke(*args) -> None:
    res = CliRunner().invoke(cli, [str(a) for a in args])
    assert res.exit_code == 0, (res.output, res.stderr)
    return res


def _stable(obj):
    if isinstance(obj, dict):
        return {k: _stable(v) for k, v in obj.items() if k not in VOLATILE}
    if isinstance(obj, list):
        return [_stable(v) for v in obj]
    return obj


def _files(folder: Path) -> dict[str, Path]:
    return {str(p.relative_to(folder)): p for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_same_files(cli_dir: Path, api_dir: Path) -> None:
    a, b = _files(cli_dir), _files(api_dir)
    assert sorted(a) == sorted(b)
    assert a, "nothing was written"
    for name, p in a.items():
        q = b[name]
        if p.suffix == ".json":
            a_json, b_json = (_stable(json.loads(f.read_text("utf-8"))) for f in (p, q))
            if name.startswith(".steps/"):  # a step marker: the digest of meta.json (its command, timings) differs
                for marker in (a_json, b_json):
                    marker.get("outputs", {}).pop("meta.json", None)
            assert a_json == b_json, name
        elif p.suffix == ".parquet":
            assert pl.read_parquet(p).equals(pl.read_parquet(q)), name
        elif p.suffix == ".png":
            continue  # matplotlib's rendering; its data is in the .csv beside it
        elif p.suffix == ".csv" and VOLATILE & set(pl.read_csv(p).columns):  # sweep.csv: seconds per T
            a_csv, b_csv = (pl.read_csv(f).drop(VOLATILE, strict=False) for f in (p, q))
            assert a_csv.equals(b_csv), name
        elif p.suffix == ".md":  # durations ("ranking 0.06 s") differ
            assert SECONDS.sub("N s", p.read_text("utf-8")) == SECONDS.sub("N s", q.read_text("utf-8")), name
        else:
            assert p.read_bytes() == q.read_bytes(), name


def assert_short_repr(obj, name: str) -> None:
    text = repr(obj)
    assert text.startswith(name), text
    assert len(text.splitlines()) <= 10 and max(map(len, text.splitlines())) < 400, text


@pytest.fixture(scope="module")
def model(tiny_model) -> str:
    return str(tiny_model.hf_dir)


@pytest.fixture(scope="module")
def ranked(model, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ranked")
    api.rank(model, out_dir=out, nn="off", device="cpu")
    return out


@pytest.fixture()
def prompts(tmp_path) -> Path:
    p = tmp_path / "prompts.txt"
    p.write_text("the cat saw a dog\nthe king found a book\n", encoding="utf-8")
    return p


# ---------------------------------------------------------------------------------- one function per command
def test_every_cli_command_has_an_api_function():
    commands = set(cli.commands)
    assert commands == set(api.COMMANDS)
    assert commands <= set(anomtok.__all__)
    for name in commands:
        fn = getattr(anomtok, name)
        assert callable(fn), name
        params = list(inspect.signature(fn).parameters)
        assert "options" in params[:3], (name, params)  # the subject(s), then the options object
        assert "overrides" in params, name  # keywords build the options


def test_every_public_name_resolves():
    for name in anomtok.__all__:
        assert getattr(anomtok, name) is not None, name
    assert set(anomtok.__all__) <= set(dir(anomtok))


def test_command_modules_stay_modules_and_call_the_api(monkeypatch):
    """``anomtok.verify`` is the module (imports, patches by dotted path) and calling it is
    ``anomtok.api.verify``, however the module was first imported."""
    import anomtok.scan as scan_module
    from anomtok.verify import score_tokens  # noqa: F401

    for name in ("audit", "verify", "scan", "compare", "detect"):
        mod = getattr(anomtok, name)
        assert isinstance(mod, types.ModuleType) and mod is sys.modules[f"anomtok.{name}"], name
        monkeypatch.setattr(api, name, lambda *a, _n=name, **k: (_n, a, k))
        assert mod("m", top=1) == (name, ("m",), {"top": 1})
    assert scan_module.ScanOptions is anomtok.ScanOptions


# ---------------------------------------------------------------------------------- options
def test_keywords_build_the_options_and_name_the_valid_ones():
    o = make_options(anomtok.NegtempOptions, temperature=-1, max_new_tokens=16)
    assert o.sampler.temperature == -1.0 and o.generation.max_new_tokens == 16 and o.generation.batch_size == 8
    p = make_options(anomtok.NegtempOptions, o, seed=3)
    assert p.sampler.temperature == -1.0 and p.generation.seed == 3 and o.generation.seed == 0
    with pytest.raises(InputError, match="unknown option 'temprature'.*temperature"):
        make_options(anomtok.NegtempOptions, temprature=1)
    with pytest.raises(InputError, match="options must be a VerifyOptions"):
        make_options(anomtok.VerifyOptions, anomtok.NegtempOptions())
    with pytest.raises(InputError, match="top_p"):
        anomtok.NegtempOptions(sampler=anomtok.SamplerConfig(top_p=2))
    with pytest.raises(InputError, match="kinds must be among normal"):
        anomtok.VerifyOptions(kinds=("nomral",))
    with pytest.raises(InputError, match="markdown, json"):
        anomtok.CompareOptions(format="md")
    with pytest.raises(InputError, match="png, svg"):
        anomtok.PlotOptions(formats=("jpg",))
    with pytest.raises(InputError, match="contradict"):
        anomtok.AuditOptions(model="m", no_rank=True)
    with pytest.raises(InputError, match="no temperatures"):
        anomtok.SweepOptions(temperatures=())


def test_scan_options_build_every_step_s_options():
    o = anomtok.ScanOptions(temperature=-0.5, max_new_tokens=7, verify_top=3, seed=4, device="cpu")
    assert o.negtemp_options.sampler.temperature == -0.5 and o.negtemp_options.generation.max_new_tokens == 7
    assert o.verify_options.top == 3 and o.verify_options.seed == 4
    assert o.rank_options == anomtok.RankOptions(device="cpu", seed=4) and o.map_options.seed == 4
    assert "negtemp_options" not in repr(o)


@pytest.mark.parametrize(
    "bad",
    [
        {"temperature": math.nan},
        {"temperature": "hot"},
        {"max_new_tokens": 0},
        {"verify_top": 0},
        {"seed": -1},
        {"formats": ("gif",)},
    ],
)
def test_a_bad_scan_option_fails_before_anything_loads(model, tmp_path, monkeypatch, bad):
    import anomtok.loading

    def boom(*a, **k):
        raise AssertionError("loaded before the options were checked")

    monkeypatch.setattr(anomtok.loading, "load", boom)
    with pytest.raises(InputError):
        anomtok.scan(model, out_dir=tmp_path / "s", **bad)
    with pytest.raises(InputError):
        anomtok.scan(model, anomtok.ScanOptions(generate=False), out_dir=tmp_path / "s", **bad)
    assert not (tmp_path / "s").exists()


def test_a_bad_scan_temperature_at_the_cli_fails_before_anything_loads(model, tmp_path, monkeypatch):
    import anomtok.loading

    monkeypatch.setattr(anomtok.loading, "load", lambda *a, **k: pytest.fail("loaded"))
    res = CliRunner().invoke(cli, ["scan", model, "-T", "nan", "-o", str(tmp_path / "s")])
    assert res.exit_code == 2 and "temperature must be a finite number" in res.stderr


def test_a_bad_keyword_fails_before_the_model_loads(model, tmp_path, monkeypatch):
    from anomtok import generation

    monkeypatch.setattr(generation, "load_for_generation", lambda *a, **k: pytest.fail("loaded"))
    with pytest.raises(InputError, match="temperature must be finite"):
        anomtok.negtemp(model, prompts=["a cat"], temperature=math.inf)
    with pytest.raises(InputError, match="threshold"):
        anomtok.verify(model, threshold=2)


# ---------------------------------------------------------------------------------- same files, API and CLI
def test_rank(model, tmp_path):
    _invoke("rank", model, "--nn", "off", "--device", "cpu", "-q", "-o", tmp_path / "cli")
    r = anomtok.rank(model, nn="off", device="cpu", out_dir=tmp_path / "api")
    assert_same_files(tmp_path / "cli", tmp_path / "api")
    assert_short_repr(r, "Ranking of ")


def test_nearest(model, ranked):
    res = _invoke("nearest", model, "-k", "7", "--far", "--metric", "norm", "--format", "json", "--device", "cpu")
    frame = anomtok.nearest(model, k=7, far=True, metric="norm", device="cpu")
    assert [r["token_id"] for r in json.loads(res.stdout)] == frame["token_id"].to_list()
    again = anomtok.nearest(anomtok.rank(model, nn="off"), anomtok.NearestOptions(k=7, far=True, metric="norm"))
    assert again["token_id"].to_list() == frame["token_id"].to_list()
    assert anomtok.nearest(model, anomtok.RankOptions(nn="off"), k=3).height == 3  # RankOptions: how to rank


def test_audit(model, tmp_path):
    _invoke("audit", model, "--device", "cpu", "-q", "-o", tmp_path / "cli")
    res = anomtok.audit(model, device="cpu", out_dir=tmp_path / "api")
    assert_same_files(tmp_path / "cli", tmp_path / "api")
    assert_short_repr(res, "AuditResult of ")


def test_negtemp(model, prompts, tmp_path):
    _invoke("negtemp", model, "-n", "3", "--prompts", prompts, "--device", "cpu", "-q", "-o", tmp_path / "cli")
    res = anomtok.negtemp(model, max_new_tokens=3, prompt_files=[str(prompts)], device="cpu", out_dir=tmp_path / "api")
    assert_same_files(tmp_path / "cli", tmp_path / "api")
    assert_short_repr(res, "NegtempResult: 2 generations at T = -0.001")


def test_sweep(model, prompts, tmp_path):
    _invoke(
        "sweep",
        model,
        "--temperatures=-1,1",
        "-n",
        "2",
        "--prompts-per-file",
        "1",
        "--prompts",
        prompts,
        "--device",
        "cpu",
        "-q",
        "-o",
        tmp_path / "cli",
    )
    opts = anomtok.SweepOptions(
        temperatures=(-1, 1),
        prompts_per_file=1,
        prompt_files=(str(prompts),),
        generation=anomtok.GenerationOptions(max_new_tokens=2, device="cpu"),
    )
    res = anomtok.sweep(model, opts, out_dir=tmp_path / "api")
    assert_same_files(tmp_path / "cli", tmp_path / "api")
    assert_short_repr(res, "SweepResult: 2 temperatures")


def test_verify(model, ranked, tmp_path):
    ranking = ranked / "ranked.parquet"
    _invoke(
        "verify",
        model,
        "--ranking",
        ranking,
        "--metric",
        "score",
        "--top",
        "2",
        "--random",
        "2",
        "--device",
        "cpu",
        "-q",
        "-o",
        tmp_path / "cli",
    )
    res = anomtok.verify(
        model, ranking=str(ranking), metrics=("score",), top=2, random_sample=2, device="cpu", out_dir=tmp_path / "api"
    )
    assert_same_files(tmp_path / "cli", tmp_path / "api")
    assert_short_repr(res, "VerifyResult: ")


def test_compare(model, ranked, tmp_path):
    other = tmp_path / "other"
    anomtok.rank(model, nn="off", out_dir=other)
    (tmp_path / "cli").mkdir()
    (tmp_path / "api").mkdir()
    for fmt in ("markdown", "json"):
        _invoke("compare", ranked, other, "--top", "5", "--format", fmt, "-o", tmp_path / "cli" / f"c.{fmt}")
        res = anomtok.compare([ranked, other], top=5, format=fmt, out=tmp_path / "api" / f"c.{fmt}")
    assert_same_files(tmp_path / "cli", tmp_path / "api")
    assert res.pairs and res.pairs[0]["jaccard"] == 1.0
    assert_short_repr(res, "Comparison of 2 reports")


def test_detect(model, ranked, tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("the cat saw a xylophone in 東京\nplain words here\n", encoding="utf-8")
    glitch = ranked / "ranked.csv"
    (tmp_path / "cli").mkdir()
    (tmp_path / "api").mkdir()
    _invoke(
        "detect",
        model,
        text,
        "--glitch",
        glitch,
        "--top",
        "200",
        "--max-rate",
        "0.5",
        "-o",
        tmp_path / "cli" / "hits.jsonl",
    )
    run = anomtok.detect(model, [text], glitch=glitch, top=200, max_rate=0.5, out=tmp_path / "api" / "hits.jsonl")
    assert_same_files(tmp_path / "cli", tmp_path / "api")
    assert run.total.hits > 0 and not run.exceeded and "hits" in repr(run)
    assert_short_repr(run, "DetectRun: 1 input(s)")
    lazy = anomtok.detect(model, text, anomtok.DetectOptions(top=200), glitch=glitch)
    assert "not read yet" in repr(lazy)
    assert sum(len(e.hits) for e in lazy if hasattr(e, "hits")) == run.total.hits


def test_scan_result_repr(tmp_path):
    from anomtok.scan import ScanResult

    res = ScanResult(
        out_dir=tmp_path,
        steps={s: {"status": "ran", "seconds": 1.0} for s in ("rank", "audit", "negtemp", "verify", "plots", "report")},
        seconds=6.0,
    )
    assert_short_repr(res, "ScanResult: ")


def test_plot(model, tmp_path):
    _invoke(
        "plot",
        model,
        "--no-map",
        "--format",
        "svg",
        "--label-top",
        "5",
        "--device",
        "cpu",
        "-q",
        "-o",
        tmp_path / "cli",
    )
    res = anomtok.plot(model, no_map=True, formats="svg", label_top=5, device="cpu", out_dir=tmp_path / "api")
    assert_same_files(tmp_path / "cli", tmp_path / "api")  # the SVGs too: rendered reproducibly
    assert_short_repr(res, "PlotResult: ")
