"""Open a page in a real headless browser, offline: Debian's ``chromium`` driven by ``playwright``
(PyPI; only its driver is used, never its browser downloads).

Used by tests/test_html_map.py, and as a script to take the screenshots of the interactive map in
docs/img/:

    .venv/bin/python tests/browser.py MAP.html docs/img/map.png [--view kind] [--search TEXT [--hover]]

``open_page`` blocks every request that is not the file itself (and counts it), records console
errors and uncaught exceptions, and waits until the map's script has run (``window.anomtokMap``).
Chromium is found as ``$ANOMTOK_CHROMIUM``, else ``chromium`` or ``chromium-browser`` on the PATH
(CI installs Debian's package: .ci/run).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# software WebGL (SwiftShader) in a headless container; no sandbox as root
CHROMIUM_ARGS = [
    "--enable-unsafe-swiftshader",
    "--use-angle=swiftshader",
    "--no-sandbox",
    "--disable-gpu-sandbox",
    "--disable-dev-shm-usage",  # containers often have a small /dev/shm
]


def chromium_path() -> str | None:
    env = os.environ.get("ANOMTOK_CHROMIUM")
    if env:  # this one or none
        return env if os.path.isfile(env) else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class PageLog:
    """What the page did: every request (URL), the blocked ones, console errors, uncaught errors."""

    requests: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)


@contextmanager
def open_page(
    path: str | os.PathLike, width: int = 1200, height: int = 800, timeout_ms: int = 180_000
) -> Iterator[Any]:
    """(page, log) for ``path`` opened as file://, offline, once the map's script has run."""
    from playwright.sync_api import sync_playwright

    exe = chromium_path()
    if exe is None:
        raise RuntimeError("no chromium: apt-get install chromium (or set ANOMTOK_CHROMIUM)")
    url = Path(path).resolve().as_uri()
    log = PageLog()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        try:
            ctx = browser.new_context(viewport={"width": width, "height": height}, offline=True)
            ctx.set_default_timeout(timeout_ms)

            def route(r: Any) -> None:
                if r.request.url == url:
                    r.continue_()
                else:
                    log.blocked.append(r.request.url)
                    r.abort()

            ctx.route("**/*", route)
            page = ctx.new_page()
            page.on("request", lambda req: log.requests.append(req.url))
            page.on("console", lambda m: log.console_errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: log.page_errors.append(str(e)))
            page.goto(url)
            page.wait_for_function("window.anomtokMap !== undefined", timeout=timeout_ms)
            yield page, log
        finally:
            browser.close()


def model(page: Any, name: str, prop: str) -> Any:
    """A property of the Bokeh model named ``name`` (typed arrays come back as lists)."""
    return page.evaluate(
        "([n, p]) => { const v = Bokeh.documents[0].get_model_by_name(n)[p];"
        " return ArrayBuffer.isView(v) ? Array.from(v) : v; }",
        [name, prop],
    )


def column(page: Any, source: str, name: str) -> list:
    return page.evaluate("([s, c]) => Array.from(Bokeh.documents[0].get_model_by_name(s).data[c])", [source, name])


def point_on_screen(page: Any, token_id: int) -> tuple[float, float]:
    """Client (x, y) of a token's dot, from the plot's own scales."""
    return tuple(
        page.evaluate(
            """(id) => {
              const doc = Bokeh.documents[0];
              const src = doc.get_model_by_name('anomtok-points');
              const i = Array.from(src.data.id).indexOf(id);
              const view = Bokeh.index.get_one(doc.get_model_by_name('anomtok-figure'));
              const box = view.canvas_view.el.getBoundingClientRect();
              return [box.left + view.frame.x_scale.compute(src.data.x[i]),
                      box.top + view.frame.y_scale.compute(src.data.y[i])];
            }""",
            token_id,
        )
    )


def search(page: Any, text: str) -> list[int]:
    """Type ``text`` in the search box, press Enter; the ids circled."""
    box = page.locator("input[type=text]")
    box.fill(text)
    box.press("Enter")
    page.wait_for_function(
        "(q) => Bokeh.documents[0].get_model_by_name('anomtok-search').value === q", arg=text, timeout=30_000
    )
    return [int(i) for i in column(page, "anomtok-highlight", "id")]


def screenshot(
    path: str, out: str, view: str, query: str | None, hover: bool, width: int, height: int, colors: int
) -> None:
    """A small PNG of the page (palette-quantised with Pillow); ``hover``: over the first token found."""
    from PIL import Image

    with open_page(path, width, height) as (page, log):
        if view != "score":
            page.locator("select").select_option(view)
        found = search(page, query) if query else []
        if hover and found:
            x, y = point_on_screen(page, found[0])
            page.mouse.move(x - 3, y - 3)
            page.mouse.move(x, y)
            page.locator(".bk-tooltip-content").first.wait_for(state="visible")
        tmp = Path(out).with_suffix(".full.png")
        page.screenshot(path=str(tmp), timeout=300_000)
        if log.console_errors or log.page_errors or log.blocked:
            print(f"warning: {log}", file=sys.stderr)
    img = Image.open(tmp).convert("RGB").quantize(colors=colors, method=Image.Quantize.MEDIANCUT)
    img.save(out, optimize=True)
    tmp.unlink()
    print(f"{out}: {Path(out).stat().st_size / 1024:.0f} KiB")


def main() -> None:
    ap = argparse.ArgumentParser(description="Screenshot of an anomtok map.html")
    ap.add_argument("html")
    ap.add_argument("png")
    ap.add_argument("--view", default="score", choices=["score", "kind", "script", "japanese"])
    ap.add_argument("--search")
    ap.add_argument("--hover", action="store_true", help="hover the first token the search finds")
    ap.add_argument("--width", type=int, default=1200)
    ap.add_argument("--height", type=int, default=760)
    ap.add_argument("--colors", type=int, default=64)
    a = ap.parse_args()
    screenshot(a.html, a.png, a.view, a.search, a.hover, a.width, a.height, a.colors)


if __name__ == "__main__":
    main()
