from __future__ import annotations

import numpy as np

from tests.audit.conftest import context, qa_records, text_records
from tuneproof.audit.dedup import ExactDuplicateCheck, MinHasher, NearDuplicateCheck, near_duplicate_pairs
from tuneproof.config import AuditConfig

ARTICLE = (
    "The central bank raised its benchmark interest rate by a quarter point on Wednesday, "
    "citing persistent inflation in services and a labour market that remains tight. "
    "Officials signalled that further increases were possible if price growth does not slow, "
    "while markets had largely expected the move and stocks closed slightly higher."
)


def run(check, records, **kw):
    ctx = context(**kw)
    return list(check.run(records, ctx)), ctx


def test_exact_duplicates_ignore_whitespace_and_case_and_point_at_the_first(clean_qa):
    recs = qa_records([("What is a  STOCK dividend?", "A payment.")] + [("what is a stock dividend?", "a   payment.")] * 2)
    found, ctx = run(ExactDuplicateCheck(), recs)
    assert [f.id for f in found] == ["t.jsonl:2", "t.jsonl:3"]
    assert {f.details["duplicate_of"] for f in found} == {"t.jsonl:1"}
    assert ctx.extras["exact_duplicates"] == {1, 2}


def test_no_exact_duplicates_in_distinct_records(clean_qa):
    assert run(ExactDuplicateCheck(), clean_qa)[0] == []


def test_near_copy_with_edited_words_is_found_and_verified():
    edited = ARTICLE.replace("Wednesday", "Thursday").replace("slightly", "a little").replace("tight", "strong")
    other = "Tennis: the defending champion lost in straight sets in the second round after a long rain delay."
    recs = text_records([ARTICLE, other, edited])
    found, _ = run(NearDuplicateCheck(), recs)
    assert len(found) == 1
    f = found[0]
    assert f.id == "t.jsonl:3" and f.details["duplicate_of"] == "t.jsonl:1"
    assert 0.5 <= f.details["jaccard"] < 1.0  # below 0.8: a plain 0.8 LSH would miss it


def test_exact_duplicates_are_not_reported_again_as_near_duplicates():
    recs = text_records([ARTICLE, ARTICLE.upper(), ARTICLE.replace("Wednesday", "Tuesday")])
    ctx = context()
    exact = list(ExactDuplicateCheck().run(recs, ctx))
    near = list(NearDuplicateCheck().run(recs, ctx))
    assert [f.id for f in exact] == ["t.jsonl:2"]
    assert [(f.id, f.details["duplicate_of"]) for f in near] == [("t.jsonl:3", "t.jsonl:1")]


def test_distinct_texts_on_one_topic_are_not_near_duplicates(clean_qa):
    assert run(NearDuplicateCheck(), clean_qa)[0] == []
    similar = [
        "The central bank raised rates by a quarter point to fight inflation.",
        "Shares fell after the company cut its profit forecast for the year.",
        "The government announced a new tax on windfall profits of energy firms.",
    ]
    assert run(NearDuplicateCheck(), text_records(similar))[0] == []


def test_candidates_below_the_jaccard_threshold_are_not_reported():
    edited = ARTICLE.replace("Wednesday", "Thursday")
    pairs = near_duplicate_pairs([ARTICLE, edited], AuditConfig(jaccard_threshold=0.99))
    assert pairs == []  # the pair is a candidate, but its real Jaccard is below 0.99
    assert len(near_duplicate_pairs([ARTICLE, edited], AuditConfig(jaccard_threshold=0.8))) == 1


def test_minhash_agreement_estimates_the_real_jaccard():
    hasher = MinHasher(num_perm=512, shingle_size=5)
    words = ARTICLE.split()
    for cut in (5, 15, 30):
        a, b = " ".join(words), " ".join(words[cut:] + ["extra", "words", "here"])
        sa, sb = hasher.shingles(a), hasher.shingles(b)
        real = len(np.intersect1d(sa, sb)) / len(np.union1d(sa, sb))
        sig = hasher.signatures([sa, sb])
        estimate = float((sig[0] == sig[1]).mean())
        assert abs(estimate - real) < 0.08, (cut, real, estimate)


def test_short_texts_use_short_shingles():
    hasher = MinHasher(shingle_size=5)
    assert hasher.shingle_n(40) == 5 and hasher.shingle_n(9) == 2 and hasher.shingle_n(2) == 1
    assert len(hasher.shingles("")) == 0


