"""The pipeline's compute budget: the final training's steps, and the search's share of them.

Two rules, both in training tokens (steps x batch x tokens per example):

- **The final training's budget is counted over the data as given.** ``train.epochs`` is
  what the user planned for ``data.path``; curation decides *which* examples train, not
  *how much training* the model gets. Without this, every removed record also removed steps
  (a curated run of 40 steps against 45 uncurated), and runs ended still improving. The
  count is in tokens, not records: curation that removes short records (fortunes among news
  articles) leaves longer examples, and the same number of records would cost more
  (measured, outcome summarization seed 2: 1.46x the uncurated run's steps but 1.54x its
  tokens). ``curation_factor`` is tokens as given / tokens kept, each record counted at most
  ``model.max_length`` as training truncates it.
- **The search costs a fixed share of the final training** (``pipeline.search_budget``,
  default 0.5): the lr sweep and the trials together train at most that many examples,
  half each, unless ``pipeline.sweep_steps`` / ``tune_steps`` are set. The whole run then
  costs at most 1.5x one training of the plan, except for small trainings, where the sweep's
  floor of ``MIN_SWEEP_STEPS`` per rate costs more.
- **A trial must be long enough to rank configurations**: at least ``MIN_TRIAL_FRACTION`` of
  the final training, and a search at least ``MIN_TUNE_TRIALS`` of them (the baseline and two
  proposals). When the trials' share affords fewer, the search trials are skipped and the lr
  sweep takes the whole share; the final training then uses the sweep's rate for it. Measured
  (outcome --quick, docs/benchmarks/): trials of 2-7 steps ranked by noise; the baseline trial won
  6 of 10 runs, and two of the four proposals that won made the final training worse. At the
  default budget (0.5) the search is the lr sweep alone; ``search_budget: 1.5`` runs 3 trials.
"""

from __future__ import annotations

import functools
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuneproof.config import RunConfig
from tuneproof.errors import DataError, ModelLoadError

__all__ = ["MIN_SWEEP_STEPS", "MIN_TRIAL_FRACTION", "MIN_TUNE_TRIALS", "Plan", "curation_factor", "example_lengths",
           "final_steps", "plan", "read_jsonl", "sample_records", "search_plan"]

MIN_SWEEP_STEPS = 4
MIN_TRIAL_FRACTION = 0.25  # of the final training's steps
MIN_TUNE_TRIALS = 3  # the baseline trial and two proposals
SAMPLE_RECORDS = 2000  # records tokenized per set to estimate its mean length


def _record_text(row: Any) -> str:
    """The text a record trains on, for length estimates (messages, prompt/completion or text fields)."""
    if not isinstance(row, dict):
        return ""
    if "messages" in row and isinstance(row["messages"], list):
        return " ".join(str(m.get("content", "")) for m in row["messages"] if isinstance(m, dict))
    keys = ("prompt", "completion", "instruction", "input", "output", "text")
    known = [str(row[k]) for k in keys if row.get(k)]
    return " ".join(known or [v for v in row.values() if isinstance(v, str)])


def example_lengths(cfg: RunConfig, rows: list[Any], *, cap: bool = True) -> list[int]:
    """Tokens per record as training encodes it: the chat template or special tokens included.

    ``cap``: cut at ``model.max_length`` as training does; without it, the lengths before the
    cut, to count what truncation would lose. Records the loader would reject are left out.
    Without a loadable tokenizer or a schema that fits: the text's tokens plus a few for the
    template, or 1.3 tokens a word.
    """
    return _example_lengths(str(cfg.model.name), cfg.model.trust_remote_code, cfg.task, rows,
                            cfg.model.max_length if cap else None, tuple(sorted(cfg.data.fields.items())))  # fmt: skip


@functools.lru_cache(maxsize=2)
def _tokenizer(model: str, trust: bool) -> Any:
    from tuneproof.models import load_tokenizer

    return load_tokenizer(model, trust_remote_code=trust)


def _lengths(model: str, trust: bool, task: str, texts: list[str]) -> list[int]:
    extra = 12 if task == "sft" else 2
    if not texts:
        return []
    try:
        tok = _tokenizer(model, trust)
    except ModelLoadError:
        return [int(len(t.split()) * 1.3) + extra for t in texts]
    return [len(ids) + extra for ids in tok(texts, add_special_tokens=False)["input_ids"]]


def sample_records(rows: list[Any], n: int = SAMPLE_RECORDS) -> list[Any]:
    """At most ``n`` rows spread evenly over the list (files are often ordered by source)."""
    step = max(1, math.ceil(len(rows) / n))
    return rows[::step]


