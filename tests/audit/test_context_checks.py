"""Checks that need context: eval data (leakage), a tokenizer (too_long), a domain
(off_domain) and labels (label_issue). Each also says when it cannot run."""

from __future__ import annotations

import random

import numpy as np
import pytest

from tests.audit.conftest import CLEAN_QA, context, qa_records, text_records
from tuneproof.audit._base import CheckNotRun
from tuneproof.audit.labels import LabelIssueCheck
from tuneproof.audit.leakage import LeakageCheck
from tuneproof.audit.length import TooLongCheck
from tuneproof.audit.relevance import (
    OffDomainCheck,
    calibrate_threshold,
    expected_flag_share,
    flag_share_range,
    knn_scores,
)
from tuneproof.config import AuditConfig
from tuneproof.data import Record, Schema

LONG_SENTENCE = "the fund manager said that the portfolio would rebalance towards short dated government bonds next quarter"


def test_leakage_exact_prompt_and_ngram(clean_qa):
    evals = qa_records([CLEAN_QA[0], ("How do index funds keep fees low?", "Different answer."),
                        ("Tell me", f"Rumour: {LONG_SENTENCE}.")], name="eval.jsonl")  # fmt: skip
    train = qa_records([CLEAN_QA[0], CLEAN_QA[1], ("Another question", f"He said {LONG_SENTENCE} today."), CLEAN_QA[3]])
    found = list(LeakageCheck().run(train, context(eval_records=evals)))
    got = {(f.id, f.code, f.details["eval_id"]) for f in found}
    assert got == {
        ("t.jsonl:1", "same text", "eval.jsonl:1"),
        ("t.jsonl:2", "same prompt", "eval.jsonl:2"),
        ("t.jsonl:3", "shared n-gram", "eval.jsonl:3"),
    }


def test_no_leakage_between_distinct_sets(clean_qa):
    evals = qa_records(CLEAN_QA[4:], name="eval.jsonl")
    assert list(LeakageCheck().run(qa_records(CLEAN_QA[:4]), context(eval_records=evals))) == []


def test_leakage_without_eval_data_says_why(clean_qa):
    with pytest.raises(CheckNotRun, match="no eval data"):
        list(LeakageCheck().run(clean_qa, context()))


def test_too_long_counts_real_tokens_and_cut_completion_tokens(tiny_llama_dir):
    from tuneproof.models import load_tokenizer

    tok = load_tokenizer(tiny_llama_dir)
    short = ("What is a bond?", "A loan to an issuer.")
    long_completion = ("What is a bond?", " ".join(["interest"] * 200))
    huge_prompt = (" ".join(["coupon"] * 300), "Yes.")
    recs = qa_records([short, long_completion, huge_prompt])
    ctx = context(config=AuditConfig(max_tokens=64), tokenizer=tok)
    found = {f.id: f for f in TooLongCheck().run(recs, ctx)}
    assert set(found) == {"t.jsonl:2", "t.jsonl:3"}
    p = len(tok(recs[1].fields["prompt"], add_special_tokens=False)["input_ids"])
    c = len(tok(recs[1].fields["completion"], add_special_tokens=False)["input_ids"])
    # training keeps a completion whole and cuts the prompt's middle, unless the completion alone
    # is over the limit (as it is here: 200 words)
    f = found["t.jsonl:2"]
    assert f.details == {"tokens": p + c, "max_tokens": 64, "prompt_tokens_cut": p - 1, "completion_tokens_cut": c - 63}
    assert f.code == "completion truncated" and f.severity == "warning"
    g = found["t.jsonl:3"]
    assert g.code == "prompt truncated" and g.severity == "warning" and "completion is kept whole" in g.reason
    assert g.details["completion_tokens_cut"] == 0 and g.details["prompt_tokens_cut"] == g.details["tokens"] - 64
    assert ctx.extras["token_counts"][0] < 64


def test_too_long_chat_with_several_replies_is_cut_from_the_right(tiny_llama_dir):
    from tuneproof.data import Record, Schema
    from tuneproof.models import load_tokenizer

    tok = load_tokenizer(tiny_llama_dir)
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
                {"role": "user", "content": "coupon " * 300}, {"role": "assistant", "content": "Yes."}]  # fmt: skip
    rec = Record("c.jsonl:1", Schema.CHAT, {"messages": messages})
    (f,) = TooLongCheck().run([rec], context(config=AuditConfig(max_tokens=64), tokenizer=tok))
    assert f.code == "completion cut entirely" and f.severity == "severe"


