"""Benchmark: records/s and duplicate-detection quality of exact + near dedup + quality.

Builds a >= 100k-record corpus from real text (XSum sentences, NQ-open, fortunes,
chatterbot replies, FiQA; see _audit_common.text_units): 85% distinct records, each two
real texts of similar length joined (so distinct records share a text with others,
Jaccard ~1/3: hard negatives), and 15% copies of them: 40% exact (case and whitespace
changed) and 60% near copies with 3-12% of their words edited. Ground truth: a record
is a duplicate when an earlier record is of its family.

On the same file, in the same run, it times and scores:
  1. tuneproof: audit(checks=exact_duplicate, near_duplicate, low_quality), from the JSONL
     file, defaults (num_perm 112, 28 bands x 4, verified Jaccard >= 0.5);
  2. datatrove MinHash dedup, default MinhashConfig (5-grams, 14 x 8), signature ->
     buckets (14 tasks) -> cluster -> filter, one worker;
  3. plain datasketch MinHashLSH (128 permutations, 5-word shingles, threshold 0.8);
  4. tuneproof again (A/B/A order, because the machine is shared).
Then relevance scoring records/s on 128-token records: sentence-transformers with
default settings (fp32) against tuneproof's Embedder (bf16 autocast, length-sorted).

Run:  flock /tmp/tuneproof-bench.lock python benchmarks/audit_throughput.py [--n 100000]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _audit_common import edit_words, print_conditions, prf, text_units, xsum  # noqa: E402


def build_corpus(n: int, dup_share: float, seed: int) -> tuple[list[str], set[int]]:
    rng = random.Random(seed)
    units = sorted(text_units(), key=lambda u: len(u.split()))
    vocab = sorted({w for u in units[:: max(1, len(units) // 5000)] for w in u.split()})
    n_base = round(n * (1 - dup_share))
    base, pairs = [], set()
    # Partners within +-window in length order; wide enough that distinct pairs never run
    # out (there are about len(units) * window of them).
    window = max(20, 4 * n_base // len(units))
    while len(base) < n_base:
        i = rng.randrange(len(units))
        j = min(len(units) - 1, max(0, i + rng.randint(-window, window)))
        if i == j or (i, j) in pairs or (j, i) in pairs:
            continue
        pairs.add((i, j))
        base.append(f"{units[i]} {units[j]}")
    texts = list(base)
    families = list(range(len(base)))
    for _ in range(n - n_base):
        src = rng.randrange(n_base)
        if rng.random() < 0.4:  # exact copy up to case and whitespace
            t = base[src].upper() if rng.random() < 0.5 else "  ".join(base[src].split())
        else:
            k = len(base[src].split())
            t = edit_words(base[src], rng, vocab, max(1, round(k * rng.uniform(0.03, 0.12))))
        texts.append(t)
        families.append(src)
    order = list(range(len(texts)))
    rng.shuffle(order)  # copies land anywhere, before or after their source
    texts = [texts[i] for i in order]
    families = [families[i] for i in order]
    seen: set[int] = set()
    truth = set()
    for idx, fam in enumerate(families):
        if fam in seen:
            truth.add(idx)
        seen.add(fam)
    return texts, truth


def run_tuneproof(path: Path, cfg=None) -> tuple[float, set[int], dict]:
    from tuneproof.audit import audit
    from tuneproof.config import AuditConfig

    cfg = cfg or AuditConfig()
    cfg = cfg.model_copy(update={"checks": ["exact_duplicate", "near_duplicate", "low_quality"]})
    t0 = time.perf_counter()
    res = audit(path, config=cfg, progress=False)
    secs = time.perf_counter() - t0
    flagged = {f.index for f in res.findings if f.check in ("exact_duplicate", "near_duplicate")}
    return secs, flagged, {k: v.get("seconds") for k, v in res.checks.items() if v.get("status") == "ran"}


def run_datasketch(texts: list[str]) -> tuple[float, set[int]]:
    from datasketch import MinHash, MinHashLSH

    t0 = time.perf_counter()
    lsh = MinHashLSH(threshold=0.8, num_perm=128)
    flagged = set()
    for i, t in enumerate(texts):
        toks = t.lower().split()
        sh = {" ".join(toks[k : k + 5]) for k in range(max(1, len(toks) - 4))}
        m = MinHash(num_perm=128)
        m.update_batch([s.encode("utf-8") for s in sh])
        if lsh.query(m):
            flagged.add(i)
        else:
            lsh.insert(str(i), m)
    return time.perf_counter() - t0, flagged


def _xxhash_accepts_str() -> None:
    """datatrove 0.10.1 hashes str shingles with xxhash, but xxhash 4.x accepts only bytes
    ("Strings must be encoded before hashing"). Encode to UTF-8 first, which is what
    xxhash 3.x did with a str, so datatrove's default settings run unchanged."""
    import xxhash

    import datatrove.utils.hashes.xxhash as dt_xx

    if getattr(dt_xx, "_tuneproof_bench_shim", False):
        return

    def enc(data):
        return data.encode("utf-8") if isinstance(data, str) else data

    dt_xx.xxhash32 = lambda data: xxhash.xxh32_intdigest(enc(data))
    dt_xx.xxhash64 = lambda data: xxhash.xxh64_intdigest(enc(data))
    dt_xx._tuneproof_bench_shim = True


