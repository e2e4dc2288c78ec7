"""Verification by prompting: prompt building by id substitution, verdicts, precision, outputs.

The tiny trained Llama is too small to copy in context, so the verdict logic is tested with a
stand-in "copy" model whose answer is known: it gives every token present in its context a high
logit, except a chosen set of "untrained" ids which it can never produce.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import polars as pl
import pytest
import torch
from click.testing import CliRunner

import anomtok
from anomtok.cli import cli
from anomtok.errors import InputError
from anomtok.generation.model import CausalLM, load_causal_lm
from anomtok.verify import PLACEHOLDER, TEMPLATES, VERIFY_THRESHOLD, build_prompts, find_placeholder, verify


class CopyNet(torch.nn.Module):
    """Logit +10 for every token id in the context, -5 for the others and for ``untrained``.
    Its "KV cache" is the token history itself; every prompt it sees is recorded."""

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

    def forward(self, input_ids, attention_mask=None, position_ids=None, past_key_values=None, use_cache=True,
                logits_to_keep=0):
        if past_key_values is None:
            ids = [[t for t, m in zip(row, mrow) if m] for row, mrow in zip(input_ids.tolist(), attention_mask.tolist())]
            self.seen_prompts.extend(ids)
        else:
            ids = [h + [t] for h, t in zip(past_key_values, input_ids[:, -1].tolist())]
        logits = torch.full((len(ids), self.head.weight.shape[0]), -5.0)
        for r, h in enumerate(ids):
            logits[r, h] = 10.0
        logits[:, self.untrained] = -5.0
        return SimpleNamespace(logits=logits[:, None, :], past_key_values=ids)


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
    return CausalLM(model=net, tokenizer=real_lm.tokenizer, source=real_lm.source, format="folder",
                    device=torch.device("cpu"), dtype=torch.float32, n_vocab=real_lm.n_vocab, eos_ids=(1,), pad_id=2)


def test_placeholder_survives_every_template(real_lm, emb):
    pid, text, built = find_placeholder(real_lm, emb.tokens)
    assert emb.tokens.kinds[pid] == "normal" and text.strip().isalpha()
    for (_, tmpl), ids in zip(TEMPLATES, built):
        assert ids.count(pid) == tmpl.count(PLACEHOLDER)
        assert ids == real_lm.encode(tmpl.replace(PLACEHOLDER, text))
    assert build_prompts(real_lm.encode, "x", 10**6) is None  # a placeholder that never appears


def test_candidates_are_substituted_by_id_never_re_encoded(real_lm, emb, ranking):
    partial = next(i for i in range(real_lm.n_vocab) if emb.tokens.partial[i] and emb.tokens.kinds[i] == "normal")
    lm = _copy_lm(real_lm, set())
    res = verify(lm, ranking, embeddings=emb, token_ids=[partial], random_sample=0)
    pid, _, built = find_placeholder(real_lm, emb.tokens)
    want = [[partial if t == pid else t for t in ids] for ids in built]
    assert sorted(lm.model.seen_prompts) == sorted(want)  # the template ids, the placeholder's id swapped
    row = res.frame.row(0, named=True)
    assert row["token_id"] == partial and row["roundtrip"] is False  # its bytes alone are not text
    assert row["max_prob"] > VERIFY_THRESHOLD and not row["verified"]  # the copy model copies it anyway


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
    assert s["precision"]["score"] == {"n": 10, "verified": 5, "precision": 0.5,
                                       "lift": s["precision"]["score"]["lift"]}
    norm_top = set(f.filter(pl.col("top_of").str.contains("norm"))["token_id"].to_list())
    assert s["precision"]["norm"]["verified"] == len(norm_top & untrained)
    rnd = f.filter(pl.col("random_sample"))
    assert s["base_rate"]["n"] == rnd.height == 20
    assert s["base_rate"]["verified"] == rnd["verified"].sum()
    assert s["n_verified"] == 5 and s["threshold"] == VERIFY_THRESHOLD
    assert {"prob_echo", "prob_meaning", "prob_repeat", "score_rank", "norm_rank"} <= set(f.columns)


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


@pytest.mark.parametrize("kw, match", [
    ({"threshold": 0.0}, "threshold"), ({"threshold": 1.5}, "threshold"), ({"top": 0}, "top"),
    ({"random_sample": -1}, "random_sample"), ({"n_positions": 0}, "n_positions"),
    ({"metrics": ["bogus"]}, "metric"), ({"token_ids": [10**6]}, "not a token"),
])
def test_bad_arguments(real_lm, emb, ranking, kw, match):
    with pytest.raises(InputError, match=match):
        verify(real_lm, ranking, embeddings=emb, **kw)


def test_verify_cli(tiny_model, tmp_path):
    r = CliRunner().invoke(cli, ["verify", str(tiny_model.hf_dir), "-o", str(tmp_path / "v"), "--top", "2",
                                 "--random", "2", "--metric", "score", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert "precision" in r.stdout and (tmp_path / "v" / "verified.csv").exists()
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
    res = verify(lm, frame, embeddings=emb, metrics=["score", "norm"], top=5, random_sample=30, seed=3)
    out = res.frame
    cand = out.filter((pl.col("top_of") != "") | pl.col("random_sample"))
    assert not set(cand["token_id"].to_list()) & refs
    assert cand.filter(pl.col("top_of").str.contains("score")).height == 5
    sanity = out.filter(pl.col("reference_sample"))
    assert sanity.height == min(5, len(refs)) and set(sanity["token_id"].to_list()) <= refs
    s = res.summary["reference"]
    assert s["n"] == sanity.height and s["verified"] == sanity["verified"].sum()
    assert s["verified"] == len(set(sanity["token_id"].to_list()) & set(top_normal))
    assert res.summary["precision"]["score"]["n"] == 5
