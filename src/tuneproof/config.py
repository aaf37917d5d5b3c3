"""Typed configuration: one small config per concern, composed into :class:`RunConfig`.

A ``tuneproof.yaml`` has one section per concern (``data``, ``model``, ``train``, ``audit``,
``search``, ``eval``, ``tracking``) plus ``name`` and ``task``. :func:`load_config`
validates every section, then the rules that span sections, and reports every problem
at once with its file line, field path, value and fix, before any model is loaded.

Functions take the section they need (``TrainConfig``, ``DataConfig``...), never the
whole ``RunConfig``.

Example:
    >>> from tuneproof.config import load_config
    >>> cfg = load_config("examples/qa_demo.yaml", overrides=["train.lr=3e-4"])
    >>> cfg.train.lr, cfg.model.method
    (0.0003, 'lora')
"""

from __future__ import annotations

import copy
import difflib
import math
import os
from pathlib import Path
from typing import Any, Literal, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tuneproof.errors import ConfigError

__all__ = [
    "AUDIT_CHECKS",
    "AUGMENT_METHODS",
    "SFT_METRICS",
    "CLASSIFICATION_METRICS",
    "SEARCHABLE_PARAMS",
    "AuditConfig",
    "AugmentConfig",
    "DataConfig",
    "EarlyStoppingConfig",
    "EvalConfig",
    "LoraConfig",
    "OverfitGuardConfig",
    "ModelConfig",
    "ParamRange",
    "RunConfig",
    "SearchConfig",
    "TrackingConfig",
    "TrainConfig",
    "load_config",
    "parse_overrides",
]

Task = Literal["sft", "classification"]

SFT_METRICS = ("exact_match", "token_f1", "rouge_l", "label_accuracy", "nll")
CLASSIFICATION_METRICS = ("accuracy", "macro_f1", "auroc")
# Names the search space may use. lora_* only make sense for method=lora.
SEARCHABLE_PARAMS = (
    "lr",
    "weight_decay",
    "dropout",
    "warmup_ratio",
    "batch_size",
    "epochs",
    "lora_r",
    "lora_alpha",
)


class _Section(BaseModel):
    # Unknown keys are errors: a typo such as `learning_rate:` must not be ignored silently.
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Section):
    """Where the data is and how to read and split it."""

    path: str = Field(
        description="training data: a .jsonl, .csv or .parquet file, or a directory saved "
        "with datasets' save_to_disk; relative paths are relative to the config file"
    )
    eval_path: str | None = Field(
        default=None,
        description="held-out evaluation data in the same formats: `tuneproof run` uses it as the "
        "test set as it stands (val is then cut from `path`); `tuneproof train` validates on it; "
        "when unset, val and test splits are cut from `path`",
    )
    fields: dict[str, str] = Field(
        default_factory=dict,
        description="map canonical field names to your columns, e.g. "
        "{prompt: question, completion: answer}; overrides schema detection",
    )
    split: str | None = Field(
        default=None, description="which split of a saved DatasetDict to read (default: train)"
    )
    val_fraction: float = Field(
        default=0.1, gt=0, lt=0.5, description="share of records held out for validation, in (0, 0.5)"
    )
    test_fraction: float = Field(
        default=0.1, ge=0, lt=0.5, description="share of records held out for the final test, in [0, 0.5)"
    )
    domain: str | None = Field(
        default=None, description="file of reference examples of the target domain, for the relevance check"
    )
    domain_text: str | None = Field(
        default=None, description="a sentence describing the target domain, for the relevance check"
    )

    @field_validator("fields")
    @classmethod
    def _known_canonical_names(cls, v: dict[str, str]) -> dict[str, str]:
        known = {"text", "label", "prompt", "completion", "instruction", "input", "output", "messages"}
        unknown = sorted(set(v) - known)
        if unknown:
            raise ValueError(
                f"unknown canonical field name(s) {unknown}; the keys must be among "
                f"{sorted(known)} and the values your column names"
            )
        return v

    @model_validator(mode="after")
    def _fractions_leave_training_data(self) -> DataConfig:
        if self.val_fraction + self.test_fraction >= 0.8:
            raise ValueError(
                f"val_fraction + test_fraction = {self.val_fraction + self.test_fraction:g} "
                "leaves under 20% of the data for training; lower them"
            )
        if self.domain and self.domain_text:
            raise ValueError("set either domain (a file of examples) or domain_text, not both")
        return self


class LoraConfig(_Section):
    """LoRA adapter settings, used when ``model.method`` is ``lora``."""

    r: int = Field(default=16, ge=1, le=1024, description="adapter rank, e.g. 8 to 64")
    alpha: int | None = Field(
        default=None, ge=1, description="scaling; unset means 2*r (the setting that works across tasks)"
    )
    dropout: float = Field(default=0.05, ge=0, lt=1, description="dropout on the adapter input, in [0, 1)")
    target_modules: list[str] | Literal["all-linear"] = Field(
        default="all-linear",
        description="module names to adapt, e.g. [q_proj, v_proj], or all-linear (attention and MLP)",
    )

    @property
    def resolved_alpha(self) -> int:
        return self.alpha if self.alpha is not None else 2 * self.r