def test_a_shared_instruction_does_not_make_different_questions_near_copies():
    from tuneproof.audit import dedup
    from tuneproof.config import AuditConfig

    inst = "You are a helpful assistant. Answer the following trivia question in a few words, without explanation."
    qs = ["who wrote the novel dracula", "where is mount kilimanjaro located", "when did apollo eleven land",
          "what is the capital of peru", "how tall is the eiffel tower", "what is the capital city of peru"]  # fmt: skip
    texts = [f"{inst}\n{q}" for q in qs]
    assert dedup.strip_shared_affixes([dedup.words(t) for t in texts])[0] == "who wrote the novel dracula".split()
    pairs = {(i, j) for i, j, _ in dedup.near_duplicate_pairs(texts, AuditConfig())}
    assert pairs == {(3, 5)}  # the edited copy only
    # Without the stripping, the instruction's shingles alone make every pair a near copy.
    unstripped = [dedup.MinHasher().shingles(t) for t in texts]
    assert dedup._jaccard(unstripped[0], unstripped[1]) >= 0.5


def test_short_templated_questions_are_not_near_copies_but_short_edits_are():
    # One word in six differs: a third of the single-word shingles, far more than the ~11% of
    # edited words that Jaccard 0.5 allows on long texts with 3-word shingles.
    texts = ["What are the symptoms of flu", "What are the symptoms of gout", "How is a broken wrist usually treated"]
    assert near_duplicate_pairs(texts, AuditConfig()) == []
    # A 14-word question with one word edited (7%) is still a near copy.
    q = "which river flows through the capital city of the country that hosted the first olympics"
    edited = q.replace("hosted", "held")
    assert [(i, j) for i, j, _ in near_duplicate_pairs([q, edited], AuditConfig())] == [(0, 1)]


def test_pair_threshold_keeps_the_configured_value_for_long_texts_and_rises_for_short_ones():
    from tuneproof.audit.dedup import pair_threshold

    cfg = AuditConfig()
    assert pair_threshold(500, cfg) == cfg.jaccard_threshold
    assert pair_threshold(6, cfg) > pair_threshold(8, cfg) > cfg.jaccard_threshold


# ---- near copies teach the same thing: word alignment, shared context, agreeing answers ----

PASSAGE = ("We may disclose personal information to law enforcement agencies when we are required to do so "
           "by a court order, and we keep a record of every such request for at least five years.")  # fmt: skip
POLICY_INSTRUCTION = "Does the privacy-policy excerpt answer the user's question? Answer yes or no."


def policy(question: str, passage: str = PASSAGE) -> str:
    return f"{POLICY_INSTRUCTION}\nQuestion: {question}\nExcerpt: {passage}"


def test_edit_share_counts_changed_words_wherever_they_sit():
    from tuneproof.audit.dedup import edit_share

    ten = "one two three four five six seven eight nine ten".split()
    assert edit_share(ten, ten) == 0.0
    assert abs(edit_share(ten, ten[:4] + ["x"] + ten[5:]) - 0.1) < 1e-9  # one substitution in ten
    assert abs(edit_share(ten, ten[:4] + ["x", "y"] + ten[6:]) - 0.2) < 1e-9  # a run counts word by word
    assert edit_share([], []) == 0.0 and edit_share([], ten) == 1.0


def test_a_run_of_changed_words_in_a_short_question_is_not_a_near_copy():
    from tuneproof.audit import dedup

    a, b = "What is the most common cause of otitis media?", "What is the most common cause of venous thrombosis?"
    hasher = dedup.MinHasher()
    jac = dedup._jaccard(hasher.shingles(a), hasher.shingles(b))
    # The shingle Jaccard counts the two-word run as few changed shingles and passes...
    assert jac >= dedup.pair_threshold(9, AuditConfig(), hasher)
    # ...but two words in nine (22%) is twice the share of edited words the threshold allows.
    assert near_duplicate_pairs([a, b], AuditConfig()) == []
    typo = "do i take over the counter calciun with alendronate?"
    assert len(near_duplicate_pairs([typo, typo.replace("calciun", "calcium")], AuditConfig())) == 1


