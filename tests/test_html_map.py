"""The interactive map (anomtok/maps/html.py, map.js): its columns, and the page in a real headless
Chromium, offline: no console error, no request but the file, one dot per mapped token, search by
text and by id circles the token, hover shows hostile token bytes as text.

The browser tests need Debian's ``chromium`` (``apt-get install chromium``; CI installs it in
.ci/run) and ``playwright`` (dev extras). Without chromium they are skipped, except under CI
(``CI`` set), where they fail.
"""

from __future__ import annotations

import os

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

import anomtok
from anomtok.cli import cli
from anomtok.errors import InputError
from anomtok.maps import MapOptions, compute_map
from anomtok.maps.html import map_columns, read_counts, render_html
from anomtok.text import display

try:  # tests/ as a package or as a plain rootdir folder
    from . import browser
except ImportError:
    import browser  # type: ignore[no-redef]

# Token bytes a page must show as text: markup, a script, an event handler, a right-to-left
# override, control characters, and the first two bytes of a three-byte character.
HOSTILE = [
    b"<script>window.__pwned=1</script>",
    b'<img src=x onerror="window.__pwned=2">',
    "a\u202eb&amp;".encode(),
    b"\x00\x07\x1b[31m",
    b"\xe6\x97",
]


def needs_browser() -> None:
    """Skip without chromium or playwright, except under CI, where both must be there."""
    import importlib.util

    missing = [
        what
        for what, ok in (
            ("chromium (.ci/run installs it: apt-get install chromium)", browser.chromium_path() is not None),
            ("playwright (the dev extras)", importlib.util.find_spec("playwright") is not None),
        )
        if not ok
    ]
    if missing:
        (pytest.fail if os.environ.get("CI") else pytest.skip)("missing: " + ", ".join(missing))


@pytest.fixture(scope="module")
def chromium() -> None:
    """Checked before the slow fixtures."""
    needs_browser()


@pytest.fixture(scope="module")
def planted(tiny_model, tmp_path_factory):
    """The tiny model's ranking with hostile bytes planted on five tokens, and its full map."""
    emb = anomtok.load(tiny_model.hf_dir)
    frame = anomtok.rank(emb).frame
    ids = frame.filter(pl.col("valid") & (pl.col("kind") == "normal"))["token_id"].sort().to_list()[10:15]
    hexes = dict(zip(ids, (b.hex() for b in HOSTILE)))
    texts = dict(zip(ids, (b.decode("utf-8", "replace") for b in HOSTILE)))
    frame = frame.with_columns(
        bytes_hex=pl.struct("token_id", "bytes_hex").map_elements(
            lambda r: hexes.get(r["token_id"], r["bytes_hex"]), return_dtype=pl.String
        ),
        token=pl.struct("token_id", "token").map_elements(
            lambda r: texts.get(r["token_id"], r["token"]), return_dtype=pl.String
        ),
    )
    res = compute_map(emb.input.numpy(), frame, MapOptions(full=True, n_epochs=30))
    out = tmp_path_factory.mktemp("html")
    neg = {int(ids[0]): 7, int(frame["token_id"][0]): 2}
    page = render_html(frame, res, out / "map.html", title="tiny <b>model</b>", negtemp=neg)
    return frame, res, page, dict(zip(ids, HOSTILE)), neg


def test_columns_hold_every_token_once_with_its_exact_bytes(planted):
    frame, res, _, hostile, neg = planted
    points, vocab, facts = map_columns(frame, res.coords, neg)
    V = frame.height
    assert facts["vocab"] == V and facts["points"] == res.coords.height == points["id"].size
    assert sorted(points["id"].tolist()) == sorted(res.coords["token_id"].to_list())
    # the blobs give back every token's bytes and display form, by id
    words = bytes(vocab["text"]).decode("utf-8").split("\n")
    off = vocab["offsets"]
    assert len(words) == V and off.size == V + 1
    by_id = frame.sort("token_id")
    for i, h in zip(by_id["token_id"].to_list(), by_id["bytes_hex"].to_list()):
        assert bytes(vocab["bytes"][off[i] : off[i + 1]]) == bytes.fromhex(h)
        assert words[i] == display(bytes.fromhex(h))
    for i in hostile:
        assert "\n" not in words[i] and "\u202e" not in words[i] and "\x1b" not in words[i]
    # codes name the ranking's categories; points are drawn by score, the highest last
    kinds = facts["views"]["kind"]["names"]
    row = dict(zip(frame["token_id"].to_list(), frame["kind"].to_list()))
    assert [kinds[k] for k in points["kind"]] == [row[i] for i in points["id"].tolist()]
    s = points["score"][np.isfinite(points["score"])]
    assert (np.diff(s) >= 0).all()
    assert {int(i): int(c) for i, c in zip(points["id"], points["neg"]) if c} == neg
    assert facts["negtemp"] == 2


