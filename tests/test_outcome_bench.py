"""Plumbing of benchmarks/outcome.py on a synthetic scenario with the tiny random Llama and BERT.

Checks that every method's cell is written, that a second call runs nothing (resume),
that the tables come out, and that the oracle's cheaper scorer (reference scored once)
gives the same numbers as a full ``tuneproof.evaluate`` call. No real data is fetched.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

WORDS = "the capital of france is paris rome madrid water boils at one hundred degrees sun rises in east".split()


def _write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _qa_build(out: Path, seed: int) -> dict:
    rng = random.Random(seed)

    def row() -> dict:
        answer = " ".join(rng.choice(WORDS) for _ in range(2))
        return {"prompt": " ".join(rng.choice(WORDS) for _ in range(6)), "completion": answer, "answers": [answer]}

    pool = [{**row(), "origin": "clean"} for _ in range(48)]
    pool += [{**pool[0], "origin": "dup"}] * 4
    _write(out / "pool.jsonl", pool)
    _write(out / "test.jsonl", [row() for _ in range(12)])
    return {"pool": len(pool)}


def _cls_build(out: Path, seed: int) -> dict:
    rng = random.Random(seed)
    good, bad = "wonderful moving funny".split(), "dull slow long".split()

    def row() -> dict:
        label = rng.choice(["pos", "neg"])
        words = [rng.choice(good if label == "pos" else bad) for _ in range(3)] + [rng.choice(WORDS) for _ in range(3)]
        return {"text": " ".join(words), "label": label}

    _write(out / "pool.jsonl", [{**row(), "origin": "clean"} for _ in range(60)])
    _write(out / "test.jsonl", [row() for _ in range(16)])
    return {}


@pytest.fixture(autouse=True)
def one_thread():
    # On this shared 2-core machine two torch threads next to another busy process made a
    # tiny-Llama step 0.87 s instead of 5 ms (measured); one thread keeps the test fast.
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def scenarios(tiny_llama_dir, tiny_bert_dir):
    from _outcome_harness import Scenario

    cheap_audit = {"checks": ["exact_duplicate", "near_duplicate", "low_quality", "too_long"]}
    common = dict(sweep_lrs=[1e-4, 1e-3, 1e-2], sweep_steps=2, tune_trials=2, tune_steps=2, bf16=False, audit=cheap_audit)
    qa = Scenario(name="tinyqa", task="sft", metric="token_f1", model=str(tiny_llama_dir), method="lora", build=_qa_build,
                  max_length=48, batch_size=8, epochs=1, max_new_tokens=3, oracle_lrs=[1e-3, 1e-2], oracle_epochs=2,
                  **common)  # fmt: skip
    cls = Scenario(name="tinycls", task="classification", metric="accuracy", model=str(tiny_bert_dir), method="full",
                   build=_cls_build, max_length=16, batch_size=8, epochs=1, oracle_lrs=[1e-3, 1e-2], oracle_epochs=2,
                   **common)  # fmt: skip
    return qa, cls


def test_suite_writes_every_cell_resumes_and_summarizes(scenarios, tmp_path):
    from rich.console import Console

    from _outcome_harness import METHODS, read_results, run_suite, score_tuned_only
    from _outcome_report import summarize

    qa, cls = scenarios
    console = Console(stderr=True, quiet=True)
    ran = run_suite([qa], [0], list(METHODS), tmp_path, console)
    ran += run_suite([cls], [0], ["naive", "oracle"], tmp_path, console)
    rows = read_results(tmp_path / "results.jsonl")
    assert len(rows) == len(ran)
    got = {(r["scenario"], r["method"], r.get("lr")) for r in rows}
    for m in ("naive", "tuneproof", "tuneproof_nocurate", "naive_matched", "oracle"):
        assert ("tinyqa", m, None) in got, m
    assert ("tinyqa", "oracle_point", 1e-3) in got and ("tinyqa", "oracle_point", 1e-2) in got
    assert ("tinycls", "oracle", None) in got and ("tinycls", "naive", None) in got

    by = {(r["scenario"], r["method"]): r for r in rows if r["method"] != "oracle_point"}
    tp, naive = by[("tinyqa", "tuneproof")], by[("tinyqa", "naive")]
    # tuneproof's compute counts the sweep (3 x 2 steps), both trials and the final training
    parts = tp["compute"]["parts"]
    assert parts["lr_sweep"]["steps"] == 6 and parts["tune"]["runs"] == 2 and parts["train"]["steps"] >= 1
    assert tp["compute"]["tokens"] > parts["train"]["tokens"] > 0 and naive["compute"]["tokens"] > 0
    assert isinstance(tp["shipped"], bool) and tp["details"]["curate"]["removed"] >= 3  # the planted duplicates
    # naive_matched ran with more epochs when tuneproof spent more (it always does here)
    matched = by[("tinyqa", "naive_matched")]
    assert matched["details"]["epochs"] > naive["details"]["epochs"]
    assert matched["compute"]["tokens"] > naive["compute"]["tokens"]
    oracle = by[("tinyqa", "oracle")]
    assert oracle["details"]["best_lr"] in (1e-3, 1e-2) and oracle["compute"]["steps"] > 0
    pts = [r for r in rows if r["method"] == "oracle_point" and r["scenario"] == "tinyqa"]
    assert all(any(c["candidate"].startswith("epoch") for c in p["candidates"]) for p in pts)
    snapshots = [[c["step"] for c in p["candidates"] if not c["candidate"].startswith("early")] for p in pts]
    assert all(len(set(steps)) == len(steps) for steps in snapshots)  # each snapshot a different model

    # resume: nothing left to run
    assert run_suite([qa], [0], list(METHODS), tmp_path, console) == []
    assert run_suite([cls], [0], ["naive", "oracle"], tmp_path, console) == []

    # the oracle's scorer reproduces a full evaluate() of the same model, for both tasks
    for sc, key in ((qa, "tinyqa"), (cls, "tinycls")):
        work = tmp_path / "work" / f"{key}-s0"
        data = {"test": work / "data" / "test.jsonl", "naive_train": work / "data" / "naive_train.jsonl"}
        row = by[(key, "naive")]
        again = score_tuned_only(sc, 0, work / "naive" / "train" / "model", data, Path(row["eval_dir"]) / "records.jsonl",
                                 row["min_effect"])  # fmt: skip
        for k in ("test_metric", "reference_metric", "ci_low", "ci_high", "verdict"):
            assert again[k] == pytest.approx(row[k]) if isinstance(row[k], float) else again[k] == row[k], (key, k)

    text = summarize(rows)
    for needle in ("FAILURE", "decision accuracy", "tuneproof_nocurate", "wins at <= 1.5x compute", "train tokens", "tinycls"):
        assert needle in text, needle


def test_suite_starts_no_cell_after_its_deadline_and_resumes_where_it_stopped(scenarios, tmp_path, monkeypatch):
    import _outcome_harness as h
    from rich.console import Console

    qa, _ = scenarios
    clock = [1000.0]
    started: list[tuple] = []

    def fake_cell(sc, seed, method, lr, data, work, me, results, console):  # each cell takes 10 "minutes"
        started.append((method, lr))
        clock[0] += 600
        return {"scenario": sc.name, "seed": seed, "method": "oracle_point" if method == "oracle" else method, "lr": lr}

    monkeypatch.setattr(h.time, "time", lambda: clock[0])
    monkeypatch.setattr(h, "_run_cell", fake_cell)
    monkeypatch.setattr(h, "prepare_data", lambda sc, seed, work: {})
    monkeypatch.setattr(h, "_min_effect", lambda sc, seed, data, runs: 0.01)
    monkeypatch.setattr(h, "oracle_summary", lambda points: {"points": len(points)})
    console = Console(stderr=True, quiet=True)

    assert h.run_suite([qa], [0], ["naive", "oracle"], tmp_path, console, deadline=999.0) == []
    assert not (tmp_path / "results.jsonl").exists() and started == []
    # 15 minutes: the first cell starts at 0, the second at 10 (before the deadline), the third not
    ran = h.run_suite([qa], [0], ["naive", "oracle"], tmp_path, console, deadline=1000.0 + 900)
    assert started == [("naive", None), ("oracle", 1e-3)] and len(ran) == 2
    ran = h.run_suite([qa], [0], ["naive", "oracle"], tmp_path, console, deadline=None)
    assert started[2:] == [("oracle", 1e-2)]  # only the cell left, then the oracle's summary of both rates
    assert [(r["method"], r.get("points")) for r in ran] == [("oracle_point", None), ("oracle", 2)]


def test_suite_runs_the_chosen_oracle_rates_in_order_and_summarizes_only_a_full_grid(scenarios, tmp_path, monkeypatch):
    import _outcome_harness as h
    from rich.console import Console

    qa, _ = scenarios
    started: list[tuple] = []

    def fake_cell(sc, seed, method, lr, data, work, me, results, console):
        started.append((method, lr))
        return {"scenario": sc.name, "seed": seed, "method": "oracle_point", "lr": lr}

    monkeypatch.setattr(h, "_run_cell", fake_cell)
    monkeypatch.setattr(h, "prepare_data", lambda sc, seed, work: {})
    monkeypatch.setattr(h, "_min_effect", lambda sc, seed, data, runs: 0.01)
    monkeypatch.setattr(h, "oracle_summary", lambda points: {"points": len(points)})
    console = Console(stderr=True, quiet=True)

    with pytest.raises(ValueError, match="not in tinyqa's grid"):
        h.run_suite([qa], [0], ["oracle"], tmp_path, console, oracle_lrs=[3e-4])
    ran = h.run_suite([qa], [0], ["oracle"], tmp_path, console, oracle_lrs=[1e-2])  # the grid's last rate first
    assert started == [("oracle", 1e-2)] and [r["method"] for r in ran] == ["oracle_point"]  # no summary of half a grid
    ran = h.run_suite([qa], [0], ["oracle"], tmp_path, console)
    assert started[1:] == [("oracle", 1e-3)]
    assert [(r["method"], r.get("points")) for r in ran] == [("oracle_point", None), ("oracle", 2)]


def test_epoch_snapshots_keep_each_epoch_when_early_stopping_ends_one_part_way(tmp_path):
    # Trainer calls on_epoch_end also when early stopping breaks off an epoch; that snapshot
    # must not overwrite the last whole epoch's (it once did: both were scored as "epoch 2").
    from types import SimpleNamespace

    import _outcome_harness as h

    class Model:
        step = 0

        def save_pretrained(self, d):
            Path(d).mkdir(parents=True)
            (Path(d) / "step.txt").write_text(str(self.step))

    snaps, model = h._EpochSnapshots(tmp_path), Model()
    for epoch, step in ((1.0, 133), (2.0, 266), (2.4812, 330), (2.4812, 330)):
        model.step = step
        snaps.callback.on_epoch_end(None, SimpleNamespace(epoch=epoch, global_step=step), None, model=model)
    assert [(label, step) for label, step, _ in snaps.saved] == [("epoch 1", 133), ("epoch 2", 266),
                                                                  ("stopped at epoch 2.48", 330)]  # fmt: skip
    assert [int((d / "step.txt").read_text()) for _, _, d in snaps.saved] == [133, 266, 330]


def _row(scenario, seed, method, metric, *, verdict="improved", lr=None, **extra):
    return {"scenario": scenario, "seed": seed, "method": method, "lr": lr, "metric": "accuracy", "test_metric": metric,
            "reference": "probe", "reference_metric": 0.5, "delta": metric - 0.5, "ci_low": metric - 0.55,
            "ci_high": metric - 0.45, "verdict": verdict, "ci_excludes_zero": verdict == "improved",
            "higher_is_better": True, "compute": {"steps": 10, "tokens": 1000.0}, "details": {}, **extra}  # fmt: skip


def test_report_counts_a_running_oracle_grid_only_once_a_rate_has_proved():
    from _outcome_report import summarize

    grid = {"knobs": {"oracle_lrs": [1e-4, 1e-3, 3e-3]}}
    rows = []
    for seed in (0, 1):
        rows += [_row("qa", seed, "naive", 0.5, verdict="no_change"), _row("qa", seed, "tuneproof", 0.7, shipped=True)]
    rows.append(_row("qa", 0, "oracle_point", 0.72, lr=1e-3, proven=True, candidate="epoch 2", **grid))  # settles seed 0
    rows.append(_row("qa", 1, "oracle_point", 0.52, lr=1e-4, proven=False, verdict="no_change", candidate="epoch 1", **grid))
    text = summarize(rows)
    decision = next(line for line in text.split("\n") if line.startswith("| tuneproof |") and "%" in line and "beyond" not in line
                    and line.count("|") == 9)  # fmt: skip
    # runs 1 (seed 1 still unknown), shipped 1, unproven 0, oracle can prove 1, found 1/1, beyond 0, accuracy 1/1
    assert decision.split("|")[2:9] == [" 1 ", " 1 ", " 0 ", " 1 ", " 1/1 (100%) ", " 0 ", " 1/1 (100%) "]
    running = [line for line in text.split("\n") if line.startswith("| qa |") and "epoch" in line]
    assert running == ["| qa | 0 | 0.001 | 0.0001, 0.003 | 0.7200 (lr 0.001, epoch 2) | [+0.1700, +0.2700] | True |",
                       "| qa | 1 | 0.0001 | 0.001, 0.003 | 0.5200 (lr 0.0001, epoch 1) | [-0.0300, +0.0700] | False |"]  # fmt: skip
    assert "| qa | 1 | tuneproof | 0.5000 | 0.7000 |" in text  # the per-run table follows, whole


def test_jsonl_readers_split_lines_on_newlines_only(tmp_path):
    # Review text with U+2028 / U+0085 (kept raw by ensure_ascii=False): str.splitlines() would cut
    # the JSON line in two and the scoring of every later candidate failed (full sentiment seed 2).
    from _outcome_harness import _reference_scores, read_results

    rows = [{"text": "a line\u2028separator and a \x85 next-line", "probe": {"accuracy": 1.0}, "tuned": {"accuracy": 0.0}},
            {"text": "plain", "probe": {"accuracy": 0.0}, "tuned": {"accuracy": 1.0}}]  # fmt: skip
    path = tmp_path / "records.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    assert _reference_scores(path, "accuracy") == ("probe", [1.0, 0.0])
    assert [r["text"] for r in read_results(path)] == [rows[0]["text"], "plain"]


def test_origin_types_map_every_scenario_origin():
    from _outcome_data import origin_type

    assert origin_type("sentiment", "review") == "clean"
    assert origin_type("sentiment", "review/flipped") == "flipped_label"
    assert origin_type("sentiment", "plot") == "off_task"
    assert origin_type("qa", "chatterbot/tech_support") == "off_domain"
    assert origin_type("spam", "easy-ham-2") == "clean"
    assert origin_type("finance_qa", "fiqa/garbled") == "garbled"
    assert origin_type("med_subject", "medmcqa/near_copy") == "near_duplicate"
    assert origin_type("health_triage", "medicationqa") == "clean"
    assert origin_type("health_triage", "nq_open") == "off_domain"


def test_curation_truth_credits_either_copy_of_a_duplicate_pair():
    # Rows 0 and 2 are the same record (row 2 the injected copy); rows 1 and 3 are the corpus's
    # own identical pair; row 4 is off-domain. Removing the original instead of the copy is right;
    # removing both copies of a pair loses a clean row.
    from curation_quality import truth_types

    origins = ["fiqa", "fiqa", "fiqa/exact_copy", "fiqa", "chatterbot/food"]
    keys = ["a", "b", "a", "b", "c"]
    copies = [[0, 2]]
    removed_original = truth_types("finance_qa", origins, keys, copies, {0: {"exact_duplicate"}, 3: {"exact_duplicate"}})
    assert removed_original == ["exact_duplicate", "clean", "clean", "natural_duplicate", "off_domain"]
    # Nothing removed: one member of each pair is a missed duplicate, the other is clean.
    kept_all = truth_types("finance_qa", origins, keys, copies, {})
    assert sorted(kept_all[i] for i in (0, 2)) == ["clean", "exact_duplicate"]
    assert sorted(kept_all[i] for i in (1, 3)) == ["clean", "natural_duplicate"]
    # Both copies removed (one by another check): the one removed as a duplicate takes the
    # redundant label, so the other is a clean row lost.
    both = truth_types("finance_qa", origins, keys, copies, {0: {"off_domain"}, 2: {"exact_duplicate"}})
    assert both[0] == "clean" and both[2] == "exact_duplicate"


def test_signal_limit_measures_what_an_oracle_threshold_could_remove():
    # Clean rows score 1..100; four off-domain rows score 0.5, 1.5, 50 and 200. An oracle that
    # may lose 2% of the clean rows cuts at their 2% quantile (2.98) and catches the first two.
    from curation_quality import signal_limit

    clean = [float(x) for x in range(1, 101)]
    scores = clean + [0.5, 1.5, 50.0, 200.0]
    types = ["clean"] * 100 + ["off_domain"] * 4
    out = signal_limit(scores, types, {100: {"off_domain"}})["off_domain"]
    assert out["n"] == 4 and out["oracle_removed_at_2pct_clean_lost"] == 0.5 and out["by_off_domain"] == 0.25
    # AUC: 0.5 and 1.5 are below (nearly) all clean rows, 50 below 50 and ties one (half), 200 none.
    assert out["auc"] == pytest.approx((1.0 + 0.99 + 0.505 + 0.0) / 4, abs=1e-3)
    assert signal_limit(None, types, {}) is None


@pytest.mark.parametrize("suite", ["quick", "full"])
def test_every_scenario_makes_a_valid_run_config_with_its_domain_hint(tmp_path, suite):
    # No data is built: the config is what `tuneproof run` would get for each scenario.
    from _outcome_harness import tuneproof_config
    from outcome import HINT, SCENARIOS, make_scenario

    from tuneproof.config import load_config

    files = {"pool": tmp_path / "pool.jsonl", "test": tmp_path / "test.jsonl", "refs": tmp_path / "refs.jsonl"}
    for name in SCENARIOS:
        cfg = load_config(tuneproof_config(make_scenario(name, suite), 0, files, tmp_path / "runs", curate=True))
        hint = "refs" if cfg.data.domain else "domain_text" if cfg.data.domain_text else "none"
        assert hint == HINT[name], (name, hint)  # every file is offered: only the scenario's hint is used
        assert cfg.primary_metric == make_scenario(name, suite).metric
