"""The report from a real run directory: sections, plots, escaping, report.json, missing stages."""

from __future__ import annotations

import base64
import json
import re
import shutil

import pytest

from tuneproof.errors import DataError
from tuneproof.report import SECTIONS, build_report

SCRIPT = "<script>alert(1)</script>"  # the hostile record of conftest.py


def _section(page: str, sid: str) -> str:
    m = re.search(rf'<section id="{re.escape(sid)}"[^>]*>(.*?)</section>', page, re.S)
    assert m, f"section {sid} missing"
    return m.group(1)


@pytest.fixture(scope="module")
def built(run_dir):
    path = build_report(run_dir)
    return path.read_text(encoding="utf-8"), json.loads((run_dir / "report.json").read_text(encoding="utf-8"))


def test_every_section_is_present_and_filled(built, run_dir):
    page, facts = built
    assert list(facts["sections"]) == list(SECTIONS)
    for sid in SECTIONS:
        assert f'<section id="{sid}" data-status="ok">' in page, sid
        assert facts["sections"][sid]["status"] == "ok", (sid, facts["sections"][sid].get("reason"))
    assert facts["problems"] == []


def test_plots_are_embedded_pngs_and_nothing_is_fetched(built):
    page, _ = built
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([A-Za-z0-9+/=]+)">', page)
    assert {alt for alt, _ in images} == {"learning-rate sweep", "trial history", "parameter importances", "training curves",
                                          "learning curve"}
    for _, b64 in images:
        assert base64.b64decode(b64)[:8] == b"\x89PNG\r\n\x1a\n"
    # Self-contained: no external URL in any src/href, and a CSP that forbids loading anything.
    assert not re.search(r'(src|href)="(?!data:|#)', page)
    assert "default-src 'none'" in page


def test_dataset_text_is_escaped(built):
    page, facts = built
    # The hostile record is shown (removed by the audit, and scored in the evaluation) ...
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in _section(page, "audit")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in _section(page, "evaluation")
    assert "&lt;img src=x onerror=alert(2)&gt;" in page
    # ... but never as markup: the page has no script element and no raw tag from the data.
    assert "<script" not in page.lower()
    assert "<img src=x" not in page and "<b>this</b>" not in page
    # report.json keeps the raw text (JSON, not HTML).
    assert SCRIPT in json.dumps(facts)


def test_facts_match_the_stage_outputs(built, run_dir):
    _, facts = built
    s = facts["sections"]
    manifest = json.loads((run_dir / "curate" / "manifest.json").read_text())
    assert s["audit"]["curation"] == manifest["counts"]
    dup = s["audit"]["checks"]["exact_duplicate"]
    assert dup["records"] == 3 and len(dup["examples"]["identical text"]) == 3  # the 3 copies of row 1
    assert s["audit"]["checks"]["off_domain"]["status"].startswith("not run")
    # Kept but flagged: the text comes from the audited input, not removed.jsonl.
    [pii] = [x for exs in s["audit"]["checks"]["pii"]["examples"].values() for x in exs]
    assert "jane.doe@example.com" in pii["text"]
    ev = json.loads((run_dir / "evaluate" / "eval.json").read_text())
    assert s["evaluation"]["delta"] == ev["delta"] and s["verdict"]["delta"] == ev["delta"]
    assert s["evaluation"]["metrics"] == ev["metrics"]
    gains = [json.loads(line)["gain"] for line in (run_dir / "evaluate" / "records.jsonl").read_text().splitlines()]
    wins, losses = [w["gain"] for w in s["evaluation"]["wins"]], [x["gain"] for x in s["evaluation"]["losses"]]
    assert wins == sorted((g for g in gains if g > 0), reverse=True)[:5]
    assert losses == sorted(g for g in gains if g < 0)[:5]
    assert wins or losses  # NLL per record always moves after training
    assert s["forgetting"]["n_texts"] >= 1 and "flagged" in s["forgetting"]
    sweep = json.loads((run_dir / "lr_sweep" / "lr_sweep.json").read_text())
    assert s["lr-sweep"]["best_lr"] == sweep["best_lr"] and len(s["lr-sweep"]["points"]) == 3
    assert s["lr-sweep"]["train_lr"] == sweep["train_lr"] and s["lr-sweep"]["horizon"] == sweep["horizon"] > 0
    assert s["search"]["n_trials"] == 4 and s["search"]["best"]["value"] == min(t["value"] for t in s["search"]["trials"])
    train = json.loads((run_dir / "train" / "train.json").read_text())
    assert s["training"]["curve"] == train["guard"]["curve"] and s["training"]["best_step"] == train["best_step"]
    repro = s["reproducibility"]
    assert repro["versions"] == {"torch": "9.9-test"} and "name: t" in repro["config"]
    assert all(len(h) == 64 for h in repro["data_hashes"].values())


