"""Verification by prompting: prompts built by id substitution, teacher-forced scores (batched ==
one sequence at a time == the first step of generation), verdicts, precision, outputs.

Two kinds of model:

* the tiny trained Llama, and a copy of it fine-tuned for a few seconds on the "repeat" prompt
  with half of the tokens its training text contains (``copying``): the fixture model alone
  is too small to copy in context, the fine-tuned one learns to, and the question is whether
  the copy ability reaches the tokens it was never trained on;
* a stand-in "copy" model (``CopyNet``) whose answer is known exactly, for the verdict and
  bookkeeping logic.
"""

from __future__ import annotations

import json
import random
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest
import torch
from click.testing import CliRunner

import anomtok
from anomtok.cli import cli
from anomtok.errors import InputError
from anomtok.generation import SamplerConfig, generate
from anomtok.generation.model import CausalLM, load_causal_lm
from anomtok.verify import (
    PLACEHOLDER,
    TEMPLATES,
    VERIFY_THRESHOLD,
    build_prompts,
    find_placeholder,
    make_prompt_set,
    score_tokens,
    score_tokens_one_by_one,
    token_prompts,
    verify,
)


class HistoryCache:
    """CopyNet's "KV cache": the tokens of every row so far."""

    def __init__(self, rows: list[list[int]]):
        self.rows = rows

    def batch_repeat_interleave(self, repeats: int) -> None:
        self.rows = [list(r) for r in self.rows for _ in range(repeats)]


class CopyNet(torch.nn.Module):
    """A causal model that copies perfectly: at each position, logit +10 for every token id seen
    so far (the position's own included), -5 for the others; the ``untrained`` ids always get -5.
    It takes a KV cache (``cache``) and ``logits_to_keep`` like a transformers model; every
    sequence it scores (prefix included) is recorded."""

    def __init__(self, rows: int, untrained: set[int]):
        super().__init__()
        self.head = torch.nn.Linear(4, rows, bias=False)
        self.config = SimpleNamespace(vocab_size=rows, max_position_embeddings=4096, eos_token_id=1, pad_token_id=2)
        self.untrained = sorted(untrained)
        self.seen_prompts: list[list[int]] = []

    def get_output_embeddings(self):
        return self.head

    def get_input_embeddings(self):
        return self.head

    def forward(self, input_ids, attention_mask=None, position_ids=None, cache=None, use_cache=True, logits_to_keep=0):
        hist = cache.rows if cache is not None else [[] for _ in range(input_ids.shape[0])]
        rows = [h + x for h, x in zip(hist, input_ids.tolist())]
        S = input_ids.shape[1]
        logits = torch.full((len(rows), S, self.head.weight.shape[0]), -5.0)
        for r, full in enumerate(rows):
            for s in range(S):
                logits[r, s, full[: len(full) - S + s + 1]] = 10.0
        logits[:, :, self.untrained] = -5.0
        if isinstance(logits_to_keep, torch.Tensor):
            logits = logits[:, logits_to_keep]
            self.seen_prompts.extend(rows)
        elif logits_to_keep:
            logits = logits[:, -logits_to_keep:]
        return SimpleNamespace(logits=logits, cache=HistoryCache(rows))


@pytest.fixture(scope="module")
def emb(tiny_model):
    return anomtok.load(tiny_model.hf_dir)


@pytest.fixture(scope="module")
def ranking(emb):
    return anomtok.rank(emb, options=anomtok.RankOptions(nn="off"))


@pytest.fixture(scope="module")
def real_lm(tiny_model):
    return load_causal_lm(tiny_model.hf_dir, device="cpu")


def _copy_lm(real_lm, untrained: set[int]) -> CausalLM:
    net = CopyNet(real_lm.rows, untrained)
    return CausalLM(
        model=net,
        tokenizer=real_lm.tokenizer,
        source=real_lm.source,
        format="folder",
        device=torch.device("cpu"),
        dtype=torch.float32,
        n_vocab=real_lm.n_vocab,
        eos_ids=(1,),
        pad_id=2,
    )


