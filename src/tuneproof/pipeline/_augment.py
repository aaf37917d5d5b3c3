"""The augmentation A/B: each method against no augmentation, kept only when it helps beyond noise.

Augmentation adds made-up records ("synonym replacement can introduce noise"), so the
burden of proof is on it, the opposite of curation's A/B: a method is kept only when the
whole confidence interval of (its validation loss - the plain arm's) lies below 0
(:func:`~tuneproof.pipeline._ab.ab_decision` with ``keep_when="better"``), and that keep
holds for a second pair of trainings with another seed
(:func:`~tuneproof.pipeline._ab.replicated`). Every arm trains the same steps at the same
rate (the lr sweep's budget, :func:`~tuneproof.pipeline._ab.ab_budget`), so the augmented
arm sees as many examples as the plain one, and all are scored on the same validation
records, which augmentation never touches.

The plain arm is the training file the run would use anyway (the split's, or the raw data
when the curation A/B reverted curation); augmented rows are added to a copy of it. When
several methods are kept, only the one with the largest gain is used: their combination
was not tested.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tuneproof._io import atomic_write
from tuneproof.config import RunConfig
from tuneproof.data import load_records
from tuneproof.pipeline._ab import ab_decision, replicated, train_arm, write_val_losses

__all__ = ["AUGMENTED_TRAIN", "AUGMENT_FILE", "augment", "augmentation_ab", "augmented_train_path", "print_augment"]

AUGMENT_FILE = "augment.json"
AUGMENTED_TRAIN = "train_augmented.jsonl"  # the plain training rows plus the kept method's rows
PLAIN = "plain"
ArmTrainer = Callable[..., tuple[dict[str, np.ndarray], dict[str, Any]]]


def _write_rows(path: Path, base_text: str, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    extra = "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows)
    atomic_write(path, base_text + ("" if not base_text or base_text.endswith("\n") else "\n") + extra)
    return path


def _decide(cfg: RunConfig, losses: dict[str, np.ndarray], method: str, seed: int) -> dict[str, Any]:
    return ab_decision(losses[method], losses[PLAIN], a=method, b=PLAIN, confidence=cfg.eval.confidence,
                       resamples=cfg.eval.bootstrap, seed=seed, keep_when="better")  # fmt: skip


def _heldout_copies(cfg: RunConfig, rows: list[dict[str, Any]], heldout: list[Path], work: Path) -> set[int]:
    """Indices of augmented rows whose text is a validation/test record's, or a near copy of one
    (as the audit defines near copies): training on them would leak the records that score the run."""
    from tuneproof.pipeline._ab import _heldout_copies as copies_of

    if not rows:
        return set()
    tmp = _write_rows(work / "candidates.jsonl", "", rows)
    records = load_records(tmp).records
    line = [int(r.id.rsplit(":", 1)[1]) - 1 for r in records]  # each record's index in ``rows``
    held = [r for path in heldout if Path(path).is_file() for r in load_records(path).records]
    found = {line[k] for k in copies_of(records, held, cfg)} if held else set()
    tmp.unlink()
    return found


def _train_arms(cfg: RunConfig, arms: dict[str, Path], val_path: Path, out: Path, **kw: Any) -> tuple[dict, dict]:
    """Train and score each arm (the plain one first); per-record losses and each arm's summary."""
    records = load_records(val_path).records
    losses, info = {}, {}
    for name, path in arms.items():
        losses[name], info[name] = train_arm(cfg, name, path, val_path, records, out, **kw)
    write_val_losses(out / "val_losses.jsonl", records, losses)
    return losses, info


