"""Former location of the trace store; it lives in `ropd.reward.traces` (and is `ropd.TraceStore`).

Kept so that code written against ropd 0.1 keeps importing.
"""

from ropd.redact import REDACTED
from ropd.reward.traces import (
    TracedGroup,
    TraceStore,
    TraceStoreError,
    new_run_id,
    redact,
    scrub_settings,
)

__all__ = [
    "REDACTED",
    "TraceStore",
    "TraceStoreError",
    "TracedGroup",
    "new_run_id",
    "redact",
    "scrub_settings",
]
