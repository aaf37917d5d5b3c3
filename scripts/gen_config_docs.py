"""Write docs/config.md, the config reference, from the pydantic models in tuneproof.config.

The reference lists every field of every section with its type, constraints, default and
description, read from the models themselves, so it cannot drift from what ``load_config``
accepts. ``tests/test_docs.py`` regenerates it and fails when the committed file differs.

Usage:
    python scripts/gen_config_docs.py           # rewrite docs/config.md
    python scripts/gen_config_docs.py --check   # exit 1 when docs/config.md is out of date
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import types
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "config.md"
COMMAND = "python scripts/gen_config_docs.py"

HEADER = """\
# Config reference

<!-- Generated from src/tuneproof/config.py by `{command}`; edit the models, not this file. -->

A run config (`tuneproof.yaml`) has `name`, `task` and one small section per concern, composed
into a `RunConfig`:

```yaml
name: qa-demo            # outputs go to <tracking.runs_dir>/<name>
task: sft                # or classification
data:  {{path: train.jsonl, fields: {{prompt: question, completion: answer}}}}
model: {{name: smollm2-135m, method: lora, lora: {{r: 16}}, max_length: 128}}
train: {{lr: 2.0e-4, batch_size: 16, epochs: 2}}
search: {{n_trials: 12, space: {{lr: {{low: 1.0e-5, high: 5.0e-4, log: true}}}}}}
eval:  {{metric: exact_match}}
tracking: {{runs_dir: runs}}   # MLflow: sqlite:///<runs_dir>/mlflow.db unless `uri` is set
```

Relative paths in a config file are relative to that file. Every validation error is
reported at once, with its line, field path, value and fix, before any model is loaded
(`tuneproof check CONFIG` runs the validation alone). Unknown keys are errors, with a
did-you-mean, so a typo such as `learning_rate:` is never ignored. Any field can be
overridden on the command line: `--set train.lr=3e-4`. See `examples/` for ready configs
(closed-book QA, finance QA, sentiment, summarization); each says how its real data is fetched.

Checks beyond each field's own type and range:
- `data`: `val_fraction + test_fraction` must leave at least 20% of the data for training;
  set `domain` or `domain_text`, not both; `fields` keys must be canonical names
  (`text`, `label`, `prompt`, `completion`, `instruction`, `input`, `output`, `messages`).
- `eval.metric` must fit the task: sft {sft_metrics}; classification {cls_metrics}.
- `train.early_stopping.monitor: val_metric` is for classification only (an SFT metric needs generation).
- `search.space` names must be among {searchable}; `lora_*` only with `model.method: lora`.
- `model.labels` needs at least 2 distinct labels.
- `audit.decisions` and `audit.checks` name checks among {checks}; `audit.num_perm` must be divisible by `audit.bands`.
- `pipeline.stages` names stages among {stages}.
- `augment.methods`: synonym, swap and delete are for classification (SFT takes paraphrase); `pipeline.stages.augment: true` needs at least one method.
"""


def _md(text: str) -> str:
    """Text safe inside a Markdown table cell: pipes escaped, and ``<name>`` shown, not taken for HTML."""
    text = text.replace("``", "`").replace("|", "\\|").replace("\n", " ")
    parts = text.split("`")
    # Even pieces are outside code spans, where <runs_dir> would be read as an HTML tag.
    parts[::2] = [re.sub(r"<(?=[A-Za-z/])", "&lt;", p) for p in parts[::2]]
    return "`".join(parts)


def _doc(cls: type[BaseModel]) -> str:
    """A model's docstring as one paragraph of Markdown."""
    return " ".join((cls.__doc__ or "").split()).replace("``", "`")


def _type_name(annotation: Any) -> str:
    """A reader's name for a field's type: ``int``, ``str | null``, ``"a" | "b"``, ``list[str]``."""
    origin = get_origin(annotation)
    if origin is Literal:
        return " | ".join(json.dumps(a) for a in get_args(annotation))
    if origin in (Union, types.UnionType):
        return " | ".join("null" if a is type(None) else _type_name(a) for a in get_args(annotation))
    if origin in (list, dict):
        return f"{origin.__name__}[{', '.join(_type_name(a) for a in get_args(annotation))}]"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "section"
    if annotation is Any:
        return "any"
    return getattr(annotation, "__name__", str(annotation))


