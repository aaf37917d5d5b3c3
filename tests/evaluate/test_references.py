"""Cheap references: the training majority, the class prior and the lead, each computed by hand here."""

from __future__ import annotations

import json

import numpy as np
import pytest
from eval_helpers import train_sft, write_jsonl

from tuneproof.data import Record, Schema
from tuneproof.evaluate import evaluate, rouge_l, sft_examples
from tuneproof.evaluate._references import (
    answer_set,
    classification_references,
    combine_verdict,
    compare,
    entry,
    lead_text,
    sft_references,
)


def _examples(pairs):
    recs = [Record(f"r:{i}", Schema.PROMPT_COMPLETION, {"prompt": p, "completion": c}) for i, (p, c) in enumerate(pairs)]
    return sft_examples(recs, "test")


def test_a_label_set_is_a_few_repeated_answers():
    assert answer_set(["Yes.", "yes", "no", "No", "maybe", "yes"]).counts == {"yes": 3, "no": 2, "maybe": 1}
    assert answer_set(["Yes.", "yes", "YES", "no"]).surface["yes"] in ("Yes.", "yes", "YES")
    # free text: every answer different, or more values than half the records
    assert answer_set([f"the answer is {w}" for w in "abcdefgh"]) is None
    assert answer_set(["x", "y", "z", "x"]) is None  # 3 values for 4 records
    assert answer_set(["x", "y", "z", "x"], force=True).majority == "x"  # label_accuracy: labels by declaration
    assert answer_set([str(i % 25) for i in range(500)]) is None  # 25 distinct > MAX_LABELS


def test_majority_and_prior_on_an_imbalanced_sft_label_set():
    train = _examples([(f"q{i}", a) for i, a in enumerate(["yes"] * 12 + ["no"] * 6 + ["maybe"] * 2)])
    test_answers = ["yes"] * 5 + ["no"] * 4 + ["maybe"] * 1
    test = _examples([(f"t{i}", a) for i, a in enumerate(test_answers)])
    refs, notes = sft_references(train, test, "label_accuracy")
    by = {r.name: r for r in refs}
    assert notes == [] and set(by) == {"majority", "prior"} and by["majority"].gating and by["prior"].gating
    assert by["majority"].detail["answer"] == "yes"
    np.testing.assert_array_equal(by["majority"].scores, [1.0] * 5 + [0.0] * 5)
    # the prior's expected accuracy: sum_c p_train(c) p_test(c) = .6*.5 + .3*.4 + .1*.1
    assert by["prior"].scores.mean() == pytest.approx(0.6 * 0.5 + 0.3 * 0.4 + 0.1 * 0.1)
    assert by["prior"].scores[0] == pytest.approx(0.6) and by["prior"].scores[-1] == pytest.approx(0.1)


def test_free_text_sft_has_no_constant_and_nll_has_nothing():
    train = _examples([(f"q{i}", f"answer number {i}") for i in range(10)])
    refs, notes = sft_references(train, train, "token_f1")
    assert refs == [] and "free text" in notes[0]
    refs, notes = sft_references(train, train, "nll")
    assert refs == [] and "likelihood" in notes[0]


def test_classification_majority_and_prior_by_metric():
    y_train, y_test, labels = np.array([0] * 8 + [1] * 2), np.array([0] * 6 + [1] * 4), ["a", "b"]
    acc = {r.name: r for r in classification_references(y_train, y_test, labels, "accuracy")}
    assert acc["majority"].scores.mean() == pytest.approx(0.6)
    assert acc["prior"].scores.mean() == pytest.approx(0.8 * 0.6 + 0.2 * 0.4)
    f1 = {r.name: r for r in classification_references(y_train, y_test, labels, "macro_f1")}
    ones = np.ones((1, 10))
    # constant 'a': F1(a) = 2*6/(2*6 + 4) = 0.75, F1(b) = 0 -> 0.375
    assert f1["majority"].statistic(ones)[0] == pytest.approx(0.375)
    # prior p=(.8,.2): F1_c = 2 n_c p_c / (n p_c + n_c): a 9.6/14, b 1.6/6
    assert f1["prior"].statistic(ones)[0] == pytest.approx((9.6 / 14 + 1.6 / 6) / 2)
    (auc,) = classification_references(y_train, y_test, labels, "auroc")
    assert auc.statistic(ones)[0] == pytest.approx(0.5)


