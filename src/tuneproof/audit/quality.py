"""Low quality: Gopher-style heuristics on each record's text, calibrated on the data at hand.

Severe findings (curation removes them by default): empty text, an empty completion or
one identical to the prompt, garbled or mojibake text, text made mostly of symbols,
heavily repeated lines, words or n-grams, and lorem-ipsum filler. Warnings (kept, flagged):
very short text, many digits, odd mean word length, web boilerplate phrases.

The repetition rules (lines, words, n-grams) judge the prompt and the completion apart: a
summary quotes its source, so the two joined repeat phrases that neither repeats alone.

Each severe rule with a numeric measure (:data:`RULES`: the share of the text in repeated
phrases, of symbols, of tokens that are not words...) has a default threshold from Gopher,
set on web text, which other prose can exceed by nature (legal text repeats phrases). The
check calibrates each threshold where it runs (:mod:`tuneproof.audit._calibrate`):

- the bulk of the data is taken as the domain, and a threshold is the larger of the default
  and the data's own outlier fence ``median + z * 1.4826 * MAD`` (``z`` the normal quantile of
  ``1 - calibration_rate / m``, the rate split over the ``m`` rules): a rule only flags
  outliers of the data;
- with domain references, which are in-domain by definition, the thresholds are also raised
  (never lowered) until the check flags at most ``audit.calibration_rate`` (2%) of the
  references: a record must be beyond what the references allow and an outlier of the data.

Mojibake, control characters, lorem ipsum, an empty completion and a copied prompt are
faults whatever the domain: they are not calibrated. ``audit.json`` reports the calibration
(``calibration.low_quality``), and a finding whose threshold moved says so.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from tuneproof.audit._base import SEVERE, WARNING, Context, Finding, completion_text, normalize, progress, prompt_text, record_text
from tuneproof.audit._calibrate import MIN_FIT, normal_tail, reference_thresholds, robust_fence
from tuneproof.data import Record, Schema

__all__ = ["RULES", "LowQualityCheck", "Rule", "calibrate_rules", "quality_problems", "record_measures", "text_measures"]

# Thresholds from Gopher (Rae et al. 2021, table A1) where they apply to short records too.
SYMBOL_RATIO = 0.25  # non-alphanumeric, non-space characters per character
DIGIT_RATIO = 0.5
DUP_LINE_FRACTION = 0.3
TOP_NGRAM_FRACTION = {2: 0.20, 3: 0.18, 4: 0.16}
DUP_NGRAM_FRACTION = {5: 0.15, 6: 0.14, 7: 0.13}
MIN_WORDS_FOR_NGRAMS = 50  # Gopher's document rules fire on a phrase said twice in a short text
REPEATED_WORD_FRACTION = 0.5  # short texts: one word making up more than half of it
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


@dataclass(frozen=True)
class Rule:
    """A severe rule with a numeric measure: a text is flagged when its measure is above the
    threshold.

    Attributes:
        code: the finding's code, e.g. ``repeated n-grams``.
        default: the threshold before calibration (Gopher's, set on web text).
        sentence: the measure in words, formatted with ``value``.
    """

    code: str
    default: float
    sentence: str


RULES: dict[str, Rule] = {
    "non_words": Rule("garbled text", 1 - WORDLIKE_MIN, "{value:.0%} of its tokens do not look like words; the text looks garbled"),
    "symbols": Rule("mostly symbols", SYMBOL_RATIO, "{value:.0%} of its characters are symbols"),
    "repeated_lines": Rule("repeated lines", DUP_LINE_FRACTION, "{value:.0%} of its lines repeat earlier lines"),
    "repeated_word": Rule("repeated words", REPEATED_WORD_FRACTION, "one word makes up {value:.0%} of the text"),
    **{f"top_{n}gram": Rule("repeated n-grams", limit, f"the most common {n}-word phrase covers {{value:.0%}} of the text")
       for n, limit in TOP_NGRAM_FRACTION.items()},
    **{f"dup_{n}gram": Rule("repeated n-grams", limit, f"{{value:.0%}} of the text sits in repeated {n}-word phrases")
       for n, limit in DUP_NGRAM_FRACTION.items()},
}  # fmt: skip
DEFAULTS = {name: rule.default for name, rule in RULES.items()}


def _grams(toks: list[str], n: int) -> list[tuple[str, ...]]:
    return list(zip(*(toks[k:] for k in range(n))))


def _prose(stripped: str) -> str:
    """The text without fenced code: code repeats names and symbols by nature."""
    return _CODE_FENCE.sub(" ", stripped).strip() if "```" in stripped else stripped


def _ngram_measures(toks: list[str]) -> dict[str, float]:
    if len(toks) < MIN_WORDS_FOR_NGRAMS:
        # Short texts: only a single word repeated over and over is a problem.
        return {"repeated_word": Counter(toks).most_common(1)[0][1] / len(toks)} if len(toks) >= 6 else {}
    out = dict.fromkeys([f"top_{n}gram" for n in TOP_NGRAM_FRACTION] + [f"dup_{n}gram" for n in DUP_NGRAM_FRACTION], 0.0)
    chars = sum(len(t) for t in toks)
    for n in TOP_NGRAM_FRACTION:
        gram, count = Counter(_grams(toks, n)).most_common(1)[0]
        if count < 3:
            break  # said at most twice: ordinary emphasis, and no longer n-gram repeats more
        out[f"top_{n}gram"] = count * sum(len(t) for t in gram) / chars
    for n in DUP_NGRAM_FRACTION:
        grams = _grams(toks, n)
        if len(set(grams)) == len(grams):
            break  # no repeated n-gram: nothing covered, and none for larger n either
        seen: set[tuple[str, ...]] = set()
        covered = [False] * len(toks)
        for i, g in enumerate(grams):
            if g in seen:
                covered[i : i + n] = [True] * n
            seen.add(g)
        out[f"dup_{n}gram"] = sum(len(t) for t, c in zip(toks, covered) if c) / chars
    return out


def _repetition_measures(text: str) -> dict[str, float]:
    """The measures of the repeated lines, words and n-grams rules that apply to ``text``."""
    prose = _prose(text.strip())
    out: dict[str, float] = {}
    # Lines of one word or less (a closing brace, a bullet) repeat in any code or list.
    lines = [ln.strip() for ln in prose.splitlines() if len(ln.split()) >= 2]
    if len(lines) >= 3:
        out["repeated_lines"] = (len(lines) - len(set(lines))) / len(lines)
    out.update(_ngram_measures([t.lower() for t in re.findall(r"\w+", prose)]))
    return out


def _character_measures(text: str) -> dict[str, float]:
    """The measures of the garbled text and mostly symbols rules that apply to ``text``."""
    prose = _prose(text.strip())
    out: dict[str, float] = {}
    tokens = _TOKEN.findall(prose)
    if len(tokens) >= 3:
        out["non_words"] = 1.0 - _wordlike_share(tokens)
    if len(prose) >= 10:
        out["symbols"] = len(_NOT_SYMBOL.sub("", prose)) / len(prose)
    return out


def text_measures(text: str) -> dict[str, float]:
    """The measure of every rule in :data:`RULES` that applies to one text (a rule needs
    enough words, lines or characters to apply).

    Example:
        >>> m = text_measures("buy now\\nbuy now\\nbuy now\\nfree shipping today")
        >>> m["repeated_lines"], round(m["repeated_word"], 2)
        (0.5, 0.33)
    """
    return {**_character_measures(text), **_repetition_measures(text)}


def record_measures(record: Record) -> dict[str, tuple[float, str]]:
    """The rules' measures of one record, each with the part it was measured on.

    The repetition rules judge the prompt and the completion apart and keep the higher
    (part ``"prompt"`` or ``"completion"``); the character rules judge the whole record
    (part ``""``), as do all rules for a record without a completion.
    """
    text = record_text(record)
    completion = completion_text(record)
    if completion is None:
        return {k: (v, "") for k, v in text_measures(text).items()}
    out = {k: (v, "") for k, v in _character_measures(text).items()}
    for part, part_text in (("prompt", prompt_text(record)), ("completion", completion)):
        for k, v in _repetition_measures(part_text).items():
            if k not in out or v > out[k][0]:
                out[k] = (v, part)
    return out


def _faults(text: str, min_words: int) -> list[tuple[str, str, str]]:
    """The problems that no threshold decides: encoding faults, filler, and the warnings."""
    stripped = text.strip()
    if not stripped:
        return [(SEVERE, "empty text", "the text is empty.")]
    out: list[tuple[str, str, str]] = []
    toks = [t.lower() for t in re.findall(r"\w+", stripped)]
    if _MOJIBAKE.search(stripped) or _CONTROL.search(stripped):
        bad = len(_MOJIBAKE.findall(stripped)) + len(_CONTROL.findall(stripped))
        if bad >= 2 or bad / max(1, len(_TOKEN.findall(stripped))) > 0.05:
            out.append((SEVERE, "mojibake", f"the text holds {bad} mis-decoded or control characters "
                        "(e.g. 'Ã©' for 'é', U+FFFD); it was decoded with the wrong encoding."))
    prose = _prose(stripped)
    digits = len(_NOT_DIGIT.sub("", prose))
    if len(prose) >= 10 and digits / len(prose) > DIGIT_RATIO:
        out.append((WARNING, "mostly digits", f"{digits / len(prose):.0%} of its characters are digits."))
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


def _rule_problems(
    measures: dict[str, tuple[float, str]], thresholds: dict[str, float], notes: dict[str, str]
) -> list[tuple[str, str, str, dict[str, Any]]]:
    """The rules whose measure is above its threshold, as ``(severity, code, reason, details)``;
    one finding per code (the first rule of a code that fires)."""
    out, codes = [], set()
    for name, rule in RULES.items():
        if name not in measures or rule.code in codes:
            continue
        value, part = measures[name]
        limit = thresholds.get(name, rule.default)
        if value > limit:
            codes.add(rule.code)
            where = f"in the {part}, " if part else ""
            note = f"; {notes[name]}" if name in notes else ""
            reason = f"{where}{rule.sentence.format(value=value)} (limit {limit:.0%}{note})."
            details = {"rule": name, "value": round(value, 4), "threshold": round(limit, 4)}
            out.append((SEVERE, rule.code, reason, details | ({"part": part} if part else {})))
    return out


def quality_problems(text: str, *, min_words: int = 3, thresholds: dict[str, float] | None = None) -> list[tuple[str, str, str]]:
    """The quality problems of one text, as ``(severity, code, reason)`` triples.

    Args:
        text: the text, judged as one part.
        min_words: fewer words are a warning.
        thresholds: rule name -> threshold, for the rules of :data:`RULES`; defaults to theirs.
    """
    out = _faults(text, min_words)
    if text.strip():
        measures = {k: (v, "") for k, v in text_measures(text).items()}
        out += [p[:3] for p in _rule_problems(measures, thresholds or DEFAULTS, {})]
    return out


def _reference_records(context: Context) -> list[Record]:
    """The domain references, each once (a copy would count twice in the calibration)."""
    if context.domain_records is not None:
        return list({record_text(r): r for r in context.domain_records}.values())
    texts = dict.fromkeys(context.domain or [])
    return [Record(f"domain:{i}", Schema.TEXT, {"text": t}) for i, t in enumerate(texts, 1)]


def _fences(measures: Sequence[dict[str, tuple[float, str]]], rate: float) -> tuple[dict[str, dict[str, Any]], int]:
    """Each rule's outlier fence on the data's own measure; the rate is split over the rules
    that have enough values to fit, so that any of them firing stays within ``rate``."""
    fitted = {name: [m[name][0] for m in measures if name in m] for name in RULES}
    m_rules = max(1, sum(len(v) >= MIN_FIT for v in fitted.values()))
    return {name: robust_fence(fitted[name], rule.default, rate / m_rules) for name, rule in RULES.items()}, m_rules


def calibrate_rules(
    measures: Sequence[dict[str, tuple[float, str]]],
    reference_measures: Sequence[dict[str, tuple[float, str]]] | None,
    rate: float,
) -> tuple[dict[str, float], dict[str, Any], dict[str, str]]:
    """Each rule's threshold: the larger of the data's own outlier fence and, with domain
    references, the threshold that lets the check flag at most ``rate`` of them (see the
    module docstring). A record is then flagged only when the references do not allow its
    measure and it is an outlier of the data's bulk: with few references, their calibration
    alone sits at their maximum per rule, which more than ``rate`` of in-domain text exceeds
    once several rules add up.

    Args:
        measures: :func:`record_measures` of every record of the data.
        reference_measures: :func:`record_measures` of every domain reference, or None.
        rate: the target share of in-domain text the check may flag.

    Returns:
        the thresholds by rule, the calibration entry for ``audit.json`` (``method``, ``how``,
        ``target_rate``, ``expected_false_positive_rate``, ``recalibrated`` and per rule its
        ``threshold``, ``default``, ``data_fence`` and ``references`` facts), and by
        recalibrated rule the note that a finding's reason gives.
    """
    fences, m_rules = _fences(measures, rate)
    ref = None
    if reference_measures:
        values = {name: [m[name][0] if name in m else 0.0 for m in reference_measures] for name in RULES}
        ref = reference_thresholds(values, DEFAULTS, rate)
    rules: dict[str, dict[str, Any]] = {}
    notes: dict[str, str] = {}
    tails = []
    for name, rule in RULES.items():
        fence, why = fences[name], []
        floor = rule.default
        info: dict[str, Any] = {"default": rule.default, "data_fence": fence}
        if ref is not None:
            info["references"] = r = ref["rules"][name]
            floor = r["threshold"]
            if r["calibrated"]:
                why.append(f"calibrated on the {ref['references']} domain references: the default "
                           f"{rule.default:.0%} flagged {r['default_flags']:.0%} of them")  # fmt: skip
        if fence["threshold"] > floor:
            why.append(f"the data's own outlier fence, median {fence['median']:.0%} + {fence['z']} x "
                       f"{fence['sigma']:.1%}; the default {rule.default:.0%} flagged {fence['default_flags']:.0%} "
                       "of the records")  # fmt: skip
        info.update(threshold=max(floor, fence["threshold"]), calibrated=max(floor, fence["threshold"]) > rule.default)
        if "sigma" in fence:
            tails.append(normal_tail(info["threshold"], fence["median"], fence["sigma"]))
        if why:
            notes[name] = "; ".join(why)
        rules[name] = info
    if tails:
        expected = round(min(1.0, sum(tails)), 4)
    else:
        expected = ref["expected_false_positive_rate"] if ref is not None else None
    entry = {
        "method": ("references and the data's outlier fence" if ref is not None else "data outlier fence"),
        "how": _how(rate, m_rules, ref), "target_rate": rate, "rate_per_rule": round(rate / m_rules, 5),
        "expected_false_positive_rate": expected,
        **({"references": ref["references"], "references_flagged_by_default": ref["default_flags"],
            "references_flagged": ref["flags"]} if ref is not None else {}),
        "recalibrated": [name for name, info in rules.items() if info["calibrated"]], "rules": rules,
    }  # fmt: skip
    return {name: info["threshold"] for name, info in rules.items()}, entry, notes


def _how(rate: float, m_rules: int, ref: dict[str, Any] | None) -> str:
    fence = (f"the data's own outlier fence median + z x 1.4826 MAD of the records' measure, z for {rate:.0%} split "
             f"over the {m_rules} rules fitted (normal model)")  # fmt: skip
    tail = ("expected false-positive rate: the normal tails above the thresholds, summed over the rules (with too "
            "few records to fit: (k + 1) / (n + 1), k of the n references flagged)")  # fmt: skip
    if ref is None:
        return (f"no domain references: the bulk of the data is taken as the domain; each threshold is the larger "
                f"of its default and {fence}; {tail}")  # fmt: skip
    return (f"each threshold is the larger of its default raised (never lowered) until the check flags at most "
            f"{rate:.0%} of the {ref['references']} domain references, and {fence}; {tail}")


class LowQualityCheck:
    """Gopher-style heuristics calibrated on the data at hand, plus an empty completion or one
    that repeats the prompt."""

    name = "low_quality"

    def run(self, records: Sequence[Record], context: Context) -> Iterator[Finding]:
        cfg = context.config
        measures = [record_measures(r) for r in progress(records, "low quality", context.progress)]
        refs = _reference_records(context)
        ref_measures = [record_measures(r) for r in refs] if refs else None
        thresholds, entry, notes = calibrate_rules(measures, ref_measures, cfg.calibration_rate)
        context.extras.setdefault("calibration", {})[self.name] = entry
        for i, rec in enumerate(records):
            text = record_text(rec)
            problems = [(*p, {}) for p in _faults(text, cfg.min_words)]
            if text.strip():
                problems += _rule_problems(measures[i], thresholds, notes)
            completion = completion_text(rec)
            if completion is not None:
                if not completion.strip():
                    problems.append((SEVERE, "empty completion", "the completion (the text to learn) is empty.", {}))
                elif normalize(completion) == normalize(prompt_text(rec)):
                    problems.append((SEVERE, "completion repeats prompt", "the completion is identical to the prompt.", {}))
            for severity, code, reason, details in problems:
                yield Finding(rec.id, self.name, severity, reason[0].upper() + reason[1:], code, details, i)
