"""SFT evaluation: the base zero-shot and the tuned model, scored in turn on the same examples."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tuneproof.evaluate._api import (
    FORGETTING_TEXTS,
    FORGETTING_TOKENS,
    GENERATION_METRICS,
    ModelRun,
    generation_scores,
    release,
)
from tuneproof.evaluate._bootstrap import paired_bootstrap
from tuneproof.evaluate._forgetting import forgetting_texts, perplexity_stat
from tuneproof.evaluate._loading import load_tuned
from tuneproof.evaluate._sft import generate, prompt_text, score_nll, sft_examples, text_nll
from tuneproof.models import inference_device, load_model

_SHOW_CHARS = 500


@dataclass
class SftScores:
    """One model's scores on the SFT examples: what both the baseline stage and :func:`run_sft` compute.

    Attributes:
        per_record: metric -> per-example scores (``nll``, and the generation metrics when the
            primary metric needs generations).
        metrics: metric -> value over the examples (``perplexity`` token-weighted).
        counts: completion tokens per example (the NLL's weights for perplexity).
        generations: the greedy generation per example, or None when not generated.
        details: ``prompts_truncated``, ``generation`` stats, ``prompt_format`` and ``example_prompt``.
    """

    per_record: dict[str, np.ndarray]
    metrics: dict[str, float | None]
    counts: list[int]
    generations: list[str] | None = None
    details: dict[str, Any] = field(default_factory=dict)


def score_sft_model(
    model: Any, tok: Any, examples: list, primary: str, cfg: Any,
    *, batch_size: int, max_length: int, bf16: bool, progress: Any = None, label: str = "",
) -> SftScores:  # fmt: skip
    """Score one loaded model on the examples: completion NLL, and greedy generations when ``primary`` needs them."""
    nll, counts, truncated = score_nll(
        model, tok, examples, max_length=max_length, batch_size=batch_size, bf16=bf16, progress=progress, label=label
    )
    details: dict[str, Any] = {
        "prompts_truncated": truncated,
        "prompt_format": "chat template" if getattr(tok, "chat_template", None) else "plain text",
        "example_prompt": prompt_text(tok, examples[0].messages)[:_SHOW_CHARS],
    }
    return sft_scores(nll, counts, _generate(model, tok, examples, primary, cfg, batch_size, max_length, bf16, progress,
                                              label, details), [ex.references for ex in examples], primary, details)  # fmt: skip


def _generate(model: Any, tok: Any, examples: list, primary: str, cfg: Any, batch_size: int, max_length: int,
              bf16: bool, progress: Any, label: str, details: dict[str, Any]) -> list[str] | None:  # fmt: skip
    if primary not in GENERATION_METRICS:
        return None
    outs, details["generation"] = generate(
        model, tok, examples, max_new_tokens=cfg.max_new_tokens, max_length=max_length,
        batch_size=batch_size, bf16=bf16, progress=progress, label=label,
    )  # fmt: skip
    return outs


def sft_scores(nll: list[float], counts: list[int], generations: list[str] | None, references: list[list[str]],
               primary: str, details: dict[str, Any]) -> SftScores:  # fmt: skip
    """The per-record scores and metrics from per-example NLL, token counts and generations.

    The one place the metrics are computed, so scores read back from the baseline stage's
    records give exactly what scoring again gives.
    """
    scores = {"nll": np.asarray(nll, dtype=float)}
    values: dict[str, float | None] = {
        "nll": float(np.mean(scores["nll"])),
        # Token-weighted over the whole test set, as perplexity is usually reported.
        "perplexity": math.exp(float(np.dot(scores["nll"], counts)) / max(sum(counts), 1)),
    }
    if generations is not None:
        gen = generation_scores(generations, references, primary)
        scores.update(gen)
        values.update({k: float(v.mean()) for k, v in gen.items()})
    return SftScores(scores, values, list(counts), generations, details)


def run_sft(
    base: Any, tuned: Any, records: list, source: str, primary: str, cfg: Any, ui: Any,
    *, seed: int, batch_size: int, max_length: int, bf16: bool, forgetting_n: int = FORGETTING_TEXTS,
    base_scores: SftScores | None = None,
) -> ModelRun:  # fmt: skip
    """Score the base zero-shot and the tuned model on the same examples.

    ``base_scores``: the base model's scores computed before training (the pipeline's baseline
    stage) with the same settings; the base is then not scored again (it still loads for the
    forgetting check, which scores general text).
    """
    examples = sft_examples(records, source)
    texts, text_source = None, None
    if cfg.forgetting_text:
        texts, text_source = forgetting_texts(cfg.forgetting_text, forgetting_n, seed)
    else:
        ui.warn(
            "forgetting check skipped: no general text configured. Fix: pass --forgetting-text FILE, "
            "or xsum / fortunes for a real corpus (eval.forgetting_text in a config)."
        )
    scored: dict[str, SftScores] = {"base": base_scores} if base_scores is not None else {}
    text_scores: dict[str, tuple[list[float], list[int]]] = {}
    with ui.progress() as progress:
        for who in ("base", "tuned"):
            if who in scored and texts is None:
                continue
            model, tok = (load_model(base, "sft", seed=seed) if who == "base"
                          else load_tuned(tuned, base, "sft", seed=seed, merge=True))  # fmt: skip
            model.eval().to(inference_device())
            if who not in scored:
                scored[who] = score_sft_model(model, tok, examples, primary, cfg, batch_size=batch_size,
                                              max_length=max_length, bf16=bf16, progress=progress, label=who)  # fmt: skip
            if texts is not None:
                text_scores[who] = text_nll(
                    model, tok, texts, max_length=FORGETTING_TOKENS, batch_size=batch_size, bf16=bf16
                )
            release(model)
    forgetting = _forgetting(text_scores, text_source, cfg, seed) if texts is not None else {
        "status": "skipped",
        "reason": "no general text configured (eval.forgetting_text / --forgetting-text); "
        "use a text file, or xsum / fortunes for a real corpus",
    }
    return ModelRun("base", {w: s.metrics for w, s in scored.items()}, {w: s.per_record for w, s in scored.items()},
                    _record_fields(examples, scored), forgetting, _details(scored, max_length, bf16))  # fmt: skip


def _details(scored: dict[str, SftScores], max_length: int, bf16: bool) -> dict[str, Any]:
    details: dict[str, Any] = {"generation": {}, "max_length": max_length, "bf16": bf16}
    for who, s in scored.items():
        if who == "base":
            details["prompt_format"] = s.details.get("prompt_format")
            details["example_prompt"] = s.details.get("example_prompt")
        details[f"{who}_prompts_truncated"] = s.details.get("prompts_truncated")
        if "generation" in s.details:
            details["generation"][who] = s.details["generation"]
    return details


def _record_fields(examples: list, scored: dict[str, SftScores]) -> list[dict[str, Any]]:
    fields = []
    for i, ex in enumerate(examples):
        row: dict[str, Any] = {
            "prompt": ex.messages[-1]["content"][:_SHOW_CHARS],
            "completion": ex.completion[:_SHOW_CHARS],
        }
        if ex.references != [ex.completion]:
            row["references"] = ex.references
        generations = {who: s.generations[i] for who, s in scored.items() if s.generations is not None}
        if generations:
            row["generation"] = generations
        fields.append(row)
    return fields


def _forgetting(scores: dict[str, tuple[list[float], list[int]]], source: Any, cfg: Any, seed: int) -> dict[str, Any]:
    (base_sums, counts), (tuned_sums, tuned_counts) = scores["base"], scores["tuned"]
    # Perplexities are comparable only on the same tokens; a different tokenizer breaks that.
    same_tokens = list(counts) == list(tuned_counts)
    delta = paired_bootstrap(
        "perplexity", perplexity_stat(base_sums, counts), perplexity_stat(tuned_sums, tuned_counts), len(counts),
        higher_is_better=False, resamples=cfg.bootstrap, confidence=cfg.confidence, seed=seed,
    )  # fmt: skip
    relative = delta.tuned / delta.reference - 1.0
    return {
        "status": "ok",
        "source": source,
        "n_texts": len(counts),
        "tokens_per_text": FORGETTING_TOKENS,
        "base_perplexity": delta.reference,
        "tuned_perplexity": delta.tuned,
        "relative_change": relative,
        "ci_low": delta.ci_low,
        "ci_high": delta.ci_high,
        "confidence": delta.confidence,
        "limit": cfg.forgetting_limit,
        "flagged": bool(relative > cfg.forgetting_limit),
        "same_tokenization": same_tokens,
    }
