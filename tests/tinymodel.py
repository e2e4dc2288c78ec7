"""Build a real, tiny causal LM whose vocabulary has a known set of never-trained tokens.

This is a test fixture, not part of the package. `build_tiny_model` does, deterministically for a
given seed, in about 15 s of one CPU core (training is ~12 s of it):

1. Writes two corpora. Corpus B (the LM's training text) is templated English built from a small
   word list. The "extra" text uses words that never occur in B: English ones ("xylophone",
   "kumquat"...) and Japanese ones ("東京", "トークン"...).
2. Trains a byte-level BPE tokenizer (``tokenizers``, full 256-byte initial alphabet) on
   A = B + extra, so the merged pieces of the extra words are in the vocabulary but never occur in
   B. ``<bos>``, ``<eos>``, ``<pad>`` are special tokens of the trained vocabulary;
   ``<unused0>``..``<unused{n-1}>`` are then *added* special tokens, at the end of the vocabulary,
   so the ordinary part of the vocabulary is the same whatever ``n_unused`` is.
3. Tokenizes B exactly as the model sees it (``<bos> doc <eos>`` per document, chunked into
   windows) and records every id's count in that stream: ordinary ids with count 0 are
   ``unseen_ids`` (this includes single-byte tokens B never uses, and BPE intermediates that only
   ever occur inside a longer merge).
4. Trains a 2-layer ``LlamaForCausalLM`` (hidden 64) with AdamW on that stream, for whole epochs,
   so every window is seen. The embedding matrix has ``vocab_size`` rounded up to a multiple of
   64 rows, so a few padding rows past the tokenizer's vocabulary exist, as in real checkpoints.
5. Saves the model as a Hugging Face folder (safetensors only) and as GGUF files written the way
   llama.cpp's ``convert_hf_to_gguf.py`` writes a llama model (F32, and Q8_0 for every 2-D weight).

`cached_tiny_model` keeps what `build_tiny_model` made in a cache folder outside the repository
(tests/conftest.py: ``$ANOMTOK_TEST_CACHE``, else ``$XDG_CACHE_HOME/anomtok-tests`` or
``~/.cache/anomtok-tests``; ``ANOMTOK_TEST_CACHE=off`` builds every session), one entry per
`cache_key`: a hash of this file's source, the build arguments, the Python, torch, transformers,
tokenizers, gguf, safetensors and numpy versions, and the CPU. An entry is built in a temporary
folder and renamed into place, and its files' SHA-256 are checked before each use; a session
copies the entry into its own temporary folder, so no test can change the cache.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import random
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["TinyModel", "build_tiny_model", "cached_tiny_model", "cache_key", "EXTRA_WORDS_EN", "EXTRA_WORDS_JA"]

# ----------------------------------------------------------------------------------------------
# corpora

_NOUNS = (
    "cat dog bird fish horse house garden river mountain city road car train book letter "
    "window door table chair teacher student doctor farmer king queen child friend family "
    "water bread apple tree flower forest village market school office paper story song "
    "night morning summer winter money music picture island bridge castle ship ocean field "
    "lake hill stone wall floor roof kitchen bottle glass plate spoon knife basket box "
    "coat hat shoe shirt bag ring clock lamp candle mirror bed pillow blanket blanket "
    "rabbit mouse sheep goat cow duck chicken wolf bear fox lion tiger snake frog bee "
    "baker driver singer painter writer sailor soldier nurse pilot player worker captain "
    "cake soup cheese butter milk honey rice salt sugar tea coffee orange lemon cherry "
    "wind rain snow cloud storm sun moon star sky fire smoke light shadow color sound "
    "game party dinner lesson question answer problem idea plan reason promise secret "
    "church tower station library hospital museum theatre harbour factory prison palace "
    "boat wheel engine machine computer phone camera radio ticket map letter parcel"
).split()
_VERBS_PAST = (
    "saw found liked wanted carried painted opened closed visited watched helped called "
    "followed moved cleaned built bought sold read wrote made kept left took gave showed "
    "loved hated missed needed tried started finished climbed crossed counted covered "
    "dropped filled fixed hid lifted lost met noticed ordered passed pulled pushed "
    "reached remembered forgot searched sent shared stopped touched turned used washed"
).split()
_ADJS = (
    "big small old new red green blue happy quiet loud warm cold dark bright long short "
    "young tall strong gentle busy lazy clever simple heavy light soft hard sweet bitter "
    "empty full clean dirty early late fast slow rich poor brave shy proud kind funny "
    "strange famous hungry thirsty tired angry calm wild tiny huge round flat sharp"
).split()
_NAMES = "Anna Peter Maria Tom Lucy Mark Sarah David Emma Paul Oliver Helen Daniel Rosa Victor Laura".split()
_PLACES = "London Paris Berlin Rome Madrid Vienna Oslo Dublin Lisbon Prague Warsaw Athens".split()
_ADVS = "slowly quickly often never always today yesterday again sometimes carefully happily suddenly".split()

# Words of the extra text: they never occur in corpus B, so their merges are in the vocabulary
# but never in the LM's training data.
EXTRA_WORDS_EN = (
    "xylophone",
    "kumquat",
    "zephyr",
    "jukebox",
    "quizzical",
    "fjord",
    "wyvern",
    "sphinx",
    "pizzazz",
    "zigzag",
    "vortex",
    "quartz",
    "oxygen",
    "jaguar",
    "buzzword",
    "equinox",
    "avocado",
    "kayak",
)
EXTRA_WORDS_JA = (
    "東京",
    "トークン",
    "日本語",
    "大阪",
    "京都",
    "言語",
    "モデル",
    "学習",
    "未使用",
    "漢字",
    "ひらがな",
    "カタカナ",
    "東京タワー",
    "さくら",
)


def _zipf_choice(rng: random.Random, words: tuple[str, ...] | list[str]) -> str:
    # Zipf-like weights, so that some seen words (and their tokens) are rare.
    weights = [1.0 / (i + 1) for i in range(len(words))]
    return rng.choices(words, weights=weights, k=1)[0]


def _sentence(rng: random.Random) -> str:
    n = lambda: _zipf_choice(rng, _NOUNS)  # noqa: E731
    v = lambda: _zipf_choice(rng, _VERBS_PAST)  # noqa: E731
    a = lambda: _zipf_choice(rng, _ADJS)  # noqa: E731
    p = lambda: rng.choice(_NAMES)  # noqa: E731
    templates = (
        lambda: f"The {a()} {n()} {v()} the {n()}.",
        lambda: f"{p()} {v()} a {a()} {n()} in {rng.choice(_PLACES)}.",
        lambda: f"{p()} and {p()} {v()} the {n()} {rng.choice(_ADVS)}.",
        lambda: f"A {n()} was {a()}, but the {n()} was {a()}.",
        lambda: f"In {rng.randint(1900, 2024)}, {p()} {v()} {rng.randint(2, 99)} {n()}s.",
        lambda: f"Why did {p()} say that the {n()} was so {a()}?",
        lambda: f"{p()} {v()} the {a()} {n()} and the {a()} {n()}.",
    )
    return rng.choice(templates)()


def make_corpus_b(seed: int, n_docs: int = 700) -> list[str]:
    """The LM's training documents: templated English, deterministic for a seed."""
    rng = random.Random(f"anomtok-tiny-b-{seed}")
    return [" ".join(_sentence(rng) for _ in range(rng.randint(3, 7))) for _ in range(n_docs)]


