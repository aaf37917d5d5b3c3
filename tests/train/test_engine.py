"""End-to-end trainings of tiny random models: what changes, what is saved, what is restored."""

from __future__ import annotations

import json

import pytest
from transformers import TrainerCallback

from tuneproof.train import train


class Snapshot(TrainerCallback):
    """Copies every parameter at the start and the end of training."""

    def on_train_begin(self, args, state, control, model=None, **kw):
        self.before = {n: p.detach().clone() for n, p in model.named_parameters()}
        self.trainable = {n for n, p in model.named_parameters() if p.requires_grad}

    def on_train_end(self, args, state, control, model=None, **kw):
        self.after = {n: p.detach().clone() for n, p in model.named_parameters()}

    def changed(self):
        import torch

        return {n for n in self.before if not torch.equal(self.before[n], self.after[n])}


def test_lora_changes_only_adapter_params_and_saves_an_adapter(tiny_llama_dir, make_config):
    snap = Snapshot()
    result = train(make_config(tiny_llama_dir), callbacks=[snap])
    changed = snap.changed()
    assert changed, "no parameter changed"
    assert all("lora_" in n for n in changed), sorted(changed - {n for n in changed if "lora_" in n})
    assert {n for n in snap.before if "lora_B" in n} <= changed  # every adapter trained
    assert (result.model_dir / "adapter_model.safetensors").is_file()
    assert (result.model_dir / "tokenizer.json").is_file()
    assert not (result.model_dir / "training_args.bin").exists()
    summary = json.loads(result.train_json.read_text())
    assert summary["best_step"] == result.best_step and "loss" in summary["final_metrics"]
    assert summary["guard"]["evaluations"] == 3


def test_full_and_freeze_change_the_right_params(tiny_llama_dir, make_config):
    full = Snapshot()
    train(make_config(tiny_llama_dir, model={"method": "full"}), callbacks=[full])
    assert len(full.changed()) == len(full.before)  # every weight moved

    frozen = Snapshot()
    train(make_config(tiny_llama_dir, model={"method": "freeze", "trainable_blocks": 1}), callbacks=[frozen])
    changed = frozen.changed()
    assert any(n.startswith("model.layers.1.") for n in changed)
    assert not any(n.startswith(("model.layers.0.", "model.embed_tokens")) for n in changed)
    assert "model.norm.weight" in changed


def test_merge_writes_a_plain_model(tiny_llama_dir, make_config):
    from tuneproof.models import load_model

    result = train(make_config(tiny_llama_dir, model={"merge": True}))
    model, _ = load_model(result.merged_dir, "sft")
    assert not any("lora" in n for n, _ in model.named_parameters())


def test_classification_saves_label_map(tiny_bert_dir, make_config, sentiment_rows):
    cfg = make_config(tiny_bert_dir, task="classification", rows=sentiment_rows(40), model={"method": "full"})
    result = train(cfg)
    assert json.loads((result.model_dir / "labels.json").read_text()) == ["neg", "pos"]
    config = json.loads((result.model_dir / "config.json").read_text())
    assert config["id2label"] == {"0": "neg", "1": "pos"}
    assert 0.0 <= result.final_metrics["accuracy"] <= 1.0
    assert result.data["train_records"] + result.data["val_records"] == 40


def test_lora_classification_trains_the_new_head(tiny_bert_dir, make_config, sentiment_rows):
    snap = Snapshot()
    train(make_config(tiny_bert_dir, task="classification", rows=sentiment_rows(40)), callbacks=[snap])
    changed = snap.changed()
    assert any("classifier" in n for n in changed)
    assert all("lora_" in n or "classifier" in n for n in changed)


def memorizing_config(make_config, qa_rows, model_dir, **train_overrides):
    """Few training records, unrelated validation records, a high rate: a run that memorizes."""
    return make_config(
        model_dir,
        rows=qa_rows(8, seed=1),
        eval_rows=qa_rows(16, seed=2),
        model={"method": "full"},
        train={"lr": 1e-2, "batch_size": 8, "max_steps": 40, "eval_steps": 2, "warmup_ratio": 0.0,
               "scheduler": "constant", **train_overrides},
    )  # fmt: skip


