"""The augmentation A/B: keep only when better beyond noise, which file trains, and the stage end to end."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from tuneproof.cli import app
from tuneproof.config import load_config
from tuneproof.pipeline._ab import ab_decision, replicated

FILLER = "the film story actor was long short and quickly told in east west".split()


def _paired(n: int, shift: float, spread: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Plain-arm losses, and augmented-arm losses exactly ``shift`` higher on average with per-record noise ``spread``."""
    rng = np.random.default_rng(seed)
    plain, noise = rng.uniform(1.0, 3.0, n), rng.normal(0, spread, n)
    return plain + shift + noise - noise.mean(), plain


def test_augmentation_is_kept_only_when_better_beyond_noise():
    better, plain = _paired(60, shift=-0.3, spread=0.05)
    out = ab_decision(better, plain, a="swap", b="plain", keep_when="better")
    assert out["decision"] == "keep" and out["ci"][1] < 0 and "better beyond noise" in out["why"]
    within, plain = _paired(60, shift=-0.05, spread=0.8)
    out = ab_decision(within, plain, a="swap", b="plain", keep_when="better")
    assert out["difference"] == pytest.approx(-0.05) and out["ci"][0] < 0 < out["ci"][1]
    assert out["decision"] == "revert" and "kept only when it is better beyond noise, so plain is used" in out["why"]
    # the same losses under curation's rule (kept unless worse beyond noise): kept. The burden of proof differs.
    assert ab_decision(within, plain, a="swap", b="plain")["decision"] == "keep"
    worse, plain = _paired(60, shift=0.2, spread=0.05)
    assert ab_decision(worse, plain, a="swap", b="plain", keep_when="better")["decision"] == "revert"
    with pytest.raises(ValueError, match="keep_when"):
        ab_decision(worse, plain, keep_when="maybe")


def test_a_keep_is_acted_on_only_when_a_second_seed_replicates_it():
    first = {"decision": "keep", "why": "swap better beyond noise", "difference": -0.2}
    assert replicated(first, {"decision": "keep", "why": "again"}, change="keep", otherwise="swap is not used")["decision"] == "keep"
    out = replicated(first, {"decision": "revert", "why": "within noise", "difference": -0.01}, change="keep",
                     otherwise="swap is not used")  # fmt: skip
    assert out["decision"] == "revert" and "did not replicate" in out["why"] and out["why"].endswith("swap is not used")
    assert out["difference"] == -0.2 and out["replication"]["difference"] == -0.01


