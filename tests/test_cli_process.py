"""The console entry point as a user meets it, in a real process (issue 9.7, 10.3, 10.8, 10.9):
``-q`` prints nothing, a log gets one line per step and no other library's bars or warnings,
usage errors are one line, Ctrl-C and SIGTERM anywhere are one line with the usual exit codes,
and ``import anomtok.cli`` pulls in no heavy library."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

HEAVY = ("torch", "transformers", "polars", "umap", "matplotlib", "numba", "sklearn")


def run_py(code: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def anomtok(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    # stderr is a pipe, not a terminal: what a log file or CI sees
    return subprocess.run(
        [sys.executable, "-m", "anomtok", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def test_import_cli_pulls_in_no_heavy_library():
    proc = run_py(
        """
        import sys
        import anomtok, anomtok.cli
        anomtok.__version__
        print(",".join(m for m in {HEAVY!r} if m in sys.modules))
    """.replace("{HEAVY!r}", repr(HEAVY))
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


def test_help_of_every_command_pulls_in_no_heavy_library():
    """``anomtok --help`` and ``anomtok COMMAND --help`` of every command (issue 13.2), each in
    the same fresh process as a user's."""
    from anomtok.cli import cli

    proc = run_py(
        """
        import json, sys
        from anomtok.cli import main
        out = {}
        for command in [None, *sys.argv[1:]]:
            try:
                main(([command] if command else []) + ["--help"])
            except SystemExit as exc:
                assert exc.code == 0, (command, exc.code)
            out[command or ""] = [m for m in {HEAVY!r} if m in sys.modules]
        print(json.dumps(out), file=sys.stderr)
    """.replace("{HEAVY!r}", repr(HEAVY)),
        *sorted(cli.commands),
    )
    assert proc.returncode == 0, proc.stderr
    pulled = json.loads(proc.stderr.strip().splitlines()[-1])
    assert set(pulled) == {"", *cli.commands}
    assert pulled == {name: [] for name in pulled}


def test_compare_pulls_in_no_torch(tiny_model, tmp_path):
    """``anomtok compare`` reads report folders: polars, but no torch, transformers or umap."""
    import anomtok

    for name in ("a", "b"):
        anomtok.rank(tiny_model.hf_dir, nn="off", device="cpu", out_dir=tmp_path / name)
    proc = run_py(
        """
        import sys
        from anomtok.cli import main
        try:
            main(["compare", *sys.argv[1:]])
        except SystemExit as exc:
            assert exc.code == 0, exc.code
        print(",".join(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)
    """.replace("{HEAVY!r}", repr(HEAVY)),
        str(tmp_path / "a"),
        str(tmp_path / "b"),
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].split()[:2] == ["report", "model"], proc.stdout
    assert proc.stderr.strip().splitlines()[-1] == "polars"


def test_lazy_api_names_resolve():
    import anomtok

    assert callable(anomtok.load) and callable(anomtok.rank) and anomtok.InputError.__name__ == "InputError"
    assert set(anomtok.__all__) <= set(dir(anomtok))
    with pytest.raises(AttributeError):
        anomtok.no_such_name  # noqa: B018


@pytest.mark.parametrize(
    "argv, start",
    [
        (["rank"], "anomtok: error: Missing argument 'MODEL'"),
        (["rank", "m", "-o", "o", "--seed", "1180591620717411303424"], "anomtok: error: Invalid value for '--seed'"),
        (["nearest", "m", "--nope"], "anomtok: error: No such option"),
        (["bogus"], "anomtok: error: No such command 'bogus'"),
    ],
)
def test_usage_errors_are_one_line_with_clicks_hint(argv, start):
    proc = anomtok(*argv)
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(start) and lines[0].endswith("-h')")
    assert proc.stdout == ""


KILL_INSIDE_COMMAND = """
    import os, signal, sys, time
    import anomtok.api
    sig = getattr(signal, sys.argv[1])
    def nearest(*a, **k):
        os.kill(os.getpid(), sig)
        time.sleep(60)  # the handler interrupts this
        raise AssertionError("the signal was not delivered")
    anomtok.api.nearest = nearest
    from anomtok.cli import main
    main(["nearest", "some-model"])
"""


@pytest.mark.parametrize(
    "sig, code, line", [("SIGINT", 130, "anomtok: interrupted"), ("SIGTERM", 143, "anomtok: terminated")]
)
def test_signals_during_a_command_are_one_line(sig, code, line):
    proc = run_py(KILL_INSIDE_COMMAND, sig, timeout=60)
    assert proc.returncode == code, proc.stderr
    assert proc.stderr.splitlines() == [line]