def test_decision_headline_causes_and_ci_are_in_the_verdict(built):
    page, _ = built
    verdict = _section(page, "verdict")
    assert "not proven: do not ship" in verdict and 'class="noship"' in verdict
    assert "test_too_small" in verdict and "score on a few hundred test records" in verdict
    assert "95% CI [" in verdict
    sweep = _section(page, "lr-sweep")
    assert "-step training: " in sweep  # the rate the training used, and why when it is not the best
    preflight = _section(page, "preflight")
    assert "too_few_examples" in preflight and 'class="high"' in preflight and "0.21" in preflight


def test_missing_stages_say_not_run_with_the_pipeline_reason(tmp_path):
    (tmp_path / "pipeline.json").write_text(json.dumps({"stages": [
        {"name": "tune", "status": "off", "note": "search.n_trials=0 in the config"},
        {"name": "train", "status": "failed", "note": "out of memory at step 3"},
    ]}))  # fmt: skip
    page = build_report(tmp_path).read_text()
    facts = json.loads((tmp_path / "report.json").read_text())["sections"]
    for sid in SECTIONS:
        assert f'<section id="{sid}"' in page
    assert facts["search"] == {"title": "Hyperparameter search", "status": "not run", "reason": "stage 'tune' off: search.n_trials=0 in the config"}
    assert facts["training"]["reason"] == "stage 'train' failed: out of memory at step 3"
    assert "evaluate/eval.json is missing" in facts["evaluation"]["reason"]
    assert "not run: stage &#x27;tune&#x27; off" in _section(page, "search")
    assert facts["reproducibility"]["status"] == "ok" and "report time" in facts["reproducibility"]["versions_source"]


def test_an_empty_directory_still_reports(tmp_path):
    build_report(tmp_path)
    facts = json.loads((tmp_path / "report.json").read_text())["sections"]
    assert {sid for sid, s in facts.items() if s["status"] == "not run"} == set(SECTIONS) - {"reproducibility"}
    assert facts["lr-sweep"]["reason"] == "lr_sweep/lr_sweep.json is missing"


def test_a_corrupt_file_is_named_not_fatal(run_dir, tmp_path):
    run = shutil.copytree(run_dir, tmp_path / "t", ignore=shutil.ignore_patterns("model", "checkpoint*", "trials"))
    (run / "evaluate" / "records.jsonl").write_text('{"id": "a", "gain": 1}\nnot json\n')
    page = build_report(run).read_text()
    facts = json.loads((run / "report.json").read_text())
    assert facts["problems"] == ["evaluate/records.jsonl line 2: not JSON (Expecting value: line 1 column 1 (char 0)); line skipped"]
    assert [w["id"] for w in facts["sections"]["evaluation"]["wins"]] == ["a"]
    assert 'id="problems"' in page and "records.jsonl line 2" in page
    (run / "evaluate" / "eval.json").write_text("{not json")
    build_report(run)
    facts = json.loads((run / "report.json").read_text())
    assert facts["sections"]["evaluation"]["status"] == "not run"
    assert facts["sections"]["forgetting"]["status"] == "not run"
    assert any(p.startswith("evaluate/eval.json: unreadable") for p in facts["problems"])
    # The decision still gives the verdict; it just has no CI from the evaluation now.
    assert facts["sections"]["verdict"]["headline"] == "not proven: do not ship"


