"""Off-domain: how close each record is to the target domain, in MiniLM embedding space.

The domain is either reference examples (``--domain``) or a sentence (``--domain-text``).

With references, a record's score is its mean cosine similarity to its ``k`` nearest
references (``audit.off_domain_k``). A domain such as trivia questions is topically
diverse: its centroid is close to none of its members, so a centroid threshold calibrated
on them ends up low enough to let chit-chat through; the nearest references follow the
domain's own spread. The threshold is calibrated from the references the same way: each
reference is scored against its ``k`` nearest *other* references (leave-one-out), and the
``audit.off_domain_quantile`` quantile of those scores is the threshold. The share of true
in-domain text expected below it is a little above that quantile, and more so with few
references (:func:`expected_flag_share`: 2.0-3.0% for 2% with 100 references, 3.2-6.5% with 30);
the threshold's description says the figure. Exact duplicate references are
counted once, as a copy would otherwise be its own nearest neighbour.

The references are few next to the data, so their 2% quantile is a noisy estimate (with 40
references it sits near their lowest score). The data's own scores add a second, larger
sample: the bulk of the records that resemble the references is in-domain, so its centre
and spread are fitted robustly (:func:`~tuneproof.audit._calibrate.bulk_fit`: the half-sample
mode and the spread of the scores above it, which off-domain records do not reach) on the
records that the references accept (at or above their threshold), so that the off-domain
records they already see cannot widen the fit, even when they are a majority. Its low fence
is ``centre - z * sigma``, ``z`` the normal quantile of ``1 - audit.off_domain_quantile``. A
record is flagged only when it is below the references' threshold *and* below the data's
fence: the fit can only lower the threshold, sparing the records in the references' tail
that the data's bulk holds ordinary. In simulations (normal in-domain scores; references'
threshold at the 14% quantile of the domain, as few unrepresentative references give) the
share of in-domain text flagged fell from 14% to 4.5%; at the 2% quantile it stays 2%.
Off-domain records that overlap the bulk are caught less (within 2.5 spreads of it,
at 40% of the data: 75% instead of 92%). With fewer than 20 records the references
decide alone.

With a description only there are no in-domain examples, and an absolute cosine means
different things for different descriptions and texts (one sentence about five news topics
is far from every article). The bulk of the data is taken as the domain: the similarity
scores are fitted the same way (the half-sample mode and the spread above it: up to about
40% of low outliers, well below the bulk, leave the fit nearly unchanged) and the low outliers below ``centre - z * sigma``
are flagged; under a normal model of in-domain scores that flags ``audit.off_domain_quantile``
of them. Below 20 records nothing can be fitted and the check does not run unless
``audit.off_domain_threshold`` is set. A user-set threshold always overrides the calibration.

With no domain hint at all the check does not run: with nothing to say what the domain is,
an outlier of the embeddings is not evidence of being off-domain.

A record is scored twice when most records share some text (an instruction that starts
every prompt, a signature that ends every email; found as in near-duplicate shingling, at
least 3 words shared by at least half of the records): as the whole record, and without that
text (records and references alike). The shared text adds the same direction to every
embedding, so in a short record it can hide that the rest is off-domain (fortunes with a
summarization instruction scored like news), while on other data the instruction plus a short
answer is itself what makes a record look like the references (trivia). The record's
relevance is the lower of the two, the second put on the whole-record scale (the same number
of standard deviations from the references' own leave-one-out mean); the references are
scored the same way, so the threshold stays calibrated. Measured on three corpora (see
docs/benchmarks/audit.md): fortunes among news caught 6 -> 41 of 120, trivia data unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

import numpy as np

from tuneproof.audit._base import _WORD, SEVERE, CheckNotRun, Context, Finding, normalize, record_text, words
from tuneproof.audit._calibrate import MIN_FIT, bulk_fit, normal_tail, z_for_rate
from tuneproof.audit.dedup import MIN_WORDS, shared_affix
from tuneproof.data import Record

__all__ = [
    "OffDomainCheck",
    "calibrate_threshold",
    "embedder",
    "expected_flag_share",
    "flag_share_range",
    "knn_scores",
    "record_embeddings",
    "strip_shared_text",
]

_BLOCK = 4096  # records per similarity block, so records x references never sits in memory at once


def embedder(context: Context):
    """The context's shared :class:`~tuneproof.audit.embed.Embedder` (loaded once).

    Raises:
        CheckNotRun: torch/transformers or the MiniLM package are missing.
    """
    if "embedder" not in context.embeddings:
        try:
            from tuneproof.audit.embed import Embedder
            from tuneproof.errors import ModelLoadError

            try:
                context.embeddings["embedder"] = Embedder(
                    max_tokens=context.config.embed_max_tokens, batch_size=context.config.embed_batch_size
                )
            except ModelLoadError as exc:
                raise CheckNotRun(f"the MiniLM embedding model is unavailable: {exc}") from None
        except ImportError as exc:
            raise CheckNotRun(f"embeddings need torch and transformers ({exc}); pip install 'tuneproof[demo]'") from None
    return context.embeddings["embedder"]


def record_embeddings(records: Sequence[Record], context: Context) -> np.ndarray:
    """Embeddings of the records' text, computed once per audit and shared by checks."""
    if "records" not in context.embeddings:
        texts = [record_text(r) for r in records]
        context.embeddings["records"] = embedder(context).encode(
            texts, progress=context.progress, description="embedding records"
        )
    return context.embeddings["records"]