def read_jsonl(path: Path) -> list[Any]:
    """The rows of a JSON-lines file; none when it does not exist."""
    if not path.is_file():
        return []
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@functools.lru_cache(maxsize=8)
def _token_factor(curate_dir: str, stamp: tuple[int, int], model: str, trust: bool, max_length: int, task: str,
                  fields: tuple[tuple[str, str], ...]) -> float | None:  # fmt: skip
    d = Path(curate_dir)
    counts = json.loads((d / "manifest.json").read_text())["counts"]
    kept, removed = read_jsonl(d / "kept.jsonl"), [r.get("record") for r in read_jsonl(d / "removed.jsonl") if isinstance(r, dict)]
    if not kept:
        return None

    def mean_tokens(rows: list[Any]) -> float:
        lengths = _example_lengths(model, trust, task, sample_records(rows), max_length, fields)
        return sum(lengths) / len(lengths) if lengths else 0.0

    t_kept = int(counts["kept"]) * mean_tokens(kept)
    t_removed = int(counts["removed"]) * mean_tokens(removed) if removed else 0.0
    return (t_kept + t_removed) / t_kept if t_kept > 0 else None


def _example_lengths(model: str, trust: bool, task: str, rows: list[Any], max_length: int | None,
                     fields: tuple[tuple[str, str], ...]) -> list[int]:  # fmt: skip
    lengths = _encoded_lengths(model, trust, task, rows, max_length, dict(fields))
    if lengths is None:  # no tokenizer or no readable record: the text estimate
        lengths = _lengths(model, trust, task, [_record_text(r) for r in rows])
        if max_length is not None:
            lengths = [min(n, max_length) for n in lengths]
    return lengths


def _encoded_lengths(model: str, trust: bool, task: str, rows: list[Any], max_length: int | None,
                     fields: dict[str, str]) -> list[int] | None:  # fmt: skip
    """Tokens per row as training encodes it (chat template, special tokens, the cut at ``max_length``).

    Measured, outcome qa seed 1: the text alone plus a fixed 12 for the template gave a factor
    of 1.32 where the training's own examples give 1.29, because SmolLM2's template adds 32
    tokens to every example, which dilutes the difference between short and long
    records; the final training then spent 2% more tokens than the data as given.
    """
    from tuneproof.data import Record
    from tuneproof.data._schema import RowProblem, resolve_schema, validate_row

    objects = [r for r in rows if isinstance(r, dict)]
    try:
        tok = _tokenizer(model, trust)
        schema, field_map = resolve_schema(dict.fromkeys(k for r in objects for k in r), fields or None, None)
    except (ModelLoadError, DataError):  # no tokenizer loads here, or no schema fits the rows: the caller estimates from the text
        return None
    records = []
    for i, row in enumerate(objects):
        try:
            records.append(Record(f"sample:{i}", schema, validate_row(row, schema, field_map)))
        except RowProblem:
            continue
    if not records:
        return None
    limit = max_length or sys.maxsize
    if task == "sft":
        from tuneproof.train.sft import encode_sft

        return [len(encode_sft(r, tok, limit)[0]["input_ids"]) for r in records]
    return [min(limit, len(tok(str(r.text), add_special_tokens=True)["input_ids"])) for r in records]


def curation_factor(curate_dir: Path | None, cfg: RunConfig | None = None) -> float:
    """Training tokens as given / training tokens kept by curation (1.0 when curation did not run or kept all).

    Each record counts its tokens as training encodes it, up to ``model.max_length`` (the
    model's tokenizer and chat template on up to ``SAMPLE_RECORDS`` records of each set).
    Records as given / kept when there is no config or the curated files are missing.
    """
    manifest = curate_dir / "manifest.json" if curate_dir else None
    if manifest is None or not manifest.is_file():
        return 1.0
    counts = json.loads(manifest.read_text())["counts"]
    kept, removed = int(counts["kept"]), int(counts["removed"])
    if not kept or not removed:
        return 1.0
    if cfg is not None and curate_dir is not None:
        files = [curate_dir / "kept.jsonl", curate_dir / "removed.jsonl"]
        if all(f.is_file() for f in files):
            stamp = (files[0].stat().st_mtime_ns, files[1].stat().st_mtime_ns)
            factor = _token_factor(str(curate_dir.resolve()), stamp, str(cfg.model.name), cfg.model.trust_remote_code,
                                   cfg.model.max_length, cfg.task, tuple(sorted(cfg.data.fields.items())))
            if factor is not None:
                return factor
    return (kept + removed) / kept