def test_guard_fires_on_a_memorizing_run(tiny_llama_dir, make_config, qa_rows):
    cfg = memorizing_config(make_config, qa_rows, tiny_llama_dir, early_stopping={"enabled": False})
    result = train(cfg)
    guard = result.guard
    assert guard["overfitting"], guard["curve"]
    assert guard["detected_step"] > guard["best_step"]
    assert guard["gap"] > guard["gap_at_first_eval"]
    assert json.loads(result.train_json.read_text())["guard"]["detected_step"] == guard["detected_step"]
    from mlflow import MlflowClient

    run = MlflowClient(f"sqlite:///{cfg['tracking']['runs_dir']}/mlflow.db").get_run(result.mlflow_run_id)
    assert run.data.tags["overfit_guard"] == "overfitting"


def test_guard_silent_on_a_healthy_run(tiny_llama_dir, make_config, qa_rows):
    cfg = make_config(tiny_llama_dir, rows=qa_rows(120, seed=3), train={"lr": 5e-4, "max_steps": 12, "eval_steps": 3})
    result = train(cfg)
    assert not result.guard["overfitting"], result.guard
    assert result.guard["evaluations"] == 4


def test_stopped_early_only_when_the_run_ended_before_its_budget():
    from types import SimpleNamespace

    from tuneproof.train._engine import stopped_before_budget

    out_of_patience = SimpleNamespace(early_stopping_patience_counter=3, early_stopping_patience=3)
    patient = SimpleNamespace(early_stopping_patience_counter=1, early_stopping_patience=3)
    assert stopped_before_budget(out_of_patience, SimpleNamespace(global_step=230, max_steps=272))
    # Patience ran out at the last planned step (qa seed 1: best at 216 of 272): not early.
    assert not stopped_before_budget(out_of_patience, SimpleNamespace(global_step=272, max_steps=272))
    assert not stopped_before_budget(patient, SimpleNamespace(global_step=100, max_steps=272))
    assert not stopped_before_budget(None, SimpleNamespace(global_step=100, max_steps=272))


def test_early_stopping_restores_the_best_checkpoint(tiny_llama_dir, make_config, qa_rows):
    cfg = memorizing_config(make_config, qa_rows, tiny_llama_dir, early_stopping={"patience": 2})
    result = train(cfg)
    assert result.stopped_early and result.global_step < 40
    assert result.best_step < result.global_step
    # The saved model is the best one, not the last one.
    assert result.final_metrics["loss"] == pytest.approx(result.best_metrics["loss"], rel=1e-5)
    evals = [e for e in result.guard["curve"]]
    assert evals[-1]["val_loss"] > result.best_metrics["loss"]


class StopAfter(TrainerCallback):
    """Simulates a kill: stops training right after the checkpoint of step ``n``."""

    def __init__(self, n):
        self.n = n

    def on_step_end(self, args, state, control, **kw):
        if state.global_step >= self.n:
            control.should_training_stop = True


def test_kill_and_resume_gives_the_same_final_metrics(tiny_llama_dir, make_config, tmp_path):
    base = make_config(tiny_llama_dir, train={"max_steps": 10, "eval_steps": 2}, model={"lora": {"dropout": 0.1}})
    straight = train(base, output_dir=tmp_path / "straight")

    killed = train(base, output_dir=tmp_path / "resumed", callbacks=[StopAfter(6)])
    assert killed.global_step == 6
    resumed = train(base, output_dir=tmp_path / "resumed", resume=True)
    assert resumed.global_step == straight.global_step == 10
    assert resumed.final_metrics["loss"] == pytest.approx(straight.final_metrics["loss"], rel=1e-6)
    assert resumed.best_step == straight.best_step
    assert resumed.mlflow_run_id == killed.mlflow_run_id  # one training, one MLflow run


def test_one_mlflow_run_with_per_step_metrics(tiny_llama_dir, make_config):
    from mlflow import MlflowClient

    cfg = make_config(tiny_llama_dir)
    result = train(cfg)
    client = MlflowClient(f"sqlite:///{cfg['tracking']['runs_dir']}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("tuneproof").experiment_id])
    assert len(runs) == 1 and runs[0].info.run_id == result.mlflow_run_id
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")] == list(range(1, 7))
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_loss")][:3] == [2, 4, 6]
    assert len(client.get_metric_history(run.info.run_id, "lr")) == 6
    assert run.data.params["train.lr"] == "0.001" and run.data.params["model.method"] == "lora"
    assert run.data.tags["overfit_guard"] == "clean"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "train.json"} <= artifacts


