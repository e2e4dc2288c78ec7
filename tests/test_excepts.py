"""Issue 9.11: no broad ``except`` hides a failure. Each fallback is taken only for the errors the
called code really raises, and says so at WARNING with its reason; anything else (a bug)
propagates. A tokenizer the caller passes in is never modified."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

import anomtok
from anomtok.cli import cli
from anomtok.errors import InputError

VOCAB, HIDDEN = 24, 8


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


# ------------------------------------------------------------------------------ the caller's tokenizer
def _padding_tokenizer(custom: bool):
    """A word-level tokenizer that pads to 8 ids and truncates at 3, with a custom (Python,
    unserialisable) pre-tokenizer when ``custom``; and its token table."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from tokenizers.pre_tokenizers import PreTokenizer

    from anomtok.audit.source import load_tokenizer

    tok = Tokenizer(models.WordLevel({"[UNK]": 0, "a": 1, "b": 2, "zz": 3}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.add_special_tokens(["<pad>"])
    table = load_tokenizer(tok).table

    class SplitOnSpace:
        def pre_tokenize(self, pretok):
            pretok.split(lambda i, s: s.split(" ", "removed"))

    if custom:
        tok.pre_tokenizer = PreTokenizer.custom(SplitOnSpace())
    tok.enable_padding(length=8, pad_id=4, pad_token="<pad>")
    tok.enable_truncation(3)
    return tok, table


def _state(tok) -> tuple:
    return tok.padding, tok.truncation, tok.encode("a b a b zz").ids


@pytest.mark.parametrize("custom", [False, True], ids=["serialisable", "custom-component"])
def test_detector_and_audit_leave_the_callers_tokenizer_alone(custom, caplog):
    from anomtok.audit import audit
    from anomtok.detect import GlitchDetector

    tok, table = _padding_tokenizer(custom)
    before = _state(tok)
    assert before[2] == [1, 2, 1, 4, 4, 4, 4, 4]  # truncated to 3, padded to 8
    with caplog.at_level(logging.WARNING):
        det = GlitchDetector((tok, table), [3])
        hits = det.scan("a b a b zz")
        result = audit((tok, table), ranking=False)
    assert [(h.token_id, h.index) for h in hits] == [(3, 4)]  # past the caller's truncation: the copy has none
    assert result.summary
    assert _state(tok) == before
    assert det.tokenizer is not tok
    copies = [m for m in _warnings(caplog) if "cannot be serialised" in m]
    assert bool(copies) == custom and all("Custom PreTokenizer" in m for m in copies)


def test_uncopyable_tokenizer_whose_added_tokens_would_move_is_refused_not_changed():
    """The last resort of the copy (custom components: no JSON form) refuses when it cannot
    reproduce the tokenizer, rather than turn off the caller's padding and truncation."""
    from tokenizers import Tokenizer, models
    from tokenizers.pre_tokenizers import PreTokenizer

    from anomtok.audit.source import load_tokenizer
    from anomtok.detect import GlitchDetector

    class Whole:
        def pre_tokenize(self, pretok):
            pass

    tok = Tokenizer(models.WordLevel({"[UNK]": 0, "a": 1}, unk_token="[UNK]"))
    tok.add_tokens(["x", "y"])  # ids 2, 3
    tok.model = models.WordLevel({"[UNK]": 0, "a": 1, "b": 2, "c": 3}, unk_token="[UNK]")  # re-added, "x" would be 4
    table = load_tokenizer(tok).table
    tok.pre_tokenizer = PreTokenizer.custom(Whole())
    tok.enable_truncation(5)
    with pytest.raises(InputError, match="turn padding and truncation off"):
        GlitchDetector((tok, table), [1])
    assert tok.truncation is not None


# ------------------------------------------------------------------------------ hf_loader
def _copy_json(src: Path, dst: Path) -> None:
    for f in src.glob("*.json"):
        shutil.copy(f, dst / f.name)


def test_legacy_torch_checkpoint_is_read_whole_with_a_warning(tiny_model, tmp_path, caplog):
    state = load_file(tiny_model.hf_dir / "model.safetensors")
    torch.save(state, tmp_path / "pytorch_model.bin", _use_new_zipfile_serialization=False)
    _copy_json(tiny_model.hf_dir, tmp_path)
    with caplog.at_level(logging.WARNING):
        got = anomtok.load(tmp_path)
    assert torch.equal(got.input, anomtok.load(tiny_model.hf_dir).input)
    assert any("legacy format" in m and "pytorch_model.bin" in m for m in _warnings(caplog))


@pytest.mark.parametrize("index", ["pytorch_model.bin.index.json", "model.safetensors.index.json"])
def test_corrupt_shard_index_is_one_line_exit_2(tmp_path, index):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / index).write_text('{"weight_map": ["not", "a", "map"]}')
    res = CliRunner().invoke(cli, ["rank", str(tmp_path / "m"), "-o", str(tmp_path / "out")])
    assert res.exit_code == 2, res.output
    assert res.stderr.startswith("anomtok: error:") and index in res.stderr and "unreadable index" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def _ambiguous_folder(folder: Path, config: dict) -> Path:
    """An embedding of 24 rows where config.json says ``vocab_size`` 20 (padded rows): not
    settled by the safetensors headers alone, so transformers' config and skeleton are asked."""
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"vocab_size": 20, **config}))
    save_file({"model.embed_tokens.weight": torch.randn(VOCAB, HIDDEN)}, str(folder / "model.safetensors"))
    return folder


