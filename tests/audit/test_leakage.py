"""Leakage leaks what an eval record would let a model memorize: its answer given its prompt."""

from __future__ import annotations

from tests.audit.conftest import context, qa_records
from tuneproof.audit.leakage import LeakageCheck
from tuneproof.data import Record, Schema

INSTRUCTION = "Does the privacy-policy excerpt answer the user's question? Answer yes or no."
PASSAGE = ("We may disclose personal information to law enforcement agencies when we are required to do so "
           "by a court order, and we keep a record of every such request for at least five years.")  # fmt: skip
OTHER_PASSAGE = ("You can ask us to delete your account at any time from the settings page, and we remove "
                 "your messages and photos from our servers within thirty days of the request.")  # fmt: skip
QUESTION = "will this company hand my private messages and my location history over to the police?"


def policy(question: str, passage: str) -> str:
    return f"{INSTRUCTION}\nQuestion: {question}\nExcerpt: {passage}"


def findings(train, evals):
    return {f.id: f for f in LeakageCheck().run(train, context(eval_records=evals))}


def test_a_record_that_shares_only_the_passage_or_only_the_question_is_flagged_not_removed():
    evals = qa_records([(policy(QUESTION, PASSAGE), "yes")], name="eval.jsonl")
    train = qa_records([
        (policy("how long do you keep my data?", PASSAGE), "yes"),  # the passage, another question
        (policy(QUESTION, OTHER_PASSAGE), "yes"),  # the question, another passage
        (policy(QUESTION, PASSAGE.replace("agencies", "authorities")), "yes"),  # the eval record, one word edited
    ])  # fmt: skip
    found = findings(train, evals)
    passage_only = found["t.jsonl:1"]
    assert passage_only.details["coverage"] >= 0.5  # mostly eval text, so by coverage alone a near-copy
    assert (passage_only.severity, passage_only.code) == ("warning", "partial overlap")
    assert "only part of the eval prompt" in passage_only.reason
    assert found["t.jsonl:2"].severity == "warning"
    copy = found["t.jsonl:3"]
    assert (copy.severity, copy.code, copy.details["eval_id"]) == ("severe", "shared n-gram", "eval.jsonl:1")


def test_the_same_prompt_with_another_answer_is_a_conflict_not_a_leak():
    evals = qa_records([(policy(QUESTION, PASSAGE), "yes")], name="eval.jsonl")
    train = qa_records([(policy(QUESTION, PASSAGE.replace("agencies", "authorities")), "no")])
    f = findings(train, evals)["t.jsonl:1"]
    assert (f.severity, f.code) == ("warning", "conflicting answer")
    texts = [Record("eval.jsonl:1", Schema.TEXT_LABEL, {"text": PASSAGE, "label": "ham"})]
    mine = [Record("t.jsonl:1", Schema.TEXT_LABEL, {"text": PASSAGE.replace("agencies", "bodies"), "label": "spam"}),
            Record("t.jsonl:2", Schema.TEXT_LABEL, {"text": PASSAGE.replace("agencies", "units"), "label": "ham"})]  # fmt: skip
    found = findings(mine, texts)
    assert (found["t.jsonl:1"].severity, found["t.jsonl:1"].code) == ("warning", "conflicting answer")
    assert (found["t.jsonl:2"].severity, found["t.jsonl:2"].code) == ("severe", "shared n-gram")


def test_a_record_that_reproduces_the_eval_answer_text_leaks_whatever_its_prompt():
    answer = f"The policy says: {PASSAGE}"
    evals = qa_records([("What does the policy say about the police?", answer)], name="eval.jsonl")
    train = qa_records([("Summarize the disclosure clause.", f"In short: {PASSAGE}")])
    f = findings(train, evals)["t.jsonl:1"]
    assert (f.severity, f.code) == ("severe", "shared n-gram")


def test_coverage_is_counted_against_one_eval_record_not_a_patchwork_of_several():
    first = "the committee will publish the final audit of the pension fund before the end of the winter session"
    second = "our new office in the harbour district opens next monday with free coffee for every visitor all week"
    evals = [Record("eval.jsonl:1", Schema.TEXT, {"text": f"Minutes: {first}. Nothing else was decided."}),
             Record("eval.jsonl:2", Schema.TEXT, {"text": f"News: {second}. See you there."})]  # fmt: skip
    # Half of it from one eval record, half from another: a near-copy of neither.
    train = [Record("t.jsonl:1", Schema.TEXT, {"text": f"{first} and {second}"}),
             Record("t.jsonl:2", Schema.TEXT, {"text": f"Minutes: {first}. Nothing else."})]  # fmt: skip
    found = findings(train, evals)
    patch = found["t.jsonl:1"]
    assert (patch.severity, patch.code) == ("warning", "partial overlap") and patch.details["coverage"] < 0.5
    assert (found["t.jsonl:2"].severity, found["t.jsonl:2"].details["eval_id"]) == ("severe", "eval.jsonl:1")
