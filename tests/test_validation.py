"""Bad input is found before the slow part, and said in one line (issue 10, items 6, 8 and 10).

Each "before" test replaces the expensive function (model loading, generation, the audit, the
ranking) by one that records the call and fails: the run must exit 2 without ever calling it.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

import anomtok.generation as generation
from anomtok import api
from anomtok.cli import cli
from anomtok.errors import InputError
from anomtok.ranking import RankOptions

HUGE = str(2**70)


# ------------------------------------------------------------------ helpers
def _invoke(args: list[str], **kw):
    return CliRunner().invoke(cli, [str(a) for a in args], **kw)


def _one_error(res, *needles: str) -> str:
    """Exit 2, no traceback, and stderr's only error line; it names every needle."""
    assert res.exit_code == 2, (res.exit_code, res.output, res.stderr)
    assert "Traceback" not in res.stderr and "internal error" not in res.stderr, res.stderr
    errors = [line for line in res.stderr.splitlines() if "error:" in line.lower()]
    assert len(errors) == 1, res.stderr
    for n in needles:
        assert n in errors[0], errors[0]
    return errors[0]


def _bad_input(res, *needles: str) -> str:
    """An InputError: exactly one ``anomtok: error: ...`` line."""
    line = _one_error(res, *needles)
    assert line.startswith("anomtok: error: "), line
    assert [x for x in res.stderr.splitlines() if x.startswith("anomtok: error:")] == [line]
    return line


@pytest.fixture()
def forbid(monkeypatch):
    """``forbid(module, "name")``: calling it fails the test (and is recorded in ``calls``)."""
    calls: list[str] = []

    def install(module, name: str) -> None:
        def boom(*args, **kwargs):
            calls.append(name)
            raise AssertionError(f"{name} was called: the bad input should have been found before")

        monkeypatch.setattr(module, name, boom)

    install.calls = calls
    return install


@pytest.fixture(scope="module")
def ranked(tiny_model, tiny_model_noref, tmp_path_factory):
    """ranked.csv/meta.json folders: the tiny model's own, another model's."""
    root = tmp_path_factory.mktemp("ranked")
    out = {}
    for name, m in (("own", tiny_model), ("other", tiny_model_noref)):
        api.rank(str(m.hf_dir), out_dir=root / name, options=RankOptions(nn="off"))
        out[name] = root / name
    return out


@pytest.fixture()
def prompts(tmp_path):
    p = tmp_path / "p.txt"
    p.write_text("the cat saw a dog\n", encoding="utf-8")
    return p


# ------------------------------------------------------------------ 10.6 late validation
def test_negtemp_ranking_of_another_model_fails_before_the_model_loads(tiny_model, ranked, prompts, tmp_path, forbid):
    forbid(generation, "load_causal_lm")
    forbid(generation, "generate")
    res = _invoke(
        [
            "negtemp",
            tiny_model.hf_dir,
            "--prompts",
            prompts,
            "-n",
            2,
            "--ranking",
            ranked["other"] / "ranked.csv",
            "-o",
            tmp_path / "o",
        ]
    )
    _bad_input(res, "ranked.csv", "another model?")
    assert forbid.calls == []


def test_ranking_with_other_tokens_or_shape_is_refused(tiny_model, ranked, tmp_path):
    """Same number of rows but other bytes; or a meta.json that records another embedding shape."""
    from anomtok.loading import load

    emb = load(str(tiny_model.hf_dir))
    own = pl.read_csv(ranked["own"] / "ranked.csv", schema_overrides={"bytes_hex": pl.String, "token": pl.String})
    assert generation.ranking_for(emb, ranked["own"] / "ranked.csv").height == emb.shape[0]  # its own: accepted
    swapped = own.with_columns(bytes_hex=pl.when(pl.col("token_id") % 2 == 0).then(pl.lit("00")).otherwise("bytes_hex"))
    (tmp_path / "a").mkdir()
    swapped.write_csv(tmp_path / "a" / "ranked.csv")
    with pytest.raises(InputError, match="spell other bytes than this model's tokens"):
        generation.ranking_for(emb, tmp_path / "a" / "ranked.csv")
    (tmp_path / "b").mkdir()
    own.write_csv(tmp_path / "b" / "ranked.csv")
    meta = json.loads((ranked["own"] / "meta.json").read_text())
    meta["shape"] = [emb.shape[0], emb.shape[1] * 2]
    (tmp_path / "b" / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match=rf"ranked from a {emb.shape[0]} x {emb.shape[1] * 2} embedding"):
        generation.ranking_for(emb, tmp_path / "b" / "ranked.csv")