def run_datatrove(path: Path, work: Path) -> tuple[float, set[int]]:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    _xxhash_accepts_str()
    cfg = MinhashConfig()
    src = work / "input"
    src.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, src / "data.jsonl")

    def reader():
        return JsonlReader(str(src), text_key="text", id_key="id")

    stages = [
        ([reader(), MinhashDedupSignature(output_folder=str(work / "sigs"), config=cfg)], 1),
        ([MinhashDedupBuckets(input_folder=str(work / "sigs"), output_folder=str(work / "buckets"), config=cfg)], cfg.num_buckets),
        ([MinhashDedupCluster(input_folder=str(work / "buckets"), output_folder=str(work / "remove_ids"), config=cfg)], 1),
        ([reader(), MinhashDedupFilter(input_folder=str(work / "remove_ids"), exclusion_writer=JsonlWriter(str(work / "removed")))], 1),
    ]
    t0 = time.perf_counter()
    for i, (pipeline, tasks) in enumerate(stages):
        LocalPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=1, logging_dir=str(work / f"logs{i}")).run()
    secs = time.perf_counter() - t0
    flagged = set()
    import gzip

    for f in (work / "removed").glob("*"):
        opener = gzip.open if f.suffix == ".gz" else open
        with opener(f, "rt") as fh:
            for line in fh:
                flagged.add(int(json.loads(line)["id"]))
    return secs, flagged