def test_parent_run_nests_the_training(tiny_llama_dir, make_config):
    from tuneproof import track
    from tuneproof.config import TrackingConfig

    cfg = make_config(tiny_llama_dir, train={"max_steps": 2, "eval_steps": 2})
    tracking = TrackingConfig(runs_dir=cfg["tracking"]["runs_dir"])
    with track.start_run(tracking, "pipeline", system_metrics=False) as parent:
        result = train(cfg, parent_run_id=parent.run_id)
    child = parent.client.get_run(result.mlflow_run_id)
    assert child.data.tags["mlflow.parentRunId"] == parent.run_id


def test_gradient_accumulation_matches_one_big_batch(tiny_llama_dir, make_config, qa_rows, tmp_path):
    # Four examples of different lengths: a per-micro-batch mean would weight tokens unevenly.
    rows = qa_rows(4, seed=5, prompt=(2, 12), completion=(1, 9))
    losses = {}
    for batch_size, accum in ((4, 1), (2, 2), (1, 4)):
        cfg = make_config(
            tiny_llama_dir, rows=rows, eval_rows=qa_rows(2, seed=6),
            model={"method": "full"},
            train={"batch_size": batch_size, "grad_accum": accum, "max_steps": 1, "eval_steps": 1, "warmup_ratio": 0},
        )  # fmt: skip
        result = train(cfg, output_dir=tmp_path / f"b{batch_size}-a{accum}")
        state = json.loads((result.output_dir / "checkpoints" / "checkpoint-1" / "trainer_state.json").read_text())
        step = next(e for e in state["log_history"] if "loss" in e)
        losses[(batch_size, accum)] = (step["loss"], step["grad_norm"])
    ref = losses[(4, 1)]
    for key, (loss, grad_norm) in losses.items():
        # Same loss and the same gradient (its norm) however the batch is split. (The
        # val loss after the step is no check: Adam's first step is about lr*sign(g), so
        # float noise in near-zero gradients flips whole updates.)
        assert loss == pytest.approx(ref[0], rel=1e-5), (key, losses)
        assert grad_norm == pytest.approx(ref[1], rel=1e-4), (key, losses)


def test_classification_gradient_accumulation_matches_one_big_batch(tiny_bert_dir, make_config, sentiment_rows, tmp_path):
    # Three records: split 2 + 1, a mean of micro-batch means would weigh the lone record double.
    rows = sentiment_rows(3, seed=5)
    steps = {}
    for batch_size, accum in ((4, 1), (2, 2)):
        cfg = make_config(
            tiny_bert_dir, task="classification", rows=rows, eval_rows=sentiment_rows(2, seed=6),
            model={"method": "full"},
            train={"batch_size": batch_size, "grad_accum": accum, "max_steps": 1, "eval_steps": 1, "warmup_ratio": 0,
                   "dropout": 0.0},  # BERT's dropout masks differ with the batch shapes
        )  # fmt: skip
        result = train(cfg, output_dir=tmp_path / f"b{batch_size}-a{accum}")
        state = json.loads((result.output_dir / "checkpoints" / "checkpoint-1" / "trainer_state.json").read_text())
        steps[(batch_size, accum)] = next(e for e in state["log_history"] if "loss" in e)
    one, split = steps[(4, 1)], steps[(2, 2)]
    assert split["loss"] == pytest.approx(one["loss"], rel=1e-5), steps
    assert split["grad_norm"] == pytest.approx(one["grad_norm"], rel=1e-4), steps


