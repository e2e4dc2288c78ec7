"""Outputs (issue 10.1, 10.4, 10.5): an output never overwrites an input, an unwritable output is
one line and exit 2 before any work, and a failed or interrupted run leaves no folder behind."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from anomtok.cli import cli
from anomtok.errors import InputError
from anomtok.outputs import RANK_FILES, check_dir, make_dir, prepare_output


# ---------------------------------------------------------------------------------- helpers
def _one_error_line(res, *needles):
    assert res.exit_code == 2, (res.exit_code, res.output)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("anomtok: error: "), res.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    assert "internal error" not in res.stderr and "Traceback" not in res.output


def _digest(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` and its sha256: equal before and after = nothing changed."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _no_work(monkeypatch, *targets: str) -> None:
    """Fail the test if any of these functions (the expensive work) is called."""

    def boom(*a, **k):
        raise AssertionError("the work started before the output was checked")

    for t in targets:
        monkeypatch.setattr(t, boom)


@pytest.fixture(scope="module")
def reports(tiny_model, tmp_path_factory):
    base = tmp_path_factory.mktemp("reports")
    for name in ("a", "b"):
        res = CliRunner().invoke(cli, ["rank", str(tiny_model.hf_dir), "-o", str(base / name), "--nn", "off", "-q"])
        assert res.exit_code == 0, res.output
    return base


@pytest.fixture()
def detect_files(tmp_path, reports):
    (tmp_path / "g.csv").write_bytes((reports / "a" / "ranked.csv").read_bytes())
    (tmp_path / "t.txt").write_text("hello world\nsome more text\n", encoding="utf-8")
    return tmp_path


# ---------------------------------------------------------------------------------- the helper
def test_prepare_creates_nothing_and_leaves_no_probe(tmp_path):
    target = prepare_output(tmp_path / "a" / "b" / "c", writes=RANK_FILES)
    assert list(tmp_path.iterdir()) == []
    assert target.path == tmp_path / "a" / "b" / "c"
    (tmp_path / "d").mkdir()
    prepare_output(tmp_path / "d", writes=RANK_FILES)
    prepare_output(tmp_path / "d" / "x.jsonl", kind="file")
    assert list((tmp_path / "d").iterdir()) == []


def test_output_file_that_is_an_input_is_refused(tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("x")
    with pytest.raises(InputError, match="would overwrite it"):
        prepare_output(f, kind="file", inputs=[str(f)])
    os.symlink(f, tmp_path / "link.txt")  # the same file under another name
    with pytest.raises(InputError, match="would overwrite it"):
        prepare_output(tmp_path / "link.txt", kind="file", inputs=[str(f)])
    os.link(f, tmp_path / "hard.txt")
    with pytest.raises(InputError, match="would overwrite it"):
        prepare_output(tmp_path / "hard.txt", kind="file", inputs=[str(f)])
    with pytest.raises(InputError, match="would overwrite it"):  # relative and absolute spellings
        prepare_output(os.path.relpath(f), kind="file", inputs=[str(f)])
    prepare_output(tmp_path / "other.txt", kind="file", inputs=[str(f), "-", None, "smollm2-135m"])


def test_output_folder_may_hold_inputs_whose_names_it_does_not_write(tmp_path):
    (tmp_path / "model.gguf").write_bytes(b"GGUF")
    prepare_output(tmp_path, inputs=[str(tmp_path / "model.gguf")], writes=RANK_FILES)  # rank model.gguf -o .
    (tmp_path / "meta.json").write_text("{}")
    with pytest.raises(InputError, match="meta.json: is the input"):
        prepare_output(tmp_path, inputs=[str(tmp_path / "meta.json")], writes=RANK_FILES)
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "ids.txt").write_text("1")
    with pytest.raises(InputError, match="plots: holds the input"):  # inside a subfolder the command writes
        prepare_output(tmp_path, inputs=[str(tmp_path / "plots" / "ids.txt")], writes=("plots/",))


def test_model_folder_takes_new_files_only(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    prepare_output(model, inputs=[str(model)], writes=RANK_FILES)  # new names: fine
    prepare_output(model / "out", inputs=[str(model)], writes=RANK_FILES)
    (model / "meta.json").write_text("{}")  # might be read by the loader: never overwritten
    with pytest.raises(InputError, match="exists in the input folder"):
        prepare_output(model, inputs=[str(model)], writes=RANK_FILES)
    with pytest.raises(InputError, match="exists in the input folder"):
        prepare_output(model / "config.json", kind="file", inputs=[str(model)])
    prepare_output(model / "hits.jsonl", kind="file", inputs=[str(model)])


def test_nothing_is_written_inside_a_report_folder(tmp_path):
    a = tmp_path / "A"
    a.mkdir()
    for out in (a / "meta.json", a / "new.md", a / "sub" / "x.md"):
        with pytest.raises(InputError, match="inside the report folder"):
            prepare_output(out, kind="file", report_dirs=[str(a), str(tmp_path / "B")])
    prepare_output(tmp_path / "cmp.md", kind="file", report_dirs=[str(a)])


def test_path_under_a_regular_file_or_of_the_wrong_kind(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(InputError, match="is a file, not a folder"):
        prepare_output(f / "out", writes=RANK_FILES)
    with pytest.raises(InputError, match="is a file, not a folder"):
        prepare_output(f / "sub" / "hits.jsonl", kind="file")
    with pytest.raises(InputError, match="exists and is not a directory"):
        prepare_output(f)
    with pytest.raises(InputError, match="is a folder; give a file name"):
        prepare_output(tmp_path, kind="file")
    with pytest.raises(InputError, match="empty"):
        prepare_output("", kind="file")
    with pytest.raises(InputError, match="is a file, not a folder"):
        check_dir(f / "a" / "b")
    with pytest.raises(InputError, match="is a file, not a folder"):
        make_dir(f / "a")
    assert make_dir(tmp_path / "x" / "y").is_dir()
    assert f.read_text() == "x"


@pytest.mark.parametrize("fail_at", ["create", "write", "sync"])
def test_unwritable_or_full_found_by_the_probe(tmp_path, monkeypatch, fail_at):
    """Permission denied (the probe cannot create its file) or a full disk (it cannot write or sync
    it): one InputError naming the output, nothing left behind. Simulated: tests may run as root."""
    import tempfile

    if fail_at == "create":

        def fail(*a, **k):
            raise PermissionError(errno.EACCES, "Permission denied")

        monkeypatch.setattr(tempfile, "mkstemp", fail)
        expected = "Permission denied"
    else:

        def fail(*a, **k):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(os, "write" if fail_at == "write" else "fsync", fail)
        expected = "No space left on device"
    with pytest.raises(InputError, match=expected) as info:
        prepare_output(tmp_path / "out", writes=RANK_FILES)
    assert str(tmp_path / "out") in str(info.value)
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt()])
def test_failed_run_removes_what_it_created(tmp_path, exc):
    out = tmp_path / "o" / "x"
    with pytest.raises(type(exc)):
        with prepare_output(out, writes=("ranked.csv", "plots/")):
            make_dir(out / "plots")
            (out / "ranked.csv").write_text("partial")
            (out / ".ranked.parquet.123.tmp").write_text("")
            raise exc
    assert list(tmp_path.iterdir()) == []


def test_failed_run_keeps_what_existed_and_what_is_not_its_own(tmp_path):
    out = tmp_path / "x"
    out.mkdir()
    (out / "ranked.csv").write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with prepare_output(out, writes=("ranked.csv",)):
            (out / "ranked.csv").write_text("new")
            raise KeyboardInterrupt
    assert (out / "ranked.csv").read_text() == "new"  # not ours to remove: the folder existed
    new = tmp_path / "new"
    with pytest.raises(RuntimeError):
        with prepare_output(new, writes=("ranked.csv",)):
            make_dir(new)
            (new / "ranked.csv").write_text("ours")
            (new / "notes.txt").write_text("someone else's")
            raise RuntimeError
    assert sorted(p.name for p in new.iterdir()) == ["notes.txt"]
    kept = tmp_path / "kept"
    with pytest.raises(RuntimeError):
        with prepare_output(kept, writes=("ranked.csv",), keep_partial=True):  # scan, plot: resumable
            make_dir(kept)
            (kept / "ranked.csv").write_text("step done")
            raise RuntimeError
    assert (kept / "ranked.csv").read_text() == "step done"


def test_write_errors_become_one_line(tmp_path):
    out = tmp_path / "o"
    with pytest.raises(
        InputError, match=r"o: cannot write: no space left on device \(the partial output was removed\)"
    ):
        with prepare_output(out, writes=("a.csv",)):
            make_dir(out)
            raise OSError("No space left on device (os error 28)")  # as polars raises it: no errno
    assert not out.exists()
    with pytest.raises(InputError, match="a.csv: cannot write .Permission denied"):
        with prepare_output(out, writes=("a.csv",)):
            raise PermissionError(errno.EACCES, "Permission denied", str(out / "a.csv"))
    with pytest.raises(FileNotFoundError):  # about another path (an input): not rewritten
        with prepare_output(out, writes=("a.csv",)):
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", str(tmp_path / "input.txt"))


# ---------------------------------------------------------------------------------- 10.1 on the command line
@pytest.mark.parametrize("victim", ["t.txt", "g.csv"])
def test_detect_refuses_to_overwrite_its_input(detect_files, tiny_model, monkeypatch, victim):
    _no_work(monkeypatch, "anomtok.detect.GlitchDetector", "anomtok.detect.load_glitch_list")
    before = {n: (detect_files / n).read_bytes() for n in ("t.txt", "g.csv")}
    res = CliRunner().invoke(
        cli,
        [
            "detect",
            str(tiny_model.hf_dir),
            "--glitch",
            str(detect_files / "g.csv"),
            str(detect_files / "t.txt"),
            "-o",
            str(detect_files / victim),
        ],
    )
    _one_error_line(res, str(detect_files / victim), "would overwrite")
    assert {n: (detect_files / n).read_bytes() for n in before} == before
    assert len(before["g.csv"]) > 1000


def test_detect_refuses_an_existing_file_of_the_model_folder(detect_files, tiny_model, monkeypatch):
    _no_work(monkeypatch, "anomtok.detect.GlitchDetector")
    before = _digest(tiny_model.hf_dir)
    res = CliRunner().invoke(
        cli,
        [
            "detect",
            str(tiny_model.hf_dir),
            "--glitch",
            str(detect_files / "g.csv"),
            str(detect_files / "t.txt"),
            "-o",
            str(tiny_model.hf_dir / "tokenizer.json"),
        ],
    )
    _one_error_line(res, "tokenizer.json", "exists in the input folder")
    assert _digest(tiny_model.hf_dir) == before
    monkeypatch.undo()
    res = CliRunner().invoke(
        cli,
        [
            "detect",
            str(tiny_model.hf_dir),
            "--glitch",
            str(detect_files / "g.csv"),
            str(detect_files / "t.txt"),
            "-o",
            str(detect_files / "hits" / "h.jsonl"),
        ],
    )
    assert res.exit_code in (0, 3), res.output  # a new file (in a new folder) is fine
    assert (detect_files / "hits" / "h.jsonl").is_file()


@pytest.mark.parametrize("name", ["meta.json", "ranked.parquet", "comparison.md"])
def test_compare_refuses_to_write_inside_a_report(reports, name):
    before = _digest(reports / "a")
    res = CliRunner().invoke(cli, ["compare", str(reports / "a"), str(reports / "b"), "-o", str(reports / "a" / name)])
    _one_error_line(res, str(reports / "a"), "inside the report folder")
    assert _digest(reports / "a") == before
    res = CliRunner().invoke(cli, ["compare", str(reports / "a"), str(reports / "b")])  # report A still works
    assert res.exit_code == 0, res.output


def test_plot_refuses_a_mark_file_it_would_overwrite(reports, tmp_path, monkeypatch):
    _no_work(monkeypatch, "anomtok.maps.plot.plot_model")
    out = tmp_path / "r"
    out.mkdir()
    (out / "meta.json").write_bytes((reports / "a" / "meta.json").read_bytes())
    before = _digest(out)
    res = CliRunner().invoke(
        cli, ["plot", "minilm-l6", "-o", str(out), "--mark-ids", str(out / "meta.json"), "--no-map"]
    )
    _one_error_line(res, "meta.json", "would overwrite")
    assert _digest(out) == before


@pytest.mark.parametrize("command", ["negtemp", "sweep", "verify"])
def test_output_beside_the_ranking_would_replace_its_meta_json(command, reports, tiny_model, tmp_path, monkeypatch):
    """--ranking out/ranked.parquet reads out/meta.json (the ranking's shape and source): writing
    the command's own meta.json there is refused."""
    _no_work(monkeypatch, WORK[command])
    out = tmp_path / "r"
    out.mkdir()
    for f in RANK_FILES:
        (out / f).write_bytes((reports / "a" / f).read_bytes())
    before = _digest(out)
    res = CliRunner().invoke(
        cli, [command, str(tiny_model.hf_dir), "--ranking", str(out / "ranked.parquet"), "-o", str(out)]
    )
    _one_error_line(res, str(out / "meta.json"), "would overwrite")
    assert _digest(out) == before


# ---------------------------------------------------------------------------------- 10.4 before the work
WORK = {
    "rank": "anomtok.loading.load",
    "plot": "anomtok.maps.plot.plot_model",
    "scan": "anomtok.scan.scan",
    "audit": "anomtok.audit.audit",
    "negtemp": "anomtok.generation.negtemp",
    "sweep": "anomtok.generation.sweep",
    "verify": "anomtok.verify.verify",
}


@pytest.mark.parametrize("command", sorted(WORK))
def test_output_under_a_regular_file_is_refused_before_the_work(command, tiny_model, tmp_path, monkeypatch):
    _no_work(monkeypatch, WORK[command])
    blocker = tmp_path / "file"
    blocker.write_text("x")
    args = [command, str(tiny_model.hf_dir), "-o", str(blocker / "out")]
    res = CliRunner().invoke(cli, args + (["--no-map"] if command == "plot" else []))
    _one_error_line(res, str(blocker), "is a file, not a folder")
    assert blocker.read_text() == "x"


@pytest.mark.parametrize("command", ["detect", "compare"])
def test_output_file_under_a_regular_file_is_refused_before_the_work(
    command, reports, detect_files, tiny_model, monkeypatch
):
    _no_work(monkeypatch, "anomtok.detect.GlitchDetector", "anomtok.compare.compare")
    blocker = detect_files / "file"
    blocker.write_text("x")
    if command == "detect":
        args = ["detect", str(tiny_model.hf_dir), "--glitch", str(detect_files / "g.csv"), str(detect_files / "t.txt")]
    else:
        args = ["compare", str(reports / "a"), str(reports / "b")]
    res = CliRunner().invoke(cli, args + ["-o", str(blocker / "sub" / "out.txt")])
    _one_error_line(res, str(blocker), "is a file, not a folder")


def test_full_disk_is_found_before_loading(tiny_model, tmp_path, monkeypatch):
    _no_work(monkeypatch, "anomtok.loading.load")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)  # the probe's sync: a full disk (simulated)
    res = CliRunner().invoke(cli, ["rank", str(tiny_model.hf_dir), "-o", str(tmp_path / "o" / "x"), "--nn", "off"])
    monkeypatch.undo()
    _one_error_line(res, str(tmp_path / "o" / "x"), "No space left on device")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("error", ["OSError", "ComputeError"])
