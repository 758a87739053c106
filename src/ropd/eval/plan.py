"""How much work a run asks for, known before any model is loaded.

The paper's protocol (16 samples of up to 8,192 tokens per item) is cheap behind a serving
engine and very slow with transformers' `generate` (no continuous batching, no paged attention):
AIME 24 + 25 alone is up to 7.9M generated tokens. `estimate_work` bounds the work from the
items and the settings, so the command line can warn, and say how to serve the checkpoint,
before hours are spent.
"""

from __future__ import annotations

from dataclasses import dataclass

from ropd.eval.tasks import TaskSpec
from ropd.eval.types import EvalItem, GenerationSettings

# Above this many generated tokens (upper bound), a local transformers run gets a warning.
LOCAL_TOKENS_WARNING = 1_000_000
SERVE_PORT = 8000


@dataclass(frozen=True)
class TaskWork:
    name: str
    family: str
    items: int
    samples: int
    max_generated_tokens: int
    grader_calls: int


@dataclass(frozen=True)
class WorkEstimate:
    """Upper bounds of one run's work: every sample generated to its full token budget."""

    tasks: list[TaskWork]
    settings: GenerationSettings

    @property
    def items(self) -> int:
        return sum(t.items for t in self.tasks)

    @property
    def samples(self) -> int:
        return sum(t.samples for t in self.tasks)

    @property
    def max_generated_tokens(self) -> int:
        return sum(t.max_generated_tokens for t in self.tasks)

    @property
    def grader_calls(self) -> int:
        return sum(t.grader_calls for t in self.tasks)


def estimate_work(
    tasks: list[tuple[TaskSpec, list[EvalItem]]], settings: GenerationSettings
) -> WorkEstimate:
    """Items × samples × max tokens per task (finished samples in the folder are not subtracted)."""
    work = []
    for spec, items in tasks:
        samples = len(items) * settings.n
        grader_calls = (
            sum(len(item.target["rubrics"]) for item in items) * settings.n
            if spec.family == "rubric"
            else 0
        )
        work.append(
            TaskWork(
                spec.name,
                spec.family,
                len(items),
                samples,
                samples * settings.max_new_tokens,
                grader_calls,
            )
        )
    return WorkEstimate(work, settings)


def human_tokens(count: int) -> str:
    """1234567 -> '1.2M': the size of a number at a glance."""
    for size, suffix in ((1_000_000_000, "B"), (1_000_000, "M"), (1_000, "k")):
        if count >= size:
            return f"{count / size:.1f}{suffix}"
    return str(count)


def local_run_warning(
    estimate: WorkEstimate, model: str, threshold: int = LOCAL_TOKENS_WARNING
) -> str | None:
    """The warning for a transformers run above `threshold` tokens, or None when it is small."""
    tokens = estimate.max_generated_tokens
    if tokens <= threshold:
        return None
    s = estimate.settings
    return (
        f"this local run may generate up to {human_tokens(tokens)} tokens "
        f"({estimate.items} items × {s.n} samples × {s.max_new_tokens} max tokens) with "
        "transformers' generate, which has no continuous batching: expect hours or days. "
        "For real sizes serve the checkpoint and evaluate the endpoint instead:\n"
        f"  vllm serve {model} --port {SERVE_PORT}\n"
        f"  ropd eval --base-url http://127.0.0.1:{SERVE_PORT}/v1 --model {model} "
        "(and your other flags)\n"
        "or lower --num-samples / --max-tokens / --limit for a quick look."
    )