def knn_scores(x: np.ndarray, refs: np.ndarray, k: int, *, leave_one_out: bool = False) -> np.ndarray:
    """Mean cosine similarity of each row of ``x`` to its ``k`` most similar rows of ``refs``.

    Both are L2-normalized. With ``leave_one_out``, ``x`` is ``refs`` itself and each row's
    own similarity is left out. ``k`` is capped at the number of references available.

    Example:
        >>> refs = np.eye(3, dtype=np.float32)
        >>> knn_scores(np.array([[1.0, 0.0, 0.0]]), refs, 2).tolist()
        [0.5]
    """
    available = len(refs) - (1 if leave_one_out else 0)
    if available < 1:
        raise ValueError(f"knn_scores needs at least {2 if leave_one_out else 1} reference(s), got {len(refs)}")
    k = max(1, min(k, available))
    out = np.empty(len(x), dtype=np.float64)
    for start in range(0, len(x), _BLOCK):
        sims = x[start : start + _BLOCK] @ refs.T
        if leave_one_out:
            rows = np.arange(len(sims))
            sims[rows, rows + start] = -np.inf
        top = np.partition(sims, -k, axis=1)[:, -k:]
        out[start : start + len(sims)] = top.mean(1)
    return out


def calibrate_threshold(refs: np.ndarray, quantile: float, k: int) -> tuple[float, np.ndarray]:
    """Leave-one-out kNN scores of the references (each against its ``k`` nearest other
    references), and their ``quantile`` as the threshold.

    Example:
        >>> refs = np.array([[1.0, 0.0], [0.8, 0.6], [0.6, 0.8]])
        >>> threshold, loo = calibrate_threshold(refs, 0.0, k=1)
        >>> round(threshold, 2), loo.round(2).tolist()
        (0.8, [0.8, 0.96, 0.96])
    """
    loo = knn_scores(refs, refs, k, leave_one_out=True)
    return float(np.quantile(loo, quantile)), loo


def expected_flag_share(n: int, quantile: float) -> tuple[float, float]:
    """Bounds on the expected share of new in-domain scores below ``np.quantile(loo, quantile)``
    of ``n`` leave-one-out reference scores, whatever their distribution.

    The linear-interpolation quantile lies between order statistics ``j`` and ``j + 1``,
    ``j = floor((n - 1) * quantile) + 1``, and a new exchangeable score falls below the
    ``j``-th of ``n`` with probability ``j / (n + 1)``. With 100 references and 2% the
    simulated share was 2.9%; with 10 it is 9-18%.

    Example:
        >>> [round(x, 3) for x in expected_flag_share(100, 0.02)]
        [0.02, 0.03]
    """
    j = int(np.floor((n - 1) * quantile)) + 1
    return j / (n + 1), min(j + 1, n) / (n + 1)