class ModelConfig(_Section):
    """Which base model to start from and which parameters to train."""

    name: str = Field(
        default="smollm2-135m",
        description="a bundled name (smollm2-135m, minilm), a Hugging Face model directory, "
        "a .gguf file, or a hub id on machines with network",
    )
    method: Literal["full", "lora", "freeze"] = Field(
        default="lora",
        description="full: all weights; lora: low-rank adapters; freeze: only the top "
        "`trainable_blocks` blocks and the head",
    )
    lora: LoraConfig = Field(default_factory=LoraConfig, description="LoRA settings")
    trainable_blocks: int = Field(
        default=2, ge=1, description="for method=freeze: how many top transformer blocks to train"
    )
    max_length: int = Field(default=512, ge=8, description="tokens per example after truncation")
    labels: list[str] | None = Field(
        default=None,
        description="classification label names in index order; unset means sorted labels found in the data",
    )
    trust_remote_code: bool = Field(
        default=False, description="run code shipped with the model; leave false unless you trust it"
    )
    merge: bool = Field(
        default=False,
        description="for method=lora: also save the adapter merged into the base weights "
        "(a plain model directory, no PEFT needed to load it)",
    )


class EarlyStoppingConfig(_Section):
    """Stop when the validation score stops improving, and restore the best checkpoint.

    The score is what ``monitor`` names. ``auto`` means validation loss for SFT, and for
    classification the evaluation's metric (``eval.metric``: accuracy unless set) on the
    validation split, ties broken by the lower cross-entropy per record. Cross-entropy punishes every
    confident prediction on a wrong label, so under label noise it rises while the share of
    correct predictions still grows; the checkpoint is judged on what the verdict is about.
    """

    enabled: bool = Field(default=True, description="on by default whenever a validation split exists")
    patience: int = Field(default=3, ge=1, description="evaluations without improvement before stopping")
    min_delta: float = Field(
        default=0.0, ge=0, description="smallest improvement that counts: a decrease in loss, or a rise in the metric"
    )
    monitor: Literal["auto", "val_loss", "val_metric"] = Field(
        default="auto",
        description="what picks the best checkpoint and runs out the patience: val_loss, or val_metric "
        "(classification only: eval.metric on the validation split, ties broken by the lower "
        "cross-entropy per record); "
        "auto is val_metric for classification and val_loss for sft",
    )


class OverfitGuardConfig(_Section):
    """Flag overfitting from the train and validation loss seen at each evaluation."""

    enabled: bool = Field(default=True, description="watch every evaluation when a validation split exists")
    patience: int = Field(
        default=2, ge=1, description="flag when validation loss rose this many evaluations in a row "
        "while training loss kept falling"
    )
    max_gap_increase: float = Field(
        default=0.5,
        gt=0,
        description="flag when (val loss - train loss) has grown by more than this (in nats) "
        "since the first evaluation and validation loss has stopped improving",
    )


class TrainConfig(_Section):
    """Optimization hyperparameters for one training run."""

    lr: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description="learning rate, e.g. 2e-4 for LoRA or 2e-5 for full fine-tuning; "
        "unset means the lr-sweep's or tune's choice",
    )
    scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = Field(
        default="cosine", description="learning-rate schedule"
    )
    warmup_ratio: float = Field(default=0.03, ge=0, le=0.5, description="share of steps spent warming up, in [0, 0.5]")
    batch_size: int = Field(default=8, ge=1, description="examples per device per step")
    grad_accum: int = Field(default=1, ge=1, description="gradient accumulation steps")
    epochs: float = Field(default=3.0, gt=0, le=100, description="passes over the training data")
    max_steps: int | None = Field(default=None, ge=1, description="stop after this many steps (overrides epochs)")
    weight_decay: float = Field(default=0.0, ge=0, lt=1, description="AdamW weight decay, in [0, 1)")
    dropout: float | None = Field(
        default=None, ge=0, lt=1, description="model attention and hidden dropout; unset keeps the model's own"
    )
    seed: int = Field(default=42, ge=0, description="seed for data order, initialization and dropout")
    bf16: bool | Literal["auto"] = Field(
        default="auto", description="bf16 autocast; auto turns it on where the CPU or GPU supports it"
    )
    eval_steps: int | None = Field(
        default=None, ge=1, description="evaluate every N steps; unset means about 10 evaluations per run"
    )
    early_stopping: EarlyStoppingConfig = Field(default_factory=EarlyStoppingConfig)
    overfit_guard: OverfitGuardConfig = Field(default_factory=OverfitGuardConfig)
    max_batch_tokens: int | None = Field(
        default=None,
        ge=8,
        description="cap a batch at this many tokens (longest example x examples); batches are "
        "grouped by length, so short examples share a batch and padding stays small",
    )

    def planned_steps(self, n_records: float) -> int:
        """Optimizer steps of a training over ``n_records`` examples: ``max_steps``, else ``epochs`` passes.

        Example:
            >>> TrainConfig(batch_size=8, epochs=2).planned_steps(100)  # 13 batches x 2
            26
        """
        if self.max_steps:
            return self.max_steps
        return max(1, math.ceil(self.epochs * math.ceil(n_records / self.batch_size) / self.grad_accum))