def test_too_long_defaults_to_the_training_max_length(tiny_llama_dir):
    from tuneproof.config import ModelConfig
    from tuneproof.models import load_tokenizer

    tok = load_tokenizer(tiny_llama_dir)
    tok.model_max_length = int(1e30)  # "unset", as tokenizers converted from GGUF report it
    recs = qa_records([("What is a bond?", " ".join(["interest"] * 600))])
    ctx = context(tokenizer=tok)
    found = list(TooLongCheck().run(recs, ctx))
    assert ctx.extras["max_tokens"] == ModelConfig().max_length == 512
    assert [f.id for f in found] == ["t.jsonl:1"]


def test_too_long_without_a_limit_or_model_says_why(clean_qa):
    with pytest.raises(CheckNotRun, match="no model given"):
        list(TooLongCheck().run(clean_qa, context()))
    with pytest.raises(CheckNotRun, match="could not be loaded"):
        list(TooLongCheck().run(clean_qa, context(tokenizer_name="/no/such/model")))


def test_calibration_is_a_low_quantile_of_knn_leave_one_out_scores():
    rng = np.random.default_rng(0)
    refs = rng.normal(size=(50, 8)) + np.array([5.0] + [0.0] * 7)
    refs /= np.linalg.norm(refs, axis=1, keepdims=True)
    threshold, loo = calibrate_threshold(refs, 0.1, k=3)
    # Computed by hand for one reference: the mean of its 3 largest cosines to the other 49.
    sims = np.sort(refs[1:] @ refs[0])
    assert loo[0] == pytest.approx(float(sims[-3:].mean()))
    assert (loo < threshold).mean() == pytest.approx(0.1, abs=0.03)


def test_knn_scores_leave_each_reference_itself_out_and_cap_k():
    refs = np.array([[1.0, 0.0], [0.8, 0.6], [0.6, 0.8]])
    # Worked by hand: the nearest other reference of each is at cosine 0.8, 0.96, 0.96.
    assert knn_scores(refs, refs, 1, leave_one_out=True).tolist() == pytest.approx([0.8, 0.96, 0.96])
    assert knn_scores(refs, refs, 1).tolist() == pytest.approx([1.0, 1.0, 1.0])
    # k larger than the references available: all of them (here the 2 others).
    assert knn_scores(refs, refs, 10, leave_one_out=True)[0] == pytest.approx((0.8 + 0.6) / 2)


def test_knn_follows_a_spread_domain_that_a_centroid_misses():
    # A domain of two distant topics (like trivia: every question on another subject).
    rng = np.random.default_rng(1)
    a, b, off = np.eye(3)
    refs = np.concatenate([a + 0.1 * rng.normal(size=(20, 3)), -a + 0.1 * rng.normal(size=(20, 3))])
    refs /= np.linalg.norm(refs, axis=1, keepdims=True)
    threshold, _ = calibrate_threshold(refs, 0.02, k=5)
    in_domain, off_domain = knn_scores(np.stack([a, off]), refs, 5)
    assert in_domain > threshold > off_domain
    # The centroid of the two topics is near the origin: it would rank the two alike.
    centroid = refs.mean(0)
    assert abs(float(a @ centroid) - float(off @ centroid)) < 0.2


@pytest.mark.parametrize("n", [10, 30, 100])
@pytest.mark.parametrize("draw", ["normal", "gumbel", "uniform"])
def test_expected_flag_share_bounds_a_simulation_of_the_quantile_threshold(n, draw):
    # In-domain scores are exchangeable with the references' leave-one-out scores; the
    # share of new ones below np.quantile(refs, 2%) lies in the bounds the audit states.
    rng = np.random.default_rng(n)
    sample = getattr(rng, draw)
    shares = [np.mean(sample(size=500) < np.quantile(sample(size=n), 0.02)) for _ in range(3000)]
    low, high = expected_flag_share(n, 0.02)
    assert low - 0.002 < np.mean(shares) < high + 0.002
    assert high > 0.02 and high - low == pytest.approx(1 / (n + 1))


@pytest.mark.parametrize("n", [30, 100, 1000])
def test_flag_share_range_holds_nine_in_ten_simulated_calibrations(n):
    # One draw of n references sets the threshold; the share of in-domain text it flags
    # varies from draw to draw, and 90% of draws land in the stated range.
    rng = np.random.default_rng(n)
    shares = np.array([np.mean(rng.normal(size=20_000) < np.quantile(rng.normal(size=n), 0.02)) for _ in range(2000)])
    low, high = flag_share_range(n, 0.02)
    inside = np.mean((shares >= low) & (shares <= high))
    assert 0.87 < inside < 0.93, inside
    assert low < expected_flag_share(n, 0.02)[0] < expected_flag_share(n, 0.02)[1] < high