@pytest.mark.parametrize(
    "config, reason",
    [
        ({"model_type": "no_such_model_type"}, "ValueError"),
        ({"model_type": "llama", "hidden_size": 7, "num_attention_heads": 2}, "StrictDataclass"),
    ],
)
def test_config_transformers_cannot_read_falls_back_with_a_warning(tmp_path, caplog, config, reason):
    folder = _ambiguous_folder(tmp_path / "m", config)
    with caplog.at_level(logging.WARNING):
        emb = anomtok.load(folder)
    assert emb.provenance.input_tensor == "model.embed_tokens.weight"
    assert "heuristics" in emb.provenance.method
    assert any("config.json: transformers cannot read it" in m and reason in m for m in _warnings(caplog))


def test_skeleton_failures_fall_back_with_a_warning_naming_each(tmp_path, caplog):
    # ModernBERT's default pad_token_id (50283) is past a vocabulary of 20: every model class refuses it
    folder = _ambiguous_folder(tmp_path / "m", {"model_type": "modernbert", "architectures": ["ModernBertForMaskedLM"]})
    with caplog.at_level(logging.WARNING):
        emb = anomtok.load(folder)
    assert "heuristics" in emb.provenance.method
    (msg,) = [m for m in _warnings(caplog) if "no model skeleton" in m]
    assert "ModernBertForMaskedLM: AssertionError" in msg and "AutoModelForCausalLM: ValueError" in msg


def test_a_bug_inside_the_fallback_is_not_swallowed(tmp_path, monkeypatch):
    import transformers

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug, not a bad config")

    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", broken)
    folder = _ambiguous_folder(tmp_path / "m", {"model_type": "llama"})
    with pytest.raises(ZeroDivisionError):
        anomtok.load(folder)


# ------------------------------------------------------------------------------ hub
def test_hub_download_of_all_shards_is_a_warning_with_its_reason(tmp_path, monkeypatch, caplog):
    import huggingface_hub

    snap = tmp_path / "snap"
    snap.mkdir()
    (snap / "config.json").write_text(json.dumps({"model_type": "no_such_model_type"}))
    shards = {
        "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
        "lm_head.weight": "model-00002-of-00002.safetensors",
    }
    (snap / "model.safetensors.index.json").write_text(json.dumps({"weight_map": shards}))
    fetched: list[str] = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda *a, **k: str(snap))
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda repo, name, **k: fetched.append(name))
    from anomtok.loading.hub import download_embedding_files

    with caplog.at_level(logging.WARNING):
        assert download_embedding_files("org/model") == snap
    assert sorted(fetched) == sorted(shards.values())
    (msg,) = [m for m in _warnings(caplog) if "downloading all 2 shards" in m]
    assert "org/model" in msg and "no_such_model_type" in msg


# ------------------------------------------------------------------------------ report, scan
@pytest.fixture()
def ranked_dir(tiny_model, tmp_path):
    out = tmp_path / "run"
    anomtok.rank(tiny_model.hf_dir, out_dir=out)
    return out


def test_unreadable_verification_table_is_a_warning(ranked_dir, caplog):
    from anomtok.report import render_report

    (ranked_dir / "verify").mkdir()
    (ranked_dir / "verify" / "verified.csv").write_text("token_id,max_prob\n1,0.5,7,8\n")  # ragged
    with caplog.at_level(logging.WARNING):
        text, glitch = render_report(ranked_dir)
    assert "max_prob" not in glitch.columns and text
    (msg,) = [m for m in _warnings(caplog) if "verified.csv" in m]
    assert "unreadable (ComputeError" in msg and "no verification columns" in msg


@pytest.mark.parametrize(
    "content, reason",
    [("token_id\nnot-a-number\n", "ComputeError"), ("text\nhello\n", "ColumnNotFoundError"), ("", "NoDataError")],
)
def test_damaged_negtemp_tokens_only_lose_the_marks(tmp_path, caplog, content, reason):
    from anomtok.scan import _negtemp_ids

    (tmp_path / "negtemp").mkdir()
    (tmp_path / "negtemp" / "negtemp_tokens.csv").write_text(content)
    with caplog.at_level(logging.WARNING):
        assert _negtemp_ids(tmp_path) == []
    (msg,) = [m for m in _warnings(caplog) if "negtemp_tokens.csv" in m]
    assert reason in msg
    (tmp_path / "negtemp" / "negtemp_tokens.csv").write_text("token_id,count\n7,2\n3,1\n")
    assert _negtemp_ids(tmp_path) == [7, 3]
