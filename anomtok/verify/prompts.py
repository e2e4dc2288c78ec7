"""The few-shot repetition prompts of verification: ``TEMPLATES``, the placeholder token they are
encoded around (:func:`find_placeholder`), the encoded :class:`PromptSet` of one model
(:func:`make_prompt_set`) and the prompts of one candidate (:func:`token_prompts`), with the
verdict threshold and the number of positions read. See :mod:`anomtok.verify` for the method."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import InputError

__all__ = [
    "VERIFY_THRESHOLD",
    "N_POSITIONS",
    "PLACEHOLDER",
    "TEMPLATES",
    "PromptSet",
    "build_prompts",
    "check_positions",
    "find_placeholder",
    "make_prompt_set",
    "token_prompts",
]

VERIFY_THRESHOLD = 0.01
N_POSITIONS = 3
PLACEHOLDER = "{t}"
# (name, prompt text with {t} for the token; the prompt ends right where the token is expected)
TEMPLATES: tuple[tuple[str, str], ...] = (
    (
        "echo",
        "This program prints its input unchanged. Log of identical runs:\n"
        + "in: «{t}»\nout: «{t}»\n" * 6
        + "in: «{t}»\nout: «",
    ),
    (
        "meaning",
        "Q: What does the string 'qzvx' mean?\nA: The string 'qzvx' has no particular meaning.\n"
        "Q: What does the string '{t}' mean?\nA: The string '",
    ),
    ("repeat", "The same word, repeated over and over:\n" + "{t}" * 16),
)


def check_positions(n_positions: int) -> None:
    """``n_positions`` is an integer from 1 to 16, else an ``InputError``."""
    if not isinstance(n_positions, int) or isinstance(n_positions, bool) or not 1 <= n_positions <= 16:
        raise InputError(f"n_positions must be an integer from 1 to 16, not {n_positions!r}")


def build_prompts(
    encode: Any, placeholder_text: str, placeholder_id: int, templates: Sequence[tuple[str, str]] = TEMPLATES
) -> list[list[int]] | None:
    """Token ids of every template with the placeholder, or None when the placeholder does not
    come out as exactly one ``placeholder_id`` per ``{t}`` in some template."""
    out = []
    for _, text in templates:
        ids = encode(text.replace(PLACEHOLDER, placeholder_text))
        if sum(1 for i in ids if i == placeholder_id) != text.count(PLACEHOLDER):
            return None
        out.append(list(ids))
    return out


def _placeholder_candidates(lm: Any, tokens: Any) -> Iterator[tuple[int, str]]:
    """(id, text) of the ordinary tokens, from the token table when given, else the tokenizer
    (special and added tokens left out; only the pieces that can be a long ASCII word are decoded)."""
    if tokens is not None:
        for i in range(min(lm.n_vocab, len(tokens))):
            if tokens.kinds[i] == "normal":
                yield i, tokens.bytes[i].decode("utf-8", errors="replace")
        return
    tok = lm.tokenizer
    special = set(getattr(tok, "all_special_ids", None) or ())
    special |= set((getattr(tok, "added_tokens_decoder", None) or {}).keys())
    pieces = tok.convert_ids_to_tokens(list(range(lm.n_vocab)))
    for i, piece in enumerate(pieces):
        if i in special or not isinstance(piece, str):
            continue
        core = piece.lstrip("Ġ▁ ")
        if len(core) >= 4 and core.isascii() and core.isalpha():
            yield i, tok.decode([i])


def find_placeholder(
    lm: Any, tokens: Any = None, templates: Sequence[tuple[str, str]] = TEMPLATES, tries: int = 300
) -> tuple[int, str, list[list[int]]]:
    """A long ASCII-alphabetic ordinary token whose text encodes back to itself in every template:
    (its id, its text, the templates' ids built around it). ``tokens``: the model's TokenTable
    (``anomtok.load(...).tokens``); None reads the tokenizer instead."""
    cands = []
    for i, text in _placeholder_candidates(lm, tokens):
        word = text.strip()
        if not (word.isascii() and word.isalpha()) or len(word) < 4:
            continue
        cands.append((text == word, len(set(word.lower())), len(word), -i, i, text))
    cands.sort(reverse=True)
    for *_, i, text in cands[:tries]:
        built = build_prompts(lm.encode, text, i, templates)
        if built is not None:
            return i, text, built
    raise InputError("no placeholder token found: no ordinary alphabetic token survives encoding in the templates")


@dataclass(frozen=True)
class PromptSet:
    """The few-shot prompts of one model, encoded once around a placeholder token.

    ``sequences[j]``: template j's ids *with* the answer slot appended (the placeholder's id at
    every slot); ``slots[j]``: the indices of the slots in it, in order (the last is the answer).
    The first slot cannot be predicted from the context; every later one is a repeat."""

    placeholder_id: int
    placeholder_text: str
    names: tuple[str, ...]
    texts: tuple[str, ...]
    sequences: tuple[tuple[int, ...], ...]
    slots: tuple[tuple[int, ...], ...]

    def answer_positions(self, j: int, n_positions: int = N_POSITIONS) -> tuple[int, ...]:
        """Indices (into ``sequences[j]``) of the slots whose probability is read: the last
        ``n_positions`` slots after the first (fewer when the template has fewer repeats)."""
        check_positions(n_positions)
        return self.slots[j][1:][-n_positions:]

    def prefix_length(self, j: int) -> int:
        """Tokens before template j's first slot: the same for every candidate."""
        return self.slots[j][0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "placeholder_id": self.placeholder_id,
            "placeholder_text": self.placeholder_text,
            "templates": [
                {"name": n, "text": t, "tokens": len(s), "slots": len(sl)}
                for n, t, s, sl in zip(self.names, self.texts, self.sequences, self.slots)
            ],
        }


def make_prompt_set(lm: Any, tokens: Any = None, templates: Sequence[tuple[str, str]] = TEMPLATES) -> PromptSet:
    """Find the placeholder and encode every template around it (see :func:`find_placeholder`)."""
    ph_id, ph_text, built = find_placeholder(lm, tokens, templates)
    seqs, slots = [], []
    for ids in built:
        seq = tuple(ids) + (ph_id,)
        seqs.append(seq)
        slots.append(tuple(k for k, t in enumerate(seq) if t == ph_id))
    for (name, _), sl in zip(templates, slots):
        if len(sl) < 2:
            raise InputError(f"template {name!r} has no slot after the first: nothing to repeat")
    return PromptSet(
        ph_id, ph_text, tuple(n for n, _ in templates), tuple(t for _, t in templates), tuple(seqs), tuple(slots)
    )


def token_prompts(
    prompts: PromptSet, token_id: int, n_positions: int = N_POSITIONS
) -> list[tuple[list[int], tuple[int, ...]]]:
    """The prompts for one token: per template, (token ids with ``token_id`` spliced into every
    slot, the answer positions whose probability is read). The log-probability of the token at
    position k is read from the logits at position k - 1."""
    out = []
    for j, (seq, sl) in enumerate(zip(prompts.sequences, prompts.slots)):
        at = set(sl)
        ids = [int(token_id) if k in at else t for k, t in enumerate(seq)]
        out.append((ids, prompts.answer_positions(j, n_positions)))
    return out