def make_extra_text(seed: int, n_lines: int = 160) -> str:
    """Text in the tokenizer's corpus only: every word of it is absent from corpus B."""
    rng = random.Random(f"anomtok-tiny-extra-{seed}")
    lines = []
    for _ in range(n_lines):
        en = " ".join(rng.choice(EXTRA_WORDS_EN) for _ in range(rng.randint(3, 6)))
        ja = "".join(rng.choice(EXTRA_WORDS_JA) for _ in range(rng.randint(2, 4)))
        lines.append(f"{en} {ja}")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------
# the fixture

BASE_VOCAB_SIZE = 744  # BPE vocabulary incl. <bos>/<eos>/<pad>; <unusedN> are added after it
SPECIAL_TOKENS = ("<bos>", "<eos>", "<pad>")


@dataclass(frozen=True)
class TinyModel:
    """What `build_tiny_model` made, and the ground truth about its vocabulary."""

    hf_dir: Path  # config.json, model.safetensors, tokenizer.json, tokenizer_config.json, special_tokens_map.json
    gguf_path: Path  # same weights, all F32
    gguf_q8_path: Path  # same model, every 2-D weight Q8_0 (norms F32), like llama.cpp's Q8_0 ftype
    tied: bool
    vocab_size: int  # tokenizer vocabulary size (incl. specials and <unusedN>)
    embedding_rows: int  # rows of the embedding matrix: vocab_size rounded up to a multiple of 64
    unused_ids: tuple[int, ...]  # the added specials <unused0>..<unusedN-1> (never in the training data)
    unseen_ids: tuple[int, ...]  # ordinary (non-special) vocab ids that never occur in the training stream
    seen_ids: tuple[int, ...]  # ordinary vocab ids that do occur
    special_ids: dict[str, int]  # {"bos": .., "eos": .., "pad": ..}; no unk in a byte-level BPE
    counts: dict[int, int]  # id -> occurrences in the training token stream (ids absent: 0)
    loss_start: float  # mean LM loss on fixed held-in windows, before training
    loss_end: float  # the same, after training
    unseen_merged_ids: tuple[int, ...] = ()  # the unseen ids that are BPE merges (not single bytes)
    # the unseen ids that tokenizing the extra text produces (its words' pieces, e.g. "xylophone",
    # "東京", and the bytes of its UTF-8); the other unseen merges are BPE intermediates that B only
    # ever has inside a longer token, the other unseen bytes are bytes no text here uses
    unseen_extra_ids: tuple[int, ...] = ()
    padding_ids: tuple[int, ...] = ()  # rows vocab_size..embedding_rows-1: in the matrix, not the tokenizer
    train_tokens_path: Path | None = None  # .npy int32: the exact token stream the LM was trained on
    train_text_path: Path | None = None  # corpus B, one document per line
    extra_text_path: Path | None = None  # the tokenizer-only text
    hidden_size: int = 64
    num_layers: int = 2
    steps: int = 0
    seed: int = 0
    build_seconds: float = 0.0
    train_seconds: float = 0.0
    cached: bool = False  # copied from the cache of an earlier session (the timings are that build's)


