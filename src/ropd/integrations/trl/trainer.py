"""Building TRL trainers for ropd's methods, and finding their checkpoints.

GRPO with the ROPD (or T-Judge) reward, SFT on stored teacher answers, and TRL's on-policy
distillation trainer for the logit baseline. The choice of method and its settings is the
recipe's (`ropd.train.runner`); this module only knows how TRL wants them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ropd.integrations.trl.datasets import TrainPrompt, rl_dataset, sft_dataset
from ropd.integrations.trl.reward import RopdReward, StopOnGateCallback


def _peft(lora: dict[str, Any] | None) -> dict[str, Any]:
    if lora is None:
        return {}
    from peft import LoraConfig

    return {"peft_config": LoraConfig(task_type="CAUSAL_LM", **lora)}


def grpo_trainer(
    student: Any,
    args: Any,
    prompts: Sequence[TrainPrompt],
    reward: RopdReward,
    *,
    lora: dict[str, Any] | None = None,
) -> Any:
    """GRPOTrainer with `reward`, stopping with a checkpoint when its quality gate trips."""
    from trl import GRPOTrainer

    if reward.num_generations is None:
        reward.num_generations = args.num_generations
    return GRPOTrainer(
        model=student,
        reward_funcs=[reward],
        args=args,
        train_dataset=rl_dataset(prompts),
        callbacks=[StopOnGateCallback(reward)],
        **_peft(lora),
    )


def sft_trainer(
    student: Any,
    args: Any,
    pairs: Sequence[tuple[TrainPrompt, str]],
    *,
    lora: dict[str, Any] | None = None,
) -> Any:
    """SFTTrainer on (prompt, teacher answer) pairs: sequence-level distillation."""
    from trl import SFTTrainer

    return SFTTrainer(model=student, args=args, train_dataset=sft_dataset(pairs), **_peft(lora))


def distillation_trainer(
    student: Any,
    teacher: Any,
    args: Any,
    prompts: Sequence[TrainPrompt],
    *,
    lora: dict[str, Any] | None = None,
) -> Any:
    """TRL's on-policy DistillationTrainer (reverse KL to a white-box teacher)."""
    from trl import DistillationTrainer

    return DistillationTrainer(
        model=student,
        teacher_model=teacher,
        args=args,
        train_dataset=rl_dataset(prompts),
        **_peft(lora),
    )


def close_reward(trainer: Any, reward: RopdReward | None) -> None:
    """Close the reward's judge on the event loop TRL scored it on."""
    if reward is None:
        return
    loop = getattr(trainer, "async_loop", None)
    if loop is not None and loop.is_running():
        asyncio.run_coroutine_threadsafe(reward.aclose(), loop).result(timeout=60)


def last_checkpoint(output_dir: Path) -> Path | None:
    from transformers.trainer_utils import get_last_checkpoint

    if not output_dir.is_dir():
        return None
    found = get_last_checkpoint(str(output_dir))
    return Path(found) if found else None


def checkpoints(output_dir: Path) -> list[Path]:
    if not output_dir.is_dir():
        return []
    found = [p for p in output_dir.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()]
    return sorted(found, key=lambda p: int(p.name.split("-")[-1]))
