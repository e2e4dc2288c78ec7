"""docs/reliability.md names, for every bad input and fault, the test that checks it: each named
test must exist (a renamed or deleted test makes the table lie)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_every_test_named_in_the_reliability_table_exists():
    doc = (REPO / "docs" / "reliability.md").read_text("utf-8")
    defined = {
        m.group(1): path.name
        for path in (REPO / "tests").glob("test_*.py")
        for m in re.finditer(r"^def (test_\w+)\(", path.read_text("utf-8"), re.M)
    }
    named = 0
    for row in (ln for ln in doc.splitlines() if ln.startswith("|") and "test_" in ln):
        cell = row.rstrip(" |").rsplit("|", 1)[-1]
        current = None
        for ref in re.findall(r"`([^`]+)`", cell):
            file, _, name = ref.rpartition("::")
            current = file or current
            name = name.split("[")[0]
            assert name in defined, f"{ref}: no such test"
            if current:
                assert defined[name] == current, f"{ref}: is in {defined[name]}, not {current}"
            named += 1
    assert named >= 60
