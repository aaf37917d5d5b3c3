"""Synonyms from WordNet 3.0, read straight from its database files.

The database is WordNet's own distribution format (``index.<pos>``, ``data.<pos>``,
``<pos>.exc``; documented in WordNet's ``wndb(5)`` and ``morphy(7)``), as Debian's
``wordnet-base`` package installs it in ``/usr/share/wordnet``. It is read here directly: a
lookup is an index line and one seek per sense. (nltk's ``WordNetCorpusReader`` needs a
``lexnames`` file, which that package does not ship, and it only reads folders registered
with nltk's data paths.) Nothing is ever downloaded: a missing database is an error that
names the install command.

A :class:`Lexicon` is anything with ``synonyms(word) -> list[str]``; :class:`WordNet` is the
real one, and a test may pass its own.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from tuneproof.errors import TuneproofError

__all__ = ["DEBIAN_WORDNET", "WORDNET_ENV", "WORDNET_INSTALL", "Lexicon", "WordNet", "find_wordnet", "open_wordnet"]

DEBIAN_WORDNET = "/usr/share/wordnet"
WORDNET_ENV = "TUNEPROOF_WORDNET"
WORDNET_INSTALL = (
    "install WordNet 3.0 with `apt-get install wordnet-base` (Debian, Ubuntu: it goes to /usr/share/wordnet), or "
    f"point augment.wordnet or the {WORDNET_ENV} environment variable at a folder that holds WordNet's database "
    "files (index.noun, data.noun, ...: the dict/ folder of a WordNet 3.0 release)"
)
POS = ("noun", "verb", "adj", "adv")
# morphy(7): the suffixes WordNet strips to find a base form, per part of speech.
_DETACH = {
    "noun": (("s", ""), ("ses", "s"), ("xes", "x"), ("zes", "z"), ("ches", "ch"), ("shes", "sh"), ("men", "man"),
             ("ies", "y")),
    "verb": (("s", ""), ("ies", "y"), ("es", "e"), ("es", ""), ("ed", "e"), ("ed", ""), ("ing", "e"), ("ing", "")),
    "adj": (("er", ""), ("est", ""), ("er", "e"), ("est", "e")),
    "adv": (),
}  # fmt: skip


class Lexicon(Protocol):
    """Where synonym replacement finds its synonyms."""

    def synonyms(self, word: str) -> list[str]:
        """Other words with a sense of ``word`` (lower case), in a fixed order; ``[]`` when none."""
        ...


class WordNet:
    """The synonyms of a word in a WordNet database folder: every other lemma of every synset
    of its base forms, over all four parts of speech.

    Example:
        >>> WordNet("/usr/share/wordnet").synonyms("quick")[:3]  # doctest: +SKIP
        ['speedy', 'flying', 'fast']
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        missing = [f"{k}.{p}" for p in ("noun", "verb") for k in ("index", "data") if not (self.root / f"{k}.{p}").is_file()]
        if missing:
            raise TuneproofError(f"{self.root} is not a WordNet database folder: {', '.join(missing)} missing. "
                                 f"Fix: {WORDNET_INSTALL}.")  # fmt: skip
        self._index: dict[str, dict[str, list[int]]] = {}
        self._exc: dict[str, dict[str, list[str]]] = {}
        self._data: dict[str, bytes] = {}
        self._cache: dict[str, list[str]] = {}

    def _lines(self, name: str) -> list[str]:
        path = self.root / name
        return path.read_text(encoding="utf-8", errors="replace").splitlines() if path.is_file() else []

    def _index_of(self, pos: str) -> dict[str, list[int]]:
        """lemma -> synset offsets. An index line: lemma pos n_synsets n_ptrs [ptr...] n_senses n_tagged offset..."""
        if pos not in self._index:
            out: dict[str, list[int]] = {}
            for line in self._lines(f"index.{pos}"):
                if line.startswith(" "):  # the licence header
                    continue
                f = line.split()
                n_synsets = int(f[2])
                out[f[0]] = [int(x) for x in f[-n_synsets:]]
            self._index[pos] = out
        return self._index[pos]

    def _exceptions(self, pos: str) -> dict[str, list[str]]:
        if pos not in self._exc:
            self._exc[pos] = {f[0]: f[1:] for line in self._lines(f"{pos}.exc") if len(f := line.split()) > 1}
        return self._exc[pos]

    def base_forms(self, word: str, pos: str) -> list[str]:
        """The word's base forms in ``pos`` that WordNet lists (morphy: exceptions, the word, suffix rules)."""
        index = self._index_of(pos)
        candidates = [*self._exceptions(pos).get(word, []), word]
        candidates += [word[: -len(old)] + new for old, new in _DETACH[pos] if word.endswith(old) and len(word) > len(old)]
        return list(dict.fromkeys(c for c in candidates if c in index))

    def _synset_words(self, pos: str, offset: int) -> list[str]:
        """The lemmas of the synset at ``offset``: offset lex_file type n_words(hex) word lex_id ..."""
        if pos not in self._data:  # read once (all four files: about 30 MB), then sliced per lookup
            self._data[pos] = (self.root / f"data.{pos}").read_bytes()
        data = self._data[pos]
        end = data.find(b"\n", offset)
        fields = data[offset : end if end >= 0 else None].decode("utf-8", errors="replace").split()
        n = int(fields[3], 16)
        words = fields[4 : 4 + 2 * n : 2]
        return [w.split("(")[0].replace("_", " ") for w in words]  # adjectives may carry a marker: "big(a)"

    def synonyms(self, word: str) -> list[str]:
        word = word.lower()
        if word not in self._cache:
            seen: dict[str, None] = {}
            for pos in POS:
                for base in self.base_forms(word, pos):
                    for offset in self._index_of(pos)[base]:
                        for w in self._synset_words(pos, offset):
                            if w.lower() not in (word, base):
                                seen.setdefault(w, None)
            self._cache[word] = list(seen)
        return self._cache[word]


def find_wordnet(configured: str | os.PathLike | None = None) -> Path | None:
    """The WordNet folder to use: ``configured``, else ``$TUNEPROOF_WORDNET``, else Debian's; None when absent.

    A folder that is named (config or environment) but holds no database is still returned,
    so that :class:`WordNet` says what is wrong with it rather than another folder being used.
    """
    named = configured or os.environ.get(WORDNET_ENV)
    if named:
        return Path(named).expanduser()
    return Path(DEBIAN_WORDNET) if (Path(DEBIAN_WORDNET) / "index.noun").is_file() else None


def open_wordnet(configured: str | os.PathLike | None = None) -> WordNet:
    """:class:`WordNet` on :func:`find_wordnet`'s folder.

    Raises:
        TuneproofError: no WordNet database is installed or the named folder holds none; the
            message says how to install it.
    """
    root = find_wordnet(configured)
    if root is None:
        raise TuneproofError(f"synonym replacement needs the WordNet database, and none was found in {DEBIAN_WORDNET} "
                             f"(augment.wordnet and {WORDNET_ENV} are unset). Fix: {WORDNET_INSTALL}.")  # fmt: skip
    return WordNet(root)
