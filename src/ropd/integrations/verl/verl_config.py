"""Reading verl's Hydra config (a DictConfig, or nested dicts in tests) without importing verl."""

from __future__ import annotations

from typing import Any


def select(config: Any, dotted: str, default: Any = None) -> Any:
    """`config.a.b.c` of a DictConfig or nested dicts, or `default` when any part is missing."""
    node = config
    for part in dotted.split("."):
        try:
            node = node.get(part) if hasattr(node, "get") else getattr(node, part)
        except (AttributeError, KeyError):
            return default
        if node is None:
            return default
    return node


def flag(value: Any) -> bool:
    """A Hydra override's boolean (`true`/`false`, also when it arrives as a string)."""
    if isinstance(value, str):
        return value.strip().lower() not in {"false", "0", "no", "off", ""}
    return bool(value)
