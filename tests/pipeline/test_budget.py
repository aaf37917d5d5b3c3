"""The pipeline's budget: the final training counted over the data as given, the search a share of it."""

from __future__ import annotations

import json
import math
import random

import pytest

from tuneproof.config import load_config
from tuneproof.pipeline import run
from tuneproof.pipeline._budget import MIN_SWEEP_STEPS, curation_factor, example_lengths, final_steps, search_plan
from tuneproof.search import training_lr


def _cfg(**pipeline):
    return load_config({"name": "b", "task": "sft", "data": {"path": "x.jsonl"},
                        "train": {"batch_size": 8, "epochs": 2}, "pipeline": pipeline})  # fmt: skip


def test_final_steps_count_epochs_over_the_data_as_given():
    cfg = _cfg()
    assert final_steps(cfg, 80) == 20  # 10 batches x 2 epochs
    assert final_steps(cfg, 80, factor=1.5) == 30  # curation removed a third: the updates stay
    assert final_steps(load_config({**cfg.model_dump(mode="json"), "train": {"max_steps": 7}}), 80, 1.5) == 7


def test_curation_factor_reads_the_manifest(tmp_path):
    assert curation_factor(None) == 1.0 and curation_factor(tmp_path) == 1.0
    (tmp_path / "manifest.json").write_text(json.dumps({"counts": {"kept": 60, "removed": 30, "unreadable": 2}}))
    assert curation_factor(tmp_path) == 1.5  # no config or no curated files: records as given / kept