@pytest.fixture(scope="module")
def copying(tiny_model):
    """The tiny model fine-tuned to copy: 150 AdamW steps on the "repeat" prompt with a token of
    ``trained`` (every other seen token) in its slots. ``heldout``: the other seen tokens (in the
    original training text, never in a copy exercise); ``unseen``: the never-seen tokens, minus
    any the prompts themselves contain."""
    lm = load_causal_lm(tiny_model.hf_dir, device="cpu")
    ps = make_prompt_set(lm)
    fixed = {t for seq in ps.sequences for t in seq} - {ps.placeholder_id}
    seen = sorted(tiny_model.seen_ids)
    trained, heldout = seen[::2], seen[1::2]
    unseen = sorted(set(tiny_model.unseen_ids) - fixed)
    j = ps.names.index("repeat")
    rng = random.Random(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: a second thread only waits on a busy machine
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            net = lm.model
            net.train()
            opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=0.0)
            for _ in range(150):
                x = torch.tensor([token_prompts(ps, rng.choice(trained))[j][0] for _ in range(16)])
                net(input_ids=x, labels=x).loss.backward()
                opt.step()
                opt.zero_grad()
            net.eval()
    finally:
        torch.set_num_threads(threads)
    return SimpleNamespace(lm=lm, prompts=ps, trained=trained, heldout=heldout, unseen=unseen)


# ------------------------------------------------------------------ prompts
def test_placeholder_survives_every_template(real_lm, emb):
    pid, text, built = find_placeholder(real_lm, emb.tokens)
    assert emb.tokens.kinds[pid] == "normal" and text.strip().isalpha()
    for (_, tmpl), ids in zip(TEMPLATES, built):
        assert ids.count(pid) == tmpl.count(PLACEHOLDER)
        assert ids == real_lm.encode(tmpl.replace(PLACEHOLDER, text))
    assert build_prompts(real_lm.encode, "x", 10**6) is None  # a placeholder that never appears
    # from the tokenizer alone (no token table), the same placeholder and prompts
    assert find_placeholder(real_lm) == (pid, text, built)


def test_token_prompts_splice_the_id_into_every_slot(real_lm, emb):
    """The answer slot is appended and holds exactly the token; its text is never re-encoded."""
    partial = next(i for i in range(real_lm.n_vocab) if emb.tokens.partial[i] and emb.tokens.kinds[i] == "normal")
    ps = make_prompt_set(real_lm, emb.tokens)
    built = find_placeholder(real_lm, emb.tokens)[2]
    for j, ((seq, answer), ids) in enumerate(zip(token_prompts(ps, partial), built)):
        assert seq == [partial if t == ps.placeholder_id else t for t in ids] + [partial]
        slots = [k for k, t in enumerate(seq) if t == partial]
        assert answer == tuple(slots[1:][-3:]) and answer[-1] == len(seq) - 1
        assert ps.prefix_length(j) == slots[0] and ps.placeholder_id not in seq
    assert [len(a) for _, a in token_prompts(ps, partial)] == [3, 1, 3]  # "meaning" has one answer slot
    assert [len(a) for _, a in token_prompts(ps, partial, n_positions=1)] == [1, 1, 1]
    assert real_lm.encode(real_lm.tokenizer.decode([partial]), add_special_tokens=False) != [partial]


# ------------------------------------------------------------------ scores on trained models
def test_never_seen_tokens_fail_to_repeat_and_seen_ones_repeat(copying):
    """Verified (p < 0.01) = cannot repeat it. Tokens that never occurred in training cannot be
    repeated; tokens that did can, even those the copy exercise never used."""
    lm, ps = copying.lm, copying.prompts
    unseen = score_tokens(lm, copying.unseen, prompts=ps)
    heldout = score_tokens(lm, copying.heldout, prompts=ps)
    trained = score_tokens(lm, copying.trained, prompts=ps)
    assert len(copying.unseen) > 300 and len(copying.heldout) > 150
    assert unseen.verified.mean() >= 0.95
    assert heldout.verified.mean() <= 0.3
    assert trained.verified.mean() <= 0.05
    assert np.median(heldout.p) > 10 * np.median(unseen.p)
    assert (unseen.verified == (unseen.p < VERIFY_THRESHOLD)).all()


