"""Use a finished run's model: batch predictions on new records, and a side-by-side chat.

Both read the run folder (its config says the base model, the task and the prompt format),
load the shipped model (else the trained one, marked as not proven) on the inference device
(``cuda:LOCAL_RANK`` when there is a GPU) and generate through the evaluation's code.

Example:
    >>> from tuneproof.serve import predict
    >>> predict("runs/qa", "new.jsonl", "predictions.jsonl").summary()  # doctest: +SKIP
    '120 predictions in predictions.jsonl'
"""

from __future__ import annotations

from tuneproof.serve._chat import chat
from tuneproof.serve._predict import PredictResult, predict

__all__ = ["PredictResult", "chat", "predict"]