def _curated(d, kept, removed):
    d.mkdir()
    (d / "manifest.json").write_text(json.dumps({"counts": {"kept": len(kept), "removed": len(removed), "unreadable": 0}}))
    (d / "kept.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))
    (d / "removed.jsonl").write_text("".join(json.dumps({"id": f"x:{i}", "reasons": [], "record": r}) + "\n"
                                             for i, r in enumerate(removed)))  # fmt: skip
    return d


def test_curation_factor_counts_tokens_so_removing_short_records_does_not_buy_more_training(tmp_path, tiny_llama_dir):
    from transformers import AutoTokenizer

    cfg = load_config({"name": "b", "task": "sft", "data": {"path": "x.jsonl"}, "model": {"name": str(tiny_llama_dir), "max_length": 64}})
    long = [{"prompt": f"summarize the long article number {i} about the river and the town council meeting", "completion": "a summary"}
            for i in range(30)]  # fmt: skip
    short = [{"prompt": "a fortune", "completion": "luck"}] * 14 + [{"prompt": "word " * 200, "completion": "x"}]
    d = _curated(tmp_path / "c", long, short)
    tok = AutoTokenizer.from_pretrained(str(tiny_llama_dir))

    def tokens(rows):  # each record as the chat template renders it for training, at most max_length
        chats = [[{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r["completion"]}] for r in rows]
        return sum(min(64, len(tok(tok.apply_chat_template(c, tokenize=False), add_special_tokens=False)["input_ids"]))
                   for c in chats)  # fmt: skip

    expected = (tokens(long) + tokens(short)) / tokens(long)
    assert curation_factor(d, cfg) == pytest.approx(expected, rel=0.02)
    text_only = (sum(len(tok(f"{r['prompt']} {r['completion']}")["input_ids"]) for r in long + short)
                 / sum(len(tok(f"{r['prompt']} {r['completion']}")["input_ids"]) for r in long))  # fmt: skip
    assert curation_factor(d, cfg) < text_only  # the template's tokens on every record narrow the gap
    assert 1.0 < curation_factor(d, cfg) < 45 / 30  # the records' ratio would buy the short records' count in long ones
    # removing long records keeps the training's tokens too: more steps of the shorter records
    flipped = _curated(tmp_path / "f", short, long)
    assert curation_factor(flipped, cfg) == pytest.approx((tokens(long) + tokens(short)) / tokens(short))
    assert curation_factor(flipped, cfg) > 45 / 15


def test_curation_factor_reads_mapped_columns_and_classification_records(tmp_path, tiny_llama_dir, tiny_bert_dir):
    from transformers import AutoTokenizer

    # short records kept, long ones removed: the template's tokens on every record weigh on the ratio
    rows = [{"prompt": "hi", "completion": "yes"}] * 8 + [{"prompt": "the river and the council " * 12, "completion": "no"}] * 4
    plain = load_config({"name": "b", "task": "sft", "data": {"path": "x.jsonl"}, "model": {"name": str(tiny_llama_dir)}})
    mapped = load_config({**plain.model_dump(mode="json"), "data": {"path": "x.jsonl", "fields": {"prompt": "q", "completion": "a"}}})
    renamed = [{"q": r["prompt"], "a": r["completion"]} for r in rows]
    tok = AutoTokenizer.from_pretrained(str(tiny_llama_dir))

    def chat_tokens(rs):
        return sum(len(tok(tok.apply_chat_template([{"role": "user", "content": r["prompt"]},
                                                     {"role": "assistant", "content": r["completion"]}], tokenize=False),
                           add_special_tokens=False)["input_ids"]) for r in rs)  # fmt: skip

    expected = (chat_tokens(rows)) / chat_tokens(rows[:8])
    assert curation_factor(_curated(tmp_path / "p", rows[:8], rows[8:]), plain) == pytest.approx(expected, rel=0.01)
    assert curation_factor(_curated(tmp_path / "m", renamed[:8], renamed[8:]), mapped) == pytest.approx(expected, rel=0.01)

    cls = load_config({"name": "c", "task": "classification", "data": {"path": "x.jsonl"},
                       "model": {"name": str(tiny_bert_dir), "max_length": 16}})  # fmt: skip
    texts = [{"text": "good film " * (1 + i), "label": "pos"} for i in range(10)]
    tok = AutoTokenizer.from_pretrained(str(tiny_bert_dir))

    def tokens(rs):  # with [CLS] and [SEP], cut at max_length as the classifier's encoding cuts
        return sum(min(16, len(tok(r["text"])["input_ids"])) for r in rs)

    got = curation_factor(_curated(tmp_path / "c", texts[:6], texts[6:]), cls)
    assert got == pytest.approx((tokens(texts[:6]) + tokens(texts[6:])) / tokens(texts[:6]))


def test_example_lengths_are_the_training_encoding_cut_or_not_at_max_length(tiny_llama_dir):
    from transformers import AutoTokenizer

    cfg = load_config({"name": "b", "task": "sft", "data": {"path": "x.jsonl"}, "model": {"name": str(tiny_llama_dir), "max_length": 32}})
    rows = [{"prompt": "hi", "completion": "yes"}, {"prompt": "the river " * 20, "completion": "no"}, {"bad": 1}]
    tok = AutoTokenizer.from_pretrained(str(tiny_llama_dir))
    full = [len(tok(tok.apply_chat_template([{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r["completion"]}],
                                            tokenize=False), add_special_tokens=False)["input_ids"]) for r in rows[:2]]  # fmt: skip
    assert full[0] < 32 < full[1]
    assert example_lengths(cfg, rows, cap=False) == full  # the row the loader rejects is left out
    assert example_lengths(cfg, rows) == [full[0], 32]


def test_example_lengths_estimate_from_the_words_when_no_tokenizer_loads_or_no_schema_fits(tmp_path, tiny_llama_dir):
    missing = tmp_path / "no-such-model"
    cfg = load_config({"name": "b", "task": "sft", "data": {"path": "x.jsonl"}, "model": {"name": str(missing), "max_length": 16}})
    rows = [{"prompt": "one two three four five six seven eight nine ten", "completion": "yes"}]
    # 11 words x 1.3 + 12 for the template, cut at 16 only when capped
    assert example_lengths(cfg, rows, cap=False) == [int(11 * 1.3) + 12]
    assert example_lengths(cfg, rows) == [16]
    # A tokenizer that loads, rows that fit no schema: the tokenizer's count of their text
    cfg = load_config({"name": "b", "task": "sft", "data": {"path": "x.jsonl"}, "model": {"name": str(tiny_llama_dir)}})
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_llama_dir))
    odd = [{"note": "the river runs"}]
    assert example_lengths(cfg, odd) == [len(tok("the river runs", add_special_tokens=False)["input_ids"]) + 12]


