from __future__ import annotations

import hashlib
import json

import pytest
from typer.testing import CliRunner

from tests.audit.conftest import CLEAN_QA, write_jsonl
from tuneproof.audit import audit, curate
from tuneproof.audit.embed import HashingEmbedder
from tuneproof.cli import app
from tuneproof.config import AuditConfig


def _rows():
    rows: list = [{"question": q, "answer": a, "source": f"s{i}"} for i, (q, a) in enumerate(CLEAN_QA)]
    rows += [
        {"question": "WHAT is a stock dividend?", "answer": CLEAN_QA[0][1], "source": "dup"},  # exact dup of line 1
        "{broken json",
        "",
        {"question": "Contact", "answer": "mail jane@example.com for the form", "source": "pii"},
        {"question": "Meaningless", "answer": "xq7#k@ zz9!q pl%w8 rrt& qzvbn jjk4$", "source": "garbled"},
        {"question": "Missing answer"},
    ]
    return rows


@pytest.fixture
def data(tmp_path):
    return write_jsonl(tmp_path / "train.jsonl", _rows())


FIELDS = {"prompt": "question", "completion": "answer"}


def _read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_curate_keeps_invariant_with_unreadable_lines_and_original_content(data, tmp_path):
    res = curate(data, out=tmp_path / "out", fields=FIELDS, progress=False)
    out = tmp_path / "out"
    kept, removed, unreadable = _read(out / "kept.jsonl"), _read(out / "removed.jsonl"), _read(out / "unreadable.jsonl")
    n_lines = len(data.read_text().splitlines())
    assert len(kept) + len(removed) + len(unreadable) == n_lines == 14
    assert len(unreadable) == 3  # broken JSON, blank line, missing field
    # Kept rows are the original lines: original column names and extra columns intact.
    original = data.read_text().splitlines()
    assert (out / "kept.jsonl").read_text().splitlines()[0] == original[0]
    assert set(kept[0]) == {"question", "answer", "source"}
    by_id = {r["id"]: r for r in removed}
    assert by_id["train.jsonl:9"]["reasons"][0]["check"] == "exact_duplicate"
    assert by_id["train.jsonl:9"]["reasons"][0]["duplicate_of"] == "train.jsonl:1"
    assert by_id["train.jsonl:13"]["reasons"][0]["code"] == "garbled text"
    assert by_id["train.jsonl:9"]["record"]["source"] == "dup"
    # PII is flagged, not removed, by default.
    assert any(r["source"] == "pii" for r in kept)
    m = json.loads((out / "manifest.json").read_text())
    assert m["input"]["sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
    assert m["counts"]["input_rows"] == 14 and m["counts"]["kept"] == len(kept) == len(res.kept)
    assert m["counts"]["removed_by_check"] == {"exact_duplicate": 1, "low_quality": 1}
    assert m["counts"]["flagged_kept_by_check"]["pii"] == 1
    assert m["version"] and m["config"]["decisions"]["pii"] == "flag"
    assert m["checks"]["off_domain"].startswith("not run: no domain")
    assert (out / "findings.jsonl").exists() and (out / "audit.json").exists()


def test_decisions_are_configurable(data, tmp_path):
    cfg = AuditConfig(decisions={"pii": "remove", "exact_duplicate": "keep"})
    res = curate(data, out=tmp_path / "o", fields=FIELDS, config=cfg, progress=False)
    removed = {r["id"]: r for r in _read(tmp_path / "o" / "removed.jsonl")}
    assert "train.jsonl:12" in removed and "train.jsonl:9" not in removed
    assert len(res.kept) + len(res.removed) + res.unreadable == 14


def test_dry_run_writes_nothing_and_counts_per_check(data, tmp_path):
    res = curate(data, dry_run=True, fields=FIELDS, progress=False)
    rows = {r[0]: r for r in res.dry_run_rows()}
    assert rows["exact_duplicate"][3] == 1 and rows["low_quality"][3] == 1
    assert rows["off_domain"][1].startswith("not run")
    assert not any(tmp_path.glob("*/kept.jsonl"))


def test_select_keeps_the_best_fraction_and_still_accounts_for_every_row(tmp_path):
    refs = write_jsonl(tmp_path / "refs.jsonl", [{"text": q + " " + a} for q, a in CLEAN_QA])
    off = [{"prompt": f"Chat {i}", "completion": f"My cat number {i} sleeps on the warm sofa all day long."} for i in range(10)]
    fin = [{"prompt": q, "completion": a} for q, a in CLEAN_QA]
    data = write_jsonl(tmp_path / "d.jsonl", fin + off + ["not json"])
    cfg = AuditConfig(off_domain_threshold=-1.0, checks=["exact_duplicate", "low_quality", "off_domain"])
    res = curate(data, out=tmp_path / "s", domain=refs, config=cfg, select=0.4, embedder=HashingEmbedder(), progress=False)
    kept = _read(tmp_path / "s" / "kept.jsonl")
    assert len(kept) == round(0.4 * 18)
    # Relevance ranks the finance records first.
    assert sum(r["prompt"].startswith("Chat") for r in kept) == 0
    removed = _read(tmp_path / "s" / "removed.jsonl")
    assert len(kept) + len(removed) + 1 == 19
    assert all(r["reasons"][0]["check"] == "select" for r in removed)
    assert res.manifest["selection"]["kept"] == len(kept)


def test_select_spreads_over_clusters(tmp_path):
    # 20 near-identical top scorers and 20 varied ones: the selection must not be all clones.
    clones = [{"text": f"stock dividend bond yield fund {i % 3} alpha"} for i in range(20)]
    varied = [{"text": f"{w} market note about equities and bonds number {i}"} for i, w in enumerate("abcdefghijklmnopqrst")]
    data = write_jsonl(tmp_path / "d.jsonl", clones + varied)
    refs = write_jsonl(tmp_path / "r.jsonl", [{"text": "stock dividend bond yield fund alpha"}] * 6)
    cfg = AuditConfig(off_domain_threshold=-1.0, checks=["off_domain"])
    res = curate(data, dry_run=True, domain=refs, config=cfg, select=0.25, embedder=HashingEmbedder(), progress=False)
    kept_varied = sum(1 for i in res.kept if i >= 20)
    assert len(res.kept) == 10 and kept_varied >= 2


def test_select_must_be_a_fraction(data):
    with pytest.raises(ValueError, match="fraction"):
        curate(data, dry_run=True, select=1.5)


def test_audit_writes_findings_and_stats(tmp_path):
    rows = [{"text": "a good film", "label": "pos"}] * 3 + [{"text": f"film {i} was fine", "label": "neg"} for i in range(40)]
    data = write_jsonl(tmp_path / "c.jsonl", rows)
    result = audit(data, out=tmp_path / "a", task="classification", embedder=HashingEmbedder(), progress=False)
    report = json.loads((tmp_path / "a" / "audit.json").read_text())
    assert report["stats"]["classes"] == {"neg": 40, "pos": 3}
    assert any("class imbalance" in p for p in report["stats"]["problems"])
    assert report["stats"]["words"]["max"] == 4
    assert report["checks"]["exact_duplicate"]["records"] == 2
    assert report["checks"]["leakage"]["status"].startswith("not run")
    lines = [json.loads(x) for x in (tmp_path / "a" / "findings.jsonl").read_text().splitlines()]
    assert len(lines) == len(result.findings)
    assert {"id", "check", "severity", "reason"} <= set(lines[0])


runner = CliRunner()


def test_cli_audit_and_curate(data, tmp_path, tiny_llama_dir):
    out = tmp_path / "cli"
    args = ["--field", "prompt=question", "--field", "completion=answer", "--model", str(tiny_llama_dir)]
    r = runner.invoke(app, ["audit", str(data), "--out", str(out), *args, "--set", "audit.max_tokens=16"])
    assert r.exit_code == 0, r.output
    assert "exact_duplicate" in r.output and "not run" in r.output
    report = json.loads((out / "audit.json").read_text())
    assert report["checks"]["too_long"]["status"] == "ran"
    r = runner.invoke(app, ["curate", str(data), "--dry-run", *args])
    assert r.exit_code == 0, r.output
    assert "dry run" in r.output and "kept 9 + removed 2 + unreadable 3" in r.output.replace("\n", " ")


def test_cli_errors_are_one_clear_message(tmp_path):
    r = runner.invoke(app, ["curate", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "o")])
    assert r.exit_code == 1 and "no such file" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["curate", str(tmp_path / "x.jsonl"), "--dry-run", "--select", "2"])
    assert r.exit_code == 1 and "fraction" in r.output
    r = runner.invoke(app, ["audit", str(tmp_path / "x.jsonl"), "--out", str(tmp_path), "--set", "audit.bands=5"])
    assert r.exit_code == 1 and "divisible" in r.output