def test_page_is_self_contained_and_reproducible(planted, tmp_path):
    frame, res, page, _, neg = planted
    html = page.read_text(encoding="utf-8")
    assert "<script src" not in html.lower() and "<link " not in html.lower()
    assert "cdn.bokeh.org" not in html and "window.anomtokMap" in html
    again = render_html(frame, res, tmp_path / "again.html", title="tiny <b>model</b>", negtemp=neg)
    assert again.read_bytes() == page.read_bytes()


def test_bad_inputs(planted, tmp_path):
    frame, res, *_ = planted
    with pytest.raises(InputError, match="bytes_hex"):
        render_html(frame.drop("bytes_hex"), res, tmp_path / "x.html")
    with pytest.raises(InputError, match="every id from 0"):
        render_html(frame.filter(pl.col("token_id") != 3), res, tmp_path / "x.html")
    assert not (tmp_path / "x.html").exists()
    (tmp_path / "n.csv").write_text("id,n\n1,2\n")
    with pytest.raises(InputError, match="token_id and count"):
        read_counts(tmp_path / "n.csv")


def test_plot_html_with_no_map_is_refused(tiny_model, tmp_path):
    r = CliRunner().invoke(cli, ["plot", str(tiny_model.hf_dir), "-o", str(tmp_path / "o"), "--html", "--no-map"])
    assert r.exit_code == 2 and "needs the map" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "o").exists()


@pytest.mark.browser
def test_page_in_headless_chromium(chromium, planted, tmp_path):
    frame, res, page_path, hostile, _ = planted
    with browser.open_page(page_path) as (page, log):
        # every mapped token is a dot; the map names the vocabulary it comes from
        n = page.evaluate("window.anomtokMap.points()")
        assert n == res.coords.height == int(frame["valid"].sum())
        assert page.evaluate("window.anomtokMap.vocab") == frame.height
        assert len(browser.column(page, "anomtok-points", "x")) == n
        # search by exact text, then by id: the token is circled
        top = frame.sort("rank").row(0, named=True)
        assert top["token_id"] in browser.search(page, display(bytes.fromhex(top["bytes_hex"])))
        hostile_id = next(iter(hostile))
        assert browser.search(page, str(hostile_id)) == [hostile_id]
        assert f"id {hostile_id}" in browser.model(page, "anomtok-status", "text")
        # hover the (now centred) hostile token: its text shows as text, nothing ran
        x, y = browser.point_on_screen(page, hostile_id)
        page.mouse.move(x, y)
        tip = page.locator(".bk-tooltip-content").first
        tip.wait_for(state="visible", timeout=30_000)
        shown = tip.inner_text()
        assert display(hostile[hostile_id]) in shown, shown
        assert hostile[hostile_id].hex(" ") in shown
        assert page.evaluate("window.__pwned") is None
        assert page.evaluate("document.querySelectorAll('img').length") == 0
        assert tip.locator("script, img").count() == 0
        # each colouring sets its palette; a title with markup is shown as text
        facts = page.evaluate("window.anomtokMap.facts")
        for view in ("kind", "script", "japanese"):
            page.locator("select").select_option(view)
            assert browser.model(page, "anomtok-mapper", "palette") == facts["views"][view]["colors"]
        assert page.get_by_text("tiny <b>model</b>").count() == 1
        page.screenshot(path=str(tmp_path / "tiny.png"))
        assert log.console_errors == [] and log.page_errors == []
        assert log.blocked == [] and log.requests == [page_path.resolve().as_uri()]


@pytest.mark.real
@pytest.mark.browser
def test_real_model_map_has_every_token(chromium, tmp_path):
    """MiniLM-L6 through ``anomtok.plot(..., html=True)``: one dot per token of its 30,522, search
    finds a reserved token by its text."""
    opts = anomtok.PlotOptions(map=MapOptions(full=True, n_epochs=20), formats=("png",), label_top=0, html=True)
    result = anomtok.plot("minilm-l6", opts, out_dir=tmp_path)
    page_path = result.files["map_html"][0]
    assert page_path == tmp_path / "plots" / "map.html"
    assert page_path.stat().st_size < 30e6
    unused = pl.read_parquet(tmp_path / "ranked.parquet").filter(pl.col("kind") == "unused").sort("token_id")
    with browser.open_page(page_path) as (page, log):
        assert page.evaluate("window.anomtokMap.points()") == page.evaluate("window.anomtokMap.vocab") == 30_522
        target = unused.row(0, named=True)
        assert browser.search(page, target["token"]) == [target["token_id"]]
        assert log.console_errors == [] and log.page_errors == [] and log.blocked == []