def test_ranking_of_other_files_with_the_same_vocabulary_is_a_warning(tiny_model, tiny_model_untied, tmp_path, caplog):
    from anomtok.loading import load

    api.rank(str(tiny_model_untied.hf_dir), out_dir=tmp_path / "u", options=RankOptions(nn="off"))
    with caplog.at_level("WARNING"):
        frame = generation.ranking_for(load(str(tiny_model.hf_dir)), tmp_path / "u" / "ranked.csv")
    assert frame.height == tiny_model.embedding_rows
    assert "ranked from other model files" in caplog.text


def test_sweep_unknown_metric_fails_before_anything_loads(tiny_model, prompts, tmp_path, forbid):
    forbid(generation, "load_causal_lm")
    forbid(generation, "generate")
    res = _invoke(["sweep", tiny_model.hf_dir, "--prompts", prompts, "--metric", "bogus", "-o", tmp_path / "o"])
    _bad_input(res, "unknown metric 'bogus'", "score", "nn_cos")
    assert forbid.calls == [] and not (tmp_path / "o" / "meta.json").exists()


def test_sweep_metric_the_ranking_lacks_fails_before_generation(tiny_model, prompts, tmp_path, forbid):
    """nn_cos is a metric, but the default ranking (nn off) has no value of it."""
    forbid(generation, "generate")
    res = _invoke(
        [
            "sweep",
            tiny_model.hf_dir,
            "--prompts",
            prompts,
            "--metric",
            "nn_cos",
            "-n",
            2,
            "--temperatures=-1,1",
            "-o",
            tmp_path / "o",
        ]
    )
    _bad_input(res, "no values of nn_cos")
    assert forbid.calls == []


def test_sweep_ranking_of_another_model_fails_before_the_model_loads(tiny_model, ranked, prompts, tmp_path, forbid):
    forbid(generation, "load_causal_lm")
    res = _invoke(
        [
            "sweep",
            tiny_model.hf_dir,
            "--prompts",
            prompts,
            "--ranking",
            ranked["other"] / "ranked.csv",
            "-o",
            tmp_path / "o",
        ]
    )
    _bad_input(res, "another model?")
    assert forbid.calls == []


NEGTEMP_BAD = [
    (["--batch-size", 0], "batch_size must be an integer from 1 to 512"),
    (["--batch-size", 100000], "batch_size must be an integer from 1 to 512"),
    (["--timeout", "nan"], "timeout_s must be a positive number"),
    (["--timeout", "-1"], "timeout_s must be a positive number"),
    (["-n", 0], "max_new_tokens must be an integer from 1 to 4096"),
    (["--top-p", 0], "top_p must be a finite number in (0, 1]"),  # SamplerConfig: already so
]


def test_negtemp_bad_options_fail_before_prompts_and_model(tiny_model, tmp_path, forbid):
    """Each bad option is refused before stdin's prompts are read or the model is loaded (batch
    size, timeout and token count were checked by the decode loop, after loading)."""
    forbid(generation, "load_causal_lm")
    forbid(generation, "read_prompts")
    for args, needle in NEGTEMP_BAD:
        res = _invoke(["negtemp", tiny_model.hf_dir, "--prompts", "-", *args, "-o", tmp_path / "o"], input="a prompt\n")
        _bad_input(res, needle)
    assert forbid.calls == []


