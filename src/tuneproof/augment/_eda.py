"""EDA's word operations (Wei & Zou 2019, "Easy Data Augmentation"): synonym replacement,
random swap and random deletion of a text's words.

Each changes about ``alpha`` of the words (at least one), as in the paper:
synonym replacement replaces ``n = max(1, int(alpha * words))`` distinct non-stopwords, each
by a synonym from a :class:`~tuneproof.augment.Lexicon` (every occurrence of that word);
random swap swaps two words ``n`` times; random deletion drops each word with probability
``alpha`` and keeps at least one. Words are the text's whitespace-separated tokens; a token's
leading and trailing punctuation stays in place, and a replaced word keeps its capital.

Every variant is drawn from its own generator, seeded by (seed, method, record id, variant),
so a record's variants do not depend on which other records are augmented.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable

from tuneproof.augment._lexicon import Lexicon

__all__ = ["STOPWORDS", "eda_variants", "random_delete", "random_swap", "synonym_replace", "variant_rng"]

# English function words: replacing them changes grammar, not wording (the EDA paper skips them too).
STOPWORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being below between both but
by can could did do does doing down during each few for from further had has have having he her here hers herself
him himself his how i if in into is it its itself just me more most my myself no nor not now of off on once only or
other our ours ourselves out over own same she should so some such than that the their theirs them themselves then
there these they this those through to too under until up very was we were what when where which while who whom why
will with would you your yours yourself yourselves
""".split())  # fmt: skip


def variant_rng(seed: int, method: str, record_id: str, k: int) -> random.Random:
    """The generator of variant ``k`` of one record (a string seed hashes the same in every process)."""
    return random.Random(f"{seed}:{method}:{record_id}:{k}")


def _n_changes(n_words: int, alpha: float) -> int:
    return max(1, int(alpha * n_words))


def _split_token(token: str) -> tuple[str, str, str]:
    """(leading punctuation, the word, trailing punctuation) of a whitespace token."""
    core = token.strip(string.punctuation)
    if not core:
        return token, "", ""
    start = token.index(core)
    return token[:start], core, token[start + len(core) :]


def synonym_replace(text: str, lexicon: Lexicon, alpha: float, rng: random.Random) -> str:
    """Replace ``max(1, int(alpha * words))`` distinct non-stopwords by a random synonym each.

    Example:
        >>> class Tiny:
        ...     def synonyms(self, word): return {"film": ["movie"]}.get(word, [])
        >>> synonym_replace("A fine film. The film, again!", Tiny(), 0.1, random.Random(0))
        'A fine movie. The movie, again!'
    """
    tokens = text.split()
    parts = [_split_token(t) for t in tokens]
    candidates = sorted({w.lower() for _, w, _ in parts if w.isalpha() and w.lower() not in STOPWORDS})
    rng.shuffle(candidates)
    chosen: dict[str, str] = {}
    for word in candidates:
        options = lexicon.synonyms(word)
        if options:
            chosen[word] = rng.choice(options)
        if len(chosen) >= _n_changes(len(tokens), alpha):
            break
    out = []
    for token, (lead, word, tail) in zip(tokens, parts):
        new = chosen.get(word.lower())
        if new is None:
            out.append(token)
            continue
        out.append(lead + (new[:1].upper() + new[1:] if word[:1].isupper() else new) + tail)
    return " ".join(out)


def random_swap(text: str, alpha: float, rng: random.Random) -> str:
    """Swap two random words, ``max(1, int(alpha * words))`` times."""
    words = text.split()
    if len(words) < 2:
        return text
    for _ in range(_n_changes(len(words), alpha)):
        i, j = rng.sample(range(len(words)), 2)
        words[i], words[j] = words[j], words[i]
    return " ".join(words)


def random_delete(text: str, alpha: float, rng: random.Random) -> str:
    """Drop each word with probability ``alpha``; one random word stays when all would go."""
    words = text.split()
    if len(words) < 2:
        return text
    kept = [w for w in words if rng.random() >= alpha]
    return " ".join(kept) if kept else rng.choice(words)


def eda_variants(
    text: str, record_id: str, method: str, *, n: int, alpha: float, seed: int, lexicon: Lexicon | None = None,
) -> tuple[list[str], int]:  # fmt: skip
    """Up to ``n`` distinct variants of ``text`` by one word operation, and how many draws left it unchanged.

    Args:
        text: the text to vary.
        record_id: its record's id (part of each variant's seed).
        method: ``synonym``, ``swap`` or ``delete``.
        n, alpha, seed: variants wanted, the share of words changed, the run's seed.
        lexicon: the synonyms, for ``synonym``.

    Returns:
        ``(variants, unchanged)``: variants that differ from the text and from each other, and
        the number of draws that gave the text back or an earlier variant (e.g. no word with a
        synonym), which are not records.

    Example:
        >>> eda_variants("one two three four", "r:1", "swap", n=2, alpha=0.1, seed=0)
        (['one four three two'], 1)
    """
    ops: dict[str, Callable[[random.Random], str]] = {
        "synonym": lambda rng: synonym_replace(text, lexicon, alpha, rng),  # type: ignore[arg-type]
        "swap": lambda rng: random_swap(text, alpha, rng),
        "delete": lambda rng: random_delete(text, alpha, rng),
    }
    if method not in ops:
        raise ValueError(f"{method!r} is not a word operation; use one of {list(ops)}")
    if method == "synonym" and lexicon is None:
        raise ValueError("synonym replacement needs a lexicon")
    out: list[str] = []
    unchanged = 0
    for k in range(n):
        new = ops[method](variant_rng(seed, method, record_id, k))
        if new == text or new in out:
            unchanged += 1
        else:
            out.append(new)
    return out, unchanged