KILL_AT_START_UP = """
    import os, signal, sys
    import anomtok.progress
    sig = getattr(signal, sys.argv[1])
    def configure(**kw):  # the group's first action: before any command or heavy import runs
        os.kill(os.getpid(), sig)
    anomtok.progress.configure = configure
    from anomtok.cli import main
    main(["nearest", "some-model"])
"""


@pytest.mark.parametrize(
    "sig, code, line", [("SIGINT", 130, "anomtok: interrupted"), ("SIGTERM", 143, "anomtok: terminated")]
)
def test_signals_at_start_up_are_one_line(sig, code, line):
    proc = run_py(KILL_AT_START_UP, sig, timeout=60)
    assert proc.returncode == code, proc.stderr
    assert proc.stderr.splitlines() == [line]


@pytest.fixture(scope="module")
def converter_gguf(tiny_model, tmp_path_factory):
    """The tiny llama GGUF renamed "Mistral tiny": anomtok's own GGUF loader leaves a llama file named
    Mistral to transformers' converter (which builds a mistral model from it), so a CLI run goes
    through the converter, its tqdm bar and its warnings."""
    from gguf.scripts import gguf_new_metadata

    out = tmp_path_factory.mktemp("converter") / "tiny-mistral.gguf"
    argv = sys.argv
    sys.argv = ["gguf-new-metadata", "--general-name", "Mistral tiny", str(tiny_model.gguf_path), str(out)]
    try:
        gguf_new_metadata.main()
    finally:
        sys.argv = argv
    return out


def test_quiet_prints_nothing_not_even_other_libraries_bars(converter_gguf, tmp_path):
    # the GGUF goes through transformers' converter, which draws its own tqdm bar and warns
    proc = anomtok(
        "negtemp", str(converter_gguf), "-T", "-0.001", "-n", "3", "-q", "--show", "0", "-o", str(tmp_path / "neg")
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "" and proc.stdout == ""
    meta = json.loads((tmp_path / "neg" / "meta.json").read_text())
    assert meta["generation_model"]["gguf_loader"] == "transformers"  # the converter did run


@pytest.mark.parametrize("loader", ["anomtok", "transformers"])
def test_a_log_gets_one_line_per_step_and_no_bars(loader, tiny_model, converter_gguf, tmp_path):
    gguf = tiny_model.gguf_path if loader == "anomtok" else converter_gguf
    proc = anomtok("negtemp", str(gguf), "-T", "-0.001", "-n", "3", "--show", "0", "-o", str(tmp_path / "neg"))
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stderr and "Warning" not in proc.stderr and "it/s" not in proc.stderr
    lines = proc.stderr.splitlines()
    converting = [s for s in lines if "converting it with transformers' GGUF converter" in s]
    assert len(converting) == (loader == "transformers"), proc.stderr
    gen = [s for s in lines if s.startswith("anomtok: generating ")]
    assert len(gen) == 2 and gen[1].endswith(" s"), proc.stderr  # its start and its end
    assert all(s.startswith(("anomtok: ", "wrote ", "all:", "en:", "ja:", "  ")) for s in lines), proc.stderr
    meta = json.loads((tmp_path / "neg" / "meta.json").read_text())
    assert meta["generation_model"]["gguf_loader"] == loader


def test_verbose_shows_other_libraries_output(converter_gguf, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TQDM_")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "anomtok",
            "-v",
            "negtemp",
            str(converter_gguf),
            "-T",
            "-0.001",
            "-n",
            "2",
            "--show",
            "0",
            "-o",
            str(tmp_path / "neg"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Converting and de-quantizing GGUF tensors" in proc.stderr  # transformers' own bar, with -v


def test_scan_and_detect_quiet_print_nothing(tiny_model, tmp_path):
    out = tmp_path / "scan"
    proc = anomtok("scan", str(tiny_model.hf_dir), "-o", str(out), "--no-generate", "--no-verify", "--no-map", "-q")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "" and proc.stdout == ""
    assert (out / "report.md").is_file() and (out / "glitch.csv").is_file()
    loud = anomtok("scan", str(tiny_model.hf_dir), "-o", str(out), "--no-generate", "--no-verify", "--no-map")
    assert loud.returncode == 0 and "wrote " in loud.stderr  # the same run without -q reports its steps

    ids = tmp_path / "ids.txt"
    ids.write_text("0\n1\n2\n3\n")
    text = tmp_path / "t.txt"
    text.write_text("hello world\n")
    args = ("detect", str(tiny_model.hf_dir), "--glitch", str(ids), str(text), "-o", str(tmp_path / "hits.jsonl"))
    quiet = anomtok(*args, "-q")
    assert quiet.returncode in (0, 3), quiet.stderr
    assert quiet.stderr == "" and quiet.stdout == ""
    assert (tmp_path / "hits.jsonl").is_file()
    loud = anomtok(*args)
    assert loud.returncode == quiet.returncode and loud.stdout != ""  # the summary, without -q
