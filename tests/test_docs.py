"""The user docs: the generated config reference is current, and relative links resolve."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from pydantic import BaseModel, Field

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "BENCHMARKS.md", *sorted((ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
CODE_SPAN = re.compile(r"`[^`\n]*`")


def _generator():
    spec = importlib.util.spec_from_file_location("gen_config_docs", ROOT / "scripts" / "gen_config_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_config_reference_is_up_to_date():
    gen = _generator()
    committed = (ROOT / "docs" / "config.md").read_text(encoding="utf-8")
    assert committed == gen.render(), f"docs/config.md is out of date: run `{gen.COMMAND}`"


def test_config_reference_lists_a_field_with_its_bounds_default_and_description():
    class Demo(BaseModel):
        """A section."""

        steps: int = Field(default=3, ge=1, description="how many | steps under <runs_dir>")

    table = "\n".join(_generator()._table("demo", Demo))
    assert "## `demo`" in table and "A section." in table
    assert "| `steps` | int, >= 1 | 3 | how many \\| steps under &lt;runs_dir> |" in table


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for line in FENCE.sub("", path.read_text(encoding="utf-8")).splitlines():
        if m := re.match(r"#{1,6} (.+)", line):
            slug = _slug(m.group(1))
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def _links(path: Path) -> list[str]:
    text = CODE_SPAN.sub("", FENCE.sub("", path.read_text(encoding="utf-8")))
    return [t for t in LINK.findall(text) if not re.match(r"[a-z]+:", t)]


def test_relative_links_in_readme_and_docs_resolve():
    broken = []
    for doc in DOCS:
        for target in _links(doc):
            file_part, _, anchor = target.partition("#")
            dest = (doc.parent / file_part).resolve() if file_part else doc
            where = f"{doc.relative_to(ROOT)}: ({target})"
            if not dest.exists():
                broken.append(f"{where} points to a missing file")
            elif not dest.is_relative_to(ROOT):
                broken.append(f"{where} leaves the repository")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                broken.append(f"{where}: no heading with anchor #{anchor} in {dest.relative_to(ROOT)}")
    assert not broken, "broken links; fix the path or the heading:\n" + "\n".join(broken)


def test_docs_name_no_project_history_or_paths_outside_the_repository():
    pattern = re.compile(r"\bissue \d+|\bsessions?\b|\.\./shared|/work/", re.I)
    hits = [f"{doc.relative_to(ROOT)}:{i}: {line.strip()}" for doc in DOCS
            for i, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)]  # fmt: skip
    assert not hits, "user docs must describe the software, not its history or this machine:\n" + "\n".join(hits)
