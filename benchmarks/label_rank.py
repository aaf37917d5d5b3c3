"""How useful is label_issue's ranking? Precision at the top of the list, on the outcome suite.

Reads the sentiment scenario-seeds of an outcome results folder (``benchmarks/outcome.py``):
each seed's pool (whose ``origin`` says which labels were flipped on purpose) and the
tuneproof run's ``audit/findings.jsonl``. Prints, per seed, the share of injected flips and of
plot synopses among the top k findings by rank, against the whole list (the baseline: what a
reviewer gets reading the list in file order).

    python benchmarks/label_rank.py --results ~/.cache/tuneproof/outcome/full-v3
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

TOPS = (50, 100, 200, 500)


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]  # not splitlines: U+2028 in a record is not a line end


def measure(work: Path) -> dict | None:
    """Precision of the top-k label findings of one scenario-seed folder, or None if it has no run."""
    found = sorted(work.glob("runs/*-tp/audit/findings.jsonl"))
    if not found:
        return None
    pool = _jsonl(work / "data" / "pool.jsonl")
    issues = [f for f in _jsonl(found[0]) if f["check"] == "label_issue"]
    if not issues or "rank" not in issues[0]:
        issues.sort(key=lambda f: f["label_probability"])  # runs before 0c20d84: the same order
    else:
        issues.sort(key=lambda f: f["rank"])
    origin = [pool[int(f["id"].rsplit(":", 1)[1]) - 1]["origin"] for f in issues]
    flips = sum(p["origin"] == "review/flipped" for p in pool)
    row = {"flagged": len(issues), "flips_in_pool": flips}
    for k in (*TOPS, len(issues)):
        top = origin[:k]
        row[f"top{k}" if k != len(issues) else "all"] = {
            "flips": round(sum(o == "review/flipped" for o in top) / max(len(top), 1), 3),
            "plots": round(sum(o == "plot" for o in top) / max(len(top), 1), 3),
            "recall": round(sum(o == "review/flipped" for o in top) / max(flips, 1), 3),
        }
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--results", type=Path, required=True, help="an outcome results folder (with work/sentiment-s*)")
    args = ap.parse_args()
    seeds = sorted((args.results / "work").glob("sentiment-s*"))
    if not seeds:
        raise SystemExit(f"{args.results / 'work'}: no sentiment-s* folders; run benchmarks/outcome.py --scenarios sentiment first")
    for work in seeds:
        row = measure(work)
        if row is None:
            print(f"{work.name}: no tuneproof run")
            continue
        cells = "; ".join(f"{k} flips {v['flips']:.2f} plots {v['plots']:.2f} recall {v['recall']:.2f}"
                          for k, v in row.items() if isinstance(v, dict))  # fmt: skip
        ratio = row["top50"]["flips"] / max(row["all"]["flips"], 1e-9)
        print(f"{work.name}: {row['flagged']} flagged; {cells}; top-50 precision / whole list {ratio:.1f}x")


if __name__ == "__main__":
    main()
