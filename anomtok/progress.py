"""Progress of long steps, reported by library code and shown (or not) by the CLI.

Library code never prints. It reports through the ``anomtok.progress`` logger, at INFO:

- ``note(msg)``: one line, e.g. "converting the GGUF to a torch model (first time only)";
- ``with step("UMAP of 49,152 rows", expect="about 1 min"):`` one line when the step starts
  and one with its duration when it ends;
- ``bar(total, desc)``: a tqdm bar when stderr is a terminal and progress is shown, else an
  object with the same ``update``/``close`` that writes one line at the start and one at the end
  (a log file gets no ``\\r`` spam).

The CLI decides what is seen (``configure``): progress lines by default, nothing but errors with
``-q``, other libraries' bars and warnings only with ``-v``. As a library (no ``configure``) the
logger follows the caller's logging set-up, so nothing is printed unless asked.

>>> import logging
>>> with step("nothing much"):
...     pass
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
import warnings
from collections.abc import Iterator
from typing import Any

__all__ = ["note", "step", "bar", "configure", "enabled", "LOGGER"]

LOGGER = "anomtok.progress"
log = logging.getLogger(LOGGER)


def enabled() -> bool:
    """Whether progress lines are shown at all (the CLI without ``-q``, or a caller's logging)."""
    return log.isEnabledFor(logging.INFO)


def note(msg: str, *args: Any) -> None:
    log.info(msg, *args)


@contextlib.contextmanager
def step(what: str, expect: str | None = None) -> Iterator[None]:
    """One line when ``what`` starts (with the expected duration, when known), one when it ends."""
    t0 = time.perf_counter()
    log.info("%s%s ...", what, f" ({expect})" if expect else "")
    yield
    log.info("%s: done in %.1f s", what, time.perf_counter() - t0)


class _LineBar:
    """A progress bar for logs: a line at the start and one at ``close``, nothing in between."""

    def __init__(self, total: int, desc: str, unit: str):
        self.total, self.desc, self.unit, self.n = total, desc, unit, 0
        self.t0 = time.perf_counter()
        log.info("%s: %s %s ...", desc, f"{total:,}", unit)

    def update(self, n: int = 1) -> None:
        self.n += n

    def close(self) -> None:
        if self.total is not None and self.n:
            dt = time.perf_counter() - self.t0
            log.info("%s: %s %s in %.1f s", self.desc, f"{self.n:,}", self.unit, dt)
            self.total = None  # close once


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def bar(total: int, desc: str, unit: str = "it") -> Any:
    """A bar with ``update(n)`` and ``close()``: tqdm on a terminal, two log lines otherwise,
    nothing when progress is off."""
    if not enabled():
        return _NoBar()
    if sys.stderr.isatty() and _SHOW_BARS:
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, unit=unit, leave=False, disable=False)
    return _LineBar(total, desc, unit)


_SHOW_BARS = True


def configure(*, quiet: bool = False, verbose: int = 0) -> None:
    """The CLI's display rules. ``quiet``: errors only. ``verbose``: 0 = anomtok's progress and
    warnings; 1 = also INFO logs and other libraries' bars and warnings; 2 = DEBUG."""
    root = logging.getLogger()
    _install(root, "anomtok: %(levelname)s: %(message)s")
    root.setLevel(logging.ERROR if quiet else logging.WARNING - 10 * min(verbose, 2))
    _install(log, "anomtok: %(message)s")
    log.propagate = False
    log.setLevel(logging.ERROR if quiet else logging.INFO)
    if quiet or not verbose:
        quiet_third_party()


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of the record (click's test runner and
    pytest swap it), like ``logging.lastResort``."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def _install(logger: logging.Logger, fmt: str) -> None:
    """One anomtok handler on ``logger`` (a second ``configure`` replaces it, never adds one)."""
    for h in [h for h in logger.handlers if isinstance(h, _StderrHandler)]:
        logger.removeHandler(h)
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter(fmt))
    logger.addHandler(handler)


def quiet_third_party() -> None:
    """Other libraries' progress bars, advisory logging and warnings off (``-v`` shows them).

    Environment first (read when transformers / huggingface_hub / tqdm are imported or a bar is
    made; tqdm >= 4.66 takes defaults from ``TQDM_*``: anomtok's own bars pass ``disable=False``),
    then the libraries already imported."""
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    for category in (FutureWarning, DeprecationWarning, UserWarning, RuntimeWarning):
        warnings.filterwarnings("ignore", category=category, module=r"(?!anomtok)")
    if "transformers" in sys.modules:
        from transformers.utils import logging as tlog

        tlog.set_verbosity_error()
        tlog.disable_progress_bar()