def _write(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_the_augmented_file_trains_over_the_raw_one_and_a_stale_result_never_does(tmp_path):
    from tuneproof.pipeline._run import Ctx, _train_file

    raw_cfg = {"name": "x", "task": "classification", "data": {"path": str(tmp_path / "d.jsonl")},
               "augment": {"methods": ["swap"]}, "tracking": {"runs_dir": str(tmp_path / "runs")}}  # fmt: skip
    ctx = Ctx(load_config({**raw_cfg, "pipeline": {"stages": {"augment": True}}}), console=None)
    ab, aug = ctx.dir("curation_ab"), ctx.dir("augment")
    _write(ab / "raw_train.jsonl", [{"text": "a", "label": "x"}])
    (ab / "ab.json").write_text(json.dumps({"decision": "revert", "skipped": None}))
    assert _train_file(ctx) == ab / "raw_train.jsonl"  # no augment result yet: the curation A/B's choice
    _write(aug / "train_augmented.jsonl", [{"text": "a", "label": "x"}, {"text": "b", "label": "x", "augmented_from": "1"}])
    (aug / "augment.json").write_text(json.dumps({"used": None}))
    assert _train_file(ctx) == ab / "raw_train.jsonl"  # no method kept
    (aug / "augment.json").write_text(json.dumps({"used": "swap"}))
    assert _train_file(ctx) == aug / "train_augmented.jsonl"  # built on the curation A/B's choice, so it wins
    assert ctx.staged(_train_file(ctx)).data.eval_path == str(ctx.dir("split") / "val.jsonl")  # validation untouched
    off = Ctx(load_config(raw_cfg), console=None)  # the stage off now: the stale result is ignored
    assert _train_file(off) == ab / "raw_train.jsonl"


def _rows(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = "pos" if i % 2 else "neg"
        words = [rng.choice(FILLER) for _ in range(rng.randint(5, 8))]
        words.insert(rng.randrange(len(words) + 1), "wonderful" if label == "pos" else "dull")
        rows.append({"text": " ".join(words), "label": label})
    return rows


def test_tuneproof_augment_runs_the_ab_and_never_touches_validation_or_test(tmp_path, tiny_bert_dir, tiny_wordnet):
    from tuneproof.report import build_report

    data = _write(tmp_path / "reviews.jsonl", _rows(60))
    config = tmp_path / "tuneproof.yaml"
    config.write_text(yaml.safe_dump({
        "name": "aug", "task": "classification",
        "data": {"path": str(data), "val_fraction": 0.25, "test_fraction": 0.25},
        "model": {"name": str(tiny_bert_dir), "method": "full", "max_length": 32},
        "train": {"batch_size": 8, "max_steps": 3, "bf16": False},
        "eval": {"bootstrap": 1000},
        "audit": {"checks": ["exact_duplicate", "low_quality"]},
        "augment": {"methods": ["synonym", "swap", "paraphrase"], "wordnet": str(tiny_wordnet)},
        "pipeline": {"stages": {"lr_sweep": False}},
        "tracking": {"runs_dir": str(tmp_path / "runs")},
    }))  # fmt: skip
    result = CliRunner().invoke(app, ["augment", str(config)])
    assert result.exit_code == 0, result.output
    assert "augmentation A/B" in result.output and "swap" in result.output
    rd = tmp_path / "runs" / "aug"
    res = json.loads((rd / "augment/augment.json").read_text())
    stages = {s["name"]: s["status"] for s in json.loads((rd / "pipeline.json").read_text())["stages"]}
    assert stages["augment"] == "done" and "train" not in stages  # stopped after the augment stage
    m = res["methods"]
    assert m["paraphrase"]["not_run"].startswith("paraphrase: not available for an encoder-only base model")
    assert "decision" not in m["paraphrase"] and not m["paraphrase"]["kept"]
    split = {p: [json.loads(x) for x in (rd / f"split/{p}.jsonl").read_text().splitlines()] for p in ("train", "val", "test")}
    assert res["base_records"] == len(split["train"]) and res["val_records"] == len(split["val"])
    for method in ("synonym", "swap"):
        assert m[method]["added"] > 0 and m[method]["decision"] in ("keep", "drop") and m[method]["kept"] == (m[method]["decision"] == "keep")
        assert res["arms"][method]["train_records"] == len(split["train"]) + m[method]["added"]
        assert res["arms"][method]["steps"] == res["arms"]["plain"]["steps"] == res["steps"]  # the same budget
        arm = [json.loads(x) for x in (rd / f"augment/{method}/train.jsonl").read_text().splitlines()]
        added = [r for r in arm if "augmented_from" in r]
        assert len(added) == m[method]["added"] and all(r["augmentation"] == method for r in added)
        assert {r["augmented_from"] for r in added} <= {r["id"] for r in split["train"]}  # only training records are sources
        held = {r["id"] for p in ("val", "test") for r in split[p]} | {r["text"] for p in ("val", "test") for r in split[p]}
        assert not any(r["id"] in held or r["text"] in held for r in added)
    # validation and test hold no augmented record; every arm is scored on the same validation records
    assert not any("augmented_from" in r for p in ("val", "test") for r in split[p])
    losses = [json.loads(x) for x in (rd / "augment/val_losses.jsonl").read_text().splitlines()]
    assert [x["id"] for x in losses] == [r["id"] for r in split["val"]] and set(losses[0]) == {"id", "plain", "synonym", "swap"}
    assert (rd / "augment/train_augmented.jsonl").exists() == bool(res["used"])
    page = build_report(rd).read_text()
    section = page.split('<section id="augment"')[1].split("</section>")[0]
    assert "records added" in section and "difference (method - plain)" in section and "Decision:" in section
    assert "not available for an encoder-only base model" in section
    # unchanged inputs: a second call reuses every stage
    again = CliRunner().invoke(app, ["augment", str(config)])
    assert again.exit_code == 0 and json.loads((rd / "augment/augment.json").read_text()) == res
    assert {s["status"] for s in json.loads((rd / "pipeline.json").read_text())["stages"] if s["name"] != "lr_sweep"} == {"skipped_unchanged"}


def test_sft_paraphrases_by_the_base_model_keep_the_completion_and_pass_the_filter(tmp_path, tiny_llama_dir):
    from tuneproof.augment import augmented_rows

    rows = [{"id": f"d:{i}", "prompt": f"what is the capital of country number {i} please", "completion": f"city {i}"}
            for i in range(4)]  # fmt: skip
    train = _write(tmp_path / "train.jsonl", rows)
    cfg = load_config({"name": "s", "task": "sft", "data": {"path": str(train)},
                       "model": {"name": str(tiny_llama_dir), "max_length": 96}, "train": {"batch_size": 4},
                       "augment": {"methods": ["paraphrase"], "n_aug": 5, "max_length_ratio": 3.0}})  # fmt: skip
    out, info = augmented_rows(cfg, train, "paraphrase")
    assert info["not_run"] is None and "at most 3 per record" in info["n_aug_note"]
    assert info["added"] + sum(info["rejected"].values()) == 4 * 3  # every generation kept or rejected with a reason
    by_id = {r["id"]: r for r in rows}
    for r in out:
        src = by_id[r["augmented_from"]]
        assert r["completion"] == src["completion"] and r["augmentation"] == "paraphrase"
        assert r["prompt"] != src["prompt"]