def test_curate_csv_keeps_original_columns(tmp_path):
    path = tmp_path / "d.csv"
    lines = ["review,sentiment,movie"] + [f'"{q} {a}",pos,m{i}' for i, (q, a) in enumerate(CLEAN_QA)]
    lines += [f'"{CLEAN_QA[0][0]} {CLEAN_QA[0][1]}",pos,copy', '"unterminated,neg']
    path.write_text("\n".join(lines) + "\n")
    res = curate(path, out=tmp_path / "o", fields={"text": "review", "label": "sentiment"}, progress=False)
    kept = _read(tmp_path / "o" / "kept.jsonl")
    assert len(kept) == len(CLEAN_QA) and set(kept[0]) == {"review", "sentiment", "movie"}
    assert kept[0]["movie"] == "m0"
    assert res.manifest["counts"]["removed"] == 1
    assert len(kept) + res.manifest["counts"]["removed"] + res.unreadable == res.audit.loaded.total_rows


def test_cli_reads_domain_task_and_limits_from_a_run_config(data, tmp_path, tiny_llama_dir):
    import yaml

    cfg = tmp_path / "tuneproof.yaml"
    cfg.write_text(yaml.safe_dump({
        "name": "t", "task": "sft",
        "data": {"path": str(data), "fields": FIELDS, "eval_path": str(data)},
        "model": {"name": str(tiny_llama_dir), "max_length": 16},
        "audit": {"decisions": {"pii": "remove"}},
    }))  # fmt: skip
    r = runner.invoke(app, ["curate", str(data), "--config", str(cfg), "--out", str(tmp_path / "c")])
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "c" / "manifest.json").read_text())
    assert m["checks"]["leakage"] == "ran" and m["checks"]["too_long"] == "ran"
    assert m["config"]["max_tokens"] == 16 and m["config"]["decisions"]["pii"] == "remove"
    # Every record also sits in the eval file, so leakage removes them all.
    assert m["counts"]["kept"] == 0 and m["counts"]["removed"] + m["counts"]["unreadable"] == 14


