"""The model card states report.json's facts, the verdict first, and never claims more than was proven."""

from __future__ import annotations

import json

import yaml

from tuneproof.export import model_card


def _report(run_dir):
    return json.loads((run_dir / "report.json").read_text())


def test_card_of_a_shipped_model_states_the_proof_from_report_json(sft_run):
    report = _report(sft_run)
    s = report["sections"]
    card = (sft_run / "model" / "README.md").read_text()  # written by the report stage into the shipped model
    adapter = json.loads((sft_run / "train" / "model" / "adapter_config.json").read_text())
    assert card == model_card(report, adapter=adapter)
    head = card.splitlines()[0]
    base = yaml.safe_load(s["reproducibility"]["config"])["model"]["name"]
    assert head == f"# qa: sft fine-tune of {base} (proven improvement)"
    ev, d = s["evaluation"], s["evaluation"]["delta"]
    assert f"**Verdict: {s['verdict']['headline']}.**" in card
    assert f"- Metric: {ev['metric']} (higher is better) on {ev['n_records']} held-out test records" in card
    assert (f"- Tuned {d['tuned']:.4g} vs reference ({ev['reference']}) {d['reference']:.4g}: delta {d['value']:+.4g}, "
            f"{d['confidence']:.0%} CI [{d['ci_low']:+.4g}, {d['ci_high']:+.4g}]") in card  # fmt: skip
    assert f"- Verdict: {ev['verdict']}: {ev['verdict_reason']}" in card
    # the adapter's own rank and alpha (4, 8), not the config's defaults (16, 32): the card states what was trained
    assert "- Method: lora (rank 4, alpha 8, modules down_proj, gate_proj, k_proj, o_proj, q_proj, up_proj, v_proj)" in card
    assert "rank 16" in model_card(report) and "as configured" in model_card(report)
    assert f"## Hyperparameters\n\nNot run: {s['training']['reason']}." in card  # no train.json in this run


def test_stages_that_did_not_run_are_named_not_claimed(sft_run):
    s = _report(sft_run)["sections"]
    card = (sft_run / "model" / "README.md").read_text()
    # this run had no audit, sweep, search or forgetting text: the card says so, with the report's reason
    assert f"- Curation: Not run: {s['audit']['reason']}." in card
    assert f"## Forgetting check\n\nNot run: {s['forgetting']['reason']}." in card
    assert "Whether general ability changed is not measured." in card
    assert "The proof holds for data like the test split only" in card


def test_card_of_an_unproven_model_says_so_first(classify_run):
    report = _report(classify_run)
    card = model_card(report)
    assert report["sections"]["verdict"]["ship"] is False and not (classify_run / "model").exists()
    assert card.splitlines()[0].endswith("(NOT PROVEN)")
    assert "**Verdict: not proven: do not ship**" in card and "proven improvement" not in card
    assert "- Labels: neg, pos" in card
    for cause in report["sections"]["verdict"]["causes"]:
        assert f"- {cause['code']}: {cause['evidence']}" in card


def test_card_from_an_empty_report_claims_nothing():
    card = model_card({"name": "x", "sections": {}})
    assert "NOT PROVEN" in card and "Nothing about this model's quality is proven." in card


def test_exported_card_adds_the_round_trip_facts(sft_run, tmp_path):
    from tuneproof.export import export

    res = export(sft_run, "merged", tmp_path / "m")
    card = (res.out / "README.md").read_text()
    assert card.startswith((sft_run / "model" / "README.md").read_text().rstrip("\n"))
    assert "## This export" in card and "- Format: merged" in card and "from_pretrained(folder)" in card
