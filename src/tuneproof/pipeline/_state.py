"""Hashes and the pipeline.json ledger: what each stage read, with which config, and what it wrote."""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any

from tuneproof._io import atomic_write


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def hash_inputs(paths: list[Path]) -> str:
    """One sha256 over the named files (a folder counts as all its files, sorted)."""
    h = hashlib.sha256()
    for p in paths:
        files = sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
        for q in files:
            h.update(str(q.name).encode())
            h.update(sha256_file(q).encode() if q.exists() else b"missing")
    return h.hexdigest()


@functools.cache
def code_hash() -> str:
    """sha256 over tuneproof's own source files (their paths and contents), 16 hex digits.

    The package version alone misses a changed checkout or an editable install; a stage's
    result depends on the code that made it as much as on its inputs.
    """
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for q in sorted(root.rglob("*.py")):
        h.update(q.relative_to(root).as_posix().encode())
        h.update(sha256_file(q).encode())
    return h.hexdigest()[:16]


def hash_config(slice_: Any) -> str:
    return hashlib.sha256(json.dumps(slice_, sort_keys=True, default=str).encode()).hexdigest()


def read_ledger(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "pipeline.json"
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return {}  # a half-written ledger: every stage re-runs, which is safe


def write_ledger(run_dir: Path, ledger: dict[str, Any]) -> None:
    atomic_write(run_dir / "pipeline.json", json.dumps(ledger, indent=1, default=str))  # an interrupt never leaves half a file
