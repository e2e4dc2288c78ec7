#!/usr/bin/env python
"""Benchmark: how fast is ``GlitchDetector`` compared with tokenizing alone?

Run from the repository root::

    /work/venv/bin/python bench/bench_detect.py                     # Gemma 3, 20 MB, 3 repeats
    /work/venv/bin/python bench/bench_detect.py --models gemma-3-270m smollm2-135m --mb 5
    /work/venv/bin/python bench/bench_detect.py --glitch out/gemma/ranked.csv --top 1000

The corpus is generated (deterministic for ``--seed``): lines of English and Japanese text (some
mixed), 40-400 characters each, with one line in ``--inject`` carrying the string of a listed
glitch token, so the detector also pays for real hits. The glitch list is the model's own ranking
(``anomtok.rank(..., RankOptions(nn="off"))``, the top ``--top`` tokens that can come from text)
unless ``--glitch`` gives one.

Pairs, each on the same batches and texts (the ratio is detector / tokenizer; target >= 0.8):

* ``batch``   ``tokenizer.encode_batch(lines)`` + every ``.ids``  vs  ``detector.analyze_many(lines)``,
              lines grouped as ``DetectRun`` groups them (1 MiB of characters per batch)
* ``single``  ``tokenizer.encode(line).ids`` per line  vs  ``detector.scan(line)``, on the first
              ``--single-mb`` MB
* ``stream``  read the corpus file line by line, decode, ``encode_batch``  vs  ``DetectRun`` over the
              same file (reading, decoding, error checks, summaries)

* ``split``   per batch: ``encode_batch`` (E), then reading every ``.ids`` (I), then the detector's
              work on the same encodings (D: the id-set test, and offsets and ``Hit`` objects for
              lines with hits). Tokenizing alone costs E + I, the detector E + D; the ratio
              (E + I) / (E + D) isolates the detector's own cost from the tokenizer's speed, which
              on a shared machine varies more between repeats than the detector costs.

Within a repeat the two sides of a pair run back to back, in alternating order. Each timing is
taken as wall time and as process CPU time (all threads; less sensitive to other processes on a
shared machine); the best and the median of the repeats are reported. ``--threads N`` sets
``RAYON_NUM_THREADS`` (the tokenizers thread pool) for a steadier measurement. Results: a
Markdown table on stdout and, with ``--json``, a JSON file.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

EN = (
    "the of and to in is was for on that with as by at from this be are it an or have not which one had "
    "but were all their there can been has more when will would who so if out up about into than them "
    "time people year way day man thing woman life child world school state family student group country "
    "problem hand part place case week company system program question work government number night point "
    "home water room mother area money story fact month lot right study book eye job word business issue "
    "side kind head house service friend father power hour game line end member law car city community "
    "model token training data language research results analysis network memory server request error "
    "quickly carefully often never always today yesterday again new old good great small large long"
).split()
JA = (
    "東京 大阪 京都 日本 日本語 言語 モデル 学習 データ 研究 結果 分析 時間 人 年 日 今日 明日 会社 学校 先生 学生 "
    "友達 家族 仕事 問題 質問 答え 世界 国 町 駅 電車 天気 雨 雪 桜 山 川 海 食べ物 料理 ご飯 お茶 コーヒー "
    "テキスト トークン 処理 速度 検出 文字 漢字 ひらがな カタカナ 辞書 文章 意味 説明 会議 資料 報告"
).split()
PARTICLES = ("は が を に で と の も から まで へ や より").split()
VERBS = (
    "します した しました です でした ます ません ある いる なる できる 思う 言う 見る 行く 来る "
    "使います 考えます 調べました 書きました 読みました"
).split()


def make_corpus(n_bytes: int, seed: int, inject: list[str], every: int) -> list[str]:
    """Lines (each ending in newline) of generated English / Japanese / mixed text."""
    rng = random.Random(f"anomtok-bench-detect-{seed}")
    lines: list[str] = []
    size = 0
    while size < n_bytes:
        kind = rng.random()
        parts: list[str] = []
        target = rng.randint(40, 400)
        length = 0
        while length < target:
            if kind < 0.45 or (kind >= 0.8 and rng.random() < 0.5):
                words = [rng.choice(EN) for _ in range(rng.randint(5, 14))]
                words[0] = words[0].capitalize()
                s = " ".join(words) + rng.choice([". ", ", ", "? ", "! "])
            else:
                s = "".join(rng.choice(JA) + rng.choice(PARTICLES) for _ in range(rng.randint(2, 5)))
                s += rng.choice(VERBS) + rng.choice(["。", "、", "！"])
            parts.append(s)
            length += len(s)
        if inject and len(lines) % every == every - 1:
            at = rng.randrange(len(parts) + 1)
            parts.insert(at, f"see {rng.choice(inject).strip()} here ")
        line = "".join(parts).rstrip() + "\n"
        lines.append(line)
        size += len(line.encode("utf-8"))
    return lines


def batches_of(lines: list[str], batch_chars: int = 1 << 20, batch_records: int = 4096) -> list[list[str]]:
    out, cur, chars = [], [], 0
    for line in lines:
        cur.append(line)
        chars += len(line)
        if chars >= batch_chars or len(cur) >= batch_records:
            out.append(cur)
            cur, chars = [], 0
    if cur:
        out.append(cur)
    return out


def timed(fn: Callable[[], int]) -> tuple[float, float, int]:
    """(wall seconds, process CPU seconds, fn's result)."""
    w0, c0 = time.perf_counter(), time.process_time()
    n = fn()
    return time.perf_counter() - w0, time.process_time() - c0, n


def split_costs(det: Any, batches: list[list[str]]) -> dict[str, float]:
    """Wall and CPU seconds of encode_batch (E), reading ids (I) and the detector's work (D)."""
    tok = det.tokenizer
    out = dict.fromkeys(("E_wall", "E_cpu", "I_wall", "I_cpu", "D_wall", "D_cpu"), 0.0)
    for b in batches:
        w, c, encs = timed(lambda b=b: tok.encode_batch(b, add_special_tokens=False))
        out["E_wall"] += w
        out["E_cpu"] += c
        w, c, _ = timed(lambda encs=encs: [e.ids for e in encs])
        out["I_wall"] += w
        out["I_cpu"] += c
        w, c, _ = timed(lambda b=b, encs=encs: [det._result(t, e) for t, e in zip(b, encs)])
        out["D_wall"] += w
        out["D_cpu"] += c
    return out


def glitch_list_for(alias: str, glitch: str | None, top: int):
    import polars as pl

    import anomtok
    from anomtok.detect import NOT_FROM_TEXT, GlitchList, load_glitch_list
    from anomtok.export import token_bytes

    if glitch:
        return load_glitch_list(glitch, top=top), None
    t0 = time.perf_counter()
    frame = anomtok.rank(anomtok.load(alias, hash_files=False), options=anomtok.RankOptions(nn="off")).frame
    seconds = time.perf_counter() - t0
    top_rows = frame.filter(~pl.col("kind").is_in(NOT_FROM_TEXT) & ~pl.col("is_reference")).sort("rank").head(top)
    ids = [int(i) for i in top_rows["token_id"]]
    return GlitchList(
        ids=tuple(ids),
        scores=dict(zip(ids, top_rows["score"].to_list())),
        ranks=dict(zip(ids, top_rows["rank"].to_list())),
        bytes=dict(zip(ids, token_bytes(top_rows))),
        source=f"{alias} ranking (top {top}, nn=off)",
    ), seconds


def bench_model(alias: str, args: argparse.Namespace) -> dict[str, Any]:
    from anomtok.detect import DetectRun, GlitchDetector

    glitch, rank_s = glitch_list_for(alias, args.glitch, args.top)
    t0 = time.perf_counter()
    det = GlitchDetector(alias, glitch)
    build_s = time.perf_counter() - t0
    tok = det.tokenizer
    # strings that make the listed tokens when written after a space, so injected lines really hit
    inject = [
        b.decode("utf-8")
        for i, b in ((i, det.table.bytes[i]) for i in glitch.ids)
        if b.startswith(b" ") and len(b) > 3 and b[1:].decode("utf-8", "ignore").isalnum()
    ][:50]
    lines = make_corpus(int(args.mb * 1e6), args.seed, inject, args.inject)
    n_bytes = sum(len(s.encode("utf-8")) for s in lines)
    batches = batches_of(lines)
    single = []
    acc = 0
    for s in lines:
        if acc >= args.single_mb * 1e6:
            break
        single.append(s)
        acc += len(s.encode("utf-8"))
    tmp = Path(tempfile.mkdtemp(prefix="anomtok-bench-detect-")) / "corpus.txt"
    tmp.write_text("".join(lines), encoding="utf-8")

    def tok_batch() -> int:
        return sum(len(e.ids) for b in batches for e in tok.encode_batch(b, add_special_tokens=False))

    def det_batch() -> int:
        return sum(r.tokens for b in batches for r in det.analyze_many(b))

    def tok_single() -> int:
        return sum(len(tok.encode(s, add_special_tokens=False).ids) for s in single)

    def det_single() -> int:
        n = 0
        for s in single:
            n += len(det.scan(s))
        return n

    def tok_stream() -> int:
        n = 0
        with open(tmp, "rb") as f:
            cur: list[str] = []
            chars = 0
            for raw in f:
                cur.append(raw.decode("utf-8"))
                chars += len(cur[-1])
                if chars >= 1 << 20 or len(cur) >= 4096:
                    n += sum(len(e.ids) for e in tok.encode_batch(cur, add_special_tokens=False))
                    cur, chars = [], 0
            if cur:
                n += sum(len(e.ids) for e in tok.encode_batch(cur, add_special_tokens=False))
        return n

    def det_stream() -> int:
        run = DetectRun(det, [str(tmp)])
        for _ in run:
            pass
        det_stream.hits = run.total.hits  # type: ignore[attr-defined]
        return run.total.tokens

    pairs = {"batch": (tok_batch, det_batch), "single": (tok_single, det_single), "stream": (tok_stream, det_stream)}
    results: dict[str, Any] = {}
    n_tokens = tok_batch()  # warm-up, and the token count
    hits = sum(len(r.hits) for b in batches for r in det.analyze_many(b))
    single_tokens = tok_single()
    for name, (base, mine) in pairs.items():
        base_t: list[tuple[float, float]] = []
        mine_t: list[tuple[float, float]] = []
        for rep in range(args.repeats):
            order = [(base, base_t), (mine, mine_t)]
            for fn, out in order if rep % 2 == 0 else order[::-1]:
                w, c, _ = timed(fn)
                out.append((w, c))
        tokens = single_tokens if name == "single" else n_tokens
        results[name] = {"tokens": tokens, "tokenizer_s": base_t, "detector_s": mine_t}
        for j, clock in enumerate(("wall", "cpu")):
            b, m = [t[j] for t in base_t], [t[j] for t in mine_t]
            results[name] |= {
                f"tokenizer_tok_per_s_best_{clock}": tokens / min(b),
                f"detector_tok_per_s_best_{clock}": tokens / min(m),
                f"ratio_best_{clock}": min(b) / min(m),
                f"ratio_median_{clock}": statistics.median(b) / statistics.median(m),
            }
    splits = [split_costs(det, batches) for _ in range(args.repeats)]
    split: dict[str, Any] = {"tokens": n_tokens, "repeats": splits}
    for clock in ("wall", "cpu"):
        ratios = [(s[f"E_{clock}"] + s[f"I_{clock}"]) / (s[f"E_{clock}"] + s[f"D_{clock}"]) for s in splits]
        best = min(splits, key=lambda s: s[f"E_{clock}"])
        split |= {
            f"ratio_median_{clock}": statistics.median(ratios),
            f"ratio_min_{clock}": min(ratios),
            f"E_best_{clock}": best[f"E_{clock}"],
            f"I_median_{clock}": statistics.median(s[f"I_{clock}"] for s in splits),
            f"D_median_{clock}": statistics.median(s[f"D_{clock}"] for s in splits),
        }
    results["split"] = split
    tmp.unlink()
    tmp.parent.rmdir()
    return {
        "model": alias,
        "glitch": glitch.source,
        "glitch_tokens": len(glitch),
        "rank_s": rank_s,
        "detector_build_s": build_s,
        "corpus_bytes": n_bytes,
        "lines": len(lines),
        "tokens": n_tokens,
        "hits": hits,
        "stream_hits": getattr(det_stream, "hits", None),
        "single_bytes": acc,
        "pairs": results,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["gemma-3-270m"])
    ap.add_argument("--mb", type=float, default=20.0, help="corpus size in MB (UTF-8)")
    ap.add_argument("--single-mb", type=float, default=2.0, help="MB for the one-text-at-a-time pair")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--top", type=int, default=1000)
    ap.add_argument("--glitch", default=None, help="a glitch list for every model (default: rank each model)")
    ap.add_argument("--inject", type=int, default=200, help="one line in N holds a glitch token's string")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="write the results here")
    ap.add_argument("--threads", type=int, default=None, help="RAYON_NUM_THREADS for the tokenizers thread pool")
    args = ap.parse_args(argv)
    if args.threads:
        os.environ["RAYON_NUM_THREADS"] = str(args.threads)  # before tokenizers starts its pool

    from anomtok._version import __version__

    runs = [bench_model(m, args) for m in args.models]
    meta = {
        "anomtok_version": __version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "rayon_threads": os.environ.get("RAYON_NUM_THREADS", "default"),
        "load_average": os.getloadavg(),
        "args": vars(args),
    }
    try:
        import tokenizers

        meta["tokenizers"] = tokenizers.__version__
    except ImportError:  # pragma: no cover
        pass
    print(
        "| model | pair | tokens | tokenizer tok/s (best wall) | detector tok/s (best wall) | ratio best wall | "
        "ratio median wall | ratio best CPU | ratio median CPU |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in runs:
        for name, p in r["pairs"].items():
            if name == "split":
                continue
            print(
                f"| {r['model']} | {name} | {p['tokens']:,} | {p['tokenizer_tok_per_s_best_wall']:,.0f} | "
                f"{p['detector_tok_per_s_best_wall']:,.0f} | {p['ratio_best_wall']:.2f} | {p['ratio_median_wall']:.2f} | "
                f"{p['ratio_best_cpu']:.2f} | {p['ratio_median_cpu']:.2f} |"
            )
    print(
        "\n| model | encode_batch E (best, s) | read ids I (median, s) | detector D (median, s) | "
        "(E+I)/(E+D) median wall | median CPU | worst CPU |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in runs:
        p = r["pairs"]["split"]
        print(
            f"| {r['model']} | {p['E_best_wall']:.1f} | {p['I_median_wall']:.2f} | {p['D_median_wall']:.2f} | "
            f"{p['ratio_median_wall']:.3f} | {p['ratio_median_cpu']:.3f} | {p['ratio_min_cpu']:.3f} |"
        )
    for r in runs:
        print(
            f"\n{r['model']}: {r['corpus_bytes'] / 1e6:.1f} MB, {r['lines']:,} lines, {r['tokens']:,} tokens, "
            f"{r['hits']:,} hits of {r['glitch_tokens']} glitch tokens ({r['glitch']}); detector built in "
            f"{r['detector_build_s']:.1f} s" + (f", ranking {r['rank_s']:.1f} s" if r["rank_s"] else "")
        )
    print(
        f"\nmachine: {meta['cpus']} CPUs, load average {', '.join(f'{x:.1f}' for x in meta['load_average'])}, "
        f"tokenizers {meta.get('tokenizers')}, RAYON_NUM_THREADS={meta['rayon_threads']}"
    )
    if args.json:
        from anomtok.export import write_json

        write_json({"meta": meta, "runs": runs}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