def flag_share_range(n: int, quantile: float, level: float = 0.9) -> tuple[float, float]:
    """The share of in-domain text that one calibration flags, for ``level`` of all draws of
    ``n`` references: :func:`expected_flag_share` bounds its mean, and with few references a
    single draw lands far from it.

    The share below the ``j``-th of ``n`` exchangeable scores is Beta(j, n + 1 - j)
    distributed. The linear-interpolation quantile sits between the ``j``-th and the
    ``j + 1``-th at weight ``w``; the range interpolates the two Beta quantiles with the same
    weight (exact at ``w`` 0 and 1; within a point of ``level`` in simulations).

    Example:
        >>> [round(x, 3) for x in flag_share_range(100, 0.02)]
        [0.008, 0.061]
        >>> [round(x, 3) for x in flag_share_range(1000, 0.02)]
        [0.014, 0.029]
    """
    from scipy.stats import beta

    pos = (n - 1) * quantile
    j, w = int(np.floor(pos)) + 1, float(pos - np.floor(pos))
    k = min(j + 1, n)
    tails = np.array([(1 - level) / 2, (1 + level) / 2])
    lo, hi = beta(j, n + 1 - j).ppf(tails), beta(k, n + 1 - k).ppf(tails)
    low, high = (1 - w) * lo + w * hi
    return float(low), float(high)


def _cut(text: str, prefix: tuple[str, ...], suffix: tuple[str, ...]) -> str:
    spans = list(_WORD.finditer(text))
    toks = [m.group().lower() for m in spans]
    start, end = 0, len(text)
    n, m = len(prefix), len(suffix)
    if n and tuple(toks[:n]) == prefix and len(toks) - n >= MIN_WORDS:
        start, spans, toks = spans[n - 1].end(), spans[n:], toks[n:]
    if m and len(toks) >= m and tuple(toks[-m:]) == suffix and len(toks) - m >= MIN_WORDS:
        end = spans[-m].start()
    out = text[start:end]
    return re.sub(r"^[\W_]+", "", out) if start else out


def strip_shared_text(texts: Sequence[str], others: Sequence[str] = ()) -> tuple[list[str], list[str], str]:
    """Remove the word prefix and suffix that at least half of ``texts`` share, from ``texts``
    and from ``others`` (the references); a text keeps them when too little would be left.

    Returns:
        the stripped ``texts``, the stripped ``others``, and the shared text as the first text
        that has it writes it, "..." where each record's own text goes ("" when there is none;
        then the texts come back unchanged).

    Example:
        >>> recs = ["Answer briefly, please: who wrote Dracula", "Answer briefly, please: capital of Peru",
        ...         "Answer briefly please: tallest mountain on Earth"]
        >>> stripped, refs, shared = strip_shared_text(recs, ["Answer briefly please: largest ocean there is"])
        >>> stripped[0], refs[0], shared
        ('who wrote Dracula', 'largest ocean there is', 'Answer briefly, please: ...')
    """
    tokens = [words(t) for t in texts]
    prefix = shared_affix(tokens, suffix=False) if len(tokens) >= 2 else ()
    suffix = shared_affix(tokens, suffix=True) if len(tokens) >= 2 else ()
    if not prefix and not suffix:
        return list(texts), list(others), ""
    shared = " ".join(([_as_written(texts, prefix, False)] if prefix else []) + ["..."]
                      + ([_as_written(texts, suffix, True)] if suffix else []))
    return [_cut(t, prefix, suffix) for t in texts], [_cut(t, prefix, suffix) for t in others], shared


def _as_written(texts: Sequence[str], affix: tuple[str, ...], at_end: bool) -> str:
    """``affix`` (lower-cased words) as the first text that starts (or ends) with it writes it.

    Findings quote it, so it must read as the data does: its case and punctuation, with the
    punctuation that touches its first and last word (e.g. the colon after "please"). Runs of
    whitespace show as one space, so a quote stays on one line.
    """
    for text in texts:
        spans = list(_WORD.finditer(text))
        part = spans[-len(affix):] if at_end else spans[: len(affix)]
        if len(part) == len(affix) and tuple(m.group().lower() for m in part) == affix:
            start, end = part[0].start(), part[-1].end()
            start -= len(re.search(r"[^\w\s]*$", text[:start]).group())
            end += len(re.match(r"[^\w\s]*", text[end:]).group())
            return " ".join(text[start:end].split())
    return " ".join(affix)  # not reached: at least half of the texts have it


