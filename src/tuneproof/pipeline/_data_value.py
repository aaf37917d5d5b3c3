"""How much of the training data matters, and would more help: a learning curve over data size.

Selection methods often do no better than a random subset of the same size, while small
well-chosen subsets sometimes match the full set. :func:`data_value` measures both on the
user's own data instead of assuming either:

- **points**: for each fraction of the training split (default 10, 20, 40, 70 and 100%),
  two subsets of the same size: the best by the score ``curate --select`` keeps
  (:func:`tuneproof.audit.curate.select_records`: relevance minus a penalty per flag, with a
  diversity cap), and a random one. Random subsets are nested (a prefix of one permutation per
  seed), so the random curve is smooth; each ranked subset is exactly what ``--select`` keeps
  at that size. The full data is one point, shared by both curves.
- **each point** is a short training with the run's chosen hyperparameters (the rate and
  settings of the final training), repeated over ``seeds`` seeds (each seed also draws its own
  random subset), scored by the per-record validation loss on the same validation records,
  and for classification by accuracy (the same forward pass; SFT's generation metrics are not
  cheap, so SFT is scored by loss only).
- **the budget**: every point trains the same number of passes over its subset (steps in
  proportion to its size, as ``train.epochs`` would), chosen so that all the points of all the
  seeds together train ``budget`` (default 2) times the examples of the final training. At
  least ``MIN_SWEEP_STEPS`` steps a point: fewer are mostly warm-up and the noise of one batch.
- **the noise**: intervals come from a bootstrap that resamples the validation records (the
  same records for every point, so comparisons are paired) and the seeds. Resampling records
  alone treats each trained model as fixed; two trainings also differ by their data order
  and initialisation, which only the seeds show.
- **the curve**: ``L(n) = a + b (n/N)^(-c)`` (a power law with an offset, ``N`` the full
  training split) fitted to the random subsets' mean loss. Ranked subsets are not samples of
  the data's distribution, so only the random curve answers "would more data of this kind
  help": its slope at 100% (dL/d ln n) and the loss predicted at twice the data.
- **the recommendation** follows the A/B's rule (:func:`tuneproof.pipeline._ab.ab_decision`):
  a smaller subset stands unless its loss is worse than the full data's beyond noise. The
  smallest ranked fraction that is not, and is not worse than random beyond noise, is given as
  ``--select`` advice; when only random subsets reach the full data, the ranking does not beat
  random on this data and no ``--select`` is advised.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tuneproof._io import atomic_open, atomic_write
from tuneproof.config import RunConfig, load_config
from tuneproof.errors import TuneproofError

__all__ = ["DATA_VALUE_FILE", "MIN_FIT_POINTS", "PLOT_FILE", "chosen_setup", "data_value", "fit_curve", "plan_points",
           "random_subsets", "recommend", "summarize"]  # fmt: skip

DATA_VALUE_FILE = "data_value.json"
PLOT_FILE = "data_value.png"
MIN_FIT_POINTS = 4  # sizes needed to fit three parameters and leave one degree of freedom
_FIT_RESAMPLES = 200  # refits for the curve's intervals (each is a least-squares fit)


# ---- the plan ---------------------------------------------------------------------------


def plan_points(n_train: int, fractions: Sequence[float], seeds: int, final_steps: int, budget: float,
                batch: int) -> dict[str, Any]:  # fmt: skip
    """The points of the curve and their steps, so that all of them cost ``budget`` x ``final_steps``.

    Every point trains the same number of passes over its subset (steps in proportion to its
    records); fractions below 1 have two points (ranked and random), the full data one.

    Args:
        n_train: records in the training split.
        fractions: shares of it, sorted, ending with 1.0.
        seeds: trainings per point.
        final_steps: steps of the final training, at ``batch`` examples a step.
        budget: the whole curve's steps, as a multiple of ``final_steps``.
        batch: examples per optimizer step.

    Returns:
        ``{"points": [{"arm", "fraction", "records", "steps"}], "seeds", "epochs" (passes per
        point before the floor), "total_steps", "budget_steps", "final_steps", "budget",
        "over_budget" (None, or why the plan costs more)}``.

    Example:
        >>> p = plan_points(1000, [0.1, 0.2, 0.4, 0.7, 1.0], 2, final_steps=375, budget=2.0, batch=8)
        >>> [x["steps"] for x in p["points"]], p["total_steps"] <= 2.0 * 375
        ([9, 9, 19, 19, 39, 39, 69, 69, 98], True)
    """
    from tuneproof.pipeline._budget import MIN_SWEEP_STEPS

    sizes = {f: max(1, round(f * n_train)) for f in fractions}
    records_trained = seeds * sum(sizes[f] * (1 if f >= 1 else 2) for f in fractions)
    per_record = budget * final_steps / records_trained  # steps per record of a subset
    points = []
    for f in fractions:
        steps = max(MIN_SWEEP_STEPS, math.floor(per_record * sizes[f]))
        points += [{"arm": arm, "fraction": f, "records": sizes[f], "steps": steps} for arm in (("full",) if f >= 1 else ("ranked", "random"))]
    total = seeds * sum(p["steps"] for p in points)
    budget_steps = budget * final_steps
    over = None
    if total > budget_steps * 1.01:
        over = (f"each point trains at least {MIN_SWEEP_STEPS} steps (fewer are mostly warm-up), so the curve costs {total} "
                f"steps, {total / final_steps:.2g}x the final training's {final_steps} instead of {budget:g}x")  # fmt: skip
    return {"points": points, "seeds": seeds, "epochs": per_record * batch, "total_steps": total, "budget_steps": budget_steps,
            "final_steps": final_steps, "budget": budget, "over_budget": over}  # fmt: skip


def random_subsets(n_train: int, sizes: Sequence[int], seed: int) -> dict[int, list[int]]:
    """Nested random subsets: the first ``size`` records of one permutation drawn with ``seed``.

    Example:
        >>> s = random_subsets(10, [2, 5, 10], seed=0)
        >>> set(s[2]) <= set(s[5]) <= set(s[10]) and len(s[5]) == 5
        True
    """
    perm = np.random.default_rng(seed).permutation(n_train)
    return {n: sorted(int(i) for i in perm[:n]) for n in sizes}


def chosen_setup(cfg: RunConfig, lr: float | None = None) -> tuple[RunConfig, float, str]:
    """The final training's settings for the points: the config, the search's best trial's
    train and model sections when it ran, and the rate, with where the rate came from.

    The rate: ``lr`` when given; else the one the final training used (``train/train.json``);
    else the search's best trial, the lr sweep's rate for the training, or ``train.lr``.

    Raises:
        TuneproofError: no rate was chosen yet (the fix: run the pipeline first, or pass one).
    """
    run_dir, raw = cfg.run_dir, cfg.model_dump(mode="json")
    best = run_dir / "tune" / "best.yaml"
    tuned = cfg.pipeline.stages["tune"] and best.is_file()
    if tuned:
        chosen = load_config(best).model_dump(mode="json")
        for section in ("train", "model"):
            raw[section] = {**chosen[section], **{k: raw[section][k] for k in ("max_steps", "epochs", "eval_steps")
                                                  if k in raw[section]}}  # fmt: skip
    sources = [(lr, "given (--lr)"), (_train_json_lr(run_dir), f"the final training's rate ({run_dir / 'train' / 'train.json'})"),
               (raw["train"]["lr"] if tuned else None, f"the search's best trial ({best})"),
               (_sweep_lr(run_dir), f"the lr sweep's rate for the training ({run_dir / 'lr_sweep' / 'lr_sweep.json'})"),
               (cfg.train.lr, "train.lr in the config")]  # fmt: skip
    for rate, source in sources:
        if rate:
            raw["train"]["lr"] = float(rate)
            return load_config(raw), float(rate), source
    raise TuneproofError(f"no learning rate has been chosen for {cfg.name}: {run_dir} holds no train/train.json, "
                         "tune/best.yaml or lr_sweep/lr_sweep.json, and train.lr is unset. Fix: run `tuneproof run CONFIG` "
                         "first (it chooses the rate), or pass --lr (e.g. --lr 2e-4 for LoRA)")  # fmt: skip


def _train_json_lr(run_dir: Path) -> float | None:
    try:
        return float(json.loads((run_dir / "train" / "train.json").read_text())["data"]["lr"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _sweep_lr(run_dir: Path) -> float | None:
    try:
        s = json.loads((run_dir / "lr_sweep" / "lr_sweep.json").read_text())
        return float(s.get("train_lr") or s["best_lr"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _seconds_per_step(run_dir: Path) -> tuple[float | None, str | None]:
    """Measured seconds per training step: the final training's, else the lr sweep's runs'."""
    for pattern in ("train/train.json", "lr_sweep/lr_*/train.json", "curation_ab/*/train.json"):
        rates = []
        for path in sorted(run_dir.glob(pattern)):
            try:
                t = json.loads(path.read_text())
                if t["global_step"] > 0 and t["data"]["train_seconds"] > 0:
                    rates.append(t["data"]["train_seconds"] / t["global_step"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
        if rates:
            return float(np.median(rates)), pattern
    return None, None


# ---- the noise, the curve and the advice ---------------------------------------------------


def fit_curve(records: Sequence[float], loss: Sequence[float]) -> dict[str, float] | None:
    """Fit ``L(n) = a + b (n/N)^(-c)`` (``N`` the largest size); None when it cannot be fitted.

    Bounds: ``a >= 0`` (a loss is never negative), ``b >= 0`` (more data never raises the
    expected loss), ``0.001 <= c <= 5``. Fewer than ``MIN_FIT_POINTS`` distinct sizes leave
    too few degrees of freedom, and a failed least-squares fit is reported as such: no fit
    is better than a made-up one.

    Returns:
        ``{"a", "b", "c", "rmse", "slope_at_full" (dL/d ln n at N: -b c), "loss_at_2x",
        "gain_at_2x", "data_to_halve_gap" (the multiple of N that closes half of the
        remaining gap b to the asymptote a: 2^(1/c))}``.

    Example:
        >>> n = np.array([100, 200, 400, 700, 1000.0])
        >>> fit = fit_curve(n, 1.5 + 0.8 * (n / 1000) ** -0.4)
        >>> round(fit["a"], 3), round(fit["b"], 3), round(fit["c"], 3)
        (1.5, 0.8, 0.4)
    """
    import warnings

    from scipy.optimize import OptimizeWarning, curve_fit

    x, y = np.asarray(records, dtype=float), np.asarray(loss, dtype=float)
    if len(np.unique(x)) < MIN_FIT_POINTS or not np.all(np.isfinite(y)):
        return None
    x = x / x.max()
    a0 = 0.5 * float(y.min())
    p0 = (a0, max(float(y[np.argmax(x)]) - a0, 1e-6), 0.5)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", OptimizeWarning)
            (a, b, c), _ = curve_fit(_power_law, x, y, p0=p0, bounds=([0.0, 0.0, 1e-3], [np.inf, np.inf, 5.0]), maxfev=20000)
    except (RuntimeError, ValueError, OptimizeWarning):
        return None
    a, b, c = float(a), float(b), float(c)
    return {"a": a, "b": b, "c": c, "rmse": float(np.sqrt(np.mean((_power_law(x, a, b, c) - y) ** 2))),
            "slope_at_full": -b * c, "loss_at_2x": a + b * 2.0**-c, "gain_at_2x": b * (1 - 2.0**-c),
            "data_to_halve_gap": float(2.0 ** (1 / c)) if c > 1 / 60 else math.inf}  # fmt: skip


def _power_law(x: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    return a + b * np.power(x, -c)


def _resampled_means(losses: dict[str, np.ndarray], resamples: int, seed: int) -> dict[str, np.ndarray]:
    """Per point, ``resamples`` bootstrap means over seeds and validation records (the same
    draws for every point: the comparisons are paired). ``losses``: key -> (seeds, records);
    a single row (the base model) is resampled over its records only."""
    rng = np.random.default_rng(seed)
    n_seeds = max(arr.shape[0] for arr in losses.values())
    n_records = next(iter(losses.values())).shape[1]
    out = {key: np.empty(resamples) for key in losses}
    for b in range(resamples):  # one draw at a time: memory stays O(records), not O(resamples x records)
        s, r = rng.integers(0, n_seeds, n_seeds), rng.integers(0, n_records, n_records)
        for key, arr in losses.items():
            out[key][b] = (arr[s] if arr.shape[0] == n_seeds else arr).mean(axis=0)[r].mean()
    return out


def _interval(point: float, samples: np.ndarray, confidence: float) -> dict[str, Any]:
    ok = samples[np.isfinite(samples)]
    if not math.isfinite(point) or ok.size < 2:
        return {"value": point if math.isfinite(point) else None, "ci": None}
    lo, hi = np.percentile(ok, [50 * (1 - confidence), 50 * (1 + confidence)])
    return {"value": point, "ci": [float(lo), float(hi)]}


def _verdict(d: dict[str, Any], better: str, worse: str) -> str:
    """"better"/"worse" beyond noise when the whole interval lies below/above 0, else "within noise"."""
    ci = d.get("ci")
    if not ci:
        return "no interval"
    return better if ci[1] < 0 else worse if ci[0] > 0 else "within noise"


def summarize(losses: dict[str, np.ndarray], sizes: dict[float, int], base: np.ndarray | None, *, confidence: float = 0.95,
              resamples: int = 1000, seed: int = 0) -> dict[str, Any]:  # fmt: skip
    """The curve's rows, the fit and the recommendation from per-record losses.

    Args:
        losses: ``"ranked@F"``, ``"random@F"`` (F < 1) and ``"full"`` -> array (seeds, records)
            of validation losses, the same records in the same order everywhere.
        sizes: fraction -> records trained.
        base: the base model's per-record loss (the reference of "the full-data gain"), or None.
        confidence, resamples, seed: of the bootstrap.

    Returns:
        ``{"rows", "fit", "headline", "recommendation"}``; see :func:`data_value`.
    """
    keys = dict(losses) | ({"base": base[None, :]} if base is not None else {})
    boot = _resampled_means(keys, resamples, seed)
    mean = {k: float(v.mean()) for k, v in keys.items()}
    rows = []
    for f, n in sorted(sizes.items()):
        if f >= 1:
            rows.append({"fraction": f, "records": n, "full": _arm_stats(losses["full"], mean["full"], boot["full"], confidence)})
            continue
        row: dict[str, Any] = {"fraction": f, "records": n}
        for arm in ("ranked", "random"):
            k = f"{arm}@{f:g}"
            row[arm] = _arm_stats(losses[k], mean[k], boot[k], confidence)
            row[f"{arm}_minus_full"] = _interval(mean[k] - mean["full"], boot[k] - boot["full"], confidence)
            row[f"{arm}_minus_full"]["verdict"] = _verdict(row[f"{arm}_minus_full"], "better than the full data", "worse than the full data")
            if base is not None:
                row[arm]["share_of_gain"] = _share(mean, boot, k, confidence)
        diff = _interval(mean[f"ranked@{f:g}"] - mean[f"random@{f:g}"], boot[f"ranked@{f:g}"] - boot[f"random@{f:g}"], confidence)
        row["ranked_minus_random"] = {**diff, "verdict": _verdict(diff, "ranked better", "ranked worse")}
        rows.append(row)
    fit = _fit_with_intervals(rows, keys, boot, confidence, seed)
    return {"rows": rows, "fit": fit, "headline": _headline(rows), "recommendation": recommend(rows, fit)}


def _arm_stats(arr: np.ndarray, point: float, samples: np.ndarray, confidence: float) -> dict[str, Any]:
    ival = _interval(point, samples, confidence)
    return {"val_loss": point, "ci": ival["ci"], "by_seed": [float(x) for x in arr.mean(axis=1)]}


def _share(mean: dict[str, float], boot: dict[str, np.ndarray], key: str, confidence: float) -> dict[str, Any]:
    """(base - subset) / (base - full): the share of the full data's loss reduction a subset gives."""
    gain = mean["base"] - mean["full"]
    if gain <= 0:
        return {"value": None, "ci": None, "note": "the full data did not lower the validation loss below the base model's"}
    with np.errstate(divide="ignore", invalid="ignore"):
        g = boot["base"] - boot["full"]
        samples = np.where(g > 0, (boot["base"] - boot[key]) / g, np.nan)
    return _interval((mean["base"] - mean[key]) / gain, samples, confidence)


def _fit_with_intervals(rows: list[dict[str, Any]], keys: dict[str, np.ndarray], boot: dict[str, np.ndarray],
                        confidence: float, seed: int) -> dict[str, Any]:  # fmt: skip
    """The power law on the random subsets and the full data, with bootstrap intervals of
    what it predicts (refits on ``_FIT_RESAMPLES`` of the bootstrap draws)."""
    pts = [(r["records"], r["random"]["val_loss"], f"random@{r['fraction']:g}") for r in rows if "random" in r]
    pts += [(r["records"], r["full"]["val_loss"], "full") for r in rows if "full" in r]
    sizes = [p[0] for p in pts]
    if len(set(sizes)) < MIN_FIT_POINTS:
        return {"status": f"not fitted: {len(set(sizes))} data sizes, and a curve of 3 parameters needs at least {MIN_FIT_POINTS}; "
                          "the points are reported as measured"}  # fmt: skip
    fit = fit_curve(sizes, [p[1] for p in pts])
    if fit is None:
        return {"status": "not fitted: the least-squares fit of L(n) = a + b (n/N)^(-c) did not converge; the points are "
                          "reported as measured"}  # fmt: skip
    n_boot = min(_FIT_RESAMPLES, len(boot["full"]))
    refits = [fit_curve(sizes, [boot[k][i] for *_, k in pts]) for i in range(n_boot)]
    ok = [r for r in refits if r is not None]
    out: dict[str, Any] = {"status": "ok", "formula": "L(n) = a + b (n/N)^(-c), N = the full training split",
                           "records_full": max(sizes), "a": fit["a"], "b": fit["b"], "c": fit["c"], "rmse": fit["rmse"],
                           "refits": len(ok), "refits_failed": n_boot - len(ok)}  # fmt: skip
    for k in ("slope_at_full", "loss_at_2x", "gain_at_2x", "data_to_halve_gap"):
        out[k] = _interval(fit[k], np.array([r[k] for r in ok], dtype=float), confidence)
    return out


def _headline(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The shares of the full-data gain that the fraction nearest 20% gives, ranked and random."""
    sub = [r for r in rows if "ranked" in r]
    if not sub:
        return None
    r = min(sub, key=lambda x: abs(x["fraction"] - 0.2))
    return {"fraction": r["fraction"], "records": r["records"], "ranked_share": r["ranked"].get("share_of_gain"),
            "random_share": r["random"].get("share_of_gain"), "ranked_minus_random": r["ranked_minus_random"]}  # fmt: skip


def recommend(rows: list[dict[str, Any]], fit: dict[str, Any] | None = None) -> dict[str, Any]:
    """The smallest fraction whose loss is not worse than the full data's beyond noise.

    First, the curve must resolve data size at all: when no subset, ranked or random, is worse
    than the full data beyond noise, "within noise" carries no information (the trainings are
    too short, or the validation set too small, to tell 10% from 100%), and the answer is
    ``inconclusive``, never "10% is enough". Then, ranked first: the smallest ranked fraction within noise of (or better than) the full data
    is advised as ``--select F`` when it is not worse than random beyond noise. Otherwise a
    random fraction that reaches the full data means the ranking does not beat random here;
    otherwise every subset is worse beyond noise and all the data is needed (and the curve's
    slope says whether more would help).

    Returns:
        ``{"fraction", "selection": "ranked" | "random" | "all" | "inconclusive", "advice", "why"}``.

    Example:
        >>> row = lambda f, rf, xf, rr: {"fraction": f, "records": round(100 * f), "ranked_minus_full": {"ci": rf},
        ...                              "random_minus_full": {"ci": xf}, "ranked_minus_random": {"ci": rr}}
        >>> recommend([row(0.1, [0.1, 0.3], [0.2, 0.4], [-0.2, 0.0]), row(0.2, [-0.05, 0.02], [0.1, 0.3], [-0.3, -0.1]),
        ...            {"fraction": 1.0}])["advice"]
        'curate --select 0.2'
    """
    sub = sorted((r for r in rows if "ranked_minus_full" in r), key=lambda r: r["fraction"])
    if not any((r[f"{arm}_minus_full"].get("ci") or [-math.inf])[0] > 0 for r in sub for arm in ("ranked", "random")):
        return {"fraction": None, "selection": "inconclusive", "advice": None,
                "why": "no subset is worse than the full data beyond noise, so the curve does not resolve data size: the "
                       "points are too noisy (short trainings, few validation records) to say how much of the data matters; "
                       "raise pipeline.data_value.budget or seeds, or data.val_fraction" if sub else
                       "no fraction below 1.0 in pipeline.data_value.fractions: nothing to compare with the full data"}  # fmt: skip
    reaches = {arm: [r for r in sub if (r[f"{arm}_minus_full"].get("ci") or [math.inf])[0] <= 0] for arm in ("ranked", "random")}
    worse = [f"{r['fraction']:.0%}" for r in sub if _verdict(r["ranked_minus_random"], "", "worse") == "worse"]
    for r in reaches["ranked"]:
        if _verdict(r["ranked_minus_random"], "better", "worse") != "worse":
            return {"fraction": r["fraction"], "selection": "ranked", "advice": f"curate --select {r['fraction']:g}",
                    "why": f"the best {r['fraction']:.0%} by relevance and quality ({r['records']} records) is not worse than "
                           f"the full data beyond noise, nor worse than a random subset of its size"}  # fmt: skip
    if reaches["random"]:
        r = reaches["random"][0]
        beaten = f"; ranked subsets are worse than random beyond noise at {', '.join(worse)}" if worse else ""
        return {"fraction": r["fraction"], "selection": "random", "advice": None,
                "why": f"a random {r['fraction']:.0%} of the data is not worse than the full data beyond noise, but the ranking "
                       f"does not beat random on this data{beaten}: no --select is advised"}  # fmt: skip
    more = ""
    if fit and fit.get("status") == "ok":
        g = fit["gain_at_2x"]
        more = f"; the curve predicts twice the data would lower the validation loss by {g['value']:.3g}" + (
            f" ({g['ci'][0]:.3g} to {g['ci'][1]:.3g})" if g.get("ci") else "")
    return {"fraction": 1.0, "selection": "all", "advice": None,
            "why": f"every smaller subset is worse than the full data beyond noise: all the data matters{more}"}  # fmt: skip


# ---- the run ------------------------------------------------------------------------------


def data_value(cfg: RunConfig, *, lr: float | None = None, parent_run_id: str | None = None, console: Any = None,
               embedder: Any = None) -> dict[str, Any]:  # fmt: skip
    """Draw the learning curve of a run's training data into ``runs/<name>/data_value/``.

    Reads the run's split (``split/train.jsonl``, or the raw data when the curation A/B
    reverted curation, and ``split/val.jsonl``) and its chosen hyperparameters
    (:func:`chosen_setup`); ``pipeline.data_value`` sets the fractions, seeds and budget.

    Args:
        cfg: the run's config.
        lr: the rate for every point, instead of the run's chosen one.
        parent_run_id: the MLflow run to nest this curve's run (and its points) under.
        console: a rich console for the plan and one progress line per point.
        embedder: for the ranking's audit (default MiniLM); see :func:`tuneproof.audit.audit`.

    Returns:
        The content of ``data_value.json``: ``plan``, ``lr``, ``lr_source``, ``ranking``,
        ``base`` (the reference loss), ``points`` (one per training), ``rows`` (per fraction:
        each arm's loss with its interval and share of the full-data gain, ranked - random and
        each arm - full with intervals and verdicts), ``fit``, ``headline`` (the fraction
        nearest 20%), ``recommendation``, ``confidence``, ``resamples``, ``seconds``.

    Raises:
        TuneproofError: the run has no split yet or no rate was chosen (the message says what
            to run first).
    """
    from rich.console import Console

    from tuneproof import track
    from tuneproof.data import load_records

    console = console or Console(stderr=True)
    t0 = time.perf_counter()
    train_path, val_path = _split_files(cfg)
    chosen, rate, lr_source = chosen_setup(cfg, lr)
    lines = train_path.read_text(encoding="utf-8").splitlines()
    rows = [i for i, line in enumerate(lines) if line.strip()]
    val = load_records(val_path).records
    if not val or len(rows) < 2:
        what = f"{val_path}: no validation records" if not val else f"{train_path}: fewer than 2 training records"
        raise TuneproofError(f"{what}; the curve trains on subsets of the training split and scores every point on the "
                             "validation records. Fix: more data, or raise data.val_fraction")  # fmt: skip
    chosen = _with_labels(chosen, train_path)
    dv = cfg.pipeline.data_value
    plan = plan_points(len(rows), dv.fractions, dv.seeds, _final_steps(cfg, chosen), dv.budget,
                       chosen.train.batch_size * chosen.train.grad_accum)  # fmt: skip
    plan["seconds_per_step"], plan["seconds_source"] = _seconds_per_step(cfg.run_dir)
    _print_plan(console, plan, len(rows), len(val), rate, lr_source)
    out = cfg.run_dir / "data_value"
    shutil.rmtree(out / "points", ignore_errors=True)  # an earlier curve's points must not mix with this one's
    out.mkdir(parents=True, exist_ok=True)
    sizes = sorted({p["records"] for p in plan["points"] if p["arm"] == "ranked"})
    ranking = _ranked_subsets(cfg, train_path, sizes, embedder)
    ids = {str(n): [_row_id(lines[i]) for i in ix] for n, ix in ranking["indices"].items()}
    atomic_write(out / "subsets.json", json.dumps({"ranked_ids": ids}) + "\n")
    base = _base_losses(chosen, val, val_path, train_path)
    with track.start_run(cfg.tracking, f"{cfg.name}/data-value", parent_run_id=parent_run_id,
                         tags={"tuneproof.stage": "data-value"}) as parent:  # fmt: skip
        losses, points = _train_points(chosen, plan, ranking["indices"], lines, rows, val, val_path, out, rate, parent, console)
        summary = summarize({k: np.stack(v) for k, v in losses.items()},
                            {p["fraction"]: p["records"] for p in plan["points"]}, base["losses"],
                            confidence=cfg.eval.confidence, resamples=cfg.eval.bootstrap, seed=cfg.train.seed)  # fmt: skip
        _add_accuracy(summary["rows"], points)
        result = {"plan": plan, "lr": rate, "lr_source": lr_source, "train_file": str(train_path), "val_file": str(val_path),
                  "n_train": len(rows), "n_val": len(val), "ranking": {k: v for k, v in ranking.items() if k != "indices"},
                  "base": {k: v for k, v in base.items() if k != "losses"}, "points": points, **summary,
                  "confidence": cfg.eval.confidence, "resamples": cfg.eval.bootstrap,
                  "seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip
        _write(out, result, losses, val, base["losses"])
        track.log_artifact(parent, out / DATA_VALUE_FILE)
    _print_result(console, result)
    return result


def _add_accuracy(rows: list[dict[str, Any]], points: list[dict[str, Any]]) -> None:
    """Classification: each arm's accuracy on the validation records, the mean over its seeds."""
    for r in rows:
        for arm in ("ranked", "random", "full"):
            key = "full" if arm == "full" else f"{arm}@{r['fraction']:g}"
            acc = [p["accuracy"] for p in points if p["key"] == key and "accuracy" in p]
            if arm in r and acc:
                r[arm]["accuracy"] = float(np.mean(acc))


def _split_files(cfg: RunConfig) -> tuple[Path, Path]:
    """The training file the final training used and the validation split, or what to run first."""
    from tuneproof.pipeline._ab import reverted_train_path

    split = cfg.run_dir / "split"
    if not (split / "train.jsonl").is_file() or not (split / "val.jsonl").is_file():
        raise TuneproofError(f"{split}: no train.jsonl and val.jsonl for {cfg.name}: the learning curve trains on the run's "
                             "split, with the run's chosen hyperparameters, and scores its validation records. Fix: run "
                             "`tuneproof run CONFIG` first")  # fmt: skip
    return reverted_train_path(cfg, cfg.run_dir / "curation_ab") or split / "train.jsonl", split / "val.jsonl"


def _with_labels(chosen: RunConfig, train_path: Path) -> RunConfig:
    """Classification: every point's head gets the full training split's labels, in one order.

    A small subset (the top 10% by relevance above all) may lack a class; its model would then
    not know a validation record's label, and the points would not be comparable.
    """
    if chosen.task != "classification" or chosen.model.labels:
        return chosen
    from tuneproof.data import load_records
    from tuneproof.train.classification import label_map

    labels = label_map(load_records(train_path).records, None)
    return chosen.model_copy(update={"model": chosen.model.model_copy(update={"labels": labels})})


def _final_steps(cfg: RunConfig, chosen: RunConfig) -> int:
    """The planned final training's steps (pipeline/_budget.py), at the chosen batch size:
    the curve's budget is a multiple of the examples the final training sees."""
    from tuneproof.pipeline._budget import plan

    with (cfg.run_dir / "split" / "train.jsonl").open(encoding="utf-8") as f:
        n_train = sum(1 for line in f if line.strip())
    final = plan(cfg, n_train, cfg.run_dir / "curate").final
    planned, used = cfg.train.batch_size * cfg.train.grad_accum, chosen.train.batch_size * chosen.train.grad_accum
    return max(1, round(final * planned / used))


def _row_id(line: str) -> Any:
    try:
        return json.loads(line).get("id")
    except (ValueError, AttributeError):
        return None


def _ranked_subsets(cfg: RunConfig, train_path: Path, sizes: list[int], embedder: Any) -> dict[str, Any]:
    """For each size, the line indices of the training file ``curate --select`` would keep at
    that size: the run's audit settings (domain, eval data, checks) applied to the file."""
    from tuneproof.audit import audit
    from tuneproof.audit.curate import select_records

    d = cfg.data
    res = audit(train_path, domain=d.domain, domain_text=d.domain_text, eval_data=d.eval_path, model=cfg.model.name,
                task=cfg.task, config=cfg.audit_for_run, progress=False, embedder=embedder)  # fmt: skip
    line = [int(r.id.rsplit(":", 1)[1]) - 1 for r in res.records]
    subsets, rule = {}, ""
    for n in sizes:
        chosen, rule = select_records(res, n)
        subsets[n] = sorted(line[i] for i in chosen)
    nested = all(set(subsets[a]) <= set(subsets[b]) for a, b in zip(sizes, sizes[1:]))
    relevance = res.context.extras.get("relevance") is not None
    return {"rule": rule, "relevance_measured": relevance, "nested": nested, "indices": subsets,
            "source": f"the run's audit settings applied to {train_path.name}, as `curate --select` scores records"}  # fmt: skip


def _base_losses(chosen: RunConfig, val: list[Any], val_path: Path, train_path: Path) -> dict[str, Any]:
    """The reference for "the full data's gain": what the model knows before this training.

    SFT: the base model's validation loss, zero-shot. Classification: a new head is random, so
    the reference is the training split's class prior, -log p(label) (add-one smoothed).
    """
    if chosen.task == "sft":
        from tuneproof.pipeline._ab import arm_scores

        loss = arm_scores(chosen, chosen.model.name, val, str(val_path))["loss"]
        return {"source": "the base model zero-shot", "val_loss": float(loss.mean()), "losses": loss}
    from collections import Counter

    from tuneproof.data import load_records

    counts = Counter(str(r.label) for r in load_records(train_path).records)
    labels = set(counts) | {str(r.label) for r in val}
    total = sum(counts.values()) + len(labels)
    loss = np.array([-math.log((counts[str(r.label)] + 1) / total) for r in val])
    return {"source": "the training split's class prior", "val_loss": float(loss.mean()), "losses": loss}


def _train_points(chosen: RunConfig, plan: dict[str, Any], ranked: dict[int, list[int]], lines: list[str], rows: list[int],
                  val: list[Any], val_path: Path, out: Path, rate: float, parent: Any, console: Any,
                  ) -> tuple[dict[str, list[np.ndarray]], list[dict[str, Any]]]:  # fmt: skip
    """Train and score every point of every seed; one progress line each."""
    from tuneproof import track

    todo = [(s, p) for s in range(plan["seeds"]) for p in plan["points"]]
    losses: dict[str, list[np.ndarray]] = {}
    points: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    for i, (s, p) in enumerate(todo, 1):
        seed = chosen.train.seed + s
        key = "full" if p["arm"] == "full" else f"{p['arm']}@{p['fraction']:g}"
        if p["arm"] == "ranked":
            idx = ranked[p["records"]]
        else:  # random: a prefix of this seed's permutation (the full data: all of it)
            idx = [rows[k] for k in random_subsets(len(rows), [p["records"]], seed)[p["records"]]]
        point_out = out / "points" / f"{key.replace('@', '_')}_s{s}"
        scores, res = _train_point(chosen, [lines[k] for k in idx], val, val_path, point_out, p["steps"], rate, seed,
                                   f"{chosen.name}/data-value/{key}/s{s}", parent.run_id, console)  # fmt: skip
        losses.setdefault(key, []).append(scores["loss"])
        point = {**p, "key": key, "seed": seed, "steps_trained": res.global_step, "val_loss": float(scores["loss"].mean()),
                 **({"accuracy": float(scores["correct"].mean())} if "correct" in scores else {}),
                 "seconds": round(float(res.data.get("train_seconds") or 0), 1)}  # fmt: skip
        points.append(point)
        track.log_metrics(parent, {f"{p['arm']}_val_loss": point["val_loss"]}, step=p["records"])
        left = (time.perf_counter() - t0) / i * (len(todo) - i)
        console.print(f"  data value {i}/{len(todo)}: {p['arm']} {p['fraction']:.0%} ({p['records']} records), seed {seed}: "
                      f"{res.global_step} steps, val loss {point['val_loss']:.4g}; about {left / 60:.1f} min left", highlight=False)  # fmt: skip
    return losses, points


def _train_point(chosen: RunConfig, subset: list[str], val: list[Any], val_path: Path, out: Path, steps: int, rate: float,
                 seed: int, run_name: str, parent_id: str, console: Any) -> tuple[dict[str, np.ndarray], Any]:  # fmt: skip
    """One short training on ``subset`` (JSON lines) at ``rate``; its per-record validation scores.

    The engine's own evaluations (early stopping and the guard are off, so nothing reads them)
    run on one batch of the validation records, not all of them: the point is scored once, per
    record, by :func:`arm_scores`, instead of three times. The model is deleted after scoring
    (``train.json`` stays), as the A/B's arms are.
    """
    from tuneproof.pipeline._ab import _arm_config, arm_scores
    from tuneproof.search._common import prune_outputs
    from tuneproof.train import train

    out.mkdir(parents=True, exist_ok=True)
    path = out / "subset.jsonl"
    atomic_write(path, "".join(line + "\n" for line in subset))
    engine_val = out / "engine_val.jsonl"
    head = [line for line in val_path.read_text(encoding="utf-8").splitlines() if line.strip()][: chosen.train.batch_size]
    atomic_write(engine_val, "".join(line + "\n" for line in head))
    raw = _arm_config(chosen, path, engine_val, steps, rate)
    raw["train"]["seed"] = seed
    cfg = load_config(raw)
    res = train(cfg, parent_run_id=parent_id, output_dir=out, run_name=run_name, console=console)
    scores = arm_scores(cfg, res.model_dir, val, str(val_path))
    prune_outputs(out)
    path.unlink(missing_ok=True)
    engine_val.unlink(missing_ok=True)
    return scores, res


def _print_plan(console: Any, plan: dict[str, Any], n_train: int, n_val: int, rate: float, lr_source: str) -> None:
    pts = plan["points"]
    sizes = ", ".join(f"{p['fraction']:.0%}: {p['records']} records x {p['steps']} steps" for p in pts if p["arm"] != "random")
    sps = plan.get("seconds_per_step")
    eta = (f"about {plan['total_steps'] * sps / 60:.1f} min of training ({sps:.2g} s/step measured in {plan['seconds_source']}), "
           f"plus scoring {n_val} validation records {len(pts) * plan['seeds']} times") if sps else \
        "no measured step time in this run yet (no train.json); the final training's time is a guide"  # fmt: skip
    console.print(f"  data value: {len(pts) * plan['seeds']} trainings ({len(pts)} points x {plan['seeds']} seeds) over "
                  f"{n_train} training records at lr {rate:g} ({lr_source}); {plan['epochs']:.2g} passes per subset ({sizes}); "
                  f"{plan['total_steps']} steps in all = {plan['total_steps'] / plan['final_steps']:.2g}x the final training's "
                  f"{plan['final_steps']} (budget {plan['budget']:g}x, pipeline.data_value.budget); {eta}", highlight=False)  # fmt: skip
    if plan["over_budget"]:
        console.print(f"[yellow]  data value: {plan['over_budget']}[/yellow]", highlight=False)


def _print_result(console: Any, res: dict[str, Any]) -> None:
    h, rec, fit = res.get("headline"), res["recommendation"], res["fit"]
    if h and h.get("ranked_share") and h["ranked_share"].get("value") is not None:
        console.print(f"  data value: the best {h['fraction']:.0%} gives {h['ranked_share']['value']:.0%} of the full data's gain "
                      f"in validation loss, a random {h['fraction']:.0%} {h['random_share']['value']:.0%}", highlight=False)  # fmt: skip
    if fit.get("status") == "ok":
        s, g = fit["slope_at_full"], fit["gain_at_2x"]
        console.print(f"  data value: slope at 100% dL/d ln n = {s['value']:+.3g} (CI {_ci(s)}); twice the data is predicted "
                      f"to lower the validation loss by {g['value']:.3g} (CI {_ci(g)})", highlight=False)  # fmt: skip
    else:
        console.print(f"  data value: curve {fit['status']}", highlight=False)
    console.print(f"  data value: {rec['why']}" + (f"; advice: `{rec['advice']}`" if rec.get("advice") else ""), highlight=False)


def _ci(x: dict[str, Any]) -> str:
    return f"[{x['ci'][0]:.3g}, {x['ci'][1]:.3g}]" if x.get("ci") else "n/a"


def _write(out: Path, result: dict[str, Any], losses: dict[str, list[np.ndarray]], val: list[Any], base: np.ndarray) -> None:
    """data_value.json, the per-record losses (val_losses.jsonl) and the plot."""
    import base64

    from tuneproof.report._plots import data_value_plot

    atomic_write(out / DATA_VALUE_FILE, json.dumps(result, indent=1, default=str) + "\n")
    with atomic_open(out / "val_losses.jsonl") as f:
        for j, r in enumerate(val):
            row = {"id": r.extra.get("id", r.id), "base": float(base[j])}
            row.update({f"{k}/s{s}": float(arr[j]) for k, arrs in losses.items() for s, arr in enumerate(arrs)})
            f.write(json.dumps(row) + "\n")
    png = data_value_plot(result)
    (out / PLOT_FILE).unlink(missing_ok=True)
    if png:
        (out / PLOT_FILE).write_bytes(base64.b64decode(png))