def test_never_seen_tokens_fail_to_repeat_when_far_from_the_reference_set(copying, emb):
    """The copy model with its reference rows (tied: input and output) redrawn like trained rows
    (``tests/far_reference.py``): verification does not look at where the reference sits, and
    still tells the never-seen tokens from the seen ones."""
    import copy
    import dataclasses

    from far_reference import move_reference_rows

    ref_ids = np.nonzero(emb.tokens.reference_mask())[0]
    net = copy.deepcopy(copying.lm.model)
    W = net.get_input_embeddings().weight
    assert W is net.get_output_embeddings().weight  # tied: the reference rows move in the softmax too
    with torch.no_grad():
        W.copy_(move_reference_rows(W, ref_ids, copying.trained + copying.heldout))
    lm = dataclasses.replace(copying.lm, model=net)
    unseen = score_tokens(lm, copying.unseen, prompts=copying.prompts)
    heldout = score_tokens(lm, copying.heldout, prompts=copying.prompts)
    before = score_tokens(copying.lm, copying.unseen[:20], prompts=copying.prompts)
    assert not np.allclose(unseen.p[:20], before.p)  # the moved rows are in the model the prompts ran on
    assert unseen.verified.mean() >= 0.95
    assert heldout.verified.mean() <= 0.3


def test_batched_scores_equal_one_sequence_at_a_time(copying):
    lm, ps = copying.lm, copying.prompts
    ids = copying.unseen[:9] + copying.heldout[:9] + copying.trained[:5]
    ref = score_tokens_one_by_one(lm, ids, prompts=ps)
    assert ref.p.max() > 0.5 and ref.p.min() < 1e-3  # both verdicts present
    for batch_size, share in [(64, True), (5, True), (1, True), (7, False)]:
        got = score_tokens(lm, ids, prompts=ps, batch_size=batch_size, share_prefix=share)
        assert got.info["shared_prefix"] is share
        np.testing.assert_allclose(got.p_positions, ref.p_positions, rtol=1e-5, atol=0)  # NaN where no position
        assert (got.top_ids == ref.top_ids).all() and got.token_ids == ids
    for n in (1, 2):
        np.testing.assert_allclose(
            score_tokens(lm, ids, prompts=ps, n_positions=n, batch_size=4).p_positions,
            score_tokens_one_by_one(lm, ids, prompts=ps, n_positions=n).p_positions,
            rtol=1e-5,
            atol=0,
        )


def test_settle_skips_templates_without_changing_a_verdict(copying):
    lm, ps = copying.lm, copying.prompts
    ids = copying.unseen[:10] + copying.heldout[:20] + copying.trained[:10]
    full = score_tokens(lm, ids, prompts=ps, batch_size=8)
    fast = score_tokens(lm, ids, prompts=ps, batch_size=8, settle=True)
    assert (fast.verified == full.verified).all() and 0 < full.verified.sum() < len(ids)
    v = full.verified
    np.testing.assert_allclose(fast.p[v], full.p[v], rtol=1e-5)  # every template scored for these
    assert not np.isnan(fast.logp[v][:, :, 0]).any()
    assert (fast.p[~v] >= VERIFY_THRESHOLD).all() and (fast.p[~v] <= full.p[~v] * (1 + 1e-5)).all()
    echo = ps.names.index("echo")  # the costliest template, scored last and only when still needed
    assert np.isnan(fast.logp[~v][:, echo]).all() and (fast.top_ids[~v][:, echo] == -1).all()
    assert fast.to_frame()["prob_echo"].is_nan().sum() == int((~v).sum())


def test_the_answer_slot_is_the_first_step_of_greedy_generation(copying):
    """The probability at the answer slot is the paper's first generated position: the same
    prompt, the same logits (the previous, generating implementation of verify)."""
    lm, ps = copying.lm, copying.prompts
    ids = copying.unseen[:4] + copying.heldout[:4]
    built = find_placeholder(lm)[2]
    prompts = [[t if i == ps.placeholder_id else i for i in ids_] for t in ids for ids_ in built]
    gens = generate(
        lm,
        prompts,
        SamplerConfig(temperature=0.0),
        max_new_tokens=1,
        batch_size=6,
        watch_ids=[t for t in ids for _ in built],
    )
    first = np.array([g.watched[0] for g in gens]).reshape(len(ids), len(built))
    tf = score_tokens(lm, ids, prompts=ps, n_positions=1)
    np.testing.assert_allclose(tf.p_template, first, rtol=1e-5)
    assert (tf.top_ids == np.array([g.token_ids[0] for g in gens]).reshape(len(ids), len(built))).all()


