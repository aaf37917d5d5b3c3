"""Paired bootstrap over records, and the verdict it supports.

Both models are scored on the same records, so each resample draws records (with
replacement) and recomputes *both* models' scores on that draw: the interval is for
the difference, and the records' shared difficulty cancels out.

A resample is a row of counts (how often each record was drawn), so every metric is a
weighted statistic and all resamples are computed in a few matrix products.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

__all__ = ["Delta", "Verdict", "bootstrap_counts", "paired_bootstrap", "paired_bootstrap_means", "verdict"]

Verdict = Literal["improved", "no_change", "regressed"]
Statistic = Callable[[np.ndarray], np.ndarray]  # (B, n) counts -> (B,) values
# Keep each block of resamples under about 16 MB of float64 counts.
_BLOCK_CELLS = 2_000_000


@dataclass(frozen=True)
class Delta:
    """Tuned minus reference on one metric, with its paired-bootstrap interval."""

    metric: str
    reference: float
    tuned: float
    value: float  # tuned - reference
    ci_low: float
    ci_high: float
    confidence: float
    resamples: int
    seed: int
    higher_is_better: bool
    undefined_resamples: int = 0  # resamples where the metric is undefined (e.g. AUROC with one class)

    def to_dict(self) -> dict:
        return asdict(self)


def bootstrap_counts(n: int, resamples: int, seed: int) -> np.ndarray:
    """``(resamples, n)`` counts: how often each of ``n`` records is drawn in each resample."""
    rng = np.random.default_rng(seed)
    # n uniform draws per resample, counted with one bincount over offset indices:
    # several times faster than rng.multinomial, with the same distribution.
    draws = rng.integers(0, n, size=(resamples, n)) + (np.arange(resamples) * n)[:, None]
    return np.bincount(draws.ravel(), minlength=resamples * n).reshape(resamples, n).astype(float)


def paired_bootstrap(
    metric: str,
    reference: Statistic,
    tuned: Statistic,
    n: int,
    *,
    higher_is_better: bool,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Delta:
    """Percentile interval of ``tuned - reference`` over resamples of the ``n`` records.

    Args:
        metric: the metric's name, carried into the result.
        reference, tuned: map a ``(B, n)`` matrix of record weights to ``B`` metric values.
        n: number of records (both models scored on the same ones).
        higher_is_better: the metric's direction, used by :func:`verdict`.
        resamples: at least 1000.
        confidence: e.g. 0.95 for a 95% interval.
        seed: the resampling seed; the same seed gives the same interval.

    Raises:
        ValueError: ``n`` < 1, fewer than 1000 resamples, or a confidence outside (0, 1).
    """
    _check(n, resamples, confidence)
    ones = np.ones((1, n))
    ref_point, tuned_point = float(reference(ones)[0]), float(tuned(ones)[0])
    diffs = [tuned(counts) - reference(counts) for counts in _blocks(n, resamples, seed, counts=True)]
    return _delta(metric, ref_point, tuned_point, np.concatenate(diffs), confidence, seed, higher_is_better)


def _check(n: int, resamples: int, confidence: float) -> None:
    if n < 1:
        raise ValueError("the bootstrap needs at least one record; the test set is empty")
    if resamples < 1000:
        raise ValueError(f"resamples={resamples}: use at least 1000 for a stable interval")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence={confidence}: must be in (0, 1), e.g. 0.95")


def _blocks(n: int, resamples: int, seed: int, *, counts: bool):
    """Resamples in blocks that fit in memory: record counts ``(B, n)`` or drawn indices."""
    block = max(1, _BLOCK_CELLS // n)
    children = np.random.SeedSequence(seed).spawn((resamples + block - 1) // block)
    for start, child in zip(range(0, resamples, block), children):
        size, child_seed = min(block, resamples - start), int(child.generate_state(1)[0])
        if counts:
            yield bootstrap_counts(n, size, child_seed)
        else:
            yield np.random.default_rng(child_seed).integers(0, n, size=(size, n))


def _delta(
    metric: str, ref_point: float, tuned_point: float, d: np.ndarray, confidence: float, seed: int, higher: bool
) -> Delta:
    undefined = int(np.isnan(d).sum())
    alpha = (1 - confidence) / 2
    if undefined == len(d):
        low = high = float("nan")
    else:
        low, high = (float(x) for x in np.nanquantile(d, [alpha, 1 - alpha]))
    return Delta(
        metric=metric,
        reference=ref_point,
        tuned=tuned_point,
        value=tuned_point - ref_point,
        ci_low=low,
        ci_high=high,
        confidence=confidence,
        resamples=len(d),
        seed=seed,
        higher_is_better=higher,
        undefined_resamples=undefined,
    )


def paired_bootstrap_means(
    metric: str,
    reference_scores: np.ndarray,
    tuned_scores: np.ndarray,
    *,
    higher_is_better: bool,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Delta:
    """:func:`paired_bootstrap` for a metric that is the mean of per-record scores.

    Example:
        >>> d = paired_bootstrap_means("em", np.zeros(50), np.ones(50), higher_is_better=True)
        >>> d.value, d.ci_low
        (1.0, 1.0)
    """
    ref = np.asarray(reference_scores, dtype=float)
    tun = np.asarray(tuned_scores, dtype=float)
    if ref.shape != tun.shape or ref.ndim != 1:
        raise ValueError(f"paired scores must be two 1-D arrays of equal length, got {ref.shape} and {tun.shape}")
    _check(len(ref), resamples, confidence)
    # For a mean, the difference of means is the mean of per-record differences: one gather
    # per resample, no count matrix.
    diff = tun - ref
    d = np.concatenate([diff[idx].mean(axis=1) for idx in _blocks(len(diff), resamples, seed, counts=False)])
    return _delta(metric, float(ref.mean()), float(tun.mean()), d, confidence, seed, higher_is_better)


def verdict(delta: Delta, min_effect: float = 0.0) -> tuple[Verdict, str]:
    """``improved``, ``no_change`` or ``regressed``, with a sentence saying why.

    ``improved`` needs the interval to exclude zero on the good side *and* the effect to
    be at least ``min_effect`` (in the metric's units); ``regressed`` needs the interval
    to exclude zero on the bad side. Everything else is ``no_change``.
    """
    sign = 1.0 if delta.higher_is_better else -1.0
    gain = sign * delta.value
    good_low = min(sign * delta.ci_low, sign * delta.ci_high)  # the interval's worst edge, in gain units
    good_high = max(sign * delta.ci_low, sign * delta.ci_high)
    pct = f"{delta.confidence:.0%}"
    ci = f"{pct} CI [{delta.ci_low:+.4g}, {delta.ci_high:+.4g}]"
    direction = "higher" if delta.higher_is_better else "lower"
    if np.isnan(good_low):
        return "no_change", f"the {delta.metric} interval is undefined on these records, so nothing is proven"
    if good_low > 0:
        if gain >= min_effect:
            return "improved", (
                f"{delta.metric} {delta.value:+.4g} ({direction} is better), {ci} excludes 0, "
                f"and the effect is at least min_effect={min_effect:g}"
            )
        return "no_change", (
            f"{delta.metric} {delta.value:+.4g}: {ci} excludes 0, but the effect is below "
            f"min_effect={min_effect:g}, so it is not worth calling an improvement"
        )
    if good_high < 0:
        return "regressed", f"{delta.metric} {delta.value:+.4g} ({direction} is better): {ci} lies on the bad side of 0"
    return "no_change", f"{delta.metric} {delta.value:+.4g}: {ci} contains 0"