FINANCE = [q + " " + a for q, a in CLEAN_QA]
FINANCE_WORDS = "stock bond dividend index fund fees market shares interest rate tax portfolio yield broker equity".split()


def finance_texts(n: int, seed: int) -> list[str]:
    """Distinct texts of finance words. With the hashing embedder, shared words are all it
    sees, so a domain must share vocabulary for its references to be near each other."""
    rng = random.Random(seed)
    return [" ".join(rng.sample(FINANCE_WORDS, 6)) + f" case{seed}x{i}" for i in range(n)]


OFF = [
    "My cat likes to sleep on the warm windowsill all afternoon.",
    "Do you like pizza with pineapple or do you hate it?",
    "The knight rode through the dark forest towards the castle.",
]


def test_off_domain_flags_off_topic_text_and_reports_its_score():
    # Hashing embedder: shared words stand in for meaning. References share finance vocabulary.
    refs = finance_texts(30, seed=0)
    recs = text_records(finance_texts(4, seed=1) + OFF)
    ctx = context(domain=refs)
    found = list(OffDomainCheck().run(recs, ctx))
    assert {f.id for f in found} == {"t.jsonl:5", "t.jsonl:6", "t.jsonl:7"}
    scores = ctx.extras["relevance"]
    threshold = ctx.extras["off_domain_threshold"]["value"]
    for f in found:
        assert f.details["score"] < threshold == f.details["threshold"]
        assert f.code == "below domain threshold" and f.severity == "severe"
        assert f"is {f.details['score']:.2f}, below the threshold {threshold:.2f}" in f.reason
        assert "nearest domain references" in f.reason
    assert all(s >= threshold for s in scores[:4])


def test_off_domain_counts_copied_references_once():
    # A copy would be its reference's own nearest neighbour (similarity 1) and lift the threshold.
    refs = finance_texts(30, seed=0)
    once, twice = context(domain=refs), context(domain=refs * 3)
    recs = text_records(finance_texts(4, seed=1) + OFF)
    assert [f.id for f in OffDomainCheck().run(recs, once)] == [f.id for f in OffDomainCheck().run(recs, twice)]
    assert once.extras["off_domain_threshold"] == twice.extras["off_domain_threshold"]
    with pytest.raises(CheckNotRun, match="only 2 distinct"):
        list(OffDomainCheck().run(recs, context(domain=FINANCE[:2] * 5)))


def test_off_domain_user_threshold_and_domain_text():
    recs = text_records(FINANCE[:2] + OFF[:1])
    ctx = context(domain_text="stock dividend bond index funds fees market shareholders", config=AuditConfig(off_domain_threshold=0.05))
    found = list(OffDomainCheck().run(recs, ctx))
    assert [f.id for f in found] == ["t.jsonl:3"]
    assert ctx.extras["off_domain_threshold"]["source"] == "set by the user"


def test_off_domain_without_domain_or_with_too_few_refs_says_why():
    with pytest.raises(CheckNotRun, match="no domain given"):
        list(OffDomainCheck().run(text_records(FINANCE), context()))
    with pytest.raises(CheckNotRun, match="at least 5"):
        list(OffDomainCheck().run(text_records(FINANCE), context(domain=FINANCE[:2])))


POS = ["wonderful", "brilliant", "moving", "delightful", "superb", "charming", "masterful", "joyful"]
NEG = ["dreadful", "boring", "tedious", "awful", "clumsy", "lifeless", "painful", "dull"]


def _reviews(n: int, seed: int):
    rng = random.Random(seed)
    fillers = ["the film", "this movie", "the acting", "the plot", "the script", "the ending"]
    rows = []
    for i in range(n):
        label = "pos" if i % 2 else "neg"
        words = POS if label == "pos" else NEG
        rows.append((f"{rng.choice(fillers)} was {rng.choice(words)} and {rng.choice(words)} overall", label))
    return rows


def _label_records(rows):
    return [Record(f"t.jsonl:{i}", Schema.TEXT_LABEL, {"text": t, "label": y}) for i, (t, y) in enumerate(rows, 1)]