def test_two_questions_about_one_passage_are_not_near_copies():
    from tests.audit.conftest import qa_records

    recs = qa_records([(policy("who will have access to my dna?"), "no"),
                       (policy("is my data sold?"), "no")])  # fmt: skip
    # As plain texts the pair is a near copy (the passage dominates the words)...
    assert len(near_duplicate_pairs([f"{r.fields['prompt']}\n{r.fields['completion']}" for r in recs], AuditConfig())) == 1
    # ...but the question is what distinguishes the records: not a duplicate.
    assert run(NearDuplicateCheck(), recs)[0] == []


def test_an_edited_copy_of_a_passage_with_its_question_is_still_a_near_copy():
    from tests.audit.conftest import qa_records

    q = "who will have access to my dna?"
    recs = qa_records([(policy(q), "no"), (policy(q, PASSAGE.replace("agencies", "authorities")), "no")])
    found, _ = run(NearDuplicateCheck(), recs)
    assert [(f.id, f.severity, f.code, f.details["duplicate_of"]) for f in found] == [
        ("t.jsonl:2", "severe", "near copy", "t.jsonl:1")
    ]


def test_a_long_completion_edited_in_a_few_words_is_a_near_copy():
    from tests.audit.conftest import qa_records

    answer = ("A Roth IRA is funded with money that has already been taxed, so qualified withdrawals in retirement "
              "are tax free, while a traditional IRA gives a deduction now and taxes the withdrawals later.")  # fmt: skip
    recs = qa_records([("Roth or traditional IRA?", answer), ("Roth or traditional IRA?", answer.replace("later", "instead"))])
    found, _ = run(NearDuplicateCheck(), recs)
    assert [(f.id, f.code) for f in found] == [("t.jsonl:2", "near copy")]


def test_a_near_copy_with_another_answer_is_a_conflict_flagged_not_removed(tmp_path):
    from tests.audit.conftest import write_jsonl
    from tuneproof.audit import curate
    from tuneproof.data import Record, Schema

    q = "how long should i take cipro for a urinary tract infection ?"
    recs = [Record("t.jsonl:1", Schema.TEXT_LABEL, {"text": q, "label": "medication"}),
            Record("t.jsonl:2", Schema.TEXT_LABEL, {"text": q.replace("should i", "i"), "label": "condition"}),
            Record("t.jsonl:3", Schema.TEXT_LABEL, {"text": q.replace("should i", "do i"), "label": "medication"})]  # fmt: skip
    others = ["what are the early warning signs of a stroke?", "can i drink alcohol while taking metformin?",
              "is it safe to take ibuprofen during pregnancy?", "what causes a migraine to last for days?"]  # fmt: skip
    # (distinct records, so that the three are not half of the data: a word prefix that half of
    # the texts share is stripped as a template)
    recs += [Record(f"t.jsonl:{k}", Schema.TEXT_LABEL, {"text": t, "label": "condition"}) for k, t in enumerate(others, 4)]
    found, _ = run(NearDuplicateCheck(), recs)
    got = {(f.id, f.severity, f.code) for f in found}
    assert got == {("t.jsonl:2", "warning", "conflicting answer"), ("t.jsonl:3", "severe", "near copy")}
    conflict = next(f for f in found if f.code == "conflicting answer")
    assert conflict.details["conflicts_with"] == "t.jsonl:1" and "'condition'" in conflict.reason
    data = write_jsonl(tmp_path / "d.jsonl", [{"text": r.fields["text"], "label": r.fields["label"]} for r in recs])
    res = curate(data, dry_run=True, task="classification", progress=False,
                 config=AuditConfig(checks=["exact_duplicate", "near_duplicate"]))  # fmt: skip
    assert res.manifest["counts"]["removed_by_check"] == {"near_duplicate": 1}
    assert res.manifest["counts"]["flagged_kept_by_check"] == {"near_duplicate": 1}


def test_answers_agree_when_edited_not_when_replaced():
    from tuneproof.audit.dedup import answers_agree, prompt_difference

    assert answers_agree("Yes.", "yes") and not answers_agree("yes", "no")
    assert answers_agree("Paris, the capital of France", "Paris, capital of France")
    assert not answers_agree("condition", "medication")
    # Lines both prompts hold verbatim are context; the rest is compared on its own.
    assert prompt_difference(policy("is my data sold?"), policy("is my data sold?")) == 0.0
    assert abs(prompt_difference(policy("is my data sold?"), policy("is my data kept?")) - 0.2) < 1e-9  # 1 word in 5
