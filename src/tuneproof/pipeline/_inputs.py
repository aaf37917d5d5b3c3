"""Inputs that cannot train: found from the data alone, before any model or tokenizer loads.

``tuneproof check`` and ``tuneproof run`` call :func:`check_inputs` first. Each rule here is
a case where training would run for minutes (or hours) and then fail, or produce a model
that no evaluation can judge:

- the task does not fit the data's schema (classification needs text and label columns);
- classification data with fewer than two labels (nothing to discriminate);
- an eval file whose labels the training data never shows (a label never seen in training
  cannot be predicted, so its records are lost by construction);
- an eval file of another schema than the training data (the evaluation would score the
  model on a kind of example it was not trained on, or not read the file at all);
- a split that will be empty, or is empty after curation (no validation means no early
  stopping or guard; no test means no verdict).

Problems stop the run; warnings (e.g. a training label absent from the eval file, which
only goes unmeasured) are printed and kept. Every message names the file, the problem and
the fix.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuneproof.config import RunConfig
from tuneproof.data import LoadResult, Record, Schema, load_records
from tuneproof.data._schema import schema_fields
from tuneproof.errors import DataError

__all__ = ["InputCheck", "check_curated", "check_inputs", "check_split", "eval_problems", "label_problems", "split_size_problems",
           "task_problems"]  # fmt: skip


@dataclass
class InputCheck:
    """What :func:`check_inputs` found.

    Attributes:
        train: the training data as loaded.
        eval: the eval file (``data.eval_path``) as loaded, when one is set and readable.
        problems: inputs that cannot train; any one stops ``check`` and ``run``.
        warnings: things worth reading that do not stop a run.
    """

    train: LoadResult
    eval: LoadResult | None = None
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def raise_for_problems(self) -> None:
        """Raise one :class:`DataError` that lists every problem, or return.

        Raises:
            DataError: at least one problem was found.
        """
        if self.problems:
            raise inputs_error(self.problems)


def inputs_error(problems: Sequence[str]) -> DataError:
    n = len(problems)
    return DataError(f"the inputs cannot train ({n} problem{'s' if n != 1 else ''}); nothing was trained:\n"
                     + "\n".join(f"  - {p}" for p in problems))  # fmt: skip


def check_inputs(cfg: RunConfig, *, rejects_dir: Path | None = None) -> InputCheck:
    """Load the training data (and ``data.eval_path``) and find every input that cannot train.

    Reads data only: no tokenizer, embedding model or base model is loaded.

    Args:
        cfg: the run's config (its ``task``, ``data`` and ``model.labels`` are read).
        rejects_dir: when given, unreadable rows go to ``rejects.jsonl`` (training data) and
            ``rejects_eval.jsonl`` (eval file) there.

    Returns:
        An :class:`InputCheck`; call ``raise_for_problems()`` to stop on a problem.

    Raises:
        DataError: the training data itself cannot be read (missing, no readable row,
            unknown schema), as :func:`~tuneproof.data.load_records` says.

    Example:
        >>> found = check_inputs(load_config("tuneproof.yaml"))  # doctest: +SKIP
        >>> found.raise_for_problems()  # doctest: +SKIP
    """
    d = cfg.data
    fields = d.fields or None
    train = load_records(d.path, fields=fields, split=d.split,
                         rejects_path=rejects_dir / "rejects.jsonl" if rejects_dir else None)  # fmt: skip
    found = InputCheck(train)
    found.problems += task_problems(cfg.task, train)
    ev: LoadResult | None = None
    if d.eval_path:
        try:
            ev = load_records(d.eval_path, fields=fields,
                              rejects_path=rejects_dir / "rejects_eval.jsonl" if rejects_dir else None)  # fmt: skip
        except DataError as exc:
            found.problems.append(f"data.eval_path: {exc} The eval file must hold the same kind of records as the "
                                  f"training data ({_describe(train)}). Fix: convert it, or unset data.eval_path to "
                                  "cut the test split from data.path.")  # fmt: skip
        else:
            found.eval = ev
            found.problems += eval_problems(train, ev)
    if cfg.task == "classification" and train.schema == Schema.TEXT_LABEL:
        eval_records = ev.records if ev is not None and ev.schema == Schema.TEXT_LABEL else None
        problems, warnings = label_problems(train.records, train.name, eval_records, ev.name if ev else None,
                                            labels=cfg.model.labels)  # fmt: skip
        found.problems += problems
        found.warnings += warnings
    strata = Counter(str(r.fields.get("label")) for r in train.records) if cfg.task == "classification" else None
    found.problems += split_size_problems(len(train.records), d.val_fraction, None if d.eval_path else d.test_fraction,
                                          strata=strata, source=train.name)  # fmt: skip
    return found


def _describe(result: LoadResult) -> str:
    columns = ", ".join(result.field_map.get(f, f) for f in schema_fields(result.schema) if f in result.field_map)
    return f"{result.schema.value}: {columns}"


def task_problems(task: str, train: LoadResult) -> list[str]:
    """The task does not fit the training data's schema.

    SFT learns from any schema (text, prompt/completion, alpaca, chat, and text+label as
    "answer with the label"); classification needs a label per text.
    """
    if task == "classification" and train.schema != Schema.TEXT_LABEL:
        return [f"{train.path}: task classification needs text and label columns, but the data is {_describe(train)}. "
                "Fix: use task: sft for this data, or map your columns with data.fields (e.g. "
                "--set data.fields.text=review --set data.fields.label=sentiment)."]  # fmt: skip
    return []


def eval_problems(train: LoadResult, ev: LoadResult) -> list[str]:
    """The eval file's schema differs from the training data's.

    The evaluation scores the tuned model on the kind of example it trained on: with another
    schema it would read other fields (or none) and the verdict would measure something else.
    """
    if ev.schema == train.schema:
        return []
    shared = set(ev.field_map.values()) & set(train.field_map.values())
    what = f"shares only {sorted(shared)} with it" if shared else "shares no field with it"
    return [f"data.eval_path {ev.path}: the eval file is {_describe(ev)}, the training data {train.path} is "
            f"{_describe(train)}; the eval file {what}. Fix: write the eval file with the training data's columns "
            f"({', '.join(schema_fields(train.schema))}), or unset data.eval_path to cut the test split from data.path."]  # fmt: skip


def label_problems(train: Sequence[Record], train_name: str, ev: Sequence[Record] | None, eval_name: str | None,
                   *, labels: list[str] | None = None) -> tuple[list[str], list[str]]:  # fmt: skip
    """Label sets that cannot train a classifier, or that the evaluation cannot use.

    Labels compare as text (``1`` and ``"1"`` are one label), as training maps them.

    Returns:
        ``(problems, warnings)``: fewer than two labels in training, labels outside
        ``model.labels``, eval labels never seen in training (problems); training labels
        absent from the eval file, which the evaluation then does not measure (a warning).
    """
    problems: list[str] = []
    warnings: list[str] = []
    counts = Counter(str(r.fields["label"]) for r in train)
    if len(counts) < 2:
        only = next(iter(counts), None)
        problems.append(f"{train_name}: every one of its {len(train)} records has the label {only!r}; a classifier "
                        "needs at least two labels to learn anything. Fix: check the label column (data.fields.label) "
                        "or add records of the other classes.")  # fmt: skip
    if labels is not None and (outside := sorted(set(counts) - set(labels))):
        problems.append(f"{train_name}: labels {outside} are not in model.labels {labels}. Fix: add them to "
                        "model.labels, or unset model.labels to take the labels from the data.")  # fmt: skip
    if ev is None:
        return problems, warnings
    known = set(labels) if labels is not None else set(counts)
    ev_counts = Counter(str(r.fields["label"]) for r in ev)
    unseen = sorted(set(ev_counts) - known)
    if unseen:
        examples = ", ".join(f"{r.id} ({r.fields['label']!r})" for r in ev if str(r.fields["label"]) in unseen[:3])
        examples = examples if len(examples) < 300 else examples[:297] + "..."
        problems.append(f"{eval_name}: {sum(ev_counts[u] for u in unseen)} eval record(s) carry labels {unseen} that the "
                        f"training data {train_name} never shows (its labels: {sorted(known)}), so the model cannot "
                        f"predict them; e.g. {examples}. Fix: use the same label names in both files, or add training "
                        "records of those labels.")  # fmt: skip
    missing = sorted(set(counts) - set(ev_counts))
    if missing and not unseen:
        warnings.append(f"{eval_name}: no eval record has the label(s) {missing} that training shows; the evaluation "
                        "does not measure them.")  # fmt: skip
    return problems, warnings


def split_size_problems(n: int, val_fraction: float, test_fraction: float | None, *, strata: Counter[str] | None = None,
                        source: str = "the data") -> list[str]:  # fmt: skip
    """Splits that will surely be empty, from the record count and the fractions alone.

    :func:`~tuneproof.train.split_records` gives each split (per label when stratified)
    ``round(n * fraction)`` records at most, and groups of duplicates only move records to
    train; so a split whose rounded target is 0 in every stratum will be empty. Curation
    can only remove more. ``test_fraction`` None means the test set comes from an eval file.
    """
    sizes = list(strata.values()) if strata else [n]
    problems = []
    if test_fraction == 0:
        problems.append(f"{source}: data.test_fraction=0 and no data.eval_path, so `tuneproof run` has no test split to "
                        "judge the tuned model on. Fix: set data.test_fraction (e.g. 0.1) or data.eval_path.")  # fmt: skip
    for name, frac, key in (("validation", val_fraction, "val_fraction"), ("test", test_fraction, "test_fraction")):
        if frac and sum(round(s * frac) for s in sizes) == 0:
            per = " (cut per label: " + ", ".join(f"{k}: {v}" for k, v in strata.items()) + ")" if strata else ""
            need = max(1, round(0.5 / frac + 0.5))
            problems.append(f"{source}: {n} readable records{per} with data.{key}={frac:g} leave the {name} split "
                            f"empty. Fix: add data (at least ~{need} records{' per label' if strata else ''}), or "
                            f"raise data.{key}.")  # fmt: skip
    return problems


def check_curated(curate_dir: Path) -> None:
    """Stop when curation kept no record, naming what it removed, before the split reads its empty output.

    Raises:
        DataError: ``manifest.json`` in ``curate_dir`` counts 0 kept records.
    """
    if _manifest_counts(curate_dir).get("kept", 1) == 0:
        note = _curation_note(curate_dir)
        raise inputs_error([f"{curate_dir / 'kept.jsonl'}: the training split would be empty{note}. Fix: check the "
                            "data source, or keep more records (audit.decisions.<check>: flag)."])  # fmt: skip


def check_split(counts: dict[str, int], train: Sequence[Record], test: Sequence[Record], *, task: str,
                source: Path, curate_dir: Path | None = None, test_name: str = "the test split") -> None:  # fmt: skip
    """After curation and the split: stop before any model loads when a split cannot serve.

    Raises:
        DataError: a split is empty (naming curation's removals when curation ran), or the
            classification training split lost all but one label, or the test split holds
            labels the training split lacks.
    """
    problems = []
    empty = [p for p in ("train", "val", "test") if not counts.get(p)]
    if empty:
        removed = _curation_note(curate_dir)
        problems.append(f"{source}: after {'curation and ' if removed else ''}the split, {', '.join(empty)} "
                        f"{'is' if len(empty) == 1 else 'are'} empty (counts {counts}){removed}. Fix: add data, raise "
                        "data.val_fraction / data.test_fraction, or keep more records (audit.decisions.<check>: flag).")  # fmt: skip
    if task == "classification" and train:
        p, _ = label_problems(train, f"{source} (training split)", test or None, test_name)
        problems += p
    if problems:
        raise inputs_error(problems)


def _manifest_counts(curate_dir: Path) -> dict[str, Any]:
    try:
        return dict(json.loads((curate_dir / "manifest.json").read_text())["counts"])
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _curation_note(curate_dir: Path | None) -> str:
    """``: curation removed R of N rows (by check)`` when a curation manifest is there."""
    if curate_dir is None or not (curate_dir / "manifest.json").is_file():
        return ""
    c = _manifest_counts(curate_dir)
    if not c:
        return ""
    return (f"; curation kept {c.get('kept')} of {c.get('input_rows')} rows and removed {c.get('removed')} "
            f"{c.get('removed_by_check', {})} (see {curate_dir / 'removed.jsonl'})")  # fmt: skip