def test_score_tokens_arguments(real_lm):
    ps = make_prompt_set(real_lm)
    for kw, match in [
        ({"batch_size": 0}, "batch_size"),
        ({"n_positions": 0}, "n_positions"),
        ({"threshold": 1.0}, "threshold"),
    ]:
        with pytest.raises(InputError, match=match):
            score_tokens(real_lm, [5], prompts=ps, **kw)
    with pytest.raises(InputError, match="not a token"):
        score_tokens(real_lm, [real_lm.n_vocab], prompts=ps)
    empty = score_tokens(real_lm, [], prompts=ps)
    assert empty.token_ids == [] and empty.logp.shape == (0, 3, 3)
    frame = score_tokens(real_lm, [5, 5, 7], prompts=ps).to_frame()  # duplicates are scored as given
    assert frame["token_id"].to_list() == [5, 5, 7] and frame["max_prob"][0] == frame["max_prob"][1]
    assert {"max_prob", "verified", "best_template", "prob_echo", "top_repeat"} <= set(frame.columns)


# ------------------------------------------------------------------ verify()
def test_candidates_are_substituted_by_id_never_re_encoded(real_lm, emb, ranking):
    partial = next(i for i in range(real_lm.n_vocab) if emb.tokens.partial[i] and emb.tokens.kinds[i] == "normal")
    lm = _copy_lm(real_lm, set())
    res = verify(lm, ranking, embeddings=emb, token_ids=[partial], random_sample=0)
    ps = make_prompt_set(real_lm, emb.tokens)
    # the template ids, the placeholder's id swapped, up to the last position read: the answer slot
    # (the last token) is predicted from what comes before it and is never itself an input
    want = [seq[: max(answer)] for seq, answer in token_prompts(ps, partial)]
    assert all(seq[-1] == partial for seq, _ in token_prompts(ps, partial))
    assert sorted(lm.model.seen_prompts) == sorted(want)
    row = res.frame.row(0, named=True)
    assert row["token_id"] == partial and row["roundtrip"] is False  # its bytes alone are not text
    assert row["max_prob"] > VERIFY_THRESHOLD and not row["verified"]  # the copy model copies it anyway
    # the greedy answer of the echo prompt: for the copy model, a token of that prompt (all tie at +10)
    assert row["output_echo"] in {emb.tokens.displays[t] for t in want[ps.names.index("echo")]}


def test_verdicts_and_precision_with_a_copy_model(real_lm, emb, ranking):
    normal_by_score = ranking.frame.filter(pl.col("kind") == "normal")["token_id"].to_list()
    untrained = set(normal_by_score[:5])
    lm = _copy_lm(real_lm, untrained)
    res = verify(lm, ranking, embeddings=emb, metrics=["score", "norm"], top=10, random_sample=20, seed=1)
    f = res.frame
    verified = set(f.filter(pl.col("verified"))["token_id"].to_list())
    assert verified == untrained
    assert f.filter(pl.col("verified"))["max_prob"].max() < 1e-5
    assert f.filter(~pl.col("verified"))["max_prob"].min() > 0.02
    s = res.summary
    n_random_verified = int(f.filter(pl.col("random_sample"))["verified"].sum())  # the base rate, counted here
    expected_lift = round(0.5 / (n_random_verified / 20), 4) if n_random_verified else None
    assert s["precision"]["score"] == {"n": 10, "verified": 5, "precision": 0.5, "lift": expected_lift}
    norm_top = set(f.filter(pl.col("top_of").str.contains("norm"))["token_id"].to_list())
    assert s["precision"]["norm"]["verified"] == len(norm_top & untrained)
    rnd = f.filter(pl.col("random_sample"))
    assert s["base_rate"]["n"] == rnd.height == 20
    assert s["base_rate"]["verified"] == rnd["verified"].sum()
    assert s["n_verified"] == 5 and s["threshold"] == VERIFY_THRESHOLD
    assert {"prob_echo", "prob_meaning", "prob_repeat", "best_template", "score_rank", "norm_rank"} <= set(f.columns)
    assert s["scoring"]["method"] == "teacher forcing"
    assert s["scoring"]["positions_per_template"] == {"echo": 3, "meaning": 1, "repeat": 3}


