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


def _arm_trainer(shifts: dict[str, dict[int, float]]):
    """Our own stand-in for training a set of arms: per-record validation losses of a plain arm that
    depend on the seed, and each method's shifted by ``shifts[method][seed]`` (plus a little noise)."""
    from tuneproof.data import load_records

    calls = []

    def train_arms(cfg, arms, val_path, out, *, steps, lr, **_):
        calls.append((cfg.train.seed, list(arms)))
        seed, n = cfg.train.seed, len(load_records(val_path).records)
        rng = np.random.default_rng(seed)
        plain = rng.uniform(1.0, 3.0, n)
        losses = {a: plain if a == "plain" else plain + shifts[a][seed] + rng.normal(0, 0.01, n) for a in arms}
        info = {a: {"train_file": str(p), "train_records": len(p.read_text().splitlines()), "steps": steps,
                    "val_loss": float(losses[a].mean())} for a, p in arms.items()}  # fmt: skip
        return losses, info

    return train_arms, calls


def test_a_method_is_used_only_when_its_gain_replicates_and_only_the_largest_gain(tmp_path, tiny_wordnet):
    from tuneproof.pipeline._augment import augmentation_ab, augmented_train_path

    train = _write(tmp_path / "split/train.jsonl", [{"id": f"d:{i}", "text": t, "label": "pos"} for i, t in enumerate(
        ["the film was wonderful", "a story told quickly", "the actor was dull and long", "alpha beta"])])  # fmt: skip
    val = _write(tmp_path / "split/val.jsonl", [{"id": f"v:{i}", "text": f"film number {i} here", "label": "pos"} for i in range(30)]
                 + [{"id": "v:30", "text": "beta alpha", "label": "pos"}])  # a swap of the last training text  # fmt: skip
    val_bytes = val.read_bytes()
    cfg = load_config({"name": "x", "task": "classification", "data": {"path": str(train)}, "train": {"seed": 0},
                       "augment": {"methods": ["synonym", "swap", "delete"], "alpha": 0.3, "wordnet": str(tiny_wordnet)},
                       "pipeline": {"stages": {"augment": True}}, "tracking": {"runs_dir": str(tmp_path / "runs")}})  # fmt: skip
    # swap and delete lower the loss with both seeds (delete more); synonym only with the first
    trainer, calls = _arm_trainer({"synonym": {0: -0.4, 1: 0.0}, "swap": {0: -0.3, 1: -0.3}, "delete": {0: -0.5, 1: -0.5}})
    out = tmp_path / "run" / "augment"
    res = augmentation_ab(cfg, train, val, out, steps=3, lr=1e-3, lr_source="test", train_arms=trainer)
    assert calls == [(0, ["plain", "synonym", "swap", "delete"]), (1, ["plain", "synonym", "swap", "delete"])]
    m = res["methods"]
    assert m["synonym"]["decision"] == "drop" and "did not replicate" in m["synonym"]["why"]
    assert m["swap"]["kept"] and m["delete"]["kept"] and res["used"] == "delete"
    assert "swap also helped, but a combination of methods was not tested" in res["why"]
    # the swap of "alpha beta" is a validation record's text: never trained on
    assert m["swap"]["rejected"] == {"same or near-same text as a validation/test record": 1}
    swap_rows = [json.loads(x) for x in (out / "swap/train.jsonl").read_text().splitlines()]
    assert "beta alpha" not in {r["text"] for r in swap_rows} and m["swap"]["added"] == 3
    used = [json.loads(x) for x in (out / "train_augmented.jsonl").read_text().splitlines()]
    plain = [json.loads(x) for x in train.read_text().splitlines()]
    assert used[: len(plain)] == plain and len(used) == len(plain) + res["added"] == len(plain) + m["delete"]["added"]
    assert all(r["augmentation"] == "delete" and r["augmented_from"] in {p["id"] for p in plain} for r in used[len(plain):])
    assert res["train_file"] == str(out / "train_augmented.jsonl") == str(augmented_train_path(cfg, out))
    assert val.read_bytes() == val_bytes  # validation untouched
    assert json.loads((out / "augment.json").read_text()) == json.loads(json.dumps(res, default=str))
    # the report shows the A/B beside the records each method added
    from tuneproof.report import build_report

    page = build_report(tmp_path / "run").read_text()
    section = page.split('<section id="augment"')[1].split("</section>")[0]
    assert "delete is used" in section and f"+ {res['added']} augmented (delete)" in section
    assert f"<td>swap</td><td>{m['swap']['added']} from 4</td>" in section and "did not replicate" in section
    facts = json.loads((tmp_path / "run/report.json").read_text())["sections"]["augment"]
    assert facts["status"] == "ok" and facts["used"] == "delete" and facts["methods"]["swap"]["kept"]
    # nothing helps: no file, and the training data stays the plain one
    trainer, _ = _arm_trainer({"synonym": {0: 0.0}, "swap": {0: 0.1}, "delete": {0: -0.001}})
    res = augmentation_ab(cfg, train, val, out, steps=3, lr=1e-3, lr_source="test", train_arms=trainer)
    assert res["used"] is None and not (out / "train_augmented.jsonl").exists() and augmented_train_path(cfg, out) is None


