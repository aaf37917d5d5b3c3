"""GPU check: the whole pipeline on tiny random models, on CUDA, through the API and the CLI.

CI has no GPU, so this is the check to run on one (it takes a minute or two):

    python scripts/gpu_check.py OUT_DIR            # on a GPU machine
    python scripts/gpu_check.py OUT_DIR --cpu      # rehearsal on a CPU: same runs, no GPU asserts

It builds a tiny random Llama and BERT, then checks that

- ``inference_device()`` is the GPU, and ``TUNEPROOF_DEVICE=cpu`` overrides it;
- the audit's :class:`~tuneproof.audit.embed.Embedder` runs on the GPU;
- ``tuneproof.pipeline.run`` completes on the GPU for SFT with LoRA, full and freeze, and for
  classification, with a verdict, and that every stage that trains or scores (lr sweep, tune,
  train, evaluate) allocated GPU memory (the stages are wrapped to read
  ``torch.cuda.max_memory_allocated``);
- the ``tuneproof run`` command (a separate process) completes the same way;

and prints one line per check, then ``GPU CHECK PASSED`` or the failures. Exit code 1 on a
failure. ``OUT_DIR/gpu_check.json`` holds the results.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import subprocess
import sys
import time
import traceback
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

WORDS = "the capital of france is paris rome madrid water boils at one hundred degrees sun rises in east".split()
GPU_STAGES = ("lr_sweep", "tune", "train", "evaluate")  # the stages that must touch the GPU
ON_GPU = "--cpu" not in sys.argv


def qa_rows(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        answer = " ".join(rng.choice(WORDS) for _ in range(2))
        rows.append({"prompt": " ".join(rng.choice(WORDS) for _ in range(7)), "completion": answer, "answers": [answer]})
    return rows


def cls_rows(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = "pos" if i % 2 else "neg"
        words = [rng.choice(WORDS) for _ in range(4)]
        words.insert(rng.randrange(5), "wonderful" if label == "pos" else "dull")
        rows.append({"text": " ".join(words), "label": label})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def sft_config(out: Path, llama: Path, method: str) -> dict:
    return {
        "name": f"sft-{method}",
        "task": "sft",
        "data": {"path": str(write_jsonl(out / f"qa-{method}.jsonl", qa_rows(80))), "val_fraction": 0.2, "test_fraction": 0.25},
        "model": {"name": str(llama), "max_length": 64, "method": method, "trainable_blocks": 1},
        "train": {"batch_size": 4, "max_steps": 6, "eval_steps": 2},  # bf16 left to its default: on with a bf16 GPU
        "search": {"n_trials": 2, "pruner": "none"},
        "eval": {"metric": "token_f1", "max_new_tokens": 4, "bootstrap": 1000},
        "audit": {"checks": ["exact_duplicate", "near_duplicate", "low_quality", "too_long"]},
        "pipeline": {"sweep_lrs": [1e-4, 1e-3, 1e-2], "sweep_steps": 2, "tune_steps": 2},
        "tracking": {"runs_dir": str(out / "runs")},
    }


def cls_config(out: Path, bert: Path) -> dict:
    return {
        "name": "cls",
        "task": "classification",
        "data": {"path": str(write_jsonl(out / "cls.jsonl", cls_rows(160))), "val_fraction": 0.2, "test_fraction": 0.3},
        "model": {"name": str(bert), "method": "full", "max_length": 32},
        "train": {"batch_size": 8, "max_steps": 6, "eval_steps": 2},
        "search": {"n_trials": 2, "pruner": "none"},
        "eval": {"metric": "accuracy", "bootstrap": 1000},
        "audit": {"checks": ["exact_duplicate", "low_quality", "too_long"]},
        "pipeline": {"sweep_lrs": [1e-4, 1e-3, 1e-2], "sweep_steps": 2, "tune_steps": 2},
        "tracking": {"runs_dir": str(out / "runs")},
    }


class Checks:
    def __init__(self) -> None:
        self.results: list[dict] = []

    def run(self, name: str, fn) -> None:
        t0 = time.perf_counter()
        try:
            detail = fn()
            ok = True
        except Exception:  # a check script reports every failure, then goes on
            detail, ok = traceback.format_exc(), False
        self.results.append({"check": name, "ok": ok, "seconds": round(time.perf_counter() - t0, 1), "detail": detail})
        print(f"[{'PASS' if ok else 'FAIL'}] {name} ({time.perf_counter() - t0:.1f} s): {detail}", flush=True)


def instrument_stages(peaks: dict[str, int]) -> None:
    """Wrap every pipeline stage so that its peak GPU memory lands in ``peaks``."""
    import torch

    from tuneproof.pipeline import _run

    def wrap(name, work):
        def timed(ctx):
            if not ON_GPU:
                return work(ctx)
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            try:
                return work(ctx)
            finally:
                peaks[name] = int(torch.cuda.max_memory_allocated())

        return timed

    _run.STAGES[:] = [dataclasses.replace(s, work=wrap(s.name, s.work)) for s in _run.STAGES]


def pipeline_check(cfg: dict, peaks: dict[str, int]):
    from tuneproof.pipeline import run

    def check():
        peaks.clear()
        res = run(cfg)
        status = {s["name"]: s["status"] for s in res.stages}
        bad = {k: v for k, v in status.items() if v not in ("done", "off")}
        assert not bad, f"stages not done: {bad}"
        cold = [s for s in GPU_STAGES if ON_GPU and status.get(s) == "done" and peaks.get(s, 0) == 0]
        assert not cold, f"stages that allocated no GPU memory: {cold} (peaks {peaks})"
        train = json.loads((res.run_dir / "train" / "train.json").read_text())
        return {"headline": res.decision["headline"], "peak_MiB": {k: round(v / 2**20, 1) for k, v in peaks.items()},
                "bf16": train["data"]["bf16"], "tokens_per_s": train["data"]["approx_tokens_per_second"]}  # fmt: skip

    return check


def main() -> int:
    import torch
    import yaml

    args = [a for a in sys.argv[1:] if a != "--cpu"]
    out = Path(args[0] if args else "gpu-check").resolve()
    out.mkdir(parents=True, exist_ok=True)
    if ON_GPU and not torch.cuda.is_available():
        print("no CUDA device: this check is for a GPU machine (--cpu rehearses it on a CPU)", file=sys.stderr)
        return 2
    want = "cuda" if ON_GPU else "cpu"
    import transformers

    from tuneproof.testing import tiny_bert, tiny_llama

    print(f"torch {torch.__version__}, transformers {transformers.__version__}, "
          f"{torch.cuda.get_device_name(0) if ON_GPU else 'CPU rehearsal'}", flush=True)  # fmt: skip
    llama, bert = tiny_llama(out / "tiny-llama"), tiny_bert(out / "tiny-bert")
    checks, peaks = Checks(), {}

    def device_choice():
        from tuneproof.errors import ModelLoadError
        from tuneproof.models import inference_device

        dev = inference_device()
        assert dev.type == want, dev
        os.environ["TUNEPROOF_DEVICE"] = "cpu"
        try:
            assert inference_device().type == "cpu"
            os.environ["TUNEPROOF_DEVICE"] = f"cuda:{torch.cuda.device_count() if ON_GPU else 0}"
            try:
                inference_device()
                raise AssertionError("a GPU index past the last one was accepted")
            except ModelLoadError as exc:
                msg = str(exc)
        finally:
            del os.environ["TUNEPROOF_DEVICE"]
        return f"{dev}; override to cpu works; bad index: {msg[:80]}"

    def embedder_on_gpu():
        from tuneproof.audit.embed import Embedder

        emb = Embedder(str(bert), max_tokens=32, batch_size=8)
        vecs = emb.encode(["the sun rises in the east", "water boils"] * 5)
        assert emb.model.device.type == want, emb.model.device
        assert vecs.shape[0] == 10 and float(abs(vecs).sum()) > 0
        return f"{emb.model.device}, embeddings {vecs.shape}, bf16 {emb.bf16}"

    checks.run("inference_device picks the GPU; TUNEPROOF_DEVICE overrides", device_choice)
    checks.run("audit embedder on the GPU", embedder_on_gpu)
    instrument_stages(peaks)
    for method in ("lora", "full", "freeze"):
        checks.run(f"pipeline sft/{method} on the GPU", pipeline_check(sft_config(out, llama, method), peaks))
    checks.run("pipeline classification (probe reference) on the GPU", pipeline_check(cls_config(out, bert), peaks))

    def cli_run():
        cfg = sft_config(out, llama, "lora") | {"name": "cli"}
        path = out / "cli.yaml"
        path.write_text(yaml.safe_dump(cfg))
        proc = subprocess.run([sys.executable, "-c", "from tuneproof.cli import main; main()", "run", str(path)],
                              capture_output=True, text=True, timeout=600)  # fmt: skip
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        decision = json.loads((out / "runs" / "cli" / "decision.json").read_text())
        return decision["headline"]

    checks.run("tuneproof run (CLI process) on the GPU", cli_run)
    (out / "gpu_check.json").write_text(json.dumps(checks.results, indent=2, default=str) + "\n")
    failed = [r["check"] for r in checks.results if not r["ok"]]
    what = "GPU CHECK" if ON_GPU else "GPU CHECK (CPU rehearsal)"
    print(f"{what} PASSED" if not failed else f"{what} FAILED: {failed}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
