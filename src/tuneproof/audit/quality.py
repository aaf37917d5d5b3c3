"""Low quality: Gopher-style heuristics on each record's text.

Severe findings (curation removes them by default): empty text, an empty completion or
one identical to the prompt, garbled or mojibake text, text made mostly of symbols,
heavily repeated lines or n-grams, and lorem-ipsum filler. Warnings (kept, flagged):
very short text, many digits, odd mean word length, web boilerplate phrases.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Sequence

from tuneproof.audit._base import SEVERE, WARNING, Context, Finding, completion_text, normalize, progress, prompt_text, record_text
from tuneproof.data import Record

__all__ = ["LowQualityCheck", "quality_problems"]

# Thresholds from Gopher (Rae et al. 2021, table A1) where they apply to short records too.
SYMBOL_RATIO = 0.25  # non-alphanumeric, non-space characters per character
DIGIT_RATIO = 0.5
DUP_LINE_FRACTION = 0.3
TOP_NGRAM_FRACTION = {2: 0.20, 3: 0.18, 4: 0.16}
DUP_NGRAM_FRACTION = {5: 0.15, 6: 0.14, 7: 0.13}
MIN_WORDS_FOR_NGRAMS = 50  # Gopher's document rules fire on a phrase said twice in a short text
WORDLIKE_MIN = 0.5  # share of tokens that look like words in some language

_MOJIBAKE = re.compile(r"[ÃÂâ][\u0080-\u00bf€šœžŸ¡-¿™]|Ã.|â€|�")
_CODE_FENCE = re.compile(r"```.*?(?:```|$)", re.DOTALL)  # code repeats names and symbols by nature
_NOT_SYMBOL = re.compile(r"[^\W_]+|\s+")  # letters, digits and spaces: what is left is symbols
_NOT_DIGIT = re.compile(r"\D+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_TOKEN = re.compile(r"\S+")
_WORDLIKE = re.compile(r"^[\W_]*(?:[^\W\d_]+(?:['’-][^\W\d_]+)*|\d+(?:[.,:/]\d+)*%?|[^\W\d_]*\d+[^\W\d_]*)[\W_]*$")
_VOWEL = re.compile(r"[aeiouyàâäéèêëîïôöùûüæœåøáíóúñ]|[^\x00-\x7f]", re.IGNORECASE)
_LOREM = re.compile(r"lorem ipsum|dolor sit amet", re.IGNORECASE)
_BOILERPLATE = re.compile(
    r"click here|subscribe to (?:our|the) newsletter|all rights reserved|cookie(?:s)? policy|"
    r"enable javascript|terms of (?:use|service)|privacy policy|sign up for|read more|share this",
    re.IGNORECASE,
)


def _wordlike_share(tokens: list[str]) -> float:
    good = 0
    for t in tokens:
        if t.isalpha():  # fast path: most tokens are plain words
            good += len(t) <= 30 and (len(t) < 4 or bool(_VOWEL.search(t)))
            continue
        if len(t) > 30 or not _WORDLIKE.match(t):
            continue
        if sum(c.isalpha() for c in t) >= 4 and not _VOWEL.search(t):
            continue  # "xkcdqzt": letters but no vowel
        good += 1
    return good / len(tokens)


def _grams(toks: list[str], n: int) -> list[tuple[str, ...]]:
    return list(zip(*(toks[k:] for k in range(n))))


def _ngram_problems(toks: list[str]) -> tuple[str, str] | None:
    if len(toks) < MIN_WORDS_FOR_NGRAMS:
        # Short texts: only a single word repeated over and over is a problem.
        if len(toks) >= 6:
            word, count = Counter(toks).most_common(1)[0]
            if count / len(toks) > 0.5:
                return "repeated words", f"one word makes up more than half of the text ({word!r} repeated)."
        return None
    chars = sum(len(t) for t in toks)
    for n, limit in TOP_NGRAM_FRACTION.items():
        gram, count = Counter(_grams(toks, n)).most_common(1)[0]
        if count < 3:
            break  # said at most twice: ordinary emphasis, and no longer n-gram repeats more
        share = count * sum(len(t) for t in gram) / chars
        if share > limit:
            return "repeated n-grams", (
                f"the most common {n}-word phrase covers {share:.0%} of the text (limit {limit:.0%})."
            )
    for n, limit in DUP_NGRAM_FRACTION.items():
        grams = _grams(toks, n)
        if len(set(grams)) == len(grams):
            break  # no repeated n-gram: nothing covered, and none for larger n either
        seen: set[tuple[str, ...]] = set()
        covered = [False] * len(toks)
        for i, g in enumerate(grams):
            if g in seen:
                covered[i : i + n] = [True] * n
            seen.add(g)
        share = sum(len(t) for t, c in zip(toks, covered) if c) / chars
        if share > limit:
            return "repeated n-grams", f"{share:.0%} of the text sits in repeated {n}-word phrases (limit {limit:.0%})."
    return None


def quality_problems(text: str, *, min_words: int = 3) -> list[tuple[str, str, str]]:
    """The quality problems of one text, as ``(severity, code, reason)`` triples."""
    stripped = text.strip()
    if not stripped:
        return [(SEVERE, "empty text", "the text is empty.")]
    out: list[tuple[str, str, str]] = []
    toks = [t.lower() for t in re.findall(r"\w+", stripped)]
    # Symbol, word-likeness, line and n-gram rules judge prose: fenced code is left out.
    prose = _CODE_FENCE.sub(" ", stripped).strip() if "```" in stripped else stripped
    tokens = _TOKEN.findall(prose)
    if _MOJIBAKE.search(stripped) or _CONTROL.search(stripped):
        bad = len(_MOJIBAKE.findall(stripped)) + len(_CONTROL.findall(stripped))
        if bad >= 2 or bad / max(1, len(tokens)) > 0.05:
            out.append((SEVERE, "mojibake", f"the text holds {bad} mis-decoded or control characters "
                        "(e.g. 'Ã©' for 'é', U+FFFD); it was decoded with the wrong encoding."))
    wordlike = _wordlike_share(tokens) if len(tokens) >= 3 else 1.0
    if wordlike < WORDLIKE_MIN:
        out.append((SEVERE, "garbled text", f"only {wordlike:.0%} of its tokens look like "
                    "words; the text looks garbled."))
    n_chars = len(prose)
    symbols = len(_NOT_SYMBOL.sub("", prose))
    if n_chars >= 10 and symbols / n_chars > SYMBOL_RATIO:
        out.append((SEVERE, "mostly symbols", f"{symbols / n_chars:.0%} of its characters are symbols "
                    f"(limit {SYMBOL_RATIO:.0%})."))
    digits = len(_NOT_DIGIT.sub("", prose))
    if n_chars >= 10 and digits / n_chars > DIGIT_RATIO:
        out.append((WARNING, "mostly digits", f"{digits / n_chars:.0%} of its characters are digits."))
    # Lines of one word or less (a closing brace, a bullet) repeat in any code or list.
    lines = [ln.strip() for ln in prose.splitlines() if len(ln.split()) >= 2]
    if len(lines) >= 3:
        dup = len(lines) - len(set(lines))
        if dup / len(lines) > DUP_LINE_FRACTION:
            out.append((SEVERE, "repeated lines", f"{dup} of its {len(lines)} lines repeat earlier lines."))
    problem = _ngram_problems([t.lower() for t in re.findall(r"\w+", prose)] if prose is not stripped else toks)
    if problem:
        out.append((SEVERE, *problem))
    if _LOREM.search(stripped):
        out.append((SEVERE, "boilerplate", "it holds lorem-ipsum placeholder text."))
    elif len(_BOILERPLATE.findall(stripped)) >= 2:
        out.append((WARNING, "boilerplate", "it holds web boilerplate phrases (e.g. 'click here', "
                    "'privacy policy')."))
    if len(toks) < min_words:
        out.append((WARNING, "too short", f"it has {len(toks)} word(s), fewer than {min_words}."))
    if len(toks) >= 10:
        mean = sum(len(t) for t in toks) / len(toks)
        if not 2.5 <= mean <= 12:
            out.append((WARNING, "odd word length", f"its mean word length is {mean:.1f} characters "
                        "(ordinary prose: 3 to 10)."))
    return out


class LowQualityCheck:
    """Gopher-style heuristics, plus an empty completion or one that repeats the prompt."""

    name = "low_quality"

    def run(self, records: Sequence[Record], context: Context) -> Iterator[Finding]:
        min_words = context.config.min_words
        for i, rec in enumerate(progress(records, "low quality", context.progress)):
            problems = quality_problems(record_text(rec), min_words=min_words)
            completion = completion_text(rec)
            if completion is not None:
                if not completion.strip():
                    problems.append((SEVERE, "empty completion", "the completion (the text to learn) is empty."))
                elif normalize(completion) == normalize(prompt_text(rec)):
                    problems.append((SEVERE, "completion repeats prompt", "the completion is identical to the prompt."))
            for severity, code, reason in problems:
                yield Finding(rec.id, self.name, severity, reason[0].upper() + reason[1:], code, {}, i)
