"""The shape of the package, checked statically (issue 12): every ``import`` and ``from … import``
in every module under ``anomtok/`` (function-level ones included) is read with ``ast``, nothing is
imported.

1. No module takes another module's private name (``from .x import _helper``, or
   ``x._helper`` on an imported anomtok module); ``_version``, ``__version__`` and other dunder
   names are fine.
2. Imports only go down the layers: CLI → API → features → core. Core imports no feature, API or
   CLI module; a feature imports no API or CLI module; the API imports no CLI module. Imports
   within a layer are free.
3. No module is over ``MAX_LINES`` lines.

Every module must be placed in ``LAYERS``: a new module fails the test until it is given a layer.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "anomtok"
MAX_LINES = 400

CORE, FEATURES, API, CLI = 0, 1, 2, 3
LAYER_NAMES = {CORE: "core", FEATURES: "features", API: "API", CLI: "CLI"}

# Module name -> layer. A name ending in ".*" places a package and everything in it.
LAYERS: dict[str, int] = {
    # CLI: click commands and their plumbing
    "anomtok.cli": CLI,
    "anomtok.__main__": CLI,
    "anomtok.commands.*": CLI,
    # API: what ``import anomtok`` offers
    "anomtok": API,
    "anomtok.api": API,
    # features: one user-facing task each, built on the core
    "anomtok.audit.*": FEATURES,
    "anomtok.detect.*": FEATURES,
    "anomtok.generation.*": FEATURES,
    "anomtok.maps.*": FEATURES,
    "anomtok.verify.*": FEATURES,
    "anomtok.scan": FEATURES,
    "anomtok.compare": FEATURES,
    "anomtok.report": FEATURES,
    "anomtok.report_sections": FEATURES,
    "anomtok.validity": FEATURES,  # the validation study of the metrics (issue 11)
    "anomtok.options.*": FEATURES,  # every command's options: built by the API and the CLI, and by scan for its steps
    # core: loading, the ranking and the plumbing every feature shares
    "anomtok._version": CORE,
    "anomtok.loading.*": CORE,
    "anomtok.embeddings": CORE,
    "anomtok.tokens": CORE,
    "anomtok.tokenizer_copy": CORE,
    "anomtok.text": CORE,
    "anomtok.japanese": CORE,
    "anomtok.metrics": CORE,
    "anomtok.knn": CORE,
    "anomtok.ranking": CORE,
    "anomtok.columns": CORE,  # the ranking's columns as a dependency graph (issue 13.1)
    "anomtok.export": CORE,
    "anomtok.table": CORE,
    "anomtok.cache": CORE,
    "anomtok.steps": CORE,
    "anomtok.outputs": CORE,
    "anomtok.inputs": CORE,
    "anomtok.progress": CORE,
    "anomtok.errors": CORE,
    "anomtok.device": CORE,
    "anomtok.provenance": CORE,
    "anomtok.resources": CORE,
}

# Known violations, each waiting on its issue (issue 12): an entry that no longer matches anything
# fails the test, so each is removed when its violation is fixed.
ALLOWED_UPWARD: set[tuple[str, str]] = set()  # (importing module, imported module)
ALLOWED_PRIVATE: set[tuple[str, str]] = set()  # (importing module, "module:name" or private module)
ALLOWED_LONG: set[str] = set()  # over 400 lines once ruff-formatted; each is split by the session that owns it


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    line: int
    target: str  # the anomtok module imported (or imported from)
    name: str | None  # the name taken from it (None for ``import x`` and module attributes)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: dict[str, Path] = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def is_package(mod: str) -> bool:
    return MODULES[mod].name == "__init__.py"


def layer_of(mod: str) -> int | None:
    best, layer = -1, None
    for key, value in LAYERS.items():
        base = key[:-2] if key.endswith(".*") else key
        hit = mod == base or (key.endswith(".*") and mod.startswith(base + "."))
        if hit and len(base) > best:
            best, layer = len(base), value
    return layer


def is_private(name: str) -> bool:
    if name in ("_version", "__version__") or (name.startswith("__") and name.endswith("__")):
        return False
    return name.startswith("_")


def imports_of(mod: str) -> list[Import]:
    """Every anomtok import of ``mod``, wherever it is in the file, plus ``x._name`` on a name
    bound to an anomtok module by an import."""
    tree = ast.parse(MODULES[mod].read_text("utf-8"), filename=str(MODULES[mod]))
    package = mod if is_package(mod) else mod.rpartition(".")[0]
    found: list[Import] = []
    bound: dict[str, str] = {}  # local name -> anomtok module it refers to
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "anomtok" or alias.name.startswith("anomtok."):
                    found.append(Import(mod, node.lineno, alias.name, None))
                    if alias.asname:
                        bound[alias.asname] = alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if not (source == "anomtok" or source.startswith("anomtok.")):
                continue
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                if sub in MODULES:  # ``from . import api``: the module itself
                    found.append(Import(mod, node.lineno, sub, None))
                    bound[alias.asname or alias.name] = sub
                else:
                    found.append(Import(mod, node.lineno, source, alias.name))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in bound:
            if is_private(node.attr):
                found.append(Import(mod, node.lineno, bound[node.value.id], node.attr))
    return found


ALL_IMPORTS = [imp for mod in MODULES for imp in imports_of(mod)]


def where(imp: Import) -> str:
    return f"{MODULES[imp.module].relative_to(ROOT.parent)}:{imp.line}"


def test_every_module_has_a_layer():
    unplaced = sorted(m for m in MODULES if layer_of(m) is None)
    assert not unplaced, f"give these modules a layer in tests/test_layout.py LAYERS: {unplaced}"


def private_uses(imp: Import) -> list[str]:
    """What ``imp`` takes that is private to another module: a ``_name`` of another module, or a
    ``_module`` (``anomtok.commands._common``) from outside the package that holds it."""
    out = []
    if imp.name is not None and is_private(imp.name) and imp.target != imp.module:
        out.append(f"{imp.target}:{imp.name}")
    parts = imp.target.split(".")
    for i, part in enumerate(parts):
        owner = ".".join(parts[:i])
        if is_private(part) and not imp.module.startswith(owner + "."):
            out.append(".".join(parts[: i + 1]))
    return out


def test_no_private_names_across_modules():
    bad, used = [], set()
    for imp in ALL_IMPORTS:
        for what in private_uses(imp):
            pair = (imp.module, what)
            if pair in ALLOWED_PRIVATE:
                used.add(pair)
                continue
            bad.append(f"{where(imp)}: {imp.module} takes {what}")
    bad = list(dict.fromkeys(bad))
    assert not bad, "private names used across modules (make them public or move them):\n" + "\n".join(bad)
    assert used == ALLOWED_PRIVATE, f"stale ALLOWED_PRIVATE entries: {sorted(ALLOWED_PRIVATE - used)}"


def test_every_import_names_a_module_that_exists():
    bad = sorted({f"{where(imp)} imports {imp.target}" for imp in ALL_IMPORTS if imp.target not in MODULES})
    assert not bad, "imports of anomtok modules that do not exist:\n" + "\n".join(bad)


def test_imports_go_down_the_layers():
    bad, used = [], set()
    for imp in ALL_IMPORTS:
        target = imp.target
        mine, theirs = layer_of(imp.module), layer_of(target)
        if mine is None or theirs is None or theirs <= mine:
            continue
        pair = (imp.module, target)
        if pair in ALLOWED_UPWARD:
            used.add(pair)
            continue
        bad.append(f"{where(imp)}: {imp.module} ({LAYER_NAMES[mine]}) imports {target} ({LAYER_NAMES[theirs]})")
    bad = list(dict.fromkeys(bad))  # one line per import statement, not per name
    assert not bad, "imports against the layer order CLI → API → features → core:\n" + "\n".join(bad)
    assert used == ALLOWED_UPWARD, f"stale ALLOWED_UPWARD entries: {sorted(ALLOWED_UPWARD - used)}"


def test_no_module_is_too_long():
    lengths = {mod: len(path.read_text("utf-8").splitlines()) for mod, path in MODULES.items()}
    long = {m: n for m, n in lengths.items() if n > MAX_LINES}
    bad = sorted(f"{MODULES[m].relative_to(ROOT.parent)}: {n} lines" for m, n in long.items() if m not in ALLOWED_LONG)
    assert not bad, f"modules over {MAX_LINES} lines (split them):\n" + "\n".join(bad)
    stale = sorted(m for m in ALLOWED_LONG if lengths.get(m, 0) <= MAX_LINES)
    assert not stale, f"stale ALLOWED_LONG entries: {stale}"


@pytest.mark.parametrize(
    "module, source, expected",
    [
        ("anomtok.fake", "from .x import _helper\n", ["anomtok.x:_helper"]),
        (
            "anomtok.fake",
            "def f():\n    from .loading.hf_loader import _first_line\n",
            ["anomtok.loading.hf_loader:_first_line"],
        ),
        ("anomtok.fake", "from ._version import __version__\nfrom . import _version\nfrom .x import __all__\n", []),
        ("anomtok.fake", "from . import api\napi._embeddings(1)\n", ["anomtok.api:_embeddings"]),
        ("anomtok.fake", "import anomtok.api as a\na._embeddings(1)\n", ["anomtok.api:_embeddings"]),
        ("anomtok.fake", "from .commands._common import x\n", ["anomtok.commands._common"]),
        ("anomtok.fake", "from .commands import _common\n", ["anomtok.commands._common"]),
        ("anomtok.commands.fake", "from ._common import x\nfrom . import _common\n", []),
    ],
)
def test_the_checker_sees_private_names(tmp_path, monkeypatch, module, source, expected):
    monkeypatch.setitem(MODULES, module, tmp_path / "fake.py")
    monkeypatch.setitem(MODULES, "anomtok.commands._common", tmp_path / "_common.py")
    (tmp_path / "fake.py").write_text(source)
    assert [u for i in imports_of(module) for u in private_uses(i)] == expected


@pytest.mark.parametrize(
    "source, expected",
    [
        ("def f():\n    from .scan import scan\n", ["anomtok.scan"]),
        ("from . import api\n", ["anomtok.api"]),
        ("import anomtok.cli\n", ["anomtok.cli"]),
        ("from .loading import load\nfrom . import errors\n", []),
    ],
)
def test_the_checker_sees_upward_imports(tmp_path, monkeypatch, source, expected):
    """``anomtok.fake`` placed in the core: any feature, API or CLI import is upward."""
    monkeypatch.setitem(MODULES, "anomtok.fake", tmp_path / "fake.py")
    monkeypatch.setitem(LAYERS, "anomtok.fake", CORE)
    (tmp_path / "fake.py").write_text(source)
    got = [i.target for i in imports_of("anomtok.fake")]
    assert [t for t in got if layer_of(t) != CORE] == expected
