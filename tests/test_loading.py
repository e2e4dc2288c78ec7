"""Every loader on the same tiny trained model gives the same matrices, tokens and ranking;
bad input gives LoadError with a one-line reason."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import anomtok
from anomtok.errors import InputError, LoadError


def _same(a: anomtok.ModelEmbeddings, b: anomtok.ModelEmbeddings) -> None:
    assert a.shape == b.shape
    assert torch.equal(a.input, b.input)
    assert (a.output is None) == (b.output is None)
    if a.output is not None:
        assert torch.equal(a.output, b.output)
    assert a.tokens.bytes == b.tokens.bytes
    assert a.tokens.kinds == b.tokens.kinds


@pytest.fixture(scope="module")
def loaded(tiny_model):
    return {"folder": anomtok.load(tiny_model.hf_dir), "gguf": anomtok.load(tiny_model.gguf_path)}


def test_folder_and_gguf_agree(tiny_model, loaded):
    f, g = loaded["folder"], loaded["gguf"]
    assert f.shape == (tiny_model.embedding_rows, tiny_model.hidden_size)
    assert f.tied and g.tied
    _same(f, g)
    assert f.provenance.format == "safetensors" and g.provenance.format == "gguf"
    assert f.provenance.input_tensor == "model.embed_tokens.weight"
    assert g.provenance.input_tensor == "token_embd.weight"
    assert all(
        fi.sha256 is None and fi.fingerprint.startswith("fp1:") for fi in f.provenance.files + g.provenance.files
    )


def test_load_never_reads_a_file_whole_unless_asked(tiny_model, tmp_path, monkeypatch):
    """Issue 9.8: the default identity of a file is a cheap fingerprint; sha256 only on request."""
    import anomtok.cache as cache

    def no_full_hash(path):
        raise AssertionError(f"load() hashed {path} in full")

    monkeypatch.setattr(cache, "file_sha256", no_full_hash)
    emb = anomtok.load(tiny_model.gguf_path)
    (fi,) = emb.provenance.files
    assert fi.fingerprint == cache.file_fingerprint(tiny_model.gguf_path) and fi.mtime_ns > 0
    monkeypatch.undo()
    full = anomtok.load(tiny_model.gguf_path, hash_files=True).provenance.files[0]
    assert len(full.sha256) == 64 and full.fingerprint == fi.fingerprint


def test_fingerprint_reads_two_mib_and_sees_changes(tmp_path, monkeypatch):
    import os

    import anomtok.cache as cache

    big = tmp_path / "big.bin"
    with big.open("wb") as f:
        f.write(b"h" * 4096)
        f.seek(50 * 2**20)
        f.write(b"t" * 4096)
    reads = []
    real_open = type(big).open

    def counting_open(self, *a, **k):
        fh = real_open(self, *a, **k)
        real_read = fh.read
        fh.read = lambda n=-1: reads.append(len(out := real_read(n))) or out
        return fh

    monkeypatch.setattr(type(big), "open", counting_open)
    fp = cache.file_fingerprint(big)
    monkeypatch.undo()
    assert sum(reads) <= 2 * cache.FINGERPRINT_SPAN < big.stat().st_size
    st = big.stat()
    with big.open("r+b") as f:
        f.write(b"H")  # the header changes, mtime restored: still seen
    os.utime(big, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert cache.file_fingerprint(big) != fp
    fp2 = cache.file_fingerprint(big)
    os.utime(big, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # only touched: a new identity
    assert cache.file_fingerprint(big) != fp2


def test_padding_rows_are_kept_and_marked(tiny_model, loaded):
    kinds = loaded["folder"].tokens.kinds
    assert len(kinds) == tiny_model.embedding_rows
    assert [i for i, k in enumerate(kinds) if k == "padding"] == list(tiny_model.padding_ids)
    assert [i for i, k in enumerate(kinds) if k == "unused"] == list(tiny_model.unused_ids)


def test_rankings_identical_across_loaders(loaded):
    opts = anomtok.RankOptions(nn="exact")
    a = anomtok.rank(loaded["folder"], options=opts).frame
    b = anomtok.rank(loaded["gguf"], options=opts).frame
    assert a["token_id"].to_list() == b["token_id"].to_list()
    np.testing.assert_allclose(a["score"].to_numpy(), b["score"].to_numpy(), rtol=0, atol=1e-6)


def test_single_safetensors_file(tiny_model, loaded):
    _same(anomtok.load(tiny_model.hf_dir / "model.safetensors"), loaded["folder"])


def test_sharded_folder_reads_only_the_embedding_shard(tiny_model, loaded, tmp_path):
    state = load_file(tiny_model.hf_dir / "model.safetensors")
    names = sorted(state)
    emb_name = "model.embed_tokens.weight"
    rest = [n for n in names if n != emb_name]
    save_file({emb_name: state[emb_name]}, tmp_path / "model-00002-of-00002.safetensors")
    save_file({n: state[n] for n in rest}, tmp_path / "model-00001-of-00002.safetensors")
    index = {
        "metadata": {},
        "weight_map": {n: "model-00001-of-00002.safetensors" for n in rest}
        | {emb_name: "model-00002-of-00002.safetensors"},
    }
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    for f in tiny_model.hf_dir.iterdir():
        if f.suffix == ".json":
            shutil.copy(f, tmp_path / f.name)
    got = anomtok.load(tmp_path)
    _same(got, loaded["folder"])
    assert [Path(fi.path).name for fi in got.provenance.files] == ["model-00002-of-00002.safetensors"]


def test_pytorch_bin_is_read_weights_only(tiny_model, loaded, tmp_path):
    state = load_file(tiny_model.hf_dir / "model.safetensors")
    torch.save(state, tmp_path / "pytorch_model.bin")
    for f in tiny_model.hf_dir.glob("*.json"):
        shutil.copy(f, tmp_path / f.name)
    got = anomtok.load(tmp_path)
    _same(got, loaded["folder"])
    assert got.provenance.format == "pytorch-bin"


def test_malicious_pickle_is_refused(tiny_model, tmp_path):
    class Evil:
        def __reduce__(self):
            return (Path.touch, (tmp_path / "pwned",))

    torch.save({"model.embed_tokens.weight": Evil()}, tmp_path / "pytorch_model.bin")
    for f in tiny_model.hf_dir.glob("*.json"):
        shutil.copy(f, tmp_path / f.name)
    with pytest.raises(LoadError, match="weights_only"):
        anomtok.load(tmp_path)
    assert not (tmp_path / "pwned").exists()


def test_untied_model_has_output_matrix(tiny_model_untied):
    f = anomtok.load(tiny_model_untied.hf_dir)
    g = anomtok.load(tiny_model_untied.gguf_path)
    assert not f.tied and f.output.shape == f.input.shape
    assert f.provenance.output_tensor == "lm_head.weight"
    assert g.provenance.output_tensor == "output.weight"
    _same(f, g)


# ------------------------------------------------------------------------------ bad input
def test_missing_path():
    with pytest.raises(LoadError, match="no such file"):
        anomtok.load("/nonexistent/model.gguf")


def test_folder_without_weights(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(LoadError, match="no model weights"):
        anomtok.load(tmp_path)


def test_unknown_format(tmp_path):
    p = tmp_path / "weights.xyz"
    p.write_bytes(b"not a model at all")
    with pytest.raises(LoadError, match="unknown format"):
        anomtok.load(p)


@pytest.mark.parametrize("keep", [4, 100, 0.5])
def test_truncated_safetensors(tiny_model, tmp_path, keep):
    data = (tiny_model.hf_dir / "model.safetensors").read_bytes()
    n = int(len(data) * keep) if isinstance(keep, float) else keep
    for f in tiny_model.hf_dir.glob("*.json"):
        shutil.copy(f, tmp_path / f.name)
    (tmp_path / "model.safetensors").write_bytes(data[:n])
    with pytest.raises(LoadError, match="safetensors"):
        anomtok.load(tmp_path)


@pytest.mark.parametrize("frac", [0.001, 0.3, 0.999])
def test_truncated_gguf(tiny_model, tmp_path, frac):
    data = tiny_model.gguf_path.read_bytes()
    p = tmp_path / "t.gguf"
    p.write_bytes(data[: int(len(data) * frac)])
    with pytest.raises(LoadError):
        anomtok.load(p)


def test_corrupt_gguf_magic(tiny_model, tmp_path):
    data = bytearray(tiny_model.gguf_path.read_bytes())
    data[:4] = b"GGXF"
    p = tmp_path / "t.gguf"
    p.write_bytes(bytes(data))
    with pytest.raises(LoadError):
        anomtok.load(p)


def test_gguf_without_token_embd(tmp_path):
    import gguf

    p = tmp_path / "noembd.gguf"
    w = gguf.GGUFWriter(str(p), "llama")
    w.add_token_list(["a", "b"])
    w.add_tensor("output_norm.weight", np.ones(4, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(LoadError, match="token_embd"):
        anomtok.load(p)


def test_hub_id_while_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(LoadError, match="offline|cannot be reached|hub"):
        anomtok.load("some-org/some-model-that-is-not-cached")


def test_vocab_larger_than_embedding(tiny_model, tmp_path):
    state = load_file(tiny_model.hf_dir / "model.safetensors")
    state["model.embed_tokens.weight"] = state["model.embed_tokens.weight"][:100].clone()
    for f in tiny_model.hf_dir.glob("*.json"):
        shutil.copy(f, tmp_path / f.name)
    save_file(state, tmp_path / "model.safetensors")
    with pytest.raises(LoadError, match="mismatch"):
        anomtok.load(tmp_path)


def test_tokenizer_only_source_is_refused_for_ranking(tiny_model):
    with pytest.raises(LoadError, match="tokenizer only"):
        anomtok.load(tiny_model.hf_dir / "tokenizer.json")


def test_nan_rows_are_reported_and_ranked_first(loaded):
    emb = loaded["folder"]
    E = emb.input.clone()
    E[5] = float("nan")
    E[7] = 0.0
    E[9, 3] = float("inf")
    bad = anomtok.ModelEmbeddings(input=E, output=None, tokens=emb.tokens, provenance=emb.provenance)
    r = anomtok.rank(bad, options=anomtok.RankOptions(nn="off"))
    assert r.meta["invalid_rows"] == {"count": 3, "ids": [5, 7, 9]}
    assert r.frame["token_id"].head(3).to_list() == [5, 7, 9]
    good = anomtok.rank(emb, options=anomtok.RankOptions(nn="off"))
    # the broken rows stay out of the centroid: the other rows' distances barely move
    ids = [i for i in range(20) if i not in (5, 7, 9)]
    a = good.frame.sort("token_id")["centroid_cos"].to_numpy()[ids]
    b = r.frame.sort("token_id")["centroid_cos"].to_numpy()[ids]
    assert np.all(np.isfinite(b)) and np.max(np.abs(a - b)) < 0.05


def test_all_rows_invalid_is_an_error(loaded):
    emb = loaded["folder"]
    E = torch.full_like(emb.input, float("nan"))
    bad = anomtok.ModelEmbeddings(input=E, output=None, tokens=emb.tokens, provenance=emb.provenance)
    with pytest.raises(InputError, match="usable rows"):
        anomtok.rank(bad)
