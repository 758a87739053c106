"""ExOPD: on-policy distillation as dense KL-constrained RL, with the reward extrapolated.

Yang et al. (arXiv 2602.12125) read on-policy distillation as RL whose per-token reward is
`log π_teacher(y_t) − log π_ref(y_t)` under a KL penalty to a reference model π_ref; scaling
that reward by λ > 1 pushes the student past the teacher, in the direction teacher-over-
reference. The arithmetic lives in two pure functions (`extrapolated_reward`,
`exopd_advantage`); `ExopdTrainer` only gathers the three log-probabilities on the student's
own sampled tokens and takes a policy-gradient step on TRL's on-policy `DistillationTrainer`
(its sampling, batching and logging are kept; only the loss is replaced).
"""

from __future__ import annotations

import copy
import functools
from contextlib import nullcontext
from typing import Any

import torch

STUDENT_INIT = "student_init"  # the reference is the student's own initial weights, frozen
TEACHER = "teacher"  # the reference is the teacher: no extrapolation, plain on-policy KL


def extrapolated_reward(
    teacher_logps: torch.Tensor, reference_logps: torch.Tensor, lambda_: float
) -> torch.Tensor:
    """Per-token reward λ (log π_teacher − log π_ref): zero where the reference is the teacher."""
    return lambda_ * (teacher_logps - reference_logps)


def exopd_advantage(
    teacher_logps: torch.Tensor,
    reference_logps: torch.Tensor,
    student_logps: torch.Tensor,
    lambda_: float,
) -> torch.Tensor:
    """Per-token advantage of the KL-constrained objective: reward minus the KL integrand.

    `λ (log π_T − log π_ref) − (log π_θ − log π_ref)`. With λ = 1 the reference cancels and this
    is plain on-policy distillation's signal `log π_T − log π_θ` (negative reverse KL per token);
    with the reference equal to the teacher the extrapolation term vanishes for every λ. All
    inputs are log-probabilities of the sampled tokens, shape (batch, tokens); no gradient flows
    through the result (it is a per-token return, as in policy gradient).
    """
    reward = extrapolated_reward(teacher_logps, reference_logps, lambda_)
    return (reward - (student_logps - reference_logps)).detach()


def policy_gradient_loss(
    student_logps: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    num_items: torch.Tensor | int | None = None,
) -> torch.Tensor:
    """−Σ A_t log π_θ(y_t) over unmasked tokens, divided by `num_items` (else their count).

    The samples are the current policy's own, so the score-function gradient of the
    per-token objective is `A_t ∇ log π_θ(y_t)` with A_t held fixed.
    """
    mask = mask.to(student_logps.dtype)
    total = -(advantages.detach() * student_logps * mask).sum()
    if num_items is None:
        return total / mask.sum().clamp(min=1)
    if isinstance(num_items, torch.Tensor):
        num_items = num_items.to(total.device)
    return total / num_items


