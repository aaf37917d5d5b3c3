"""The text-judging checks calibrate their thresholds on the data at hand: on domain
references, or on the bulk of the data itself."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from tests.audit.conftest import context, qa_records, text_records, write_jsonl
from tuneproof.audit import audit
from tuneproof.audit._base import CheckNotRun
from tuneproof.audit._calibrate import bulk_fit, reference_thresholds, robust_fence, z_for_rate
from tuneproof.audit.embed import HashingEmbedder
from tuneproof.audit.quality import DEFAULTS, LowQualityCheck, quality_problems, record_measures
from tuneproof.audit.relevance import OffDomainCheck
from tuneproof.config import AuditConfig

# Legal-like prose: stock phrases recur within a text, as they do in case law.
STOCK = [
    "the court of appeals held that", "pursuant to section twelve of the act", "the plaintiff alleged that the defendant",
    "in accordance with the terms of the agreement", "the district court granted summary judgment",
    "as a matter of law the claim", "the parties entered into a settlement", "the motion to dismiss was denied",
]  # fmt: skip
LEGAL_WORDS = (
    "case record filing evidence witness statute contract damages party counsel judge jury verdict appeal ruling "
    "order notice hearing claim breach duty liability remedy injunction discovery deposition testimony exhibit "
    "brief opinion dissent majority circuit federal state county municipal agency regulation permit license "
    "property tenant landlord lease employer employee wage benefit pension insurer policy coverage premium"
).split()
GARBAGE = [
    " ".join(["click to win a free prize now"] * 12),
    " ".join(["best price best price buy today"] * 10),
    "spam " * 80,
]


def legal_text(rng: random.Random) -> str:
    out: list[str] = []
    n_words, stock = rng.randint(60, 200), rng.randint(1, 6)
    while len(out) < n_words:
        out += rng.choice(STOCK[: stock + 2]).split() if rng.random() < 0.25 else rng.sample(LEGAL_WORDS, 3)
    return " ".join(out) + "."


def severe(findings, check: str = "low_quality") -> set[int]:
    return {f.index for f in findings if f.check == check and f.severity == "severe"}


def test_legal_prose_trips_the_web_text_defaults():
    # What the calibration is for: Gopher's defaults flag much of this in-domain prose.
    rng = random.Random(0)
    texts = [legal_text(rng) for _ in range(200)]
    share = np.mean([any(sev == "severe" for sev, _, _ in quality_problems(t)) for t in texts])
    assert share > 0.3


def test_references_raise_thresholds_until_at_most_2pct_of_them_are_flagged():
    rng = random.Random(1)
    refs = [legal_text(rng) for _ in range(60)]
    bulk = [legal_text(rng) for _ in range(150)]
    # A real fault that only a raised rule can catch: one sentence said four times.
    looped = " ".join([" ".join(rng.sample(LEGAL_WORDS, 20)) + "."] * 4)
    recs = text_records(bulk + GARBAGE + [looped])
    ctx = context(domain=refs)
    found = list(LowQualityCheck().run(recs, ctx))
    entry = ctx.extras["calibration"]["low_quality"]
    assert entry["method"] == "references and the data's outlier fence"
    assert entry["references_flagged_by_default"] > 0.2 and "dup_5gram" in entry["recalibrated"]
    thresholds = {k: r["threshold"] for k, r in entry["rules"].items()}
    assert all(thresholds[k] >= d for k, d in DEFAULTS.items())  # never lowered
    ref_measures = [record_measures(r) for r in text_records(refs)]
    assert sum(any(v > thresholds[k] for k, (v, _) in m.items()) for m in ref_measures) <= int(0.02 * 60)
    flagged = severe(found)
    assert set(range(150, 154)) <= flagged  # garbage and the looped sentence
    assert len(flagged & set(range(150))) <= 0.05 * 150
    loop = next(f for f in found if f.index == 153)
    assert "calibrated on the 60 domain references" in loop.reason and loop.details["threshold"] > 0.15
    assert 0 < entry["expected_false_positive_rate"] <= 0.05


def test_reference_thresholds_cap_the_check_and_never_lower_a_default():
    rng = np.random.default_rng(0)
    values = {"a": rng.uniform(0, 0.4, 100).tolist(), "b": rng.uniform(0, 0.3, 100).tolist(), "c": [0.0] * 100}
    fit = reference_thresholds(values, {"a": 0.2, "b": 0.25, "c": 0.1}, 0.02)
    t = {k: r["threshold"] for k, r in fit["rules"].items()}
    v = np.array([values[k] for k in "abc"]).T
    assert (v > np.array([t["a"], t["b"], t["c"]])).any(axis=1).sum() <= 2
    assert fit["default_flags"] > 0.4 and fit["flags"] <= 0.02
    assert t["a"] > 0.2 and t["b"] >= 0.25 and t["c"] == 0.1 and not fit["rules"]["c"]["calibrated"]
    assert fit["expected_false_positive_rate"] == pytest.approx((round(fit["flags"] * 100) + 1) / 101, abs=1e-4)


def test_a_completion_that_quotes_its_prompt_is_not_repetition():
    rng = random.Random(2)
    sentences = [" ".join(rng.sample(LEGAL_WORDS, 25)) + "." for _ in range(4)]
    prompt = " ".join(sentences)
    summary = f"The court summarized: {sentences[0]} It concluded: {sentences[2]}"
    # Joined, the quoted sentences read as repeated phrases; judged apart, neither part repeats.
    assert "repeated n-grams" in {code for _, code, _ in quality_problems(f"{prompt}\n{summary}")}
    looping = " ".join([sentences[1]] * 4)
    recs = qa_records([(prompt, summary), (prompt, looping)])
    found = list(LowQualityCheck().run(recs, context()))
    assert severe(found) == {1}
    (loop,) = found
    assert loop.details["part"] == "completion" and loop.reason.startswith("In the completion,")


def test_without_references_the_data_fence_keeps_the_bulk_and_flags_garbage():
    rng = random.Random(3)
    recs = text_records([legal_text(rng) for _ in range(300)] + GARBAGE)
    ctx = context(domain_text="court decisions")
    flagged = severe(LowQualityCheck().run(recs, ctx))
    entry = ctx.extras["calibration"]["low_quality"]
    assert entry["method"] == "data outlier fence" and "dup_5gram" in entry["recalibrated"]
    fence = entry["rules"]["dup_5gram"]["data_fence"]
    assert fence["default_flags"] > 0.2 and fence["threshold"] > 0.15
    assert set(range(300, 303)) <= flagged
    assert len(flagged & set(range(300))) <= 0.05 * 300
    assert 0 < entry["expected_false_positive_rate"] <= 0.05


def test_robust_fence_keeps_the_default_with_few_values_or_a_clean_bulk():
    assert robust_fence([0.5] * 5, 0.15, 0.02)["threshold"] == 0.15  # too few to fit
    clean = robust_fence(np.random.default_rng(0).uniform(0, 0.05, 200), 0.15, 0.02)
    assert clean["threshold"] == 0.15 and not clean["calibrated"]


@pytest.mark.parametrize("outliers", [0, 0.2, 0.4])
def test_bulk_fit_finds_the_bulk_under_up_to_40pct_low_outliers(outliers):
    rng = np.random.default_rng(1)
    n_out = int(1000 * outliers)
    bulk, low = rng.normal(0.4, 0.05, 1000 - n_out), rng.normal(0.1, 0.04, n_out)
    centre, sigma = bulk_fit(np.concatenate([bulk, low]))
    assert centre == pytest.approx(0.4, abs=0.01) and sigma == pytest.approx(0.05, abs=0.01)
    fence = centre - z_for_rate(0.02) * sigma
    assert (bulk < fence).mean() <= 0.04
    assert n_out == 0 or (low < fence).mean() >= 0.95


TOPIC = [f"topic{i}" for i in range(200)]
OTHER = [f"word{i}" for i in range(400)]
# A broad description: every record shares few of its words, so cosines are low everywhere.
DESCRIPTION = " ".join(TOPIC)


def in_domain(rng: random.Random, topic: list[str] = TOPIC) -> str:
    return " ".join(rng.sample(topic, 8) + rng.sample(OTHER, rng.randint(6, 10)))


def off_domain(rng: random.Random) -> str:
    return " ".join(rng.sample(TOPIC, rng.randint(0, 1)) + rng.sample(OTHER, rng.randint(8, 14)))


@pytest.mark.parametrize("n_off", [0, 60, 120])
def test_domain_text_flags_the_data_s_low_outliers_not_an_absolute_cosine(n_off):
    rng = random.Random(4)
    recs = text_records([in_domain(rng) for _ in range(200)] + [off_domain(rng) for _ in range(n_off)])
    ctx = context(domain_text=DESCRIPTION)
    flagged = {f.index for f in OffDomainCheck().run(recs, ctx)}
    scores = ctx.extras["relevance"]
    assert (scores[:200] < 0.15).mean() > 0.5  # an absolute 0.15 would remove most of the domain
    assert len(flagged & set(range(200))) <= 0.05 * 200
    assert len(flagged - set(range(200))) >= 0.95 * n_off
    entry = ctx.extras["calibration"]["off_domain"]
    assert entry["method"] == "data's own fit" and entry["expected_false_positive_rate"] == pytest.approx(0.02, abs=1e-3)
    fit = entry["data_fit"]
    assert entry["threshold"] == pytest.approx(fit["centre"] - fit["z"] * fit["sigma"], abs=1e-3)
    threshold = ctx.extras["off_domain_threshold"]
    assert threshold["value"] == pytest.approx(entry["threshold"], abs=1e-4) and "low-outlier fence" in threshold["source"]


def test_user_threshold_overrides_the_fit():
    rng = random.Random(5)
    recs = text_records([in_domain(rng) for _ in range(60)])
    ctx = context(domain_text=DESCRIPTION, config=AuditConfig(off_domain_threshold=0.145))
    flagged = {f.index for f in OffDomainCheck().run(recs, ctx)}
    assert flagged == {i for i, s in enumerate(ctx.extras["relevance"]) if s < 0.145} and flagged
    assert ctx.extras["calibration"]["off_domain"] == {"method": "set by the user", "threshold": 0.145}
    assert ctx.extras["off_domain_threshold"]["source"] == "set by the user"


def test_domain_text_with_too_few_records_to_fit_says_why():
    recs = text_records([in_domain(random.Random(6)) for _ in range(8)])
    with pytest.raises(CheckNotRun, match="too few to fit"):
        list(OffDomainCheck().run(recs, context(domain_text=DESCRIPTION)))


def test_references_and_the_data_fit_together():
    # A narrow domain: records share topic words with their nearest references.
    rng, narrow = random.Random(7), TOPIC[:30]
    refs = [in_domain(rng, narrow) for _ in range(25)]
    recs = text_records([in_domain(rng, narrow) for _ in range(200)] + [" ".join(rng.sample(OTHER, 10)) for _ in range(60)])
    ctx = context(domain=refs)
    flagged = {f.index for f in OffDomainCheck().run(recs, ctx)}
    entry = ctx.extras["calibration"]["off_domain"]
    assert entry["method"] == "references and the data's own fit"
    assert entry["threshold"] == pytest.approx(min(entry["reference_threshold"], entry["data_fit"]["threshold"]), abs=1e-4)
    assert len(flagged & set(range(200))) <= 0.05 * 200
    assert len(flagged - set(range(200))) >= 0.95 * 60
    assert 0 < entry["expected_false_positive_rate"] <= entry["reference_expected_false_positive_rate"][1]


def test_few_references_more_typical_than_the_data_do_not_set_the_domain_s_tail():
    # 40 references, each with more topic words than the records: the references are in-domain but
    # not a sample like the data, so their lowest scores sit far inside the records' bulk. A rule
    # that keeps the threshold near the references' lowest scores (a floor from their own sampling
    # range) would flag about a fifth of the domain; the data's fit places the tail where it is.
    rng, narrow = random.Random(1), TOPIC[:30]
    refs = [" ".join(rng.sample(narrow, 10) + rng.sample(OTHER, rng.randint(6, 10))) for _ in range(40)]
    noise = [" ".join(rng.sample(OTHER, 10)) for _ in range(60)]
    recs = text_records([in_domain(rng, narrow) for _ in range(300)] + noise)
    ctx = context(domain=refs)
    flagged = {f.index for f in OffDomainCheck().run(recs, ctx)}
    entry, scores = ctx.extras["calibration"]["off_domain"], ctx.extras["relevance"]
    below_references = (scores[:300] < entry["reference_threshold"]).mean()
    assert below_references > 0.15  # the references alone would remove much of the domain
    assert len(flagged & set(range(300))) <= 0.05 * 300
    assert len(flagged - set(range(300))) == 60


def test_audit_json_reports_each_check_s_calibration(tmp_path):
    rng = random.Random(8)
    rows = [{"prompt": legal_text(rng), "completion": legal_text(rng)} for _ in range(40)]
    refs = write_jsonl(tmp_path / "refs.jsonl", [{"text": legal_text(rng)} for _ in range(30)])
    data = write_jsonl(tmp_path / "data.jsonl", rows)
    cfg = AuditConfig(checks=["low_quality", "off_domain"])
    audit(data, domain=refs, config=cfg, out=tmp_path / "out", progress=False, embedder=HashingEmbedder())
    report = json.loads((tmp_path / "out" / "audit.json").read_text())
    quality, relevance = report["calibration"]["low_quality"], report["calibration"]["off_domain"]
    assert quality["method"] == "references and the data's outlier fence" and quality["references"] == 30
    assert set(quality["rules"]) == set(DEFAULTS)
    assert {"threshold", "default", "data_fence", "references"} <= set(quality["rules"]["dup_5gram"])
    assert 0 <= quality["expected_false_positive_rate"] <= 1
    assert relevance["method"] == "references and the data's own fit" and 0 < relevance["expected_false_positive_rate"] < 1
    assert report["settings"]["off_domain_threshold"]["expected_false_positive_rate"] == relevance["expected_false_positive_rate"]
