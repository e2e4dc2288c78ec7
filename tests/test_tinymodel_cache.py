"""The tiny-model cache of tests/tinymodel.py (issue 12.7): a build is reused across sessions only
when nothing it depends on changed, a reused model is byte-identical to a fresh build, and neither a
damaged entry nor a test that writes into its copy can change what the next session gets."""

from __future__ import annotations

import os

import pytest

try:  # tests/ as a package or as a plain rootdir folder
    from . import tinymodel
except ImportError:
    import tinymodel

SHORT = {"tied": False, "n_unused": 4, "steps": 2}


def _files(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_cached_model_is_the_build_it_kept(tmp_path, monkeypatch):
    """Built into the cache, then reused without training: the same files byte for byte and the
    same ground truth, with paths into the new folder. (That a build is a function of its key,
    same seed, same bytes, is test_tinymodel.py's test_builder_is_deterministic...)"""
    root = tmp_path / "cache"
    first = tinymodel.cached_tiny_model(tmp_path / "a", root, **SHORT)
    assert not first.cached and len(list(root.iterdir())) == 1  # one entry, no temporary left

    monkeypatch.setattr(tinymodel, "build_tiny_model", lambda *a, **k: pytest.fail("rebuilt"))
    again = tinymodel.cached_tiny_model(tmp_path / "b", root, **SHORT)
    assert again.cached and _files(tmp_path / "b") == _files(tmp_path / "a")
    fields = {f: getattr(first, f) for f in tinymodel.TinyModel.__dataclass_fields__ if f != "cached"}
    for name, value in fields.items():
        if name in tinymodel._PATH_FIELDS:
            assert getattr(again, name) == tmp_path / "b" / value.relative_to(tmp_path / "a"), name
        else:
            assert getattr(again, name) == value and type(getattr(again, name)) is type(value), name


def _fake_build(calls):
    def build(out_dir, **kwargs):
        calls.append(kwargs)
        (out_dir / "hf").mkdir(parents=True)
        (out_dir / "hf" / "model.safetensors").write_bytes(b"weights")
        paths = {name: out_dir / "hf" for name in tinymodel._PATH_FIELDS}
        return tinymodel.TinyModel(
            **paths,
            tied=True,
            vocab_size=1,
            embedding_rows=64,
            unused_ids=(),
            unseen_ids=(),
            seen_ids=(0,),
            special_ids={},
            counts={0: 3},
            loss_start=1.0,
            loss_end=0.5,
        )

    return build


def test_the_key_covers_the_arguments_and_the_source(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(tinymodel, "build_tiny_model", _fake_build(calls))
    root = tmp_path / "cache"
    tinymodel.cached_tiny_model(tmp_path / "a", root, tied=True, seed=0)
    tinymodel.cached_tiny_model(tmp_path / "b", root, tied=True, seed=0)
    tinymodel.cached_tiny_model(tmp_path / "c", root, tied=True, seed=1)
    tinymodel.cached_tiny_model(tmp_path / "d", root, tied=False, seed=0)
    assert calls == [{"tied": True, "seed": 0}, {"tied": True, "seed": 1}, {"tied": False, "seed": 0}]
    key = tinymodel.cache_key(tied=True, seed=0)
    monkeypatch.setattr(tinymodel.Path, "read_bytes", lambda self: b"# another version of tinymodel.py")
    assert tinymodel.cache_key(tied=True, seed=0) != key


def test_a_damaged_entry_is_rebuilt_and_a_copy_cannot_change_the_cache(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(tinymodel, "build_tiny_model", _fake_build(calls))
    root = tmp_path / "cache"
    m = tinymodel.cached_tiny_model(tmp_path / "a", root, tied=True)
    (m.hf_dir / "model.safetensors").write_bytes(b"changed by a test")  # the session's copy, not the cache
    assert tinymodel.cached_tiny_model(tmp_path / "b", root, tied=True).cached and len(calls) == 1
    assert (tmp_path / "b" / "hf" / "model.safetensors").read_bytes() == b"weights"

    entry = root / tinymodel.cache_key(tied=True)
    (entry / "hf" / "model.safetensors").write_bytes(b"bit rot")
    m = tinymodel.cached_tiny_model(tmp_path / "c", root, tied=True)
    assert not m.cached and len(calls) == 2
    assert (tmp_path / "c" / "hf" / "model.safetensors").read_bytes() == b"weights"
    assert sorted(os.listdir(root)) == [entry.name]  # the damaged entry and the build folder are gone
