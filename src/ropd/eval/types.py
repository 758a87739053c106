"""Plain data shared by the evaluation modules: items, generation settings, errors."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ropd.errors import InputError, JudgeError

Family = Literal["math", "mcq", "ifeval", "rubric"]
FAMILIES: tuple[str, ...] = ("math", "mcq", "ifeval", "rubric")


class EvalError(InputError):
    """A problem the user can fix (bad task spec, malformed file, missing extra, no hub)."""


class IncomparableRunsError(EvalError):
    """`ropd eval compare` rows made under different settings: their numbers would mislead."""


class SamplesFailedError(JudgeError):
    """Samples that could not be generated or graded: the numbers are incomplete (exit 1).

    Raised after the summary is written, so what did finish is kept; re-running retries only
    the failed samples.
    """


@dataclass(frozen=True)
class EvalItem:
    """One benchmark question, ready to prompt and to score.

    `target` holds what the family's scorer needs (the answer, the correct letter, the IFEval
    instruction list, the rubric items); `location` says where the item came from.
    """

    task: str
    item_id: str
    messages: list[dict[str, Any]]
    target: dict[str, Any]
    location: str = ""


class GenerationSettings(BaseModel):
    """Everything that changes what the model writes; part of every sample's resume key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n: int = Field(default=16, ge=1)
    temperature: float = Field(default=1.0, ge=0.0)
    top_p: float = Field(default=0.95, gt=0.0, le=1.0)
    max_new_tokens: int = Field(default=8192, ge=1)
    system_prompt: str | None = None
    seed: int = 0

    def key(self, model_fingerprint: str) -> str:
        """A short hash of these settings and the model: samples made otherwise are not reused."""
        payload = self.model_dump(exclude={"n"})
        payload["model"] = model_fingerprint
        blob = json.dumps(payload, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def record(self) -> dict[str, Any]:
        """These settings under the command line's names, as `summary.json` records them."""
        system = self.system_prompt
        return {
            "num_samples": self.n,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_new_tokens,
            "seed": self.seed,
            "system_prompt": system,
            "system_prompt_sha256": (
                None if system is None else hashlib.sha256(system.encode()).hexdigest()[:16]
            ),
        }


@dataclass
class SampleScore:
    """The score of one completion (in [0, 1]) plus family-specific details for inspection."""

    score: float | None
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
