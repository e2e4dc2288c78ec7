"""Old import path of the tokenizer loader, which now lives in ``anomtok.audit.source`` (and
``anomtok.audit.sentencepiece``). Kept only for ``anomtok.detect.detector`` until it imports
``anomtok.audit.source``; then delete this file."""

from __future__ import annotations

from .audit.source import LoadedTokenizer, load_tokenizer

__all__ = ["LoadedTokenizer", "load_tokenizer"]
