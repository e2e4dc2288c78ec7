"""bench/gpu_check.py (issue 13.6) in its small configuration, so the script cannot rot: without
CUDA it compares the CPU in bfloat16 with the CPU in float32 on the tiny model."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parent.parent / "bench" / "gpu_check.py"


def test_gpu_check_quick_runs_and_reports(tiny_model, tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "gpu.json"
    res = mod.main(["--models", str(tiny_model.hf_dir), "--quick", "--out", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(res))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    assert res["device"] == device and res["dtype"] == "bfloat16"
    (m,) = res["models"].values()
    if device == "cpu":  # the ranking is float32 on the CPU both times: identical
        assert m["rank"]["max_abs_diff_score"] == 0.0 and m["rank"]["top100_overlap"] == 1.0
    g = m["generate"]
    for run in (g["cpu/float32"], g[f"{device}/bfloat16"]):
        assert run["tokens"] == 2 * 8 and run["tokens_per_s"] > 0  # 2 prompts x 8 tokens, no EOS stop
    assert 0 <= g["first_token_agreement"] <= 1 and 0 <= g["mean_common_prefix"] <= 8
    v = m["verify"]
    assert v["n"] == 8 and 0 <= v["same_verdict"] <= 1 and v["max_abs_diff_max_prob"] < 0.05
    line = capsys.readouterr().out.splitlines()[-1]
    assert "tokens/s" in line and "same verdict" in line
