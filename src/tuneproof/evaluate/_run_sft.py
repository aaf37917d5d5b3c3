"""SFT evaluation: the base zero-shot and the tuned model, scored in turn on the same examples."""

from __future__ import annotations

import math
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


def run_sft(
    base: Any, tuned: Any, records: list, source: str, primary: str, cfg: Any, ui: Any,
    *, seed: int, batch_size: int, max_length: int, bf16: bool, forgetting_n: int = FORGETTING_TEXTS,
) -> ModelRun:  # fmt: skip
    examples = sft_examples(records, source)
    references = [ex.references for ex in examples]
    texts, text_source = None, None
    if cfg.forgetting_text:
        texts, text_source = forgetting_texts(cfg.forgetting_text, forgetting_n, seed)
    else:
        ui.warn(
            "forgetting check skipped: no general text configured. Fix: pass --forgetting-text FILE, "
            "or xsum / fortunes for a real corpus (eval.forgetting_text in a config)."
        )
    per_record: dict[str, dict[str, np.ndarray]] = {}
    metrics: dict[str, dict[str, float | None]] = {}
    generations: dict[str, list[str]] = {}
    details: dict[str, Any] = {"generation": {}, "max_length": max_length, "bf16": bf16}
    text_scores: dict[str, tuple[list[float], list[int]]] = {}
    with ui.progress() as progress:
        for who in ("base", "tuned"):
            if who == "base":
                model, tok = load_model(base, "sft", seed=seed)
            else:
                model, tok = load_tuned(tuned, base, "sft", seed=seed)
            model.eval().to(inference_device())
            if who == "base":
                details["prompt_format"] = "chat template" if getattr(tok, "chat_template", None) else "plain text"
                details["example_prompt"] = prompt_text(tok, examples[0].messages)[:_SHOW_CHARS]
            nll, counts, truncated = score_nll(
                model, tok, examples, max_length=max_length, batch_size=batch_size, bf16=bf16, progress=progress, label=who
            )
            details[f"{who}_prompts_truncated"] = truncated
            scores = {"nll": np.asarray(nll)}
            values: dict[str, float | None] = {
                "nll": float(np.mean(nll)),
                # Token-weighted over the whole test set, as perplexity is usually reported.
                "perplexity": math.exp(float(np.dot(nll, counts)) / max(sum(counts), 1)),
            }
            if primary in GENERATION_METRICS:
                outs, stats = generate(
                    model, tok, examples, max_new_tokens=cfg.max_new_tokens, max_length=max_length,
                    batch_size=batch_size, bf16=bf16, progress=progress, label=who,
                )  # fmt: skip
                generations[who] = outs
                details["generation"][who] = stats
                gen = generation_scores(outs, references, primary)
                scores.update(gen)
                values.update({k: float(v.mean()) for k, v in gen.items()})
            if texts is not None:
                text_scores[who] = text_nll(
                    model, tok, texts, max_length=FORGETTING_TOKENS, batch_size=batch_size, bf16=bf16
                )
            per_record[who], metrics[who] = scores, values
            release(model)
    forgetting = _forgetting(text_scores, text_source, cfg, seed) if texts is not None else {
        "status": "skipped",
        "reason": "no general text configured (eval.forgetting_text / --forgetting-text); "
        "use a text file, or xsum / fortunes for a real corpus",
    }
    fields = []
    for i, ex in enumerate(examples):
        row: dict[str, Any] = {
            "prompt": ex.messages[-1]["content"][:_SHOW_CHARS],
            "completion": ex.completion[:_SHOW_CHARS],
        }
        if ex.references != [ex.completion]:
            row["references"] = ex.references
        if generations:
            row["generation"] = {who: outs[i] for who, outs in generations.items()}
        fields.append(row)
    return ModelRun("base", metrics, per_record, fields, forgetting, details)


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
