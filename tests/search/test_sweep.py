"""The learning-rate sweep on a tiny Llama: json, plot, a sensible best, the edge warning."""

from __future__ import annotations

import json

import pytest

from tuneproof.errors import ConfigError
from tuneproof.search import lr_sweep, resolve_space, training_lr
from tuneproof.config import load_config


def test_sweep_finds_a_rate_between_too_small_and_diverging(search_config):
    # 1e-7 barely moves the adapters in 8 steps; 0.5 blows LoRA up. A sensible best lies between.
    cfg = search_config(model={"name": search_config()["model"]["name"], "max_length": 64, "method": "full"})
    res = lr_sweep(cfg, lrs=[1e-7, 1e-3, 1e-2, 0.5], steps=8)
    assert res.json_path.is_file() and res.plot_path.is_file() and res.plot_path.stat().st_size > 5000
    assert res.plot_path.read_bytes()[:4] == b"\x89PNG"
    data = json.loads(res.json_path.read_text())
    assert [p["lr"] for p in data["points"]] == [1e-7, 1e-3, 1e-2, 0.5]
    assert all(p["status"] in ("ok", "diverged", "failed") for p in data["points"])
    # each rate is scored by the validation loss after its run, not by the lowest it passed through
    ok = [p for p in data["points"] if p["status"] == "ok"]
    assert ok and all(p["val_loss"] == p["final_val_loss"] and p["best_val_loss"] <= p["val_loss"] for p in ok)
    assert res.best_lr in (1e-3, 1e-2), data["points"]
    assert res.edge is None and res.warning is None
    low, high = res.recommended["low"], res.recommended["high"]
    assert low < res.best_lr < high and data["recommended"] == res.recommended
    # the rate for the training: for the config's own planned length (max_steps here), corrected
    # only above the method's usual range, and inside the range tune searches
    assert res.horizon == data["horizon"] == load_config(cfg).train.planned_steps(0)
    assert data["train_lr"] == res.train_lr == training_lr(res.best_lr, "full", 8, res.horizon)[0]
    assert low <= res.train_lr <= res.best_lr
    # tune picks the sweep's range up when the config doesn't set one
    space, origin = resolve_space(load_config(cfg))
    assert (space["lr"].low, space["lr"].high, space["lr"].log) == (low, high, True)
    assert origin["lr"].startswith("lr sweep")
    # ... and the config's own range wins
    space, origin = resolve_space(load_config(cfg, ["search.space.lr.low=1e-5", "search.space.lr.high=1e-4"]))
    assert (space["lr"].low, space["lr"].high) == (1e-5, 1e-4) and origin["lr"] == "config search.space"


def test_sweep_warns_when_the_best_is_at_the_edge(search_config):
    # Rates far too small: more is better at each of them, so the best is the largest swept.
    from rich.console import Console

    console = Console(record=True, width=300)
    res = lr_sweep(search_config(), lrs=[1e-7, 1e-6, 1e-5], steps=6, console=console)
    assert res.edge == "high" and res.best_lr == 1e-5
    # the summary gives the range without promising a search (a pipeline's budget may skip it)
    said = console.export_text()
    assert f"the range for a search: [{res.recommended['low']:g}, {res.recommended['high']:g}]" in said
    assert "will search" not in said
    assert "largest swept" in res.warning and "higher" in res.warning
    assert res.recommended["high"] > 1e-5  # extends past the edge
    assert json.loads(res.json_path.read_text())["edge"] == "high"


@pytest.mark.parametrize("lrs", [[1e-4, 1e-3], [1e-4, 1e-3, 2.0], [1e-4, 1e-4, 1e-3]])
def test_bad_grids_are_refused_before_training(search_config, lrs, tmp_path):
    with pytest.raises(ConfigError, match="at least 3 distinct rates"):
        lr_sweep(search_config(), lrs=lrs)
    assert not (tmp_path / "runs" / "t" / "lr_sweep").exists()


def test_recommended_range_never_extends_past_the_usual_range_above_what_was_measured():
    from tuneproof.search import recommend_range

    # Full fine-tuning, best at the top edge of a grid that already reaches the usual ceiling (1e-4):
    # the search stays at or below the best measured rate (short-horizon bias).
    low, high, capped = recommend_range([1e-5, 3e-5, 1e-4], 2, "full")
    assert (low, high, capped) == (3e-5, 1e-4, True)
    # LoRA, best 1e-3 (above LoRA's usual 5e-4): 1e-3 stays searchable, 3e-3 is not.
    low, high, capped = recommend_range([1e-4, 3e-4, 1e-3], 2, "lora")
    assert (low, high, capped) == (3e-4, 1e-3, True)
    # Inside the usual range the extension stands, and the low edge always extends.
    low, high, capped = recommend_range([1e-7, 1e-6, 1e-5], 2, "full")
    assert high == pytest.approx(1e-4) and not capped
    low, high, capped = recommend_range([1e-4, 3e-4, 1e-3], 0, "lora")
    assert low == pytest.approx(1e-4 / 3) and high == 3e-4 and not capped
    # An interior best: its neighbours.
    assert recommend_range([1e-5, 3e-5, 1e-4, 3e-4], 1, "full") == (1e-5, 1e-4, False)


def test_the_training_rate_corrects_a_short_run_winner_above_the_usual_range_for_the_training_length():
    # Inside the method's usual range (full: up to 1e-4): used as measured, whatever the horizon.
    assert training_lr(3e-5, "full", sweep_steps=10, horizon=1000) == (3e-5, None)
    assert training_lr(1e-4, "full", sweep_steps=10, horizon=1000) == (1e-4, None)
    # Above it: scaled by sqrt(sweep steps / training steps) ...
    lr, note = training_lr(3e-3, "lora", sweep_steps=4, horizon=25)
    assert lr == pytest.approx(1.2e-3) and "sqrt(4/25)" in note and "short runs favour high rates" in note
    # ... but never below the usual ceiling (measured full spam/sentiment: 3e-4 best after 10-32 steps,
    # 3e-5..1e-4 best over 130-460 steps)
    lr, note = training_lr(3e-4, "full", sweep_steps=10, horizon=130)
    assert lr == 1e-4 and "not below the usual ceiling 0.0001" in note
    # A training no longer than the sweep's runs: nothing to correct.
    assert training_lr(3e-3, "lora", sweep_steps=30, horizon=30) == (3e-3, None)
    assert training_lr(3e-3, "lora", sweep_steps=30, horizon=10) == (3e-3, None)


def test_an_older_sweep_file_without_a_training_rate_still_reads(tmp_path):
    from tuneproof.search._space import _sweep_range

    (tmp_path / "lr_sweep").mkdir()
    f = tmp_path / "lr_sweep" / "lr_sweep.json"
    f.write_text(json.dumps({"best_lr": 3e-4, "recommended": {"low": 1e-4, "high": 1e-3}}))
    assert _sweep_range(tmp_path)[1] == 3e-4
    f.write_text(json.dumps({"best_lr": 3e-4, "train_lr": 1e-4, "recommended": {"low": 1e-4, "high": 1e-3}}))
    assert _sweep_range(tmp_path)[1] == 1e-4
