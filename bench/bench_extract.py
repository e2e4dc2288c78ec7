#!/usr/bin/env python
"""Benchmark: how fast (and how lean) is getting the input-embedding matrix with anomtok,
compared with the obvious alternatives, on the packaged real models.

Run from the repository root::

    /work/venv/bin/python bench/bench_extract.py
    /work/venv/bin/python bench/bench_extract.py --models gemma-3-270m --repeats 1 --no-rank

Every measurement runs in a FRESH child process (``python bench_extract.py --child ...``), so
peak memory (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) and in-process caches are isolated.
Wall time is ``time.perf_counter()`` around the work only; the imports the method needs are
timed separately. Methods per model:

* ``anomtok``               ``anomtok.load(alias, hash_files=False)`` (+ a second, warm load in the same
                            process, reported as ``anomtok (warm)``)
* ``anomtok (1 file)``      GGUF only: ``anomtok.load(<materialized single .gguf>)``, the very file
                            the alternatives read (the alias reads the package's raw chunks)
* ``transformers``          full ``from_pretrained`` then ``model.get_input_embeddings().weight``
                            (GGUF: ``AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)``;
                            safetensors folder: ``AutoModel.from_pretrained(folder)``)
* ``gguf package``          GGUF only: ``gguf.GGUFReader(path)`` + ``gguf.quants.dequantize`` on token_embd
* ``safetensors``           safetensors folder only: ``safe_open(...).get_tensor(<word embeddings>)``

The matrices each method produced are compared (max |diff|, exact equality). Then
``anomtok.rank`` is timed on the Gemma matrix with ``nn="off"`` and ``nn="auto"`` (one child each),
with ``ranking.meta["timings_s"]``. Finally the anomtok load of every model that misses its
target is profiled (cProfile + a stage breakdown) in a child.

Results: JSON (written atomically) and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_MODELS = "gemma-3-270m,smollm2-135m,minilm-l6"
DEFAULT_OUT = HERE / "results" / "extract.json"
RANK_MODEL = "gemma-3-270m"
CHILD_TIMEOUT_S = 3600
DEFAULT_EXTRA_SITE = Path.home() / ".cache" / "anomtok-bench" / "site"

# Targets stated in the project (seconds until the Gemma 3 embedding is ready).
TARGETS_S = {"gemma-3-270m": 2.0}
PROJECT_REFERENCE_S = {"gemma-3-270m": {"transformers": 50.0, "gguf package": 13.0}}


# ============================================================================ child side
def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB -> MiB


def _current_rss_mb() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def _vm_hwm_mb() -> float | None:
    """Peak RSS of this process's own address space (cross-check of ru_maxrss)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def _save_matrix(arr: Any, path: str | None) -> dict[str, Any]:
    """Save a float32 copy of the matrix for the parent's comparison (outside the timed part)."""
    import numpy as np

    if hasattr(arr, "detach"):  # torch tensor
        import torch

        arr = arr.detach().to(torch.float32).cpu().numpy()
    arr = np.asarray(arr)
    info = {"shape": list(arr.shape), "dtype_saved": "float32"}
    if path:
        np.save(path, np.ascontiguousarray(arr, dtype=np.float32))
        info["npy"] = path
    return info


def _child_anomtok(spec: dict[str, Any]) -> dict[str, Any]:
    t = time.perf_counter()
    import anomtok

    import_s = time.perf_counter() - t
    rss_after_import = _current_rss_mb()
    target = spec["target"]

    t0 = time.perf_counter()
    emb = anomtok.load(target, hash_files=False)
    E = emb.input
    seconds = time.perf_counter() - t0
    peak, hwm = _peak_rss_mb(), _vm_hwm_mb()
    res: dict[str, Any] = {
        "import_s": import_s,
        "seconds": seconds,
        "peak_rss_mb": peak,
        "vm_hwm_mb": hwm,
        "rss_after_import_mb": rss_after_import,
        "bytes_read": int(emb.provenance.bytes_read),
        "provenance_seconds": emb.provenance.seconds,
        "input_tensor": emb.provenance.input_tensor,
        "storage_dtype": emb.provenance.dtype,
        "result_dtype": str(E.dtype),
        "tied": emb.tied,
        "method_detail": emb.provenance.method,
    }
    if spec.get("warm"):
        # the matrix saved for the comparison is the warm load's (same code, same file), so that
        # saving it does not count in the warm peak
        del emb, E
        t0 = time.perf_counter()
        emb = anomtok.load(target, hash_files=False)
        E = emb.input
        res["warm_seconds"] = time.perf_counter() - t0
        res["warm_peak_rss_mb"] = _peak_rss_mb()
        res["warm_bytes_read"] = int(emb.provenance.bytes_read)
    res.update(_save_matrix(E, spec.get("npy")))
    return res


