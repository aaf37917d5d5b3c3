"""Training-data augmentation: EDA's word operations with WordNet synonyms, and paraphrases
written by the base model itself.

Augmentation is a hypothesis, not a default: the pipeline's ``augment`` stage
(:mod:`tuneproof.pipeline`, ``tuneproof augment``) tests each method with a paired A/B
against no augmentation and keeps it only when it helps beyond noise. This package makes
the records; it never decides.

Example:
    >>> from tuneproof.augment import eda_variants
    >>> eda_variants("one two three four", "r:1", "swap", n=1, alpha=0.1, seed=0)
    (['one four three two'], 0)
"""

from __future__ import annotations

from tuneproof.augment._build import augmented_rows, source_text
from tuneproof.augment._eda import STOPWORDS, eda_variants, random_delete, random_swap, synonym_replace, variant_rng
from tuneproof.augment._lexicon import (
    DEBIAN_WORDNET,
    WORDNET_ENV,
    WORDNET_INSTALL,
    Lexicon,
    WordNet,
    find_wordnet,
    open_wordnet,
)
from tuneproof.augment._paraphrase import INSTRUCTIONS, check_paraphrase, is_generator, paraphrase_texts

__all__ = [
    "DEBIAN_WORDNET",
    "INSTRUCTIONS",
    "STOPWORDS",
    "WORDNET_ENV",
    "WORDNET_INSTALL",
    "Lexicon",
    "WordNet",
    "augmented_rows",
    "check_paraphrase",
    "eda_variants",
    "find_wordnet",
    "is_generator",
    "open_wordnet",
    "paraphrase_texts",
    "random_delete",
    "random_swap",
    "source_text",
    "synonym_replace",
    "variant_rng",
]
