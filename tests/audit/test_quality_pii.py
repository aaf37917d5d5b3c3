from __future__ import annotations

import json

import pytest

from tests.audit.conftest import CLEAN_QA, context, qa_records, text_records
from tuneproof.audit.pii import PiiCheck, find_pii
from tuneproof.audit.quality import LowQualityCheck, quality_problems

CLEAN_TEXTS = [q + " " + a for q, a in CLEAN_QA] + [
    "In 2019 the S&P 500 returned 31.5%, its best year since 2013, according to S&P Dow Jones Indices.",
    "Revenue rose to $4.2 billion (up 12% year on year), while operating costs fell 3%.",
    "Der Zinssatz der Europäischen Zentralbank liegt bei 4,5 Prozent; die Inflation sinkt langsam.",
    "Line one of a poem\nLine two is different\nAnd a third line ends it",
]


@pytest.mark.parametrize("text", CLEAN_TEXTS)
def test_clean_text_raises_no_quality_problem(text):
    assert quality_problems(text) == []


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("   ", "empty text"),
        ("The rÃ©sumÃ© of the cafÃ© owner was Ã©lÃ©gant.", "mojibake"),
        ("bad \ufffd bytes \ufffd here in the text", "mojibake"),
        ("xq7#k@ zz9!q pl%w8 rrt& qzvbn jjk4$ fgh", "garbled text"),
        ("$$$ !!! ### @@@ %%% ^^^ &&& ***", "mostly symbols"),
        ("buy now\nbuy now\nbuy now\nbuy now\nfree shipping", "repeated lines"),
        ("ha ha ha ha ha ha ha ha ha", "repeated words"),
        (" ".join(["the best deal in town today"] * 10), "repeated n-grams"),
        ("Lorem ipsum dolor sit amet, consectetur adipiscing elit.", "boilerplate"),
    ],
)
def test_each_severe_heuristic(text, code):
    problems = quality_problems(text)
    assert (code in {c for _, c, _ in problems}), problems
    assert any(sev == "severe" and c == code for sev, c, _ in problems)


def test_short_text_is_only_a_warning():
    assert quality_problems("hi there") == [("warning", "too short", "it has 2 word(s), fewer than 3.")]


def test_completion_empty_or_identical_to_prompt():
    recs = qa_records([("What is a bond?", ""), ("What is a bond?", "what is a  BOND?"), CLEAN_QA[0]])
    found = list(LowQualityCheck().run(recs, context()))
    assert {(f.id, f.code) for f in found} == {("t.jsonl:1", "empty completion"), ("t.jsonl:2", "completion repeats prompt")}
    assert all(f.severity == "severe" and f.reason[0].isupper() for f in found)


def test_short_qa_answers_are_not_flagged():
    recs = qa_records([("Who wrote Hamlet?", "Shakespeare"), ("Capital of France?", "Paris")])
    assert list(LowQualityCheck().run(recs, context())) == []


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("write to jane.roe+news@mail.example.co.uk today", "email"),
        ("call +1 415-555-0132 after six", "phone"),
        ("office: (212) 555-0199", "phone"),
        ("card 4111 1111 1111 1111 expires soon", "card_number"),
        ("paid with 5500-0000-0000-0004", "card_number"),
        ("the server at 192.168.10.20 is down", "ip_address"),
        ("ping fe80::1ff:fe23:4567:890a now", "ip_address"),
    ],
)
def test_pii_kinds(text, kind):
    hits = find_pii(text)
    assert [h[0] for h in hits] == [kind]
    kind_, start, end = hits[0]
    assert text[start:end].strip()  # the position points at the value


@pytest.mark.parametrize(
    "text",
    [
        "card 4111 1111 1111 1112 fails the Luhn check",
        "In 2019 revenue was 1,234,567 dollars and 3.5% growth",
        "ISBN 978-3-16-148410-0 and version 1.2.3.4.5",
        "the meeting is on 2020-03-15 at 10:30",
        "an IP-like 999.1.1.1 is not an address",
        *CLEAN_TEXTS,
    ],
)
def test_no_pii_false_alarm(text):
    assert find_pii(text) == []


def test_pii_finding_never_contains_the_value():
    email, phone = "john.doe@example.com", "+1 415-555-0132"
    recs = qa_records([("Contact?", f"Mail {email} or call {phone}."), CLEAN_QA[1]])
    found = list(PiiCheck().run(recs, context()))
    assert len(found) == 1 and found[0].id == "t.jsonl:1"
    dumped = json.dumps(found[0].to_json())
    assert email not in dumped and "415" not in dumped
    hits = found[0].details["pii"]
    assert {h["kind"] for h in hits} == {"email", "phone"} and all(h["field"] == "completion" for h in hits)
    completion = recs[0].fields["completion"]
    assert completion[hits[0]["start"] : hits[0]["end"]] == email


def test_pii_check_on_text_records_has_no_false_alarm():
    assert list(PiiCheck().run(text_records(CLEAN_TEXTS), context())) == []