def _child_transformers(spec: dict[str, Any]) -> dict[str, Any]:
    t = time.perf_counter()
    import torch  # noqa: F401
    import transformers
    from transformers import AutoModel, AutoModelForCausalLM

    import_s = time.perf_counter() - t
    rss_after_import = _current_rss_mb()
    path = Path(spec["target"])
    t0 = time.perf_counter()
    if spec["kind"] == "gguf":
        model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name)
        call = f"AutoModelForCausalLM.from_pretrained({path.parent.name!r}, gguf_file={path.name!r})"
    else:
        model = AutoModel.from_pretrained(str(path))
        call = f"AutoModel.from_pretrained({path.name!r})"
    W = model.get_input_embeddings().weight
    seconds = time.perf_counter() - t0
    peak, hwm = _peak_rss_mb(), _vm_hwm_mb()
    res = {
        "import_s": import_s,
        "seconds": seconds,
        "peak_rss_mb": peak,
        "vm_hwm_mb": hwm,
        "rss_after_import_mb": rss_after_import,
        "call": call,
        "transformers_version": transformers.__version__,
        "model_class": type(model).__name__,
        "result_dtype": str(W.dtype),
        "n_parameters": int(sum(p.numel() for p in model.parameters())),
    }
    res.update(_save_matrix(W, spec.get("npy")))
    return res


def _child_gguf(spec: dict[str, Any]) -> dict[str, Any]:
    t = time.perf_counter()
    import gguf
    import gguf.quants
    import numpy as np

    import_s = time.perf_counter() - t
    rss_after_import = _current_rss_mb()
    t0 = time.perf_counter()
    reader = gguf.GGUFReader(spec["target"])
    t_reader = time.perf_counter() - t0
    tensor = next(x for x in reader.tensors if x.name == "token_embd.weight")
    arr = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
    arr = np.asarray(arr)
    seconds = time.perf_counter() - t0
    peak, hwm = _peak_rss_mb(), _vm_hwm_mb()
    res = {
        "import_s": import_s,
        "seconds": seconds,
        "reader_seconds": t_reader,
        "dequantize_seconds": seconds - t_reader,
        "peak_rss_mb": peak,
        "vm_hwm_mb": hwm,
        "rss_after_import_mb": rss_after_import,
        "storage_dtype": tensor.tensor_type.name,
        "result_dtype": str(arr.dtype),
        "gguf_version": getattr(gguf, "__version__", None),
    }
    res.update(_save_matrix(arr, spec.get("npy")))
    return res


def _child_safetensors(spec: dict[str, Any]) -> dict[str, Any]:
    t = time.perf_counter()
    import torch  # noqa: F401
    from safetensors import safe_open

    import_s = time.perf_counter() - t
    rss_after_import = _current_rss_mb()
    folder = Path(spec["target"])
    t0 = time.perf_counter()
    files = sorted(folder.glob("*.safetensors"))
    W = key = None
    for f in files:
        with safe_open(str(f), framework="pt") as h:
            keys = [k for k in h.keys() if k.endswith("word_embeddings.weight") or k.endswith("embed_tokens.weight")]
            if keys:
                key = keys[0]
                W = h.get_tensor(key).to(torch.float32)
                break
    if W is None:
        raise RuntimeError(f"no word-embedding tensor in {folder}")
    seconds = time.perf_counter() - t0
    peak, hwm = _peak_rss_mb(), _vm_hwm_mb()
    res = {
        "import_s": import_s,
        "seconds": seconds,
        "peak_rss_mb": peak,
        "vm_hwm_mb": hwm,
        "rss_after_import_mb": rss_after_import,
        "tensor": key,
        "result_dtype": str(W.dtype),
    }
    res.update(_save_matrix(W, spec.get("npy")))
    return res


def _child_rank(spec: dict[str, Any]) -> dict[str, Any]:
    t = time.perf_counter()
    import anomtok

    import_s = time.perf_counter() - t
    t0 = time.perf_counter()
    emb = anomtok.load(spec["target"], hash_files=False)
    load_s = time.perf_counter() - t0
    rss_before = _current_rss_mb()
    peak_before = _peak_rss_mb()
    opts = anomtok.RankOptions(nn=spec["nn"])
    t0 = time.perf_counter()
    ranking = anomtok.rank(emb, options=opts)
    seconds = time.perf_counter() - t0
    meta = ranking.meta
    return {
        "import_s": import_s,
        "load_s_untimed": load_s,
        "seconds": seconds,
        "peak_rss_mb": _peak_rss_mb(),
        "rss_before_rank_mb": rss_before,
        "peak_rss_before_rank_mb": peak_before,
        "timings_s": meta.get("timings_s"),
        "nn_mode": meta.get("nn_mode"),
        "device_used": (meta.get("settings") or {}).get("device_used"),
        "shape": meta.get("shape"),
        "n_rows": int(ranking.frame.height),
        "torch_threads": __import__("torch").get_num_threads(),
    }


def _child_profile(spec: dict[str, Any]) -> dict[str, Any]:
    """cProfile of one cold ``anomtok.load`` plus, for GGUF, a stage breakdown (second pass)."""
    import cProfile
    import io
    import pstats

    t = time.perf_counter()
    import anomtok

    import_s = time.perf_counter() - t
    target = spec["target"]
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    anomtok.load(target, hash_files=False)
    prof.disable()
    profiled_s = time.perf_counter() - t0
    out: dict[str, Any] = {"import_s": import_s, "profiled_seconds": profiled_s}
    for key, n in (("cumulative", 30), ("tottime", 25)):
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).strip_dirs().sort_stats(key).print_stats(n)
        out[f"top_{key}"] = buf.getvalue()
    st = pstats.Stats(prof)
    rows = []
    for (file, line, fn), (_cc, nc, tt, ct, _callers) in st.stats.items():  # type: ignore[attr-defined]
        rows.append({"function": f"{Path(file).name}:{line}({fn})", "ncalls": nc, "tottime": tt, "cumtime": ct})
    out["top_tottime_rows"] = sorted(rows, key=lambda r: -r["tottime"])[:15]
    out["top_cumtime_rows"] = sorted(rows, key=lambda r: -r["cumtime"])[:25]

    return out