def test_disk_full_while_writing_leaves_no_folder(tiny_model, tmp_path, monkeypatch, error):
    import polars as pl

    def full(self, *a, **k):  # what polars raises on ENOSPC: write_csv an OSError without errno or
        if error == "OSError":  # file name, write_parquet a ComputeError (not an OSError at all)
            raise OSError("No space left on device (os error 28)")
        raise pl.exceptions.ComputeError(
            "parquet: File out of specification: underlying IO error: No space left on device (os error 28)"
        )

    monkeypatch.setattr(pl.DataFrame, "write_parquet", full)
    out = tmp_path / "o" / "x"
    res = CliRunner().invoke(cli, ["rank", str(tiny_model.hf_dir), "-o", str(out), "--nn", "off", "-q"])
    _one_error_line(res, str(out), "no space left on device")
    assert list(tmp_path.iterdir()) == []  # ranked.csv, written before, went with the folder


# ---------------------------------------------------------------------------------- 10.5 nothing left behind
@pytest.mark.parametrize("command", ["plot", "scan"])
def test_bad_model_leaves_no_folder(command, tmp_path):
    out = tmp_path / "o" / command
    args = [command, str(tmp_path / "nope"), "-o", str(out)] + (["--no-map"] if command == "plot" else [])
    res = CliRunner().invoke(cli, args)
    _one_error_line(res, "nope")
    assert list(tmp_path.iterdir()) == []


def test_interrupt_during_rank_write_leaves_no_folder(tiny_model, tmp_path, monkeypatch):
    import polars as pl

    def interrupt(self, *a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(pl.DataFrame, "write_parquet", interrupt)  # Ctrl-C after ranked.csv was written
    out = tmp_path / "o" / "x"
    res = CliRunner().invoke(cli, ["rank", str(tiny_model.hf_dir), "-o", str(out), "--nn", "off", "-q"])
    assert res.exit_code == 130 and res.stderr.strip() == "anomtok: interrupted", res.output
    assert list(tmp_path.iterdir()) == []
    out.mkdir(parents=True)
    (out / "notes.txt").write_text("mine")
    res = CliRunner().invoke(cli, ["rank", str(tiny_model.hf_dir), "-o", str(out), "--nn", "off", "-q"])
    assert res.exit_code == 130
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]  # an existing folder is kept, no temp files
