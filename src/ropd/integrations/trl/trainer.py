"""Building TRL trainers for ropd's methods, and finding their checkpoints.

GRPO with the ROPD (or T-Judge) reward, SFT on stored teacher answers, and TRL's on-policy
distillation trainer for the logit baseline (and, with ExOPD's loss, for `exopd`), and GRPO on
GAD's discriminator (`gad`). The choice of method and its settings is the
recipe's (`ropd.train.runner`); this module only knows how TRL wants them.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ropd.integrations.trl.datasets import TrainPrompt, rl_dataset, sft_dataset
from ropd.integrations.trl.reward import RopdReward, StopOnGateCallback
from ropd.integrations.trl.student import EMBEDDED_DIRNAME, EMBEDDED_HUB_ID, cache_root

CARD = "README.md"


def _peft(lora: dict[str, Any] | None) -> dict[str, Any]:
    if lora is None:
        return {}
    from peft import LoraConfig

    return {"peft_config": LoraConfig(task_type="CAUSAL_LM", **lora)}


def base_model_name(student: Any) -> str | None:
    """The student's name for the model card: the Hub id of the embedded model for its cache
    folder, the id or folder as given otherwise (None for a model object without a name)."""
    if not isinstance(student, str | Path):
        return getattr(getattr(student, "config", None), "_name_or_path", None) or None
    embedded = cache_root() / "models" / EMBEDDED_DIRNAME
    if Path(student).is_dir() and Path(student).resolve() == embedded.resolve():
        return EMBEDDED_HUB_ID
    return str(student)


def name_student_in_card(trainer: Any, base_model: str | None) -> Any:
    """Make TRL's model card name `base_model`, and write the card with every saved model.

    TRL takes the base model from `model.config._name_or_path` and leaves it out ("fine-tuned
    version of [None]") when that is a local folder, as the embedded student and tiny models
    are. A Hub id is lent to the config while the card is written; a local folder is named in
    the card's text instead. `save_model(folder)` (the final model, not checkpoints) also puts
    the card into `folder`, next to the weights it describes.
    """
    create_card, save_model = trainer.create_model_card, trainer.save_model

    def create_model_card(*args: Any, **kwargs: Any) -> None:
        config = trainer.model.config
        saved = getattr(config, "_name_or_path", "")
        local = base_model is None or os.path.isdir(base_model)
        if not local:
            config._name_or_path = base_model
        try:
            create_card(*args, **kwargs)
        finally:
            config._name_or_path = saved
        card = Path(trainer.args.output_dir) / CARD
        if local and base_model and card.is_file():
            text = card.read_text(encoding="utf-8")
            named = f"`{base_model}` (a local model folder)"
            text = text.replace("[None](https://huggingface.co/None)", named)
            card.write_text(text, encoding="utf-8")

    def save_with_card(output_dir: str | None = None, _internal_call: bool = False) -> None:
        save_model(output_dir, _internal_call=_internal_call)
        if _internal_call or output_dir is None or not trainer.is_world_process_zero():
            return
        create_model_card(model_name=Path(trainer.args.output_dir).name)
        card = Path(trainer.args.output_dir) / CARD
        if card.is_file() and Path(output_dir).resolve() != card.parent.resolve():
            shutil.copyfile(card, Path(output_dir) / CARD)

    trainer.create_model_card = create_model_card
    trainer.save_model = save_with_card
    return trainer


def grpo_trainer(
    student: Any,
    args: Any,
    prompts: Sequence[TrainPrompt],
    reward: RopdReward,
    *,
    lora: dict[str, Any] | None = None,
    base_model: str | None = None,
) -> Any:
    """GRPOTrainer with `reward`, stopping with a checkpoint when its quality gate trips."""
    from trl import GRPOTrainer

    if reward.num_generations is None:
        reward.num_generations = args.num_generations
    trainer = GRPOTrainer(
        model=student,
        reward_funcs=[reward],
        args=args,
        train_dataset=rl_dataset(prompts),
        callbacks=[StopOnGateCallback(reward)],
        **_peft(lora),
    )
    return name_student_in_card(trainer, base_model or base_model_name(student))


def sft_trainer(
    student: Any,
    args: Any,
    pairs: Sequence[tuple[TrainPrompt, str]],
    *,
    lora: dict[str, Any] | None = None,
    base_model: str | None = None,
) -> Any:
    """SFTTrainer on (prompt, teacher answer) pairs: sequence-level distillation."""
    from trl import SFTTrainer

    trainer = SFTTrainer(model=student, args=args, train_dataset=sft_dataset(pairs), **_peft(lora))
    return name_student_in_card(trainer, base_model or base_model_name(student))


def distillation_trainer(
    student: Any,
    teacher: Any,
    args: Any,
    prompts: Sequence[TrainPrompt],
    *,
    lora: dict[str, Any] | None = None,
    base_model: str | None = None,
) -> Any:
    """TRL's on-policy DistillationTrainer (reverse KL to a white-box teacher)."""
    from trl import DistillationTrainer

    trainer = DistillationTrainer(
        model=student,
        teacher_model=teacher,
        args=args,
        train_dataset=rl_dataset(prompts),
        **_peft(lora),
    )
    return name_student_in_card(trainer, base_model or base_model_name(student))


def exopd_trainer(
    student: Any,
    teacher: Any,
    args: Any,
    prompts: Sequence[TrainPrompt],
    *,
    lambda_: float,
    reference: str,
    lora: dict[str, Any] | None = None,
    base_model: str | None = None,
) -> Any:
    """TRL's on-policy DistillationTrainer with ExOPD's extrapolated per-token loss
    (`ropd.integrations.trl.exopd`): same sampling and logging, another objective."""
    from ropd.integrations.trl.exopd import exopd_trainer_class

    trainer = exopd_trainer_class()(
        model=student,
        teacher_model=teacher,
        args=args,
        train_dataset=rl_dataset(prompts),
        lambda_=lambda_,
        reference=reference,
        **_peft(lora),
    )
    return name_student_in_card(trainer, base_model or base_model_name(student))


def gad_trainer(
    student: Any,
    args: Any,
    prompts: Sequence[TrainPrompt],
    reward: Any,
    *,
    lora: dict[str, Any] | None = None,
    base_model: str | None = None,
) -> Any:
    """`grpo_trainer` on GAD's discriminator reward (`ropd.integrations.trl.gad.GadReward`):
    the discriminator moves to the trainer's device, steps only while the student trains, and
    is saved into every checkpoint."""
    from ropd.integrations.trl.gad import SaveDiscriminatorCallback

    trainer = grpo_trainer(student, args, prompts, reward, lora=lora, base_model=base_model)
    trainer.add_callback(SaveDiscriminatorCallback(reward.discriminator))
    reward.discriminator.model.to(trainer.accelerator.device)
    reward.training = lambda: bool(trainer.model.training)
    return trainer


def close_reward(trainer: Any, reward: RopdReward | None) -> None:
    """Close the reward's judge on the event loop TRL scored it on."""
    if reward is None:
        return
    if not isinstance(reward, RopdReward):
        return  # GAD's reward holds no judge
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