def _ab(cfg: RunConfig, train_path: Path, val_path: Path, files: dict[str, Path], out: Path, train_arms: ArmTrainer,
        **kw: Any) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:  # fmt: skip
    """Each method's decision (a keep replicated with another seed), and the arms' summaries."""
    losses, arms = train_arms(cfg, {PLAIN: train_path, **files}, val_path, out, **kw)
    results = {m: _decide(cfg, losses, m, cfg.train.seed) for m in files}
    kept = {m: files[m] for m, r in results.items() if r["decision"] == "keep"}
    if kept:
        # A keep changes the training data: it must hold for a second seed before it is acted on.
        again = cfg.model_copy(update={"train": cfg.train.model_copy(update={"seed": cfg.train.seed + 1})})
        losses2, _ = train_arms(again, {PLAIN: train_path, **kept}, val_path, out / "replication", **kw)
        for m in kept:
            second = _decide(again, losses2, m, again.train.seed)
            results[m] = replicated(results[m], second, change="keep", otherwise=f"{m} is not used")
    return results, arms


def augmentation_ab(
    cfg: RunConfig, train_path: Path, val_path: Path, out: Path, *, steps: int, lr: float, lr_source: str,
    test_path: Path | None = None, bf16: bool = False, parent_run_id: str | None = None, console: Any = None,
    train_arms: ArmTrainer | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Make each method's rows (:func:`tuneproof.augment.augmented_rows`), A/B them, write ``out/augment.json``.

    Args:
        cfg: the run's config (``augment`` lists the methods).
        train_path: the plain arm: the training rows the run uses without augmentation.
        val_path: the validation records every arm is scored on (never augmented).
        out: the stage's folder; ``out/<method>/train.jsonl`` is each method's arm, and
            ``out/train_augmented.jsonl`` the training file when a method is kept.
        steps, lr, lr_source: the A/B's budget and where its rate came from.
        test_path: the test records; with the validation records, no augmented row may copy them.
        bf16: paraphrase generation under bf16 autocast.
        parent_run_id, console: MLflow parent run; a rich console.
        train_arms: trains and scores a set of arms (default: :func:`~tuneproof.pipeline._ab.train_arm`
            for each), ``(cfg, {name: file}, val_path, out, steps=, lr=, parent_run_id=, console=) ->
            (losses, summaries)``.

    Returns:
        The content of augment.json: ``methods`` (per method: ``added``, ``sources``,
        ``unchanged``, ``rejected``, ``not_run``, ``kept`` and ``why``, and when it was tested the
        A/B's ``decision``, ``val_loss``, ``difference``, ``ci``, ``noise`` and ``replication``),
        ``used`` (the kept method or None), ``why``, ``train_file`` (None when none is kept),
        ``base_train``, ``base_records``, ``added``, ``arms``, ``steps``, ``lr``, ``lr_source``,
        ``val_records``.
    """
    from tuneproof.augment import augmented_rows

    out.mkdir(parents=True, exist_ok=True)
    (out / AUGMENTED_TRAIN).unlink(missing_ok=True)
    base_text = Path(train_path).read_text(encoding="utf-8")
    methods: dict[str, dict[str, Any]] = {}
    rows: dict[str, list[dict[str, Any]]] = {}
    for m in cfg.augment.methods:
        rows[m], methods[m] = augmented_rows(cfg, train_path, m, bf16=bf16)
        leaks = _heldout_copies(cfg, rows[m], [val_path, *([test_path] if test_path else [])], out)
        if leaks:
            rows[m] = [r for i, r in enumerate(rows[m]) if i not in leaks]
            methods[m]["rejected"]["same or near-same text as a validation/test record"] = len(leaks)
            methods[m]["added"] = len(rows[m])
        if methods[m]["not_run"] or not rows[m]:
            methods[m].update(kept=False, why=methods[m]["not_run"] or f"{m} changed no record, so there is nothing to test")
    files = {m: _write_rows(out / m / "train.jsonl", base_text, rows[m]) for m in rows if not methods[m].get("why")}
    arms: dict[str, Any] = {}
    if files:
        results, arms = _ab(cfg, Path(train_path), Path(val_path), files, out, train_arms or _train_arms, steps=steps,
                            lr=lr, parent_run_id=parent_run_id, console=console)  # fmt: skip
        for m, r in results.items():
            # ab_decision's "revert" means "use the plain arm": for a method, it is dropped.
            methods[m].update(r, kept=r["decision"] == "keep", decision="keep" if r["decision"] == "keep" else "drop")
    kept = sorted((methods[m]["difference"], m) for m in files if methods[m]["kept"])
    used = kept[0][1] if kept else None
    if used:
        _write_rows(out / AUGMENTED_TRAIN, base_text, rows[used])
    result = {
        "methods": methods, "used": used, "why": _why(methods, used), "train_file": str(out / AUGMENTED_TRAIN) if used else None,
        "base_train": str(train_path), "base_records": sum(1 for line in base_text.splitlines() if line.strip()),
        "added": len(rows[used]) if used else 0, "arms": arms, "steps": steps, "lr": lr, "lr_source": lr_source,
        "val_records": len(load_records(val_path).records), "val_file": str(val_path),
    }  # fmt: skip
    atomic_write(out / AUGMENT_FILE, json.dumps(result, indent=1, default=str) + "\n")
    return result


def _why(methods: dict[str, dict[str, Any]], used: str | None) -> str:
    kept = [m for m, r in methods.items() if r.get("kept")]
    if not used:
        return ("no method lowered the validation loss beyond noise (and held for a second seed): the training data is "
                "not augmented")  # fmt: skip
    others = [m for m in kept if m != used]
    also = (f"; {', '.join(others)} also helped, but a combination of methods was not tested, so only the largest gain "
            "is used") if others else ""  # fmt: skip
    return f"{used} lowered the validation loss beyond noise with two seeds: its rows join the training data{also}"


def augmented_train_path(cfg: RunConfig, augment_dir: Path) -> Path | None:
    """The augmented training file when this run's augment stage kept a method, else None.

    Only when the stage is on in ``cfg``: a stale ``augment.json`` from a run with other
    switches never changes the training data.
    """
    if not cfg.pipeline.stages.get("augment"):
        return None
    try:
        res = json.loads((augment_dir / AUGMENT_FILE).read_text())
    except (OSError, ValueError):
        return None
    path = augment_dir / AUGMENTED_TRAIN
    return path if res.get("used") and path.is_file() else None


def print_augment(console: Any, res: dict[str, Any]) -> None:
    """One line per method (records added, kept or not and why), then what the training uses."""
    for m, r in res["methods"].items():
        style = "green" if r.get("kept") else "yellow" if r.get("not_run") else "default"
        added = f"{r.get('added', 0)} records from {r.get('sources', 0)}"
        console.print(f"[{style}]  augment {m}: {added}; {'kept' if r.get('kept') else 'not used'}: {r.get('why')}[/{style}]",
                      highlight=False)  # fmt: skip
    console.print(f"  augment: {res['why']}" + (f" ({res['train_file']})" if res.get("train_file") else ""), highlight=False)


def augment(config: Any, *, overrides: list[str] | None = None, console: Any = None) -> dict[str, Any]:
    """``tuneproof augment``: the pipeline up to its ``augment`` stage, switched on; augment.json.

    The stages before it (audit, curate, split, ..., the lr sweep and the curation A/B, as
    configured) run or are reused when unchanged, exactly as ``tuneproof run`` would; a later
    ``tuneproof run`` with ``pipeline.stages.augment: true`` reuses this stage's result.

    Args:
        config: a :class:`RunConfig`, a YAML path or a mapping; ``augment.methods`` must list a method.
        overrides: dotted ``key=value`` overrides.
        console: a rich console.

    Returns:
        The content of ``runs/<name>/augment/augment.json`` (:func:`augmentation_ab`).

    Raises:
        ConfigError: a bad config, or no method listed. TuneproofError: a stage failed.

    Example:
        >>> augment("sentiment.yaml", overrides=["augment.methods=[swap, delete]"])["used"]  # doctest: +SKIP
        'swap'
    """
    from tuneproof.config import load_config
    from tuneproof.pipeline._run import run

    source = config.model_dump(mode="json") if isinstance(config, RunConfig) else config
    cfg = load_config(source, [*(overrides or []), "pipeline.stages.augment=true"])
    res = run(cfg, until="augment", console=console)
    return json.loads((res.run_dir / "augment" / AUGMENT_FILE).read_text())
