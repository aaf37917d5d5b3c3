"""Exact and near duplicates: hash first, then MinHash LSH with verified candidates.

Exact duplicates are found by hashing the text after collapsing whitespace and case.
Near duplicates are found among the remaining records by MinHash over word shingles,
computed vectorised with numpy (multiply-shift hashing, one column per permutation),
banded into LSH buckets, and every candidate pair is verified with its real shingle
Jaccard before it is reported. The first record is kept; a later one is a
duplicate when it is verified similar to an earlier kept record (``duplicate_of``).

Short texts use shorter shingles (at most one shingle per ~4 words): one edited word in
a ten-word question would otherwise change every 5-word shingle. The Jaccard threshold is
set for long texts and the configured shingle size, where it allows a certain share of
edited words; a pair of short texts must meet the threshold that allows the same share at
its own shingle size (:func:`pair_threshold`), so that "What are the symptoms of flu" and
"What are the symptoms of gout" (one word in six differs) are not near copies. A word prefix or suffix
shared by at least half of the texts (an instruction in every prompt) is removed before
shingling: it is template, and it would make different questions look like near copies.

A shingle Jaccard counts scattered edits fully (each changes ``s`` shingles) but a run of
``L`` changed words as only ``L + s - 1`` shingles, so "What is the most common cause of
otitis media" and "... of venous thrombosis" (two words in nine differ, one run) reach
0.6 while the threshold stands for ~11% of edited words. Every pair that passes the
Jaccard is therefore also aligned word by word (:func:`edit_share`) and must differ in at
most the share of words that the threshold allows (:func:`allowed_edit_share`).

A near copy is a redundant record only when it would teach the same thing
(:func:`same_lesson`):

- For records with a prompt and a completion, the prompts are compared outside the lines
  they share verbatim (:func:`prompt_difference`). Those lines are context, e.g. a passage
  that two records ask different questions about: the question is what distinguishes them,
  so its change is measured against itself, not diluted by the passage. Reading-comprehension
  data (several questions per passage) would otherwise lose all but one question per passage.
- Records whose answers (completions, or labels) disagree are not copies: two answers to
  one prompt are a conflict to resolve. They are reported as a warning
  (``conflicting answer``), which curation flags and keeps.
"""

from __future__ import annotations

import difflib
import hashlib
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence

import numpy as np

from tuneproof.audit._base import (
    SEVERE,
    WARNING,
    Context,
    Finding,
    completion_text,
    normalize,
    prompt_text,
    record_text,
    words,
)
from tuneproof.audit._base import progress as track
from tuneproof.config import AuditConfig
from tuneproof.data import Record

__all__ = [
    "ExactDuplicateCheck",
    "MinHasher",
    "NearDuplicateCheck",
    "allowed_edit_share",
    "answer_text",
    "answers_agree",
    "edit_share",
    "near_duplicate_pairs",
    "pair_threshold",
    "prompt_difference",
    "same_lesson",
    "shared_affix",
    "strip_shared_affixes",
]

_MULT = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit constant (golden ratio) for combining
_BATCH_SHINGLES = 20_000  # shingles hashed per numpy batch: ~18 MB at 112 permutations, cache-friendly
MIN_WORDS = 3  # shorter texts are compared by the exact check only
AFFIX_SHARE, MIN_AFFIX, MAX_AFFIX = 0.5, 3, 64  # a shared instruction: >= 3 words in >= half of the texts
_ALL_PAIRS_MAX = 32  # buckets up to this size are verified pairwise; larger ones against their first
_TIE = 1e-9  # a share equal to the allowed one (1 word in 9 at 11.1%) is within it despite float rounding


class ExactDuplicateCheck:
    """Records whose text is identical after normalizing whitespace and case."""

    name = "exact_duplicate"

    def run(self, records: Sequence[Record], context: Context) -> Iterator[Finding]:
        first: dict[bytes, int] = {}
        dups: set[int] = set()
        for i, rec in enumerate(track(records, "exact duplicates", context.progress)):
            key = hashlib.blake2b(normalize(record_text(rec)).encode("utf-8"), digest_size=12).digest()
            j = first.setdefault(key, i)
            if j != i:
                dups.add(i)
                yield Finding(
                    rec.id, self.name, SEVERE,
                    f"identical to {records[j].id} after normalizing whitespace and case.",
                    "identical text", {"duplicate_of": records[j].id}, i,
                )  # fmt: skip
        context.extras["exact_duplicates"] = dups


