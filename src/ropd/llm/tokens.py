"""Token counts and context windows: what fits in one judge prompt.

Counting uses the role's tokenizer when it names one (`RoleConfig.tokenizer`, loaded lazily with
transformers' `AutoTokenizer`, an optional extra), else a tokenizer-free estimate of 3
characters a token. The estimate is conservative on purpose: current BPE tokenizers (Llama 3,
Qwen, GPT-4o) average about 4 characters a token on prose and 3 to 3.5 on code, math and
numbers, so counting 3 over-states most prompts and leaves them room. It under-states text
that tokenizes densely (Chinese, Japanese, long digit runs); a context-length error then
corrects it (`ContextWindows.learn`) and the caller sends less.

A role's window, best known first: learned from the endpoint's own context-length error (its
message names the window), declared on the role (`RoleConfig.context_window`), or listed by
the endpoint (`max_model_len` in vLLM's `/v1/models`, recorded by `ropd.llm.probe`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ropd.errors import ConfigError, ContextOverflow
from ropd.llm.config import RoleConfig
from ropd.llm.limits import estimate_prompt_tokens

WindowSource = Literal["context_error", "declared", "max_model_len"]

ESTIMATE_CHARS_PER_TOKEN = 3
_LIMITS_CHARS_PER_TOKEN = 4  # the rate `estimate_prompt_tokens` counts with (rate limiting)
MESSAGE_TOKENS = 8  # chat-template tokens around one message (role header, separators)
# A re-ask (`judge_call.ask_json`) adds the bad reply, cut at 4,000 characters, and the reason.
REASK_TOKENS = 1500
MAX_SCALE = 16.0


def estimate_tokens(messages: Sequence[dict[str, Any]]) -> int:
    """`estimate_prompt_tokens` at 3 characters a token instead of 4 (an upper bound, mostly)."""
    scaled = estimate_prompt_tokens(messages) * _LIMITS_CHARS_PER_TOKEN
    return -(-scaled // ESTIMATE_CHARS_PER_TOKEN)


@functools.lru_cache(maxsize=8)
def _load_tokenizer(name: str) -> Any:
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise ConfigError(
            f"tokenizer {name!r}: counting with a tokenizer needs transformers "
            "(pip install transformers, or ropd[train]); or leave `tokenizer` unset to use the "
            "estimate"
        ) from None
    try:
        return AutoTokenizer.from_pretrained(name)
    except Exception as error:  # noqa: BLE001 - not found, no network, unreadable files
        cause = " ".join(str(error).split())[:200]
        raise ConfigError(f"tokenizer {name!r} cannot be loaded: {cause}") from None


@functools.lru_cache(maxsize=4096)
def _tokenizer_count(name: str, text: str) -> int:
    """Cached: the same answer is counted for the Rubricator and the Verifier."""
    return len(_load_tokenizer(name).encode(text, add_special_tokens=False))


@dataclass(frozen=True)
class TokenCounter:
    """Counts prompt tokens with a tokenizer (`tokenizer` set) or the estimate."""

    tokenizer: str | None = None

    @property
    def method(self) -> str:
        return "tokenizer" if self.tokenizer else "estimate"

    def text(self, text: str) -> int:
        if self.tokenizer:
            return _tokenizer_count(self.tokenizer, text) + 1
        return estimate_tokens([{"content": text}])

    def messages(self, messages: Sequence[dict[str, Any]]) -> int:
        if not self.tokenizer:
            return estimate_tokens(messages)
        total = 0
        for message in messages:
            content = message.get("content", "")
            if isinstance(content, list):  # multi-part content: count the text parts
                content = "\n".join(
                    str(part.get("text", "")) for part in content if isinstance(part, dict)
                )
            total += self.text(str(content)) + MESSAGE_TOKENS
        return total


def counter_for(role: RoleConfig) -> TokenCounter:
    """The role's counter; a configured tokenizer is loaded now (ConfigError if it cannot be)."""
    counter = TokenCounter(role.tokenizer)
    if role.tokenizer:
        _load_tokenizer(role.tokenizer)
    return counter