class ParamRange(_Section):
    """One dimension of the search space: a numeric range or a list of choices."""

    low: float | None = Field(default=None, description="lower bound of a numeric range")
    high: float | None = Field(default=None, description="upper bound of a numeric range")
    log: bool = Field(default=False, description="sample on a log scale (use for lr)")
    choices: list[Any] | None = Field(default=None, description="a list of values to choose from")

    @model_validator(mode="after")
    def _range_or_choices(self) -> ParamRange:
        if self.choices is not None:
            if self.low is not None or self.high is not None:
                raise ValueError("give either low/high or choices, not both")
            if not self.choices:
                raise ValueError("choices is empty; list at least one value")
            return self
        if self.low is None or self.high is None:
            raise ValueError("a range needs both low and high (or give choices: [...])")
        if self.low >= self.high:
            raise ValueError(
                f"empty or inverted range: low={self.low:g} >= high={self.high:g}; swap them or widen the range"
            )
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0, got low={self.low:g}")
        return self


class SearchConfig(_Section):
    """Bayesian hyperparameter search (Optuna) and the learning-rate sweep before it."""

    n_trials: int = Field(default=12, ge=1, description="trials to run in this study")
    timeout_minutes: float | None = Field(default=None, gt=0, description="stop starting new trials after this")
    sampler: Literal["tpe", "random"] = Field(default="tpe", description="tpe (Bayesian) or random")
    pruner: Literal["hyperband", "median", "none"] = Field(
        default="hyperband", description="stop hopeless trials early; none disables pruning"
    )
    pruner_patience: int = Field(
        default=1,
        ge=0,
        description="evaluations a trial may go without improving before the pruner may stop it "
        "(validation curves are noisy; 0 is the most aggressive)",
    )
    baseline_first: bool = Field(
        default=True,
        description="run the sweep's rate for the training with the config's own values as trial 0, so that a short search "
        "always has the measured sweep winner to beat",
    )
    storage: str | None = Field(
        default=None,
        description="Optuna storage URL; unset means sqlite in the run directory; "
        "postgresql://... lets several workers share one study",
    )
    space: dict[str, ParamRange] = Field(
        default_factory=dict, description=f"override the default search space; keys among {SEARCHABLE_PARAMS}"
    )

    @field_validator("space")
    @classmethod
    def _known_params(cls, v: dict[str, ParamRange]) -> dict[str, ParamRange]:
        unknown = [k for k in v if k not in SEARCHABLE_PARAMS]
        if unknown:
            hints = [_did_you_mean(k, SEARCHABLE_PARAMS) for k in unknown]
            raise ValueError(
                f"unknown search parameter(s) {unknown}{''.join(hints)}; searchable: {list(SEARCHABLE_PARAMS)}"
            )
        return v


class EvalConfig(_Section):
    """How the tuned model is compared with its reference."""

    metric: str | None = Field(
        default=None,
        description=f"primary metric; sft: {list(SFT_METRICS)}, classification: "
        f"{list(CLASSIFICATION_METRICS)}; unset means nll for sft and accuracy for classification",
    )
    min_effect: float = Field(default=0.0, ge=0, description="smallest improvement worth calling 'improved'")
    confidence: float = Field(default=0.95, gt=0.5, lt=1, description="confidence level of the intervals")
    bootstrap: int = Field(default=1000, ge=1000, description="paired bootstrap resamples (at least 1000)")
    max_new_tokens: int = Field(default=32, ge=1, description="generation budget for the task metric")
    limit: int | None = Field(default=None, ge=1, description="score only the first N test records (quick checks)")
    forgetting_text: str | None = Field(
        default=None,
        description="general English text for the forgetting check: a .txt file (paragraphs) or a file "
        "with a text column, or xsum / fortunes for a real corpus from the package registries; "
        "unset skips the check, and eval.json says so",
    )
    forgetting_limit: float = Field(
        default=0.10, ge=0, description="flag forgetting when perplexity on general text rises by more than this share"
    )


# The audit's checks, in the order they run; `audit.decisions` keys must be among these.
AUDIT_CHECKS = (
    "exact_duplicate",
    "near_duplicate",
    "low_quality",
    "off_domain",
    "label_issue",
    "leakage",
    "too_long",
    "pii",
)
Decision = Literal["remove", "flag", "keep", "auto"]
# What "auto" means per task and check. Low-quality filters (repetition, symbols, mojibake)
# come from language-model pretraining: for SFT a garbled completion is something the model
# would learn to write, so it goes. A classifier must label such inputs at test time (spam is
# often garbled), so removing them shifts the training distribution away from the test's and
# can strip one class: on SpamAssassin they removed 41 of 81 spam emails and 24 of 169 ham.
AUTO_DECISIONS: dict[str, dict[str, Decision]] = {"sft": {"low_quality": "remove"},
                                                  "classification": {"low_quality": "flag"}}  # fmt: skip