class MinHasher:
    """Vectorised MinHash over word shingles.

    Args:
        num_perm: number of hash functions (signature length).
        shingle_size: words per shingle for long texts; short texts use fewer.
        seed: seed of the hash functions.
    """

    def __init__(self, num_perm: int = 112, shingle_size: int = 3, seed: int = 1):
        rng = np.random.default_rng(seed)
        self.num_perm = num_perm
        self.shingle_size = shingle_size
        self._a = rng.integers(1, 2**63, size=num_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
        self._b = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64)
        self._vocab: dict[str, int] = {}

    def shingle_n(self, n_words: int) -> int:
        """Shingle size for a text of ``n_words`` words: the configured size, or less for
        short texts so that one edited word does not change every shingle."""
        return max(1, min(self.shingle_size, n_words // 4))

    def shingles(self, text: str) -> np.ndarray:
        """The sorted unique 64-bit hashes of the text's word shingles (empty if no words)."""
        return self.token_shingles(words(text))

    def token_shingles(self, toks: list[str]) -> np.ndarray:
        """:meth:`shingles` of an already tokenized text (:func:`words`)."""
        if not toks:
            return np.empty(0, dtype=np.uint64)
        vocab = self._vocab
        ids = np.fromiter(
            (vocab[t] if t in vocab else vocab.setdefault(t, zlib.crc32(t.encode()) + 1) for t in toks),
            dtype=np.uint64, count=len(toks),
        )  # fmt: skip
        n = self.shingle_n(len(toks))
        h = ids[: len(ids) - n + 1].copy()
        for k in range(1, n):
            h = h * _MULT + ids[k : len(ids) - n + 1 + k]
        return np.unique(h)

    def signatures(self, shingle_sets: Sequence[np.ndarray]) -> np.ndarray:
        """MinHash signatures, shape (len(shingle_sets), num_perm), uint32. Sets must be non-empty."""
        out = np.empty((len(shingle_sets), self.num_perm), dtype=np.uint32)
        start = 0
        while start < len(shingle_sets):
            stop, total = start, 0
            while stop < len(shingle_sets) and (total == 0 or total + len(shingle_sets[stop]) <= _BATCH_SHINGLES):
                total += len(shingle_sets[stop])
                stop += 1
            chunk = shingle_sets[start:stop]
            flat = np.concatenate(chunk)
            offsets = np.zeros(len(chunk), dtype=np.int64)
            np.cumsum([len(c) for c in chunk[:-1]], out=offsets[1:])
            # Multiply-shift hashing: the top 32 bits of a*x + b (mod 2^64) per permutation,
            # in place to spare temporaries.
            hashed = np.multiply(flat[:, None], self._a[None, :])
            np.add(hashed, self._b[None, :], out=hashed)
            np.right_shift(hashed, np.uint64(32), out=hashed)
            out[start:stop] = np.minimum.reduceat(hashed, offsets, axis=0)
            start = stop
        return out


def _band_candidates(sigs: np.ndarray, bands: int) -> np.ndarray:
    """Candidate pairs (i < j) that share at least one LSH band, as an (n, 2) int64 array."""
    n, perms = sigs.shape
    rows = perms // bands
    pairs: list[np.ndarray] = []
    for b in range(bands):
        block = sigs[:, b * rows : (b + 1) * rows].astype(np.uint64)
        key = block[:, 0].copy()
        for k in range(1, rows):
            key = key * _MULT + block[:, k]
        order = np.argsort(key, kind="stable")
        sorted_key = key[order]
        same = sorted_key[1:] == sorted_key[:-1]
        if not same.any():
            continue
        # Runs of equal keys: start where a run begins, end where it stops.
        edges = np.diff(np.concatenate(([False], same, [False])).astype(np.int8))
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) + 1
        two = ends - starts == 2  # most buckets hold a pair: take those without a Python loop
        a, b = order[starts[two]], order[starts[two] + 1]
        pairs.append(np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1))
        for s, e in zip(starts[~two], ends[~two]):
            members = np.sort(order[s:e])
            if len(members) <= _ALL_PAIRS_MAX:
                ii, jj = np.triu_indices(len(members), 1)
                pairs.append(np.stack([members[ii], members[jj]], axis=1))
            else:  # pair each with the first and with its neighbour: enough to link a cluster
                pairs.append(np.stack([np.full(len(members) - 1, members[0]), members[1:]], axis=1))
                pairs.append(np.stack([members[1:-1], members[2:]], axis=1))
    if not pairs:
        return np.empty((0, 2), dtype=np.int64)
    allp = np.concatenate(pairs).astype(np.int64)
    codes = np.unique(allp[:, 0] * n + allp[:, 1])
    return np.stack([codes // n, codes % n], axis=1)


def _jaccard(a: np.ndarray, b: np.ndarray) -> float:
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)


def shared_affix(token_lists: Sequence[list[str]], *, suffix: bool) -> tuple[str, ...]:
    """The longest word prefix (or suffix) that at least half of the texts share, grown one
    word at a time among the texts that still match; () when none of MIN_AFFIX words exists."""
    need = max(3, AFFIX_SHARE * len(token_lists))
    members = list(range(len(token_lists)))
    affix: list[str] = []
    while len(affix) < MAX_AFFIX:
        k = len(affix)
        counts: dict[str, int] = defaultdict(int)
        for i in members:
            t = token_lists[i]
            if len(t) > k:
                counts[t[-1 - k] if suffix else t[k]] += 1
        if not counts:
            break
        word, c = max(counts.items(), key=lambda kv: kv[1])
        if c < need:
            break
        affix.append(word)
        members = [i for i in members if len(token_lists[i]) > k and (token_lists[i][-1 - k] if suffix else token_lists[i][k]) == word]
    if len(affix) < MIN_AFFIX:
        return ()
    return tuple(reversed(affix)) if suffix else tuple(affix)


def strip_shared_affixes(token_lists: Sequence[list[str]]) -> list[list[str]]:
    """Remove a word prefix and suffix shared by at least half of the texts (an instruction
    in every prompt, a signature in every email) from each text that has it.

    Two different questions behind the same 7-word instruction otherwise share most of
    their shingles and look like near copies. A text keeps the affix when removing it would
    leave under MIN_WORDS words.
    """
    out = [list(t) for t in token_lists]
    if len(out) < 2:
        return out
    for suffix in (False, True):
        affix = shared_affix(out, suffix=suffix)
        if not affix:
            continue
        n = len(affix)
        for i, t in enumerate(out):
            has = tuple(t[-n:]) == affix if suffix else tuple(t[:n]) == affix
            if has and len(t) - n >= MIN_WORDS:
                out[i] = t[:-n] if suffix else t[n:]
    return out


def allowed_edit_share(config: AuditConfig) -> float:
    """The share of edited words that ``config.jaccard_threshold`` stands for.

    With ``s``-word shingles, ``e`` scattered substitutions among ``n`` words change about
    ``s * e`` shingles on each side, so ``J = (n - s*e) / (n + s*e)`` and the threshold allows
    ``q = (1 - J) / (s * (1 + J))``: 11% at 0.5 with 3-word shingles.

    Example:
        >>> round(allowed_edit_share(AuditConfig()), 3)
        0.111
    """
    j0, s0 = config.jaccard_threshold, config.shingle_size
    return (1 - j0) / (s0 * (1 + j0))


def edit_share(a: Sequence[str], b: Sequence[str]) -> float:
    """The share of the two word sequences' words that a word alignment leaves unmatched.

    ``1 - 2m / (len(a) + len(b))`` with ``m`` words matched in order (difflib): one word
    substituted in ten gives 0.1, one word inserted into ten gives 1/21. Symmetric like the
    Jaccard, and blind to where the edits sit (a run of changed words counts word by word).
    Two empty sequences differ in nothing (0.0); an empty and a non-empty one in all (1.0).

    Example:
        >>> round(edit_share("what is the cause of gout".split(), "what is the cause of flu".split()), 3)
        0.167
    """
    if not a and not b:
        return 0.0
    matched = sum(m.size for m in difflib.SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks())
    return 1 - 2 * matched / (len(a) + len(b))


def answer_text(record: Record) -> str | None:
    """What a record teaches a model to produce: its completion, or its label for a
    text + label record; None for plain text."""
    answer = completion_text(record)
    if answer is None and "label" in record.fields:
        return str(record.fields["label"])
    return answer


def answers_agree(a: str, b: str) -> bool:
    """Two answers agree when they are equal after normalizing, or when a word alignment
    matches most of their words (:func:`edit_share` at most 1/2): an edited copy of an answer
    keeps most of its words, another answer ("no" for "yes", another label) does not."""
    return normalize(a) == normalize(b) or edit_share(words(a), words(b)) <= 0.5


def _content_lines(text: str) -> list[tuple[str, ...]]:
    return [t for line in text.split("\n") if (t := tuple(words(line)))]


def prompt_difference(a: str, b: str) -> float:
    """The :func:`edit_share` of two prompts outside the lines both carry verbatim.

    A line that both prompts hold unchanged (an instruction, a passage the question is
    about) is shared context; what distinguishes the records is the rest, and their
    difference is measured against the rest alone. Two questions about one 40-word passage
    differ in most of their own words, although they differ in ~10% of the prompts' words.
    Prompts whose lines all match differ in nothing (0.0).
    """
    la, lb = _content_lines(a), _content_lines(b)
    common = Counter(la) & Counter(lb)
    rest: list[list[str]] = []
    for lines in (la, lb):
        left = Counter(common)
        kept = []
        for line in lines:
            if left[line] > 0:
                left[line] -= 1
            else:
                kept.extend(line)
        rest.append(kept)
    return edit_share(rest[0], rest[1])


def same_lesson(a: Record, b: Record, config: AuditConfig) -> str | None:
    """Whether two records whose texts are near copies teach the same thing.

    Returns ``"copy"`` (a redundant record), ``"conflict"`` (the same input with another
    answer: completions or labels that disagree, :func:`answers_agree`) or None (not a copy:
    prompts with a completion that differ, outside the lines they share, in more than
    :func:`allowed_edit_share` of their words, :func:`prompt_difference`).
    """
    if completion_text(a) is not None and completion_text(b) is not None:
        if prompt_difference(prompt_text(a), prompt_text(b)) > allowed_edit_share(config) + _TIE:
            return None
    ans_a, ans_b = answer_text(a), answer_text(b)
    if ans_a is None or ans_b is None or answers_agree(ans_a, ans_b):
        return "copy"
    return "conflict"


def pair_threshold(n_words: int, config: AuditConfig, hasher: MinHasher | None = None) -> float:
    """The Jaccard a pair whose shorter text has ``n_words`` words must reach.

    ``config.jaccard_threshold`` is meant for long texts shingled with ``config.shingle_size``
    words. There, ``e`` substituted words among ``n`` change about ``s * e`` of the ``n``
    shingles on each side, so ``J = (n - s*e) / (n + s*e)``, and the threshold allows an edited
    share ``q = (1 - J) / (s * (1 + J))`` (11% at 0.5 with 3-word shingles). A short text uses
    shorter shingles (:meth:`MinHasher.shingle_n`), where the same ``J`` would allow far more
    edits (a third of the words at 0.5 with single words); it gets the Jaccard that allows the
    same share ``q`` at its own shingle size, and never less than the configured threshold.

    Example:
        >>> round(pair_threshold(6, AuditConfig()), 2), pair_threshold(200, AuditConfig())
        (0.8, 0.5)
    """
    j0, s0 = config.jaccard_threshold, config.shingle_size
    share = (1 - j0) / (s0 * (1 + j0))
    s = (hasher or MinHasher(16, s0)).shingle_n(n_words)
    shingles = max(1, n_words - s + 1)
    changed = s * share * n_words
    return max(j0, (shingles - changed) / (shingles + changed))


def near_duplicate_pairs(
    texts: Sequence[str], config: AuditConfig, *, progress: bool = False
) -> list[tuple[int, int, float]]:
    """Verified near-duplicate pairs ``(i, j, jaccard)`` with ``i < j`` among ``texts``.

    Candidates come from MinHash LSH (``config.num_perm``, ``config.bands``); a pair is
    kept when its real shingle Jaccard is at least ``config.jaccard_threshold``, or for short
    texts the stricter :func:`pair_threshold` that allows the same share of edited words, and
    its word alignment differs in at most that share (:func:`edit_share`,
    :func:`allowed_edit_share`): the Jaccard undercounts a run of changed words.
    """
    hasher = MinHasher(config.num_perm, config.shingle_size)
    toks = strip_shared_affixes([words(t) for t in texts])
    sets = [hasher.token_shingles(t) for t in track(toks, "near duplicates: shingling", progress)]
    # Texts under MIN_WORDS words are left to exact dedup: two words in common say nothing.
    nonempty = np.array([i for i, s in enumerate(sets) if len(s) and len(toks[i]) >= MIN_WORDS], dtype=np.int64)
    if len(nonempty) < 2:
        return []
    sigs = hasher.signatures([sets[i] for i in nonempty])
    cand = _band_candidates(sigs, config.bands)
    allowed = allowed_edit_share(config) + _TIE
    out = []
    for a, b in cand:
        i, j = int(nonempty[a]), int(nonempty[b])
        jac = _jaccard(sets[i], sets[j])
        if jac >= pair_threshold(min(len(toks[i]), len(toks[j])), config, hasher) and edit_share(toks[i], toks[j]) <= allowed:
            out.append((i, j, jac))
    return out


def _first_kept(n: int, pairs: list[tuple[int, int, float]]) -> dict[int, tuple[int, float]]:
    """Keep the first record of each group: in order, a record is a duplicate when a verified
    pair links it to an earlier record that is kept. Returns duplicate -> (kept twin, Jaccard).

    Unlike a transitive cluster, a chain a~b~c where a and c are not similar does not
    remove c when b is removed.
    """
    partners: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for i, j, jac in pairs:
        partners[j].append((i, jac))  # i < j
    dup: dict[int, tuple[int, float]] = {}
    for j in sorted(partners):
        kept = [(i, jac) for i, jac in partners[j] if i not in dup]
        if kept:
            dup[j] = min(kept)
    return dup


class NearDuplicateCheck:
    """Records that are near copies of an earlier record and teach the same thing (removed),
    and near copies that give another answer (``conflicting answer``: flagged, kept)."""

    name = "near_duplicate"

    def run(self, records: Sequence[Record], context: Context) -> Iterator[Finding]:
        cfg = context.config
        exact = context.extras.get("exact_duplicates", set())
        keep = [i for i in range(len(records)) if i not in exact]
        texts = [record_text(records[i]) for i in keep]
        copies, conflicts = [], []
        for i, j, jac in near_duplicate_pairs(texts, cfg, progress=context.progress):
            verdict = same_lesson(records[keep[i]], records[keep[j]], cfg)
            if verdict is not None:
                (copies if verdict == "copy" else conflicts).append((i, j, jac))
        dups = _first_kept(len(keep), copies)
        found = set()
        for local, (twin, jac) in sorted(dups.items()):
            i, r = keep[local], keep[twin]
            found.add(i)
            yield Finding(
                records[i].id, self.name, SEVERE,
                f"Near copy of {records[r].id} (word-shingle Jaccard {jac:.2f}; threshold {cfg.jaccard_threshold:g}, "
                "higher for short texts so that they allow the same share of edited words).",
                "near copy", {"duplicate_of": records[r].id, "jaccard": round(jac, 3)}, i,
            )  # fmt: skip
        context.extras["near_duplicates"] = found
        yield from self._conflicts(records, keep, conflicts, dups)

    def _conflicts(self, records: Sequence[Record], keep: list[int], conflicts: list[tuple[int, int, float]],
                   dups: dict[int, tuple[int, float]]) -> Iterator[Finding]:  # fmt: skip
        """One warning per record that is a near copy of an earlier record with another answer."""
        seen: set[int] = set()
        for i, j, jac in sorted(conflicts, key=lambda p: (p[1], p[0])):
            if j in seen or j in dups:
                continue
            seen.add(j)
            a, b = records[keep[i]], records[keep[j]]
            what = "label" if completion_text(b) is None else "completion"
            shown = f" ({answer_text(b)!r}, there {answer_text(a)!r})" if what == "label" else ""
            yield Finding(
                b.id, self.name, WARNING,
                f"Near copy of {a.id} (word-shingle Jaccard {jac:.2f}) with another {what}{shown}: not a redundant copy "
                f"but a conflict, flagged and kept. Fix: check which {what} is right; correct or drop the other.",
                "conflicting answer", {"conflicts_with": a.id, "jaccard": round(jac, 3)}, keep[j],
            )  # fmt: skip
