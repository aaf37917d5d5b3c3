"""``tuneproof export``: a run's model as a merged Hugging Face folder, GGUF files, or GGUF + Ollama Modelfile."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuneproof._io import atomic_write
from tuneproof.errors import DataError, TuneproofError
from tuneproof.export._run import RunModel, open_run

__all__ = ["FORMATS", "ExportResult", "export"]

FORMATS = ("merged", "gguf", "ollama")
_CHECK_PROMPTS = 3  # test records whose next-token logits the GGUF round trip compares
_FALLBACK_PROMPTS = ["The capital of France is", "Water boils at", "Question: who wrote the play? Answer:"]


@dataclass
class ExportResult:
    """What :func:`export` wrote into ``out``: the files, the round-trip checks, and whether the model was proven."""

    out: Path
    format: str
    files: list[str]
    proven: bool
    checks: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"{self.format} export in {self.out}: {', '.join(self.files)}"]
        for c in self.checks:
            lines.append(f"round trip {c['file']}: largest next-token logit difference {c['max_abs_diff']:.3g} "
                         f"({c['relative_diff']:.2g} of the largest logit, tolerance {c['tolerance']:.2g}): "
                         f"{'passed' if c['passed'] else 'FAILED'}"
                         + ("" if c["tokenizer_matches"] else "; the GGUF's tokenizer encodes the prompts differently"))  # fmt: skip
        return "\n".join(lines)


def export(run_dir: str | os.PathLike, format: str = "merged", out: str | os.PathLike | None = None) -> ExportResult:
    """Export a run's model (the shipped one, else the trained one, marked not proven) with its model card.

    Args:
        run_dir: a run folder, ``runs/<name>``.
        format: ``merged`` (a standalone Hugging Face folder, LoRA merged into the weights,
            safetensors only; classifiers with ``labels.json``), ``gguf`` (f16 and q8_0 files,
            Llama-family causal LMs, each checked by loading it back), or ``ollama`` (the GGUF
            files and a Modelfile with the prompt format training used).
        out: the folder to write (default ``<run_dir>/export/<format>``); an earlier export there is replaced.

    Returns:
        An :class:`ExportResult`; ``out/export.json`` holds the same facts, ``out/README.md`` the card.

    Raises:
        TuneproofError: an unknown format, GGUF for a classifier, a non-empty ``out`` that is not an
            earlier export, or a model the GGUF writer does not support (the message names the fix).
    """
    if format not in FORMATS:
        raise TuneproofError(f"--format {format!r}: use one of {', '.join(FORMATS)}.")
    run = open_run(run_dir)
    if run.task == "classification" and format != "merged":
        raise TuneproofError(f"--format {format}: GGUF and Ollama run text generators, and this run's model is a "
                             "sequence classifier (no language-model head). Fix: export --format merged; the folder "
                             "carries the label map (labels.json).")  # fmt: skip
    target = _prepare(Path(out) if out else run.run_dir / "export" / format)
    from tuneproof.export._merged import merged_model, save_merged

    model, tok = merged_model(run)
    checks: list[dict[str, Any]] = []
    if format == "merged":
        files = save_merged(run, model, tok, target)
    else:
        files, checks = _gguf_files(run, model, tok, target)
        if format == "ollama":
            from tuneproof.export._ollama import write_modelfile

            files.append(write_modelfile(target, files[-1], tok, model, max_new_tokens=run.cfg.eval.max_new_tokens))
    return _finish(run, target, format, files, checks, tok)


def _prepare(out: Path) -> Path:
    """An empty folder at ``out``; an earlier export there (it has export.json) is removed first."""
    if out.exists() and any(out.iterdir()):
        if not (out / "export.json").is_file():
            raise TuneproofError(f"--out {out}: the folder holds files that are not an earlier export. Fix: choose "
                                 "an empty or new folder.")  # fmt: skip
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def _gguf_files(run: RunModel, model: Any, tok: Any, out: Path) -> tuple[list[str], list[dict[str, Any]]]:
    from tuneproof.export._gguf import GGUF_TYPES, check_round_trip, write_gguf

    files, checks, prompts = [], [], _check_prompts(run, tok)
    for qtype in GGUF_TYPES:
        path = out / f"{run.run_dir.name}-{qtype}.gguf"
        write_gguf(model, tok, path, qtype, name=run.run_dir.name)
        files.append(path.name)
        checks.append(check_round_trip(model, tok, path, qtype, prompts))
    return files, checks


def _check_prompts(run: RunModel, tok: Any) -> list[str]:
    """The first test records' prompts as training formatted them (fixed sentences when the split is gone)."""
    from tuneproof.data import load_records
    from tuneproof.evaluate._sft import prompt_text
    from tuneproof.export._run import sft_inputs

    test = run.run_dir / "split" / "test.jsonl"
    try:
        records = load_records(test).records[:_CHECK_PROMPTS] if test.is_file() else []
        return [prompt_text(tok, ex.messages) for ex in sft_inputs(records, str(test))] or _FALLBACK_PROMPTS
    except DataError:
        return _FALLBACK_PROMPTS


def _finish(run: RunModel, out: Path, format: str, files: list[str], checks: list[dict[str, Any]], tok: Any) -> ExportResult:
    from tuneproof.evaluate._sft import prompt_text
    from tuneproof.export._card import write_card

    info: dict[str, Any] = {"format": format, "run_dir": str(run.run_dir), "model": str(run.model_dir),
                            "proven": run.shipped, "verdict": run.verdict, "task": run.task, "base": run.base,
                            "files": files + ["export.json", "README.md"], "checks": checks}  # fmt: skip
    if run.task == "sft":
        info["prompt_format"] = ("chat template: " if getattr(tok, "chat_template", None) else "plain text: ") + repr(
            prompt_text(tok, [{"role": "user", "content": "PROMPT"}]))  # fmt: skip
    atomic_write(out / "export.json", json.dumps(info, indent=1))
    write_card(run.run_dir, out, export=info)
    return ExportResult(out, format, info["files"], run.shipped, checks)
