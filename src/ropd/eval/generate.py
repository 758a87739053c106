"""Where completions come from: a local checkpoint (transformers) or an OpenAI-compatible endpoint.

Both backends take chat messages and return `n` completions per prompt under the same
`GenerationSettings`, so every row of a results table is produced by the same protocol.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ropd.errors import JudgeUnavailable
from ropd.eval.types import EvalError, GenerationSettings
from ropd.llm.config import RoleConfig
from ropd.llm.types import ChatClient, JudgeError

OnResult = Callable[["Request", "list[Generation] | Exception"], None]


@dataclass(frozen=True)
class Generation:
    text: str
    finish_reason: str | None = None
    completion_tokens: int = 0


@dataclass(frozen=True)
class Request:
    """One prompt and how many more samples it needs; `key` seeds them reproducibly."""

    key: str
    messages: list[dict[str, Any]]
    count: int


class Generator(Protocol):
    backend: str
    model: str
    fingerprint: str

    async def generate(
        self, requests: list[Request], settings: GenerationSettings, on_result: OnResult
    ) -> None:
        """Call `on_result` once per request, as soon as its completions (or its error) arrive."""
        ...

    def describe(self) -> dict[str, Any]:
        """How this backend runs the model (endpoint, dtype...), recorded in `summary.json`."""
        ...


def with_system_prompt(messages: list[dict[str, Any]], system: str | None) -> list[dict[str, Any]]:
    """Prepend the run's system prompt unless the item already brings one."""
    if not system or (messages and messages[0]["role"] in ("system", "developer")):
        return list(messages)
    return [{"role": "system", "content": system}, *messages]


def request_seed(settings: GenerationSettings, key: str) -> int:
    return (settings.seed * 1_000_003 + zlib.crc32(key.encode())) % (2**31 - 1)


class EndpointGenerator:
    """Samples from any OpenAI-compatible endpoint through the project's chat client.

    Concurrency, rate limits and retries are the client's; every request is sent at once and
    the client's `max_in_flight` bounds how many are open.
    """

    backend = "openai-compatible"

    def __init__(self, client: ChatClient, role: RoleConfig) -> None:
        self.client = client
        self.role = role
        self.model = role.model
        # The endpoint URL is left out on purpose: the same model behind another gateway is the
        # same model, and its samples stay reusable.
        self.fingerprint = f"endpoint:{role.model}"

    def describe(self) -> dict[str, Any]:
        """The endpoint's host and port only: credentials and paths never reach a summary."""
        from ropd.llm.client import endpoint_host

        return {"endpoint": endpoint_host(self.role.base_url)}

    async def generate(
        self, requests: list[Request], settings: GenerationSettings, on_result: OnResult
    ) -> None:
        role = self.role.model_copy(
            update={
                "temperature": settings.temperature,
                "top_p": settings.top_p,
                "max_tokens": settings.max_new_tokens,
            }
        )

        async def one(request: Request) -> None:
            messages = with_system_prompt(request.messages, settings.system_prompt)
            try:
                completions = await self.client.chat(
                    role, messages, n=request.count, seed=request_seed(settings, request.key)
                )
            except JudgeUnavailable:
                raise  # key rejected or model not served: stop instead of failing every sample
            except JudgeError as exc:
                on_result(request, exc)
                return
            on_result(
                request,
                [Generation(c.text, c.finish_reason, c.completion_tokens) for c in completions],
            )

        await asyncio.gather(*(one(r) for r in requests))


def checkpoint_fingerprint(path: Path) -> str:
    """A cheap but content-based id of a checkpoint folder: config plus weight-file edges.

    Reading whole multi-GB weight files would be slow; names, sizes and the first and last MiB
    of every weight file change whenever the weights do.
    """
    digest = hashlib.sha256()
    for name in ("config.json", "generation_config.json"):
        file = path / name
        if file.is_file():
            digest.update(file.read_bytes())
    weights = sorted(
        p
        for p in path.iterdir()
        if p.suffix in (".safetensors", ".bin", ".gguf", ".pt") and p.is_file()
    )
    for file in weights:
        size = file.stat().st_size
        digest.update(f"{file.name}:{size}".encode())
        with file.open("rb") as handle:
            digest.update(handle.read(1 << 20))
            handle.seek(max(0, size - (1 << 20)))
            digest.update(handle.read(1 << 20))
    return f"sha256:{digest.hexdigest()[:20]}"


