"""New training rows from a training file, by one augmentation method.

A new row is its source row with one text changed: a classification record's ``text``; an
SFT record's prompt (``prompt``, an Alpaca ``instruction``, or a chat record's last user
turn), whose completion stays as it was. It carries ``augmented_from`` (the source's id)
and ``augmentation`` (the method), and its own id ``<source id>~<method><k>``.
"""

from __future__ import annotations

import copy
from collections import Counter
from pathlib import Path
from typing import Any

from tuneproof.augment._eda import eda_variants
from tuneproof.augment._lexicon import open_wordnet
from tuneproof.augment._paraphrase import INSTRUCTIONS, check_paraphrase, is_generator, paraphrase_texts
from tuneproof.config import RunConfig
from tuneproof.data import Record, Schema, load_records
from tuneproof.errors import TuneproofError

__all__ = ["augmented_rows", "source_text"]


def source_text(record: Record) -> str | None:
    """The text a method changes: the text (classification) or the prompt (SFT); None when there is none."""
    f = record.fields
    if record.schema in (Schema.TEXT, Schema.TEXT_LABEL):
        return str(f["text"])
    if record.schema == Schema.PROMPT_COMPLETION:
        return str(f["prompt"])
    if record.schema == Schema.ALPACA:
        return str(f["instruction"])
    users = [m for m in f["messages"][:-1] if m.get("role") == "user"]
    return str(users[-1]["content"]) if users else None


def _answer(record: Record) -> str | None:
    f = record.fields
    if record.schema == Schema.PROMPT_COMPLETION:
        return str(f["completion"])
    if record.schema == Schema.ALPACA:
        return str(f["output"])
    if record.schema == Schema.CHAT:
        return str(f["messages"][-1].get("content", ""))
    return None


def _new_row(record: Record, text: str, method: str, k: int) -> dict[str, Any]:
    """The source row (canonical fields and its other columns) with ``text`` in place of its source text."""
    row = copy.deepcopy({**record.fields, **record.extra})
    source_id = str(record.extra.get("id", record.id))
    if record.schema in (Schema.TEXT, Schema.TEXT_LABEL):
        row["text"] = text
    elif record.schema == Schema.PROMPT_COMPLETION:
        row["prompt"] = text
    elif record.schema == Schema.ALPACA:
        row["instruction"] = text
    else:
        last_user = max(i for i, m in enumerate(row["messages"][:-1]) if m.get("role") == "user")
        row["messages"][last_user]["content"] = text
    return {**row, "id": f"{source_id}~{method}{k}", "augmented_from": source_id, "augmentation": method}


def augmented_rows(
    cfg: RunConfig, train_path: str | Path, method: str, *, bf16: bool = False,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:  # fmt: skip
    """Up to ``augment.n_aug`` new rows per record of ``train_path`` by ``method``, and an account of them.

    Args:
        cfg: the run's config (``augment``, ``task``, ``model`` for paraphrases, ``train.seed``).
        train_path: training rows in canonical fields (as the split writes them).
        method: ``synonym``, ``swap``, ``delete`` or ``paraphrase``.
        bf16: generate paraphrases under bf16 autocast.

    Returns:
        ``(rows, info)``; ``info`` holds ``method``, ``sources`` (records with a text to change),
        ``added``, ``unchanged`` (draws that changed nothing), ``rejected`` (paraphrases, per
        reason) and ``not_run`` (None, or why the method could not run, e.g. WordNet missing:
        then there are no rows, and the reason says how to fix it).
    """
    aug = cfg.augment
    records = [r for r in load_records(train_path).records if "augmented_from" not in r.extra]
    sources = [(r, t) for r in records if (t := source_text(r))]
    info: dict[str, Any] = {"method": method, "sources": len(sources), "added": 0, "unchanged": 0, "rejected": {},
                            "not_run": None}  # fmt: skip
    if method == "paraphrase":
        return _paraphrased(cfg, sources, info, bf16)
    lexicon = None
    if method == "synonym":
        try:
            lexicon = open_wordnet(aug.wordnet)
        except TuneproofError as exc:
            info["not_run"] = str(exc)
            return [], info
    rows = []
    for record, text in sources:
        variants, unchanged = eda_variants(text, str(record.extra.get("id", record.id)), method, n=aug.n_aug,
                                           alpha=aug.alpha, seed=cfg.train.seed, lexicon=lexicon)  # fmt: skip
        info["unchanged"] += unchanged
        rows += [_new_row(record, v, method, k) for k, v in enumerate(variants)]
    info["added"] = len(rows)
    return rows, info


def _paraphrased(cfg: RunConfig, sources: list[tuple[Record, str]], info: dict[str, Any], bf16: bool) -> tuple[list, dict]:
    """Paraphrases by the base model, each checked by :func:`check_paraphrase`."""
    from tuneproof.evaluate._api import release
    from tuneproof.models import inference_device, load_model

    aug, name = cfg.augment, str(cfg.model.name)
    if cfg.task == "classification" and not is_generator(name):
        info["not_run"] = (f"paraphrase: not available for an encoder-only base model ({name} writes no text); the "
                           "word operations (synonym, swap, delete) need no generator")  # fmt: skip
        return [], info
    kind = "request" if cfg.task == "sft" else "text"
    n = min(aug.n_aug, len(INSTRUCTIONS[kind]))
    if n < aug.n_aug:
        info["n_aug_note"] = (f"greedy decoding writes one paraphrase per wording of the request, and there are {n}: "
                              f"at most {n} per record, not augment.n_aug={aug.n_aug}")  # fmt: skip
    model, tok = load_model(name, "sft", seed=cfg.train.seed)
    model.eval().to(inference_device())
    try:
        outs = paraphrase_texts(model, tok, [(str(r.extra.get("id", r.id)), t) for r, t in sources], kind=kind, n=n,
                                max_ratio=aug.max_length_ratio, max_length=cfg.model.max_length,
                                batch_size=cfg.train.batch_size, bf16=bf16)  # fmt: skip
    finally:
        release(model)
    rows, rejected = [], Counter()
    for (record, text), candidates in zip(sources, outs):
        kept: list[str] = []
        for cand in candidates:
            why = check_paraphrase(text, cand, max_ratio=aug.max_length_ratio, answer=_answer(record))
            why = why or ("the same as another paraphrase of the record" if cand in kept else None)
            if why:
                rejected[why] += 1
            else:
                kept.append(cand)
        rows += [_new_row(record, p, "paraphrase", k) for k, p in enumerate(kept)]
    info.update(added=len(rows), rejected=dict(rejected))
    return rows, info
