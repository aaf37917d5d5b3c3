"""Benchmark the evaluation engine against the obvious baselines, in the same run.

1. Zero-shot SmolLM2-135M on NQ-open questions (greedy): exact match and token F1. The
   generation speed benchmark is ``benchmarks/bench_generate.py``.
2. Paired bootstrap (1000 resamples): tuneproof's vectorised count-matrix version vs a
   Python loop over resamples (mean metric: numpy indexing; macro-F1: sklearn per resample).
3. NLL scoring in bf16 autocast vs fp32: speed ratio and the change in mean NLL.

A/B rounds are interleaved because the machine is shared. Run:
    flock /tmp/tuneproof-bench.lock python benchmarks/bench_evaluate.py [--questions 48] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np


def _env() -> str:
    import torch

    return f"torch threads={torch.get_num_threads()} loadavg={tuple(round(x, 2) for x in os.getloadavg())}"


def bench_generation(n_questions: int, rounds: int, max_new_tokens: int) -> None:
    from tuneproof.corpora import nq_open
    from tuneproof.evaluate._sft import SftExample, generate, score_nll
    from tuneproof.models import load_model

    qs = nq_open()[:n_questions]
    examples = [SftExample(f"nq:{i}", [{"role": "user", "content": f"Answer the question in a few words.\n{q['question']}"}],
                           q["answers"][0], q["answers"]) for i, q in enumerate(qs)]  # fmt: skip
    model, tok = load_model("smollm2-135m", "sft")
    model.eval()
    # Warm-up (discarded): the first calls allocate and pick kernels.
    generate(model, tok, examples[:8], max_new_tokens=max_new_tokens, max_length=512, batch_size=8)
    score_nll(model, tok, examples[:8], max_length=512, batch_size=8, bf16=True)
    outs, _ = generate(model, tok, examples, max_new_tokens=max_new_tokens, max_length=512, batch_size=8)
    from tuneproof.evaluate import exact_match, token_f1

    em = np.mean([exact_match(o, ex.references) for o, ex in zip(outs, examples)])
    f1 = np.mean([token_f1(o, ex.references) for o, ex in zip(outs, examples)])
    print(f"  zero-shot SmolLM2-135M on these questions: exact match {em:.3f}, token F1 {f1:.3f}")
    for o, ex in list(zip(outs, examples))[:3]:
        print(f"    Q: {ex.messages[0]['content'].splitlines()[-1]!r} -> {o!r} (answers {ex.references})")

    times: dict[str, list[float]] = {"fp32": [], "bf16": []}
    nll: dict[str, float] = {}
    for r in range(rounds):
        for name in ("fp32", "bf16") if r % 2 == 0 else ("bf16", "fp32"):
            t0 = time.perf_counter()
            values, counts, _ = score_nll(model, tok, examples, max_length=512, batch_size=8, bf16=name == "bf16")
            times[name].append(time.perf_counter() - t0)
            nll[name] = float(np.mean(values))
    tf, tb = statistics.median(times["fp32"]), statistics.median(times["bf16"])
    print(f"completion NLL scoring ({n_questions} records, batch 8): fp32 {tf:.2f} s, bf16 {tb:.2f} s, "
          f"speed-up {tf / tb:.2f}x; mean NLL fp32 {nll['fp32']:.4f} vs bf16 {nll['bf16']:.4f} "
          f"(diff {nll['bf16'] - nll['fp32']:+.4f})  [{_env()}]")  # fmt: skip


def bench_bootstrap(n: int, rounds: int) -> None:
    from sklearn.metrics import f1_score

    from tuneproof.evaluate import macro_f1, paired_bootstrap, paired_bootstrap_means

    rng = np.random.default_rng(0)
    ref, tuned = rng.random(n), rng.random(n) + 0.05
    y = rng.integers(0, 3, n)
    p_ref = np.where(rng.random(n) < 0.7, y, rng.integers(0, 3, n))
    p_tun = np.where(rng.random(n) < 0.75, y, rng.integers(0, 3, n))

    def loop_mean() -> tuple[float, float]:
        g = np.random.default_rng(0)
        d = []
        for _ in range(1000):
            idx = g.integers(0, n, n)
            d.append(tuned[idx].mean() - ref[idx].mean())
        return tuple(np.quantile(d, [0.025, 0.975]))

    def loop_f1() -> tuple[float, float]:
        g = np.random.default_rng(0)
        d = []
        for _ in range(1000):
            idx = g.integers(0, n, n)
            d.append(f1_score(y[idx], p_tun[idx], average="macro") - f1_score(y[idx], p_ref[idx], average="macro"))
        return tuple(np.quantile(d, [0.025, 0.975]))

    cases = {
        "mean: vectorised": lambda: paired_bootstrap_means("m", ref, tuned, higher_is_better=True),
        "mean: python loop": loop_mean,
        "macro-F1: vectorised": lambda: paired_bootstrap(
            "f1", lambda w: macro_f1(y, p_ref, 3, w), lambda w: macro_f1(y, p_tun, 3, w), n, higher_is_better=True),
        "macro-F1: sklearn loop": loop_f1,
    }  # fmt: skip
    times: dict[str, list[float]] = {k: [] for k in cases}
    results = {}
    for r in range(rounds):
        for name in list(cases) if r % 2 == 0 else list(reversed(cases)):
            t0 = time.perf_counter()
            results[name] = cases[name]()
            times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"paired bootstrap, n={n} records, 1000 resamples  [{_env()}]:")
    for metric in ("mean", "macro-F1"):
        vec = med[f"{metric}: vectorised"]
        base = med[f"{metric}: python loop" if metric == "mean" else "macro-F1: sklearn loop"]
        res = results[f"{metric}: vectorised"]
        print(f"  {metric}: vectorised {vec * 1000:.1f} ms, loop {base * 1000:.1f} ms, speed-up {base / vec:.1f}x; "
              f"CI vectorised [{res.ci_low:+.4f}, {res.ci_high:+.4f}]")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=48)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--skip-generation", action="store_true")
    args = ap.parse_args()
    print(f"bench_evaluate  [{_env()}]")
    for n in (500, 5000):
        bench_bootstrap(n, 3)
    if not args.skip_generation:
        bench_generation(args.questions, args.rounds, args.max_new_tokens)


if __name__ == "__main__":
    main()