def test_low_quality_is_removed_for_sft_but_only_flagged_for_classification(tmp_path):
    garbled = "xq7#k@ zz9!q pl%w8 rrt& qzvbn jjk4$ $$$ ### !!! %%% qq9 zz8"
    sft = write_jsonl(tmp_path / "sft.jsonl", [{"prompt": q, "completion": a} for q, a in CLEAN_QA] + [{"prompt": "Meaningless", "completion": garbled}])
    res = curate(sft, dry_run=True, progress=False, config=AuditConfig(checks=["low_quality"]))
    assert res.manifest["counts"]["removed_by_check"] == {"low_quality": 1}
    # A classifier must label garbled inputs (spam often is): the same finding is flagged, the record kept.
    rows = [{"text": f"{q} {a}", "label": "pos" if i % 2 else "neg"} for i, (q, a) in enumerate(CLEAN_QA)]
    cls = write_jsonl(tmp_path / "cls.jsonl", rows + [{"text": garbled, "label": "spam"}])
    res = curate(cls, dry_run=True, task="classification", progress=False, config=AuditConfig(checks=["low_quality"]))
    assert res.manifest["counts"]["removed"] == 0 and res.manifest["counts"]["flagged_kept_by_check"] == {"low_quality": 1}
    # an explicit decision wins over auto
    res = curate(cls, dry_run=True, task="classification", progress=False,
                 config=AuditConfig(checks=["low_quality"], decisions={"low_quality": "remove"}))  # fmt: skip
    assert res.manifest["counts"]["removed_by_check"] == {"low_quality": 1}


def test_curate_acts_on_a_given_audit_instead_of_auditing_again(tmp_path):
    rows = [{"prompt": p, "completion": c} for p, c in CLEAN_QA] + [{"prompt": CLEAN_QA[0][0], "completion": CLEAN_QA[0][1]}]
    data = write_jsonl(tmp_path / "d.jsonl", rows)
    cfg = AuditConfig(checks=["exact_duplicate"])
    audited = audit(data, config=cfg, progress=False)
    res = curate(data, out=tmp_path / "o", config=cfg, audited=audited, progress=False)
    assert res.audit is audited and res.manifest["counts"]["removed"] == 1
    other = write_jsonl(tmp_path / "other.jsonl", rows)
    with pytest.raises(ValueError, match="not of"):
        curate(other, out=tmp_path / "o2", config=cfg, audited=audited, progress=False)
