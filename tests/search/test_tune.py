"""tune on a tiny Llama: trials, best.yaml, MLflow runs, resume, pruning, failed trials."""

from __future__ import annotations

import json

import optuna
import pytest

from tuneproof.config import load_config
from tuneproof.search import tune
from tuneproof.search._optuna import OptunaPruningCallback, make_pruner
from tuneproof.config import SearchConfig


def _mlflow_runs(cfg):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=load_config(cfg).tracking.resolved_uri())
    exp = client.get_experiment_by_name("tuneproof")
    return client.search_runs([exp.experiment_id])


def test_tune_writes_best_yaml_that_trains_and_one_child_run_per_trial(search_config):
    from tuneproof.train import train

    cfg = search_config(search={"pruner": "none"})
    res = tune(cfg, n_trials=3)
    assert res.counts == {"COMPLETE": 3} and res.already_done == 0
    trials = json.loads(res.trials_json.read_text())["trials"]
    assert [t["state"] for t in trials] == ["COMPLETE"] * 3
    assert all(len(t["curve"]) == 3 for t in trials)  # evaluations at steps 2, 4, 6
    assert len({t["params"]["lr"] for t in trials}) == 3  # TPE proposed three different rates
    assert min(t["value"] for t in trials) == res.best_value
    # best.yaml is the original config with the best params filled in, and it trains
    best = load_config(res.best_yaml)
    assert best.train.lr == pytest.approx(res.best_params["lr"])
    assert best.model.lora.r == res.best_params["lora_r"] and best.model.lora.alpha == res.best_params["lora_alpha"]
    assert best.train.batch_size == res.best_params["batch_size"]
    assert best.data.path == load_config(cfg).data.path and best.train.max_steps == 6
    trained = train(best, overrides=["train.max_steps=2"], output_dir=res.best_yaml.parent / "check")
    assert trained.global_step == 2
    imp = json.loads((res.best_yaml.parent / "importances.json").read_text())
    assert (imp["importances"] and set(imp["importances"]) == set(res.best_params)) or imp["note"]
    # MLflow: one tune parent, and one child per trial under it (plus the check training above)
    runs = _mlflow_runs(cfg)
    parents = [r for r in runs if r.data.tags.get("tuneproof.stage") == "tune"]
    assert len(parents) == 1 and parents[0].info.run_id == res.mlflow_run_id
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == res.mlflow_run_id]
    assert sorted(int(r.data.tags["optuna.trial"]) for r in children) == [0, 1, 2]
    assert all(r.data.tags["tuneproof.trial_state"] == "complete" for r in children)
    assert all("train.lr" in r.data.params for r in children)
    assert all(r.data.metrics.get("val_loss") is not None for r in children)  # the curve is logged


def test_resume_continues_the_trial_count(search_config):
    cfg = search_config(search={"pruner": "none"})
    first = tune(cfg, n_trials=2)
    assert first.counts == {"COMPLETE": 2}
    second = tune(cfg, n_trials=3)
    assert second.already_done == 2 and second.counts == {"COMPLETE": 3}
    numbers = [t["number"] for t in json.loads(second.trials_json.read_text())["trials"]]
    assert numbers == [0, 1, 2]
    # nothing left to do: no new trial
    third = tune(cfg, n_trials=3)
    assert third.already_done == 3 and third.counts == {"COMPLETE": 3} and third.mlflow_run_id is None
    # --new starts the study afresh
    fresh = tune(cfg, n_trials=1, new=True)
    assert fresh.counts == {"COMPLETE": 1} and fresh.already_done == 0