def test_verify_on_the_tiny_model_writes_outputs(real_lm, emb, ranking, tmp_path):
    res = verify(real_lm, ranking, embeddings=emb, top=3, random_sample=4, out_dir=tmp_path / "v")
    assert sorted(p.name for p in (tmp_path / "v").iterdir()) == ["meta.json", "verified.csv", "verify.json"]
    back = pl.read_csv(tmp_path / "v" / "verified.csv", schema_overrides={"bytes_hex": pl.String})
    assert back.height == res.frame.height and back["verified"].to_list() == res.frame["verified"].to_list()
    assert ((back["max_prob"] < VERIFY_THRESHOLD) == back["verified"]).all()
    summary = json.loads((tmp_path / "v" / "verify.json").read_text())
    assert set(summary["precision"]) == set(res.summary["precision"]) and summary["placeholder"]["token_id"] >= 0
    meta = json.loads((tmp_path / "v" / "meta.json").read_text())
    assert meta["command"] == "anomtok.verify" and meta["model"]["files"]
    # the same probabilities as scoring the candidates directly
    direct = score_tokens(real_lm, res.frame["token_id"].to_list(), tokens=emb.tokens)
    np.testing.assert_allclose(res.frame["max_prob"].to_numpy(), direct.p, rtol=1e-6)


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"threshold": 0.0}, "threshold"),
        ({"threshold": 1.5}, "threshold"),
        ({"top": 0}, "top"),
        ({"random_sample": -1}, "random_sample"),
        ({"n_positions": 0}, "n_positions"),
        ({"batch_size": 0}, "batch_size"),
        ({"metrics": ["bogus"]}, "metric"),
        ({"token_ids": [10**6]}, "not a token"),
    ],
)
def test_bad_arguments(real_lm, emb, ranking, kw, match):
    with pytest.raises(InputError, match=match):
        verify(real_lm, ranking, embeddings=emb, **kw)


def test_verify_cli(tiny_model, tmp_path):
    r = CliRunner().invoke(
        cli,
        [
            "verify",
            str(tiny_model.hf_dir),
            "-o",
            str(tmp_path / "v"),
            "--top",
            "2",
            "--random",
            "2",
            "--metric",
            "score",
            "--device",
            "cpu",
        ],
    )
    assert r.exit_code == 0, r.output
    saved = pl.read_csv(tmp_path / "v" / "verified.csv")
    summary = json.loads((tmp_path / "v" / "verify.json").read_text())
    # what is printed is what was written: the score's precision line shows the saved counts
    prec = summary["precision"]["score"]
    assert prec["n"] == saved.filter(pl.col("top_of").str.contains("score")).height
    assert f"{prec['verified']}/{prec['n']}" in r.stdout, r.stdout
    assert json.loads((tmp_path / "v" / "verify.json").read_text())["scoring"]["settle"] is False
    fast = CliRunner().invoke(
        cli,
        [
            "verify",
            str(tiny_model.hf_dir),
            "-o",
            str(tmp_path / "s"),
            "--top",
            "2",
            "--random",
            "2",
            "--metric",
            "score",
            "--device",
            "cpu",
            "--settle",
            "--batch-size",
            "3",
        ],
    )
    assert fast.exit_code == 0, fast.output
    summary = json.loads((tmp_path / "s" / "verify.json").read_text())
    assert summary["scoring"]["settle"] is True and summary["scoring"]["batch_size"] == 3
    bad = CliRunner().invoke(cli, ["verify", str(tiny_model.hf_dir), "-o", str(tmp_path / "w"), "--threshold", "2"])
    assert bad.exit_code == 2 and "threshold" in bad.stderr


