"""`tuneproof chat` driven through standard input: one streamed answer per prompt and model."""

from __future__ import annotations

import io
import json

import pytest
from typer.testing import CliRunner

from tuneproof.cli import app
from tuneproof.errors import TuneproofError
from tuneproof.serve import chat, predict
from tuneproof.serve._chat import _Writer


def test_piped_prompts_get_one_answer_each_from_base_and_tuned(sft_run):
    res = CliRunner().invoke(app, ["chat", str(sft_run)], input="Where is the lamp?\n\nWhere is the apple?\n")
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["base", "tuned", "base", "tuned"]  # the blank line is no prompt
    assert all("Paris" in line for line in lines if line.startswith("tuned:"))
    assert not any("Paris" in line for line in lines if line.startswith("base:"))  # the base never learned it


def test_streamed_text_is_the_answer_and_matches_predict(sft_run, tmp_path):
    out = io.StringIO()
    answers = chat(sft_run, tuned_only=True, lines=["Where is the lamp?\n"], out=out, interactive=False)
    assert list(answers[0]) == ["prompt", "tuned"]
    assert out.getvalue() == f"tuned: {answers[0]['tuned']}\n"
    data = tmp_path / "one.jsonl"
    data.write_text('{"prompt": "Where is the lamp?"}\n')
    predicted = json.loads(predict(sft_run, data, tmp_path / "p.jsonl").out.read_text())
    assert answers[0]["tuned"] == predicted["generation"]


def test_the_writer_strips_like_the_evaluation_and_keeps_piped_answers_on_one_line():
    for escape, want in ((False, "in\nParis"), (True, "in\\nParis")):
        out = io.StringIO()
        write = _Writer(out, escape=escape)
        for chunk in ("\n", " \n", "in", "\n", "Par", "is", " \n", "\n"):
            write(chunk)
        assert out.getvalue() == want


def test_interactive_session_stops_at_exit(sft_run):
    out = io.StringIO()
    answers = chat(sft_run, tuned_only=True, lines=["Where is the lamp?\n", "exit\n", "never asked\n"], out=out,
                   interactive=True)  # fmt: skip
    assert [a["prompt"] for a in answers] == ["Where is the lamp?"] and out.getvalue().count("> ") == 2


def test_a_classifier_run_is_sent_to_predict(classify_run):
    with pytest.raises(TuneproofError, match="tuneproof predict"):
        chat(classify_run, lines=[], out=io.StringIO())
