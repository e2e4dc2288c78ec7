"""README.md and docs/*.md re-run: every console example prints what the document shows
(``tests/doccheck.py`` has the rules; ``python tests/doccheck.py --update FILE`` regenerates)."""

from __future__ import annotations

from pathlib import Path

import doccheck
import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


@pytest.mark.real
@pytest.mark.parametrize("doc", DOCS, ids=[str(d.relative_to(REPO)) for d in DOCS])
def test_documented_commands_print_what_the_document_shows(doc):
    problems, _ = doccheck.run_document(doc)
    assert not problems, "\n\n".join(map(str, problems))
