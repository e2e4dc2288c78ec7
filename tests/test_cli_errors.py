"""What the command line does when a command fails in a way no input check foresaw (issue 12.6):
an unexpected exception is one ``anomtok: internal error:`` line and exit 1, ``--debug`` shows its
traceback instead, running out of memory is one line and exit 1, and a known error under
``--debug`` shows its traceback too. Ctrl-C, SIGTERM and usage errors are in test_cli_process.py.

The failures are injected by replacing ``anomtok.api.nearest`` (the command looks it up when it
runs), so no model is loaded."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

import anomtok.api
from anomtok.cli import cli
from anomtok.errors import InputError

HINT = " (rerun with --debug for the traceback)"


def _raising(exc: BaseException):
    def nearest(*args, **kwargs):
        raise exc

    return nearest


def _invoke(monkeypatch, exc: BaseException, *pre: str):
    monkeypatch.setattr(anomtok.api, "nearest", _raising(exc))
    return CliRunner().invoke(cli, [*pre, "nearest", "some-model"])


def test_unexpected_exception_is_one_line_exit_1(monkeypatch):
    res = _invoke(monkeypatch, RuntimeError("boom at row 7"))
    assert res.exit_code == 1, res.output
    assert res.stderr.splitlines() == ["anomtok: internal error: RuntimeError: boom at row 7" + HINT]
    assert res.stdout == "" and "Traceback" not in res.output


def test_out_of_memory_is_one_line_exit_1(monkeypatch):
    res = _invoke(monkeypatch, MemoryError())
    assert res.exit_code == 1, res.output
    assert res.stderr.splitlines() == ["anomtok: error: out of memory (try a smaller model or --device cuda)"]
    assert "internal error" not in res.output and "Traceback" not in res.output


@pytest.mark.parametrize(
    "exc", [RuntimeError("boom at row 7"), InputError("no such file: m")], ids=["unexpected", "known"]
)
def test_debug_lets_the_exception_through(monkeypatch, exc):
    """Under --debug the handler re-raises: the exception itself leaves the command (CliRunner
    records it), nothing is printed in its place."""
    res = _invoke(monkeypatch, exc, "--debug")
    assert res.exception is exc
    assert res.exit_code == 1
    assert "anomtok: " not in res.stderr


def test_known_error_without_debug_is_exit_2(monkeypatch):
    res = _invoke(monkeypatch, InputError("no such file: m"))
    assert res.exit_code == 2 and res.stderr.splitlines() == ["anomtok: error: no such file: m"]


RAISE_IN_A_REAL_PROCESS = """
    import sys
    import types

    import anomtok

    def compare(*args, **kwargs):
        raise RuntimeError("boom at row 7")

    # a stand-in for anomtok.api, so that the process imports no heavy library (about 0.3 s)
    api = types.ModuleType("anomtok.api")
    api.compare = compare
    sys.modules["anomtok.api"] = anomtok.api = api
    from anomtok.cli import main
    main(sys.argv[1:])
"""


@pytest.mark.parametrize("debug", [False, True])
def test_what_the_user_sees_in_a_real_process(debug, tmp_path):
    """The console entry point: without --debug one line, exit 1; with it Python's own traceback
    (ending in the exception), exit 1, and no one-line message."""
    args = ["--debug"] * debug + ["compare", str(tmp_path), str(tmp_path)]
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(RAISE_IN_A_REAL_PROCESS), *args],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.splitlines()
    if debug:
        assert lines[0] == "Traceback (most recent call last):", proc.stderr
        assert lines[-1] == "RuntimeError: boom at row 7"
        assert any("in compare" in line for line in lines)  # the frame that raised is shown
        assert "anomtok: internal error" not in proc.stderr
    else:
        assert lines == ["anomtok: internal error: RuntimeError: boom at row 7" + HINT], proc.stderr
