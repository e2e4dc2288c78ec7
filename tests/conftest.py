"""Shared fixtures: three real tiny models (trained once, then reused across sessions from the test
cache, see below), seeded RNGs, isolated caches.

The tiny models are kept between sessions in ``$ANOMTOK_TEST_CACHE`` (default
``$XDG_CACHE_HOME/anomtok-tests``, else ``~/.cache/anomtok-tests``; never in the repository), keyed
on tinymodel.py's source, the build arguments, the library versions and the CPU
(``tinymodel.cache_key``). ``ANOMTOK_TEST_CACHE=off`` trains them afresh in every session. The
per-test isolated caches below do not hide this one: its folder is fixed when this file is imported.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

try:  # tests/ as a package or as a plain rootdir folder
    from .tinymodel import TinyModel, cached_tiny_model
except ImportError:
    from tinymodel import TinyModel, cached_tiny_model

_CACHE_VARS = {"HF_HOME": "hf", "XDG_CACHE_HOME": "xdg", "ANOMTOK_CACHE": "anomtok"}
_OFFLINE_VARS = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
_session_cache_root: Path | None = None


def _tiny_model_cache() -> Path | None:
    """Where the tiny models are kept between sessions (None: not kept). Read from the environment
    as it was when pytest started, before the session and per-test cache variables are set."""
    value = os.environ.get("ANOMTOK_TEST_CACHE")
    if value is not None:
        return None if value.strip().lower() in ("", "0", "off", "no", "false") else Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "anomtok-tests"


TINY_MODEL_CACHE = _tiny_model_cache()


def pytest_configure(config: pytest.Config) -> None:
    # huggingface_hub reads HF_HOME and HF_HUB_OFFLINE when it is imported, which happens while test
    # modules are collected, before any fixture runs: so the session-wide values are set here.
    global _session_cache_root
    # pytest-xdist's workers are started with this process's environment as changed below: they
    # find the tiny-model cache through ANOMTOK_TEST_CACHE, not the session's XDG_CACHE_HOME
    # (which would make each worker train the tiny models again)
    os.environ["ANOMTOK_TEST_CACHE"] = str(TINY_MODEL_CACHE) if TINY_MODEL_CACHE is not None else "off"
    _session_cache_root = Path(tempfile.mkdtemp(prefix="anomtok-tests-"))
    for var, sub in _CACHE_VARS.items():
        os.environ[var] = str(_session_cache_root / sub)
    os.environ.update(_OFFLINE_VARS)


# Test files whose tests run numba code (pynndescent's NN-descent, UMAP): each process that runs
# one compiles it first (about 25 CPU-seconds for NN-descent alone, not cached by numba). Under
# `make test-fast` (two workers, `--dist loadfile`) they form one work unit, so one worker compiles
# and the other never does; the unit is scheduled first, being the longest.
NUMBA_TEST_FILES = (
    "test_figures.py",
    "test_html_map.py",
    "test_knn.py",
    "test_plots.py",
    "test_ranking.py",
    "test_scan.py",
)


@pytest.hookimpl(optionalhook=True)  # an xdist hook: unknown when xdist is not loaded (-p no:xdist)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    if config.getoption("dist", None) != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class NumbaTogether(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            scope = super()._split_scope(nodeid)
            return "numba" if Path(scope).name in NUMBA_TEST_FILES else scope

    return NumbaTogether(config, log)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _session_cache_root is not None:
        shutil.rmtree(_session_cache_root, ignore_errors=True)


@pytest.fixture(autouse=True)
def _isolated_caches(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Each test gets empty caches of its own, and no network through the Hugging Face libraries."""
    root = tmp_path_factory.mktemp("cache")
    for var, sub in _CACHE_VARS.items():
        monkeypatch.setenv(var, str(root / sub))
    for var, value in _OFFLINE_VARS.items():
        monkeypatch.setenv(var, value)


@pytest.fixture(autouse=True)
def _seeded_rngs() -> None:
    random.seed(0)
    np.random.seed(0)
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    """Tied embeddings, 16 added ``<unusedN>`` special tokens."""
    return cached_tiny_model(tmp_path_factory.mktemp("tiny_tied"), TINY_MODEL_CACHE, tied=True, n_unused=16)


@pytest.fixture(scope="session")
def tiny_model_untied(tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    """Separate ``lm_head``, 16 added ``<unusedN>`` special tokens."""
    return cached_tiny_model(tmp_path_factory.mktemp("tiny_untied"), TINY_MODEL_CACHE, tied=False, n_unused=16)


@pytest.fixture(scope="session")
def tiny_model_noref(tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    """Tied, and no ``<unusedN>`` tokens: no ready-made reference set of never-trained tokens."""
    return cached_tiny_model(tmp_path_factory.mktemp("tiny_noref"), TINY_MODEL_CACHE, tied=True, n_unused=0)