def resolve_decision(decision: Decision, check: str, task: str) -> Decision:
    """The decision a check's findings get for this task ("auto" resolved; others as given)."""
    return AUTO_DECISIONS.get(task, {}).get(check, "flag") if decision == "auto" else decision


def _default_decisions() -> dict[str, Decision]:
    return {
        "exact_duplicate": "remove",
        "near_duplicate": "remove",
        "low_quality": "auto",  # SFT: remove (severe findings only); classification: flag. See AUTO_DECISIONS
        "off_domain": "remove",
        "label_issue": "flag",
        "leakage": "remove",
        "too_long": "flag",
        "pii": "flag",
    }


class AuditConfig(_Section):
    """Thresholds of the data audit and what curation does with each check's findings."""

    decisions: dict[str, Decision] = Field(
        default_factory=_default_decisions,
        description="per check: remove (curate drops the record), flag (kept, listed in the "
        "manifest), keep (ignored) or auto (by task: low_quality is removed for sft, flagged for "
        "classification); unset checks keep their defaults",
    )
    checks: list[str] = Field(
        default_factory=lambda: list(AUDIT_CHECKS), description="the checks to run, by name"
    )
    shingle_size: int = Field(
        default=3, ge=1, le=20, description="words per MinHash shingle (shorter texts use fewer); 3 found more edited copies than 5 in benchmarks/audit_throughput.py"
    )
    num_perm: int = Field(default=112, ge=16, le=1024, description="MinHash permutations; bands * rows_per_band")
    bands: int = Field(default=28, ge=1, description="LSH bands; more bands find pairs of lower similarity")
    jaccard_threshold: float = Field(
        default=0.5, gt=0, le=1, description="a candidate pair is a near duplicate when its real shingle Jaccard is at least this"
    )
    off_domain_threshold: float | None = Field(
        default=None,
        ge=-1,
        le=1,
        description="relevance score (mean cosine similarity to the nearest references, or to the "
        "description) below which a record is off-domain; unset "
        "calibrates it from the references and the data's own scores (with --domain-text: the low "
        "outliers of the data's own scores)",
    )
    off_domain_quantile: float = Field(
        default=0.02, gt=0, lt=0.5, description="calibration: the references' leave-one-out score quantile used as threshold, "
        "and the share of in-domain scores below the data's own fitted fence under a normal model"
    )
    calibration_rate: float = Field(
        default=0.02, gt=0, lt=0.5, description="low_quality calibration: the share of in-domain text the check may flag; "
        "its rules' thresholds are raised (never lowered) until it flags at most this share of the domain "
        "references, and to the data's own outlier fences (this share split over the rules, normal model)"
    )
    off_domain_k: int = Field(
        default=10, ge=1, le=100, description="a record's relevance is its mean cosine similarity to this many nearest "
        "domain references (capped at the references less one)"
    )
    embed_max_tokens: int = Field(default=128, ge=8, le=512, description="embedding truncation in tokens")
    embed_batch_size: int = Field(default=64, ge=1, description="records per embedding batch")
    label_folds: int = Field(default=5, ge=2, le=20, description="folds for out-of-fold label probabilities")
    leakage_ngram: int = Field(default=8, ge=3, le=50, description="words in a shared n-gram that counts as leakage")
    leakage_min_coverage: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="share of a record's content words inside n-grams shared with the eval data that makes it a "
        "near-copy (severe, removed); a smaller overlap is a warning (flagged, kept)",
    )
    max_tokens: int | None = Field(
        default=None, ge=8, description="token budget per record for too_long; unset reads the model's maximum"
    )
    min_words: int = Field(default=3, ge=1, description="records with fewer words are flagged as too short")
    max_check_removed_share: float = Field(
        default=0.2, gt=0, le=1, description="removal budget per check: when one check would remove more than this "
        "share of the rows beyond what its calibration expects, its rows are flagged and kept (not removed) and the "
        "preflight raises a high risk; 1 turns the per-check budget off"
    )
    max_removed_share: float = Field(
        default=0.4, gt=0, le=1, description="removal budget for all checks together: above it, the check with the "
        "largest share beyond its expected one is flagged and kept instead, until the rest fits; 1 turns it off"
    )

    @field_validator("decisions")
    @classmethod
    def _known_checks(cls, v: dict[str, Decision]) -> dict[str, Decision]:
        unknown = [k for k in v if k not in AUDIT_CHECKS]
        if unknown:
            hints = "".join(_did_you_mean(k, AUDIT_CHECKS) for k in unknown)
            raise ValueError(f"unknown check(s) {unknown}{hints}; checks: {list(AUDIT_CHECKS)}")
        return {**_default_decisions(), **v}

    @field_validator("checks")
    @classmethod
    def _known_check_names(cls, v: list[str]) -> list[str]:
        unknown = [k for k in v if k not in AUDIT_CHECKS]
        if unknown:
            hints = "".join(_did_you_mean(k, AUDIT_CHECKS) for k in unknown)
            raise ValueError(f"unknown check(s) {unknown}{hints}; checks: {list(AUDIT_CHECKS)}")
        return v

    @model_validator(mode="after")
    def _bands_divide_perms(self) -> AuditConfig:
        if self.num_perm % self.bands:
            raise ValueError(
                f"num_perm={self.num_perm} is not divisible by bands={self.bands}; "
                "choose bands that divide num_perm (e.g. 112 = 28 x 4 or 14 x 8)"
            )
        return self


