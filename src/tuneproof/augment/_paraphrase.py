"""Paraphrases written by the run's own base model: an SFT prompt, or a classification text.

The base model is asked to reword each source ("Rewrite the following request in other
words ..."), with the evaluation's own greedy generation
(:func:`tuneproof.evaluate._sft.generate`), so the same model and prompt format that score
the run write its paraphrases, and the same seed gives the same ones. Greedy decoding gives
one answer per prompt: a record's ``k``-th paraphrase comes from the ``k``-th wording of the
request (:data:`INSTRUCTIONS`), so at most that many per record.

A paraphrase is kept only when it passes :func:`check_paraphrase`: not empty, not the
source again, within ``max_ratio`` of the source's length in words either way (a rewording
of the same content is about as long; a much longer or shorter one is the model answering,
continuing or cutting it instead), and, for a prompt, not containing the expected answer
that the source does not contain (training on it would teach the answer from the prompt).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

__all__ = ["INSTRUCTIONS", "check_paraphrase", "is_generator", "paraphrase_texts"]

INSTRUCTIONS: dict[str, tuple[str, ...]] = {
    kind: (
        f"Rewrite the following {kind} in other words. Keep its meaning and every detail. "
        f"Reply with the rewritten {kind} only.\n\n{{text}}",
        f"Paraphrase the following {kind} without changing its meaning. Reply with the paraphrase only.\n\n{{text}}",
        f"Say the following {kind} differently, with the same meaning. Reply with the new wording only.\n\n{{text}}",
    )
    for kind in ("request", "text")
}


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def check_paraphrase(source: str, candidate: str, *, max_ratio: float, answer: str | None = None) -> str | None:
    """Why ``candidate`` is not a usable paraphrase of ``source``, or None when it is.

    Args:
        source: the text that was paraphrased.
        candidate: the model's output.
        max_ratio: a candidate with more than ``max_ratio`` times the source's words, or fewer
            than 1/``max_ratio`` of them, is rejected.
        answer: the record's expected answer (SFT), which a paraphrased prompt must not add.

    Example:
        >>> check_paraphrase("What is the capital of France?", "Which city is France's capital?", max_ratio=2.0) is None
        True
        >>> check_paraphrase("What is the capital of France?", "what is the capital of france", max_ratio=2.0)
        'identical to the source'
    """
    src, cand = _words(source), _words(candidate)
    if not cand:
        return "empty"
    if cand == src:
        return "identical to the source"
    if len(cand) > max_ratio * max(len(src), 1):
        return f"more than {max_ratio:g}x the source's words"
    if len(cand) * max_ratio < len(src):
        return f"less than 1/{max_ratio:g} of the source's words"
    ans = " ".join(_words(answer or ""))
    if ans and f" {ans} " in f" {' '.join(cand)} " and f" {ans} " not in f" {' '.join(src)} ":
        return "contains the expected answer"
    return None


def is_generator(name: str) -> bool:
    """Whether the base model ``name`` can write text: a causal LM checkpoint (or a GGUF file),
    not an encoder such as MiniLM."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    from tuneproof.models import resolve_model

    source = resolve_model(name)
    if source.path is not None and source.path.suffix == ".gguf":
        return True
    if source.path is not None:
        config = json.loads((Path(source.path) / "config.json").read_text())
        architectures = config.get("architectures") or []
    else:
        from transformers import AutoConfig

        architectures = AutoConfig.from_pretrained(name).architectures or []
    return bool(set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values()).intersection(architectures))


def paraphrase_texts(
    model: Any, tokenizer: Any, items: list[tuple[str, str]], *, kind: str, n: int, max_ratio: float, max_length: int,
    batch_size: int, bf16: bool = False,
) -> list[list[str]]:  # fmt: skip
    """``n`` raw paraphrases of each ``(id, text)``, one per instruction wording (at most
    ``len(INSTRUCTIONS[kind])``), unchecked.

    Each is allowed ``max_ratio`` times its source's tokens (longer ones are rejected anyway);
    sources of similar length are generated together, so a long one does not lengthen every
    batch.
    """
    from tuneproof.evaluate._sft import SftExample, generate

    wordings = INSTRUCTIONS[kind][: max(1, n)]
    lengths = [len(ids) for ids in tokenizer([t for _, t in items], add_special_tokens=False)["input_ids"]] if items else []
    groups: dict[int, list[tuple[int, int]]] = {}  # token budget -> (item, wording)
    for i, length in enumerate(lengths):
        budget = min(max_length, 2 ** math.ceil(math.log2(max(8, max_ratio * length + 1))))
        groups.setdefault(budget, []).extend((i, k) for k in range(len(wordings)))
    out: list[list[str]] = [[""] * len(wordings) for _ in items]
    for budget, pairs in sorted(groups.items()):
        examples = [SftExample(f"{items[i][0]}#{k}", [{"role": "user", "content": wordings[k].format(text=items[i][1])}], "")
                    for i, k in pairs]  # fmt: skip
        texts, _ = generate(model, tokenizer, examples, max_new_tokens=budget, max_length=max_length,
                            batch_size=batch_size, bf16=bf16)  # fmt: skip
        for (i, k), text in zip(pairs, texts):
            out[i][k] = text.strip().strip('"').strip()
    return out
