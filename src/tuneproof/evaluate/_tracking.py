"""MLflow logging of an evaluation (plain mlflow calls; to be pointed at tuneproof.track later)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _log_to_mlflow(
    result: Any, out: Path, *, uri: str, experiment: str = "tuneproof", parent_run_id: str | None = None
) -> str:
    """Log params, metrics, the verdict and eval.json to an MLflow run; return its id."""
    import mlflow

    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(experiment)
    tags = {"tuneproof.stage": "evaluate", "tuneproof.verdict": result.verdict}
    if parent_run_id:
        tags["mlflow.parentRunId"] = parent_run_id
    with mlflow.start_run(run_name="evaluate", tags=tags, nested=mlflow.active_run() is not None) as run:
        mlflow.log_params(
            {"base": result.base, "tuned": result.tuned, "task": result.task, "metric": result.metric,
             "n_records": result.n_records, "reference": result.reference}  # fmt: skip
        )
        metrics: dict[str, float] = {}
        for who, values in result.metrics.items():
            for name, value in values.items():
                if value is not None and value == value:  # skip NaN
                    metrics[f"eval/{who}/{name}"] = float(value)
        d = result.delta
        metrics.update({"eval/delta": d.value, "eval/delta_ci_low": d.ci_low, "eval/delta_ci_high": d.ci_high})
        if result.forgetting.get("relative_change") is not None:
            metrics["eval/forgetting_relative_change"] = float(result.forgetting["relative_change"])
        mlflow.log_metrics({k: v for k, v in metrics.items() if v == v})
        mlflow.log_artifact(str(out / "eval.json"))
        return run.info.run_id
