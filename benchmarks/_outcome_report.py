"""The outcome benchmark's tables, computed from results.jsonl alone (``--report-only`` prints them)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

__all__ = ["summarize"]

SHOWN = ("naive", "naive_matched", "tuneproof", "tuneproof_nocurate", "oracle")


def _pct(k: int, n: int) -> str:
    return f"{k}/{n} ({100 * k / n:.0f}%)" if n else "-"


def _table(head: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _proven_point(points: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    """A stand-in oracle row from a partial grid, only where one of its rates proved an improvement."""
    return {"proven": True} if points and any(p["proven"] for p in points) else None


def summarize(rows: list[dict[str, Any]]) -> str:
    """Markdown tables: success/failure rate, decision accuracy vs the oracle, metrics, compute, tuneproof vs naive."""
    by: dict[tuple, dict[str, Any]] = {}
    for r in rows:
        if r["method"] != "oracle_point" and r.get("status") != "not_needed":
            by[(r["scenario"], r["seed"], r["method"])] = r
    # An oracle grid still running: a rate that proved already settles "the oracle can prove" (it is
    # any grid point's proof), so the decision table can count that cell; a grid with no proof yet cannot.
    partial: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r["method"] == "oracle_point":
            partial[(r["scenario"], r["seed"])].append(r)
    partial = {k: v for k, v in partial.items() if (*k, "oracle") not in by}
    cells = sorted({(s, seed) for s, seed, _ in by})
    scenarios = sorted({s for s, _ in cells})
    methods = [m for m in SHOWN if any(k[2] == m for k in by)]
    out = []

    # 1. success / failure rate per method
    t = []
    for m in methods:
        rs = [by[(s, seed, m)] for s, seed in cells if (s, seed, m) in by]
        ok = sum(r["ci_excludes_zero"] and r["delta"] * (1 if r["higher_is_better"] else -1) > 0 for r in rs)
        proven = sum(r["verdict"] == "improved" for r in rs)
        extra = ""
        if m == "oracle":
            extra = f" (any grid point: {sum(bool(r.get('proven')) for r in rs)} proven)"
        t.append([m, len(rs), _pct(ok, len(rs)), _pct(len(rs) - ok, len(rs)), _pct(proven, len(rs)) + extra])
    out.append("Success = beats its reference with a 95% paired-bootstrap CI that excludes zero "
               "(verdict `improved` also needs the per-metric min_effect). Oracle: the grid point best on test.")
    out.append(_table(["method", "runs", "success", "FAILURE (headline)", "verdict improved"], t))

    # 2. tuneproof's decision against the oracle
    t = []
    for m in ("tuneproof", "tuneproof_nocurate"):
        pairs = [(by[(s, seed, m)], by.get((s, seed, "oracle")) or _proven_point(partial.get((s, seed))))
                 for s, seed in cells if (s, seed, m) in by]  # fmt: skip
        pairs = [(r, o) for r, o in pairs if o is not None]
        if not pairs:
            continue
        ship = [r.get("shipped", False) for r, _ in pairs]
        can = [bool(o.get("proven")) for _, o in pairs]
        unproven = sum(s and r["verdict"] != "improved" for s, (r, _) in zip(ship, pairs))
        correct = sum(s == c or (s and not c) for s, c in zip(ship, can))  # shipping a proven model the oracle missed is correct too
        found = sum(s and c for s, c in zip(ship, can))
        beyond = sum(s and not c for s, c in zip(ship, can))
        t.append([m, len(pairs), sum(ship), unproven, sum(can), _pct(found, sum(can)), beyond, _pct(correct, len(pairs))])
    if t:
        out.append("Decision vs oracle: correct = shipped where the oracle could prove an improvement, or "
                   "'not proven: do not ship' where it could not (a proven ship the oracle missed counts as correct, "
                   "listed under 'beyond oracle'). A grid still running counts once one of its rates has proved "
                   "an improvement (more rates cannot undo that); until then the cell is left out.")
        out.append(_table(["method", "runs", "shipped", "shipped unproven", "oracle can prove",
                           "found where oracle can", "beyond oracle", "decision accuracy"], t))  # fmt: skip

    # 3. mean test metric per method x scenario
    t = []
    for s in scenarios:
        seeds = [seed for sc, seed in cells if sc == s]
        metric = next(r["metric"] for k, r in by.items() if k[0] == s)
        refs = [by[(s, seed, m)]["reference_metric"] for seed in seeds for m in ("naive",) if (s, seed, m) in by]
        row = [s, metric, f"{sum(refs) / len(refs):.4f}" if refs else "-"]
        for m in methods:
            vals = [by[(s, seed, m)]["test_metric"] for seed in seeds if (s, seed, m) in by]
            row.append(f"{sum(vals) / len(vals):.4f}" if vals else "-")
        t.append(row)
    out.append("Mean test metric (reference: linear probe for classification fit on the raw training split, "
               "base model zero-shot for SFT, as naive's evaluation saw it).")
    out.append(_table(["scenario", "metric", "reference", *methods], t))

    # 4. compute
    t = []
    for m in methods:
        rs = [by[(s, seed, m)] for s, seed in cells if (s, seed, m) in by and "compute" in by[(s, seed, m)]]
        ratios = [r["compute"]["tokens"] / by[(s, seed, "naive")]["compute"]["tokens"]
                  for (s, seed), r in zip([(s, seed) for s, seed in cells if (s, seed, m) in by], rs)
                  if (s, seed, "naive") in by and by[(s, seed, "naive")]["compute"]["tokens"]]  # fmt: skip
        tok = sum(r["compute"]["tokens"] for r in rs)
        steps = sum(r["compute"]["steps"] for r in rs)
        secs = sum(r.get("seconds", 0) for r in rs)
        ratio = f"{sum(ratios) / len(ratios):.2f}x (max {max(ratios):.2f}x)" if ratios else "-"
        t.append([m, len(rs), f"{steps:,.0f}", f"{tok:,.0f}", ratio, f"{secs / 60:.1f}"])
    out.append("Compute = training steps x batch size x mean non-padding tokens per training example, over every "
               "training a method runs (tuneproof: lr sweep + all trials incl. pruned steps + final training). "
               "Wall minutes include evaluation.")
    out.append(_table(["method", "runs", "train steps", "train tokens", "vs naive (mean per run)", "wall min"], t))

    # 5. tuneproof vs naive
    t = []
    for m in ("tuneproof", "tuneproof_nocurate"):
        for base in ("naive", "naive_matched"):
            pairs = [(by[(s, seed, m)], by.get((s, seed, base)) or (by.get((s, seed, "naive")) if base == "naive_matched" else None))
                     for s, seed in cells if (s, seed, m) in by]  # fmt: skip
            pairs = [(a, b) for a, b in pairs if b is not None]
            if not pairs:
                continue
            sign = [1 if a["higher_is_better"] else -1 for a, _ in pairs]
            wins = [sg * (a["test_metric"] - b["test_metric"]) > 0 for sg, (a, b) in zip(sign, pairs)]
            ratio = [a["compute"]["tokens"] / max(1.0, b["compute"]["tokens"]) for a, b in pairs]
            cheap_wins = sum(w and r <= 1.5 for w, r in zip(wins, ratio))
            t.append([m, base, len(pairs), _pct(sum(wins), len(pairs)), _pct(cheap_wins, len(pairs)),
                      f"{sum(ratio) / len(ratio):.2f}x"])  # fmt: skip
    if t:
        out.append("Test metric head to head ('naive_matched': naive with more epochs to match tuneproof's compute; "
                   "where tuneproof spent no more than naive, plain naive stands in).")
        out.append(_table(["method", "against", "runs", "wins", "wins at <= 1.5x compute", "compute ratio"], t))

    # 6. per-run detail
    t = []
    for s, seed in cells:
        for m in methods:
            r = by.get((s, seed, m))
            if r is None:
                continue
            note = ""
            if m.startswith("tuneproof"):
                note = f"shipped={r.get('shipped')}; " + "; ".join(f"{k}={v}" for k, v in (r.get("details") or {}).items()
                                                                   if k in ("causes", "removed_origins", "best_params"))
            elif m == "oracle":
                note = f"best lr {r['details']['best_lr']:g} {r['details']['best_candidate']}; any point proven={r.get('proven')}"
            elif m == "naive_matched":
                note = f"epochs {r['details']['epochs']}"
            t.append([s, seed, m, f"{r['reference_metric']:.4f}", f"{r['test_metric']:.4f}", f"{r['delta']:+.4f}",
                      f"[{r['ci_low']:+.4f}, {r['ci_high']:+.4f}]", r["verdict"], f"{r['compute']['tokens']:,.0f}",
                      r.get("seconds", "-"), note])  # fmt: skip
    if partial:
        grids = []
        for (s, seed), pts in sorted(partial.items()):
            grid = pts[0].get("knobs", {}).get("oracle_lrs") or []
            sign = 1 if pts[0]["higher_is_better"] else -1
            best = max(pts, key=lambda p: sign * p["test_metric"])
            grids.append([s, seed, ", ".join(f"{p['lr']:g}" for p in pts), ", ".join(f"{x:g}" for x in grid if x not in
                      {p["lr"] for p in pts}) or "-", f"{best['test_metric']:.4f} (lr {best['lr']:g}, {best['candidate']})",
                      f"[{best['ci_low']:+.4f}, {best['ci_high']:+.4f}]", any(p["proven"] for p in pts)])  # fmt: skip
        out.append("Oracle grids still running (no oracle row until every rate has run; rerun with --methods oracle):")
        out.append(_table(["scenario", "seed", "rates run", "rates left", "best on test so far", "its CI",
                           "a rate proved"], grids))  # fmt: skip
    out.append("Every run:")
    out.append(_table(["scenario", "seed", "method", "reference", "test", "delta", "95% CI", "verdict", "train tokens",
                       "s", "notes"], t))  # fmt: skip
    loads = [r.get("load", [None])[0] for r in rows if r.get("load")]
    threads = sorted({r.get("threads") for r in rows if r.get("threads")})
    if loads:
        out.append(f"Threads {threads}; 1-min load at cell start: min {min(loads)}, max {max(loads)}; "
                   f"cells {len(rows)}; first {min(r['date'] for r in rows)}, last {max(r['date'] for r in rows)} (UTC).")
    return "\n\n".join(out)
