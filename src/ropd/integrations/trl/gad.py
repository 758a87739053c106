"""GAD: generative adversarial distillation (Ye et al., arXiv 2511.10643).

A discriminator (a sequence-scoring copy of a student-sized model: a scalar head on the last
token) learns by a Bradley-Terry loss that the teacher's answer to a prompt outranks the
student's; the student is trained by GRPO on the discriminator's score of its own rollout.
The arithmetic is in pure functions (`bradley_terry_loss`, `pair_accuracy`); `Discriminator`
holds the model, its optimizer and its save/load; `GadReward` is the TRL reward function that
scores a step's completions and then takes the discriminator's one step on them.

Why the discriminator step lives in the reward call: TRL calls each reward function exactly once
per generation batch, on every process, with the prompts and completions the policy is about to
be updated on, so no other hook is needed to see the same data. With TRL's defaults
(`steps_per_generation` = `gradient_accumulation_steps`, `num_iterations` = 1) that is once per
optimizer step. With several processes, each process's slice is gathered (accelerate's
`gather_object`), so every process updates its own replica on the whole batch in the same
order, in eval mode (no dropout): the replicas stay identical without a broadcast. The reward
is a plain (synchronous) callable, so TRL calls it on the training thread, whose CUDA device
accelerate has set per rank: the gather may use the training backend (unlike `RopdReward`, which
TRL runs on a background event-loop thread and which therefore gathers over gloo).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from transformers import TrainerCallback

from ropd.integrations.trl.reward import completion_text
from ropd.reward.batch import prompt_text_key

STATE_FILE = "gad_state.json"
OPTIMIZER_FILE = "optimizer.pt"
DISCRIMINATOR_DIR = "discriminator"  # beside a checkpoint's (and the final) student weights

Messages = list[dict[str, Any]]


# -- the method's arithmetic ----------------------------------------------------------------------


def bradley_terry_loss(teacher_scores: torch.Tensor, student_scores: torch.Tensor) -> torch.Tensor:
    """Mean over every (teacher, student) pair of one prompt of −log σ(s_teacher − s_student).

    Shapes (K,) and (G,): the K×G pairs all count once. Its minimum pushes each teacher
    answer's score above each student answer's; the gradient shrinks as the margin grows.
    """
    margins = teacher_scores.reshape(-1, 1) - student_scores.reshape(1, -1)
    return -F.logsigmoid(margins).mean()


def batch_bradley_terry_loss(
    groups: Sequence[tuple[torch.Tensor, torch.Tensor]],
) -> torch.Tensor:
    """The Bradley-Terry loss over a batch of prompts: the mean over all their pairs (a prompt
    with more answers weighs more, as in one flat average over the step's pairs)."""
    total = sum(t.numel() * s.numel() for t, s in groups)
    if total == 0:
        raise ValueError("no (teacher, student) pair to rank")
    return sum(  # type: ignore[return-value]
        bradley_terry_loss(t, s) * (t.numel() * s.numel() / total) for t, s in groups
    )


def pair_accuracy(teacher_scores: torch.Tensor, student_scores: torch.Tensor) -> float:
    """The fraction of (teacher, student) pairs the discriminator already orders right."""
    margins = teacher_scores.reshape(-1, 1) - student_scores.reshape(1, -1)
    return float((margins > 0).float().mean())


# -- the discriminator ----------------------------------------------------------------------------


class Discriminator:
    """A sequence-scoring model (`AutoModelForSequenceClassification`, one label) with its own
    optimizer: `score` rates texts, `step` takes one Bradley-Terry update, `save`/`load` keep
    both (LoRA adapters and head, or the whole model) so a resumed run continues the game."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        learning_rate: float,
        max_grad_norm: float | None = 0.2,
        max_length: int = 4096,
        batch_size: int = 8,
        base_model: str | None = None,
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.learning_rate = learning_rate
        self.max_grad_norm = max_grad_norm
        self.max_length = max_length
        self.batch_size = batch_size
        self.base_model = base_model
        self.updates = 0
        tokenizer.truncation_side = "left"  # the scored last token is the answer's end: keep it
        self.model.eval()  # no dropout: every process makes the same update on the same data
        params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=learning_rate, weight_decay=0.0)

    @classmethod
    def build(
        cls,
        model_name: str,
        *,
        lora: dict[str, Any] | None,
        learning_rate: float,
        dtype: torch.dtype = torch.float32,
        device: Any = None,
        **options: Any,
    ) -> Discriminator:
        """A fresh discriminator from `model_name` (a student-sized causal LM): its body with a
        new scalar head; with `lora`, only LoRA adapters and the head train."""
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model_name)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        model = AutoModelForSequenceClassification.from_pretrained(
            model_name, num_labels=1, dtype=dtype
        )
        model.config.pad_token_id = tokenizer.pad_token_id
        if lora is not None:
            from peft import LoraConfig, get_peft_model

            model = get_peft_model(model, LoraConfig(task_type="SEQ_CLS", **lora))
        if device is not None:
            model.to(device)
        return cls(model, tokenizer, learning_rate=learning_rate, base_model=model_name, **options)

    @classmethod
    def load(
        cls,
        folder: str | Path,
        *,
        learning_rate: float | None = None,
        dtype: torch.dtype = torch.float32,
        device: Any = None,
        **options: Any,
    ) -> Discriminator:
        """A discriminator saved by `save` (optimizer state included when it was saved)."""
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        folder = Path(folder)
        state = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
        if (folder / "adapter_config.json").is_file():
            from peft import PeftModel

            base = AutoModelForSequenceClassification.from_pretrained(
                state["base_model"], num_labels=1, dtype=dtype
            )
            base.config.pad_token_id = tokenizer.pad_token_id
            model = PeftModel.from_pretrained(base, str(folder), is_trainable=True)
        else:
            model = AutoModelForSequenceClassification.from_pretrained(str(folder), dtype=dtype)
            model.config.pad_token_id = tokenizer.pad_token_id
        if device is not None:
            model.to(device)
        lr = state["learning_rate"] if learning_rate is None else learning_rate
        found = cls(model, tokenizer, learning_rate=lr, base_model=state["base_model"], **options)
        found.updates = int(state.get("updates", 0))
        optimizer = folder / OPTIMIZER_FILE
        if optimizer.is_file():
            found.optimizer.load_state_dict(torch.load(optimizer, map_location="cpu"))
        return found

    def save(self, folder: str | Path) -> Path:
        """Weights (adapters and head with LoRA), tokenizer, optimizer and update count."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(str(folder))
        self.tokenizer.save_pretrained(str(folder))
        torch.save(self.optimizer.state_dict(), folder / OPTIMIZER_FILE)
        state = {
            "base_model": self.base_model,
            "learning_rate": self.learning_rate,
            "updates": self.updates,
        }
        (folder / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
        return folder

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def text(self, prompt: Messages | str, answer: str) -> str:
        """The prompt and one answer as the discriminator reads them (the chat template when the
        prompt is a conversation, else the two strings joined)."""
        if isinstance(prompt, str):
            return prompt + answer
        messages = [*prompt, {"role": "assistant", "content": answer}]
        if getattr(self.tokenizer, "chat_template", None):
            return str(self.tokenizer.apply_chat_template(messages, tokenize=False))
        return "\n".join(str(m.get("content", "")) for m in messages)

    def _forward(self, texts: Sequence[str]) -> torch.Tensor:
        batch = self.tokenizer(
            list(texts),
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=self.max_length,
            add_special_tokens=False,
        ).to(self.device)
        return self.model(**batch).logits[:, 0].float()

    def score(self, texts: Sequence[str]) -> torch.Tensor:
        """One scalar per text, without gradient (the student's reward)."""
        out = []
        with torch.no_grad():
            for start in range(0, len(texts), self.batch_size):
                out.append(self._forward(texts[start : start + self.batch_size]).cpu())
        return torch.cat(out) if out else torch.zeros(0)

    def step(self, groups: Sequence[tuple[Sequence[str], Sequence[str]]]) -> dict[str, float]:
        """One Bradley-Terry update on (teacher texts, student texts) per prompt.

        Each prompt's answers go through the model together and its share of the batch loss is
        back-propagated at once (memory: one prompt's answers); one optimizer step follows.
        """
        groups = [(t, s) for t, s in groups if t and s]
        if not groups:
            return {}
        total = sum(len(t) * len(s) for t, s in groups)
        loss_sum = 0.0
        correct = 0.0
        teacher_mean = student_mean = 0.0
        self.optimizer.zero_grad(set_to_none=True)
        with torch.enable_grad():
            for teachers, students in groups:
                scores = self._forward([*teachers, *students])
                t, s = scores[: len(teachers)], scores[len(teachers) :]
                pairs = len(teachers) * len(students)
                loss = bradley_terry_loss(t, s) * (pairs / total)
                loss.backward()
                loss_sum += float(loss.detach())
                correct += pair_accuracy(t.detach(), s.detach()) * pairs
                teacher_mean += float(t.detach().mean()) * pairs
                student_mean += float(s.detach().mean()) * pairs
        params = [p for p in self.model.parameters() if p.requires_grad]
        if self.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(params, self.max_grad_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.updates += 1
        return {
            "gad/discriminator_loss": loss_sum,
            "gad/pair_accuracy": correct / total,
            "gad/teacher_score": teacher_mean / total,
            "gad/student_score": student_mean / total,
        }


# -- the TRL side -------------------------------------------------------------------------------


def gather(items: list[Any]) -> list[Any]:
    """Every process's `items`, in rank order, on every process (the list itself alone)."""
    from accelerate import PartialState
    from accelerate.utils import gather_object

    if PartialState().num_processes <= 1:
        return items
    return list(gather_object(items))


def group_by_prompt(prompts: Sequence[Any], answers: Sequence[str]) -> list[tuple[Any, list[str]]]:
    """(prompt, its answers) in first-seen order: TRL repeats each prompt G times."""
    groups: dict[str, tuple[Any, list[str]]] = {}
    for prompt, answer in zip(prompts, answers, strict=True):
        key = prompt_text_key(prompt) if not isinstance(prompt, str) else prompt
        groups.setdefault(key, (prompt, []))[1].append(answer)
    return list(groups.values())


class GadReward:
    """TRL reward function: the discriminator's score of each completion, then its step.

    `references(prompt)` gives the teacher's answers to a prompt (the teacher store). During the
    first `warmup_steps` optimizer steps every reward is 0 (GRPO's advantages vanish, so the
    student does not move) while the discriminator trains on the initial student's answers:
    the discriminator's pre-training. `training()` says whether the trainer is training
    (evaluation scores without updating).
    """

    def __init__(
        self,
        discriminator: Discriminator,
        references: Callable[[Any], list[str]],
        *,
        warmup_steps: int = 0,
        training: Callable[[], bool] = lambda: True,
    ):
        self.discriminator = discriminator
        self.references = references
        self.warmup_steps = warmup_steps
        self.training = training
        self.__name__ = "gad"
        self.stop_message: str | None = None  # the runner's interface: GAD never stops a run
        self.num_generations: int | None = None

    def __call__(
        self,
        prompts: Sequence[Any],
        completions: Sequence[Any],
        trainer_state: Any = None,
        log_metric: Callable[[str, float], None] | None = None,
        **_: Any,
    ) -> list[float]:
        d = self.discriminator
        answers = [completion_text(c) for c in completions]
        scores = d.score([d.text(p, a) for p, a in zip(prompts, answers, strict=True)])
        step = int(getattr(trainer_state, "global_step", 0) or 0)
        warming = step < self.warmup_steps
        if self.training():
            metrics = self.update(prompts, answers)
            for name, value in metrics.items():
                if log_metric is not None:
                    log_metric(name, value)
        if log_metric is not None:
            log_metric("gad/reward", float(scores.mean()) if len(scores) else 0.0)
            log_metric("gad/warmup", 1.0 if warming else 0.0)
        if warming:
            return [0.0] * len(answers)
        return [float(x) for x in scores]

    def update(self, prompts: Sequence[Any], answers: Sequence[str]) -> dict[str, float]:
        """One discriminator step on the whole (gathered) batch: its prompts' teacher answers
        against the student's completions."""
        everything = gather(list(zip(prompts, answers, strict=True)))
        d = self.discriminator
        groups = []
        for prompt, students in group_by_prompt(
            [p for p, _ in everything], [a for _, a in everything]
        ):
            teachers = self.references(prompt)
            groups.append(
                ([d.text(prompt, t) for t in teachers], [d.text(prompt, s) for s in students])
            )
        return d.step(groups)

    async def aclose(self) -> None:  # the runner closes every reward the same way
        return None


class SaveDiscriminatorCallback(TrainerCallback):  # type: ignore[misc]
    """Writes the discriminator into each checkpoint folder (`checkpoint-N/discriminator/`), so
    `--resume` continues with the discriminator of the same step."""

    def __init__(self, discriminator: Discriminator):
        self.discriminator = discriminator

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if state.is_world_process_zero:
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}" / DISCRIMINATOR_DIR
            self.discriminator.save(folder)
        return control