def _on_scale(x: np.ndarray, own: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``x``, scored like ``own`` (the references' leave-one-out scores), as the score that is
    as many standard deviations from ``target``'s mean."""
    return target.mean() + target.std() * (x - own.mean()) / own.std()


def _reference_scores(records: Sequence[Record], vectors: np.ndarray, context: Context) -> dict:
    """The records' relevance to the references, the references' leave-one-out scores on the
    same scale, and how they were measured (see the module docstring)."""
    enc = embedder(context)
    # A copied reference would be its own nearest neighbour and inflate the calibration.
    texts = list(dict.fromkeys(context.domain))
    if len(texts) < 5:
        raise CheckNotRun(
            f"only {len(texts)} distinct domain reference(s); give at least 5 so the "
            "threshold can be calibrated, or use --domain-text"
        )
    refs = enc.encode(texts, progress=context.progress, description="embedding references")
    k = min(context.config.off_domain_k, len(refs) - 1)
    scores = knn_scores(vectors, refs, k)
    loo = knn_scores(refs, refs, k, leave_one_out=True)
    out = {"scores": scores, "loo": loo, "whole": scores, "rescaled": None, "references": len(refs),
           "measure": f"mean similarity to the {k} nearest domain references"}  # fmt: skip
    bare, bare_refs, shared = strip_shared_text([record_text(r) for r in records], texts)
    if shared:
        # Without the shared text, on the whole-record scale; the lower of the two counts.
        bare_vecs = enc.encode(bare, progress=context.progress, description="embedding records without the shared text")
        bare_refs_vecs = enc.encode(bare_refs)
        bare_loo = knn_scores(bare_refs_vecs, bare_refs_vecs, k, leave_one_out=True)
        if bare_loo.std() > 0 and loo.std() > 0:
            rescaled = _on_scale(knn_scores(bare_vecs, bare_refs_vecs, k), bare_loo, loo)
            out.update(
                scores=np.minimum(scores, rescaled), rescaled=rescaled,
                loo=np.minimum(loo, _on_scale(bare_loo, bare_loo, loo)),
                measure=(
                    f"relevance (the mean similarity to the {k} nearest domain references, of the whole "
                    f'record or, if lower, of the record without "{shared}" that most records share, '
                    "put on the whole-record scale)"
                ),
            )  # fmt: skip
    return out


def _data_fence(scores: np.ndarray, rate: float, floor: float | None = None) -> dict:
    """The data's own low-outlier fence ``centre - z * sigma`` from a robust fit of the bulk of
    its scores, with the fit's parameters and the expected in-domain share below it."""
    centre, sigma = bulk_fit(scores, floor=floor)
    z = z_for_rate(rate)
    threshold = centre - z * sigma
    return {
        "threshold": threshold, "centre": round(centre, 4), "sigma": round(sigma, 4), "z": round(z, 3),
        "records": len(scores), "flags": round(float((scores < threshold).mean()), 4),
        "expected_false_positive_rate": round(normal_tail(threshold, centre, sigma, upper=False), 4),
    }  # fmt: skip


def _calibrate_on_references(scores: np.ndarray, loo: np.ndarray, quantile: float) -> tuple[float, str, dict]:
    """The threshold with references: the lower of the references' leave-one-out quantile
    and, with enough records, the data's own fence (fitted from the references' start)."""
    n = len(loo)
    t_ref = float(np.quantile(loo, quantile))
    low, high = expected_flag_share(n, quantile)
    spread = "{:.1%}-{:.1%}".format(*flag_share_range(n, quantile))
    source = (
        f"the {quantile:.0%} quantile of the references' leave-one-out scores, {n} references; expected to "
        f"flag {low:.1%}-{high:.1%} of in-domain text on average, and 9 in 10 sets of {n} references flag {spread}"
    )
    entry = {"method": "references", "reference_threshold": round(t_ref, 4), "references": n, "quantile": quantile,
             "reference_expected_false_positive_rate": [round(low, 4), round(high, 4)]}  # fmt: skip
    if len(scores) < MIN_FIT:
        entry.update(threshold=round(t_ref, 4), expected_false_positive_rate=round(high, 4),
                     rule=f"score < the references' threshold ({len(scores)} records: too few to fit the data's own)")  # fmt: skip
        return t_ref, f"calibrated: {source}; more references narrow this", entry
    fence = _data_fence(scores, quantile, floor=t_ref)
    threshold = min(t_ref, fence["threshold"])
    expected = min(high, fence["expected_false_positive_rate"])
    entry.update(
        method="references and the data's own fit", threshold=round(threshold, 4), data_fit=fence,
        expected_false_positive_rate=round(expected, 4),
        rule="score < the references' threshold and score < the data's fence (centre - z x sigma): the lower of the two",
    )  # fmt: skip
    source = (
        f"calibrated: the lower of {source}, and the data's own low-outlier fence {fence['threshold']:.3f} "
        f"(centre {fence['centre']:.3f} - {fence['z']} x sigma {fence['sigma']:.3f}, a robust fit of the bulk of "
        f"the scores of the records the references accept); expected to flag about {expected:.1%} of in-domain text"
    )
    return threshold, source, entry


def _calibrate_on_data(scores: np.ndarray, quantile: float) -> tuple[float, str, dict]:
    """The threshold with a domain description: the data's own low-outlier fence."""
    if len(scores) < MIN_FIT:
        raise CheckNotRun(
            f"only {len(scores)} records: too few to fit their similarity to the domain description (at least "
            f"{MIN_FIT}); give --domain references, or set audit.off_domain_threshold"
        )
    fence = _data_fence(scores, quantile)
    entry = {"method": "data's own fit", "threshold": round(fence["threshold"], 4), "data_fit": fence,
             "expected_false_positive_rate": fence["expected_false_positive_rate"],
             "rule": "score < centre - z x sigma of the records' own scores (the bulk is taken as the domain)"}  # fmt: skip
    source = (
        f"the data's own low-outlier fence: centre {fence['centre']:.3f} - {fence['z']} x sigma {fence['sigma']:.3f} "
        f"of the records' similarity to the description (a robust fit of their bulk, taken as the domain); "
        f"expected to flag {fence['expected_false_positive_rate']:.1%} of in-domain "
        "text under a normal model"
    )
    return fence["threshold"], source, entry


def _distinct(scores: np.ndarray, records: Sequence[Record]) -> np.ndarray:
    """The scores of distinct texts: many copies of one off-domain text would otherwise be
    a peak of their own that the fit of the bulk could take for the domain."""
    first = {normalize(record_text(r)): i for i, r in reversed(list(enumerate(records)))}
    return scores[sorted(first.values())]


class OffDomainCheck:
    """Records whose similarity to the domain falls below the threshold."""

    name = "off_domain"

    def run(self, records: Sequence[Record], context: Context) -> Iterator[Finding]:
        cfg = context.config
        if not context.domain and not context.domain_text:
            raise CheckNotRun("no domain given (pass --domain REFS or --domain-text \"...\")")
        vectors = record_embeddings(records, context)
        if context.domain:
            scored = _reference_scores(records, vectors, context)
        else:
            ref = embedder(context).encode([context.domain_text])
            scored = {"scores": knn_scores(vectors, ref, 1), "whole": None, "rescaled": None,
                      "measure": "similarity to the domain description"}  # fmt: skip
        scores, whole, rescaled, measure = scored["scores"], scored["whole"], scored["rescaled"], scored["measure"]
        if cfg.off_domain_threshold is not None:
            threshold, source = cfg.off_domain_threshold, "set by the user"
            entry = {"method": "set by the user", "threshold": threshold}
        elif context.domain:
            threshold, source, entry = _calibrate_on_references(_distinct(scores, records), scored["loo"], cfg.off_domain_quantile)
        else:
            threshold, source, entry = _calibrate_on_data(_distinct(scores, records), cfg.off_domain_quantile)
        context.extras["relevance"] = scores
        context.extras.setdefault("calibration", {})[self.name] = entry
        context.extras["off_domain_threshold"] = {
            "value": round(float(threshold), 4), "source": source, "score": measure,
            "expected_false_positive_rate": entry.get("expected_false_positive_rate"),
        }  # fmt: skip
        for i, (rec, s) in enumerate(zip(records, scores)):
            if s < threshold:
                details = {"score": round(float(s), 4), "threshold": round(float(threshold), 4)}
                reason = f"The {measure} is {s:.2f}, below the threshold {threshold:.2f} ({source})."
                if rescaled is not None:
                    details["whole_record"] = round(float(whole[i]), 4)
                    details["without_shared_text"] = round(float(rescaled[i]), 4)
                    reason += f" Whole record {whole[i]:.2f}, without the shared text {rescaled[i]:.2f}."
                yield Finding(rec.id, self.name, SEVERE, reason, "below domain threshold", details, i)
