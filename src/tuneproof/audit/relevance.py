"""Off-domain: cosine similarity of each record to the target domain.

The domain is either reference examples (``--domain``) or a sentence (``--domain-text``),
embedded with MiniLM. A record's score is its cosine similarity to the references'
centroid. With references, the threshold is calibrated from them: each reference is
scored against the centroid of the others (leave-one-out) and a low quantile of those
scores is the threshold, so about that share of true in-domain text would be flagged.
With a description there is nothing to calibrate on; the threshold is user-set
(``audit.off_domain_threshold``) or 0.15.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from tuneproof.audit._base import SEVERE, CheckNotRun, Context, Finding, record_text
from tuneproof.data import Record

__all__ = ["DOMAIN_TEXT_THRESHOLD", "OffDomainCheck", "calibrate_threshold", "embedder", "record_embeddings"]

DOMAIN_TEXT_THRESHOLD = 0.15


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


def calibrate_threshold(refs: np.ndarray, quantile: float) -> tuple[float, np.ndarray]:
    """Leave-one-out scores of the references against the centroid of the others, and
    their ``quantile`` as the threshold."""
    total = refs.sum(0)
    others = total[None, :] - refs
    others /= np.linalg.norm(others, axis=1, keepdims=True).clip(min=1e-12)
    loo = (refs * others).sum(1)
    return float(np.quantile(loo, quantile)), loo


class OffDomainCheck:
    """Records whose similarity to the domain falls below the threshold."""

    name = "off_domain"

    def run(self, records: Sequence[Record], context: Context) -> Iterator[Finding]:
        cfg = context.config
        if not context.domain and not context.domain_text:
            raise CheckNotRun("no domain given (pass --domain REFS or --domain-text \"...\")")
        enc = embedder(context)
        if context.domain:
            if len(context.domain) < 5:
                raise CheckNotRun(
                    f"only {len(context.domain)} domain reference(s); give at least 5 so the "
                    "threshold can be calibrated, or use --domain-text"
                )
            refs = enc.encode(context.domain, progress=context.progress, description="embedding references")
            centroid = refs.mean(0)
            calibrated, _ = calibrate_threshold(refs, cfg.off_domain_quantile)
            source = f"calibrated: the {cfg.off_domain_quantile:.0%} quantile of the references' leave-one-out scores"
        else:
            centroid = enc.encode([context.domain_text])[0]
            calibrated = DOMAIN_TEXT_THRESHOLD
            source = "the default for a domain description"
        centroid = centroid / max(float(np.linalg.norm(centroid)), 1e-12)
        threshold = cfg.off_domain_threshold if cfg.off_domain_threshold is not None else calibrated
        if cfg.off_domain_threshold is not None:
            source = "set by the user"
        scores = record_embeddings(records, context) @ centroid
        context.extras["relevance"] = scores
        context.extras["off_domain_threshold"] = {"value": round(float(threshold), 4), "source": source}
        for i, (rec, s) in enumerate(zip(records, scores)):
            if s < threshold:
                yield Finding(
                    rec.id, self.name, SEVERE,
                    f"Similarity to the target domain is {s:.2f}, below the threshold {threshold:.2f} ({source}).",
                    "below domain threshold", {"score": round(float(s), 4), "threshold": round(float(threshold), 4)}, i,
                )  # fmt: skip