def _rows(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = "pos" if i % 2 else "neg"
        words = [rng.choice(FILLER) for _ in range(rng.randint(5, 8))]
        words.insert(rng.randrange(len(words) + 1), "wonderful" if label == "pos" else "dull")
        rows.append({"text": " ".join(words), "label": label})
    return rows


@pytest.mark.slow  # ~40 s on 2 busy cores: the pipeline up to augment, 6 short trainings
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
        "pipeline": {"stages": {"lr_sweep": False, "curation_ab": False}},  # the split's training data is the plain arm
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
    assert {s["status"] for s in json.loads((rd / "pipeline.json").read_text())["stages"]
            if s["name"] not in ("lr_sweep", "curation_ab")} == {"skipped_unchanged"}
    # the whole pipeline with the stage on reuses it, trains on what it chose, and reports it
    from tuneproof.pipeline import run

    full = run(load_config(config, ["pipeline.stages.augment=true"]))
    status = {s["name"]: s["status"] for s in full.stages}
    assert status["augment"] == "skipped_unchanged" and status["train"] == status["evaluate"] == "done"
    trained = json.loads((rd / "train/train.json").read_text())["data"]
    assert trained["train_records"] == len(split["train"]) + res["added"]
    assert 'id="augment" data-status="ok"' in full.report.read_text()


def test_sft_paraphrases_are_written_by_the_base_model_and_each_is_kept_or_rejected_with_a_reason(tmp_path, tiny_llama_dir):
    from tuneproof.augment import augmented_rows

    rows = [{"id": f"d:{i}", "prompt": f"what is the capital of country number {i}", "completion": f"city {i}"} for i in range(2)]
    train = _write(tmp_path / "train.jsonl", rows)
    cfg = load_config({"name": "s", "task": "sft", "data": {"path": str(train)},
                       "model": {"name": str(tiny_llama_dir), "max_length": 48}, "train": {"batch_size": 4},
                       "augment": {"methods": ["paraphrase"], "n_aug": 5, "max_length_ratio": 1.5}})  # fmt: skip
    out, info = augmented_rows(cfg, train, "paraphrase")
    assert info["not_run"] is None and "at most 3 per record" in info["n_aug_note"]
    # every generation is kept or rejected with a reason (the random tiny model writes only blank lines)
    assert info["added"] == len(out) and info["added"] + sum(info["rejected"].values()) == 2 * 3
    by_id = {r["id"]: r for r in rows}
    for r in out:
        assert r["completion"] == by_id[r["augmented_from"]]["completion"] and r["prompt"] != by_id[r["augmented_from"]]["prompt"]


@pytest.mark.parametrize(("row", "where"), [
    ({"id": "d:1", "prompt": "old", "completion": "c", "answers": ["c"]}, ("prompt",)),
    ({"id": "d:1", "instruction": "old", "input": "ctx", "output": "c"}, ("instruction",)),
    ({"id": "d:1", "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "first"},
                                {"role": "assistant", "content": "a"}, {"role": "user", "content": "old"},
                                {"role": "assistant", "content": "c"}]}, ("messages", 3, "content")),
])  # fmt: skip
def test_an_sft_paraphrase_replaces_the_prompt_and_keeps_everything_else(tmp_path, row, where):
    import copy

    from tuneproof.augment import source_text
    from tuneproof.augment._build import _new_row
    from tuneproof.data import load_records

    record = load_records(_write(tmp_path / "t.jsonl", [row])).records[0]
    assert source_text(record) == "old"  # the last user turn of a chat
    new = _new_row(record, "new wording", "paraphrase", 1)
    expected = copy.deepcopy({k: v for k, v in row.items() if k != "id"})
    node = expected
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = "new wording"
    assert new == {**expected, "id": "d:1~paraphrase1", "augmented_from": "d:1", "augmentation": "paraphrase"}
    assert record.fields == {k: v for k, v in row.items() if k in record.fields}  # the source record is not changed