def test_a_hopeless_trial_is_pruned_and_its_run_says_so(search_config, tmp_path):
    # Three full fine-tunes at a good rate, then one at an absurd rate (0.5): its validation
    # loss jumps to about 16 and rises again (22 at step 4 on this tiny model), worse than
    # the median, and the pruner (patience 0) cuts it there.
    fixed = {k: {"choices": [v]} for k, v in {"weight_decay": 0.0, "dropout": 0.0, "warmup_ratio": 0.0, "batch_size": 4}.items()}
    cfg = search_config(
        model={"method": "full"},
        search={"pruner": "median", "pruner_patience": 0, "space": {"lr": {"choices": [1e-2, 0.5]}, **fixed}},
    )
    cfg["train"]["max_steps"] = 8
    study_db = f"sqlite:///{tmp_path / 'prune.db'}"
    study = optuna.create_study(storage=study_db, study_name="t")
    for lr in (1e-2, 1e-2, 1e-2, 0.5):
        study.enqueue_trial({"lr": lr})
    res = tune(cfg, storage=study_db, n_trials=4)
    trials = json.loads(res.trials_json.read_text())["trials"]
    assert [t["params"]["lr"] for t in trials] == [1e-2, 1e-2, 1e-2, 0.5]
    assert trials[-1]["state"] == "PRUNED", trials[-1]
    assert trials[-1]["user_attrs"]["pruned_at_step"] < 8
    runs = {r.info.run_id: r for r in _mlflow_runs(cfg)}
    pruned_run = runs[trials[-1]["user_attrs"]["mlflow_run_id"]]
    assert pruned_run.data.tags["tuneproof.trial_state"] == "pruned" and pruned_run.info.status == "KILLED"
    assert res.counts == {"COMPLETE": 3, "PRUNED": 1}


def test_patient_pruner_waits_on_synthetic_reports(tmp_path):
    """Driving the callback with synthetic evaluations: a worse curve is pruned only after patience."""
    storage = f"sqlite:///{tmp_path / 's.db'}"
    pruner = make_pruner(SearchConfig(pruner="median", pruner_patience=1), min_resource=1, max_resource=10)
    study = optuna.create_study(storage=storage, pruner=pruner)
    for _ in range(3):  # three good, finished curves
        t = study.ask()
        for step, loss in enumerate([1.0, 0.8, 0.6, 0.5], start=1):
            t.report(loss, step)
        study.tell(t, 0.5)

    class State:
        global_step = 0

    def drive(curve):
        trial = study.ask()
        cb, state, verdicts = OptunaPruningCallback(trial), State(), []
        for step, loss in enumerate(curve, start=1):
            state.global_step = step
            try:
                cb.on_evaluate(None, state, None, metrics={"eval_loss": loss})
                cb.on_evaluate(None, state, None, metrics={"eval_loss": loss})  # the engine's final re-evaluation
                verdicts.append("go")
            except optuna.TrialPruned:
                verdicts.append("pruned")
                break
        study.tell(trial, state=optuna.trial.TrialState.PRUNED if verdicts[-1] == "pruned" else None,
                   values=None if verdicts[-1] == "pruned" else curve[-1])  # fmt: skip
        return verdicts, cb.reported

    # Worse than the median from the start, but still improving: patience keeps it alive.
    assert drive([3.0, 2.9, 2.8, 2.7]) == (["go"] * 4, [(1, 3.0), (2, 2.9), (3, 2.8), (4, 2.7)])
    # Worse than the median and getting worse: pruned once patience (1 evaluation) is spent.
    assert drive([3.0, 3.5, 4.0, 4.5]) == (["go", "go", "pruned"], [(1, 3.0), (2, 3.5), (3, 4.0)])


def test_a_trial_that_raises_is_recorded_as_failed_and_the_study_goes_on(search_config, monkeypatch):
    # The first training raises (as a real out-of-memory would); the next ones are real.
    import importlib

    # The package, not the function tuneproof.train that shares its name.
    train_pkg = importlib.import_module("tuneproof.train")
    real = train_pkg.train
    calls = {"n": 0}

    def flaky(cfg, **kw):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("out of memory (simulated)")
        return real(cfg, **kw)

    monkeypatch.setattr(train_pkg, "train", flaky)
    res = tune(search_config(search={"pruner": "none"}), n_trials=2)
    trials = json.loads(res.trials_json.read_text())["trials"]
    assert trials[0]["state"] == "FAIL" and "out of memory (simulated)" in trials[0]["user_attrs"]["error"]
    assert res.counts == {"FAIL": 1, "COMPLETE": 2}


