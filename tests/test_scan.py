"""`anomtok scan` end to end on the tiny trained model: every section agrees with the files, a killed
scan resumes to the same files, reports of models sharing a tokenizer are compared."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from anomtok.cli import cli
from anomtok.compare import compare
from anomtok.export import write_csv

FAST = ["--prompts-per-language", "2", "--max-new-tokens", "6", "--verify-top", "3"]
SECTIONS = [
    "## Model",
    "## Glitch tokens",
    "## Both tails of the centroid distance",
    "## Maps and plots",
    "## Negative-temperature generation",
    "## Verification by prompting",
    "## Tokenizer audit",
    "### Japanese",
    "## Run",
]
COMPARED = [
    "ranked.csv",
    "glitch.csv",
    "audit/audit.csv",
    "negtemp/generations.jsonl",
    "negtemp/negtemp_tokens.csv",
    "verify/verified.csv",
]


@pytest.fixture(scope="module")
def full_scan(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("scan") / "report"
    res = CliRunner().invoke(cli, ["scan", str(tiny_model.hf_dir), "-o", str(out), *FAST])
    assert res.exit_code == 0, res.output
    return out


def _section(text: str, title: str) -> str:
    """The body of the section headed ``title`` (up to the next heading of its level or above)."""
    level = title.split(" ")[0]
    body = text[text.index(title + "\n") + len(title) + 1 :]
    nxt = re.search(rf"^#{{1,{len(level)}}} ", body, re.M)
    return body[: nxt.start()] if nxt else body


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", path
    return struct.unpack(">II", data[16:24])


def test_report_sections_agree_with_the_files(tiny_model, full_scan):
    """Every section is there and says what the model and the step files hold: the model's shape
    and token kinds (known by construction), the flagged count and rows of glitch.csv, the audit's
    class counts, the negtemp token count, the verification count; the plots are distinct images."""
    text = (full_scan / "report.md").read_text("utf-8")
    for section in SECTIONS:
        assert section in text, section
    ranked = pl.read_parquet(full_scan / "ranked.parquet")
    glitch = pl.read_csv(full_scan / "glitch.csv", infer_schema_length=10000)

    model = _section(text, "## Model")
    assert f"| embedding | {tiny_model.embedding_rows} × {tiny_model.hidden_size}, tied |" in model
    for kind, n in (
        ("unused", len(tiny_model.unused_ids)),
        ("padding", len(tiny_model.padding_ids)),
        ("special", len(tiny_model.special_ids)),
    ):
        assert re.search(rf"\b{kind} {n}\b", model), (kind, n)

    flagged = ranked.filter(pl.col("flagged"))
    assert glitch.height == flagged.height > 0
    assert set(glitch["token_id"].to_list()) == set(flagged["token_id"].to_list())
    assert glitch["rank"].to_list() == sorted(flagged["rank"].to_list())
    section = _section(text, "## Glitch tokens")
    assert f"**{glitch.height} tokens**" in section
    assert f"**{int(ranked['is_reference'].sum())} reference tokens**" in section
    rows = [(int(r), int(i)) for r, i in re.findall(r"^\| (\d+) \| (\d+) \| <code>", section, re.M)]
    assert len(rows) == min(40, glitch.height)
    assert rows == list(zip(glitch["rank"].to_list(), glitch["token_id"].to_list()))[: len(rows)]

    audit = pl.read_csv(full_scan / "audit" / "audit.csv", infer_schema_length=10000)
    assert audit.height == tiny_model.embedding_rows - len(tiny_model.padding_ids)
    audit_section = _section(text, "## Tokenizer audit")
    listed = {c: int(n) for c, n in re.findall(r"^\| ([a-z-]+) \| (\d+) \|$", audit_section, re.M)}
    counts = dict(audit["round_trip"].value_counts().iter_rows())
    assert listed == {c: counts.get(c, 0) for c in listed} and set(counts) <= set(listed)

    gens = [json.loads(line) for line in (full_scan / "negtemp" / "generations.jsonl").read_text("utf-8").splitlines()]
    assert sorted(g["group"] for g in gens) == ["en", "en", "ja", "ja"]  # --prompts-per-language 2
    n_tokens = sum(len(g["generated_ids"]) for g in gens)
    assert re.search(rf"^\| all \| {n_tokens} \| ", _section(text, "## Negative-temperature generation"), re.M)

    verified = pl.read_csv(full_scan / "verify" / "verified.csv", infer_schema_length=10000)
    assert f"{int(verified['verified'].sum())} of {verified.height} candidates verified" in text

    # the evidence of each glitch token, from the step files
    by_id = {r["token_id"]: r for r in glitch.iter_rows(named=True)}
    for r in verified.filter(pl.col("token_id").is_in(list(by_id))).iter_rows(named=True):
        assert by_id[r["token_id"]]["max_prob"] == pytest.approx(r["max_prob"], rel=1e-6)
        assert by_id[r["token_id"]]["verified"] == r["verified"]
    produced = dict(pl.read_csv(full_scan / "negtemp" / "negtemp_tokens.csv").select("token_id", "count").iter_rows())
    assert glitch["negtemp_count"].to_list() == [produced.get(i, 0) for i in glitch["token_id"].to_list()]
    classes = dict(audit.select("token_id", "round_trip").iter_rows())
    assert glitch["audit_class"].to_list() == [classes[i] for i in glitch["token_id"].to_list()]
    names = dict(ranked.select("token_id", "token").iter_rows())
    assert glitch["nn_token"].to_list() == [names[i] for i in glitch["nn_id"].to_list()]
    header = next(line for line in section.splitlines() if line.startswith("| rank |"))
    assert header == (
        "| rank | id | token | kind | script | score | [verify p](#verification-by-prompting) | "
        "[negtemp](#negative-temperature-generation) | nearest neighbour | [audit](#tokenizer-audit) |"
    )
    first = glitch.row(0, named=True)
    assert f"| {first['negtemp_count']} | <code>{first['nn_token'].replace(' ', '␣')}</code> " in section
    assert "docs/validity.md" in section
    # the cross-check bands are the ones the README quotes; settings are a table, not JSON
    negtemp = _section(text, "## Negative-temperature generation")
    assert "| prompts | tokens | distinct | mean percentile | top 100 | top 1,000 | top 2% | top 5% |" in negtemp
    run = _section(text, "## Run")
    assert "| `seed` | 0 |" in run and "{" not in run
    assert re.search(r"^\| rank \| (ran|reused) \| \d+\.\d+ s \|$", run, re.M)

    pngs = {}
    for name in ["map_score", "map_kind", "map_script", "map_japanese", "centroid_hist", "score_norm"]:
        path = full_scan / "plots" / f"{name}.png"
        width, height = _png_size(path)
        assert width >= 400 and height >= 300, (name, width, height)
        assert f"](plots/{name}.png)" in text
        pngs[name] = path.read_bytes()
    assert len(set(pngs.values())) == len(pngs)


def test_scan_maps_every_token_on_the_rankings_graph(full_scan):
    """The scan's default map is the full vocabulary (issue 13.5), laid out on the neighbour graph
    the ranking computed (knn.npz), not on a second search; the cached coordinates are read back as
    they were written."""
    import numpy as np

    from anomtok.export import read_knn, read_table
    from anomtok.maps import read_map

    ranked = read_table(full_scan / "ranked.parquet")
    coords, meta = read_map(full_scan / "umap.parquet")
    valid = ranked.filter(pl.col("valid"))["token_id"].sort().to_list()
    assert meta["settings"]["mode"] == "full" and coords["token_id"].sort().to_list() == valid
    graph = read_knn(full_scan / "knn.npz")
    assert meta["knn"] == {"from": "the ranking", "method": graph.info["method"], "k": graph.k}
    assert np.isfinite(coords.select("x", "y").to_numpy()).all()


def test_rerun_reuses_every_step(tiny_model, full_scan):
    before = {p: (full_scan / p).stat().st_mtime_ns for p in COMPARED if p != "glitch.csv"}  # the report is redrawn
    res = CliRunner().invoke(cli, ["scan", str(tiny_model.hf_dir), "-o", str(full_scan), *FAST])
    assert res.exit_code == 0, res.output
    for step in ["rank", "audit", "negtemp", "verify", "plots"]:
        assert f"{step:<8} reused" in res.stderr
    assert {p: (full_scan / p).stat().st_mtime_ns for p in before} == before


def test_killed_scan_resumes_to_the_same_files(tiny_model, full_scan, tmp_path):
    """Killed (SIGKILL) at a fixed point, never on a timer: ``ANOMTOK_TEST_KILL_AT`` makes the scan
    kill itself right after the negtemp step created its first temporary file. The next run reuses
    rank and audit, reruns the rest, removes the dead run's temporary and writes the same files as
    the uninterrupted scan. (--no-map: the map is not among the compared files.)"""
    out = tmp_path / "killed"
    args = ["scan", str(tiny_model.hf_dir), "-o", str(out), *FAST, "--no-map"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANOMTOK_TEST_KILL")}
    env["ANOMTOK_TEST_KILL_AT"] = "generations.jsonl"
    killed = subprocess.run(
        [sys.executable, "-m", "anomtok", *args], env=env, capture_output=True, text=True, timeout=900
    )
    assert killed.returncode == -signal.SIGKILL, (killed.returncode, killed.stderr)
    assert "negtemp  running" in killed.stderr and "negtemp  done" not in killed.stderr, killed.stderr
    assert (out / ".steps" / "rank.json").is_file() and (out / ".steps" / "audit.json").is_file()
    assert not (out / ".steps" / "negtemp.json").exists()
    assert not (out / "report.md").exists()
    assert [p.name.split(".")[1:3] for p in out.rglob("*.tmp")] == [["generations", "jsonl"]]

    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "rank     reused" in res.stderr and "audit    reused" in res.stderr
    assert "negtemp  done" in res.stderr and "verify   done" in res.stderr
    for p in COMPARED:
        assert (out / p).read_bytes() == (full_scan / p).read_bytes(), p
    assert not list(out.rglob("*.tmp"))  # the killed writer's temporary is swept on resume


@pytest.fixture(scope="module")
def rank_folders(tiny_model_untied, tiny_model_noref, tmp_path_factory):
    """`anomtok rank` folders of the untied model (same tokenizer as tiny_model) and of the model
    without <unusedN> tokens (another vocabulary)."""
    out = {}
    for name, m in (("untied", tiny_model_untied), ("noref", tiny_model_noref)):
        out[name] = tmp_path_factory.mktemp("rank") / name
        res = CliRunner().invoke(cli, ["rank", str(m.hf_dir), "-o", str(out[name]), "-q"])
        assert res.exit_code == 0, res.output
    return out


def test_compare_pairs_models_that_share_a_tokenizer(full_scan, rank_folders, tmp_path):
    """Every pair is compared by the exact bytes of the flagged tokens; the overlap is computed
    here from ranked.parquet. Two models with one tokenizer are said to share it, a third model
    with another vocabulary is not."""
    folders = [full_scan, rank_folders["untied"], rank_folders["noref"]]
    res = compare(folders)
    frames = [pl.read_parquet(f / "ranked.parquet") for f in folders]
    flagged = [set(f.filter(pl.col("flagged") & (pl.col("bytes_hex") != ""))["bytes_hex"].to_list()) for f in frames]
    a, b = flagged[0], flagged[1]
    assert a != b and a & b  # the two models flag overlapping, different sets: the Jaccard is informative
    first = res.pairs[0]
    assert (first["a"], first["b"], first["same_vocabulary"]) == (full_scan.name, "untied", True)
    assert (first["shared"], first["only_a"], first["only_b"]) == (len(a & b), len(a - b), len(b - a))
    assert first["jaccard"] == pytest.approx(len(a & b) / len(a | b), abs=1e-4) and 0 < first["jaccard"] < 1
    assert [p["same_vocabulary"] for p in res.pairs] == [True, False, False]
    assert res.summary["flagged"].to_list() == [int(f["flagged"].sum()) for f in frames]
    assert res.summary["tied"].to_list() == [True, False, True]
    # as committed (meta.json and glitch.csv only, no full ranking): meta.json's vocabulary hash answers
    kept = []
    for f, frame in zip(folders, frames):
        (k := tmp_path / f.name).mkdir()
        shutil.copyfile(f / "meta.json", k / "meta.json")
        write_csv(frame.filter(pl.col("flagged")), k / "glitch.csv")
        kept.append(k)
    assert [p["same_vocabulary"] for p in compare(kept).pairs] == [True, False, False]


def test_compare_needs_reports(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    res = CliRunner().invoke(cli, ["compare", str(tmp_path / "a"), str(tmp_path / "b")])
    assert res.exit_code == 2 and "not an anomtok report" in res.stderr


def _tiny_encoder(folder: Path) -> Path:
    """A BERT masked-LM folder (random weights, 1 layer) with a WordPiece tokenizer trained here,
    ``[unusedN]`` reserved tokens included: an encoder-only model, not a causal LM."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import BertConfig, BertForMaskedLM, PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"[unused{i}]" for i in range(8)]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    text = ["the cat sat on the mat", "a dog ran in the park", "東京 and 大阪 are cities", "tokens and words"] * 20
    tok.train_from_iterator(
        text, trainers.WordPieceTrainer(vocab_size=120, special_tokens=specials, show_progress=False)
    )
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    BertForMaskedLM(cfg).save_pretrained(folder)
    PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    ).save_pretrained(folder)
    return folder