def _constraints(info: Any) -> str:
    """The numeric bounds pydantic enforces on a field, e.g. ``>= 1, <= 1024``."""
    out = []
    for m in info.metadata:
        for cls, op, attr in ((Ge, ">=", "ge"), (Gt, ">", "gt"), (Le, "<=", "le"), (Lt, "<", "lt")):
            if isinstance(m, cls):
                out.append(f"{op} {getattr(m, attr)}")
        if getattr(m, "pattern", None):
            out.append(f"matches `{m.pattern}`")
    return ", ".join(out)


def _value(value: Any) -> str:
    """A default as it would be written in YAML (JSON flow style)."""
    if isinstance(value, BaseModel):
        return "(section)"
    return json.dumps(value, default=str)


def _default(info: Any) -> str:
    if info.default_factory is not None:
        return _value(info.default_factory())
    if info.default is PydanticUndefined:
        return "required"
    return _value(info.default)


def _nested(annotation: Any) -> tuple[str, type[BaseModel]] | None:
    """(suffix, model) when a field holds a section (``model.lora``) or a map of them (``search.space``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "", annotation
    if get_origin(annotation) is dict:
        value = get_args(annotation)[1]
        if isinstance(value, type) and issubclass(value, BaseModel):
            return ".<name>", value
    return None


def _table(path: str, cls: type[BaseModel]) -> list[str]:
    """The section's heading, docstring and field table, then its nested sections."""
    lines = [f"## `{path}`" if "." not in path else f"### `{path}`", ""]
    if doc := _doc(cls):
        lines += [doc, ""]
    lines += ["| field | type | default | description |", "|---|---|---|---|"]
    nested = []
    for name, info in cls.model_fields.items():
        kind = _type_name(info.annotation)
        bounds = _constraints(info)
        sub = _nested(info.annotation)
        if sub:
            nested.append((f"{path}.{name}{sub[0]}", sub[1]))
            link = f"{path}.{name}{sub[0]}".replace(".", "").replace("<", "").replace(">", "")
            desc = (info.description + "; " if info.description else "") + f"see [`{path}.{name}{sub[0]}`](#{link})"
        else:
            desc = info.description or ""
        typ = kind + (f", {bounds}" if bounds else "")
        lines.append(f"| `{name}` | {_md(typ)} | {_md(_default(info)) if not sub or sub[0] else 'see below'} | {_md(desc)} |")
    lines.append("")
    for sub_path, sub_cls in nested:
        lines += _table(sub_path, sub_cls)
    return lines


def render() -> str:
    """The whole of docs/config.md, from the models in tuneproof.config."""
    from tuneproof import config as c

    header = HEADER.format(
        command=COMMAND,
        sft_metrics=", ".join(c.SFT_METRICS),
        cls_metrics=", ".join(c.CLASSIFICATION_METRICS),
        searchable=", ".join(c.SEARCHABLE_PARAMS),
        checks=", ".join(c.AUDIT_CHECKS),
        stages=", ".join(c.PIPELINE_STAGE_DEFAULTS),
    )
    lines = [header, "## Top level", "", "| field | type | default | description |", "|---|---|---|---|"]
    sections = []
    for name, info in c.RunConfig.model_fields.items():
        sub = _nested(info.annotation)
        if sub:
            sections.append((name, sub[1]))
            desc = f"{info.description or _doc(sub[1]).split('. ')[0].rstrip('.')}; see [`{name}`](#{name})"
            lines.append(f"| `{name}` | section | {'required' if info.is_required() else 'defaults'} | {_md(desc)} |")
        else:
            typ = _type_name(info.annotation) + (f", {b}" if (b := _constraints(info)) else "")
            lines.append(f"| `{name}` | {_md(typ)} | {_md(_default(info))} | {_md(info.description or '')} |")
    lines.append("")
    for name, cls in sections:
        lines += _table(name, cls)
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    """Rewrite docs/config.md, or with ``--check`` report whether it is up to date."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when docs/config.md is out of date")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = OUT.read_text(encoding="utf-8") if OUT.exists() else ""
        if current != text:
            print(f"{OUT.relative_to(ROOT)} is out of date: run `{COMMAND}`", file=sys.stderr)
            return 1
        print(f"{OUT.relative_to(ROOT)} is up to date")
        return 0
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    raise SystemExit(main())
