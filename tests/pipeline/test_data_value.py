"""The data-value learning curve: its budget, its subsets, the fit, the advice, and a run that draws it."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from tuneproof.config import load_config
from tuneproof.errors import TuneproofError
from tuneproof.pipeline._data_value import (
    chosen_setup, fit_curve, plan_points, random_subsets, recommend, summarize,
)  # fmt: skip

FRACTIONS = [0.1, 0.2, 0.4, 0.7, 1.0]


@pytest.mark.parametrize("n_train,final,batch,seeds", [(1000, 375, 8, 2), (5000, 1900, 8, 3), (800, 300, 16, 2)])
def test_the_plan_spends_the_budget_and_trains_each_subset_the_same_passes(n_train, final, batch, seeds):
    p = plan_points(n_train, FRACTIONS, seeds, final_steps=final, budget=2.0, batch=batch)
    steps = {(x["arm"], x["fraction"]): x["steps"] for x in p["points"]}
    assert p["total_steps"] == seeds * sum(steps.values()) <= 2.0 * final
    assert p["total_steps"] >= 0.9 * 2.0 * final  # the budget is spent, not just respected
    assert p["over_budget"] is None
    # one point for the full data, two (ranked, random) of the same size and steps below it
    assert [x["arm"] for x in p["points"]].count("full") == 1 and steps[("ranked", 0.2)] == steps[("random", 0.2)]
    for x in p["points"]:  # steps in proportion to the subset: the same passes over each
        assert x["steps"] * batch / x["records"] == pytest.approx(p["epochs"], rel=0.15)


def test_a_tiny_training_keeps_the_floor_and_says_it_costs_more():
    p = plan_points(40, [0.25, 0.5, 1.0], 2, final_steps=4, budget=2.0, batch=4)
    assert all(x["steps"] == 4 for x in p["points"])  # MIN_SWEEP_STEPS: fewer are mostly warm-up
    assert p["total_steps"] == 2 * 5 * 4 and "at least 4 steps" in p["over_budget"] and "10x" in p["over_budget"]


def test_random_subsets_are_nested_prefixes_and_each_seed_draws_its_own():
    sizes = [10, 20, 40, 70, 100]
    a, b = random_subsets(100, sizes, seed=1), random_subsets(100, sizes, seed=2)
    for small, large in zip(sizes, sizes[1:]):
        assert set(a[small]) < set(a[large])
    assert [len(a[n]) for n in sizes] == sizes and a[100] == list(range(100))
    assert a[20] != b[20] and random_subsets(100, sizes, seed=1) == a


def test_the_fit_recovers_a_known_curve_and_refuses_too_few_sizes():
    n = np.array([120, 240, 480, 840, 1200.0])
    rng = np.random.default_rng(0)
    fit = fit_curve(n, 1.2 + 0.6 * (n / 1200) ** -0.5 + rng.normal(0, 0.002, n.size))
    assert fit["a"] == pytest.approx(1.2, abs=0.08) and fit["b"] == pytest.approx(0.6, abs=0.08)
    assert fit["c"] == pytest.approx(0.5, abs=0.08)
    assert fit["slope_at_full"] == pytest.approx(-fit["b"] * fit["c"])
    assert fit["loss_at_2x"] == pytest.approx(1.2 + 0.6 * 2**-0.5, abs=0.01)
    assert fit["data_to_halve_gap"] == pytest.approx(2 ** (1 / fit["c"]))
    assert fit_curve(n[:3], [2.0, 1.8, 1.7]) is None


def _losses(sizes: dict[float, int], *, ranked_shift: float, n_records: int = 300, seeds: int = 2, seed: int = 0):
    """Per-record losses on a known curve, 1 + 2 (n/N)^-0.5, plus record difficulty and seed noise;
    ranked subsets ``ranked_shift`` off the random ones. The base model sits at 6."""
    rng = np.random.default_rng(seed)
    difficulty = rng.uniform(-0.5, 0.5, n_records)  # shared by every point: the pairing cancels it
    full = max(sizes.values())

    def point(n, shift=0.0):
        return np.stack([1 + 2 * (n / full) ** -0.5 + shift + difficulty + rng.normal(0, 0.05, n_records) for _ in range(seeds)])

    losses = {"full": point(full)}
    for f, n in sizes.items():
        if f < 1:
            losses[f"ranked@{f:g}"], losses[f"random@{f:g}"] = point(n, ranked_shift), point(n)
    return losses, 6.0 + difficulty


def test_the_summary_compares_ranked_with_random_paired_and_fits_the_random_curve():
    sizes = {0.1: 100, 0.2: 200, 0.4: 400, 0.7: 700, 1.0: 1000}
    losses, base = _losses(sizes, ranked_shift=-0.5)
    out = summarize(losses, sizes, base, resamples=400)
    rows = {r["fraction"]: r for r in out["rows"]}
    for f in (0.1, 0.2, 0.4, 0.7):
        d = rows[f]["ranked_minus_random"]
        assert d["value"] == pytest.approx(-0.5, abs=0.03) and d["ci"][1] < 0 and d["verdict"] == "ranked better"
        assert d["ci"][1] - d["ci"][0] < 0.1  # paired: the records' difficulty (spread 1.0) cancels
    # the share of the full data's gain (base 6 -> full 3) that a random 20% gives: (6 - (1 + 2 * 0.2**-0.5)) / 3
    share = rows[0.2]["random"]["share_of_gain"]
    assert share["value"] == pytest.approx((6 - 1 - 2 * 0.2**-0.5) / 3, abs=0.03) and share["ci"][0] < share["value"] < share["ci"][1]
    assert out["headline"]["fraction"] == 0.2 and out["headline"]["random_share"] == share
    fit = out["fit"]
    assert fit["status"] == "ok" and fit["c"] == pytest.approx(0.5, abs=0.1)
    assert fit["slope_at_full"]["ci"][0] < -2 * 0.5 < fit["slope_at_full"]["ci"][1] + 0.1
    # the ranked 40% (1 + 2 * 0.4**-0.5 - 0.5 = 3.66) is worse than the full data (3) beyond noise; the ranked 70% (2.89) is not
    assert rows[0.4]["ranked_minus_full"]["verdict"] == "worse than the full data"
    assert rows[0.7]["ranked_minus_full"]["verdict"] == "better than the full data"
    assert out["recommendation"]["selection"] == "ranked" and out["recommendation"]["advice"] == "curate --select 0.7"


def test_three_sizes_are_reported_as_points_without_a_made_up_curve():
    sizes = {0.25: 250, 0.5: 500, 1.0: 1000}
    losses, base = _losses(sizes, ranked_shift=0.0)
    out = summarize(losses, sizes, base, resamples=200)
    assert out["fit"]["status"].startswith("not fitted: 3 data sizes") and "a" not in out["fit"]
    assert len(out["rows"]) == 3 and out["recommendation"]["selection"] == "all"


def _row(f, ranked_full, random_full, ranked_random):
    return {"fraction": f, "records": round(1000 * f), "ranked_minus_full": {"ci": ranked_full},
            "random_minus_full": {"ci": random_full}, "ranked_minus_random": {"ci": ranked_random}}  # fmt: skip


def test_the_advice_is_select_only_when_the_ranking_is_not_worse_than_random():
    within, worse, better = [-0.02, 0.03], [0.1, 0.3], [-0.3, -0.1]
    # the ranked 20% reaches the full data and is no worse than random there
    rec = recommend([_row(0.1, worse, worse, within), _row(0.2, within, worse, better), {"fraction": 1.0}])
    assert rec["selection"] == "ranked" and rec["fraction"] == 0.2 and rec["advice"] == "curate --select 0.2"
    # only random subsets reach it; ranked ones are worse than random beyond noise: no --select
    rec = recommend([_row(0.1, worse, within, [0.05, 0.2]), _row(0.4, worse, within, [0.02, 0.1]), {"fraction": 1.0}])
    assert rec["selection"] == "random" and rec["advice"] is None and rec["fraction"] == 0.1
    assert "does not beat random" in rec["why"] and "10%, 40%" in rec["why"]
    # a ranked fraction that reaches the full data but is worse than random there is passed over
    rec = recommend([_row(0.05, worse, worse, within), _row(0.1, within, within, [0.05, 0.2]), _row(0.2, within, within, within),
                     {"fraction": 1.0}])  # fmt: skip
    assert rec["advice"] == "curate --select 0.2"
    # every subset within noise of the full data, even a random 10%: the curve does not resolve size
    rec = recommend([_row(0.1, within, within, within), _row(0.5, within, within, within), {"fraction": 1.0}])
    assert rec["selection"] == "inconclusive" and rec["fraction"] is None and rec["advice"] is None
    assert "does not resolve data size" in rec["why"]
    # nothing reaches the full data: all of it, with what twice the data is predicted to give
    fit = {"status": "ok", "gain_at_2x": {"value": 0.12, "ci": [0.05, 0.2]}}
    rec = recommend([_row(0.5, worse, worse, within), {"fraction": 1.0}], fit)
    assert rec["selection"] == "all" and rec["fraction"] == 1.0 and "0.12" in rec["why"]


def test_select_records_keeps_exactly_n_by_curates_rule_and_removed_rows_last(tmp_path):
    from tuneproof.audit import audit
    from tuneproof.audit.curate import select_records
    from tuneproof.audit.embed import HashingEmbedder
    from tuneproof.config import AuditConfig

    refs = tmp_path / "refs.jsonl"
    refs.write_text("".join(json.dumps({"text": f"bond yield stock dividend note {i}"}) + "\n" for i in range(6)))
    rows = [{"prompt": f"bond yield question {i}", "completion": "stock dividend answer"} for i in range(6)]
    rows += [{"prompt": f"my cat sleeps {i}", "completion": "on the warm sofa"} for i in range(6)]
    rows += [dict(rows[0])]  # an exact duplicate: curation removes it
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = AuditConfig(off_domain_threshold=-1.0, checks=["exact_duplicate", "off_domain"])
    res = audit(data, domain=refs, config=cfg, embedder=HashingEmbedder(), progress=False)
    top, rule = select_records(res, 2)
    assert len(top) == 2 and all(i in (0, 1, 2, 3, 4, 5, 12) for i in top) and "relevance" in rule  # the finance rows first
    removed = {f.index for f in res.findings if f.check == "exact_duplicate"}
    assert len(removed) == 1
    assert len(select_records(res, 7)[0]) == 7 and not removed & set(select_records(res, 12)[0])
    assert select_records(res, 13)[0] == list(range(13))  # past the 12 candidates, the removed duplicate


def test_without_a_chosen_rate_it_says_what_to_run_first(tmp_path):
    cfg = load_config({"name": "x", "task": "sft", "data": {"path": str(tmp_path / "d.jsonl")},
                       "tracking": {"runs_dir": str(tmp_path / "runs")}})  # fmt: skip
    with pytest.raises(TuneproofError, match="run `tuneproof run CONFIG` first.*or pass --lr"):
        chosen_setup(cfg)
    train = cfg.run_dir / "train"
    train.mkdir(parents=True)
    (train / "train.json").write_text(json.dumps({"data": {"lr": 3e-4}}))
    chosen, lr, source = chosen_setup(cfg)
    assert lr == chosen.train.lr == 3e-4 and "final training" in source
    assert chosen_setup(cfg, lr=1e-3)[1] == 1e-3


def test_the_search_s_best_trial_sets_the_points_settings_with_the_run_s_own_step_budget(tmp_path):
    raw = {"name": "x", "task": "sft", "data": {"path": str(tmp_path / "d.jsonl")}, "train": {"max_steps": 40, "batch_size": 8},
           "tracking": {"runs_dir": str(tmp_path / "runs")}}  # fmt: skip
    cfg = load_config(raw)
    (cfg.run_dir / "tune").mkdir(parents=True)
    best = load_config({**raw, "train": {"max_steps": 5, "batch_size": 4, "lr": 5e-4, "weight_decay": 0.1}})
    (cfg.run_dir / "tune" / "best.yaml").write_text(best.to_yaml())
    chosen, lr, source = chosen_setup(cfg)
    assert (lr, chosen.train.batch_size, chosen.train.weight_decay, chosen.train.max_steps) == (5e-4, 4, 0.1, 40)
    assert "best trial" in source


def test_a_split_too_small_to_draw_a_curve_is_named_with_the_fix(tmp_path):
    from tuneproof.pipeline._data_value import data_value

    cfg = load_config({"name": "x", "task": "sft", "data": {"path": str(tmp_path / "d.jsonl")},
                       "tracking": {"runs_dir": str(tmp_path / "runs")}})  # fmt: skip
    split = cfg.run_dir / "split"
    split.mkdir(parents=True)
    for part, n in (("train", 1), ("val", 3)):
        (split / f"{part}.jsonl").write_text("".join(json.dumps({"prompt": f"q{i}", "completion": "a"}) + "\n" for i in range(n)))
    with pytest.raises(TuneproofError, match=r"train.jsonl: fewer than 2 training records.*Fix: more data"):
        data_value(cfg, lr=1e-3)


def test_the_cli_without_a_run_names_the_missing_split(tmp_path):
    from typer.testing import CliRunner

    from tuneproof.cli import app

    conf = tmp_path / "c.yaml"
    conf.write_text(f"name: x\ntask: sft\ndata: {{path: {tmp_path / 'd.jsonl'}}}\ntracking: {{runs_dir: {tmp_path / 'runs'}}}\n")
    r = CliRunner().invoke(app, ["data-value", str(conf), "--lr", "1e-3"])
    assert r.exit_code == 1 and "no train.jsonl and val.jsonl" in r.output and "tuneproof run CONFIG" in r.output


def _qa(i: int, rng: random.Random) -> dict:
    words = "the capital of france is paris rome madrid water boils at one hundred degrees".split()
    return {"prompt": f"q{i} " + " ".join(rng.choice(words) for _ in range(8)), "completion": " ".join(rng.choice(words) for _ in range(2))}


def test_the_report_shows_the_curve_the_comparison_and_the_advice(tmp_path):
    from tuneproof.report import build_report

    sizes = {0.1: 100, 0.2: 200, 0.4: 400, 0.7: 700, 1.0: 1000}
    losses, base = _losses(sizes, ranked_shift=-0.5)
    summary = summarize(losses, sizes, base, resamples=200)
    plan = plan_points(1000, list(sizes), 2, final_steps=375, budget=2.0, batch=8)
    facts = {"plan": plan, "lr": 2e-4, "lr_source": "the final training's rate", "n_train": 1000, "n_val": 300,
             "ranking": {"rule": "score = relevance - 0.1 per flag"}, "base": {"source": "the base model zero-shot",
             "val_loss": float(base.mean())}, **summary, "confidence": 0.95}  # fmt: skip
    (tmp_path / "data_value").mkdir()
    (tmp_path / "data_value" / "data_value.json").write_text(json.dumps(facts))
    page = build_report(tmp_path).read_text()
    section = page.split('<section id="data-value"')[1].split("</section>")[0]
    assert 'data-status="ok"' in section and "<img" in section and "ranked better" in section
    assert "Slope at 100%" in section and "twice the data" in section and "<code>curate --select 0.7</code>" in section
    # a run without the stage says so
    other = tmp_path / "other"
    other.mkdir()
    assert '<section id="data-value" data-status="not run"' in build_report(other).read_text()


@pytest.mark.slow  # ~2 min of tiny trainings on a busy 2-core CPU
def test_a_run_with_the_stage_draws_the_curve_and_reports_it_and_the_cli_redraws_it(pipeline_config, tmp_path):
    from typer.testing import CliRunner

    from tuneproof.cli import app
    from tuneproof.pipeline import run

    rng = random.Random(5)
    data = tmp_path / "dv.jsonl"
    data.write_text("".join(json.dumps(_qa(i, rng)) + "\n" for i in range(48)))
    cfg = pipeline_config(data={"path": str(data), "val_fraction": 0.25, "test_fraction": 0.2}, train={"lr": 1e-3},
                          audit={"checks": ["exact_duplicate"]},
                          pipeline={"stages": {"tune": False, "curation_ab": False, "baseline": False, "lr_sweep": False,
                                               "data_value": True}, "data_value": {"fractions": [0.25, 0.5], "seeds": 2}})  # fmt: skip
    res = run(cfg)
    st = {s["name"]: s for s in res.stages}
    assert st["data_value"]["status"] == "done"
    out = res.run_dir / "data_value"
    dv = json.loads((out / "data_value.json").read_text())
    assert dv["lr"] == 1e-3 and "final training" in dv["lr_source"]
    assert dv["plan"]["over_budget"] and len(dv["points"]) == 2 * 5  # 2 seeds x (ranked, random at 25% and 50%, full)
    losses = [json.loads(x) for x in (out / "val_losses.jsonl").read_text().splitlines()]
    assert len(losses) == dv["n_val"] and {"base", "full/s0", "ranked@0.25/s1", "random@0.5/s0"} <= set(losses[0])
    rows = {r["fraction"]: r for r in dv["rows"]}
    assert set(rows) == {0.25, 0.5, 1.0}
    assert rows[1.0]["full"]["val_loss"] == pytest.approx(np.mean([[x[f"full/s{s}"] for x in losses] for s in (0, 1)]))
    d = rows[0.5]["ranked_minus_random"]
    assert d["value"] == pytest.approx(rows[0.5]["ranked"]["val_loss"] - rows[0.5]["random"]["val_loss"])
    assert d["ci"][0] <= d["value"] <= d["ci"][1]
    assert dv["fit"]["status"].startswith("not fitted") and dv["recommendation"]["selection"]
    assert dv["base"]["source"] == "the base model zero-shot" and (out / "data_value.png").stat().st_size > 1000
    assert not any(out.glob("points/*/model"))  # scored, then deleted
    page = res.report.read_text()
    section = page.split('<section id="data-value"')[1].split("</section>")[0]
    assert "<img" in section and "ranked − random" in section and "Recommendation:" in section
    facts = json.loads((res.run_dir / "report.json").read_text())["sections"]["data-value"]
    assert facts["status"] == "ok" and facts["recommendation"] == dv["recommendation"]
    # MLflow: the curve is one run under the pipeline's, its points under it
    from tuneproof import track

    client = track._client(load_config(cfg).tracking.resolved_uri())
    exp = client.get_experiment_by_name("tuneproof")
    parent = json.loads((res.run_dir / "pipeline.json").read_text())["mlflow_parent_run_id"]
    curve = client.search_runs([exp.experiment_id], filter_string="tags.`tuneproof.stage` = 'data-value'")
    assert len(curve) == 1 and curve[0].data.tags["mlflow.parentRunId"] == parent
    points = client.search_runs([exp.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{curve[0].info.run_id}'")
    assert len(points) == len(dv["points"])

    conf = tmp_path / "dv.yaml"
    conf.write_text(json.dumps(cfg))
    r = CliRunner().invoke(app, ["data-value", str(conf), "--seeds", "1", "--lr", "2e-3", "--set", "pipeline.data_value.fractions=[0.5]"])
    assert r.exit_code == 0, r.output
    again = json.loads((out / "data_value.json").read_text())
    assert again["lr"] == 2e-3 and again["lr_source"] == "given (--lr)" and len(again["points"]) == 3
    assert "data value (validation loss)" in r.output


@pytest.mark.slow  # three tiny trainings
def test_classification_points_share_the_labels_and_report_accuracy_against_the_class_prior(tmp_path, tiny_bert_dir):
    import io

    from rich.console import Console

    from tuneproof.audit.embed import HashingEmbedder
    from tuneproof.pipeline._data_value import data_value

    rng = random.Random(0)
    words = "good bad film plot actor scene music long short story".split()

    def rows(n, start):  # the first half all "neg": the top of an unscored ranking holds one class
        return [{"id": f"r{start + i}", "text": " ".join(rng.choice(words) for _ in range(5)) + f" item{start + i}",
                 "label": "neg" if i < n // 2 else "pos"} for i in range(n)]  # fmt: skip

    cfg = load_config({"name": "c", "task": "classification", "data": {"path": str(tmp_path / "d.jsonl")},
                       "model": {"name": str(tiny_bert_dir), "method": "full", "max_length": 32},
                       "train": {"batch_size": 4, "max_steps": 4, "bf16": False},
                       "audit": {"checks": ["exact_duplicate"]}, "tracking": {"runs_dir": str(tmp_path / "runs")},
                       "pipeline": {"data_value": {"fractions": [0.1], "seeds": 1}}})  # fmt: skip
    split = cfg.run_dir / "split"
    split.mkdir(parents=True)
    for name, n, start in (("train", 40, 0), ("val", 10, 100)):
        (split / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows(n, start)))
    res = data_value(cfg, lr=1e-3, embedder=HashingEmbedder(), console=Console(file=io.StringIO()))
    assert [p["key"] for p in res["points"]] == ["ranked@0.1", "random@0.1", "full"]
    assert all(0 <= p["accuracy"] <= 1 and p["steps_trained"] == p["steps"] >= 4 for p in res["points"])
    assert res["base"]["source"] == "the training split's class prior"
    assert res["base"]["val_loss"] == pytest.approx(np.log(2), abs=0.01)  # 20/20 labels, add-one smoothed
    assert res["lr_source"] == "given (--lr)" and res["rows"][0]["records"] == 4
    assert res["rows"][1]["full"]["accuracy"] == next(p["accuracy"] for p in res["points"] if p["key"] == "full")


def test_the_command_is_listed_and_has_real_help():
    from typer.testing import CliRunner

    from tuneproof.cli import app

    runner = CliRunner()
    assert "data-value" in runner.invoke(app, ["--help"]).output
    r = runner.invoke(app, ["data-value", "--help"])
    assert r.exit_code == 0 and "--budget" in r.output and "--seeds" in r.output and "--lr" in r.output