def test_verify_unknown_metric_fails_before_the_model_loads(tiny_model, tmp_path, forbid):
    forbid(generation, "load_causal_lm")
    res = _invoke(["verify", tiny_model.hf_dir, "--metric", "bogus", "-o", tmp_path / "o"])
    _bad_input(res, "unknown metric(s) bogus", "score")
    assert forbid.calls == []


def test_verify_ranking_of_another_model_fails_before_the_model_loads(tiny_model, ranked, tmp_path, forbid):
    forbid(generation, "load_causal_lm")
    res = _invoke(["verify", tiny_model.hf_dir, "--ranking", ranked["other"] / "ranked.parquet", "-o", tmp_path / "o"])
    _bad_input(res, "another model?")
    assert forbid.calls == []


SCAN_BAD = [
    (["-T", "nan"], "temperature must be a finite number"),  # the example (fixed in eea2967)
    (["--full-umap", "--umap-sample", 100], "choose either umap_full"),  # was: at the plots step
    (["--verify-top", 5000], "verify_top must be an integer from 1 to 2000"),  # was: at the verify step
    (["--device", "tpu"], "--device must be auto, cpu or cuda[:N]"),
]


def test_scan_bad_options_fail_before_any_step(tiny_model, tmp_path, forbid):
    import anomtok.loading

    forbid(anomtok.loading, "load")
    forbid(api, "rank")
    for args, needle in SCAN_BAD:
        res = _invoke(["scan", tiny_model.hf_dir, *args, "-o", tmp_path / "o"])
        _bad_input(res, needle)
    assert forbid.calls == [] and not (tmp_path / "o").exists()


def test_plot_bad_device_fails_before_the_model_loads(tiny_model, tmp_path, forbid):
    import anomtok.loading

    forbid(anomtok.loading, "load")
    res = _invoke(["plot", tiny_model.hf_dir, "--device", "tpu", "--no-map", "-o", tmp_path / "o"])
    _bad_input(res, "--device must be auto, cpu or cuda[:N], not 'tpu'")
    assert forbid.calls == []


def test_audit_model_of_another_vocabulary_fails_before_the_audit(tiny_model, tmp_path, forbid, monkeypatch):
    import anomtok.audit
    import anomtok.ranking

    with monkeypatch.context() as m:
        m.setattr(anomtok.audit, "audit_tokenizer", lambda *a, **k: forbid.calls.append("audit_tokenizer"))
        m.setattr(anomtok.ranking, "rank", lambda *a, **k: forbid.calls.append("rank"))
        res = _invoke(["audit", tiny_model.hf_dir / "tokenizer.json", "--model", "minilm-l6", "-o", tmp_path / "o"])
    _bad_input(res, "the ranked model's vocabulary is not this tokenizer's")
    assert forbid.calls == []
    # the tokenizer's own model passes the check and is ranked (loaded once, by the check)
    res = _invoke(
        ["audit", tiny_model.hf_dir / "tokenizer.json", "--model", tiny_model.hf_dir, "-o", tmp_path / "o", "-q"]
    )
    assert res.exit_code == 0, res.stderr
    assert json.loads((tmp_path / "o" / "audit.json").read_text())["ranking"]["status"] == "ok"


# ------------------------------------------------------------------ 10.8 small internal errors
@pytest.mark.parametrize("seed", [HUGE, "-1"])
@pytest.mark.parametrize("command", ["rank", "negtemp", "sweep", "verify", "scan", "plot"])
def test_out_of_range_seed_is_bad_input(tiny_model, tmp_path, forbid, command, seed):
    """rank --nn approx --seed 2**70 was ``ValueError: Overflow`` from torch, after loading."""
    import anomtok.loading

    forbid(anomtok.loading, "load")
    forbid(generation, "load_causal_lm")
    extra = ["--nn", "approx"] if command == "rank" else []
    res = _invoke([command, tiny_model.hf_dir, *extra, "--seed", seed, "-o", tmp_path / "o"])
    _one_error(res, "--seed", seed)
    assert forbid.calls == []