def margin(window: int) -> int:
    """Tokens kept free besides the reply: a re-ask's extra text (a tenth of a small window at
    most: a re-ask that does not fit is a context-length error, answered by sending less) and 2%
    for chat templates and counting slack."""
    return min(REASK_TOKENS, window // 10) + window // 50


# -- windows listed by endpoints (recorded by the probe) -----------------------------------------

_LISTED: dict[tuple[str, str], int] = {}


def _endpoint(base_url: str) -> str:
    return base_url.rstrip("/")


def record_listed_windows(base_url: str, windows: Mapping[str, int]) -> None:
    """What an endpoint's `/models` listing says now (replaces what it said before)."""
    url = _endpoint(base_url)
    for key in [key for key in _LISTED if key[0] == url]:
        del _LISTED[key]
    _LISTED.update({(url, model): window for model, window in windows.items()})


def listed_window(base_url: str | None, model: str) -> int | None:
    """`max_model_len` of `model` at `base_url`, as last listed (None: not listed or no probe)."""
    if not base_url:
        return None
    url = _endpoint(base_url)
    return _LISTED.get((url, model)) or _LISTED.get((url, f"{model}:latest"))


# -- context-length errors ------------------------------------------------------------------------

_OVERFLOW_CODES = {"context_length_exceeded", "exceed_context_size_error"}
_OVERFLOW_TEXT = re.compile(
    r"context length|context window|context size|maximum context|prompt is too long", re.IGNORECASE
)
_WINDOW_TEXT = re.compile(
    r"maximum context length is (\d+)|context length \((\d+)(?: tokens)?\)"
    r"|context (?:window|size|length) (?:of|is) (\d+)",
    re.IGNORECASE,
)
_PROMPT_TEXT = re.compile(
    r"(\d+) in the messages|(\d+) input tokens|messages resulted in (\d+) tokens"
    r"|input \((\d+) tokens\)|prompt contains at least (\d+)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class OverflowFigures:
    """What a context-length error says: the window and the prompt's size, when it says them."""

    window: int | None
    prompt_tokens: int | None


def _first_number(pattern: re.Pattern[str], text: str) -> int | None:
    match = pattern.search(text)
    if match is None:
        return None
    return int(next(group for group in match.groups() if group is not None))


def read_overflow(status: int | None, message: str, code: object = None) -> OverflowFigures | None:
    """The figures of a "prompt too long for the model" refusal; None for any other error.

    vLLM: HTTP 400 "This model's maximum context length is 32768 tokens. However, you requested
    40123 tokens (39000 in the messages, 1123 in the completion). ..."; OpenAI: HTTP 400 with
    code `context_length_exceeded`; llama.cpp: type `exceed_context_size_error`.
    """
    if status not in (400, 413):
        return None
    if str(code) not in _OVERFLOW_CODES and not _OVERFLOW_TEXT.search(message):
        return None
    return OverflowFigures(
        _first_number(_WINDOW_TEXT, message), _first_number(_PROMPT_TEXT, message)
    )


# -- what a scorer knows about its roles' windows -------------------------------------------------


@dataclass(frozen=True)
class Window:
    """A role's window now: tokens, where the figure comes from, how prompts are counted."""

    tokens: int | None
    source: WindowSource | None
    counting: str


class ContextWindows:
    """The windows a scorer knows per endpoint and model, shared by its roles and groups.

    A context-length error teaches the window (when its message names it) and, when it also
    gives the prompt's real size, how much our count under-states it (`scale`): later prompts
    of every group are sized with both, so one error is not repeated by each group.
    """

    def __init__(self) -> None:
        self._learned: dict[tuple[str | None, str], int] = {}
        self._scale: dict[tuple[str | None, str], float] = {}

    @staticmethod
    def _key(role: RoleConfig) -> tuple[str | None, str]:
        return (_endpoint(role.base_url) if role.base_url else None, role.model)

    def window(self, role: RoleConfig) -> Window:
        counting = TokenCounter(role.tokenizer).method
        learned = self._learned.get(self._key(role))
        if learned is not None:
            return Window(learned, "context_error", counting)
        if role.context_window is not None:
            return Window(role.context_window, "declared", counting)
        listed = listed_window(role.base_url, role.model)
        if listed is not None:
            return Window(listed, "max_model_len", counting)
        return Window(None, None, counting)

    def prompt_budget(self, role: RoleConfig) -> int | None:
        """Tokens (as counted) one prompt may have: window - reply budget - margin; None if the
        window is unknown. May be 0 or less when the reply budget leaves no room."""
        window = self.window(role).tokens
        if window is None:
            return None
        room = window - role.max_tokens - margin(window)
        return int(room / self._scale.get(self._key(role), 1.0))

    def learn(self, role: RoleConfig, overflow: ContextOverflow, counted: int) -> None:
        """Take what a context-length error says; `counted` is our count of the refused prompt."""
        key = self._key(role)
        if overflow.window:
            self._learned[key] = overflow.window
        if overflow.prompt_tokens and counted > 0 and overflow.prompt_tokens > counted:
            scale = min(MAX_SCALE, overflow.prompt_tokens / counted)
            self._scale[key] = max(self._scale.get(key, 1.0), scale)
