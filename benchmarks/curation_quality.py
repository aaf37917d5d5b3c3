"""Curation quality: what tuneproof's audit + curate removes on every outcome scenario, against the truth.

For each scenario of ``outcome.py`` (built by ``_outcome_data.py`` from real data fetched at
run time), this runs the audit and curation exactly as ``tuneproof run`` would: the
scenario's pool as ``data.path``, its test split as ``data.eval_path``, its domain hint
(references, a one-sentence description, or nothing), its task and model, and the default
audit settings. Nothing is trained. Every pool row's ``origin`` says what it truly is
(``_outcome_data.origin_type``), so per scenario it reports:

- per check: rows removed, removal precision (share of them that are noise of any type)
  and recall (share of the noise types the check exists for that it removed), and the same
  for rows it flagged and kept;
- the share of the clean in-domain rows kept (target >= 95%);
- per injected noise type, the share removed by any check (target >= 80%);
- the clean rows lost, by check.

Duplicates are scored by group: of k identical rows (or an original and its injected near
copy), k - 1 are redundant, and removing any k - 1 of them counts as right. Identical rows
that are all clean by origin are the corpus's own duplicates (``natural_duplicate``).

Each scenario appends one row to the results JSONL (with the git commit and the date)::

    flock /tmp/tuneproof-bench.lock python benchmarks/curation_quality.py --threads 1
    python benchmarks/curation_quality.py --scenarios policy_qa,finance_qa --suite quick
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

KEPT_TARGET = 0.95
REMOVED_TARGET = 0.80
REDUNDANT = ("exact_duplicate", "near_duplicate", "natural_duplicate")
# The noise types each check exists to catch (its recall is measured on these).
TARGETS = {
    "exact_duplicate": ("exact_duplicate", "natural_duplicate"),
    "near_duplicate": ("near_duplicate",),
    "off_domain": ("off_domain", "off_task"),
    "low_quality": ("garbled",),
    "label_issue": ("flipped_label",),
}


# ---- truth ---------------------------------------------------------------------------------


def _groups(n: int, keys: list[str], pairs: list[list[int]]) -> list[list[int]]:
    """Groups of row indices that are the same record: identical keys, or an (original, copy) pair."""
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[str, int] = {}
    for i, k in enumerate(keys):
        if k in first:
            parent[find(i)] = find(first[k])
        else:
            first[k] = i
    for a, b in pairs:
        parent[find(b)] = find(a)
    out: dict[int, list[int]] = {}
    for i in range(n):
        out.setdefault(find(i), []).append(i)
    return [g for g in out.values() if len(g) > 1]


def truth_types(kind: str, origins: list[str], keys: list[str], copies: list[list[int]],
                removed_by: dict[int, set[str]]) -> list[str]:  # fmt: skip
    """Each row's true type: ``clean`` or a noise type, duplicates resolved per group.

    In a group of k rows that are the same record, the clean and redundant labels are
    given out so that members removed by exact_duplicate take the redundant ones first,
    then those removed by near_duplicate, then those removed by another check
    (``removed_by``: row -> the checks that removed it): removing either copy of a pair is
    right, removing both loses a clean row.
    """

    def rank(i: int) -> tuple[int, int]:
        checks = removed_by.get(i, set())
        tier = 0 if "exact_duplicate" in checks else 1 if "near_duplicate" in checks else 2 if checks else 3
        return tier, i

    from _outcome_data import origin_type

    types = [origin_type(kind, o) for o in origins]
    for group in _groups(len(types), keys, copies):
        movable = [i for i in group if types[i] == "clean" or types[i] in REDUNDANT]
        if not movable:
            continue
        labels = [types[i] for i in movable]
        if "clean" not in labels:  # every member is a copy: the first one stands for the record
            labels[0] = "clean"
        if labels.count("clean") > 1:  # identical clean rows: the corpus's own duplicates
            extra = labels.count("clean") - 1
            labels = ["clean"] + ["natural_duplicate"] * extra + [x for x in labels if x != "clean"]
        redundant = sorted((x for x in labels if x != "clean"))
        order = sorted(movable, key=rank)
        for i, label in zip(order, redundant + ["clean"]):
            types[i] = label
    return types


# ---- one scenario ----------------------------------------------------------------------------


def _curate(name: str, suite: str, seed: int, work: Path) -> tuple[Any, dict[str, Any], Any]:
    """Build the scenario and curate its pool as the pipeline would; return (result, manifest, config)."""
    from _outcome_harness import tuneproof_config
    from outcome import make_scenario

    from tuneproof.audit import curate
    from tuneproof.config import load_config
    from tuneproof.pipeline._run import _audit_kwargs

    sc = make_scenario(name, suite)
    data = work / "data"
    man = sc.build(data, seed)
    files = {"pool": data / "pool.jsonl", "test": data / "test.jsonl"}
    if (data / "refs.jsonl").is_file():
        files["refs"] = data / "refs.jsonl"
    cfg = load_config(tuneproof_config(sc, seed, files, work / "runs", curate=True))
    res = curate(cfg.data.path, dry_run=True, progress=False, **_audit_kwargs(cfg))
    return res, man, cfg


def signal_limit(relevance: Any, types: list[str], removed_by: dict[int, set[str]]) -> dict[str, Any] | None:
    """How far the off-domain noise can be separated by the relevance score at all.

    Per off-domain noise type: the score's AUC against the clean rows (the chance that a noisy
    row scores below a clean one), and the share of that noise that an *oracle* threshold on
    the score, one that may lose exactly 2% (or 5%) of the clean rows, would catch. When
    even the oracle falls short of the target, no calibration of this score can meet it: the
    signal is the limit, not its threshold. ``by_off_domain`` is the share the shipped
    calibration removed through the off-domain check itself.
    """
    import numpy as np
    from scipy.stats import rankdata

    if relevance is None:
        return None
    s = np.asarray(relevance, dtype=float)
    t = np.asarray(types)
    clean = s[t == "clean"]
    out: dict[str, Any] = {}
    for kind in TARGETS["off_domain"]:
        rows = np.flatnonzero(t == kind)
        if not len(rows) or not len(clean):
            continue
        ranks = rankdata(np.r_[s[rows], clean])[: len(rows)]  # low score = off-domain
        auc = 1.0 - (ranks.sum() - len(rows) * (len(rows) + 1) / 2) / (len(rows) * len(clean))
        out[kind] = {"n": int(len(rows)), "auc": round(float(auc), 3),
                     **{f"oracle_removed_at_{int(q * 100)}pct_clean_lost": round(float((s[rows] < np.quantile(clean, q)).mean()), 3)
                        for q in (0.02, 0.05)},
                     "by_off_domain": round(sum("off_domain" in removed_by.get(int(i), ()) for i in rows) / len(rows), 3)}  # fmt: skip
    return out


def _share(a: int, b: int) -> float | None:
    return round(a / b, 3) if b else None


def score(kind: str, res: Any, man: dict[str, Any], pool_path: Path) -> dict[str, Any]:
    """Per-check precision/recall, clean kept, noise removed and clean lost, against the origins."""
    from tuneproof.audit._base import normalize, record_text

    origins = [json.loads(line)["origin"] for line in pool_path.read_text(encoding="utf-8").split("\n") if line.strip()]
    records = res.audit.records
    if len(records) != len(origins):
        raise RuntimeError(f"{pool_path}: {len(origins)} rows but {len(records)} readable records; the scorer "
                           "maps records to rows by position, so every row must load")  # fmt: skip
    removed = set(res.removed)
    removed_by = {i: {r["check"] for r in reasons} for i, reasons in res.removed.items()}
    keys = [normalize(record_text(r)) for r in records]
    types = truth_types(kind, origins, keys, man.get("copies", []), removed_by)
    by_check_removed: dict[str, set[int]] = {}
    for i, reasons in res.removed.items():
        for check in {r["check"] for r in reasons}:
            by_check_removed.setdefault(check, set()).add(i)
    by_check_flagged: dict[str, set[int]] = {}
    for i, findings in res.flagged.items():
        for check in {f.check for f in findings}:
            by_check_flagged.setdefault(check, set()).add(i)
    noise = {i for i, t in enumerate(types) if t != "clean"}
    counts = Counter(types)
    checks = {}
    for check in sorted(set(res.audit.checks) | set(by_check_removed) | set(by_check_flagged)):
        targets = {i for i, t in enumerate(types) if t in TARGETS.get(check, ())}
        rem, flag = by_check_removed.get(check, set()), by_check_flagged.get(check, set())
        checks[check] = {
            "status": res.audit.checks.get(check, {}).get("status", "ran"),
            "removed": len(rem), "removed_precision": _share(len(rem & noise), len(rem)),
            "removed_recall": _share(len(rem & targets), len(targets)),
            "flagged": len(flag), "flagged_precision": _share(len(flag & noise), len(flag)),
            "flagged_recall": _share(len(flag & targets), len(targets)), "targets": len(targets),
        }  # fmt: skip
    clean = [i for i, t in enumerate(types) if t == "clean"]
    noise_rows = {
        t: {"n": counts[t], "removed": sum(1 for i in removed if types[i] == t),
            "flagged_kept": sum(1 for i in res.flagged if types[i] == t and i not in removed)}
        for t in sorted(counts) if t != "clean"
    }  # fmt: skip
    for v in noise_rows.values():
        v["removed_share"] = _share(v["removed"], v["n"])
    lost = Counter(c for i in clean if i in removed for c in {r["check"] for r in res.removed[i]})
    kept_share = _share(sum(1 for i in clean if i not in removed), len(clean))
    threshold = res.audit.context.extras.get("off_domain_threshold")
    return {
        "pool": len(types), "clean": len(clean), "clean_kept_share": kept_share, "removed": len(removed),
        "noise": noise_rows, "checks": checks, "clean_lost_by_check": dict(lost.most_common()),
        "off_domain_threshold": threshold,
        "off_domain_signal": signal_limit(res.audit.context.extras.get("relevance"), types, removed_by),
        "targets_met": {"clean_kept": kept_share is not None and kept_share >= KEPT_TARGET,
                        **{f"{t}_removed": (v["removed_share"] or 0) >= REMOVED_TARGET for t, v in noise_rows.items()}},
    }  # fmt: skip


# ---- table -----------------------------------------------------------------------------------


def _pct(x: float | None, digits: int = 0) -> str:
    return "-" if x is None else f"{100 * x:.{digits}f}%"


def table(rows: list[dict[str, Any]]) -> str:
    """A plain-text table: one summary line per scenario, then its checks."""
    out = [f"{'scenario':<14} {'hint':<11} {'pool':>5} {'clean':>5} {'kept':>6}  noise removed (n)   clean lost by check"]
    for r in rows:
        noise = ", ".join(f"{t} {_pct(v['removed_share'])} ({v['n']})" for t, v in r["noise"].items()) or "none injected"
        lost = ", ".join(f"{c} {n}" for c, n in r["clean_lost_by_check"].items()) or "none"
        mark = "" if r["targets_met"]["clean_kept"] else " <95%"
        out.append(f"{r['scenario']:<14} {r['hint']:<11} {r['pool']:>5} {r['clean']:>5} {_pct(r['clean_kept_share'], 1):>6}{mark}"
                   f"  {noise}   lost: {lost}")  # fmt: skip
    signal = [(r["scenario"], t, v) for r in rows for t, v in (r.get("off_domain_signal") or {}).items()]
    if signal:
        out += ["", "off-domain signal: AUC of the relevance score, and the share an oracle threshold removes when it "
                "may lose 2% / 5% of the clean rows"]  # fmt: skip
        out += [f"{sc:<14} {t:<11} n {v['n']:>4}  AUC {v['auc']:.2f}  oracle {_pct(v['oracle_removed_at_2pct_clean_lost'])} / "
                f"{_pct(v['oracle_removed_at_5pct_clean_lost'])}  off_domain check removed {_pct(v['by_off_domain'])}"
                for sc, t, v in signal]  # fmt: skip
    out.append("")
    out.append(f"{'scenario':<14} {'check':<16} {'status':<8} {'removed':>7} {'prec':>5} {'recall':>6} {'flagged':>7} "
               f"{'prec':>5} {'recall':>6} {'targets':>7}")  # fmt: skip
    for r in rows:
        for check, c in r["checks"].items():
            if c["status"] != "ran" and not (c["removed"] or c["flagged"]):
                out.append(f"{r['scenario']:<14} {check:<16} {c['status'].split(':')[0]}")
                continue
            out.append(f"{r['scenario']:<14} {check:<16} {c['status'][:8]:<8} {c['removed']:>7} {_pct(c['removed_precision']):>5} "
                       f"{_pct(c['removed_recall']):>6} {c['flagged']:>7} {_pct(c['flagged_precision']):>5} "
                       f"{_pct(c['flagged_recall']):>6} {c['targets']:>7}")  # fmt: skip
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    from outcome import BUDGETS, HINT, SCENARIOS

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"comma list of {', '.join(SCENARIOS)}")
    ap.add_argument("--suite", choices=("full", "quick"), default="full", help="the outcome suite's sizes to build")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 leaves the other core to others)")
    ap.add_argument("--work", type=Path, default=None, help="data folder (default ~/.cache/tuneproof/curation_quality)")
    ap.add_argument("--results", type=Path, default=Path(__file__).resolve().parent / "results" / "curation_quality.jsonl",
                    help="JSONL that each scenario's row is appended to")  # fmt: skip
    args = ap.parse_args(argv)
    names = [s for s in args.scenarios.split(",") if s]
    if bad := [n for n in names if n not in SCENARIOS]:
        ap.error(f"unknown scenario(s) {bad}; choose from {', '.join(SCENARIOS)}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    torch.set_num_threads(args.threads)
    root = args.work or Path(os.environ.get("TUNEPROOF_CACHE", Path.home() / ".cache" / "tuneproof")) / "curation_quality"
    from _outcome_harness import git_commit

    commit, date = git_commit(), datetime.now(timezone.utc).isoformat(timespec="seconds")
    print(f"curation quality, suite {args.suite}, seed {args.seed}: {names}; commit {commit}; threads "
          f"{torch.get_num_threads()}, load {os.getloadavg()}")  # fmt: skip
    rows = []
    for name in names:
        t0 = time.perf_counter()
        work = root / args.suite / f"{name}-s{args.seed}"
        res, man, cfg = _curate(name, args.suite, args.seed, work)
        row = {"date": date, "commit": commit, "scenario": name, "suite": args.suite, "seed": args.seed,
               "hint": HINT[name], "task": cfg.task, "size": BUDGETS[args.suite][name]["size"],
               **score(name, res, man, work / "data" / "pool.jsonl"),
               "seconds": round(time.perf_counter() - t0, 1), "threads": torch.get_num_threads()}  # fmt: skip
        rows.append(row)
        print(f"  {name}: {row['seconds']:.0f} s, kept {_pct(row['clean_kept_share'], 1)} of clean", flush=True)
        args.results.parent.mkdir(parents=True, exist_ok=True)
        with args.results.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row, default=str) + "\n")
    print(table(rows))
    print(f"targets: keep >= {KEPT_TARGET:.0%} of clean rows; remove >= {REMOVED_TARGET:.0%} of each noise type. "
          f"Rows appended to {args.results}")  # fmt: skip


if __name__ == "__main__":
    main()