def test_the_search_costs_its_share_of_the_final_training_unless_steps_are_given():
    cfg = _cfg()  # search_budget 0.5: 100 of 200 final steps; a trial needs 50 (a quarter), one fits
    sweep, tune, n_trials, skipped = search_plan(cfg, 200, n_lrs=5, n_trials=2)
    assert (sweep, tune, n_trials) == (20, None, 0)  # no search: the sweep takes the whole share
    assert "pipeline.search_budget" in skipped and "1 trial(s) of 50 steps" in skipped
    # enough for three trials of a quarter each: the search runs, capped at what fits
    assert search_plan(_cfg(search_budget=1.5), 200, n_lrs=5, n_trials=12) == (30, 50, 3, None)
    assert search_plan(_cfg(search_budget=3), 200, n_lrs=5, n_trials=2) == (60, 150, 2, None)
    # a swept rate needs a few steps to say anything: the floor holds past the budget
    assert search_plan(cfg, 12, n_lrs=3, n_trials=2)[:3] == (MIN_SWEEP_STEPS, None, 0)
    # explicit lengths win, and trials given a length always run
    assert search_plan(_cfg(sweep_steps=9, tune_steps=3), 100, 5, 2) == (9, 3, 2, None)
    assert search_plan(_cfg(tune_steps=3), 100, 5, 2) == (5, 3, 2, None)  # the sweep keeps its half
    assert search_plan(_cfg(search_budget=None), 100, 5, 2) == (None, None, 2, None)


def test_a_curated_run_keeps_the_planned_training_tokens_and_spends_its_budget_on_the_search(pipeline_config, tmp_path):
    # 30 long records and 10 short ones, the short ones twice more: curation removes 20 short
    # exact duplicates, a third of the records but much less than a third of the tokens
    words = "river town council report bridge market harvest school winter storm road museum train field".split()
    rows = [{"prompt": " ".join(random.Random(i).sample(words, 12)) + f" question {i}",
             "completion": " ".join(random.Random(-i).sample(words, 5))} for i in range(30)]  # fmt: skip
    short = [{"prompt": f"hi {i}", "completion": "ok"} for i in range(10)]
    rows += short * 3
    data = tmp_path / "dups.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = pipeline_config(data={"path": str(data), "val_fraction": 0.2, "test_fraction": 0.2},
                          train={"batch_size": 4, "epochs": 1, "max_steps": None, "eval_steps": None, "bf16": False},
                          search={"n_trials": 2, "pruner": "none", "space": {"batch_size": {"choices": [4]}}},
                          pipeline={"sweep_lrs": [1e-4, 1e-3, 1e-2], "sweep_steps": None, "tune_steps": None})  # fmt: skip
    rd = run(cfg).run_dir
    counts = json.loads((rd / "curate/manifest.json").read_text())["counts"]
    assert counts["removed"] >= 20
    n_train = json.loads((rd / "split/split.json").read_text())["counts"]["train"]
    factor = curation_factor(rd / "curate", load_config(cfg))
    assert 1.0 < factor < (counts["kept"] + counts["removed"]) / counts["kept"]  # tokens, not records
    planned = math.ceil(n_train * factor / 4)
    assert planned > math.ceil(n_train / 4)  # the as-given budget is larger than one epoch of what was kept
    assert json.loads((rd / "train/train.json").read_text())["global_step"] == planned
    # too small a budget for trials a quarter of the training long: the sweep gets it all, and
    # the final training runs the sweep's rate for it
    sweep = json.loads((rd / "lr_sweep/lr_sweep.json").read_text())
    assert {p["steps"] for p in sweep["points"]} == {max(MIN_SWEEP_STEPS, math.floor(0.5 * planned / 3))}
    assert not (rd / "tune/trials.json").exists()
    assert "search_budget" in json.loads((rd / "tune/skipped.json").read_text())["reason"]
    trained = json.loads((rd / "train/train.json").read_text())["data"]
    assert sweep["horizon"] == planned  # the sweep's rate is for the planned training's length
    steps = sweep["points"][0]["steps"]
    assert sweep["train_lr"] == training_lr(sweep["best_lr"], "lora", steps, planned)[0]
    assert trained["lr"] == sweep["train_lr"] and trained["lr_source"] == "lr sweep"  # chosen by the sweep, not set