class TransformersGenerator:
    """Samples from a local checkpoint or Hugging Face model id with `transformers.generate`.

    Prompts are rendered with the tokenizer's chat template, left-padded and generated in
    batches of `batch_size` prompts with `num_return_sequences` samples each.
    """

    backend = "transformers"

    def __init__(
        self,
        model: str,
        *,
        dtype: str = "auto",
        device: str = "auto",
        batch_size: int = 8,
        gguf_file: str | None = None,
    ) -> None:
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as exc:
            raise EvalError(
                "generating with a local model needs torch and transformers: "
                "pip install 'ropd[train]'"
            ) from exc
        self.torch = torch
        self.model = model
        self.batch_size = max(1, batch_size)
        extra = {"gguf_file": gguf_file} if gguf_file else {}
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model, padding_side="left", **extra)
            torch_dtype = dtype if dtype == "auto" else getattr(torch, dtype)
            self.lm = AutoModelForCausalLM.from_pretrained(model, dtype=torch_dtype, **extra)
        except (OSError, ValueError) as exc:
            raise EvalError(f"could not load model {model!r}: {exc}") from None
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.lm.to(device)
        self.lm.eval()
        self.device = device
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.has_chat_template = bool(getattr(self.tokenizer, "chat_template", None))
        path = Path(model)
        if path.is_dir():
            self.fingerprint = checkpoint_fingerprint(path)
        else:
            commit = getattr(self.lm.config, "_commit_hash", None)
            self.fingerprint = f"hf:{model}@{commit}" if commit else f"hf:{model}"
        self.fingerprint += f"|{gguf_file}" if gguf_file else ""

    def describe(self) -> dict[str, Any]:
        """The dtype the weights were loaded in and the device: both change the numbers."""
        return {
            "dtype": str(getattr(self.lm, "dtype", "unknown")).removeprefix("torch."),
            "device": str(self.device),
        }

    def render(self, messages: list[dict[str, Any]]) -> str:
        """The prompt text: the chat template, or plain turns for models that have none."""
        if self.has_chat_template:
            return self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
        return "\n\n".join(str(m["content"]) for m in messages) + "\n\n"

    async def generate(
        self, requests: list[Request], settings: GenerationSettings, on_result: OnResult
    ) -> None:
        by_count: dict[int, list[int]] = {}
        for index, request in enumerate(requests):
            by_count.setdefault(request.count, []).append(index)
        for count, indices in sorted(by_count.items()):
            for start in range(0, len(indices), self.batch_size):
                batch = indices[start : start + self.batch_size]
                outputs = await asyncio.to_thread(
                    self._generate_batch, [requests[i] for i in batch], count, settings
                )
                for i, generations in zip(batch, outputs, strict=True):
                    on_result(requests[i], generations)

    def _generate_batch(
        self, requests: list[Request], count: int, settings: GenerationSettings
    ) -> list[list[Generation]]:
        torch = self.torch
        texts = [
            self.render(with_system_prompt(r.messages, settings.system_prompt)) for r in requests
        ]
        encoded = self.tokenizer(
            texts, return_tensors="pt", padding=True, add_special_tokens=not self.has_chat_template
        ).to(self.device)
        sampling = settings.temperature > 0
        kwargs: dict[str, Any] = {
            "max_new_tokens": settings.max_new_tokens,
            "num_return_sequences": count,
            "do_sample": sampling,
            "pad_token_id": self.tokenizer.pad_token_id,
        }
        if sampling:
            kwargs.update(temperature=settings.temperature, top_p=settings.top_p, top_k=0)
        torch.manual_seed(request_seed(settings, json.dumps([r.key for r in requests])))
        with torch.inference_mode():
            output = self.lm.generate(**encoded, **kwargs)
        new_tokens = output[:, encoded["input_ids"].shape[1] :]
        eos = self.lm.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos]) - {None}
        eos_ids.add(self.tokenizer.eos_token_id)
        results: list[list[Generation]] = []
        for row in range(len(requests)):
            samples = []
            for k in range(count):
                ids = new_tokens[row * count + k].tolist()
                finished = any(t in eos_ids for t in ids)
                length = len([t for t in ids if t != self.tokenizer.pad_token_id]) or len(ids)
                text = self.tokenizer.decode(ids, skip_special_tokens=True)
                samples.append(Generation(text, "stop" if finished else "length", length))
            results.append(samples)
        return results
