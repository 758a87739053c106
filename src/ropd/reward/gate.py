"""The quality gate: stop training when too many recent groups could not be scored.

A judge outage or a broken prompt template turns rewards into noise (or NaN); training on that
wastes compute and can damage the student, so the run stops with a clear message instead.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field

from ropd.errors import RunStopped


class GateConfig(BaseModel):
    """Stop instead of training on noise when too many recent groups failed to score."""

    model_config = ConfigDict(extra="forbid")

    window: int = Field(default=32, ge=1, description="most recent groups considered")
    threshold: float = Field(default=0.4, ge=0.0, le=1.0, description="failed share that stops")
    min_groups: int = Field(default=8, ge=1, description="groups seen before the gate can trip")


class QualityGateTripped(RunStopped):
    """Raised (or reported) when the failed-group share passes the threshold."""


class QualityGate:
    """Failed-group share over the last `window` groups, checked after each batch."""

    def __init__(self, window: int = 32, threshold: float = 0.4, min_groups: int = 8):
        self.window = window
        self.threshold = threshold
        self.min_groups = min(min_groups, window)
        self._recent: deque[bool] = deque(maxlen=window)
        self.message: str | None = None

    @classmethod
    def from_config(cls, config: GateConfig) -> QualityGate:
        return cls(config.window, config.threshold, config.min_groups)

    @property
    def failed_share(self) -> float:
        return sum(self._recent) / len(self._recent) if self._recent else 0.0

    @property
    def tripped(self) -> bool:
        return self.message is not None

    def update(self, failed: Iterable[bool], step: int | None = None) -> float:
        """Add the outcome of each group of a batch; returns the share over the window."""
        self._recent.extend(bool(f) for f in failed)
        share = self.failed_share
        if len(self._recent) >= self.min_groups and share > self.threshold and not self.tripped:
            where = f" at step {step}" if step is not None else ""
            self.message = (
                f"quality gate{where}: {share:.0%} of the last {len(self._recent)} groups could "
                f"not be scored (threshold {self.threshold:.0%}); stopping instead of training on "
                "noise. Check the judge endpoint and the trace store errors "
                "(`ropd inspect --failed`), then resume the run (`ropd train --resume`, or "
                "verl from its last checkpoint)."
            )
        return share