def test_reference_tokens_are_never_candidates_and_get_a_sanity_row(real_lm, emb, ranking):
    """Issue 9.4: with the top normal tokens in the reference set (as SmolLM2's fallback seeds
    are), the metric tops and the base rate hold no reference token; the sanity row holds only
    reference tokens and reports their verification apart."""
    f = ranking.frame
    top_normal = f.filter(pl.col("kind") == "normal").sort("rank")["token_id"].head(6).to_list()
    frame = f.with_columns(is_reference=pl.col("is_reference") | pl.col("token_id").is_in(top_normal))
    refs = set(frame.filter(pl.col("is_reference") & (pl.col("token_id") < real_lm.n_vocab))["token_id"].to_list())
    lm = _copy_lm(real_lm, set(top_normal))  # the model cannot repeat the reference tokens
    res = verify(lm, frame, embeddings=emb, metrics=["score", "norm"], top=5, random_sample=200, seed=3)
    out = res.frame
    cand = out.filter((pl.col("top_of") != "") | pl.col("random_sample"))
    assert not set(cand["token_id"].to_list()) & refs and not cand["is_reference"].any()
    assert cand.filter(pl.col("top_of").str.contains("score")).height == 5
    assert out.filter(pl.col("random_sample")).height == 200  # a large sample, still no reference token
    sanity = out.filter(pl.col("reference_sample"))
    assert sanity.height == min(5, len(refs)) and set(sanity["token_id"].to_list()) <= refs
    assert sanity["is_reference"].all()
    s = res.summary["reference"]
    assert s["n"] == sanity.height and s["verified"] == sanity["verified"].sum()
    assert s["verified"] == len(set(sanity["token_id"].to_list()) & set(top_normal))
    assert res.summary["precision"]["score"]["n"] == 5


def test_the_seed_fixes_the_base_rate_sample(real_lm, emb, ranking):
    lm = _copy_lm(real_lm, set())
    run = lambda seed: verify(lm, ranking, embeddings=emb, metrics=["score"], top=3, random_sample=25, seed=seed)  # noqa: E731
    a, b, c = run(11), run(11), run(12)
    sample = lambda r: r.frame.filter(pl.col("random_sample"))["token_id"].sort().to_list()  # noqa: E731
    assert sample(a) == sample(b) and a.frame.equals(b.frame) and a.summary["base_rate"] == b.summary["base_rate"]
    assert sample(a) != sample(c) and len(sample(c)) == 25
    kinds = dict(zip(ranking.frame["token_id"].to_list(), ranking.frame["kind"].to_list()))
    assert {kinds[t] for t in sample(a) + sample(c)} == {"normal"}


def test_the_callers_tokenizer_is_left_alone(real_lm, emb, ranking):
    tok = real_lm.tokenizer

    def state():
        return (
            tok.backend_tokenizer.to_str(),
            tok.padding_side,
            tok.truncation_side,
            tok.pad_token,
            tok.model_max_length,
            len(tok),
            dict(tok.special_tokens_map),
        )

    before = state()
    verify(real_lm, ranking, embeddings=emb, metrics=["score"], top=2, random_sample=2)
    score_tokens(real_lm, [5, 6])
    assert state() == before


# ------------------------------------------------------------------ a real model
@pytest.mark.real
def test_smollm2_repeats_ordinary_words_and_batched_equals_one_at_a_time(tmp_path_factory, monkeypatch):
    from anomtok.errors import LoadError
    from anomtok.loading.packaged import resolve_alias

    try:
        resolve_alias("smollm2-135m")
    except LoadError as exc:
        pytest.skip(str(exc))
    monkeypatch.setenv("ANOMTOK_CACHE", str(tmp_path_factory.mktemp("real-verify-cache")))
    lm = load_causal_lm("smollm2-135m", device="cpu")
    ps = make_prompt_set(lm)
    words = [lm.encode(w, add_special_tokens=False) for w in [" house", " water", " the", " because"]]
    ids = [w[0] for w in words if len(w) == 1]
    assert len(ids) >= 3
    batched = score_tokens(lm, ids, prompts=ps, batch_size=8)
    ref = score_tokens_one_by_one(lm, ids, prompts=ps)
    assert not batched.verified.any() and batched.p.min() > 0.3  # a trained model repeats its ordinary words
    np.testing.assert_allclose(batched.logp, ref.logp, rtol=0, atol=1e-4)  # log p; float32 rounding over 30 layers
    assert (batched.top_ids == ref.top_ids).all()