def _child_resolve(spec: dict[str, Any]) -> dict[str, Any]:
    """Files of an alias, and the single .gguf the alternatives need (done in a child so the
    parent never imports torch: a fat parent would inflate every child's ru_maxrss, which Linux
    carries over from the parent's address space through fork/exec)."""
    from anomtok.loading import resolve_source
    from anomtok.loading.packaged import materialize_gguf

    kind, paths = resolve_source(spec["target"])
    single = str(materialize_gguf(spec["target"])) if kind == "gguf" else None
    return {"kind": kind, "paths": [str(p) for p in paths], "single_gguf": single}


def _child_compare(spec: dict[str, Any]) -> dict[str, Any]:
    return {"comparison": _compare(spec["npys"])}


def _child_stages(spec: dict[str, Any]) -> dict[str, Any]:
    """Cold, unprofiled stage breakdown of a GGUF load, repeating what
    anomtok.loading.gguf_loader.load_gguf does, step by step."""
    t = time.perf_counter()
    import anomtok  # noqa: F401
    from anomtok.loading import resolve_source
    from anomtok.loading.gguf_reader import GGUFFile
    from anomtok.tokens import TokenTable

    import_s = time.perf_counter() - t
    stages: dict[str, float] = {}
    t_all = time.perf_counter()
    _, paths = resolve_source(spec["target"])
    t0 = time.perf_counter()
    gf = GGUFFile(paths)
    stages["GGUFFile(paths): header, metadata (incl. 3 vocab arrays), tensor table"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    tokens = TokenTable.from_gguf_metadata(gf.metadata)
    stages["TokenTable.from_gguf_metadata (token table from the vocab)"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    E = gf.read_tensor("token_embd.weight")
    stages["read_tensor('token_embd.weight'): read + dequantize"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    tokens.with_rows(E.shape[0])
    stages["tokens.with_rows"] = time.perf_counter() - t0
    total = time.perf_counter() - t_all
    t0 = time.perf_counter()
    raw = gf.raw_tensor_bytes("token_embd.weight")
    read_only = time.perf_counter() - t0
    import numpy as np

    # reference: first touch of a fresh buffer the size of the float32 matrix, while E and raw
    # are still alive (so it cannot reuse their pages), under the same machine conditions
    t0 = time.perf_counter()
    probe = np.empty(262144 * 640, dtype=np.float32)
    probe.fill(0)
    touch = time.perf_counter() - t0
    del probe, raw, E
    return {
        "import_s": import_s,
        "seconds": total,
        "stages_s": stages,
        "first_touch_reference_s": touch,
        "read_bytes_only_s_warm": read_only,
        "peak_rss_mb": _peak_rss_mb(),
        "n_metadata_keys": len(gf.metadata),
        "n_tensors": len(gf.tensors),
    }


def _child_touch(spec: dict[str, Any]) -> dict[str, Any]:
    """Machine probe: cost of first-touching fresh memory the size of the Gemma float32 matrix
    (page faults; in a VM also the host backing the guest's pages), vs writing it again."""
    import numpy as np

    n = int(spec.get("n_floats", 262144 * 640))
    t0 = time.perf_counter()
    a = np.empty(n, dtype=np.float32)
    a.fill(0)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    a.fill(1)
    second = time.perf_counter() - t0
    return {
        "seconds": first,
        "first_touch_s": first,
        "rewrite_s": second,
        "mib": n * 4 / 2**20,
        "peak_rss_mb": _peak_rss_mb(),
    }


CHILD_FUNCS = {
    "touch": _child_touch,
    "resolve": _child_resolve,
    "compare": _child_compare,
    "stages": _child_stages,
    "anomtok": _child_anomtok,
    "transformers": _child_transformers,
    "gguf": _child_gguf,
    "safetensors": _child_safetensors,
    "rank": _child_rank,
    "profile": _child_profile,
}


def child_main(spec_json: str, out_path: str) -> int:
    spec = json.loads(spec_json)
    t = time.perf_counter()
    try:
        res = CHILD_FUNCS[spec["func"]](spec)
        res["ok"] = True
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        import traceback

        res = {
            "ok": False,
            "error": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc(),
            "peak_rss_mb": _peak_rss_mb(),
        }
    res["vm_hwm_end_mb"] = _vm_hwm_mb()  # at the very end (after saving the matrix, if any)
    res["child_total_s"] = time.perf_counter() - t
    res["pid"] = os.getpid()
    Path(out_path).write_text(json.dumps(res, default=str))
    return 0 if res["ok"] else 1


# ============================================================================ parent side
def _loadavg() -> list[float] | None:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return None


_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
QUIET = {"max_busy_cores": 0.5, "max_wait_s": 120.0}  # set from --max-busy / --max-wait


def _cpu_jiffies() -> tuple[int, int] | None:
    """(busy, total) jiffies of the whole machine from /proc/stat."""
    try:
        f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return None
    idle = f[3] + f[4]
    return sum(f) - idle, sum(f)


def _busy_cores(interval: float = 1.0) -> float | None:
    a = _cpu_jiffies()
    time.sleep(interval)
    b = _cpu_jiffies()
    if a is None or b is None:
        return None
    return (b[0] - a[0]) / _CLK_TCK / interval


def _wait_for_quiet() -> tuple[float | None, float]:
    """Wait (up to QUIET["max_wait_s"]) until other processes use at most QUIET["max_busy_cores"]
    cores; returns (busy cores when we started, seconds waited)."""
    thr = QUIET["max_busy_cores"]
    if thr is None or thr < 0:
        return None, 0.0
    t0 = time.perf_counter()
    while True:
        busy = _busy_cores(1.0)
        waited = time.perf_counter() - t0
        if busy is None or busy <= thr or waited >= QUIET["max_wait_s"]:
            return busy, waited
        time.sleep(2.0)


EXTRA_SITE: list[str] = []  # set from --extra-site: prepended to PYTHONPATH of the transformers child


def run_child(spec: dict[str, Any], tmpdir: Path, label: str, quiet: bool = False) -> dict[str, Any]:
    fd, out_path = tempfile.mkstemp(prefix="child-", suffix=".json", dir=tmpdir)
    os.close(fd)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec), "--child-out", out_path]
    busy_before, waited = (None, 0.0) if quiet else _wait_for_quiet()
    load_before = _loadavg()
    j0, ru0 = _cpu_jiffies(), resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    try:
        env = dict(os.environ)
        if spec.get("func") == "transformers" and EXTRA_SITE:
            env["PYTHONPATH"] = os.pathsep.join(EXTRA_SITE + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S, cwd=str(REPO), env=env)
        wall = time.perf_counter() - t
        try:
            res = json.loads(Path(out_path).read_text() or "{}")
        except ValueError:
            res = {}
        if not res:
            res = {
                "ok": False,
                "error": f"child exited {proc.returncode} without a result",
                "stderr_tail": proc.stderr[-3000:],
            }
    except subprocess.TimeoutExpired:
        wall = time.perf_counter() - t
        res = {"ok": False, "error": f"timeout after {CHILD_TIMEOUT_S} s"}
    finally:
        Path(out_path).unlink(missing_ok=True)
    j1, ru1 = _cpu_jiffies(), resource.getrusage(resource.RUSAGE_CHILDREN)
    child_cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    res["process_wall_s"] = wall
    res["process_cpu_s"] = child_cpu
    if j0 and j1 and wall > 0:
        # CPU the rest of the machine used while the child ran, in cores (2 = both cores busy)
        res["others_cores_during"] = max(0.0, ((j1[0] - j0[0]) / _CLK_TCK - child_cpu) / wall)
    res["busy_cores_before"] = busy_before
    res["waited_for_quiet_s"] = waited
    res["loadavg_before"] = load_before
    if quiet and res.get("ok"):
        return res
    status = "ok" if res.get("ok") else f"FAILED: {res.get('error')}"
    secs = res.get("seconds")
    extra = f"{secs:.3f} s, peak {res.get('peak_rss_mb', 0):.0f} MiB" if isinstance(secs, (int, float)) else ""
    oth = res.get("others_cores_during")
    oth_s = f", others used {oth:.2f} cores" if isinstance(oth, float) else ""
    print(
        f"  [{label}] {extra} ({status}; process {wall:.1f} s{oth_s}, waited {waited:.0f} s)",
        file=sys.stderr,
        flush=True,
    )
    return res


def _prewarm(paths: list[Path]) -> None:
    """Read every file once so each method starts with the same (warm) OS page cache."""
    for p in paths:
        files = [p] if p.is_file() else [f for f in p.rglob("*") if f.is_file()]
        for f in files:
            with f.open("rb") as h:
                while h.read(1 << 20):
                    pass


def _methods_for(alias: str, tmp_root: Path) -> tuple[str, list[tuple[str, dict[str, Any]]], list[Path]]:
    """(kind, [(method label, child spec)], files to prewarm) for one packaged alias."""
    info = run_child({"func": "resolve", "target": alias}, tmp_root, f"{alias} / resolve files", quiet=True)
    if not info.get("ok"):
        raise SystemExit(f"{alias}: cannot resolve its files: {info.get('error')}\n{info.get('traceback', '')}")
    kind, paths = info["kind"], [Path(p) for p in info["paths"]]
    if kind == "gguf":
        single = Path(info["single_gguf"])
        methods = [
            ("anomtok", {"func": "anomtok", "target": alias, "warm": True}),
            ("gguf package", {"func": "gguf", "target": str(single)}),
            ("transformers", {"func": "transformers", "target": str(single), "kind": "gguf"}),
        ]
        if len(paths) > 1 or paths[0] != single:
            methods.insert(1, ("anomtok (1 file)", {"func": "anomtok", "target": str(single), "warm": False}))
        return kind, methods, paths + ([single] if single not in paths else [])
    folder = paths[0]
    methods = [
        ("anomtok", {"func": "anomtok", "target": alias, "warm": True}),
        ("safetensors", {"func": "safetensors", "target": str(folder)}),
        ("transformers", {"func": "transformers", "target": str(folder), "kind": "folder"}),
    ]
    return kind, methods, [folder]


def _compare(npys: dict[str, str]) -> dict[str, Any]:
    """Pairwise max |diff| (and exact equality) between the matrices the methods produced."""
    import numpy as np

    out: dict[str, Any] = {}
    names = list(npys)
    mats = {n: np.load(p, mmap_mode="r") for n, p in npys.items()}
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            A, B = mats[a], mats[b]
            key = f"{a} vs {b}"
            if A.shape != B.shape:
                out[key] = {"shape_mismatch": [list(A.shape), list(B.shape)]}
                continue
            maxdiff, nan_mismatch = 0.0, 0
            step = 16384
            for s in range(0, A.shape[0], step):
                x, y = np.asarray(A[s : s + step], dtype=np.float64), np.asarray(B[s : s + step], dtype=np.float64)
                nx, ny = np.isnan(x), np.isnan(y)
                nan_mismatch += int((nx != ny).sum())
                d = np.abs(x - y)
                d[nx | ny] = 0.0
                maxdiff = max(maxdiff, float(d.max()) if d.size else 0.0)
            out[key] = {
                "max_abs_diff": maxdiff,
                "identical": bool(maxdiff == 0.0 and nan_mismatch == 0),
                "nan_mismatch": nan_mismatch,
                "max_abs_value": float(np.nanmax(np.abs(A))),
            }
    return out


def _median(vals: list[float]) -> float | None:
    return statistics.median(vals) if vals else None


def _summarise(runs: list[dict[str, Any]], key: str = "seconds") -> dict[str, Any]:
    ok = [r for r in runs if r.get("ok")]
    vals = [r[key] for r in ok if isinstance(r.get(key), (int, float))]
    rss = [r["peak_rss_mb"] for r in ok if isinstance(r.get("peak_rss_mb"), (int, float))]
    imp = [r["import_s"] for r in ok if isinstance(r.get("import_s"), (int, float))]
    oth = [r["others_cores_during"] for r in ok if isinstance(r.get("others_cores_during"), (int, float))]
    return {
        "seconds_median": _median(vals),
        "seconds_all": vals,
        "seconds_min": min(vals) if vals else None,
        "others_cores_during_median": _median(oth),
        "peak_rss_mb_median": _median(rss),
        "import_s_median": _median(imp),
        "n_ok": len(ok),
        "n_failed": len(runs) - len(ok),
        "errors": [r.get("error") for r in runs if not r.get("ok")],
    }


def _sources_hash() -> str:
    """sha256 over anomtok/**/*.py (other people edit the package while benchmarks run)."""
    import hashlib

    h = hashlib.sha256()
    for f in sorted((REPO / "anomtok").rglob("*.py")):
        h.update(str(f.relative_to(REPO)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def _environment(tmp_models: list[str]) -> dict[str, Any]:
    def ver(mod: str) -> str | None:
        try:
            from importlib.metadata import version

            return version(mod)
        except Exception:  # noqa: BLE001
            return None

    def git(*args: str) -> str | None:
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    cpu = None
    try:
        cpu = next(
            (
                ln.split(":", 1)[1].strip()
                for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")
            ),
            None,
        )
    except OSError:
        pass
    mem_gib = None
    try:
        mem_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        pass
    return {
        "date_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "mem_gib": mem_gib,
        "gpu": "none (CPU only)",
        "packages": {m: ver(m) for m in ("anomtok", "torch", "transformers", "gguf", "numpy", "safetensors", "polars")},
        "git_head": git("rev-parse", "HEAD"),
        "git_dirty_anomtok": (git("status", "--porcelain", "--", "anomtok") or "").splitlines(),
        "anomtok_sources_sha256": _sources_hash(),
        "extra_site_for_transformers": EXTRA_SITE,
        "models": tmp_models,
    }


def _atomic_write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, default=str)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _ratio(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.1f}x" if x >= 0.95 else f"{x:.2g}x"


def _fmt(x: Any, nd: int = 2) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{nd}f}"
    return str(x)


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "| model | method | seconds (median) | best s | peak RSS MB | ratio vs anomtok | import s | notes |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for alias, m in results["models"].items():
        base = (m["methods"].get("anomtok") or {}).get("seconds_median")
        for label, s in m["methods"].items():
            sec = s.get("seconds_median")
            ratio = (sec / base) if (sec is not None and base) else None
            notes = []
            if s.get("bytes_read_median") is not None:
                notes.append(f"{s['bytes_read_median'] / 2**20:.0f} MiB of tensor data read")
            if s.get("n_failed"):
                notes.append(f"FAILED {s['n_failed']}x: {s['errors'][0]}")
            if s.get("extra"):
                notes.append(s["extra"])
            lines.append(
                f"| {alias} | {label} | {_fmt(sec, 3)} | {_fmt(s.get('seconds_min'), 3)} | "
                f"{_fmt(s.get('peak_rss_mb_median'), 0)} | "
                f"{_ratio(ratio)} | {_fmt(s.get('import_s_median'), 2)} | "
                f"{'; '.join(notes)} |"
            )
    out = ["\n".join(lines)]
    probe = (results.get("environment") or {}).get("memory_probe") or {}
    if probe.get("first_touch_s_median") is not None:
        out.append(
            f"Machine probe: first touch of 640 MiB of fresh memory (the size of the Gemma float32 matrix) "
            f"takes {probe['first_touch_s_median']:.2f} s median "
            f"({', '.join(f'{x:.2f}' for x in probe['first_touch_s_all'])}); rewriting it "
            f"{probe['rewrite_s_median']:.2f} s."
        )
    comp_lines = ["| model | matrices | max abs diff | identical |", "|---|---|---:|---|"]
    for alias, m in results["models"].items():
        for pair, c in (m.get("comparison") or {}).items():
            if not isinstance(c, dict):
                comp_lines.append(f"| {alias} | {pair}: {c} | - | - |")
            elif "max_abs_diff" in c:
                comp_lines.append(
                    f"| {alias} | {pair} | {c['max_abs_diff']:.3g} | {'yes' if c['identical'] else 'no'} |"
                )
            else:
                comp_lines.append(f"| {alias} | {pair} | {c} | no |")
    if len(comp_lines) > 2:
        out.append("\n".join(comp_lines))
    rk = results.get("ranking") or {}
    if rk:
        r_lines = [
            "| ranking ("
            + RANK_MODEL
            + f" {rk.get('shape')}) | seconds | peak RSS MB | per-step seconds (meta timings_s) |",
            "|---|---:|---:|---|",
        ]
        for nn, s in rk.get("modes", {}).items():
            steps = ", ".join(f"{k} {v:.2f}" for k, v in (s.get("timings_s") or {}).items())
            if s.get("n_failed"):
                steps = f"FAILED: {s['errors'][0]}"
            r_lines.append(
                f'| nn="{nn}" | {_fmt(s.get("seconds_median"), 2)} | {_fmt(s.get("peak_rss_mb_median"), 0)} | {steps} |'
            )
        out.append("\n".join(r_lines))
    return "\n\n".join(out)


def _profile(alias: str, kind: str, repeats: int, out_path: Path, tmp_root: Path) -> dict[str, Any]:
    """cProfile of one cold anomtok.load, plus (GGUF) an unprofiled stage breakdown per run;
    the readable report goes to profile_<alias>.txt next to the JSON."""
    print(f"== profiling anomtok.load({alias!r})", file=sys.stderr, flush=True)
    res = run_child({"func": "profile", "target": alias}, tmp_root, f"profile {alias}")
    if kind == "gguf":
        st = [
            run_child({"func": "stages", "target": alias}, tmp_root, f"stages {alias} / run {i + 1}")
            for i in range(repeats)
        ]
        ok = [r for r in st if r.get("ok")]
        if ok:
            res["stages_s_cold_unprofiled_median"] = {
                k: _median([r["stages_s"][k] for r in ok]) for k in ok[0]["stages_s"]
            }
            res["stages_total_s_median"] = _median([r["seconds"] for r in ok])
            res["first_touch_reference_s_median"] = _median(
                [r["first_touch_reference_s"] for r in ok if r.get("first_touch_reference_s") is not None]
            )
            res["stages_runs"] = st
        else:
            res["stages_error"] = st[0].get("error")
    txt = out_path.parent / f"profile_{alias}.txt"
    date = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    body = [
        f"# anomtok.load({alias!r}, hash_files=False), cold, each in a fresh process; {date}; "
        f"anomtok sources sha256 {_sources_hash()[:16]}",
        f"# cProfile wall time {res.get('profiled_seconds')} s (profiler overhead included)",
        "",
    ]
    if "stages_runs" in res:
        body.append("## stages, each run a fresh process without profiler (seconds)")
        for r in res["stages_runs"]:
            if r.get("ok"):
                body.append(
                    json.dumps(
                        {
                            **{k: round(v, 3) for k, v in r["stages_s"].items()},
                            "total": round(r["seconds"], 3),
                            "first touch of a fresh 640 MiB buffer afterwards (reference)": round(
                                r.get("first_touch_reference_s") or -1, 3
                            ),
                            "others_cores_during": round(r.get("others_cores_during") or 0, 2),
                        },
                        indent=2,
                    )
                )
    for k in ("top_cumulative", "top_tottime"):
        if k in res:
            body.append(f"## {k}")
            body.append(res[k])
    if not res.get("ok"):
        body.append(f"FAILED: {res.get('error')}\n{res.get('traceback', '')}")
    _atomic_write_text(txt, "\n".join(body) + "\n")
    res.pop("top_cumulative", None)
    res.pop("top_tottime", None)
    res["text_report"] = str(txt)
    return res


def profile_only_main(args: argparse.Namespace) -> int:
    """--profile-only: profile the anomtok load of the given models and merge the result into
    the JSON at --out (its "profiles" key), leaving the measurements there untouched."""
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    out_path = Path(args.out).resolve()
    tmp_root = Path(tempfile.mkdtemp(prefix="anomtok-bench-"))
    try:
        results = json.loads(out_path.read_text("utf-8")) if out_path.exists() else {}
        profiles = results.get("profiles") or {}
        for alias in models:
            info = run_child({"func": "resolve", "target": alias}, tmp_root, f"{alias} / resolve files", quiet=True)
            if not info.get("ok"):
                raise SystemExit(f"{alias}: cannot resolve its files: {info.get('error')}")
            _prewarm([Path(p) for p in info["paths"]])
            profiles[alias] = _profile(alias, info["kind"], args.repeats, out_path, tmp_root)
            profiles[alias]["profiled_at_utc"] = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
            profiles[alias]["anomtok_sources_sha256"] = _sources_hash()
        results["profiles"] = profiles
        _atomic_write_json(out_path, results)
    finally:
        for p in tmp_root.glob("*"):
            p.unlink(missing_ok=True)
        if tmp_root.exists() and not any(tmp_root.iterdir()):
            tmp_root.rmdir()
    for alias in models:
        print(f"{alias}: {profiles[alias].get('text_report')}")
    print(f"JSON: {out_path}")
    return 0


def parent_main(args: argparse.Namespace) -> int:
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    out_path = Path(args.out)
    if not out_path.is_absolute():
        out_path = (Path.cwd() / out_path).resolve()
    keep_dir = Path(args.keep_arrays).resolve() if args.keep_arrays else None
    tmp_root = Path(tempfile.mkdtemp(prefix="anomtok-bench-"))
    array_dir = keep_dir or tmp_root
    array_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "environment": _environment(models),
        "settings": {
            "repeats": args.repeats,
            "max_busy_cores": args.max_busy,
            "max_wait_s": args.max_wait,
            "page_cache": "warm: every file is read once before the measurements",
            "timing": "perf_counter around the work only, in a fresh child process per measurement; import time separate",
            "peak_rss": "resource.getrusage(RUSAGE_SELF).ru_maxrss of the child (MiB), includes the interpreter and imports",
            "targets_s": TARGETS_S,
            "project_reference_s": PROJECT_REFERENCE_S,
        },
        "models": {},
    }
    results["environment"]["loadavg_start"] = _loadavg()
    try:
        print("== machine probe: first touch of 640 MiB of fresh memory", file=sys.stderr, flush=True)
        touch = [run_child({"func": "touch"}, tmp_root, f"touch 640 MiB / run {i + 1}") for i in range(args.repeats)]
        ok = [r for r in touch if r.get("ok")]
        results["environment"]["memory_probe"] = {
            "what": "np.empty(262144*640, float32).fill(0) in a fresh process: first touch of 640 MiB, then a rewrite",
            "first_touch_s_median": _median([r["first_touch_s"] for r in ok]),
            "first_touch_s_all": [r["first_touch_s"] for r in ok],
            "rewrite_s_median": _median([r["rewrite_s"] for r in ok]),
            "runs": touch,
        }
        for alias in models:
            print(f"== {alias}", file=sys.stderr, flush=True)
            kind, methods, files = _methods_for(alias, tmp_root)
            _prewarm(files)
            runs: dict[str, list[dict[str, Any]]] = {label: [] for label, _ in methods}
            npys: dict[str, str] = {}
            for rep in range(args.repeats):
                for label, spec in methods:  # round-robin: background load hits every method alike
                    spec = dict(spec)
                    if rep == 0:
                        npy = array_dir / f"{alias}.{label.replace(' ', '_').replace('(', '').replace(')', '')}.npy"
                        spec["npy"] = str(npy)
                    res = run_child(spec, tmp_root, f"{alias} / {label} / run {rep + 1}")
                    runs[label].append(res)
                    if rep == 0 and res.get("ok") and res.get("npy"):
                        npys[label] = res["npy"]
            summary: dict[str, Any] = {}
            for label, _ in methods:
                s = _summarise(runs[label])
                br = [r["bytes_read"] for r in runs[label] if r.get("ok") and "bytes_read" in r]
                s["bytes_read_median"] = _median(br)
                if label == "gguf package":
                    rd = _median([r["reader_seconds"] for r in runs[label] if r.get("ok")])
                    if rd is not None:
                        s["extra"] = f"GGUFReader {rd:.2f} s + dequantize {s['seconds_median'] - rd:.2f} s"
                if label == "transformers":
                    ok = [r for r in runs[label] if r.get("ok")]
                    if ok:
                        s["extra"] = (
                            f"{ok[0]['model_class']}, {ok[0]['n_parameters'] / 1e6:.0f}M params, {ok[0]['result_dtype']}"
                        )
                summary[label] = s
                if label == "anomtok":
                    w = _summarise(runs[label], key="warm_seconds")
                    wr = [r["warm_bytes_read"] for r in runs[label] if r.get("ok") and "warm_bytes_read" in r]
                    w["bytes_read_median"] = _median(wr)
                    w["peak_rss_mb_median"] = _median(
                        [r["warm_peak_rss_mb"] for r in runs[label] if r.get("ok") and "warm_peak_rss_mb" in r]
                    )
                    w["import_s_median"] = None
                    w["extra"] = "2nd load in the same process (peak RSS covers both loads)"
                    summary["anomtok (warm)"] = w
            # keep "anomtok (warm)" right after "anomtok"
            order = ["anomtok", "anomtok (warm)"] + [lb for lb in summary if lb not in ("anomtok", "anomtok (warm)")]
            entry: dict[str, Any] = {
                "kind": kind,
                "methods": {lb: summary[lb] for lb in order if lb in summary},
                "runs": runs,
            }
            print(f"  comparing {', '.join(npys)}", file=sys.stderr, flush=True)
            entry["comparison"] = {}
            if len(npys) > 1:
                cmp_res = run_child({"func": "compare", "npys": npys}, tmp_root, f"{alias} / compare", quiet=True)
                entry["comparison"] = cmp_res.get("comparison") or {"error": cmp_res.get("error")}
            tgt = TARGETS_S.get(alias)
            if tgt is not None:
                sec = summary["anomtok"].get("seconds_median")
                entry["target"] = {"seconds": tgt, "measured": sec, "met": bool(sec is not None and sec < tgt)}
            results["models"][alias] = entry
            if keep_dir is None:
                for p in npys.values():
                    Path(p).unlink(missing_ok=True)
            _atomic_write_json(out_path, results)  # partial results survive a later failure

        if not args.no_rank and RANK_MODEL in models:
            print(f"== ranking on {RANK_MODEL}", file=sys.stderr, flush=True)
            modes: dict[str, Any] = {}
            rank_runs: dict[str, list[dict[str, Any]]] = {}
            shape = None
            for nn in ("off", "auto"):
                rank_runs[nn] = [
                    run_child({"func": "rank", "target": RANK_MODEL, "nn": nn}, tmp_root, f"rank nn={nn} / run {i + 1}")
                    for i in range(args.rank_repeats)
                ]
                s = _summarise(rank_runs[nn])
                ok = [r for r in rank_runs[nn] if r.get("ok")]
                if ok:
                    keys = list(ok[0].get("timings_s") or {})
                    s["timings_s"] = {
                        k: _median([r["timings_s"][k] for r in ok if k in (r.get("timings_s") or {})]) for k in keys
                    }
                    s["nn_mode"] = ok[0].get("nn_mode")
                    s["rss_before_rank_mb"] = ok[0].get("rss_before_rank_mb")
                    shape = ok[0].get("shape")
                modes[nn] = s
            results["ranking"] = {"model": RANK_MODEL, "shape": shape, "modes": modes, "runs": rank_runs}
            _atomic_write_json(out_path, results)

        if not args.no_profile:
            to_profile = [
                a
                for a in models
                if a in results["models"]
                and (not results["models"][a].get("target", {}).get("met", True) or args.profile_all)
            ]
            results["profiles"] = {
                a: _profile(a, results["models"][a]["kind"], args.repeats, out_path, tmp_root) for a in to_profile
            }
        results["environment"]["loadavg_end"] = _loadavg()
        results["markdown"] = markdown(results)
        _atomic_write_json(out_path, results)
    finally:
        for p in tmp_root.glob("*"):
            p.unlink(missing_ok=True)
        if tmp_root.exists() and not any(tmp_root.iterdir()):
            tmp_root.rmdir()

    print(results["markdown"])
    for alias, m in results["models"].items():
        t = m.get("target")
        if t:
            verdict = "MET" if t["met"] else "MISSED"
            print(
                f"\nTarget {alias}: embedding ready in < {t['seconds']} s -> {verdict} "
                f"(anomtok median {_fmt(t['measured'], 3)} s)"
            )
    print(f"\nJSON: {out_path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=DEFAULT_MODELS, help=f"comma-separated aliases (default {DEFAULT_MODELS})")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="JSON results path (default bench/results/extract.json)")
    ap.add_argument("--repeats", type=int, default=3, help="fresh-process runs per (model, method); median reported")
    ap.add_argument("--rank-repeats", type=int, default=1, help="fresh-process runs per ranking mode")
    ap.add_argument("--no-rank", action="store_true", help="skip the ranking timings")
    ap.add_argument("--no-profile", action="store_true", help="skip profiling models that miss their target")
    ap.add_argument("--profile-all", action="store_true", help="profile the anomtok load of every model")
    ap.add_argument(
        "--extra-site",
        metavar="DIR",
        default=str(DEFAULT_EXTRA_SITE),
        help="prepended to PYTHONPATH of the transformers child only, for packages the venv lacks "
        "(transformers needs `accelerate` to load GGUF); default %(default)s, used if it exists",
    )
    ap.add_argument(
        "--max-busy",
        type=float,
        default=0.5,
        metavar="CORES",
        help="before each measurement, wait while other processes use more than this many cores "
        "(default %(default)s; negative: never wait)",
    )
    ap.add_argument(
        "--max-wait",
        type=float,
        default=120.0,
        metavar="S",
        help="longest wait for a quiet machine before measuring anyway (default %(default)s s)",
    )
    ap.add_argument(
        "--profile-only",
        action="store_true",
        help="only profile the anomtok load of --models and merge it into the JSON at --out",
    )
    ap.add_argument("--keep-arrays", metavar="DIR", help="keep the extracted matrices (.npy) in DIR")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--child-out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child_main(args.child, args.child_out)
    import signal

    def _terminate(signum: int, _frame: Any) -> None:  # clean up the temp dir on kill/Ctrl-C
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _terminate)
    if args.repeats < 1 or args.rank_repeats < 1:
        ap.error("--repeats and --rank-repeats must be >= 1")
    QUIET["max_busy_cores"], QUIET["max_wait_s"] = args.max_busy, args.max_wait
    if args.extra_site and Path(args.extra_site).expanduser().is_dir():
        EXTRA_SITE.append(str(Path(args.extra_site).expanduser().resolve()))
    return profile_only_main(args) if args.profile_only else parent_main(args)


if __name__ == "__main__":
    sys.exit(main())