class TrackingConfig(_Section):
    """Where runs are written and tracked."""

    runs_dir: str = Field(default="runs", description="directory for run outputs; relative to the config file")
    uri: str | None = Field(
        default=None, description="MLflow tracking URI; unset means sqlite:///<runs_dir>/mlflow.db"
    )
    experiment: str = Field(default="tuneproof", description="MLflow experiment name")

    def resolved_uri(self) -> str:
        """The MLflow tracking URI, defaulting to an SQLite file in ``runs_dir``."""
        if self.uri:
            return self.uri
        return f"sqlite:///{Path(self.runs_dir).resolve() / 'mlflow.db'}"


class DataValueConfig(_Section):
    """The data-value learning curve (``tuneproof data-value``; stage ``data_value``, off by default)."""

    fractions: list[float] = Field(
        default_factory=lambda: [0.1, 0.2, 0.4, 0.7, 1.0],
        description="shares of the training split to train on, each in (0, 1]; 1.0 (the full data, the reference "
        "of every comparison) is added when missing",
    )
    seeds: int = Field(default=2, ge=1, le=5, description="trainings per point, each with its own seed and random subset")
    budget: float = Field(
        default=2.0, gt=0, description="the whole curve trains about this many times the final training's examples"
    )

    @field_validator("fractions")
    @classmethod
    def _fractions(cls, v: list[float]) -> list[float]:
        bad = [f for f in v if not 0 < f <= 1]
        if bad:
            raise ValueError(f"fractions {bad} outside (0, 1]: give shares of the training split, e.g. [0.1, 0.2, 0.4, 0.7, 1.0]")
        return sorted({*v, 1.0})


class PipelineConfig(_Section):
    """What ``tuneproof run`` does: which stages run, the search budget, strictness."""

    stages: dict[str, bool] = Field(
        default_factory=lambda: dict(PIPELINE_STAGE_DEFAULTS),
        description="per stage: true runs it, false switches it off; unset stages keep their defaults",
    )
    sweep_lrs: list[float] | None = Field(default=None, description="learning rates of the sweep; default the sweep's grid")
    sweep_steps: int | None = Field(
        default=None, ge=1, description="training steps per swept rate; default the search budget's share"
    )
    tune_trials: int | None = Field(default=None, ge=1, description="search trials; default search.n_trials")
    tune_steps: int | None = Field(
        default=None, ge=1, description="training steps per trial; default the search budget's share (see search_budget)"
    )
    search_budget: float | None = Field(
        default=0.5,
        gt=0,
        description="the lr sweep and the trials together train at most this fraction of the final training's "
        "examples (half each; at least 4 steps per swept rate) unless sweep_steps/tune_steps are set; trials "
        "shorter than a quarter of the final training are skipped (fewer than 3 fit: the sweep takes the whole "
        "share, so the default 0.5 runs the sweep alone and 1.5 runs 3 trials); null: sweep steps "
        "min(max_steps, 30) and full-length trials",
    )
    strict: bool = Field(default=False, description="stop when the preflight finds a high risk")
    data_value: DataValueConfig = Field(
        default_factory=DataValueConfig, description="the learning curve of stage data_value: fractions, seeds, budget"
    )

    @field_validator("stages")
    @classmethod
    def _known_stages(cls, v: dict[str, bool]) -> dict[str, bool]:
        unknown = [k for k in v if k not in PIPELINE_STAGE_DEFAULTS]
        if unknown:
            hints = "".join(_did_you_mean(k, PIPELINE_STAGE_DEFAULTS) for k in unknown)
            raise ValueError(f"unknown stage(s) {unknown}{hints}; stages: {list(PIPELINE_STAGE_DEFAULTS)}")
        return {**PIPELINE_STAGE_DEFAULTS, **v}


PIPELINE_STAGE_DEFAULTS: dict[str, bool] = {
    "audit": True, "curate": True, "split": True, "baseline": True, "preflight": True,
    "lr_sweep": True, "curation_ab": True, "augment": False, "tune": True, "train": True, "evaluate": True,
    "data_value": False, "report": True,
}  # fmt: skip

# Word operations (EDA, Wei & Zou 2019) change a classification text; a paraphrase is written
# by the base model itself (an SFT prompt, or a classification text when the base is a generator).
AUGMENT_METHODS = ("synonym", "swap", "delete", "paraphrase")
WORD_METHODS = ("synonym", "swap", "delete")


