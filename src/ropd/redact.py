"""Keep API keys out of everything ropd writes: errors, reply snippets, traces, logs, reports.

Every key value the process reads through `RoleConfig.api_key()` is remembered here, whatever
its shape, and `scrub` replaces it (and anything shaped like a well-known credential) in any
text. A judge that echoes the key in its reply, or a server that puts it in an error body, can
therefore not carry it into a file or a terminal: every sink calls `scrub` (the trace store, the
score writer, the CLI's error printer) and every ropd logger is made by `logger`, which scrubs
log records.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

REDACTED = "[redacted]"
MIN_SECRET_CHARS = 4  # shorter "keys" (placeholders like "no") would blank ordinary words

# Values that look like credentials even when they were never configured here.
_KEY_SHAPED = re.compile(
    r"(?i)(sk-[A-Za-z0-9_\-]{12,}|bearer\s+[A-Za-z0-9._\-]{8,}|hf_[A-Za-z0-9]{12,})"
)
_KEY_PREFIXES = ("sk-", "bearer", "hf_")  # every alternative of _KEY_SHAPED starts with one
# Keys whose values are secrets wherever they appear in settings; `*_env` names are kept.
_SECRET_NAME = re.compile(r"(?i)^(.*_)?(api_?key|secret|password|authorization|bearer)$")
_PLACEHOLDERS = {"EMPTY", "none", "None", "sk-no-key-required"}

_lock = threading.Lock()
_known: tuple[str, ...] = ()


def remember(value: str | None) -> None:
    """Register a secret value so that `scrub` removes it from now on (idempotent)."""
    global _known
    if not value or len(value) < MIN_SECRET_CHARS or value in _PLACEHOLDERS:
        return
    with _lock:
        if value not in _known:
            # longest first, so a key that contains another is replaced whole
            _known = tuple(sorted({*_known, value}, key=len, reverse=True))


def forget_all() -> None:
    """Drop every remembered value (tests)."""
    global _known
    with _lock:
        _known = ()


def scrub(text: str) -> str:
    """`text` with every remembered secret and every key-shaped string replaced."""
    if not isinstance(text, str) or not text:
        return text
    for secret in _known:
        if secret in text:
            text = text.replace(secret, REDACTED)
    # The pattern is slow on long texts (answers of 8k tokens pass here); only a text holding
    # one of its literal prefixes can match, and finding those is cheap.
    lowered = text.lower()
    if any(prefix in lowered for prefix in _KEY_PREFIXES):
        text = _KEY_SHAPED.sub(REDACTED, text)
    return text


def scrub_value(value: Any) -> Any:
    """`scrub` applied to every string inside nested dicts and lists; secret-named keys blanked."""
    if isinstance(value, dict):
        return {
            str(k): (REDACTED if _SECRET_NAME.match(str(k)) else scrub_value(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [scrub_value(v) for v in value]
    if isinstance(value, str):
        return scrub(value)
    return value


class ScrubFilter(logging.Filter):
    """Rewrites a log record's message with secrets removed (attached to ropd's handlers)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True
        cleaned = scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def logger(name: str) -> logging.Logger:
    """`logging.getLogger(name)` with secrets scrubbed from its records (every ropd module's logger).

    A filter on a logger sees only the records made through that logger, so each ropd logger
    gets its own; the records then reach whatever handlers the application configured already
    clean.
    """
    target = logging.getLogger(name)
    if not any(isinstance(f, ScrubFilter) for f in target.filters):
        target.addFilter(ScrubFilter())
    return target