def test_a_constant_that_matches_the_tuned_model_blocks_improved():
    """The tuned model beats the base by far, but answers like the constant: not improved."""
    rng = np.random.default_rng(0)
    truth = rng.random(200) < 0.6  # 60% of records are the majority answer
    base, tuned = np.zeros(200), truth.astype(float) * (rng.random(200) < 0.95)  # tuned: the majority, mostly
    from tuneproof.evaluate._bootstrap import paired_bootstrap_means, verdict
    from tuneproof.evaluate._references import CheapReference

    d = paired_bootstrap_means("label_accuracy", base, tuned, higher_is_better=True)
    word, reason = verdict(d, 0.02)
    assert word == "improved"
    refs = {"base": entry("the base model", d, word, reason, True)}
    const = CheapReference("majority", "a constant answer 'yes'", True, truth.astype(float))
    lead = CheapReference("lead", "first sentences", False, np.zeros(200))
    refs.update(compare([const, lead], "label_accuracy", tuned, None, 200, min_effect=0.02, resamples=1000,
                        confidence=0.95, seed=0))  # fmt: skip
    assert refs["majority"]["score"] == pytest.approx(truth.mean()) and refs["majority"]["verdict"] == "regressed"
    final, why, failed = combine_verdict(word, reason, refs, "base")
    assert final == "no_change" and failed == ["majority"]
    assert why.startswith(f"a constant answer 'yes' scores label_accuracy {truth.mean():.3f}; the tuned model's")
    # the lead is informative: beaten or not, it never blocks
    assert combine_verdict(word, reason, {k: refs[k] for k in ("base", "lead")}, "base")[0] == "improved"


def test_lead_text_takes_whole_first_sentences_near_the_median_length():
    src = "Summarize this case: The court met. It ruled for the tenant after a long hearing. Costs were awarded."
    assert lead_text(src, 3, head=["Summarize", "this", "case:"]) == "The court met."
    assert lead_text(src, 10, head=["Summarize", "this", "case:"]) == "The court met. It ruled for the tenant after a long hearing."
    assert lead_text("One long sentence without an end", 2) == "One long sentence without an end"


def test_lead_baseline_on_a_tiny_summarization_set():
    train = _examples([("Summarize: The cat sat on the mat. Then it slept all day long.", "A cat sat on a mat."),
                       ("Summarize: Rain fell in the city. Streets flooded by noon today.", "Rain flooded the city."),
                       ("Summarize: Markets rose sharply. Banks led the gains in trading.", "Markets rose.")])  # fmt: skip
    test = _examples([("Summarize: A dog ran in the park. It chased a ball for an hour.", "A dog ran in a park.")])
    refs, _ = sft_references(train, test, "rouge_l")
    (lead,) = [r for r in refs if r.name == "lead"]
    # median summary length 4 words; the instruction word every prompt starts with is dropped
    assert not lead.gating and lead.detail["words"] == 4 and lead.detail["instruction_words_dropped"] == 1
    assert lead.detail["example"] == "A dog ran in the park."
    assert lead.scores[0] == pytest.approx(rouge_l("A dog ran in the park.", "A dog ran in a park."))


def test_evaluate_records_the_references_and_gates_on_the_constant(tiny_llama_dir, tmp_path):
    """A model tuned to always answer 'yes' beats the base, and only matches the constant 'yes'."""
    words = "apple river stone cloud tiger lamp violin garden window rocket pencil forest candle bridge".split()
    train_rows = [{"prompt": f"Is the {w} here?", "completion": "yes" if i % 4 else "no"} for i, w in enumerate(words)]
    test_rows = [{"prompt": f"Is the {w} near?", "completion": "yes" if i % 3 else "no"} for i, w in enumerate(words)]
    train = write_jsonl(tmp_path / "train.jsonl", train_rows)
    test = write_jsonl(tmp_path / "test.jsonl", test_rows)
    tuned = train_sft(tiny_llama_dir, [{**r, "completion": "yes"} for r in train_rows], tmp_path / "yes-model")
    res = evaluate(tiny_llama_dir, tuned, test, tmp_path / "eval", metric="label_accuracy", train=train)
    ev = json.loads((tmp_path / "eval" / "eval.json").read_text())
    refs = ev["references"]
    assert set(refs) == {"base", "majority", "prior"} and refs["base"]["gating"]
    assert refs["majority"]["detail"]["answer"] == "yes"
    n_yes = sum(r["completion"] == "yes" for r in test_rows)
    assert refs["majority"]["score"] == pytest.approx(n_yes / len(test_rows))
    assert ev["metrics"]["tuned"]["label_accuracy"] == pytest.approx(n_yes / len(test_rows))  # it says 'yes' always
    assert refs["majority"]["verdict"] != "improved" and res.verdict != "improved"
    assert "a constant answer 'yes'" in res.verdict_reason
    # without the training data there is no constant: the note says why
    res2 = evaluate(tiny_llama_dir, tuned, test, tmp_path / "eval2", metric="label_accuracy")
    assert set(res2.references) == {"base"} and "no training data" in res2.details["reference_notes"][0]