def test_saved_adapter_reproduces_the_final_val_loss(tiny_llama_dir, make_config, qa_rows):
    """Reload base + saved adapter from disk and score the validation set again."""
    import torch
    from peft import PeftModel

    from tuneproof.data import load_records
    from tuneproof.models import load_model
    from tuneproof.train import length_grouped_batches
    from tuneproof.train.sft import SftCollator, completion_loss, encode_sft

    cfg = make_config(tiny_llama_dir, eval_rows=qa_rows(10, seed=9), train={"lr": 5e-3})
    result = train(cfg)
    base, tok = load_model(tiny_llama_dir, "sft")
    model = PeftModel.from_pretrained(base, result.model_dir).eval()
    feats = [encode_sft(r, tok, 64)[0] for r in load_records(cfg["data"]["eval_path"]).records]
    total, n = 0.0, 0
    with torch.no_grad():
        for b in length_grouped_batches([len(f["input_ids"]) for f in feats], batch_size=4):
            batch = SftCollator(tok.pad_token_id)([[feats[i] for i in b]])
            labels = batch.pop("labels")
            # The eval loss is the mean over every completion token of the validation set.
            tokens = int((labels[:, 1:] != -100).sum())
            total += completion_loss(model(**batch), labels).item() * tokens
            n += tokens
    assert total / n == pytest.approx(result.final_metrics["loss"], rel=1e-4)
    # ...and training changed the model: the base alone scores differently.
    assert abs(result.final_metrics["loss"] - result.guard["curve"][0]["val_loss"]) > 1e-3


def test_selection_metrics_rank_by_the_metric_and_break_ties_by_loss():
    from types import SimpleNamespace

    import numpy as np

    from tuneproof.train.classification import SelectionMetrics

    labels = np.array([0, 0, 1, 1])
    score = SelectionMetrics("accuracy")

    def at(logits):
        return score(SimpleNamespace(predictions=np.array(logits, dtype=float), label_ids=labels))

    # Three of four right, but one wrong answer held with great confidence: high loss.
    confident_miss = at([[3, 0], [3, 0], [0, 3], [9, 0]])
    # Two of four right, every answer hedged: lower loss, lower accuracy.
    hedged = at([[0.2, 0], [0.2, 0], [0.2, 0], [0.2, 0]])
    assert confident_miss["accuracy"] == 0.75 and hedged["accuracy"] == 0.5
    assert confident_miss["selection"] > hedged["selection"]  # the metric decides, not the loss
    # Equal accuracy: the lower loss wins, and the tie-break never moves a score by 1e-5.
    sure = at([[4, 0], [4, 0], [0, 4], [0, 4]])
    unsure = at([[0.1, 0], [0.1, 0], [0, 0.1], [0, 0.1]])
    assert sure["accuracy"] == unsure["accuracy"] == 1.0
    assert sure["selection"] > unsure["selection"] > 1.0 - 1e-5
    assert 0.5 < sure["auroc"] <= 1.0 and "macro_f1" in sure
    assert sure["record_loss"] == pytest.approx(np.log1p(np.exp(-4.0)))  # -log softmax of the right class
    assert "selection" not in SelectionMetrics(None)(SimpleNamespace(predictions=np.zeros((4, 2)), label_ids=labels))


def test_classification_picks_its_checkpoint_by_validation_accuracy(tiny_bert_dir, make_config, sentiment_rows):
    cfg = make_config(tiny_bert_dir, task="classification", rows=sentiment_rows(60), model={"method": "full"},
                      train={"lr": 3e-3, "batch_size": 4, "max_steps": 24, "eval_steps": 2})  # fmt: skip
    result = train(cfg)
    assert result.monitor == "val_accuracy"
    evals = result.evals
    # Every evaluation, each once: the last evaluate() of the kept model is not one of them.
    assert [e["step"] for e in evals] == list(range(2, result.global_step + 1, 2))
    top = max(e["accuracy"] for e in evals)
    tied = [e for e in evals if e["accuracy"] == top]
    best = min(tied, key=lambda e: e["record_loss"])  # the per-record mean, not the Trainer's batch mean
    assert result.best_step == best["step"] and result.best_metrics["accuracy"] == top
    # The kept model is that checkpoint: its last evaluation repeats the best one's scores.
    assert result.final_metrics["accuracy"] == top
    assert result.final_metrics["loss"] == pytest.approx(best["loss"], rel=1e-4)
    saved = json.loads(result.train_json.read_text())
    assert saved["monitor"] == "val_accuracy" and "selection" not in saved["best_metrics"]

    by_loss = train({**cfg, "train": {**cfg["train"], "early_stopping": {"monitor": "val_loss"}}})
    assert by_loss.monitor == "val_loss"
    assert by_loss.best_metrics["loss"] == min(e["loss"] for e in by_loss.evals)
    assert by_loss.best_step != result.best_step  # on this run the two rules keep different checkpoints


