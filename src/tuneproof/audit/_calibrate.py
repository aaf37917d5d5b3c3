"""Thresholds calibrated on the data at hand: on domain references, or on the data's own bulk.

A text rule (the share of a text inside repeated phrases, the similarity of a record to
the domain...) is a numeric measure and a threshold. A threshold set on web text misfires
on other prose, so each check calibrates it where it runs, by one of two principles:

- **On references.** Domain references are in-domain by definition, so a check may flag at
  most the target share (``rate``, about 2%) of them. :func:`reference_thresholds` raises its
  rules' defaults until it does; it never lowers them, as references that are cleaner than
  the defaults demand say nothing about what garbage looks like.
- **On the data's bulk.** Without references, the bulk of the data is assumed to be the
  domain, and a record may only be flagged as an outlier of the data's own distribution:
  :func:`robust_fence` takes the larger of the default and ``median + z * 1.4826 * MAD``, and
  :func:`clipped_fit` fits the centre and spread of similarity scores whose low tail holds
  the off-domain records. ``z`` is the standard-normal quantile of ``1 - rate``: under a
  normal model of the in-domain measure, a fence at ``z`` robust standard deviations flags
  ``rate`` of in-domain text. The median and the MAD ignore up to half of the data, so a
  minority of bad records cannot move the fence towards themselves. A check with several
  rules gives each ``rate / m`` of its ``m`` rules (Bonferroni), so that any rule firing
  stays within ``rate``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from statistics import NormalDist

import numpy as np

__all__ = [
    "MAD_TO_SIGMA",
    "MIN_FIT",
    "clipped_fit",
    "normal_tail",
    "reference_thresholds",
    "robust_fence",
    "z_for_rate",
]

MAD_TO_SIGMA = 1.4826  # the MAD of a normal distribution is 0.6745 sigma
MIN_FIT = 20  # fewer values: the median and MAD are too uncertain to place a 2% tail
CLIP_SIGMAS = 3.0  # sigma clipping's usual cut: it drops 0.13% of a normal bulk


def z_for_rate(rate: float) -> float:
    """The standard-normal quantile that leaves ``rate`` above it.

    Example:
        >>> round(z_for_rate(0.02), 3)
        2.054
    """
    return NormalDist().inv_cdf(1.0 - rate)


def normal_tail(threshold: float, centre: float, sigma: float, *, upper: bool = True) -> float:
    """The share of ``N(centre, sigma)`` beyond ``threshold`` (above it, or below with
    ``upper=False``); 0 for a point mass that the threshold excludes.

    Example:
        >>> round(normal_tail(2.054, 0.0, 1.0), 3), normal_tail(0.3, 0.0, 0.0)
        (0.02, 0.0)
    """
    if sigma <= 0:
        return float((threshold < centre) if upper else (threshold > centre))
    z = (threshold - centre) / sigma
    return 1.0 - NormalDist().cdf(z) if upper else NormalDist().cdf(z)


def reference_thresholds(values: Mapping[str, Sequence[float]], defaults: Mapping[str, float], rate: float) -> dict:
    """The thresholds (flag above) of several rules of one check, calibrated on their
    measures over the same references so that the check, any rule firing, flags at most
    ``floor(rate * n)`` of the ``n`` references.

    Thresholds start at their defaults and are only raised: while too many references are
    flagged, the rule that fires on most of them is raised to the lowest of its measures
    above it (that reference and its ties stop firing). A rule that fires on no reference
    keeps its default: references cleaner than the default demands say nothing of garbage.
    With fewer than 50 references none may be flagged. The expected share of new in-domain
    text that a threshold exceeded by ``k`` of ``n`` exchangeable references flags is at most
    ``(k + 1) / (n + 1)``, whatever the distribution.

    Args:
        values: rule -> its measure on each reference, in the same reference order (0 where
            the rule does not apply).
        defaults: rule -> its default threshold.
        rate: the target share of references the check may flag.

    Returns:
        ``rules`` (per rule: ``threshold``, ``default``, ``calibrated``, ``default_flags`` and
        ``flags``, the shares of the references above the default and the threshold),
        ``references``, ``default_flags`` and ``flags`` (the check's shares, any rule) and
        ``expected_false_positive_rate``.

    Example:
        >>> r = reference_thresholds({"a": [0.1] * 45 + [0.3] * 5, "b": [0.0] * 50}, {"a": 0.15, "b": 0.5}, 0.02)
        >>> r["rules"]["a"]["threshold"], r["rules"]["a"]["default_flags"], r["rules"]["b"]["calibrated"], r["flags"]
        (0.3, 0.1, False, 0.0)
    """
    names = list(values)
    v = np.array([values[k] for k in names], dtype=float).T.reshape(-1, len(names))
    n = len(v)
    default = np.array([defaults[k] for k in names], dtype=float)
    t = default.copy()
    allowed = int(np.floor(rate * n))
    while True:
        over = v > t
        flagged = over.any(axis=1)
        if flagged.sum() <= allowed:
            break
        r = int(np.argmax(over[flagged].sum(axis=0)))
        t[r] = float(v[over[:, r], r].min())
    share = (lambda a: round(float(a.mean()), 4) if n else 0.0)  # noqa: E731
    rules = {
        k: {"threshold": float(t[j]), "default": float(default[j]), "calibrated": bool(t[j] > default[j]),
            "default_flags": share(v[:, j] > default[j]), "flags": share(v[:, j] > t[j])}
        for j, k in enumerate(names)
    }  # fmt: skip
    k_flagged = int((v > t).any(axis=1).sum())
    return {
        "rules": rules, "references": n, "default_flags": share((v > default).any(axis=1)),
        "flags": share((v > t).any(axis=1)), "expected_false_positive_rate": round((k_flagged + 1) / (n + 1), 4),
    }  # fmt: skip


def robust_fence(values: Sequence[float], default: float, rate: float) -> dict:
    """A rule's threshold (flag above it): the larger of the default and the upper outlier
    fence ``median + z * 1.4826 * MAD`` of the data's own measure, ``z`` from ``rate``.

    With fewer than :data:`MIN_FIT` values the default stays. The expected false-positive
    rate is the normal model's tail above the threshold.

    Returns:
        ``threshold``, ``default``, ``calibrated`` (whether the fence lifted it), ``median``,
        ``sigma`` (1.4826 MAD), ``z``, ``values``, ``default_flags`` and ``flags`` (the
        shares of the data above the default and the threshold) and
        ``expected_false_positive_rate``.

    Example:
        >>> r = robust_fence([0.20, 0.22, 0.24, 0.26, 0.28] * 10, default=0.15, rate=0.02)
        >>> r["calibrated"], round(r["threshold"], 4), r["flags"]
        (True, 0.3009, 0.0)
    """
    v = np.asarray(values, dtype=float)
    z = z_for_rate(rate)
    out = {"threshold": default, "default": default, "calibrated": False, "values": len(v), "z": round(z, 3)}
    if len(v) < MIN_FIT:
        out["note"] = f"{len(v)} value(s), fewer than {MIN_FIT}: too few to fit, the default holds"
        return out
    median = float(np.median(v))
    sigma = MAD_TO_SIGMA * float(np.median(np.abs(v - median)))
    threshold = max(default, median + z * sigma)
    out.update(
        threshold=threshold, calibrated=threshold > default, median=round(median, 4),
        sigma=round(sigma, 4), default_flags=round(float((v > default).mean()), 4),
        flags=round(float((v > threshold).mean()), 4),
        expected_false_positive_rate=round(normal_tail(threshold, median, sigma), 4),
    )  # fmt: skip
    return out


def clipped_fit(scores: np.ndarray, *, start: tuple[float, float] | None = None, iterations: int = 20) -> tuple[float, float, int]:
    """Centre and spread of the bulk of ``scores`` whose low tail may hold outliers, by
    one-sided sigma clipping: drop the scores more than 3 robust standard deviations below the
    median, refit the median and 1.4826 MAD on the rest, until nothing changes.

    The first fit of data with many low outliers has a median pulled down and a spread
    blown up; each clip removes the outliers far below the bulk, and the refit moves back to
    it. ``start`` (a centre and spread, e.g. from the domain references) replaces the first
    fit, so that a bulk the references describe is found even when it is not a majority.
    High scores are never clipped: nothing is off-domain for being close to the domain.

    Returns:
        the centre, the spread and the number of scores clipped.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> x = np.concatenate([rng.normal(0.5, 0.05, 700), rng.normal(0.1, 0.05, 300)])  # 300 outliers
        >>> centre, sigma, clipped = clipped_fit(x)
        >>> round(centre, 2), round(sigma, 2), clipped
        (0.5, 0.05, 303)
    """
    x = np.asarray(scores, dtype=float)
    if start is None:
        centre = float(np.median(x))
        sigma = MAD_TO_SIGMA * float(np.median(np.abs(x - centre)))
    else:
        centre, sigma = start
    keep = np.ones(len(x), dtype=bool)
    for _ in range(iterations):
        new = x >= centre - CLIP_SIGMAS * sigma if sigma > 0 else np.ones(len(x), dtype=bool)
        if new.sum() < MIN_FIT:
            break
        kept = x[new]
        centre = float(np.median(kept))
        sigma = MAD_TO_SIGMA * float(np.median(np.abs(kept - centre)))
        if (new == keep).all():
            break
        keep = new
    return centre, sigma, int((~keep).sum())
