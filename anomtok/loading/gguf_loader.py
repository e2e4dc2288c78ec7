"""Embeddings from a GGUF file: read ``token_embd`` (and ``output`` when untied), nothing else."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import torch

from ..embeddings import FileInfo, ModelEmbeddings, Provenance
from ..errors import LoadError
from ..tokens import TokenTable
from .arch import causal_verdict
from .gguf_reader import GGUFFile

__all__ = ["load_gguf"]

INPUT_TENSOR = "token_embd.weight"
OUTPUT_TENSOR = "output.weight"


def load_gguf(paths: Sequence[Path], source: str, *, hash_files: bool = False) -> ModelEmbeddings:
    t0 = time.perf_counter()
    gf = GGUFFile(paths)
    if INPUT_TENSOR not in gf.tensors:
        raise LoadError(
            f"{paths[0]}: the GGUF file has no {INPUT_TENSOR} tensor (not a language model with an input embedding?)"
        )
    tokens = TokenTable.from_gguf_metadata(gf.metadata)
    E = torch.from_numpy(gf.read_tensor(INPUT_TENSOR, keep=True))  # kept: a model built from gf shares them
    out = None
    if OUTPUT_TENSOR in gf.tensors:
        out = torch.from_numpy(gf.read_tensor(OUTPUT_TENSOR, keep=True))
    tokens = tokens.with_rows(E.shape[0])
    arch = str(gf.metadata.get("general.architecture", "unknown"))
    causal, why = causal_verdict(arch)
    files = tuple(FileInfo.of(p, full_hash=hash_files) for p in paths)
    prov = Provenance(
        source=source,
        format="gguf",
        files=files,
        input_tensor=INPUT_TENSOR,
        output_tensor=OUTPUT_TENSOR if out is not None else None,
        dtype=gf.tensors[INPUT_TENSOR].ggml_type,
        method="gguf: read only the embedding tensors" + (f" from {len(paths)} chunks" if len(paths) > 1 else ""),
        seconds=time.perf_counter() - t0,
        bytes_read=gf.nbytes_read,
    )
    config = {
        "architecture": arch,
        "name": gf.metadata.get("general.name"),
        "hidden_size": int(E.shape[1]),
        "tokenizer_model": gf.metadata.get("tokenizer.ggml.model"),
        "token_scheme": tokens.scheme,
        "causal": causal,  # None: an architecture anomtok.loading.arch does not know
        "causal_why": why,
    }
    return ModelEmbeddings(input=E, output=out, tokens=tokens, provenance=prov, config=config, reader=gf)