def test_the_first_trial_is_the_sweeps_best_rate_with_the_configs_values(search_config):
    cfg = search_config(search={"pruner": "none"})
    run_dir = load_config(cfg).run_dir
    (run_dir / "lr_sweep").mkdir(parents=True)
    (run_dir / "lr_sweep" / "lr_sweep.json").write_text(
        json.dumps({"best_lr": 3e-4, "recommended": {"low": 1e-4, "high": 1e-3, "log": True}})
    )
    res = tune(cfg, n_trials=2)
    trials = json.loads(res.trials_json.read_text())["trials"]
    first = trials[0]["params"]
    assert first["lr"] == 3e-4 and first["batch_size"] == 4 and first["weight_decay"] == load_config(cfg).train.weight_decay
    assert trials[1]["params"]["lr"] != 3e-4 and 1e-4 <= trials[1]["params"]["lr"] <= 1e-3
    # switched off: trial 0 is a draw like any other
    cfg2 = {**search_config(search={"pruner": "none", "baseline_first": False}), "name": "t2"}
    run2 = load_config(cfg2).run_dir
    (run2 / "lr_sweep").mkdir(parents=True)
    (run2 / "lr_sweep" / "lr_sweep.json").write_text((run_dir / "lr_sweep" / "lr_sweep.json").read_text())
    res2 = tune(cfg2, n_trials=1)
    assert json.loads(res2.trials_json.read_text())["trials"][0]["params"]["lr"] != 3e-4


def test_trials_at_another_batch_size_see_the_same_examples(search_config):
    from tuneproof.search._tune import equal_examples

    base = load_config(search_config()).model_dump(mode="json")  # batch 4, 6 steps, eval every 2
    big = {**base, "train": {**base["train"], "batch_size": 8}}
    cfg, scale = equal_examples(big, base)
    assert scale == 2 and cfg["train"]["max_steps"] == 3 and cfg["train"]["eval_steps"] == 1
    small = {**base, "train": {**base["train"], "batch_size": 2}}
    cfg, scale = equal_examples(small, base)
    assert scale == 0.5 and cfg["train"]["max_steps"] == 12 and cfg["train"]["eval_steps"] == 4
    # end to end: every trial reports at steps 2, 4, 6 of the config's batch, whatever its own batch
    res = tune(search_config(search={"pruner": "none"}), n_trials=4)
    trials = json.loads(res.trials_json.read_text())["trials"]
    assert len({t["params"]["batch_size"] for t in trials}) > 1
    for t in trials:
        assert [p[0] for p in t["curve"]] == [2, 4, 6], t
        assert t["user_attrs"]["global_step"] == 6 * 4 // t["params"]["batch_size"]


def test_the_trials_table_reads_whole_at_80_columns_when_piped():
    import io

    from optuna.distributions import CategoricalDistribution, FloatDistribution
    from optuna.trial import TrialState, create_trial
    from rich.console import Console

    from tuneproof.search._tune import trials_table

    # The default LoRA space with epochs: every dimension a column.
    dists = {"lr": FloatDistribution(1e-5, 1e-3, log=True), "weight_decay": FloatDistribution(0.0, 0.1),
             "dropout": FloatDistribution(0.0, 0.2), "warmup_ratio": FloatDistribution(0.0, 0.1),
             "batch_size": CategoricalDistribution([8, 16, 32]), "epochs": CategoricalDistribution([1, 2, 3]),
             "lora_r": CategoricalDistribution([8, 16, 32]), "lora_alpha": CategoricalDistribution([16, 32, 64])}  # fmt: skip
    params = {"lr": 5e-4, "weight_decay": 0.0523, "dropout": 0.123, "warmup_ratio": 0.0456, "batch_size": 16,
              "epochs": 3, "lora_r": 32, "lora_alpha": 64}  # fmt: skip
    study = optuna.create_study()
    study.add_trial(create_trial(params=params, distributions=dists, value=1.2345))
    study.add_trial(create_trial(params={**params, "lr": 3.162e-4}, distributions=dists, state=TrialState.PRUNED))
    out = io.StringIO()
    Console(file=out, width=80).print(trials_table(study, list(dists), 0, "study t: 2 trials"))  # a pipe: 80 columns
    lines = out.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 80 and "…" not in out.getvalue()
    rows = [line.split() for line in lines if line[:1].isdigit()]
    assert rows == [["0", "complete", "1.2345", "5e-04", "0.0523", "0.123", "0.0456", "16", "3", "32", "64"],
                    ["1", "pruned", "-", "3.16e-04", "0.0523", "0.123", "0.0456", "16", "3", "32", "64"]]  # fmt: skip
