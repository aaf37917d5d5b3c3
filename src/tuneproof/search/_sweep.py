"""Learning-rate sweep: a few short trainings on a log grid, scored by validation loss.

Why not a Smith range test (one run with the rate growing each step)? It tends to
suggest rates about 100x too high for fine-tuning (transformers#16013, PITFALLS), while a
short run per rate measures what we care about: validation loss after a few steps at a
fixed rate, with the real schedule's warm-up.

The short runs still favour high rates (short-horizon bias), so the rate the sweep hands to
a long training is corrected for its length: see :func:`training_lr`.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tuneproof._io import atomic_write, disk_error
from tuneproof.config import RunConfig, load_config
from tuneproof.errors import ConfigError, TuneproofError
from tuneproof.search._space import DEFAULT_LR_RANGE

__all__ = ["DEFAULT_SWEEP_GRID", "SweepResult", "lr_sweep", "recommend_range", "training_lr"]

# One decade wider than the tune defaults on each side, half-decade steps.
DEFAULT_SWEEP_GRID = {
    "lora": (3e-6, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3),
    "full": (3e-7, 1e-6, 3e-6, 1e-5, 3e-5, 1e-4, 3e-4),
    "freeze": (1e-6, 3e-6, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3),
}
DEFAULT_SWEEP_STEPS = 30
MAX_LR = 0.5  # a recommended range never reaches past this (train.lr must be < 1)


@dataclass
class SweepResult:
    """What the sweep found.

    Attributes:
        points: one dict per rate: ``lr``, ``val_loss`` (after the run: the score),
            ``final_val_loss`` (the same), ``best_val_loss`` (the lowest it passed through),
            ``train_loss``, ``best_step``, ``steps``, ``status`` (ok, diverged, failed) and ``error``.
        best_lr: the rate with the lowest validation loss after the run.
        recommended: ``{"low", "high", "log": True}``: the lr range for ``tune`` to search.
        train_lr: the rate for the training of ``horizon`` steps (:func:`training_lr`);
            the final training uses it when no search trials run.
        horizon: steps of the training the rate is for.
        train_lr_note: why ``train_lr`` differs from ``best_lr`` (None when they agree).
        edge: ``"low"`` or ``"high"`` when the best rate is the smallest or largest swept.
        warning: a message when ``edge`` is set.
        json_path, plot_path: ``<run dir>/lr_sweep/lr_sweep.json`` and ``lr_sweep.png``.
    """

    points: list[dict[str, Any]]
    best_lr: float
    recommended: dict[str, Any]
    edge: str | None
    warning: str | None
    json_path: Path
    plot_path: Path
    method: str = "log-grid short runs"
    steps: int = 0
    mlflow_run_id: str | None = None
    train_lr: float | None = None
    horizon: int | None = None
    train_lr_note: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        return {k: str(v) if isinstance(v, Path) else v for k, v in out.items()}


def _grid(lrs: Sequence[float] | None, method: str) -> list[float]:
    grid = sorted(float(x) for x in (lrs if lrs is not None else DEFAULT_SWEEP_GRID[method]))
    bad = [x for x in grid if not 0 < x < 1]
    if len(grid) < 3 or bad or len(set(grid)) != len(grid):
        raise ConfigError(
            "lr-sweep",
            [f"learning rates {grid}: need at least 3 distinct rates, each in (0, 1)"
             + (f"; {bad} out of range" if bad else "") + ". Fix: pass e.g. lrs=[1e-5, 1e-4, 1e-3]."],
        )  # fmt: skip
    return grid


def recommend_range(grid: Sequence[float], best_i: int, method: str) -> tuple[float, float, bool]:
    """The lr range ``tune`` searches: the swept neighbours of the best rate.

    At an edge the range extends one grid step past it, but never upward past the method's
    usual range (:data:`DEFAULT_LR_RANGE`) beyond the best rate measured. Short runs favour
    high rates (short-horizon bias): a rate that wins after a few steps can be unstable over
    the full training (full fine-tuning at 2.6e-4, an unmeasured extension, collapsed MiniLM
    to the majority class in the outcome benchmark).

    Returns:
        ``(low, high, capped)``; ``capped`` is true when the ceiling cut the extension.
    """
    best = grid[best_i]
    low = grid[best_i - 1] if best_i > 0 else best / (grid[1] / grid[0])
    high = grid[best_i + 1] if best_i < len(grid) - 1 else min(MAX_LR, best * (grid[-1] / grid[-2]))
    capped = False
    if best_i == len(grid) - 1:
        ceiling = max(best, DEFAULT_LR_RANGE[method][1])
        capped = high > ceiling * (1 + 1e-9)  # not float noise
        high = min(high, ceiling)
    if high <= low:  # the best is at (or past) MAX_LR already
        low = high / (grid[-1] / grid[-2])
    return low, high, capped


def training_lr(best: float, method: str, sweep_steps: int, horizon: int, *, source: str = "the sweep's best") -> tuple[float, str | None]:
    """The rate for a training of ``horizon`` steps, from the best rate of ``sweep_steps``-step runs.

    A short run ranks rates by how fast they lower the loss, and the fastest is the highest
    that stays stable for a few steps, not the one that trains best over a long run
    (short-horizon bias). Measured in the outcome benchmark (docs/benchmarks/): 10- and
    32-step sweeps of MiniLM full fine-tuning ranked 3e-4 best on spam and sentiment (an
    interior optimum of a grid up to 3e-3), while over their 130-460-step trainings 3e-4 was
    the worst rate of the oracle's grid and 3e-5-1e-4 the best. Longer training needs a
    smaller rate: the classic constant step size for T steps of SGD scales as 1/sqrt(T), and
    Bjorck et al. (ICLR 2025, "Scaling optimal LR across token horizons") measured the same
    trend for LLM training.

    So a best rate above the method's usual range (:data:`DEFAULT_LR_RANGE`) is scaled by
    ``sqrt(sweep_steps / horizon)``, but not below that range's ceiling: the usual range is
    the prior that long fine-tunings have validated, and only a short-run winner beyond it is
    distrusted. A rate inside the range is used as measured (going lower risks under-training
    short runs: quick spam's 45-step training needs 1e-4, 3e-5 stayed near the majority class).

    The same holds for the winning trial of a search whose trials are shorter than the final
    training (``source`` names where ``best`` came from in the note).

    Returns:
        ``(rate, note)``; ``note`` says why the rate differs from ``best`` (None when it does not).

    Example:
        >>> training_lr(3e-4, "full", sweep_steps=10, horizon=130)[0]  # sqrt(10/130) x 3e-4 = 8.3e-5 < 1e-4
        0.0001
        >>> training_lr(3e-5, "full", sweep_steps=10, horizon=130)[0]  # inside the usual range
        3e-05
    """
    ceiling = DEFAULT_LR_RANGE[method][1]
    if best <= ceiling * (1 + 1e-9) or horizon <= sweep_steps:
        return best, None
    scaled = best * math.sqrt(sweep_steps / horizon)
    rate = float(f"{max(scaled, ceiling):.3g}")
    note = (
        f"{source} {best:g} lies above the usual {method} range (up to {ceiling:g}) and won runs of "
        f"{sweep_steps} steps; short runs favour high rates, so for the {horizon}-step training it is scaled by "
        f"sqrt({sweep_steps}/{horizon}) to {scaled:.3g}" + (f", but not below the usual ceiling {ceiling:g}" if scaled < ceiling else "")
    )  # fmt: skip
    return rate, note


def lr_sweep(
    config: RunConfig | str | os.PathLike | dict,
    *,
    overrides: Sequence[str] | None = None,
    lrs: Sequence[float] | None = None,
    steps: int | None = None,
    horizon: int | None = None,
    console: Any = None,
) -> SweepResult:
    """Train a few steps at each rate of a log grid and recommend the range for ``tune``.

    Each rate is one short training through the engine (an MLflow child run under one
    ``lr-sweep`` parent). The result goes to ``<run dir>/lr_sweep/lr_sweep.json`` with a plot,
    and ``tune`` then searches ``recommended`` unless the config sets ``search.space.lr``.

    Args:
        config: a :class:`RunConfig`, a YAML path or a mapping.
        overrides: dotted ``key=value`` overrides.
        lrs: the rates to try; default a half-decade grid around the method's usual rate.
        steps: training steps per rate; default ``train.max_steps`` capped at 30.
        horizon: steps of the training the rate is for (sets ``train_lr``); default the
            config's ``train.max_steps``, else ``train.epochs`` over its training split.
        console: a rich console; default stderr.

    Returns:
        A :class:`SweepResult`.

    Raises:
        ConfigError: fewer than 3 rates, a rate outside (0, 1), or a bad config.
        TuneproofError: every rate failed or diverged.

    Example:
        >>> res = lr_sweep("examples/qa_demo.yaml", steps=20)  # doctest: +SKIP
        >>> res.best_lr, res.recommended  # doctest: +SKIP
        (0.0003, {'low': 0.0001, 'high': 0.001, 'log': True})
    """
    from rich.console import Console

    from tuneproof import track
    from tuneproof.search._common import finish_child_run, prune_outputs
    from tuneproof.train import train

    cfg = config if isinstance(config, RunConfig) and not overrides else load_config(
        config.model_dump(mode="json") if isinstance(config, RunConfig) else config, list(overrides or [])
    )
    console = console or Console(stderr=True)
    grid = _grid(lrs, cfg.model.method)
    n_steps = steps or min(cfg.train.max_steps or DEFAULT_SWEEP_STEPS, DEFAULT_SWEEP_STEPS)
    if n_steps < 1:
        raise ConfigError("lr-sweep", [f"steps={n_steps}: need at least 1 step per rate. Fix: pass steps >= 1."])
    out = cfg.run_dir / "lr_sweep"
    out.mkdir(parents=True, exist_ok=True)
    base = cfg.model_dump(mode="json")
    base["train"].update(
        max_steps=n_steps,
        eval_steps=max(1, n_steps // 3),
        # Every rate gets its full budget, and the points are ranked by val loss.
        early_stopping={**base["train"]["early_stopping"], "enabled": False, "monitor": "val_loss"},
        overfit_guard={**base["train"]["overfit_guard"], "enabled": False},
    )
    console.print(f"lr sweep: {len(grid)} rates from {grid[0]:g} to {grid[-1]:g}, {n_steps} steps each (method {cfg.model.method})")

    points: list[dict[str, Any]] = []
    n_train = None
    with track.start_run(cfg.tracking, f"{cfg.name}/lr-sweep", tags={"tuneproof.stage": "lr-sweep"}) as parent:
        track.log_params(parent, {"lrs": grid, "steps": n_steps, "method": "log-grid short runs"})
        for i, lr in enumerate(grid):
            run_out = out / f"lr_{i:02d}"
            point: dict[str, Any] = {"lr": lr, "steps": n_steps}
            try:
                base["train"]["lr"] = lr
                res = train(
                    base, parent_run_id=parent.run_id, output_dir=run_out, run_name=f"{cfg.name}/lr-sweep/{lr:g}",
                    console=console,
                )  # fmt: skip
                # Scored by the validation loss after the run (early stopping is off, so the final
                # model is the last one), not by the lowest seen: in a run of a few steps the
                # lowest is often the first evaluation, inside the warm-up, before the rate has
                # changed anything, so every rate ties there and the smallest won by default.
                val = res.final_metrics.get("loss", float("nan"))
                n_train = res.data.get("train_records", n_train)
                point.update(
                    val_loss=val,
                    final_val_loss=val,
                    best_val_loss=res.best_metrics.get("loss"),
                    train_loss=res.data.get("train_loss_mean"),
                    best_step=res.best_step,
                    status="ok" if math.isfinite(val) else "diverged",
                )
                finish_child_run(cfg.tracking, run_out, point["status"])
            except TuneproofError:
                raise  # bad input: same for every rate
            except Exception as exc:  # a rate that blows up is a result, not a crash
                if (disk := disk_error(exc)) is not None:
                    raise disk from exc  # a full disk or an unwritable folder: every rate would fail alike
                point.update(val_loss=None, status="failed", error=f"{type(exc).__name__}: {exc}")
                finish_child_run(cfg.tracking, run_out, "failed", point["error"])
                console.print(f"[yellow]lr {lr:g}: failed ({point['error'][:200]})[/yellow]")
            prune_outputs(run_out)
            points.append(point)
            track.log_metrics(parent, {"val_loss": point["val_loss"]} if point.get("val_loss") is not None and math.isfinite(point["val_loss"]) else {}, step=i)

        ok = [p for p in points if p["status"] == "ok"]
        if not ok:
            raise TuneproofError(
                f"lr sweep: every rate failed or diverged ({[(p['lr'], p['status']) for p in points]}). Fix: check "
                "that `tuneproof train` works on this config, or sweep lower rates."
            )
        best_i = min(range(len(points)), key=lambda j: points[j]["val_loss"] if points[j]["status"] == "ok" else math.inf)
        best = grid[best_i]
        edge, warning = None, None
        low, high, capped = recommend_range(grid, best_i, cfg.model.method)
        if horizon is None:
            horizon = cfg.train.planned_steps(n_train) if n_train else n_steps
        train_lr, train_lr_note = training_lr(best, cfg.model.method, n_steps, horizon)
        low = min(low, train_lr)  # the search also covers the rate the training would use
        if best_i == 0 or best_i == len(grid) - 1:
            edge = "low" if best_i == 0 else "high"
            how = (
                "the recommended range stops at it: rates above the method's usual range are only searched when the "
                "sweep measured them" if capped else "the recommended range extends one step past it"
            )
            warning = (
                f"the best rate {best:g} is the {'smallest' if edge == 'low' else 'largest'} swept, so the optimum may lie "
                f"{'below' if edge == 'low' else 'above'} the range; {how}. "
                f"Fix: sweep {'lower' if edge == 'low' else 'higher'} rates, e.g. lrs=[{low / 10:g}, ..., {high * 3:g}]."
            )
            console.print(f"[yellow]warning: {warning}[/yellow]")
        result = SweepResult(
            points=points,
            best_lr=best,
            recommended={"low": low, "high": high, "log": True},
            edge=edge,
            warning=warning,
            json_path=out / "lr_sweep.json",
            plot_path=out / "lr_sweep.png",
            steps=n_steps,
            mlflow_run_id=parent.run_id,
            train_lr=train_lr,
            horizon=horizon,
            train_lr_note=train_lr_note,
        )
        atomic_write(result.json_path, json.dumps(result.to_dict(), indent=1))
        _plot(result, cfg.name)
        track.log_artifact(parent, result.json_path)
        track.log_artifact(parent, result.plot_path)
        track.set_tags(parent, {"best_lr": best, "train_lr": train_lr, "horizon": horizon, "edge": edge or "none"})
    console.print(
        f"lr sweep: best rate {best:g} (val loss {points[best_i]['val_loss']:.4f}); training rate {train_lr:g} for "
        # The range, not a promise: a pipeline whose budget affords no trials skips the search.
        f"{horizon} steps{f' ({train_lr_note})' if train_lr_note else ''}; the range for a search: "
        f"[{low:g}, {high:g}] (log). Written: {result.json_path}, {result.plot_path}"
    )
    return result


def _plot(result: SweepResult, name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ok = [p for p in result.points if p["status"] == "ok"]
    ax.plot([p["lr"] for p in ok], [p["val_loss"] for p in ok], "o-", label="best val loss")
    bad = [p for p in result.points if p["status"] != "ok"]
    for p in bad:
        ax.axvline(p["lr"], color="red", alpha=0.3, linestyle=":")
    ax.axvspan(result.recommended["low"], result.recommended["high"], color="green", alpha=0.15, label="range for tune")
    ax.axvline(result.best_lr, color="green", linestyle="--", label=f"best {result.best_lr:g}")
    if result.train_lr is not None and result.train_lr != result.best_lr:
        ax.axvline(result.train_lr, color="purple", linestyle="-.", label=f"for {result.horizon} steps: {result.train_lr:g}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel(f"validation loss after {result.steps} steps")
    ax.set_title(f"{name}: lr sweep" + (" (best at the edge!)" if result.edge else ""))
    ax.legend()
    fig.tight_layout()
    fig.savefig(result.plot_path, dpi=100)
    plt.close(fig)
