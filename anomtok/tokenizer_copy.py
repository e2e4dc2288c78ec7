"""A tokenizer that neither pads nor truncates, without changing the caller's.

A ``tokenizer.json`` may pad every encoding to 128 ids or cut texts at 512 tokens; the audit and
the glitch detector encode whole texts and single tokens, so they turn both off, always on a
copy: a ``tokenizers.Tokenizer`` a caller passes in is never modified.
"""

from __future__ import annotations

import logging
from typing import Any

from .errors import InputError

__all__ = ["unpadded"]

log = logging.getLogger(__name__)

_COMPONENTS = ("normalizer", "pre_tokenizer", "post_processor", "decoder")


def unpadded(tok: Any) -> Any:
    """``tok`` itself when it neither pads nor truncates; else a copy that does neither.

    The copy goes through the tokenizer's JSON form. A tokenizer with a custom (Python) component
    has none: the copy is then assembled from the same model, components and added tokens
    (shared, never changed), with a warning. ``InputError`` when even that cannot reproduce it.
    """
    if getattr(tok, "padding", None) is None and getattr(tok, "truncation", None) is None:
        return tok
    from tokenizers import Tokenizer

    try:
        new = Tokenizer.from_str(tok.to_str())
    except Exception as exc:  # noqa: BLE001 - only the tokenizers library's own errors (plain Exception)
        if type(exc) is not Exception:
            raise
        log.warning(
            "the tokenizer cannot be serialised (%s): its copy without padding and truncation is built "
            "from the same components",
            str(exc).strip().splitlines()[0] if str(exc).strip() else "no reason given",
        )
        new = _assembled(tok)
    new.no_padding()
    new.no_truncation()
    return new


def _assembled(tok: Any) -> Any:
    """A new ``Tokenizer`` over ``tok``'s model, components and added tokens (same ids)."""
    from tokenizers import Tokenizer

    new = Tokenizer(tok.model)
    for name in _COMPONENTS:
        part = getattr(tok, name)
        if part is not None:
            setattr(new, name, part)
    added = tok.get_added_tokens_decoder()
    for i in sorted(added):
        token = added[i]
        (new.add_special_tokens if token.special else new.add_tokens)([token])
    moved = [i for i, token in added.items() if new.token_to_id(token.content) != i]
    if moved:
        raise InputError(
            f"the tokenizer pads or truncates and cannot be copied (custom components; added token id "
            f"{moved[0]} would move): turn padding and truncation off before passing it "
            "(tok.no_padding(); tok.no_truncation())"
        )
    new.encode_special_tokens = tok.encode_special_tokens
    return new
