"""The report's plots: matplotlib (Agg) figures as base64 PNG, drawn from the collected facts."""

from __future__ import annotations

import base64
import io
import math
from typing import Any


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(width: float = 6.4, height: float = 3.6) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height))


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def lr_sweep_plot(sec: dict[str, Any]) -> str | None:
    pts = [p for p in sec.get("points", []) if _finite(p.get("lr")) and _finite(p.get("val_loss"))]
    if not pts:
        return None
    fig, ax = _figure()
    ax.plot([p["lr"] for p in pts], [p["val_loss"] for p in pts], "o-", label="val loss after the short run")
    bad = [p for p in sec.get("points", []) if p.get("status") != "ok" and _finite(p.get("lr"))]
    for p in bad:
        ax.axvline(p["lr"], color="red", ls=":", alpha=0.6)
    rec = sec.get("recommended") or {}
    if _finite(rec.get("low")) and _finite(rec.get("high")):
        ax.axvspan(rec["low"], rec["high"], color="green", alpha=0.12, label="range recommended for tune")
    if _finite(sec.get("best_lr")):
        ax.axvline(sec["best_lr"], color="green", ls="--", label=f"best lr {sec['best_lr']:.3g}")
    if _finite(sec.get("train_lr")) and sec["train_lr"] != sec.get("best_lr"):
        ax.axvline(sec["train_lr"], color="purple", ls="-.", label=f"for the training: {sec['train_lr']:.3g}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("validation loss")
    ax.legend(fontsize=8)
    return _png(fig)


def trial_history_plot(sec: dict[str, Any]) -> str | None:
    trials = [t for t in sec.get("trials", []) if isinstance(t.get("number"), int)]
    if not trials:
        return None
    fig, ax = _figure()
    done = [t for t in trials if t["state"] == "COMPLETE" and _finite(t.get("value"))]
    ax.plot([t["number"] for t in done], [t["value"] for t in done], "o", label="complete")
    best, xs, ys = math.inf, [], []
    for t in sorted(done, key=lambda t: t["number"]):
        best = min(best, t["value"])
        xs.append(t["number"])
        ys.append(best)
    if xs:
        ax.step(xs, ys, where="post", color="green", label="best so far")
    pruned = [t for t in trials if t["state"] == "PRUNED"]
    if pruned:
        # A pruned trial's last reported value, at the step it was cut.
        last = [(t["number"], t["curve"][-1][1]) for t in pruned if t.get("curve") and _finite(t["curve"][-1][1])]
        if last:
            ax.plot([a for a, _ in last], [b for _, b in last], "x", color="red", label="pruned (last reported)")
    ax.set_xlabel("trial")
    ax.set_ylabel("objective (val loss)")
    ax.legend(fontsize=8)
    return _png(fig)


def importances_plot(sec: dict[str, Any]) -> str | None:
    imp = {k: v for k, v in (sec.get("importances") or {}).items() if _finite(v)}
    if not imp:
        return None
    names = sorted(imp, key=imp.get)
    fig, ax = _figure(6.4, 0.4 * len(names) + 1.2)
    ax.barh(names, [imp[n] for n in names])
    ax.set_xlabel("importance (optuna.importance, share of the objective's variance)")
    return _png(fig)


def training_plot(sec: dict[str, Any]) -> str | None:
    curve = [c for c in sec.get("curve", []) if _finite(c.get("step"))]
    if not curve:
        return None
    fig, ax = _figure()
    for key, label in (("train_loss", "train loss"), ("val_loss", "val loss")):
        pts = [(c["step"], c[key]) for c in curve if _finite(c.get(key))]
        if pts:
            ax.plot([a for a, _ in pts], [b for _, b in pts], "o-", ms=3, label=label)
    if _finite(sec.get("best_step")):
        label = "best / early-stop step" if sec.get("stopped_early") else "best step (weights kept)"
        ax.axvline(sec["best_step"], color="green", ls="--", label=f"{label}: {sec['best_step']}")
    if sec.get("overfitting") and _finite(sec.get("guard_step")):
        ax.axvline(sec["guard_step"], color="red", ls=":", lw=2, label=f"overfitting guard fired: {sec['guard_step']}")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    handles, labels = ax.get_legend_handles_labels()
    name = str(sec.get("monitor") or "val_loss").removeprefix("val_")
    pts = [(e["step"], e[name]) for e in sec.get("evals") or [] if name != "loss" and _finite(e.get("step")) and _finite(e.get(name))]
    if pts:  # the metric that picked the checkpoint, on its own axis
        right = ax.twinx()
        right.plot([a for a, _ in pts], [b for _, b in pts], "s-", ms=3, color="purple", label=f"val {name} (picks the checkpoint)")
        right.set_ylabel(f"val {name}")
        more_h, more_l = right.get_legend_handles_labels()
        handles, labels = handles + more_h, labels + more_l
    ax.legend(handles, labels, fontsize=8)
    return _png(fig)


def data_value_plot(sec: dict[str, Any]) -> str | None:
    """The learning curve: validation loss over training records, ranked and random subsets
    (means over seeds, bootstrap intervals), the fitted power law and the base model's loss."""
    rows = [r for r in sec.get("rows") or [] if _finite(r.get("records"))]
    full = next((r for r in rows if isinstance(r.get("full"), dict)), None)
    if not rows or full is None:
        return None
    fig, ax = _figure()
    for arm, style, label in (("random", "o-", "random subsets"), ("ranked", "s-", "ranked (curate --select)")):
        pts = [(r["records"], r[arm]) for r in rows if isinstance(r.get(arm), dict)] + [(full["records"], full["full"])]
        pts = [(n, a) for n, a in pts if _finite(a.get("val_loss"))]
        ys = [a["val_loss"] for _, a in pts]
        cis = [a.get("ci") or [y, y] for (_, a), y in zip(pts, ys)]
        err = [[max(0.0, y - lo) for (lo, _), y in zip(cis, ys)], [max(0.0, hi - y) for (_, hi), y in zip(cis, ys)]]
        ax.errorbar([n for n, _ in pts], ys, yerr=err, fmt=style, capsize=3, label=label, alpha=0.85)
    fit = sec.get("fit") or {}
    if fit.get("status") == "ok" and all(_finite(fit.get(k)) for k in ("a", "b", "c", "records_full")):
        n_full = fit["records_full"]
        xs = [min(r["records"] for r in rows) * (2 * n_full / min(r["records"] for r in rows)) ** (i / 60) for i in range(61)]
        ax.plot(xs, [fit["a"] + fit["b"] * (x / n_full) ** -fit["c"] for x in xs], "k--", lw=1,
                label=f"fit a + b (n/N)^-c, c = {fit['c']:.2g} (to 2x the data)")
    base = sec.get("base") or {}
    if _finite(base.get("val_loss")):
        ax.axhline(base["val_loss"], color="gray", ls=":", label=f"reference: {base.get('source', 'base')}")
    ax.set_xscale("log")
    ax.set_xlabel("training records")
    ax.set_ylabel("validation loss")
    ax.legend(fontsize=8)
    return _png(fig)
