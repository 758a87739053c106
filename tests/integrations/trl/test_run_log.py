"""The ropd section reaches W&B's run config (wandb itself is not installed here)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from transformers.integrations import WandbCallback

from ropd.integrations.trl.run_log import WANDB_KEY, LogRopdConfig


class RecordingConfig:
    def __init__(self) -> None:
        self.updates: list[tuple[dict[str, Any], bool]] = []

    def update(self, values: dict[str, Any], allow_val_change: bool = False) -> None:
        self.updates.append((values, allow_val_change))


def test_the_section_is_added_to_the_open_wandb_run_on_the_main_process_only() -> None:
    wandb_callback = WandbCallback.__new__(WandbCallback)  # __init__ needs wandb installed
    config = RecordingConfig()
    wandb_callback._wandb = SimpleNamespace(run=SimpleNamespace(config=config))
    trainer = SimpleNamespace(callback_handler=SimpleNamespace(callbacks=[wandb_callback]))
    section = {"run_id": "ropd-1", "scorer": {"num_teacher_refs": 4}}
    log = LogRopdConfig(trainer, section)

    log.on_train_begin(None, SimpleNamespace(is_world_process_zero=False), None)
    assert config.updates == []
    log.on_train_begin(None, SimpleNamespace(is_world_process_zero=True), None)
    assert config.updates == [({WANDB_KEY: section}, True)]

    wandb_callback._wandb = SimpleNamespace(run=None)  # W&B not started: nothing to update
    log.on_train_begin(None, SimpleNamespace(is_world_process_zero=True), None)
    assert len(config.updates) == 1


class RecordingWriter:
    def __init__(self) -> None:
        self.scalars: list[str] = []

    def add_scalar(self, key: str, value: float, step: int) -> None:
        self.scalars.append(key)

    def add_text(self, key: str, value: str, step: int | None = None) -> None:
        pass

    def flush(self) -> None:
        pass


def test_a_masked_step_reaches_tensorboard_without_the_dropped_none_warnings() -> None:
    """TRL logs reward=None when every group of a step failed; TensorBoard warned per key."""
    import logging

    from transformers import TrainerControl, TrainerState
    from transformers.integrations import TensorBoardCallback
    from transformers.trainer_callback import CallbackHandler

    from ropd.integrations.trl.run_log import leave_out_unjudged_metrics

    writer = RecordingWriter()
    handler = CallbackHandler([TensorBoardCallback(tb_writer=writer)], None, None, None, None)
    leave_out_unjudged_metrics(SimpleNamespace(callback_handler=handler))
    warnings: list[str] = []
    recorder = logging.Handler()
    recorder.emit = lambda record: warnings.append(record.getMessage())  # type: ignore[method-assign]
    tb_logger = logging.getLogger("transformers.integrations.integration_utils")
    tb_logger.addHandler(recorder)
    try:
        logs = {
            "loss": 0.0,
            "reward": None,
            "rewards/ropd/mean": None,
            "ropd/failed_group_rate": 1.0,
        }
        handler.on_log(SimpleNamespace(), TrainerState(), TrainerControl(), logs)
    finally:
        tb_logger.removeHandler(recorder)
    assert warnings == []
    assert writer.scalars == ["train/loss", "train/ropd/failed_group_rate"]
