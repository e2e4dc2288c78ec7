"""Verification by prompting, after Land & Bartolo (2024), *Fishing for Magikarp*.

A ranking only says a token *looks* under-trained. Verification asks the model to repeat it:
a model that learned a token can copy it when shown it a dozen times; a model that never saw it
in training gives it almost no probability. For each candidate:

1. Few-shot repetition prompts (``TEMPLATES``: an echo log, a "what does X mean" exchange, a
   plain run of repeats) are written once around a *placeholder* token, a long ordinary
   alphabetic token that survives encode → decode → encode in every template, and encoded once
   (:func:`make_prompt_set`). Each prompt ends where the answer goes; the answer slot is appended
   and every *slot* (each place the placeholder's id sits) gets the candidate's id
   (:func:`token_prompts`). The candidate's text is never re-encoded: tokens that text can never
   produce (partial UTF-8, unreachable merges) are verified as they are, and the answer position
   holds exactly that token.
2. **Teacher forcing**, no generation: one forward pass over the whole sequence gives, at every
   slot after the first, the model's log-probability (T = 1, over the tokenizer's vocabulary) of
   the candidate *as the next token*, i.e. of repeating it there. The positions read are the last
   ``n_positions`` (3) such slots of each template: the final answer and the in-context repeats
   just before it (the echo log's previous ``in``/``out`` lines, the previous repeats; the
   "meaning" exchange has one answer slot). ``max_prob`` is the maximum over templates and
   positions.
3. ``max_prob < threshold`` (default ``VERIFY_THRESHOLD = 0.01``, the paper's weak/strong
   verification boundaries are 0.1/0.001; 0.01 sits between) = **verified** under-trained.

The paper (and earlier versions of this module) generated three tokens greedily after the
prompt and took the maximum probability of the candidate over those three steps. The first of
them is exactly the final answer slot read here (the same logits of the same prompt: with
``n_positions=1`` the two agree to float rounding, see ``bench/bench_verify.py``); the two later
greedy steps are replaced by the in-context slots before the answer, which teacher forcing reads
from the same forward pass at no extra cost.

Scoring is batched (:func:`score_tokens`): the sequences of one template all have the same
length and the same slots whatever the candidate, so a batch needs no padding; the part of the
prompt before the first slot (identical for every candidate) is run once and its key/value cache
is shared by every batch; the input stops before the answer slot (its own token predicts
nothing that is read); logits are computed only at the positions read. Each (token,
template) sequence is computed independently of the others in its batch, so the batched
probabilities equal those of :func:`score_tokens_one_by_one` (one sequence per forward pass, no
shared prefix) to float rounding (tested to ``rtol=1e-5`` in float32). The device and dtype are
those of the loaded model (``load_causal_lm``: ``auto`` = CUDA with bfloat16 when present, else
CPU float32); log-softmax is always taken in float32.

Candidates are the top ``top`` tokens of each ranking metric (among ``kinds``, default ordinary
tokens only: reserved and special tokens are already known), never a reference token (the
tokens the default score is computed from), plus a random sample of the same kinds (never a
reference token either), drawn with ``seed``, as the base rate. The precision of a metric is the
share of its top tokens that verify; its lift is that precision over the base rate. A random
sample of up to ``top`` reference tokens is verified apart, as a sanity row (``reference`` in
``verify.json``): it says whether the model really cannot repeat what the score was told is
unused.

Outputs (``out_dir``): ``verified.csv`` (one row per candidate: probabilities, verdict, which
metric tops it is in, its rank in each metric), ``verify.json`` (precision per metric, base
rate, placeholder, templates, threshold, how the probabilities were read) and ``meta.json``.
``output_echo`` in ``verified.csv`` is the model's own greedy choice at the echo prompt's answer
slot (one token: the first token the previous, generating, versions showed).

Layout: ``prompts`` (templates, placeholder, :class:`PromptSet`), ``scoring`` (:func:`score_tokens`,
:func:`score_tokens_one_by_one`), ``scores`` (:class:`Scores`), ``select`` (candidates, settings
check), ``run`` (:func:`verify`, :class:`VerifyResult`), ``summary`` (precision, files). This
package re-exports their public names.
"""

from .prompts import (
    N_POSITIONS,
    PLACEHOLDER,
    TEMPLATES,
    VERIFY_THRESHOLD,
    PromptSet,
    build_prompts,
    find_placeholder,
    make_prompt_set,
    token_prompts,
)
from .run import VerifyResult, verify
from .scores import Scores
from .scoring import DEFAULT_BATCH_SIZE, MAX_BATCH_SIZE, score_tokens, score_tokens_one_by_one
from .select import MAX_CANDIDATES, check_settings, select_candidates

__all__ = [
    "VERIFY_THRESHOLD",
    "N_POSITIONS",
    "PLACEHOLDER",
    "TEMPLATES",
    "DEFAULT_BATCH_SIZE",
    "MAX_BATCH_SIZE",
    "MAX_CANDIDATES",
    "PromptSet",
    "Scores",
    "VerifyResult",
    "verify",
    "check_settings",
    "select_candidates",
    "build_prompts",
    "find_placeholder",
    "make_prompt_set",
    "token_prompts",
    "score_tokens",
    "score_tokens_one_by_one",
]