def test_classification_val_loss_is_the_mean_over_records(tiny_bert_dir, make_config, sentiment_rows):
    # 11 validation records in batches of at most 4 cannot all be the same size, so a mean
    # over batches would weigh the records of the smaller batch more.
    cfg = make_config(tiny_bert_dir, task="classification", rows=sentiment_rows(40), eval_rows=sentiment_rows(11, seed=3),
                      model={"method": "full"}, train={"lr": 3e-3, "batch_size": 4, "max_steps": 4, "eval_steps": 2})  # fmt: skip
    result = train(cfg)
    # record_loss comes from the logits (SelectionMetrics), loss from the training loss function.
    for e in [*result.evals, result.final_metrics]:
        assert e["loss"] == pytest.approx(e["record_loss"], rel=1e-5), e
    # Training moved the loss, so the equality is not of two untouched constants.
    assert result.evals[0]["loss"] != pytest.approx(result.evals[-1]["loss"], rel=1e-3)


def test_auroc_cannot_pick_checkpoints_for_three_classes(tiny_bert_dir, make_config):
    from tuneproof.errors import ConfigError

    rows = [{"text": f"word{i % 7} text {i}", "label": "abc"[i % 3]} for i in range(30)]
    cfg = make_config(tiny_bert_dir, task="classification", rows=rows, eval={"metric": "auroc"})
    with pytest.raises(ConfigError, match="auroc.*2 classes.*Fix: set eval.metric"):
        train(cfg)


def test_a_lower_loss_at_equal_accuracy_does_not_buy_patience(make_config, tiny_bert_dir):
    from types import SimpleNamespace

    from transformers import EarlyStoppingCallback

    from tuneproof.config import load_config
    from tuneproof.train._engine import patience_threshold

    cfg = load_config(make_config(tiny_bert_dir, task="classification"))
    early = EarlyStoppingCallback(3, patience_threshold(cfg))
    args, state = SimpleNamespace(greater_is_better=True), SimpleNamespace(best_metric=None)
    # Spam seed 1's plateau: accuracy 0.974 four times, the loss moving by 1e-4 (selection scores).
    for acc, loss in [(0.974, 0.1033), (0.974, 0.1031), (0.974, 0.1030), (0.974, 0.1029)]:
        value = acc - 1e-6 * loss
        early.check_metric_value(args, state, None, value)
        state.best_metric = max(state.best_metric or -1.0, value)  # what the Trainer keeps as best
    assert early.early_stopping_patience_counter == 3  # patience ran out on the plateau
    early.check_metric_value(args, state, None, 0.974 + 1 / 40 - 1e-6 * 0.2)  # one more record right
    assert early.early_stopping_patience_counter == 0
    sft = load_config(make_config(tiny_bert_dir, train={"early_stopping": {"min_delta": 0.002}}))
    assert patience_threshold(sft) == 0.002


def test_one_process_with_several_gpus_trains_on_one_and_says_how_to_use_all():
    from types import SimpleNamespace

    from rich.console import Console

    from tuneproof.train._engine import one_gpu_per_process

    console = Console(record=True, width=300)
    args = SimpleNamespace(n_gpu=4, _n_gpu=4)  # TrainingArguments.n_gpu reads _n_gpu
    one_gpu_per_process(args, console)
    assert args._n_gpu == 1  # no DataParallel: it would hand each step 4 of our whole batches
    assert "torchrun --nproc_per_node 4" in console.export_text()
    # On the real class: n_gpu and the per-step batch follow _n_gpu (set by hand here, on a CPU).
    from transformers import TrainingArguments

    real = TrainingArguments(output_dir="unused", use_cpu=True, per_device_train_batch_size=1, report_to=[])
    real._n_gpu = 3
    assert real.n_gpu == 3 and real.train_batch_size == 3
    one_gpu_per_process(real, Console(record=True))
    assert real.n_gpu == 1 and real.train_batch_size == 1
    for seen in (0, 1):  # CPU, one GPU, or one rank of torchrun: untouched and silent
        args, console = SimpleNamespace(n_gpu=seen, _n_gpu=seen), Console(record=True)
        one_gpu_per_process(args, console)
        assert args._n_gpu == seen and console.export_text() == ""