def test_ranked_findings_show_the_most_suspicious_first(tmp_path):
    (tmp_path / "audit").mkdir()
    (tmp_path / "audit" / "audit.json").write_text(json.dumps({"checks": {"label_issue": {"status": "ran", "findings": 5, "records": 5}}}))
    rows = [{"id": f"d.jsonl:{i}", "check": "label_issue", "code": "label disagrees with the data", "reason": "r", "rank": r}
            for i, r in zip(range(1, 6), (4, 2, 5, 1, 3))]
    rows.insert(2, {"id": "d.jsonl:9", "check": "pii", "code": "email", "reason": "r"})  # unranked: kept in order
    (tmp_path / "audit" / "findings.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    page = build_report(tmp_path).read_text()
    assert "label_issue: label disagrees with the data (ranked: the top of the list, rank 1 first)" in page
    assert "pii: email</h4>" in page
    checks = json.loads((tmp_path / "report.json").read_text())["sections"]["audit"]["checks"]
    assert [x["id"] for x in checks["label_issue"]["examples"]["label disagrees with the data"]] == ["d.jsonl:4", "d.jsonl:2", "d.jsonl:5"]
    assert [x["id"] for x in checks["pii"]["examples"]["email"]] == ["d.jsonl:9"]


def test_pruned_trials_are_listed(run_dir, tmp_path):
    run = tmp_path / "r"
    (run / "tune").mkdir(parents=True)
    trials = json.loads((run_dir / "tune" / "trials.json").read_text())
    pruned = {**trials["trials"][0], "number": 4, "state": "PRUNED", "value": None, "curve": [[2, 6.5]]}
    trials["trials"].append(pruned)
    (run / "tune" / "trials.json").write_text(json.dumps(trials))
    page = build_report(run).read_text()
    s = json.loads((run / "report.json").read_text())["sections"]["search"]
    assert [t["number"] for t in s["pruned"]] == [4] and s["states"] == {"COMPLETE": 4, "PRUNED": 1}
    search = _section(page, "search")
    assert "<h3>Pruned trials</h3><table>" in search and "<td>4</td><td>2</td>" in search
    assert s["importances_note"] == "tune/importances.json is missing"


def test_not_a_directory_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="not a run directory.*Fix: pass runs/<name>"):
        build_report(tmp_path / "nope")


def test_cli_rebuilds_the_report(run_dir, tmp_path):
    from typer.testing import CliRunner

    from tuneproof.cli import app

    run = shutil.copytree(run_dir, tmp_path / "t", ignore=shutil.ignore_patterns("model", "checkpoint*", "trials", "report.*"))
    result = CliRunner().invoke(app, ["report", str(run)])
    assert result.exit_code == 0, result.output
    assert str(run / "report.html") in result.output.replace("\n", "")
    assert (run / "report.html").is_file() and (run / "report.json").is_file()
    bad = CliRunner().invoke(app, ["report", str(tmp_path / "missing")])
    assert bad.exit_code == 1 and "not a run directory" in bad.output and "Traceback" not in bad.output


def test_the_overfitting_guard_and_early_stop_are_marked(run_dir, tmp_path):
    # The real train.json, as the guard writes it when it fires (fields from tuneproof.train).
    train = json.loads((run_dir / "train" / "train.json").read_text())
    train["stopped_early"] = True
    train["guard"].update(overfitting=True, detected_step=4, reason="val loss rose for 2 evaluations while train loss fell")
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "train.json").write_text(json.dumps(train))
    page = build_report(tmp_path).read_text()
    training = _section(page, "training")
    assert "Overfitting guard fired at step 4: val loss rose for 2 evaluations" in training
    assert "stopped early" in training
    s = json.loads((tmp_path / "report.json").read_text())["sections"]["training"]
    assert s["overfitting"] and s["guard_step"] == 4 and s["stopped_early"]


def test_a_checkpoint_chosen_by_accuracy_says_so_and_plots_it(run_dir, tmp_path):
    from tuneproof.report import _plots

    train = json.loads((run_dir / "train" / "train.json").read_text())
    steps = [c["step"] for c in train["guard"]["curve"]]
    train["monitor"] = "val_accuracy"
    train["evals"] = [{"step": s, "loss": 0.5, "accuracy": 0.6 + 0.01 * i} for i, s in enumerate(steps)]
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "train.json").write_text(json.dumps(train))
    training = _section(build_report(tmp_path).read_text(), "training")
    assert "chosen by highest validation accuracy, ties broken by the lower cross-entropy per record" in training
    s = json.loads((tmp_path / "report.json").read_text())["sections"]["training"]
    assert s["monitor"] == "val_accuracy" and [e["step"] for e in s["evals"]] == steps
    # The accuracy curve is drawn: the plot differs from the loss-only one.
    assert _plots.training_plot(s) != _plots.training_plot({**s, "evals": []})