def final_steps(cfg: RunConfig, n_train: int, factor: float = 1.0) -> int:
    """Optimizer steps of the final training at the config's batch size.

    ``train.max_steps`` when set; else ``train.epochs`` passes over the training split as it
    would have been without curation: ``n_train x factor`` records of the kept records' mean
    length, the tokens of the data as given (see ``curation_factor``).
    """
    return cfg.train.planned_steps(n_train * factor)


def search_plan(cfg: RunConfig, final: int, n_lrs: int, n_trials: int) -> tuple[int | None, int | None, int, str | None]:
    """Steps per swept rate, steps per trial, the number of trials, and why the trials are skipped.

    The explicit ``pipeline`` values win; else the budget's share. ``None`` steps mean the
    stage's own default (``pipeline.search_budget: null``). ``n_trials`` comes back lowered to
    what the budget affords at ``MIN_TRIAL_FRACTION`` of the final training, or 0 with the
    reason when that is fewer than ``MIN_TUNE_TRIALS``; the sweep then gets the whole share.

    Example:
        >>> from tuneproof.config import load_config
        >>> cfg = load_config({"name": "x", "task": "sft", "data": {"path": "d.jsonl"}})
        >>> search_plan(cfg, 100, n_lrs=5, n_trials=12)[:3]  # 0.5 x 100 steps: one 25-step trial fits
        (10, None, 0)
    """
    pl = cfg.pipeline
    sweep, tune, skipped = pl.sweep_steps, pl.tune_steps, None
    if pl.search_budget is None:
        return sweep, tune, n_trials, None
    share = pl.search_budget * final
    if tune is None and n_trials > 0:
        trial = max(MIN_SWEEP_STEPS, math.ceil(MIN_TRIAL_FRACTION * final))
        affordable = math.floor(share / 2 / trial)
        if affordable < MIN_TUNE_TRIALS:
            skipped = (f"pipeline.search_budget {pl.search_budget:g} gives the trials {share / 2:g} of the final training's "
                       f"{final} steps: {affordable} trial(s) of {trial} steps ({MIN_TRIAL_FRACTION:.0%} of it, the least that "
                       f"ranks configurations), and a search needs {MIN_TUNE_TRIALS} (the baseline and two proposals); "
                       "the lr sweep takes the whole share and the final training uses its rate for the training. "
                       f"To search: pipeline.search_budget >= {2 * MIN_TUNE_TRIALS * MIN_TRIAL_FRACTION:g}, or set pipeline.tune_steps")  # fmt: skip
            n_trials = 0
        else:
            n_trials = min(n_trials, affordable)
            tune = math.floor(share / 2 / n_trials)
    # A rate is scored by its validation loss after its run; below a few steps that is mostly
    # the warm-up and the noise of one batch (measured: 1-3-step sweeps picked the smallest
    # rate), so the sweep gets at least MIN_SWEEP_STEPS per rate even past the budget.
    sweep_share = share if n_trials == 0 else share / 2
    sweep = sweep or max(MIN_SWEEP_STEPS, math.floor(sweep_share / max(1, n_lrs)))
    return sweep, tune, n_trials, skipped


@dataclass
class Plan:
    """A run's budget in steps at the config's batch size."""

    final: int  # the final training, counted over the data as given
    factor: float  # training tokens as given / tokens kept by curation
    sweep: int | None  # per swept rate; None: the sweep's default
    tune: int | None  # per trial; None: full length
    n_lrs: int  # swept rates
    n_trials: int  # search trials; 0: skipped (see tune_skipped)
    tune_skipped: str | None = None  # why the budget runs no search trials


def plan(cfg: RunConfig, n_train: int, curate_dir: Path | None) -> Plan:
    """The budget of a run whose training split holds ``n_train`` records (after curation in ``curate_dir``)."""
    from tuneproof.search import DEFAULT_SWEEP_GRID

    factor = curation_factor(curate_dir, cfg) if cfg.pipeline.stages["curate"] else 1.0
    final = final_steps(cfg, n_train, factor)
    n_lrs = len(cfg.pipeline.sweep_lrs or DEFAULT_SWEEP_GRID[cfg.model.method])
    n_trials = cfg.pipeline.tune_trials or cfg.search.n_trials
    sweep, tune, n_trials, skipped = search_plan(cfg, final, n_lrs, n_trials)
    return Plan(final, factor, sweep, tune, n_lrs, n_trials, skipped)
