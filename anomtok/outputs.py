"""Where a command writes: one place that checks an output path before any work is done, and
cleans up after a run that failed.

Every command that writes goes through ``prepare_output`` before it loads anything:

* **An output never overwrites an input.** No file the command writes may be (the same file as,
  by path, symlink or hard link) a file it reads: ``detect ... t.txt -o t.txt``, ``detect
  --glitch g.csv ... -o g.csv``, ``plot --mark-ids out/meta.json -o out`` and ``negtemp
  --ranking out/ranked.parquet -o out`` (the ``meta.json`` beside a ranking is read) are refused;
  so is an input inside a subfolder the command writes into (``plots/``). An output folder may
  hold input files (``rank model.gguf -o .`` is fine) as long as none of them has the name of a
  file the command writes. Inside an input *model folder* only new files may be written: a file
  that already exists there could be one the loader reads (so ``rank ./m -o ./m`` works once,
  and a rerun is refused). Nothing may be written inside a *report folder* a command reads
  (``compare A B -o A/meta.json`` or ``-o A/cmp.md``): that would change report A.
* **An unwritable output is bad input, found up front**: a component of the path that is a
  regular file, a folder where a file is wanted (or the reverse), a folder without write
  permission or a full disk are one ``anomtok: error:`` line and exit 2 before the model is
  loaded. The check creates a small probe file in the nearest existing folder and removes it; it
  creates no folder.
* **Nothing is left behind by a failed run.** Folders are created only when a file is written
  into them. When the run fails or is interrupted (Ctrl-C included), the folders this run
  created are removed, together with the files the command writes inside them (unless
  ``keep_partial``: ``scan`` and ``plot`` keep finished steps and caches so a rerun resumes); a
  folder that existed before is never removed. A full disk or a permission error met while
  writing becomes one line naming the path, exit 2.

Writers use ``make_dir`` (check, then create) or ``check_dir`` (check only) instead of their own
``exists() and not is_dir()`` / ``mkdir`` copies.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from .errors import InputError

__all__ = ["OutputTarget", "prepare_output", "check_dir", "make_dir", "ranking_inputs", "RANK_FILES", "RANK_WRITES"]

RANK_FILES = ("ranked.csv", "ranked.parquet", "meta.json")
RANK_WRITES = (
    *RANK_FILES,
    "knn.npz",
    ".steps/",
)  # write_ranking also writes the neighbour graph and records the rank step
PROBE_BYTES = 4096  # written (and synced) by the writability probe: a full disk fails here
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_NO_SPACE_TEXT = ("No space left on device", "os error 28", "Disk quota exceeded", "File too large")


def _nearest_existing(p: Path) -> tuple[Path, list[Path]]:
    """The nearest ancestor of ``p`` (``p`` included) that exists, and the missing paths below it,
    deepest first."""
    missing: list[Path] = []
    cur = p
    while not os.path.lexists(cur):
        missing.append(cur)
        if cur.parent == cur:
            break
        cur = cur.parent
    return cur, missing


def check_dir(path: str | os.PathLike) -> Path:
    """``path`` as an output folder, created or not: InputError when it, or one of its parents,
    is something other than a folder. Creates nothing."""
    out = Path(path).expanduser()
    if str(path) == "":
        raise InputError("the output folder is an empty path")
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a directory")
    anchor, missing = _nearest_existing(out)
    if missing and not anchor.is_dir():
        raise InputError(f"{anchor}: is a file, not a folder, so {out} cannot be created under it")
    return out


def make_dir(path: str | os.PathLike) -> Path:
    """``check_dir``, then create the folder and its parents; OS errors become one-line InputErrors."""
    out = check_dir(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{exc.filename or out}: cannot create the folder ({exc.strerror or exc})") from None
    return out


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def _same(a: Path, b: Path) -> bool:
    if a == b:
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _probe(folder: Path, shown: Path) -> None:
    """Create, fill, sync and remove a small file in ``folder``: permission, read-only file
    system and a full disk all show here."""
    try:
        fd, name = tempfile.mkstemp(prefix=".anomtok-probe-", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise InputError(f"{shown}: cannot write in {folder} ({exc.strerror or exc})") from None
    try:
        try:
            os.write(fd, b"\0" * PROBE_BYTES)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise InputError(f"{shown}: cannot write in {folder} ({exc.strerror or exc})") from None
    finally:
        try:
            os.unlink(name)
        except OSError:
            pass


class OutputTarget:
    """A checked output (see ``prepare_output``). Use it as a context manager around the work:
    on an error or an interrupt it removes what this run created and turns write errors (full
    disk, permission) into one-line InputErrors."""

    def __init__(self, path: Path, kind: str, writes: tuple[str, ...], keep_partial: bool, missing: list[Path]):
        self.path = path
        self.kind = kind
        self.writes = writes
        self.keep_partial = keep_partial
        self.missing = missing  # paths that did not exist when the target was prepared, deepest first
        self.cleaned: list[Path] = []

    @property
    def created_by_us(self) -> bool:
        """The output folder did not exist when the run started (so what is in it is ours)."""
        return self.kind == "dir" and self.path in self.missing

    def __enter__(self) -> OutputTarget:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            return False
        self.cleanup()
        if isinstance(exc, Exception) and not isinstance(exc, InputError):
            mapped = self._write_error(exc)
            if mapped is not None:
                raise mapped from None
        return False

    def cleanup(self) -> None:
        """Remove what this run created: its own files in a folder it created (unless
        ``keep_partial``), then every folder it created that is now empty, deepest first."""
        if self.created_by_us and not self.keep_partial and self.path.is_dir():
            for name in self.writes:
                p = self.path / name.rstrip("/")
                try:
                    if p.is_dir() and not p.is_symlink():
                        shutil.rmtree(p)
                    elif os.path.lexists(p):
                        p.unlink()
                except OSError:
                    pass
            for stale in self.path.glob(".*.tmp"):  # an atomic writer's temporary file
                stale.unlink(missing_ok=True)
        for d in self.missing:
            try:
                if d.is_dir() and not d.is_symlink():
                    d.rmdir()  # only when empty
                    self.cleaned.append(d)
            except OSError:
                break  # not empty: neither are its parents

    def _ours(self, p: Path) -> bool:
        """``p`` is the output or inside it (a file output: next to it, as its temporary file is)."""
        real, mine = p.resolve(), self.path.resolve()
        return _inside(real, mine) if self.kind == "dir" else real.parent == mine.parent

    def _write_error(self, exc: Exception) -> InputError | None:
        name = getattr(exc, "filename", None)
        p = Path(os.fsdecode(name)) if isinstance(name, (str, bytes, os.PathLike)) else None
        if p is not None and not self._ours(p):
            return None  # about another path (an input, a cache): left to the caller
        text = str(exc)
        if getattr(exc, "errno", None) in _NO_SPACE or any(t in text for t in _NO_SPACE_TEXT):
            gone = " (the partial output was removed)" if self.created_by_us and self.cleaned else ""
            return InputError(f"{self.path}: cannot write: no space left on device{gone}")
        if isinstance(exc, OSError) and p is not None:
            return InputError(f"{p}: cannot write ({exc.strerror or exc})")
        return None


def ranking_inputs(ranking: object) -> list[object]:
    """What ``--ranking FILE`` reads: the file and the ``meta.json`` beside it (checked to be the
    model's). ``negtemp --ranking out/ranked.parquet -o out`` would replace that meta.json."""
    if ranking is None or isinstance(ranking, bool) or not isinstance(ranking, (str, os.PathLike)):
        return []
    return [ranking, Path(ranking).parent / "meta.json"]


def _spec_path(spec: object) -> Path | None:
    """The local path an input argument names, or None (stdin, aliases, hub ids, missing)."""
    if spec is None:
        return None
    text = os.fspath(spec) if isinstance(spec, os.PathLike) else str(spec)
    if text in ("", "-"):
        return None
    p = Path(text).expanduser()
    return p if p.exists() else None


def prepare_output(
    path: str | os.PathLike,
    *,
    kind: str = "dir",
    inputs: Iterable[object] = (),
    report_dirs: Iterable[object] = (),
    writes: Iterable[str] = (),
    keep_partial: bool = False,
) -> OutputTarget:
    """Check an output before the work: see the module docstring for the rules.

    ``kind``: "dir" (an output folder) or "file". ``inputs``: what the command reads: files, and
    folders such as a model folder (arguments that name no local path, like an alias or ``-``,
    are skipped). ``report_dirs``: folders of earlier reports the command reads; nothing may be
    written inside them. ``writes``: for a folder, the names the command writes in it (``"x/"``
    for a subfolder). Creates nothing; returns an ``OutputTarget`` to use around the work."""
    if kind not in ("dir", "file"):
        raise ValueError(f"kind must be 'dir' or 'file', not {kind!r}")
    if str(path) == "":
        raise InputError("the output path is empty")
    out = Path(path).expanduser()
    names = tuple(writes)
    if kind == "dir":
        check_dir(out)
    else:
        if out.is_dir():
            raise InputError(f"{out}: is a folder; give a file name")
        anchor, missing = _nearest_existing(out.parent)
        if missing and not anchor.is_dir():
            raise InputError(f"{anchor}: is a file, not a folder, so {out} cannot be created under it")
    real = out.resolve()
    # -- an output never overwrites an input
    for d in report_dirs:
        dp = _spec_path(d)
        if dp is not None and _inside(real, dp.resolve()):
            raise InputError(
                f"{out}: is inside the report folder {d}, which this command reads; write the output outside it"
            )
    # (resolved path, as the user would write it) of everything the command writes
    targets = [(real, out)] if kind == "file" else [(real / n.rstrip("/"), out / n.rstrip("/")) for n in names]
    folders = set() if kind == "file" else {real / n.rstrip("/") for n in names if n.endswith("/")}
    for spec in inputs:
        ip = _spec_path(spec)
        if ip is None:
            continue
        ir = ip.resolve()
        if ip.is_dir():
            for t, shown in targets:
                if t in folders and _inside(ir, t):
                    raise InputError(
                        f"{shown}: holds the input {spec}, and the command writes into it; choose another output"
                    )
                if _inside(t, ir) and os.path.lexists(t):
                    raise InputError(
                        f"{shown}: exists in the input folder {spec} and would be overwritten; choose another output"
                    )
            continue
        for t, shown in targets:
            if _same(ir, t):
                raise InputError(f"{shown}: is the input {spec}; the output would overwrite it, choose another path")
            if t in folders and _inside(ir, t):
                raise InputError(
                    f"{shown}: holds the input {spec}, and the command writes into that folder; choose another output"
                )
    # -- writable, checked without leaving anything behind
    anchor, missing = _nearest_existing(out if kind == "dir" else out.parent)
    _probe(anchor, out)
    return OutputTarget(out, kind, names, keep_partial, missing)
