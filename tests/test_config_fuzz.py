"""Property-based fuzzing of the config parser (hypothesis): a ConfigError that lists problems, or a config.

Whatever the YAML text, the mapping or the --set overrides, load_config either returns a
RunConfig or raises ConfigError with at least one problem line; never a traceback of
another type.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from tuneproof.config import RunConfig, load_config
from tuneproof.errors import ConfigError

EXAMPLES = 300
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = (st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=True, allow_infinity=True)
           | st.text(max_size=12) | st.sampled_from(["sft", "classification", "lora", "auto", "1e-4", "-1", ""]))  # fmt: skip
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                      max_leaves=6)  # fmt: skip


def _field_names(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every dotted field path of the config, so the fuzzer reaches each section's validators."""
    out = []
    for name, info in model.model_fields.items():
        out.append(prefix + name)
        ann = info.annotation
        sub = next((a for a in (ann, *getattr(ann, "__args__", ())) if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if sub is not None:
            out += _field_names(sub, prefix + name + ".")
    return out


PATHS = _field_names(RunConfig)


def _nested(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    raw: dict[str, Any] = {"name": "fuzz", "task": "sft", "data": {"path": "d.jsonl"}}
    for path, value in pairs:
        node = raw
        *parents, leaf = path.split(".")
        for p in parents:
            node = node.setdefault(p, {}) if isinstance(node.get(p), dict) or p not in node else {}
        node[leaf] = value
    return raw


def _outcome(fn) -> RunConfig | ConfigError:
    try:
        return fn()
    except ConfigError as exc:
        assert exc.problems and all(isinstance(p, str) and p.strip() for p in exc.problems)
        assert "problem" in str(exc)
        return exc


@FUZZ
@given(text=st.text(max_size=300) | values.map(lambda v: yaml.safe_dump(v)))
def test_any_yaml_text_gives_a_config_or_a_config_error(text):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        _outcome(lambda: load_config(path))


@FUZZ
@given(pairs=st.lists(st.tuples(st.sampled_from(PATHS), values), max_size=6))
def test_any_values_in_the_real_fields_give_a_config_or_a_config_error(pairs):
    out = _outcome(lambda: load_config(_nested(pairs)))
    if isinstance(out, RunConfig):  # what validated round-trips through its own YAML
        assert load_config(yaml.safe_load(out.to_yaml())) == out


@FUZZ
@given(overrides=st.lists(st.text(max_size=30) | st.tuples(st.sampled_from(PATHS), st.text(max_size=12)).map("=".join),
                          max_size=4))  # fmt: skip
@example(overrides=["train.lr=\x1b"])  # a control character: yaml's ReaderError has no .problem
def test_any_overrides_give_a_config_or_a_config_error(overrides):
    _outcome(lambda: load_config({"name": "fuzz", "task": "sft", "data": {"path": "d.jsonl"}}, overrides))