class AugmentConfig(_Section):
    """Training-data augmentation (``tuneproof augment``; pipeline stage ``augment``, off by default).

    Each method is a hypothesis: a paired A/B against no augmentation at the same training
    budget, scored on the same validation records, keeps it only when it lowers the
    validation loss beyond noise. Augmented records only ever join the training split.
    """

    methods: list[Literal["synonym", "swap", "delete", "paraphrase"]] = Field(
        default_factory=list,
        description="methods to test: synonym (WordNet synonym replacement), swap and delete (random word swap "
        "and deletion) for classification; paraphrase (written by the base model) for sft, and for "
        "classification when the base model is a generator",
    )
    n_aug: int = Field(default=1, ge=1, le=16, description="new records per training record and method")
    alpha: float = Field(
        default=0.1, gt=0, le=0.5,
        description="share of a record's words a word operation changes (EDA's alpha; delete drops each word "
        "with this probability)",
    )  # fmt: skip
    max_length_ratio: float = Field(
        default=2.0, gt=1,
        description="a paraphrase more than this factor longer or shorter than its source, in words, is rejected "
        "(the model continued or answered instead of rewording)",
    )  # fmt: skip
    wordnet: str | None = Field(
        default=None,
        description="folder of the WordNet 3.0 database (index.noun, data.noun...) for synonym; default "
        "$TUNEPROOF_WORDNET, else /usr/share/wordnet (Debian's wordnet-base)",
    )

    @field_validator("methods")
    @classmethod
    def _each_once(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"{v} names a method twice; list each once")
        return v


