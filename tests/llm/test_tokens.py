"""Token counting, context windows and context-length errors (`ropd.llm.tokens`), and how the
client and the probe feed them: the stub's vLLM error becomes `ContextOverflow` (not retried,
not a transport failure), the probe records `max_model_len`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from ropd.errors import ConfigError, ContextOverflow, JudgeError
from ropd.llm.client import OpenAIChatClient
from ropd.llm.config import LimitsConfig, RoleConfig
from ropd.llm.limits import estimate_prompt_tokens
from ropd.llm.probe import probe_endpoints
from ropd.llm.tokens import (
    ContextWindows,
    TokenCounter,
    counter_for,
    estimate_tokens,
    listed_window,
    margin,
    read_overflow,
    record_listed_windows,
)
from ropd.testing import StubJudgeServer
from ropd.testing.stub_server import STUB_MODEL, context_error

VLLM = (
    "This model's maximum context length is 32768 tokens. However, you requested 40123 tokens "
    "(39000 in the messages, 1123 in the completion). Please reduce the length of the messages "
    "or completion."
)


def role(**extra: object) -> RoleConfig:
    return RoleConfig(name="verifier", base_url="http://127.0.0.1:9/v1", model="m", **extra)  # type: ignore[arg-type]


# -- counting -------------------------------------------------------------------------------------


def test_the_estimate_is_limits_estimate_at_three_characters_a_token():
    messages = [{"role": "user", "content": "x" * 3000}]
    assert estimate_tokens(messages) >= 1000  # at least chars / 3
    assert estimate_tokens(messages) == -(-estimate_prompt_tokens(messages) * 4 // 3)
    # over-states what a 4-characters-a-token count (the stub's, typical prose) finds
    assert estimate_tokens(messages) > 3000 // 4
    counter = TokenCounter()
    assert counter.method == "estimate"
    assert counter.text("y" * 300) >= 100
    assert counter.messages(messages * 2) > 2 * 1000


def _word_tokenizer(folder: Path) -> Path:
    """A tiny word-level tokenizer written to disk (no network): one token per word."""
    tokenizers = pytest.importorskip("tokenizers")
    pytest.importorskip("transformers")
    vocab = {"[UNK]": 0, "alpha": 1, "beta": 2}
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    folder.mkdir()
    tok.save(str(folder / "tokenizer.json"))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "unk_token": "[UNK]"}
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return folder


def test_a_configured_tokenizer_counts_real_tokens(tmp_path):
    folder = _word_tokenizer(tmp_path / "tok")
    counter = counter_for(role(tokenizer=str(folder)))
    assert counter.method == "tokenizer"
    # 1,000 words of 11 characters: the estimate says ~3,700, the tokenizer 1,000 (+1)
    text = " ".join(["alphabetaXY"] * 1000)
    assert counter.text(text) == 1001
    assert TokenCounter().text(text) > 3 * counter.text(text)
    messages = [{"role": "system", "content": "alpha"}, {"role": "user", "content": "beta beta"}]
    assert counter.messages(messages) == 2 + 3 + 2 * 8  # words + 1 each, template allowance


def test_an_unloadable_tokenizer_is_a_config_error(tmp_path):
    pytest.importorskip("transformers")
    with pytest.raises(ConfigError, match="cannot be loaded"):
        counter_for(role(tokenizer=str(tmp_path / "no-such-tokenizer")))


def test_a_tokenizer_without_transformers_is_a_config_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "transformers", None)  # as if not installed
    with pytest.raises(ConfigError, match="needs transformers"):
        counter_for(role(tokenizer=str(tmp_path / "never-loaded-before")))


# -- context-length errors --------------------------------------------------------------------------


def test_vllm_openai_and_llama_cpp_overflows_are_read():
    vllm = read_overflow(400, VLLM, 400)
    assert vllm is not None and (vllm.window, vllm.prompt_tokens) == (32768, 39000)
    openai_text = (
        "This model's maximum context length is 128000 tokens. However, your messages resulted "
        "in 130517 tokens. Please reduce the length of the messages."
    )
    figures = read_overflow(400, openai_text, "context_length_exceeded")
    assert (figures.window, figures.prompt_tokens) == (128000, 130517)
    llama = read_overflow(400, "the request exceeds the available context size", None)
    assert llama is not None and llama.window is None
    assert read_overflow(400, "bad", "exceed_context_size_error") is not None
    # other refusals are not overflows
    assert read_overflow(400, "response_format json_schema is not supported", None) is None
    assert read_overflow(500, VLLM, None) is None
    assert read_overflow(None, VLLM, None) is None


def test_windows_declared_listed_and_learned():
    windows = ContextWindows()
    plain = role()
    assert windows.window(plain).tokens is None and windows.prompt_budget(plain) is None
    record_listed_windows("http://127.0.0.1:9/v1/", {"m": 16384})
    assert listed_window(plain.base_url, "m") == 16384
    assert windows.window(plain).source == "max_model_len"
    declared = role(context_window=8192, max_tokens=1000)
    assert (windows.window(declared).tokens, windows.window(declared).source) == (8192, "declared")
    assert windows.prompt_budget(declared) == 8192 - 1000 - margin(8192)
    # the endpoint's own figure beats both; an under-counted prompt scales later budgets down
    windows.learn(declared, ContextOverflow("x", window=4096, prompt_tokens=3000), counted=1500)
    assert (windows.window(declared).tokens, windows.window(declared).source) == (
        4096,
        "context_error",
    )
    assert windows.prompt_budget(declared) == int((4096 - 1000 - margin(4096)) / 2.0)
    record_listed_windows("http://127.0.0.1:9/v1", {})  # a new listing replaces the old one
    assert listed_window(plain.base_url, "m") is None


# -- the client and the probe against the HTTP stub ------------------------------------------------


async def test_the_client_raises_context_overflow_once_without_retrying():
    with StubJudgeServer(0.0, context_window=1000) as stub:
        judge = RoleConfig(
            name="verifier", base_url=stub.base_url, model=STUB_MODEL, max_tokens=200
        )
        async with OpenAIChatClient(LimitsConfig(max_retries=4, backoff_base_s=0)) as client:
            with pytest.raises(ContextOverflow) as info:
                await client.chat(judge, [{"role": "user", "content": "z" * 4000}])
            assert isinstance(info.value, JudgeError)
            assert info.value.window == 1000 and info.value.prompt_tokens == 1000
            assert "maximum context length is 1000 tokens" in str(info.value)
            assert stub.requests == 1 and stub.context_errors == 1  # not sent again
            assert client.retries == {}
            assert client.usage.roles.get("verifier") is None  # not a transport failure
            # a prompt that fits (with its max_tokens) is answered
            done = await client.chat(judge, [{"role": "user", "content": "z" * 400}])
            assert done[0].text


def test_the_stub_sends_vllms_exact_error_body():
    body = context_error(32768, 39000, 1123)
    assert body == {
        "object": "error",
        "message": VLLM,
        "type": "BadRequestError",
        "param": None,
        "code": 400,
    }


async def test_the_probe_records_max_model_len_and_forgets_it():
    with StubJudgeServer(0.0, context_window=12345) as stub:
        await probe_endpoints([RoleConfig(base_url=stub.base_url, model=STUB_MODEL)])
        assert listed_window(stub.base_url, STUB_MODEL) == 12345
        stub.list_context_window = False  # a server that does not list it (or a new one)
        await probe_endpoints([RoleConfig(base_url=stub.base_url, model=STUB_MODEL)])
        assert listed_window(stub.base_url, STUB_MODEL) is None
