"""Personal data: emails, phone numbers, payment card numbers (Luhn-checked), IP addresses.

Only the kind and the position (field, start, end) are reported, never the value.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator, Sequence

from tuneproof.audit._base import WARNING, Context, Finding, completion_text, progress, prompt_text
from tuneproof.data import Record

__all__ = ["PiiCheck", "find_pii"]

_EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
_CARD = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{1,4}(?![\w:])")
# A phone number: an optional +country code, then 9-15 digits grouped by spaces, dots,
# dashes or parentheses. Plain digit runs without separators or '+' are not counted:
# they are usually amounts, years or ids.
_PHONE = re.compile(r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?|\d{2,4}[ .-])(?:\d{2,4}[ .-]){1,3}\d{2,4}(?!\w)")


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def find_pii(text: str) -> list[tuple[str, int, int]]:
    """``(kind, start, end)`` for each email, phone, card number and IP address in ``text``."""
    found: list[tuple[str, int, int]] = []
    taken: list[tuple[int, int]] = []

    def add(kind: str, m: re.Match) -> None:
        s, e = m.span()
        if any(s < te and ts < e for ts, te in taken):
            return
        taken.append((s, e))
        found.append((kind, s, e))

    for m in _EMAIL.finditer(text):
        add("email", m)
    for m in _CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if 13 <= len(digits) <= 19 and _luhn(digits) and len(set(digits)) > 1:
            add("card_number", m)
    for m in _IPV4.finditer(text):
        parts = m.group().split(".")
        if all(int(p) <= 255 for p in parts) and not all(p == "0" for p in parts):
            add("ip_address", m)
    for m in _IPV6.finditer(text):
        try:
            ipaddress.IPv6Address(m.group())
        except ValueError:
            continue
        add("ip_address", m)
    for m in _PHONE.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if 9 <= len(digits) <= 15 and not re.fullmatch(r"(19|20)\d\d[ -]\d\d[ -]\d\d", m.group()):
            add("phone", m)
    return sorted(found, key=lambda f: f[1])


class PiiCheck:
    """Personal data in a record's prompt or completion (kind and position only)."""

    name = "pii"

    def run(self, records: Sequence[Record], context: Context) -> Iterator[Finding]:
        for i, rec in enumerate(progress(records, "personal data", context.progress)):
            parts = [("prompt", prompt_text(rec)), ("completion", completion_text(rec))]
            hits = [
                {"kind": kind, "field": field, "start": s, "end": e}
                for field, text in parts
                if text
                for kind, s, e in find_pii(text)
            ]
            if not hits:
                continue
            kinds = sorted({h["kind"] for h in hits})
            where = ", ".join(f"{h['kind']} in {h['field']} at {h['start']}-{h['end']}" for h in hits[:5])
            yield Finding(
                rec.id, self.name, WARNING,
                f"Possible personal data ({', '.join(kinds)}): {where}. The values are not shown.",
                ", ".join(kinds), {"pii": hits}, i,
            )  # fmt: skip
