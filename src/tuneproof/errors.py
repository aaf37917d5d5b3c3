"""Errors that teach: each names the value, the rule that it broke and the fix.

Every error that tuneproof raises on purpose derives from :class:`TuneproofError`.
The CLI prints these as a short message (no traceback) and exits with code 1;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DataError",
    "ModelLoadError",
    "NotImplementedYet",
    "TuneproofError",
]


class TuneproofError(Exception):
    """Base class for errors caused by the user's input or environment, not by a bug."""


class ConfigError(TuneproofError):
    """A config file or override is invalid. The message lists every problem at once.

    Attributes:
        problems: one line per problem, each naming the field path, the value and the fix.
    """

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = list(problems)
        n = len(self.problems)
        head = f"{source}: {n} problem{'s' if n != 1 else ''} in the config"
        super().__init__(head + ":\n" + "\n".join(f"  - {p}" for p in self.problems))


class DataError(TuneproofError):
    """A data file cannot be used: missing, empty, unreadable, or of an unknown schema."""


class ModelLoadError(TuneproofError):
    """A model or tokenizer cannot be found or loaded."""


class NotImplementedYet(TuneproofError):
    """A command whose engine is not built yet. The CLI exits with code 2 for it."""

    exit_code = 2