def relevance_speed(n: int) -> list[tuple[str, float]]:
    import torch
    from sentence_transformers import SentenceTransformer

    from tuneproof.audit.embed import Embedder
    from tuneproof.models import resolve_model

    path = str(resolve_model("minilm").path)
    ours = Embedder(max_tokens=128, batch_size=64)
    tok = ours.tokenizer
    # Records of at least 128 tokens (XSum articles), so truncation makes them 128 tokens.
    arts = [a["document"].replace("\n", " ") for a in xsum()]
    texts = [a for a in arts if len(tok(a)["input_ids"]) >= 128][:n]
    st = SentenceTransformer(path, device="cpu")
    st.max_seq_length = 128  # same truncation; default precision (fp32), default batch 32
    from tuneproof.audit.embed import free_threads

    default_threads = torch.get_num_threads()
    ours_threads = free_threads(default_threads)

    def st_with(threads):
        def run():
            torch.set_num_threads(threads)
            try:
                st.encode(texts, batch_size=32)
            finally:
                torch.set_num_threads(default_threads)

        return run

    rows = []
    for name, fn in (
        (f"sentence-transformers fp32 (defaults: batch 32, {default_threads} threads)", st_with(default_threads)),
        (f"tuneproof Embedder (bf16 autocast, length-sorted, {ours_threads} threads)", lambda: ours.encode(texts)),
        (f"sentence-transformers fp32 ({ours_threads} threads, as ours)", st_with(ours_threads)),
        ("sentence-transformers fp32 (defaults, again)", st_with(default_threads)),
        ("tuneproof Embedder (again)", lambda: ours.encode(texts)),
    ):
        t0 = time.perf_counter()
        fn()
        rows.append((name, len(texts) / (time.perf_counter() - t0)))
        print(f"  {name}: {rows[-1][1]:.0f} records/s ({len(texts)} records)", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dup-share", type=float, default=0.15)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-datatrove", action="store_true")
    ap.add_argument("--relevance-n", type=int, default=512)
    ap.add_argument("--only-tuneproof", action="store_true", help="scale test: time tuneproof alone and print peak RSS")
    args = ap.parse_args()
    cond = print_conditions("audit throughput: exact + near dedup + quality")
    texts, truth = build_corpus(args.n, args.dup_share, args.seed)
    work = Path(tempfile.mkdtemp(prefix="tp-bench-"))
    path = work / "corpus.jsonl"
    with path.open("w") as f:
        for i, t in enumerate(texts):
            f.write(json.dumps({"id": str(i), "text": t}) + "\n")
    print(f"corpus: {len(texts)} records, {len(truth)} true duplicates, mean {sum(len(t.split()) for t in texts) / len(texts):.0f} words")
    results = {}

    def report(name: str, secs: float, flagged: set[int], extra: str = "") -> None:
        s = prf(flagged, truth)
        results[name] = {"seconds": round(secs, 2), "records_per_s": round(n_records / secs), **s}
        print(f"  {name}: {n_records / secs:,.0f} records/s ({secs:.1f} s); precision {s['precision']}, "
              f"recall {s['recall']}, F1 {s['f1']} {extra}", flush=True)  # fmt: skip

    n_records = len(texts)
    del texts  # the audit reads the file; peak memory should be the audit's own
    secs, flagged, per = run_tuneproof(path)
    report("tuneproof (A)", secs, flagged, f"per check s: {per}")
    if args.only_tuneproof:
        print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")
        return
    if not args.skip_datatrove:
        secs, flagged = run_datatrove(path, work / "dt")
        report("datatrove MinHash (defaults)", secs, flagged)
    secs, flagged = run_datasketch([json.loads(line)["text"] for line in path.open()])
    report("datasketch MinHashLSH (128 perm, 5-gram, 0.8)", secs, flagged)
    secs, flagged, per = run_tuneproof(path)
    report("tuneproof (B)", secs, flagged, f"per check s: {per}")
    if "datatrove MinHash (defaults)" in results:
        dt = results["datatrove MinHash (defaults)"]
        mean_ours = (results["tuneproof (A)"]["records_per_s"] + results["tuneproof (B)"]["records_per_s"]) / 2
        print(f"ratio tuneproof / datatrove: speed {mean_ours / dt['records_per_s']:.1f}x, "
              f"F1 {results['tuneproof (A)']['f1']} vs {dt['f1']}")  # fmt: skip
    print("relevance scoring (MiniLM, 128-token records):")
    rel = relevance_speed(args.relevance_n)
    print(f"ratio Embedder / sentence-transformers defaults: {(rel[1][1] + rel[4][1]) / (rel[0][1] + rel[3][1]):.1f}x; "
          f"/ sentence-transformers with the same threads: {(rel[1][1] + rel[4][1]) / 2 / rel[2][1]:.1f}x")
    print(json.dumps({"conditions": cond, "dedup": results, "relevance": dict(rel)}, indent=1))
    print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
