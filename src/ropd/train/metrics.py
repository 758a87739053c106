"""Moved to `ropd.reward.metrics` (engine-agnostic, shared with `ropd inspect --stats`)."""

from ropd.reward.metrics import PREFIX, StepMetrics, batch_metrics, step_metrics

__all__ = ["PREFIX", "StepMetrics", "batch_metrics", "step_metrics"]
