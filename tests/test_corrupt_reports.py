"""A previous run's corrupt files, and unwritable outputs, are bad input (issue 9.12): one line
naming the file, exit 2, never "internal error"."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from click.testing import CliRunner

from anomtok.cli import cli


@pytest.fixture(scope="module")
def reports(tiny_model, tmp_path_factory):
    base = tmp_path_factory.mktemp("reports")
    for name in ("a", "b"):
        res = CliRunner().invoke(cli, ["rank", str(tiny_model.hf_dir), "-o", str(base / name), "--nn", "off", "-q"])
        assert res.exit_code == 0, res.output
    return base


def _one_error_line(res, *needles):
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("anomtok: error: "), res.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    assert "internal error" not in res.stderr and "Traceback" not in res.output


def test_compare_works_on_good_folders(reports):
    res = CliRunner().invoke(cli, ["compare", str(reports / "a"), str(reports / "b")])
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize("damage", ["json", "truncated-parquet", "not-a-ranking"])
def test_compare_on_corrupt_report_files(reports, tmp_path, damage):
    bad = tmp_path / "bad"
    shutil.copytree(reports / "a", bad)
    if damage == "json":
        (bad / "meta.json").write_text('{"source": ', encoding="utf-8")
        target = "meta.json"
    elif damage == "truncated-parquet":
        data = (bad / "ranked.parquet").read_bytes()
        (bad / "ranked.parquet").write_bytes(data[: len(data) // 2])
        target = "ranked.parquet"
    else:
        (bad / "meta.json").write_text(json.dumps({"hello": 1}), encoding="utf-8")
        target = "meta.json"
    res = CliRunner().invoke(cli, ["compare", str(reports / "b"), str(bad)])
    _one_error_line(res, str(bad / target))


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_rank_into_a_read_only_folder(tiny_model, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as a user who can write anywhere")
        res = CliRunner().invoke(cli, ["rank", str(tiny_model.hf_dir), "-o", str(ro / "out"), "--nn", "off", "-q"])
        _one_error_line(res, str(ro))
    finally:
        ro.chmod(0o755)


def test_rank_under_a_regular_file(tiny_model, tmp_path):
    (tmp_path / "file").write_text("x")
    res = CliRunner().invoke(
        cli, ["rank", str(tiny_model.hf_dir), "-o", str(tmp_path / "file" / "out"), "--nn", "off", "-q"]
    )
    _one_error_line(res, str(tmp_path / "file"))
