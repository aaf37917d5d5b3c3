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
  :func:`bulk_fit` fits the centre and spread of similarity scores whose low side holds
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
    "bulk_fit",
    "half_sample_mode",
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
    flagged, the rule that fires on most of them is raised past as many of its lowest
    measures above it as there are references too many (those and their ties stop firing). A rule that fires on no reference
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
        above = np.sort(v[over[:, r], r])
        t[r] = float(above[min(len(above), int(flagged.sum()) - allowed) - 1])
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


def half_sample_mode(x: np.ndarray) -> float:
    """The half-sample mode (Bickel and Fruehwirth 2006) of ``x``: repeatedly keep the
    shortest interval holding half of the values, until three are left. It finds the peak of
    the densest component, whatever lies elsewhere, as long as that component is the largest.

    Example:
        >>> round(half_sample_mode(np.array([0.0, 0.1, 0.5, 0.52, 0.53, 0.55, 0.9])), 3)
        0.525
    """
    v = np.sort(np.asarray(x, dtype=float))
    while len(v) > 3:
        h = (len(v) + 1) // 2
        widths = v[h - 1 :] - v[: len(v) - h + 1]
        start = int(np.argmin(widths))
        v = v[start : start + h]
    if len(v) == 3:
        v = v[:2] if v[1] - v[0] < v[2] - v[1] else v[1:] if v[2] - v[1] < v[1] - v[0] else v[1:2]
    return float(v.mean())


def bulk_fit(scores: np.ndarray, *, floor: float | None = None, iterations: int = 30) -> tuple[float, float]:
    """Centre and spread of the in-domain bulk of similarity scores whose low side may hold
    many off-domain records.

    Off-domain records score lower than in-domain ones, so the scores above the bulk's
    centre are in-domain even when up to about half of all records are not: the spread is
    1.4826 times the median distance *above* the centre, which under a symmetric model of the
    bulk is its spread on both sides. The fit starts at the half-sample mode (the peak of the
    largest component, wherever the rest lies) and then clips: the scores more than 3 spreads
    below the centre leave, the centre becomes the median of the rest and the spread is
    measured again, until nothing changes. In simulations (normal bulk, 0-40% outliers 3-6
    spreads below) the fence at ``z`` spreads flagged 1.5-2.7% of the bulk for a 2% target
    and found the outliers more than 4 spreads below at up to 20%, 6 at 40%. ``floor`` (e.g.
    far below what the domain references score) leaves out lower scores first, so that a bulk
    the references describe is found even when off-domain records are a majority.

    Returns:
        the centre and the spread (0 when the bulk is a single value).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> x = np.concatenate([rng.normal(0.5, 0.05, 600), rng.normal(0.2, 0.05, 400)])  # 40% outliers
        >>> [round(v, 2) for v in bulk_fit(x)]
        [0.5, 0.05]
    """
    x = np.asarray(scores, dtype=float)
    if floor is not None and (x >= floor).sum() >= MIN_FIT:
        x = x[x >= floor]
    centre = half_sample_mode(x)
    sigma = _upper_spread(x, centre)
    keep = None
    for _ in range(iterations):
        new = x >= centre - CLIP_SIGMAS * sigma
        if (keep is not None and (new == keep).all()) or new.sum() < MIN_FIT:
            break
        keep = new
        centre = float(np.median(x[keep]))
        sigma = _upper_spread(x[keep], centre)
    return centre, sigma


def _upper_spread(x: np.ndarray, centre: float) -> float:
    above = x[x > centre] - centre
    return MAD_TO_SIGMA * float(np.median(above)) if len(above) else 0.0
