"""The pipeline behind ``tuneproof run``: stages, preflight and the ship/no-ship decision.

Example:
    >>> from tuneproof.pipeline import run
    >>> result = run("examples/qa_demo.yaml")  # doctest: +SKIP
    >>> result.decision["headline"]  # doctest: +SKIP
"""

from __future__ import annotations

from tuneproof.pipeline._augment import augment
from tuneproof.pipeline._data_value import data_value
from tuneproof.pipeline._decision import decide, likely_causes
from tuneproof.pipeline._preflight import DEFAULT_MIN_EFFECT, minimum_detectable_effect, preflight
from tuneproof.pipeline._run import STAGES, RunResult, Stage, run

__all__ = ["DEFAULT_MIN_EFFECT", "STAGES", "RunResult", "Stage", "augment", "data_value", "decide", "likely_causes",
           "minimum_detectable_effect", "preflight", "run"]  # fmt: skip