def test_encoder_only_scan_skips_generation_and_reports_the_rest(tmp_path):
    """An encoder-only model scans end to end: rank, audit, plots and the report; negtemp and
    verify are announced as skipped before the first step, skipped, and leave no folder."""
    model = _tiny_encoder(tmp_path / "bert")
    out = tmp_path / "report"
    res = CliRunner().invoke(cli, ["scan", str(model), "-o", str(out), "--no-map"])
    assert res.exit_code == 0, res.output
    why = "bert: an encoder-only model, not a causal LM"
    steps = [line.split("] ", 1)[1] for line in res.stderr.splitlines() if line.startswith("[")]
    assert steps[:3] == [f"negtemp  will be skipped: {why}", f"verify   will be skipped: {why}", "rank     running"]
    assert "negtemp  skipped" in steps and "verify   skipped" in steps
    assert not any(s.startswith(("negtemp  running", "verify   running")) for s in steps)
    assert not (out / "negtemp").exists() and not (out / "verify").exists()
    assert (out / ".steps" / "rank.json").is_file() and (out / ".steps" / "audit.json").is_file()

    text = (out / "report.md").read_text("utf-8")
    for section in ["## Model", "## Glitch tokens", "## Maps and plots", "## Tokenizer audit", "## Run"]:
        assert section in text, section
    assert "## Negative-temperature generation" not in text and "## Verification by prompting" not in text
    assert f"| negtemp | skipped | {why} |" in text and f"| verify | skipped | {why} |" in text
    ranked = pl.read_parquet(out / "ranked.parquet")
    vocab = json.loads((model / "config.json").read_text())["vocab_size"]
    assert ranked.height == vocab and f"| embedding | {vocab} × 16, tied |" in text
    # the reference set is the eight [unusedN] tokens; the all-zero [PAD] row is invalid, ranked first
    assert sorted(ranked.filter(pl.col("is_reference"))["token"].to_list()) == sorted(f"[unused{i}]" for i in range(8))
    assert ranked.sort("rank")["token"][0] == "[PAD]" and not ranked.sort("rank")["valid"][0]
    glitch = pl.read_csv(out / "glitch.csv", infer_schema_length=10000)
    assert glitch.height == int(ranked["flagged"].sum())


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"generate": "yes"}, "generate must be True or False"),
        ({"umap_full": 1}, "umap_full must be True or False"),
        ({"prompts_per_language": 0}, "prompts_per_language"),
        ({"verify_top": 0}, "verify_top"),
        ({"label_top": -1}, "label_top"),
        ({"umap_full_max_rows": 0}, "umap_full_max_rows"),
        ({"umap_sample": 9}, "umap_sample"),
        ({"umap_sample": 100, "umap_full": True}, "choose either umap_full"),
        ({"formats": ()}, "formats must be png and/or svg"),
        ({"formats": ("png", "pdf")}, "formats must be png and/or svg"),
        ({"temperature": float("inf")}, "temperature must be a finite number"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"device": "tpu"}, "device"),
        ({"seed": 2**32}, "seed"),
    ],
)
def test_scan_options_refuse_each_bad_value(bad, message):
    """ScanOptions checks every field itself (the API, not only the CLI's option types)."""
    from anomtok.errors import InputError
    from anomtok.scan import ScanOptions

    with pytest.raises(InputError, match=re.escape(message)):
        ScanOptions(**{"device": "cpu", **bad})


def test_scan_options_accept_the_edges():
    from anomtok.scan import VERIFY_TOP_MAX, ScanOptions

    o = ScanOptions(
        device="cpu",
        prompts_per_language=1,
        verify_top=VERIFY_TOP_MAX,
        label_top=0,
        umap_sample=10,
        umap_full_max_rows=1,
        formats=("svg",),
        seed=2**32 - 1,
    )
    assert o.verify_options.top == VERIFY_TOP_MAX and o.map_options.sample == 10 and o.rank_options.seed == 2**32 - 1
