"""One rooted error tree for everything ropd raises on purpose.

Each category also subclasses the standard error it stands for, so code written against the
standard library (`except ValueError`) keeps working. The command line maps a category to an exit
code in one place (`ropd.cli.errors`); nothing else decides exit codes.

    RopdError
    ├── InputError (ValueError)      bad input, options or config: fix it and run again (exit 2)
    │   └── ConfigError              a config file or field
    ├── JudgeError (RuntimeError)    an endpoint or judge that failed for good (exit 1)
    │   ├── JudgeUnavailable         cannot be started or reached at all (exit 2)
    │   └── ContextOverflow          a prompt longer than the model's context window
    ├── StoreError (RuntimeError)    a teacher, trace or results store that cannot be used (exit 2)
    └── RunStopped (RuntimeError)    a run stopped on purpose, its work kept (quality gate: exit 3)
        └── Interrupted              stopped by the user (Ctrl-C), saying what is kept (exit 130)
"""

from __future__ import annotations


class RopdError(Exception):
    """Base of every error ropd raises on purpose; its message is safe to print (no secrets)."""

    exit_code: int = 1


class InputError(RopdError, ValueError):
    """Bad input, options or configuration, found before work is spent where possible."""

    exit_code = 2


class ConfigError(InputError):
    """A config problem, with where it is (file:line) and which field."""


class JudgeError(RopdError, RuntimeError):
    """A judge or teacher request that failed for good (after retries), secret-free."""

    exit_code = 1


class JudgeUnavailable(JudgeError):
    """The endpoint cannot serve at all (not reachable, cannot start, key refused, no model)."""

    exit_code = 2


class ContextOverflow(JudgeError):
    """The endpoint refused a prompt longer than the model's context window (HTTP 400).

    Sending the same prompt again cannot help: the caller sends less (fewer answers per call,
    clipped answers). `window` and `prompt_tokens` are the endpoint's own figures when its
    message gives them, so the next split can use them.
    """

    def __init__(
        self, message: str, *, window: int | None = None, prompt_tokens: int | None = None
    ) -> None:
        super().__init__(message)
        self.window = window
        self.prompt_tokens = prompt_tokens


class StoreError(RopdError, RuntimeError):
    """A SQLite store (teacher answers, traces) or an output file that cannot be used."""

    exit_code = 2


class RunStopped(RopdError, RuntimeError):
    """A run stopped on purpose before its end (e.g. the quality gate); finished work is kept."""

    exit_code = 3


class Interrupted(RunStopped):
    """The user stopped the run (Ctrl-C); the message says what is saved and how to resume."""

    exit_code = 130


__all__ = [
    "ConfigError",
    "ContextOverflow",
    "InputError",
    "Interrupted",
    "JudgeError",
    "JudgeUnavailable",
    "RopdError",
    "RunStopped",
    "StoreError",
]
