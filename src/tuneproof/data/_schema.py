"""Which schema a data source follows, and the checks each row must pass."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from tuneproof.data._records import Schema
from tuneproof.errors import DataError

REQUIRED: dict[Schema, tuple[str, ...]] = {
    Schema.CHAT: ("messages",),
    Schema.ALPACA: ("instruction", "output"),
    Schema.PROMPT_COMPLETION: ("prompt", "completion"),
    Schema.TEXT_LABEL: ("text", "label"),
    Schema.TEXT: ("text",),
}
OPTIONAL: dict[Schema, tuple[str, ...]] = {Schema.ALPACA: ("input",)}

# Most specific first: a row with `text` and `label` is a TEXT_LABEL row, not a TEXT row
# that happens to carry an extra column.
PRIORITY: tuple[Schema, ...] = tuple(REQUIRED)

CANONICAL: tuple[str, ...] = tuple(
    dict.fromkeys(f for s in PRIORITY for f in REQUIRED[s] + OPTIONAL.get(s, ()))
)

ROLES: tuple[str, ...] = ("system", "user", "assistant", "tool")

_FORMAT_HELP = {
    Schema.CHAT: "messages (a list of {'role', 'content'} objects)",
    Schema.ALPACA: "instruction, output, and optionally input",
    Schema.PROMPT_COMPLETION: "prompt, completion",
    Schema.TEXT_LABEL: "text, label",
    Schema.TEXT: "text",
}
_MAPPING_HELP = (
    "If your columns have other names, map them with data.fields in the config, "
    "e.g. --set data.fields.prompt=question --set data.fields.completion=answer."
)


class RowProblem(Exception):
    """Why one row cannot become a record.

    Attributes:
        kind: a short category, counted in summaries (e.g. ``"broken JSON"``).
        reason: the full sentence for the rejects file.
    """

    def __init__(self, kind: str, reason: str):
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


def schema_fields(schema: Schema) -> tuple[str, ...]:
    """The canonical fields of ``schema``, required ones first."""
    return REQUIRED[schema] + OPTIONAL.get(schema, ())


def accepted_formats() -> str:
    """The accepted schemas and their fields, one per line, for error messages."""
    return "\n".join(f"  - {s.value}: {_FORMAT_HELP[s]}" for s in PRIORITY)


def coerce_schema(schema: Schema | str) -> Schema:
    """``Schema("chat")`` with an error that lists the accepted names."""
    try:
        return Schema(schema)
    except ValueError:
        names = ", ".join(s.value for s in Schema)
        raise DataError(f"unknown schema {schema!r}; use one of: {names}.") from None


def detect_schema(
    columns: Iterable[str], fields: dict[str, str] | None = None
) -> tuple[Schema, dict[str, str]]:
    """Pick the schema that the column names fit, and the column for each canonical field.

    When several schemas fit, the most specific wins: chat > alpaca > prompt_completion >
    text_label > text. ``fields`` maps canonical names to source columns and overrides
    detection: the schema is the most specific one that contains every mapped name.

    Args:
        columns: the column names of the data (for JSONL, the keys of its first objects).
        fields: canonical field name -> source column, e.g. ``{"prompt": "question"}``.

    Returns:
        The schema and ``field_map`` (canonical name -> source column) for the fields it uses.

    Raises:
        DataError: no schema fits (the message lists the columns seen and the accepted
            formats), or ``fields`` names an unknown field or a column that does not exist.

    Example:
        >>> detect_schema(["text", "label", "id"])
        (<Schema.TEXT_LABEL: 'text_label'>, {'text': 'text', 'label': 'label'})
        >>> schema, field_map = detect_schema(["q", "a"], {"prompt": "q", "completion": "a"})
        >>> schema.value, field_map["completion"]
        ('prompt_completion', 'a')
    """
    return resolve_schema(columns, fields, None)


def resolve_schema(
    columns: Iterable[str], fields: dict[str, str] | None, forced: Schema | None
) -> tuple[Schema, dict[str, str]]:
    """:func:`detect_schema`, or with ``forced`` set, the field map for that one schema."""
    cols = list(dict.fromkeys(columns))
    fields = dict(fields or {})
    seen = ", ".join(repr(c) for c in cols) or "(none)"

    unknown = [k for k in fields if k not in CANONICAL]
    if unknown:
        raise DataError(
            f"data.fields has unknown field name(s) {', '.join(map(repr, unknown))}. The names on "
            f"the left are tuneproof's fields ({', '.join(CANONICAL)}) and the values are your "
            f"columns, e.g. --set data.fields.prompt=question."
        )
    absent = [f"{k} -> {v!r}" for k, v in fields.items() if v not in cols]
    if absent:
        raise DataError(
            f"data.fields maps {', '.join(absent)}, but the data has no such column; "
            f"columns seen: {seen}. Fix the column name in data.fields."
        )

    mapped = set(fields)
    if forced is not None:
        stray = mapped - set(schema_fields(forced))
        if stray:
            raise DataError(
                f"data.fields maps {', '.join(map(repr, sorted(stray)))}, which the "
                f"{forced.value} schema does not use; it uses: {_FORMAT_HELP[forced]}."
            )
        candidates = [forced]
    elif mapped:
        candidates = [s for s in PRIORITY if mapped <= set(schema_fields(s))]
        if not candidates:
            raise DataError(
                f"data.fields maps {', '.join(map(repr, sorted(mapped)))}, which no single "
                f"format has together. Accepted formats and their fields:\n{accepted_formats()}"
            )
    else:
        candidates = list(PRIORITY)

    available = mapped | (set(cols) & set(CANONICAL))
    for schema in candidates:
        if set(REQUIRED[schema]) <= available:
            field_map = {f: fields.get(f, f) for f in schema_fields(schema) if f in available}
            return schema, field_map

    if forced is None and not mapped:
        raise DataError(
            f"cannot tell the data's format from its fields: {seen}.\n"
            f"Accepted formats and the fields each needs:\n{accepted_formats()}\n{_MAPPING_HELP}"
        )
    closest = min(candidates, key=lambda s: len(set(REQUIRED[s]) - available))
    missing = [f for f in REQUIRED[closest] if f not in available]
    hint = " ".join(f"--set data.fields.{f}=<column>" for f in missing)
    raise DataError(
        f"the {closest.value} format needs {', '.join(map(repr, missing))}, but the data has no "
        f"such column; columns seen: {seen}. Map columns to them with data.fields, e.g. {hint}."
    )


def validate_row(row: dict[str, Any], schema: Schema, field_map: dict[str, str]) -> dict[str, Any]:
    """The canonical fields of one row, checked.

    Raises:
        RowProblem: a required field is missing, null or of the wrong type.
    """
    out: dict[str, Any] = {}
    for name in REQUIRED[schema]:
        column = field_map[name]
        if column not in row:
            has = ", ".join(repr(k) for k in row) or "none"
            raise RowProblem(
                f"missing field {column!r}",
                f"missing field {column!r}; the row has fields: {has}. Add it to every row, "
                f"or map another column with data.fields.{name}.",
            )
        out[name] = _CHECKS[name](column, _not_null(column, row[column]))
    for name in OPTIONAL.get(schema, ()):
        value = row.get(field_map.get(name, name))
        out[name] = "" if value is None else _CHECKS[name](field_map.get(name, name), value)
    return out


def _not_null(column: str, value: Any) -> Any:
    # NaN is how pandas-written files spell "missing", so it counts as null too.
    if value is None or (isinstance(value, float) and math.isnan(value)):
        raise RowProblem(
            f"null field {column!r}",
            f"field {column!r} is null; give it a value or remove the row.",
        )
    return value


def _type_name(value: Any) -> str:
    names = {
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        list: "a list",
        dict: "an object",
        type(None): "null",
    }
    return names.get(type(value), f"a {type(value).__name__}")


def _wrong_type(column: str, expected: str, value: Any) -> RowProblem:
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return RowProblem(
        f"wrong type for {column!r}",
        f"field {column!r} should be {expected} but is {_type_name(value)} ({shown}).",
    )


def _check_string(column: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _wrong_type(column, "a string", value)
    return value


def _check_label(column: str, value: Any) -> str | int | bool:
    # pandas stores an integer column that has gaps as floats (1.0, NaN); 1.0 means 1.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if not isinstance(value, (str, int, bool)):
        raise _wrong_type(column, "a string, an integer or a boolean", value)
    return value


def _check_messages(column: str, value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list):
        raise _wrong_type(column, "a list of {'role', 'content'} objects", value)
    if not value:
        raise RowProblem(
            "empty messages list",
            f"field {column!r} is an empty list; a chat needs at least one message.",
        )
    messages = []
    for n, message in enumerate(value, 1):
        if not isinstance(message, dict):
            raise RowProblem(
                "bad message",
                f"message {n} of {column!r} should be an object with 'role' and 'content' "
                f"but is {_type_name(message)}.",
            )
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise RowProblem(
                "bad message role",
                f"message {n} of {column!r} has role {role!r}; the role must be one of "
                f"{', '.join(ROLES)}.",
            )
        if not isinstance(content, str):
            raise RowProblem(
                "bad message content",
                f"message {n} of {column!r} (role {role!r}) should have a string 'content' but "
                f"it is {_type_name(content)}; every message needs its text in 'content'.",
            )
        # Extra keys (tool_calls, name, weight...) are dropped: templates expect role/content.
        messages.append({"role": role, "content": content})
    return messages


_CHECKS = {
    "text": _check_string,
    "prompt": _check_string,
    "completion": _check_string,
    "instruction": _check_string,
    "input": _check_string,
    "output": _check_string,
    "label": _check_label,
    "messages": _check_messages,
}