def test_label_issues_find_flipped_labels_and_suggest_the_right_one():
    rows = _reviews(600, seed=1)
    flipped = set(range(0, 600, 10))  # 10% of labels flipped
    noisy = [(t, ("pos" if y == "neg" else "neg") if i in flipped else y) for i, (t, y) in enumerate(rows)]
    found = list(LabelIssueCheck().run(_label_records(noisy), context(task="classification")))
    hit = {f.index for f in found}
    # cleanlab's default (prune by noise rate) is conservative: measured here 38 of 60
    # flips found and no false alarm.
    assert len(hit & flipped) / len(flipped) >= 0.5  # recall
    assert len(hit & flipped) / len(hit) >= 0.9  # precision
    for f in found:
        if f.index in flipped:
            assert f.details["suggested_label"] == rows[f.index][1]


def test_label_issues_are_ranked_by_the_given_labels_probability():
    rows = _reviews(400, seed=3)
    noisy = [(t, ("pos" if y == "neg" else "neg") if i % 8 == 0 else y) for i, (t, y) in enumerate(rows)]
    found = list(LabelIssueCheck().run(_label_records(noisy), context(task="classification")))
    assert len(found) >= 10
    assert sorted(f.details["rank"] for f in found) == list(range(1, len(found) + 1))
    by_rank = sorted(found, key=lambda f: f.details["rank"])
    probs = [f.details["label_probability"] for f in by_rank]
    assert probs == sorted(probs)  # rank 1 is the label the data believes least
    assert f"rank 1 of {len(found)}" in by_rank[0].reason


def test_label_issues_none_on_clean_labels():
    found = list(LabelIssueCheck().run(_label_records(_reviews(600, seed=2)), context(task="classification")))
    assert len(found) <= 3  # clean, separable data: no (or almost no) alarm


def test_label_issues_read_an_sft_label_set_from_the_prompt_alone():
    # The same reviews as SFT: the prompt asks for the sentiment, the completion is one word
    # ("Positive." / "negative" spellings normalise to one label). The completion is the
    # label, so the features must come from the prompt; with it, every flip would look right.
    rows = _reviews(600, seed=1)
    flipped = set(range(0, 600, 10))
    spell = {"pos": "Positive.", "neg": "negative"}
    records = [
        Record(f"s.jsonl:{i}", Schema.PROMPT_COMPLETION,
               {"prompt": f"Review: {t}\nSentiment:", "completion": spell["neg" if y == "pos" else "pos"] if i in flipped else spell[y]})
        for i, (t, y) in enumerate(rows)
    ]  # fmt: skip
    found = list(LabelIssueCheck().run(records, context(task="sft")))
    hit = {f.index for f in found}
    assert len(hit & flipped) / len(flipped) >= 0.5 and len(hit & flipped) / len(hit) >= 0.9
    f = next(f for f in found if f.index in flipped)
    assert f.details["suggested_label"] == spell[rows[f.index][1]]  # the answer as the data spells it
    assert f.reason.startswith("Answered") and "prompts" in f.reason


def test_label_issues_need_labels_and_two_classes(clean_qa):
    with pytest.raises(CheckNotRun, match="free text"):
        list(LabelIssueCheck().run(clean_qa, context(task="sft")))
    one_class = _label_records([("good film", "pos")] * 10)
    with pytest.raises(CheckNotRun, match="at least 2 classes"):
        list(LabelIssueCheck().run(one_class, context(task="classification")))


def test_free_threads_leaves_cores_that_others_keep_busy(monkeypatch):
    import os

    from tuneproof.audit.embed import free_threads

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: (1.0, 1.0, 1.0))  # only this process
    assert free_threads(2) == 2
    monkeypatch.setattr(os, "getloadavg", lambda: (2.2, 2.0, 2.0))  # one other busy process
    assert free_threads(2) == 1
    monkeypatch.setattr(os, "getloadavg", lambda: (6.0, 6.0, 6.0))
    assert free_threads(2) == 1


def test_a_shared_instruction_is_not_leakage_but_a_copied_sentence_still_is():
    instruction = "Answer the question in a few words."
    rng = random.Random(0)
    vocab = "river mountain king queen city war song film team river year island prize".split()

    def question(i: int) -> str:
        return f"{instruction}\nwho {' '.join(rng.choice(vocab) for _ in range(6))} number {i}"

    train = qa_records([(question(i), "x") for i in range(60)]
                       + [(f"{instruction}\nwhat did he say", f"He said {LONG_SENTENCE}.")])  # fmt: skip
    evals = qa_records([(question(100 + i), "y") for i in range(40)]
                       + [(f"{instruction}\nquote", f"Rumour: {LONG_SENTENCE}.")], name="eval.jsonl")  # fmt: skip
    found = list(LeakageCheck().run(train, context(eval_records=evals)))
    assert [(f.id, f.code, f.details["eval_id"]) for f in found] == [("t.jsonl:61", "shared n-gram", "eval.jsonl:41")]