@pytest.mark.parametrize(
    "make, hi",
    [
        (lambda s: RankOptions(nn="approx", seed=s), 2**63 - 1),
        (lambda s: generation.GenerationOptions(seed=s), 2**63 - 1),
        (lambda s: __import__("anomtok.scan", fromlist=["ScanOptions"]).ScanOptions(seed=s), 2**32 - 1),
        (lambda s: __import__("anomtok.maps", fromlist=["MapOptions"]).MapOptions(seed=s), 2**32 - 1),
    ],
)
def test_options_refuse_seeds_their_generators_cannot_take(make, hi):
    make(0)
    make(hi)
    for bad in (-1, hi + 1, 2**70, 1.5, True):
        with pytest.raises(InputError, match="seed must be an integer from 0 to"):
            make(bad)


def test_huge_seed_cannot_reach_torch_through_the_api(tiny_model):
    with pytest.raises(InputError, match="seed must be an integer"):
        api.rank(str(tiny_model.hf_dir), options=RankOptions(nn="approx", seed=2**70))


def _closed_stdin(args: list[str]) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("anomtok")
    cmd = shlex.join([str(exe), *map(str, args)]) + " <&-"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.parametrize("command", ["detect", "negtemp"])
def test_closed_stdin_is_bad_input(tiny_model, tmp_path, command):
    """``anomtok detect MODEL -`` and ``negtemp --prompts -`` with stdin closed (``<&-``): was an
    AttributeError on ``None.buffer`` / ``None.read``."""
    (tmp_path / "ids.txt").write_text("5\n")
    if command == "detect":
        args = ["detect", tiny_model.hf_dir, "--glitch", tmp_path / "ids.txt", "-"]
    else:
        args = ["negtemp", tiny_model.hf_dir, "--prompts", "-", "-n", 2, "-o", tmp_path / "o"]
    res = _closed_stdin(args)
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip().splitlines()[-1] == "anomtok: error: stdin is closed: nothing to read from '-'"
    assert "Traceback" not in res.stderr and res.stderr.count("anomtok: error:") == 1


def test_closed_stdin_in_the_readers(monkeypatch):
    from anomtok.detect import check_inputs
    from anomtok.generation import read_prompts

    monkeypatch.setattr(sys, "stdin", None)
    with pytest.raises(InputError, match="stdin is closed"):
        read_prompts("-")
    with pytest.raises(InputError, match="stdin is closed"):
        check_inputs(["-"])


