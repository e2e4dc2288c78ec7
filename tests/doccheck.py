"""Re-run the commands a Markdown document shows and compare their output with the document.

In the manner of ``cog``: the document is the test. Rules (also in ``docs/README.md``):

* Every ```` ```console ```` block is run unless the line before it is
  ``<!-- doccheck: skip REASON -->``. Lines starting with ``$ `` are shell commands, run in one
  folder per document, so later blocks see earlier blocks' files;
  the lines after a command, up to the next command, are what it prints, stdout and stderr
  together, as a user sees them in a log (stderr is not a terminal: one line per step);
  ``<!-- doccheck: stdout -->`` before a block compares stdout alone (for commands whose stderr
  is progress with timings). Each block runs in one bash, so ``echo $?`` works.
* Expected output matches actual output line by line, after stripping trailing blanks. A line
  ``...`` matches any number of lines. Within a line the text around the numbers must be equal
  (token strings, names, punctuation) and each number may differ by the block's relative
  tolerance (default ``DEFAULT_TOL`` = 1e-4, float noise between runs;
  ``<!-- doccheck: tol=0.05 -->`` before the block allows 5%).
* Every ```` ```python ```` block is run as a script (unless skipped) and must exit 0; when
  the next fenced block is preceded by ``<!-- doccheck: output -->``, that block is the
  script's expected stdout, compared as above.
* ``<!-- doccheck: setup COMMAND -->`` anywhere runs COMMAND (hidden from readers) at that point.
* Commands run in a fresh temporary folder per document, with the venv's ``anomtok`` first on
  ``PATH`` and ``$REPO`` pointing at the checkout.

``python tests/doccheck.py FILE.md...`` checks; ``--update`` rewrites each block's output with
what the run printed (keeping a ``...`` line where the document had one) and prints what changed.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_DIRECTIVE = re.compile(r"^<!--\s*doccheck:\s*(\w+)\s*=?\s*(.*?)\s*-->\s*$")
_MARK = "@@doccheck-exit@@"


@dataclasses.dataclass
class Block:
    kind: str  # "console" | "python" | "setup"
    start: int  # index of the first line inside the fence (or of the directive)
    end: int  # index of the closing fence
    lines: list[str]
    tol: float = 0.0
    skip: str | None = None
    stdout_only: bool = False
    output: list[str] | None = None  # a python block's expected output (next text block)
    output_at: tuple[int, int] | None = None


@dataclasses.dataclass
class Mismatch:
    doc: str
    line: int
    command: str
    expected: list[str]
    actual: list[str]
    why: str

    def __str__(self) -> str:
        exp = "\n".join("  - " + s for s in self.expected)
        act = "\n".join("  + " + s for s in self.actual)
        return f"{self.doc}:{self.line}: {self.command}\n  {self.why}\n{exp}\n{act}"


def parse(text: str) -> list[Block]:
    lines = text.split("\n")
    blocks: list[Block] = []
    pending: dict[str, str] = {}
    i = 0
    while i < len(lines):
        line = lines[i]
        m = _DIRECTIVE.match(line.strip())
        if m:
            key, value = m.group(1), m.group(2)
            if key == "setup":
                blocks.append(Block("setup", i, i, [value]))
            else:
                pending[key] = value
            i += 1
            continue
        fence = re.match(r"^(\s*)```(\w*)\s*$", line)
        if fence:
            lang, indent = fence.group(2), fence.group(1)
            j = i + 1
            while j < len(lines) and not re.match(rf"^{indent}```\s*$", lines[j]):
                j += 1
            body = [s[len(indent) :] if s.startswith(indent) else s for s in lines[i + 1 : j]]
            if lang in ("console", "python"):
                blocks.append(
                    Block(
                        lang,
                        i + 1,
                        j,
                        body,
                        tol=float(pending.get("tol", 0) or 0),
                        skip=pending.get("skip"),
                        stdout_only="stdout" in pending,
                    )
                )
            elif "output" in pending and blocks and blocks[-1].kind == "python":
                blocks[-1].output, blocks[-1].output_at = body, (i + 1, j)
            pending = {}
            i = j + 1
            continue
        if line.strip():
            pending = {}
        i += 1
    return blocks


def commands(block: Block) -> list[tuple[int, str, list[str]]]:
    """``(line offset, command, expected lines)`` of a console block."""
    out: list[tuple[int, str, list[str]]] = []
    for k, line in enumerate(block.lines):
        if line.startswith("$ "):
            out.append((k, line[2:], []))
        elif out:
            out[-1][2].append(line.rstrip())
    return out


_NUM = re.compile(r"((?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?)")  # 12,345 is one number
DEFAULT_TOL = 1e-4  # relative: float noise between runs (BLAS order), never a different figure


def line_matches(expected: str, actual: str, tol: float) -> bool:
    """Equal text around the numbers; each number within ``tol`` (relative) of the expected one."""
    if expected.rstrip() == actual.rstrip():
        return True
    ep, ap = _NUM.split(expected.rstrip()), _NUM.split(actual.rstrip())
    if len(ep) != len(ap):
        return False
    for k, (e, a) in enumerate(zip(ep, ap)):
        if k % 2 == 0:  # text between numbers: exact (tokens, names, ids' surroundings)
            if e != a:
                return False
        elif e != a:
            x, y = float(e.replace(",", "")), float(a.replace(",", ""))
            if abs(x - y) > max(tol, DEFAULT_TOL) * max(abs(x), abs(y)):
                return False
    return True


def output_matches(expected: list[str], actual: list[str], tol: float) -> bool:
    """Line-by-line match with ``...`` matching any run of lines (backtracking, small inputs)."""
    exp = list(expected)
    while exp and not exp[-1].strip():
        exp.pop()
    act = list(actual)
    while act and not act[-1].strip():
        act.pop()

    def go(i: int, j: int) -> bool:
        if i == len(exp):
            return j == len(act)
        if exp[i].strip() == "...":
            return any(go(i + 1, k) for k in range(j, len(act) + 1))
        return j < len(act) and line_matches(exp[i], act[j], tol) and go(i + 1, j + 1)

    return go(0, 0)


def _script(cmds: list[str], stdout_only: bool = False) -> str:
    parts = ["set +e"]
    for c in cmds:
        parts.append(f"{{ {c}\n}} {'2>/dev/null' if stdout_only else '2>&1'}")
        parts.append(f"__s=$?; printf '\\n{_MARK} %d\\n' $__s; (exit $__s)")
    return "\n".join(parts) + "\n"


def _env(work: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["REPO"] = str(REPO)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.pop("FORCE_COLOR", None)
    env["COLUMNS"] = "200"
    return env


def run_document(path: Path, *, work: Path | None = None, timeout: float = 1800) -> tuple[list[Mismatch], dict]:
    """Run every block of ``path``; mismatches, and the actual outputs keyed by (block start, k)."""
    text = path.read_text(encoding="utf-8")
    blocks = parse(text)
    tmp = None
    if work is None:
        tmp = tempfile.TemporaryDirectory(prefix="doccheck.")
        work = Path(tmp.name)
    env = _env(work)
    problems: list[Mismatch] = []
    actual_of: dict[tuple[int, int], list[str]] = {}
    try:
        for b in blocks:
            if b.skip is not None:
                continue
            if b.kind == "setup":
                r = subprocess.run(
                    ["bash", "-c", b.lines[0]], cwd=work, env=env, capture_output=True, text=True, timeout=timeout
                )
                if r.returncode:
                    problems.append(
                        Mismatch(
                            str(path),
                            b.start + 1,
                            b.lines[0],
                            [],
                            r.stderr.splitlines()[-5:],
                            f"setup failed (exit {r.returncode})",
                        )
                    )
                continue
            if b.kind == "python":
                r = subprocess.run(
                    [sys.executable, "-c", "\n".join(b.lines)],
                    cwd=work,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=timeout,
                )
                got = [x.rstrip() for x in r.stdout.rstrip("\n").split("\n")] if r.stdout else []
                actual_of[(b.start, -1)] = got
                if r.returncode:
                    problems.append(
                        Mismatch(
                            str(path),
                            b.start + 1,
                            "python block",
                            [],
                            r.stderr.splitlines()[-8:],
                            f"exit {r.returncode}",
                        )
                    )
                elif b.output is not None and not output_matches(b.output, got, b.tol):
                    problems.append(
                        Mismatch(
                            str(path),
                            b.start + 1,
                            "python block",
                            b.output,
                            got,
                            f"output differs (tolerance {b.tol:g})",
                        )
                    )
                continue
            cmds = commands(b)
            r = subprocess.run(
                ["bash", "-c", _script([c for _, c, _ in cmds], b.stdout_only)],
                cwd=work,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
            chunks = _split(r.stdout, len(cmds))
            for (k, cmd, expected), (got, status) in zip(cmds, chunks):
                actual_of[(b.start, k)] = got
                if status is None:
                    problems.append(
                        Mismatch(
                            str(path),
                            b.start + k + 1,
                            cmd,
                            expected,
                            r.stderr.splitlines()[-5:],
                            "the block stopped before this command",
                        )
                    )
                elif not output_matches(expected, got, b.tol):
                    problems.append(
                        Mismatch(
                            str(path),
                            b.start + k + 1,
                            cmd,
                            expected,
                            got,
                            f"output differs (tolerance {b.tol:g}, exit {status}); "
                            f"stderr tail: {r.stderr.splitlines()[-2:]}",
                        )
                    )
    finally:
        if tmp is not None:
            tmp.cleanup()
    return problems, actual_of


def _split(stdout: str, n: int) -> list[tuple[list[str], int | None]]:
    out: list[tuple[list[str], int | None]] = []
    cur: list[str] = []
    for line in stdout.split("\n"):
        if line.startswith(_MARK):
            while cur and not cur[-1].strip():
                cur.pop()
            out.append(([s.rstrip() for s in cur], int(line.split()[1])))
            cur = []
        else:
            cur.append(line)
    while len(out) < n:
        out.append(([], None))
    return out


def update_document(path: Path, actual_of: dict) -> str:
    """The document with each command's output replaced by what the run printed."""
    lines = path.read_text(encoding="utf-8").split("\n")
    edits: list[tuple[int, int, list[str]]] = []
    for b in parse("\n".join(lines)):
        if b.kind == "python" and b.output_at and (b.start, -1) in actual_of and b.skip is None:
            edits.append((b.output_at[0], b.output_at[1], actual_of[(b.start, -1)]))
        if b.kind != "console" or b.skip is not None:
            continue
        cmds = commands(b)
        indent = re.match(r"^(\s*)", lines[b.start - 1]).group(1)
        for n, (k, _cmd, expected) in enumerate(cmds):
            if (b.start, k) not in actual_of:
                continue
            got = actual_of[(b.start, k)]
            if "..." in [e.strip() for e in expected]:
                cut = [e.strip() for e in expected].index("...")
                tail = len(expected) - cut - 1
                got = got[:cut] + ["..."] + (got[-tail:] if tail else []) if len(got) > cut + tail else got
            stop = b.start + (cmds[n + 1][0] if n + 1 < len(cmds) else len(b.lines))
            edits.append((b.start + k + 1, stop, [indent + s if s else s for s in got]))
    for a, z, new in reversed(edits):
        lines[a:z] = new
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--update", action="store_true", help="rewrite the outputs with this run's")
    args = ap.parse_args(argv)
    bad = 0
    for f in args.files:
        problems, actual = run_document(f)
        if args.update:
            new = update_document(f, actual)
            if new != f.read_text(encoding="utf-8"):
                f.write_text(new, encoding="utf-8")
                print(f"{f}: updated")
        for p in problems:
            if args.update and p.why.startswith("output differs"):
                continue
            print(p, file=sys.stderr)
            bad += 1
        print(f"{f}: {'ok' if not problems else f'{len(problems)} mismatch(es)'}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
