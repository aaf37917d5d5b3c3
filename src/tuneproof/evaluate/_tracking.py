"""MLflow logging of an evaluation, through :mod:`tuneproof.track` (one run, optionally a child)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _log_to_mlflow(
    result: Any, out: Path, *, uri: str, experiment: str = "tuneproof", parent_run_id: str | None = None
) -> str:
    """Log params, metrics, the verdict and eval.json to one MLflow run; return its id."""
    from tuneproof import track
    from tuneproof.config import TrackingConfig

    tracking = TrackingConfig(uri=uri, experiment=experiment)
    tags = {"tuneproof.stage": "evaluate", "tuneproof.verdict": result.verdict}
    with track.start_run(tracking, "evaluate", parent_run_id=parent_run_id, tags=tags, system_metrics=False) as run:
        track.log_params(
            run,
            {"base": result.base, "tuned": result.tuned, "task": result.task, "metric": result.metric,
             "n_records": result.n_records, "reference": result.reference},  # fmt: skip
        )
        metrics: dict[str, float] = {}
        for who, values in result.metrics.items():
            for name, value in values.items():
                if value is not None:
                    metrics[f"eval/{who}/{name}"] = float(value)
        d = result.delta
        metrics.update({"eval/delta": d.value, "eval/delta_ci_low": d.ci_low, "eval/delta_ci_high": d.ci_high})
        if result.forgetting.get("relative_change") is not None:
            metrics["eval/forgetting_relative_change"] = float(result.forgetting["relative_change"])
        track.log_metrics(run, {k: v for k, v in metrics.items() if v == v})  # NaN is not a metric
        track.log_artifact(run, out / "eval.json")
        return run.run_id