class RunConfig(_Section):
    """One fine-tuning project: the sections above, composed (not inherited)."""

    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="run name: letters, digits, '.', '_' and '-'; outputs go to <runs_dir>/<name>",
    )
    task: Task = Field(description="sft (causal LM: instructions, chat, QA, summaries) or classification")
    data: DataConfig
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    search: SearchConfig = Field(default_factory=SearchConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    audit: AuditConfig = Field(default_factory=AuditConfig)
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)

    @model_validator(mode="after")
    def _absolute_runs_dir(self) -> RunConfig:
        # Paths written in a config file are already resolved against its folder; the
        # default "runs" is relative to the working directory. Either way, store it absolute.
        self.tracking.runs_dir = str(Path(self.tracking.runs_dir).resolve())
        return self

    @property
    def run_dir(self) -> Path:
        return Path(self.tracking.runs_dir) / self.name

    @property
    def primary_metric(self) -> str:
        return self.eval.metric or ("nll" if self.task == "sft" else "accuracy")

    @property
    def monitors_metric(self) -> bool:
        """Whether the training picks its best checkpoint by ``primary_metric`` (else by val loss)."""
        monitor = self.train.early_stopping.monitor
        return self.task == "classification" and monitor in ("auto", "val_metric")

    @property
    def audit_for_run(self) -> AuditConfig:
        """The audit settings, with ``too_long`` measured against this run's ``model.max_length``
        unless ``audit.max_tokens`` is set."""
        if self.audit.max_tokens is not None:
            return self.audit
        return self.audit.model_copy(update={"max_tokens": self.model.max_length})

    def to_yaml(self) -> str:
        """The config as YAML, with defaults filled in (what a run actually used)."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


_SECTIONS: dict[str, type[_Section]] = {
    "data": DataConfig,
    "model": ModelConfig,
    "train": TrainConfig,
    "search": SearchConfig,
    "eval": EvalConfig,
    "tracking": TrackingConfig,
    "audit": AuditConfig,
    "pipeline": PipelineConfig,
    "augment": AugmentConfig,
}
_TOP_LEVEL = ("name", "task", *_SECTIONS)
# Fields that hold file paths: resolved relative to the config file, so a config works
# from any working directory.
# eval.forgetting_text may name a real corpus instead of a file (tuneproof.evaluate CORPORA).
FORGETTING_CORPORA = ("xsum", "fortunes")
_PATH_FIELDS = {
    "data": ("path", "eval_path", "domain"),
    "eval": ("forgetting_text",),
    "tracking": ("runs_dir",),
    "augment": ("wordnet",),
}


def load_config(
    source: str | os.PathLike | dict[str, Any],
    overrides: list[str] | None = None,
) -> RunConfig:
    """Read, override and validate a config; report every problem at once.

    Args:
        source: a YAML file path, or an already-parsed mapping.
        overrides: dotted ``key=value`` strings, e.g. ``["train.lr=3e-4"]``; values are
            parsed as YAML, so ``3e-4``, ``true`` and ``[q_proj, v_proj]`` work.

    Returns:
        The validated config, with relative paths resolved against the config's folder.

    Raises:
        ConfigError: listing every problem, each with its line, field path, value and fix.

    Example:
        >>> cfg = load_config({"name": "x", "task": "sft", "data": {"path": "d.jsonl"}})
        >>> cfg.train.batch_size
        8
    """
    problems: list[str] = []
    if isinstance(source, dict):
        # Deep copy: overrides and path resolution must not change the caller's mapping.
        raw, lines, label, base = copy.deepcopy(source), {}, "<config>", Path.cwd()
    else:
        path = Path(source).expanduser()
        label, base = str(path), path.resolve().parent
        raw, lines = _read_yaml(path)

    override_lines: dict[str, str] = {}
    for key, value, text in parse_overrides(overrides or [], problems):
        if _set_dotted(raw, key, value, problems, text):
            override_lines[key] = text

    def where(loc: str) -> str:
        # Point at what the user typed: the override if there was one, else the YAML line.
        for key, text in override_lines.items():
            if loc == key or loc.startswith(key + ".") or key.startswith(loc + "."):
                return f"(from --set {text}) "
        line = _nearest_line(lines, loc)
        return f"line {line}: " if line else ""

    unknown_top = [k for k in raw if k not in _TOP_LEVEL]
    for k in unknown_top:
        problems.append(
            f"{where(k)}{k}: unknown section{_did_you_mean(k, _TOP_LEVEL)}; "
            f"the config has: {', '.join(_TOP_LEVEL)}. Fix: remove or rename it."
        )

    sections: dict[str, Any] = {}
    for name, cls in _SECTIONS.items():
        value = raw.get(name)
        if value is None:
            if name == "data":
                problems.append(
                    "data: missing. Fix: add a data section, e.g. `data: {path: train.jsonl}` "
                    "(a .jsonl, .csv, .parquet file or a datasets directory)."
                )
            continue
        if not isinstance(value, dict):
            problems.append(
                f"{where(name)}{name}: expected a mapping of settings, got {_show(value)}. "
                f"Fix: write it as `{name}:` followed by indented `key: value` lines."
            )
            continue
        _resolve_paths(name, value, base)
        try:
            sections[name] = cls.model_validate(value)
        except ValidationError as exc:
            problems.extend(_format_errors(exc, name, cls, where))

    top = {k: raw.get(k) for k in ("name", "task")}
    if top["name"] is None:
        problems.append("name: missing. Fix: add `name: my-run` (outputs go to runs/<name>).")
    if top["task"] is None:
        problems.append("task: missing. Fix: add `task: sft` or `task: classification`.")
    for key in ("name", "task"):
        if top[key] is None:
            continue
        try:
            # Validate the one top-level field alone so other sections' errors don't hide it.
            RunConfig.__pydantic_validator__.validate_assignment(
                RunConfig.model_construct(), key, top[key]
            )
        except ValidationError as exc:
            problems.extend(_format_errors(exc, "", RunConfig, where))

    problems.extend(_cross_section_problems(top.get("task"), sections, where))

    if problems:
        raise ConfigError(label, problems)
    return RunConfig(name=top["name"], task=top["task"], **sections)


def parse_overrides(
    overrides: list[str], problems: list[str]
) -> list[tuple[str, Any, str]]:
    """Split ``key=value`` overrides; malformed ones are appended to ``problems``."""
    parsed = []
    for text in overrides:
        key, sep, value_text = text.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            problems.append(
                f"--set {text!r}: not of the form section.field=value. "
                "Fix: write e.g. `--set train.lr=3e-4`."
            )
            continue
        try:
            value = yaml.safe_load(value_text) if value_text.strip() else None
        except yaml.YAMLError as exc:
            # A ReaderError (a control character) has no .problem; its text says which character.
            problems.append(f"--set {text!r}: the value is not valid YAML ({getattr(exc, 'problem', None) or exc}). Fix: quote it.")
            continue
        parsed.append((key, value, text))
    return parsed


def _read_yaml(path: Path) -> tuple[dict[str, Any], dict[str, int]]:
    if not path.exists():
        raise ConfigError(str(path), [f"file not found. Fix: check the path (working directory: {Path.cwd()})."])
    if path.is_dir():
        raise ConfigError(str(path), ["is a directory, not a YAML file. Fix: pass the tuneproof.yaml inside it."])
    text = path.read_text(encoding="utf-8", errors="replace")
    if not text.strip():
        raise ConfigError(str(path), ["the file is empty. Fix: start from a file in examples/."])
    try:
        node = yaml.compose(text)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(
            str(path), [f"{at}invalid YAML: {problem}. Fix: check the indentation and quoting there."]
        ) from None
    if not isinstance(raw, dict):
        raise ConfigError(
            str(path), [f"the top level must be a mapping of sections, got {_show(raw)}. Fix: see examples/."]
        )
    return raw, _line_index(node)


def _line_index(node: Any, prefix: str = "") -> dict[str, int]:
    """Map dotted key paths to their 1-based line in the YAML text."""
    out: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = f"{prefix}{key_node.value}"
            out[key] = key_node.start_mark.line + 1
            out.update(_line_index(value_node, key + "."))
    return out


def _nearest_line(lines: dict[str, int], loc: str) -> int | None:
    while loc:
        if loc in lines:
            return lines[loc]
        loc = loc.rpartition(".")[0]
    return None


def _set_dotted(raw: dict[str, Any], key: str, value: Any, problems: list[str], text: str) -> bool:
    node = raw
    parts = key.split(".")
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            problems.append(
                f"--set {text!r}: {'.'.join(parts[: i + 1])} is {_show(child)}, not a section, "
                "so it has no fields to set. Fix: check the key path."
            )
            return False
        node = child
    node[parts[-1]] = value
    return True


def _resolve_paths(section: str, values: dict[str, Any], base: Path) -> None:
    for key in _PATH_FIELDS.get(section, ()):
        v = values.get(key)
        if section == "eval" and v in FORGETTING_CORPORA:
            continue  # a corpus name, not a file
        if isinstance(v, str) and v and "://" not in v:
            p = Path(os.path.expandvars(v)).expanduser()
            values[key] = str(p if p.is_absolute() else (base / p))


def _format_errors(
    exc: ValidationError, section: str, cls: type[BaseModel], where: Any
) -> list[str]:
    out = []
    for err in exc.errors(include_url=False):
        loc_parts = [str(p) for p in err["loc"]]
        loc = ".".join([section, *loc_parts] if section else loc_parts)
        field = _field_info(cls, err["loc"])
        kind = err["type"]
        msg = err["msg"].removeprefix("Value error, ")
        if kind == "missing":
            fix = f"add `{loc_parts[-1]}:`" + (f" ({field.description})" if field and field.description else "")
            out.append(f"{where(loc)}{loc}: missing. Fix: {fix}.")
        elif kind == "extra_forbidden":
            parent = _model_at(cls, err["loc"][:-1])
            names = list(parent.model_fields) if parent else []
            out.append(
                f"{where(loc)}{loc}: unknown setting{_did_you_mean(loc_parts[-1], names)}. "
                f"Fix: remove it, or use one of: {', '.join(names)}."
            )
        else:
            hint = f" Fix: {field.description}." if field is not None and field.description else ""
            if not loc_parts:  # a model-level rule, e.g. fractions that leave no training data
                loc = section
            out.append(f"{where(loc)}{loc} = {_show(err.get('input'))}: {msg}.{hint}")
    return out


def _model_at(cls: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The config model that holds the field at ``loc`` (None past a plain value)."""
    current: Any = cls
    parts = iter(loc)
    for part in parts:
        info = current.model_fields.get(str(part))
        if info is None:
            return None
        current = _unwrap_model(info.annotation)
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        if get_origin(info.annotation) is dict:
            next(parts, None)  # a dict of models, e.g. search.space: skip the key
    return current


