"""What the benchmark scripts share: the machine and checkout a result was measured on, and the
atomic write of a results JSON (``bench/results/``). Imported by scripts run as
``python bench/NAME.py`` (their folder is first on ``sys.path``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def host() -> dict[str, Any]:
    """CPU count, Python version, the checkout's HEAD and the UTC time, as result keys."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    return {
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "git_head": head,
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def write_result(result: dict[str, Any], out: Path) -> None:
    """``result`` as indented JSON at ``out``, written to a temporary file first, then renamed."""
    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_suffix(".tmp")
    part.write_text(json.dumps(result, indent=1) + "\n")
    os.replace(part, out)