@pytest.fixture()
def detect_files(tmp_path):
    (tmp_path / "ids.txt").write_text("5\n")
    (tmp_path / "binary.bin").write_bytes(b"\x00\x01\x02\x00" * 64)
    (tmp_path / "latin1.txt").write_bytes("café crème\nnaïve\n".encode("latin-1"))
    (tmp_path / "good.txt").write_text("the cat saw a dog\n", encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize("inputs", [["binary.bin"], ["latin1.txt"], ["binary.bin", "latin1.txt"]])
def test_detect_nothing_readable_is_bad_input(tiny_model, detect_files, inputs):
    d = detect_files
    res = _invoke(
        ["detect", tiny_model.hf_dir, "--glitch", d / "ids.txt", *[d / i for i in inputs], "-o", d / "hits.jsonl"]
    )
    line = _bad_input(res, "no input could be read")
    assert f"in {len(inputs)} input(s)" in line and ("binary data" in line or "invalid UTF-8" in line)
    assert not (d / "hits.jsonl").exists()  # nothing committed
    # to stdout: the error lines of the hits stream are there, the exit code is still 2
    res = _invoke(["detect", tiny_model.hf_dir, "--glitch", d / "ids.txt", *[d / i for i in inputs]])
    _bad_input(res, "no input could be read")
    assert all(json.loads(x)["type"] == "error" for x in res.stdout.splitlines())
    # one readable input among unreadable ones: a warning, not an error
    res = _invoke(["detect", tiny_model.hf_dir, "--glitch", d / "ids.txt", *[d / i for i in inputs], d / "good.txt"])
    assert res.exit_code in (0, 3), res.stderr
    assert "anomtok: error" not in res.stderr and "lines could not be read" in res.stderr


# ------------------------------------------------------------------ 10.10 small
def test_nearest_metric_score_brackets_the_token_not_the_id(tiny_model):
    res = _invoke(["nearest", tiny_model.hf_dir, "--metric", "score", "-k", 5])
    assert res.exit_code == 0, res.stderr
    frame = api.nearest(str(tiny_model.hf_dir), k=5, metric="score")
    lines = res.output.splitlines()
    assert lines[0].split()[:4] == ["#", "rank", "token_id", "token"]
    for line, (tid, token) in zip(lines[2:], frame.select("token_id", "token").iter_rows()):
        assert f"⟨{token}⟩" in line and f"⟨{tid}⟩" not in line, line
        assert line.split()[2] == str(tid)


def test_audit_by_kind_rows_are_sorted(tiny_model, tmp_path):
    from anomtok.audit import audit

    res = audit(str(tiny_model.hf_dir / "tokenizer.json"), out_dir=tmp_path, ranking=False)
    crossed = res.summary["counts"]["kind_x_round_trip"]
    assert len(crossed) >= 3 and list(crossed) == sorted(crossed)
    for row in crossed.values():
        assert list(row) == sorted(row)
    md = (tmp_path / "audit.md").read_text()
    section = md.split("## By kind", 1)[1].split("\n## ", 1)[0]
    kinds = [line.split("|")[1].strip() for line in section.splitlines() if line.startswith("| ")][1:]
    assert kinds == sorted(crossed)


def _versions_ok(meta: dict) -> None:
    v = meta["versions"]
    assert set(v) == {"python", "anomtok", "torch", "transformers", "polars", "numpy"}
    assert v["python"] == ".".join(map(str, sys.version_info[:3]))
    for name in ("torch", "transformers", "polars", "numpy"):
        assert v[name] == metadata.version(name)


def test_rank_meta_records_the_command_line_and_versions(tiny_model, tmp_path, monkeypatch):
    argv = ["anomtok", "rank", str(tiny_model.hf_dir), "--nn", "off", "-o", str(tmp_path / "cli"), "-q"]
    monkeypatch.setattr(sys, "argv", argv)
    res = _invoke(argv[1:])
    assert res.exit_code == 0, res.stderr
    meta = json.loads((tmp_path / "cli" / "meta.json").read_text())
    assert meta["command"] == shlex.join(argv)
    _versions_ok(meta)
    api.rank(str(tiny_model.hf_dir), out_dir=tmp_path / "api", options=RankOptions(nn="off"))
    meta = json.loads((tmp_path / "api" / "meta.json").read_text())
    assert meta["command"] == "anomtok.rank"
    _versions_ok(meta)


def test_negtemp_and_sweep_meta_record_command_and_versions(tiny_model, tmp_path):
    generation.negtemp(
        str(tiny_model.hf_dir),
        ["the cat"],
        generation.SamplerConfig(-0.001),
        max_new_tokens=2,
        device="cpu",
        out_dir=tmp_path / "n",
    )
    generation.sweep(
        str(tiny_model.hf_dir), ["the cat"], [-1.0, 1.0], max_new_tokens=2, device="cpu", out_dir=tmp_path / "s"
    )
    for sub, call in (("n", "anomtok.negtemp"), ("s", "anomtok.sweep")):
        meta = json.loads((tmp_path / sub / "meta.json").read_text())
        assert meta["command"] == call
        _versions_ok(meta)


def test_versions_do_not_import_torch_or_transformers():
    code = (
        "import sys; from anomtok.provenance import run_info; v = run_info('rank')['versions']; "
        "assert v['torch'] and v['transformers']; "
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, sorted(sys.modules)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