def _unwrap_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for a in getattr(annotation, "__args__", ()):
        if isinstance(a, type) and issubclass(a, BaseModel):
            return a
    return annotation


def _field_info(cls: type[BaseModel], loc: tuple) -> Any:
    if not loc:
        return None
    parent = _model_at(cls, loc[:-1]) if len(loc) > 1 else cls
    if parent is None:
        return None
    return parent.model_fields.get(str(loc[-1]))


def _cross_section_problems(task: Any, sections: dict[str, Any], where: Any) -> list[str]:
    """Rules that span sections. Each runs only when the sections it reads are valid."""
    problems = []
    ev, model, search = sections.get("eval"), sections.get("model"), sections.get("search")
    if task in ("sft", "classification") and ev is not None and ev.metric is not None:
        allowed = SFT_METRICS if task == "sft" else CLASSIFICATION_METRICS
        if ev.metric not in allowed:
            problems.append(
                f"{where('eval.metric')}eval.metric = {ev.metric!r}: not a metric for task {task}"
                f"{_did_you_mean(ev.metric, allowed)}. Fix: use one of {', '.join(allowed)}."
            )
    train = sections.get("train")
    if task == "sft" and train is not None and train.early_stopping.monitor == "val_metric":
        problems.append(
            f"{where('train.early_stopping.monitor')}train.early_stopping.monitor = 'val_metric': an SFT "
            "metric needs generation, which no evaluation during training runs. "
            "Fix: use val_loss (or auto, which means val_loss for sft)."
        )
    if model is not None and search is not None and model.method != "lora":
        lora_keys = [k for k in search.space if k.startswith("lora_")]
        if lora_keys:
            problems.append(
                f"{where('search.space')}search.space: {lora_keys} only apply to model.method=lora, "
                f"but the method is {model.method!r}. Fix: remove them or set model.method: lora."
            )
    if task == "classification" and model is not None and model.labels is not None:
        if len(set(model.labels)) != len(model.labels) or len(model.labels) < 2:
            problems.append(
                f"{where('model.labels')}model.labels = {model.labels}: needs at least 2 distinct labels. "
                "Fix: list each label once, or leave it unset to take the labels from the data."
            )
    problems.extend(_augment_problems(task, sections.get("augment"), sections.get("pipeline"), where))
    return problems


def _augment_problems(task: Any, aug: AugmentConfig | None, pipeline: PipelineConfig | None, where: Any) -> list[str]:
    """Augmentation methods that fit the task, and a switched-on stage that has methods to test."""
    problems = []
    if task == "sft" and aug is not None and (words := [m for m in aug.methods if m in WORD_METHODS]):
        problems.append(f"{where('augment.methods')}augment.methods: {words} change a classification text word by "
                        "word; an SFT record is augmented by paraphrasing its prompt. Fix: use [paraphrase] for sft.")  # fmt: skip
    if pipeline is not None and pipeline.stages.get("augment") and not (aug and aug.methods):
        problems.append(f"{where('pipeline.stages.augment')}pipeline.stages.augment is true, but augment.methods "
                        "lists no valid method, so there is nothing to test. Fix: add e.g. `augment: {methods: [synonym, swap, delete]}` "
                        "(classification) or `[paraphrase]` (sft), or switch the stage off.")  # fmt: skip
    return problems


def _did_you_mean(word: str, options: Any) -> str:
    match = difflib.get_close_matches(str(word), [str(o) for o in options], n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
