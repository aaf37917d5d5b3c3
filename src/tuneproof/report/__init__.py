"""The run report: one self-contained ``report.html`` and a ``report.json`` with the same facts.

Example:
    >>> from tuneproof.report import build_report
    >>> build_report("runs/qa_demo")  # doctest: +SKIP
    PosixPath('runs/qa_demo/report.html')
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tuneproof._io import atomic_write
from tuneproof.errors import DataError

__all__ = ["SECTIONS", "build_report"]

from tuneproof.report._collect import SECTIONS


def build_report(run_dir: str | os.PathLike[str]) -> Path:
    """Read a run directory and write ``report.html`` and ``report.json`` into it.

    Every stage's files may be missing: its section then says "not run" and why (from
    ``pipeline.json`` when it records the stage). Dataset text is HTML-escaped, and the page
    forbids scripts and network loads (Content-Security-Policy), so it is safe to open.

    Args:
        run_dir: a run directory, ``runs/<name>``.

    Returns:
        The path of ``report.html``.

    Raises:
        DataError: ``run_dir`` is not a directory, or the report cannot be written there.
    """
    from tuneproof.report._collect import collect
    from tuneproof.report._html import render

    root = Path(run_dir)
    if not root.is_dir():
        raise DataError(f"{root}: not a run directory (it does not exist or is a file). Fix: pass runs/<name>, the folder a run wrote.")
    facts = collect(root)
    page = render(facts)
    html_path, json_path = root / "report.html", root / "report.json"
    try:
        atomic_write(json_path, json.dumps(facts, indent=1, ensure_ascii=False, default=str) + "\n")
        atomic_write(html_path, page)
    except OSError as exc:
        raise DataError(f"{root}: cannot write the report there ({exc}). Fix: make the folder writable or copy the run elsewhere.") from exc
    return html_path