def token_logps(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    completion_ids: torch.Tensor,
    temperature: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probabilities of `completion_ids` under `model`, and the per-token entropy (nats).

    The model's own forward runs (so logit scaling and soft-capping apply as in sampling);
    the (batch, completion, vocab) logits are held once per model: fine for the sizes ropd
    trains, where TRL's chunked divergence kernel avoids them for the full-distribution loss.
    """
    keep = completion_ids.size(1)
    logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits[
        :, -keep - 1 : -1, :
    ]
    logps_all = torch.log_softmax(logits.float() / temperature, dim=-1)
    chosen = logps_all.gather(-1, completion_ids.unsqueeze(-1)).squeeze(-1)
    with torch.no_grad():
        entropy = -(logps_all.exp() * logps_all).sum(-1)
    return chosen, entropy


@functools.cache
def _trl_trainer() -> type:
    from trl import DistillationTrainer

    return DistillationTrainer


def exopd_trainer_class() -> type:
    """The `DistillationTrainer` subclass (built lazily: importing TRL takes seconds)."""
    base = _trl_trainer()

    class ExopdTrainer(base):  # type: ignore[misc, valid-type]
        """TRL's on-policy distillation with ExOPD's extrapolated per-token policy gradient."""

        def __init__(
            self, *args: Any, lambda_: float, reference: str = STUDENT_INIT, **kwargs: Any
        ) -> None:
            super().__init__(*args, **kwargs)
            self.lambda_ = lambda_
            self.reference = reference
            self.ref_model = None  # None: the teacher (TEACHER) or the disabled adapter (LoRA)
            from accelerate.utils import is_peft_model

            if reference == TEACHER or (reference == STUDENT_INIT and is_peft_model(self.model)):
                return
            if reference == STUDENT_INIT:
                ref = copy.deepcopy(self.model)  # before any step: the initial weights
            else:
                from trl.trainer.utils import create_model_from_path

                ref = create_model_from_path(
                    reference, trust_remote_code=self.args.trust_remote_code
                )
            ref.eval().requires_grad_(False)
            if self.is_deepspeed_enabled:
                from trl.models import prepare_deepspeed

                self.ref_model = prepare_deepspeed(ref, self.accelerator)
            else:
                self.ref_model = self.accelerator.prepare_model(ref, evaluation_mode=True)

        def _frozen_logps(self, which: str, student: Any, ids: Any, mask: Any, comp: Any) -> Any:
            """Teacher or reference log-probs, without gradient."""
            model, context = self.teacher_model, nullcontext()
            if which == "reference" and self.reference != TEACHER:
                if self.ref_model is None:  # LoRA: the student with its adapters switched off
                    model, context = student, student.disable_adapter()
                else:
                    model = self.ref_model
            model_was_training = model.training
            model.eval()
            with torch.no_grad(), context:
                logps, _ = token_logps(model, ids, mask, comp, self.temperature)
            if model is student and model_was_training:
                model.train()
            return logps

        def _compute_loss(
            self, unwrapped_student: Any, inputs: Any, num_items_in_batch: Any
        ) -> tuple[Any, Any, Any]:
            input_ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
            mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
            completion_ids = inputs["completion_ids"]
            loss_mask = inputs["completion_mask"]
            if "tool_mask" in inputs:
                loss_mask = loss_mask * inputs["tool_mask"]
            teacher = self._frozen_logps(
                "teacher", unwrapped_student, input_ids, mask, completion_ids
            )
            if self.reference == TEACHER:
                reference = teacher
            else:
                reference = self._frozen_logps(
                    "reference", unwrapped_student, input_ids, mask, completion_ids
                )
            student, entropy = token_logps(
                unwrapped_student, input_ids, mask, completion_ids, self.temperature
            )
            advantages = exopd_advantage(teacher, reference, student, self.lambda_)
            loss = policy_gradient_loss(student, advantages, loss_mask, num_items_in_batch)
            valid = loss_mask.bool()
            n_valid = valid.sum()
            mode = "train" if self.model.training else "eval"
            if n_valid > 0:
                reward = extrapolated_reward(teacher, reference, self.lambda_)
                for name, values in (
                    ("exopd/reward", reward),
                    ("exopd/advantage", advantages),
                    ("exopd/reverse_kl", student.detach() - teacher),
                ):
                    self._metrics[mode][name].append(values[valid].mean().item())
            return loss, (entropy * valid).sum().detach(), n_valid

    return ExopdTrainer


def tokenizer_mismatch(
    student: str, other: str, role: str = "teacher", *, local_only: bool = False
) -> str | None:
    """Why `other` cannot score `student`'s tokens (another vocabulary), or None.

    ExOPD reads the teacher's (and reference's) log-probability of each token the student
    sampled, so both must map every token id to the same string. `local_only` reads only
    folders and the Hugging Face cache (a dry run downloads nothing): a tokenizer not found
    there is not judged here (None), the run checks it again once the models load.
    """
    from transformers import AutoTokenizer

    try:
        ours = AutoTokenizer.from_pretrained(student, local_files_only=local_only).get_vocab()
        theirs = AutoTokenizer.from_pretrained(other, local_files_only=local_only).get_vocab()
    except (OSError, ValueError):
        if local_only:
            return None
        raise
    if ours == theirs:
        return None
    differ = len(set(ours.items()) ^ set(theirs.items()))
    return (
        f"the {role}'s tokenizer differs from the student's ({len(theirs)} vs {len(ours)} "
        f"tokens, {differ} id/token pairs not shared); ExOPD needs the {role} to score the "
        "student's own token ids: use a model of the same family (same tokenizer)"
    )