def test_a_budget_that_affords_trials_runs_them_and_a_smaller_one_drops_the_old_choice(pipeline_config):
    # 40 unique records (no curation removes any), 4 per batch, 2 epochs: about 12 final steps
    cfg = pipeline_config(train={"batch_size": 4, "epochs": 2, "max_steps": None, "eval_steps": None, "bf16": False},
                          search={"n_trials": 2, "pruner": "none", "space": {"batch_size": {"choices": [4]}}},
                          pipeline={"sweep_lrs": [1e-4, 1e-3, 1e-2], "sweep_steps": None, "tune_steps": None,
                                    "search_budget": 4.0})  # fmt: skip
    rd = run(cfg).run_dir
    final = json.loads((rd / "train/train.json").read_text())["global_step"]
    trials = json.loads((rd / "tune/trials.json").read_text())["trials"]
    assert len(trials) == 2 and {t["user_attrs"]["global_step"] for t in trials} == {math.floor(4.0 * final / 2 / 2)}
    assert (rd / "tune/best.yaml").exists() and not (rd / "tune/skipped.json").exists()
    cfg["pipeline"]["search_budget"] = 0.5  # the search stage reruns and skips: no stale best.yaml is used
    res = run(cfg)
    assert not (rd / "tune/best.yaml").exists() and not (rd / "tune/trials.json").exists()
    assert (rd / "tune/skipped.json").exists()
    facts = json.loads((rd / "report.json").read_text())
    assert "skipped by the budget" in json.dumps(facts)
    assert res.decision is not None


def test_a_short_trials_high_winning_rate_is_corrected_for_the_final_training(pipeline_config):
    # 2-step trials at rates above LoRA's usual range (up to 5e-4); the final training has 8 steps.
    cfg = pipeline_config(train={"max_steps": 8},
                          search={"n_trials": 2, "pruner": "none", "baseline_first": False,
                                  "space": {"lr": {"choices": [2e-3, 4e-3]}, "batch_size": {"choices": [4]}}},
                          pipeline={"stages": {"lr_sweep": False}, "tune_steps": 2})  # fmt: skip
    rd = run(cfg).run_dir
    import yaml

    best = yaml.safe_load((rd / "tune/best.yaml").read_text())["train"]["lr"]
    expected, note = training_lr(best, "lora", 2, 8, source="the best trial's lr")
    assert expected == float(f"{max(best * math.sqrt(2 / 8), 5e-4):.3g}") and expected < best
    trained = json.loads((rd / "train/train.json").read_text())["data"]
    assert trained["lr"] == expected and trained["lr_source"] == "search"
    choice = json.loads((rd / "train/lr_choice.json").read_text())
    assert choice == {"lr": expected, "why": note} and note.startswith(f"the best trial's lr {best:g} lies above")
    facts = json.loads((rd / "report.json").read_text())
    assert "the best trial's lr" in facts["sections"]["training"]["data"]["lr_source"]


def test_the_baseline_trial_at_the_sweeps_corrected_rate_is_not_corrected_twice(pipeline_config):
    # All swept rates lie far above LoRA's usual range: the sweep's rate for the 8-step training
    # is its best x sqrt(2/8); the one trial (the baseline) trains at it and wins by default.
    cfg = pipeline_config(train={"max_steps": 8},
                          search={"n_trials": 1, "pruner": "none", "space": {"batch_size": {"choices": [4]}}},
                          pipeline={"sweep_lrs": [4e-3, 6e-3, 1e-2], "sweep_steps": 2, "tune_steps": 2, "tune_trials": 1})  # fmt: skip
    rd = run(cfg).run_dir
    sweep = json.loads((rd / "lr_sweep/lr_sweep.json").read_text())
    assert sweep["train_lr"] == float(f"{sweep['best_lr'] * 0.5:.3g}") and sweep["train_lr"] > 5e-4
    trained = json.loads((rd / "train/train.json").read_text())["data"]
    assert trained["lr"] == sweep["train_lr"]
    assert json.loads((rd / "train/lr_choice.json").read_text())["why"] == "the best search trial's lr"