def _round_up(n: int, multiple: int) -> int:
    return (n + multiple - 1) // multiple * multiple


def _train_tokenizer(text_a: str, n_unused: int):
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=BASE_VOCAB_SIZE,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(text_a.splitlines(), trainer=trainer)
    if n_unused:  # added after training, so they take the last ids and leave the merges alone
        tok.add_special_tokens([AddedToken(f"<unused{i}>", special=True, normalized=False) for i in range(n_unused)])
    return tok


def _permute_for_rope(w: np.ndarray, n_head: int, n_head_kv: int | None) -> np.ndarray:
    """llama.cpp's `LlamaModel.permute` (convert_hf_to_gguf.py): HF rotate-half -> interleaved rope."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _write_gguf(
    path: Path,
    *,
    model,
    tokens: list[str],
    token_types: list[int],
    merges: list[str],
    special_ids: dict[str, int],
    q8: bool,
) -> None:
    import gguf

    cfg = model.config
    n_head, n_kv = cfg.num_attention_heads, cfg.num_key_value_heads
    head_dim = cfg.hidden_size // n_head
    rope_theta = (getattr(cfg, "rope_parameters", None) or {}).get("rope_theta") or getattr(cfg, "rope_theta", 10000.0)

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("anomtok tiny" + (" q8_0" if q8 else ""))
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_rope_dimension_count(head_dim)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    w.add_rope_freq_base(float(rope_theta))
    w.add_layer_norm_rms_eps(float(cfg.rms_norm_eps))
    w.add_vocab_size(cfg.vocab_size)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0 if q8 else gguf.LlamaFileType.ALL_F32)

    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list(tokens)
    w.add_token_types(token_types)
    w.add_token_merges(merges)
    w.add_bos_token_id(special_ids["bos"])
    w.add_eos_token_id(special_ids["eos"])
    w.add_pad_token_id(special_ids["pad"])
    w.add_add_bos_token(False)
    w.add_add_eos_token(False)

    name_map = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, cfg.num_hidden_layers)
    for hf_name, tensor in model.state_dict().items():
        if hf_name == "lm_head.weight" and cfg.tie_word_embeddings:
            continue  # llama.cpp writes output.weight only when it is not the embedding
        base, suffix = hf_name.rsplit(".", 1)
        gguf_name = name_map.get_name(base)
        if gguf_name is None:
            raise KeyError(f"no GGUF name for {hf_name}")
        data = tensor.detach().to("cpu").float().numpy().copy()
        if base.endswith("self_attn.q_proj"):
            data = _permute_for_rope(data, n_head, n_head)
        elif base.endswith("self_attn.k_proj"):
            data = _permute_for_rope(data, n_head, n_kv)
        data = np.ascontiguousarray(data, dtype=np.float32)
        if q8 and data.ndim == 2 and data.shape[-1] % 32 == 0:
            qdata = gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0)
            w.add_tensor(f"{gguf_name}.{suffix}", qdata, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:
            w.add_tensor(f"{gguf_name}.{suffix}", data)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def _train_model(
    windows: np.ndarray,
    *,
    rows: int,
    tied: bool,
    special_ids: dict[str, int],
    seed: int,
    steps: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    hidden_size: int,
    num_layers: int,
    threads: int,
):
    """`(model, loss_start, loss_end, train_seconds)`: a LlamaForCausalLM trained on `windows`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    prev_threads = torch.get_num_threads()
    # One thread by default: the model is too small to gain from two, and on a shared 2-core machine
    # a second OpenMP thread that gets descheduled stalls every barrier (steps 10x slower were seen).
    torch.set_num_threads(max(1, threads))
    try:
        with torch.random.fork_rng(devices=[]):  # leave the caller's global RNG alone
            torch.manual_seed(seed)
            config = LlamaConfig(
                vocab_size=rows,
                hidden_size=hidden_size,
                intermediate_size=2 * hidden_size,
                num_hidden_layers=num_layers,
                num_attention_heads=4,
                num_key_value_heads=2,
                max_position_embeddings=256,
                rms_norm_eps=1e-5,
                rope_theta=10000.0,
                tie_word_embeddings=tied,
                bos_token_id=special_ids["bos"],
                eos_token_id=special_ids["eos"],
                # No pad_token_id: with one, LlamaModel's nn.Embedding(padding_idx=...) zeroes that row
                # and never updates it, which would make <pad> an all-zero row in the untied model.
                initializer_range=0.02,
            )
            model = LlamaForCausalLM(config)

            data = torch.from_numpy(windows.astype(np.int64))
            n_windows = data.shape[0]
            gen = torch.Generator().manual_seed(seed)
            eval_batch = data[torch.randperm(n_windows, generator=gen)[: min(64, n_windows)]]

            def eval_loss() -> float:
                model.eval()
                with torch.no_grad():
                    return model(input_ids=eval_batch, labels=eval_batch).loss.item()

            loss_start = eval_loss()
            model.train()
            # decay every matrix (the embeddings too), not the norm weights
            decay = [p for p in model.parameters() if p.ndim >= 2]
            no_decay = [p for p in model.parameters() if p.ndim < 2]
            opt = torch.optim.AdamW(
                [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                lr=lr,
                betas=(0.9, 0.95),
            )
            warmup = max(1, steps // 20)

            def lr_factor(step: int) -> float:  # linear warmup, cosine down to 10%
                if step < warmup:
                    return (step + 1) / warmup
                return 0.1 + 0.45 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

            sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
            t_train = time.perf_counter()
            order, pos = torch.randperm(n_windows, generator=gen), 0
            for _ in range(steps):
                if pos + batch_size > n_windows:  # a new epoch: every window is seen once per epoch
                    order, pos = torch.randperm(n_windows, generator=gen), 0
                batch = data[order[pos : pos + batch_size]]
                pos += batch_size
                loss = model(input_ids=batch, labels=batch).loss
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                sched.step()
            train_seconds = time.perf_counter() - t_train
            loss_end = eval_loss()
    finally:
        torch.set_num_threads(prev_threads)
    return model, loss_start, loss_end, train_seconds


def build_tiny_model(
    out_dir: Path,
    *,
    tied: bool = True,
    n_unused: int = 16,
    seed: int = 0,
    steps: int = 300,
    batch_size: int = 16,
    seq_len: int = 64,
    lr: float = 3e-3,
    weight_decay: float = 0.1,
    hidden_size: int = 64,
    num_layers: int = 2,
    threads: int = 1,
    gguf_pad_vocab: bool = False,
) -> TinyModel:
    """Train the tiny LM and save it under `out_dir` (created); see the module docstring.

    ``gguf_pad_vocab``: by default the GGUF token list is the tokenizer's vocabulary (``vocab_size``
    entries) while ``llama.vocab_size`` and the tensors have ``embedding_rows``; transformers loads
    that. True pads the list with ``[PAD{i}]`` tokens of type UNUSED up to ``embedding_rows``, as
    llama.cpp's converter does (llama.cpp itself wants one token per row).

    Deterministic for a given ``seed`` (and ``threads``); the caller's global RNG states and torch
    thread count are left as they were.
    """
    from transformers import PreTrainedTokenizerFast

    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    # -- corpora and tokenizer ------------------------------------------------------------------
    docs = make_corpus_b(seed)
    extra = make_extra_text(seed)
    text_b = "\n".join(docs) + "\n"
    clash = [w for w in EXTRA_WORDS_EN + EXTRA_WORDS_JA if w in text_b.lower()]
    assert not clash, f"extra words occur in corpus B: {clash}"
    (out_dir / "corpus_train.txt").write_text(text_b, encoding="utf-8")
    (out_dir / "corpus_extra.txt").write_text(extra, encoding="utf-8")

    tok = _train_tokenizer(text_b + extra, n_unused)
    vocab_size = tok.get_vocab_size(with_added_tokens=True)
    embedding_rows = _round_up(vocab_size, 64)
    special_ids = {name: tok.token_to_id(f"<{name}>") for name in ("bos", "eos", "pad")}
    unused_ids = tuple(tok.token_to_id(f"<unused{i}>") for i in range(n_unused))
    special_set = set(special_ids.values()) | set(unused_ids)
    assert all(i is not None for i in special_set)

    # -- the training stream: <bos> doc <eos>, concatenated, cut into whole windows ------------
    stream: list[int] = []
    for enc in tok.encode_batch(docs, add_special_tokens=False):
        stream.append(special_ids["bos"])
        stream.extend(enc.ids)
        stream.append(special_ids["eos"])
    n_windows = len(stream) // seq_len
    train = np.asarray(stream[: n_windows * seq_len], dtype=np.int32)
    np.save(out_dir / "train_tokens.npy", train)
    ids, cnt = np.unique(train, return_counts=True)
    counts = {int(i): int(c) for i, c in zip(ids, cnt)}
    ordinary = [i for i in range(vocab_size) if i not in special_set]
    unseen_ids = tuple(i for i in ordinary if counts.get(i, 0) == 0)
    seen_ids = tuple(i for i in ordinary if counts.get(i, 0) > 0)
    byte_tokens = set(tok.token_to_id(c) for c in _byte_alphabet())
    unseen_merged = tuple(i for i in unseen_ids if i not in byte_tokens)
    extra_ids = {i for enc in tok.encode_batch(extra.splitlines(), add_special_tokens=False) for i in enc.ids}
    unseen_extra = tuple(i for i in unseen_ids if i in extra_ids)

    # -- the model ------------------------------------------------------------------------------
    windows = train.reshape(n_windows, seq_len)
    model, loss_start, loss_end, train_seconds = _train_model(
        windows,
        rows=embedding_rows,
        tied=tied,
        special_ids=special_ids,
        seed=seed,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        hidden_size=hidden_size,
        num_layers=num_layers,
        threads=threads,
    )

    # -- save: HF folder -------------------------------------------------------------------------
    hf_dir = out_dir / "hf"
    model.save_pretrained(hf_dir, safe_serialization=True)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        additional_special_tokens=[f"<unused{i}>" for i in range(n_unused)] or None,
        add_bos_token=False,
        add_eos_token=False,
    )
    fast.save_pretrained(hf_dir)
    stm = hf_dir / "special_tokens_map.json"
    if not stm.exists():  # transformers 5 no longer writes it; older readers (and anomtok) may want it
        m = {"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>"}
        if n_unused:
            m["additional_special_tokens"] = [f"<unused{i}>" for i in range(n_unused)]
        stm.write_text(json.dumps(m, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    # -- save: GGUF ----------------------------------------------------------------------------
    vocab = tok.get_vocab(with_added_tokens=True)
    tokens = [None] * vocab_size
    for t, i in vocab.items():
        tokens[i] = t
    assert all(t is not None for t in tokens)
    token_types = [3 if i in special_set else 1 for i in range(vocab_size)]  # 3 CONTROL, 1 NORMAL
    if gguf_pad_vocab:  # convert_hf_to_gguf.py's placeholders for rows the tokenizer has no token for
        tokens += [f"[PAD{i}]" for i in range(vocab_size, embedding_rows)]
        token_types += [5] * (embedding_rows - vocab_size)  # 5 UNUSED
    model_json = json.loads(tok.to_str())["model"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model_json["merges"]]
    gguf_path = out_dir / "tiny-f32.gguf"
    gguf_q8_path = out_dir / "tiny-q8_0.gguf"
    for path, q8 in ((gguf_path, False), (gguf_q8_path, True)):
        _write_gguf(
            path, model=model, tokens=tokens, token_types=token_types, merges=merges, special_ids=special_ids, q8=q8
        )

    return TinyModel(
        hf_dir=hf_dir,
        gguf_path=gguf_path,
        gguf_q8_path=gguf_q8_path,
        tied=tied,
        vocab_size=vocab_size,
        embedding_rows=embedding_rows,
        unused_ids=unused_ids,
        unseen_ids=unseen_ids,
        seen_ids=seen_ids,
        special_ids=special_ids,
        counts=counts,
        loss_start=loss_start,
        loss_end=loss_end,
        unseen_merged_ids=unseen_merged,
        unseen_extra_ids=unseen_extra,
        padding_ids=tuple(range(vocab_size, embedding_rows)),
        train_tokens_path=out_dir / "train_tokens.npy",
        train_text_path=out_dir / "corpus_train.txt",
        extra_text_path=out_dir / "corpus_extra.txt",
        hidden_size=hidden_size,
        num_layers=num_layers,
        steps=steps,
        seed=seed,
        build_seconds=time.perf_counter() - t0,
        train_seconds=train_seconds,
    )


def _byte_alphabet() -> list[str]:
    from tokenizers import pre_tokenizers

    return pre_tokenizers.ByteLevel.alphabet()


# ----------------------------------------------------------------------------------------------
# the cache across sessions

_PATH_FIELDS = ("hf_dir", "gguf_path", "gguf_q8_path", "train_tokens_path", "train_text_path", "extra_text_path")
_ENTRY_META = "tinymodel.json"


def cache_key(**kwargs: Any) -> str:
    """What a build depends on: this file, the arguments, the libraries that train and write the
    model, and the CPU (float kernels differ between instruction sets)."""
    import platform
    import sys

    import gguf
    import safetensors
    import tokenizers
    import torch
    import transformers

    facts = {
        "source": hashlib.sha256(Path(__file__).read_bytes()).hexdigest(),
        "arguments": {k: kwargs[k] for k in sorted(kwargs)},
        "python": list(sys.version_info[:2]),
        "versions": {
            m.__name__: getattr(m, "__version__", "?") for m in (torch, transformers, tokenizers, gguf, safetensors, np)
        },
        "machine": platform.machine(),
        "cpu": torch.backends.cpu.get_cpu_capability(),
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:24]


def _file_hashes(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != _ENTRY_META
    }


def _write_entry_meta(model: TinyModel, folder: Path) -> None:
    d = dataclasses.asdict(model)
    for name in _PATH_FIELDS:
        d[name] = str(Path(d[name]).relative_to(folder)) if d[name] is not None else None
    d["counts"] = {str(k): v for k, v in d["counts"].items()}
    meta = {"model": d, "files": _file_hashes(folder)}
    (folder / _ENTRY_META).write_text(json.dumps(meta, indent=1, ensure_ascii=False), encoding="utf-8")


def _read_entry(folder: Path, base: Path | None = None) -> TinyModel | None:
    """The model of a complete, intact cache entry (paths under ``base``, default the entry), else None."""
    try:
        meta = json.loads((folder / _ENTRY_META).read_text(encoding="utf-8"))
        if _file_hashes(folder) != meta["files"]:
            return None
        d = dict(meta["model"])
    except (OSError, ValueError, KeyError):
        return None
    base = folder if base is None else base
    for name in _PATH_FIELDS:
        d[name] = base / d[name] if d[name] is not None else None
    d["counts"] = {int(k): v for k, v in d["counts"].items()}
    for name in TinyModel.__dataclass_fields__:
        if isinstance(d.get(name), list):
            d[name] = tuple(d[name])
    return TinyModel(**d)


def _sweep(root: Path, max_age_s: float = 3600.0) -> None:
    """Remove the temporary build folders of sessions that died more than an hour ago."""
    now = time.time()
    for p in root.glob(".build-*"):
        try:
            if now - p.stat().st_mtime > max_age_s:
                shutil.rmtree(p, ignore_errors=True)
        except OSError:
            pass


def cached_tiny_model(out_dir: Path, cache_root: Path | None, **kwargs: Any) -> TinyModel:
    """`build_tiny_model(out_dir, **kwargs)`, reusing a build of an earlier session from
    ``cache_root`` when one exists for the same `cache_key` (``cache_root=None``: always build).

    The entry is built into a temporary folder of ``cache_root`` and renamed into place, so a
    killed session or two sessions at once never leave a partial entry; an entry whose files do
    not match the SHA-256 recorded in it is set aside and rebuilt. The files are copied to
    ``out_dir``, which the returned model points into."""
    out_dir = Path(out_dir)
    if cache_root is None:
        return build_tiny_model(out_dir, **kwargs)
    cache_root = Path(cache_root)
    entry = cache_root / cache_key(**kwargs)
    reused = _read_entry(entry) is not None
    if not reused:
        cache_root.mkdir(parents=True, exist_ok=True)
        _sweep(cache_root)
        tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=cache_root))
        try:
            model = build_tiny_model(tmp / "entry", **kwargs)
            _write_entry_meta(model, tmp / "entry")
            if entry.exists() and _read_entry(entry) is None:  # a damaged entry: moved aside, then removed
                os.rename(entry, tmp / "damaged")
            try:
                os.rename(tmp / "entry", entry)
            except OSError:  # another session renamed its build into place first: use that one
                if _read_entry(entry) is None:
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(entry, out_dir, dirs_exist_ok=True)
    (out_dir / _ENTRY_META).unlink()
    model = _read_entry(entry, base=out_dir)
    if model is None:  # pragma: no cover - the entry changed under us
        raise RuntimeError(f"tiny-model cache entry {entry} changed while it was copied")
    return dataclasses.replace(model, cached=reused)
