"""The doc checker itself (fast): its matching rules and that it catches a wrong document."""

from __future__ import annotations

from pathlib import Path

import doccheck as dc


def test_numbers_within_tolerance_and_tokens_exact():
    assert dc.line_matches("rank 1  0.9494  12,345", "rank 1  0.9490  12,340", tol=0.01)
    assert not dc.line_matches("rank 1  0.9494", "rank 1  0.8000", tol=0.01)
    assert not dc.line_matches("⟨ SrvGroup⟩ 0.99", "⟨ SrvGroupX⟩ 0.99", tol=1.0)  # tokens never tolerate
    assert not dc.line_matches("a b", "a b c", tol=1.0)
    assert dc.line_matches("5.405%", "5.4%", tol=0.01) and not dc.line_matches("5.405%", "6%", tol=0.01)
    assert dc.line_matches('"score": 0.9911754131317139, "rank": 15}', '"score": 0.9911755919456482, "rank": 15}', 0)
    assert not dc.line_matches('"rank": 15}', '"rank": 16}', 0)  # beyond float noise
    assert not dc.line_matches("Hit(score=0.99, token=' a')", "Hit(score=0.99, token=' b')", 1.0)


def test_ellipsis_matches_any_run_of_lines():
    assert dc.output_matches(["a", "...", "z"], ["a", "b", "c", "z"], 0)
    assert dc.output_matches(["a", "..."], ["a"], 0)
    assert not dc.output_matches(["a", "...", "z"], ["a", "b"], 0)
    assert not dc.output_matches(["a"], ["a", "b"], 0)


def _doc(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "doc.md"
    p.write_text(body, encoding="utf-8")
    return p


def test_a_right_document_passes_and_a_wrong_one_fails(tmp_path):
    ok = _doc(tmp_path, "x\n\n```console\n$ echo hello 1.00\nhello 1.00\n$ false\n$ echo $?\n1\n```\n")
    assert dc.run_document(ok)[0] == []
    wrong = _doc(tmp_path, "```console\n$ echo hello 1.00\nhello 2.00\n```\n")
    problems, _ = dc.run_document(wrong)
    assert len(problems) == 1 and problems[0].command == "echo hello 1.00"
    tolerant = _doc(tmp_path, "<!-- doccheck: tol=0.6 -->\n```console\n$ echo hello 1.00\nhello 2.00\n```\n")
    assert dc.run_document(tolerant)[0] == []


def test_blocks_share_one_folder_setup_and_skip(tmp_path):
    doc = _doc(
        tmp_path,
        "<!-- doccheck: setup printf 'a\\nb\\n' > f.txt -->\n\n```console\n$ wc -l < f.txt\n2\n```\n\n"
        "<!-- doccheck: skip needs a GPU -->\n```console\n$ exit 1\nnever\n```\n\n"
        "```python\nimport pathlib\nassert pathlib.Path('f.txt').exists()\n```\n",
    )
    assert dc.run_document(doc)[0] == []
    bad_py = _doc(tmp_path, "```python\nraise SystemExit(3)\n```\n")
    assert len(dc.run_document(bad_py)[0]) == 1


def test_update_rewrites_outputs_and_keeps_ellipsis(tmp_path):
    doc = _doc(tmp_path, "```console\n$ printf '1\\n2\\n3\\n4\\n'\n1\n...\n9\n$ echo b\nold\n```\n")
    problems, actual = dc.run_document(doc)
    assert len(problems) == 2
    doc.write_text(dc.update_document(doc, actual), encoding="utf-8")
    assert doc.read_text().split("\n")[1:7] == ["$ printf '1\\n2\\n3\\n4\\n'", "1", "...", "4", "$ echo b", "b"]
    assert dc.run_document(doc)[0] == []


def test_python_output_block(tmp_path):
    doc = _doc(tmp_path, "```python\nprint(1 + 1)\n```\n\n<!-- doccheck: output -->\n```text\n3\n```\n")
    problems, actual = dc.run_document(doc)
    assert len(problems) == 1 and problems[0].actual == ["2"]
    doc.write_text(dc.update_document(doc, actual), encoding="utf-8")
    assert dc.run_document(doc)[0] == [] and "```text\n2\n```" in doc.read_text()


def test_stderr_is_shown_unless_the_block_says_stdout(tmp_path):
    both = _doc(tmp_path, "```console\n$ echo out; echo err >&2\nout\nerr\n```\n")
    assert dc.run_document(both)[0] == []
    only = _doc(tmp_path, "<!-- doccheck: stdout -->\n```console\n$ echo out; echo err >&2\nout\n```\n")
    assert dc.run_document(only)[0] == []
