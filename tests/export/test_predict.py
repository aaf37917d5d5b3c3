"""`tuneproof predict`: the tuned model's outputs for new records, unreadable rows to rejects."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from tuneproof.cli import app
from tuneproof.serve import predict


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_sft_predict_matches_the_evaluations_generations(sft_run, tmp_path):
    # The same records through predict and through the evaluation give the same generations:
    # predict uses the evaluation's prompt format and generation loop, not a copy of them.
    res = predict(sft_run, sft_run / "split" / "test.jsonl", tmp_path / "pred.jsonl")
    evaluated = {r["id"]: r["generation"]["tuned"] for r in _rows(sft_run / "evaluate" / "records.jsonl")}
    got = _rows(res.out)
    assert res.n_records == len(got) == len(evaluated) and res.n_rejected == 0
    assert {r["id"]: r["generation"] for r in got} == evaluated
    assert all("Paris" in r["generation"] for r in got)  # what the tuned model learned; the base never says it
    assert got[0]["prompt"].startswith("Where is the") and res.stats["proven"] is True


def test_bad_rows_go_to_rejects_with_their_reason_and_the_rest_is_predicted(sft_run, tmp_path):
    data = tmp_path / "new.jsonl"
    data.write_text('{"prompt": "Where is the apple?"}\n{"prompt": broken\n{"question": "no prompt"}\n'
                    '{"prompt": "Where is the river?"}\n')  # fmt: skip
    res = predict(sft_run, data, tmp_path / "out" / "pred.jsonl")
    got = _rows(res.out)
    assert [r["id"] for r in got] == ["new.jsonl:1", "new.jsonl:4"] and all(r["generation"] for r in got)
    rejects = _rows(res.rejects)
    assert res.rejects == tmp_path / "out" / "pred.rejects.jsonl" and res.n_rejected == 2
    assert [r["line"] for r in rejects] == [2, 3]
    assert "JSON" in rejects[0]["reason"] and "'prompt'" in rejects[1]["reason"]


def test_csv_chat_and_alpaca_inputs(sft_run, tmp_path):
    csv = tmp_path / "new.csv"
    csv.write_text("prompt,completion\nWhere is the apple?,\nWhere is the lamp?,in Rome\n")
    assert [r["completion"] for r in _rows(predict(sft_run, csv, tmp_path / "a.jsonl").out)] == ["", "in Rome"]
    chat = tmp_path / "chat.jsonl"
    chat.write_text(json.dumps({"messages": [{"role": "user", "content": "Where is the lamp?"}]}) + "\n")
    assert "Paris" in _rows(predict(sft_run, chat, tmp_path / "b.jsonl").out)[0]["generation"]
    alpaca = tmp_path / "alpaca.jsonl"
    alpaca.write_text(json.dumps({"instruction": "Where is the lamp?", "input": "", "output": ""}) + "\n")
    assert _rows(predict(sft_run, alpaca, tmp_path / "c.jsonl").out)[0]["generation"]


def test_classification_gives_labels_and_probabilities_as_evaluated(classify_run, tmp_path):
    res = predict(classify_run, classify_run / "split" / "test.jsonl", tmp_path / "pred.jsonl")
    evaluated = {r["id"]: r for r in _rows(classify_run / "evaluate" / "records.jsonl")}
    for row in _rows(res.out):
        assert set(row["probabilities"]) == {"neg", "pos"} and abs(sum(row["probabilities"].values()) - 1) < 1e-5
        assert row["predicted"] == max(row["probabilities"], key=row["probabilities"].get)
        ev = evaluated[row["id"]]
        assert row["predicted"] == ev["predicted"]["tuned"]
        assert abs(row["probabilities"][ev["label"]] - ev["p_label"]["tuned"]) < 1e-5
    assert res.stats["proven"] is False  # this run did not ship, and predict says so


def test_cli_predict_and_its_errors(sft_run, tmp_path):
    data = tmp_path / "new.jsonl"
    data.write_text('{"prompt": "Where is the apple?"}\n')
    runner = CliRunner()
    ok = runner.invoke(app, ["predict", str(sft_run), "--data", str(data), "--out", str(tmp_path / "p.jsonl")])
    assert ok.exit_code == 0, ok.output
    assert "1 predictions in" in ok.output
    bad = runner.invoke(app, ["predict", str(sft_run), "--data", str(data), "--out", str(tmp_path / "p.csv")])
    assert bad.exit_code == 1 and "*.jsonl" in bad.output
    nowhere = runner.invoke(app, ["predict", str(tmp_path), "--data", str(data), "--out", str(tmp_path / "p.jsonl")])
    assert nowhere.exit_code == 1 and "not a run folder" in nowhere.output
    own = tmp_path / "own.jsonl"
    own.write_text('{"question": "Where is the apple?", "ref": 7}\n')
    mapped = runner.invoke(app, ["predict", str(sft_run), "--data", str(own), "--out", str(tmp_path / "q.jsonl"),
                                 "--field", "prompt=question"])  # fmt: skip
    assert mapped.exit_code == 0, mapped.output
    row = json.loads((tmp_path / "q.jsonl").read_text())
    assert row["question"] == "Where is the apple?" and row["ref"] == 7 and "Paris" in row["generation"]
    wrong = runner.invoke(app, ["predict", str(sft_run), "--data", str(own), "--out", str(tmp_path / "q.jsonl"), "--field", "prompt"])
    assert wrong.exit_code == 1 and "canonical=column" in wrong.output
