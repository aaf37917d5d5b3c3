"""``tuneproof predict``: the tuned model's outputs for new records, through the evaluation's code paths.

SFT records get greedy generations from :func:`tuneproof.evaluate._sft.generate` (the same
batched, left-padded loop and the same prompt format that the evaluation scored);
classification records get the label and its class probabilities from
:func:`tuneproof.evaluate._classify.predict_proba`. Rows that cannot be read go to a
rejects file with their reason, as everywhere else in tuneproof.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuneproof._io import atomic_open
from tuneproof.data import Record, Schema, load_records
from tuneproof.errors import DataError, TuneproofError
from tuneproof.export._run import RunModel, open_run, sft_inputs

__all__ = ["PredictResult", "predict"]



@dataclass
class PredictResult:
    """What :func:`predict` wrote.

    Attributes:
        out: the predictions, one JSON object per readable record, in input order.
        rejects: the rows that could not be read, each with its reason.
        n_records: records predicted. n_rejected: rows in ``rejects``.
        stats: generation speed (SFT) and the model used.
    """

    out: Path
    rejects: Path
    n_records: int
    n_rejected: int
    stats: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        rejected = f"; {self.n_rejected} unreadable rows in {self.rejects}" if self.n_rejected else ""
        return f"{self.n_records} predictions in {self.out}{rejected}"


def predict(
    run_dir: str | os.PathLike, data: str | os.PathLike, out: str | os.PathLike, *,
    rejects: str | os.PathLike | None = None, fields: dict[str, str] | None = None,
    batch_size: int = 8, max_new_tokens: int | None = None, bf16: bool = False,
) -> PredictResult:  # fmt: skip
    """Write the run's tuned model's outputs for every readable record of ``data`` to ``out`` (JSONL).

    Args:
        run_dir: a run folder; its shipped model is used, else its trained one.
        data: JSONL, CSV, Parquet or a datasets folder. SFT reads prompt/completion, Alpaca or
            chat records, plain ``text`` or a bare ``prompt`` column (completions are ignored);
            classification reads ``text`` (a ``label`` column is kept but not used).
        out: the predictions file (``.jsonl``): each input row with its ``id`` and, for SFT,
            ``generation``; for classification ``predicted`` and ``probabilities``.
        rejects: where unreadable rows go (default ``<out>.rejects.jsonl``).
        fields: canonical field -> column (default: the run's ``data.fields``).
        batch_size: records per batch.
        max_new_tokens: generation budget (default: the run's ``eval.max_new_tokens``).
        bf16: bf16 autocast, as the evaluation's ``--bf16``.

    Raises:
        DataError: no row of ``data`` is readable, or its records do not fit the task.
    """
    out = Path(out)
    if out.suffix != ".jsonl":
        raise TuneproofError(f"--out {out}: predictions are written as JSON lines. Fix: name the file *.jsonl.")
    rejects = Path(rejects) if rejects else out.with_name(out.stem + ".rejects.jsonl")
    run = open_run(run_dir)
    loaded = _load(Path(data), fields if fields is not None else (run.cfg.data.fields or None), rejects)
    model, tok = run.load()
    stats: dict[str, Any] = {"model": str(run.model_dir), "proven": run.shipped}
    if run.task == "sft":
        outputs, gen = _generate(run, model, tok, loaded.records, str(data), batch_size, max_new_tokens, bf16)
        stats["generation"] = gen
    else:
        outputs = _classify(run, model, tok, loaded.records, str(data), batch_size)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(out) as f:
        for record, extra in zip(loaded.records, outputs):
            row = {"id": record.id, **_as_given(record, loaded.field_map), **extra}
            f.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
    return PredictResult(out, rejects, len(loaded.records), len(loaded.rejected), stats)


def _load(path: Path, fields: dict[str, str] | None, rejects: Path) -> Any:
    """The readable records (unreadable rows written to ``rejects``); bare prompts read as text."""
    try:
        return load_records(path, fields=fields, rejects_path=rejects)
    except DataError as first:
        # A file of bare prompts has no completion column, so no SFT schema fits it; its
        # prompt column is then read as the prompt text.
        prompt_only = {"text": (fields or {}).get("prompt", "prompt")}
        try:
            return load_records(path, fields=prompt_only, rejects_path=rejects)
        except DataError:
            raise first from None


def _as_given(record: Record, field_map: dict[str, str]) -> dict[str, Any]:
    """The record's columns under the names the input file gave them."""
    return {field_map.get(k, k): v for k, v in record.fields.items()} | record.extra


def _generate(run: RunModel, model: Any, tok: Any, records: list[Record], source: str, batch_size: int,
              max_new_tokens: int | None, bf16: bool) -> tuple[list[dict[str, Any]], dict[str, float]]:  # fmt: skip
    from tuneproof.evaluate._sft import generate

    examples = sft_inputs(records, source)
    texts, stats = generate(model, tok, examples, max_new_tokens=max_new_tokens or run.cfg.eval.max_new_tokens,
                            max_length=run.cfg.model.max_length, batch_size=batch_size, bf16=bf16)  # fmt: skip
    return [{"generation": t} for t in texts], stats


def _classify(run: RunModel, model: Any, tok: Any, records: list[Record], source: str, batch_size: int) -> list[dict[str, Any]]:
    from tuneproof.evaluate._classify import predict_proba

    if records and records[0].schema not in (Schema.TEXT, Schema.TEXT_LABEL):
        raise DataError(f"{source}: the records are {records[0].schema.value} records, but this run's model is a "
                        "classifier and reads text. Fix: give a `text` column, or map yours with --field text=COLUMN.")  # fmt: skip
    labels = run.labels or [str(i) for i in range(model.config.num_labels)]
    proba = predict_proba(model, tok, [str(r.text) for r in records], max_length=run.cfg.model.max_length,
                          batch_size=batch_size)  # fmt: skip
    return [{"predicted": labels[int(p.argmax())], "probabilities": {n: round(float(x), 6) for n, x in zip(labels, p)}}
            for p in proba]  # fmt: skip