def test_a_record_that_quotes_a_line_of_an_eval_record_is_flagged_not_a_near_copy():
    # An email reply that quotes one sentence of a test email: a warning (flagged, kept).
    reply = ("thanks for the note about the fund i think we should wait until the meeting before we decide anything "
             "about the allocation and the risk budget for next year because the committee has not met yet and the "
             f"numbers are not final > {LONG_SENTENCE}")  # fmt: skip
    evals = qa_records([("Tell me", f"Rumour: {LONG_SENTENCE}.")], name="eval.jsonl")
    train = qa_records([("Re: fund", reply), ("Copy", f"Rumour: {LONG_SENTENCE} indeed.")])
    found = {f.id: f for f in LeakageCheck().run(train, context(eval_records=evals))}
    quote, copy = found["t.jsonl:1"], found["t.jsonl:2"]
    assert quote.code == "partial overlap" and quote.severity == "warning" and quote.details["coverage"] < 0.5
    assert "flagged, not a near-copy" in quote.reason
    assert copy.code == "shared n-gram" and copy.severity == "severe" and copy.details["coverage"] >= 0.5
    # a stricter threshold makes the quote a near-copy too
    strict = {f.id: f for f in LeakageCheck().run(train, context(eval_records=evals, config=AuditConfig(leakage_min_coverage=0.1)))}
    assert strict["t.jsonl:1"].severity == "severe"


INSTRUCTION = "please read the following text carefully and then write a short and faithful summary of it"


def test_off_domain_sees_past_an_instruction_that_every_record_shares():
    # Long in-domain bodies on varied topics (like news): as whole records they are alike
    # mostly through the instruction. A short off-domain body is then nearly all instruction
    # and scores high as a whole record; without the shared instruction it shares nothing.
    rng = random.Random(3)
    vocab = [f"topic{i}" for i in range(400)]

    def body(n: int) -> str:
        return " ".join(rng.choice(vocab) for _ in range(n))

    refs = [f"{INSTRUCTION}\n{body(30)}" for _ in range(60)]
    recs = text_records([f"{INSTRUCTION}\n{body(30)}" for _ in range(5)] + [f"{INSTRUCTION}\n{t}" for t in OFF])
    found = list(OffDomainCheck().run(recs, ctx := context(domain=refs)))
    threshold = ctx.extras["off_domain_threshold"]["value"]
    assert {f.id for f in found} == {"t.jsonl:6", "t.jsonl:7", "t.jsonl:8"}
    for f in found:
        # the whole record alone would have passed; the record without the instruction did not
        assert f.details["whole_record"] >= threshold > f.details["without_shared_text"] == f.details["score"]
        assert "please read the following text" in f.reason and "Whole record" in f.reason


def test_strip_shared_text_prefix_suffix_and_short_texts():
    from tuneproof.audit.relevance import strip_shared_text

    sig = "Sent from my phone, best regards"
    texts = [f"Q: {t}\n{sig}" for t in ("how are index funds taxed", "what is a bond ladder", "why do yields rise")]
    texts.append(f"Q: ok\n{sig}")  # too little would be left: kept whole
    stripped, others, shared = strip_shared_text(texts, ["Q: what moves markets today\nSent from my phone, best regards"])
    assert shared == "... Sent from my phone, best regards"  # "q" alone is under 3 words: no prefix
    assert stripped == ["Q: how are index funds taxed\n", "Q: what is a bond ladder\n", "Q: why do yields rise\n", texts[3]]
    assert others == ["Q: what moves markets today\n"]
    assert strip_shared_text(["a b c", "d e f"]) == (["a b c", "d e f"], [], "")


def test_strip_shared_text_quotes_the_shared_text_as_the_data_writes_it():
    from tuneproof.audit.relevance import strip_shared_text

    # The first record that has the shared words sets the quote: case, commas and the colon kept.
    texts = ["what is a bond ladder", "ANSWER  BRIEFLY, please:\nwho wrote Dracula",
             "Answer briefly please - capital of Peru", "answer briefly please: tallest mountain on Earth"]
    stripped, _, shared = strip_shared_text(texts)
    assert shared == "ANSWER BRIEFLY, please: ..."
    assert stripped[1:] == ["who wrote Dracula", "capital of Peru", "tallest mountain on Earth"]
