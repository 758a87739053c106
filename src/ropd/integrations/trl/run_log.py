"""The resolved `ropd:` section, logged with the training run where the metrics go.

A curve in TensorBoard or W&B is only useful when it can be told which judge, K and rubric
bounds produced it. transformers' own callbacks log TRL's arguments; this one adds ropd's section
to the same run: TensorBoard text `ropd/config`, W&B config key `ropd`. The run is named with
the ropd run id (`run_name`), so the W&B run, the TensorBoard run and the trace store's run share
one name.
"""

from __future__ import annotations

import json
from typing import Any

from transformers import TrainerCallback
from transformers.integrations import TensorBoardCallback, WandbCallback

TEXT_TAG = "ropd/config"
WANDB_KEY = "ropd"


class LogRopdConfig(TrainerCallback):  # type: ignore[misc]
    """Adds `section` (already scrubbed of secrets) to the run's TensorBoard and W&B records.

    Added after the trainer is built, so it runs after transformers' reporting callbacks have
    opened their writer / run in `on_train_begin`.
    """

    def __init__(self, trainer: Any, section: dict[str, Any]):
        self._trainer = trainer
        self.section = section

    def on_train_begin(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        if not state.is_world_process_zero:
            return
        text = json.dumps(self.section, indent=2, sort_keys=True, default=str)
        for callback in self._trainer.callback_handler.callbacks:
            if isinstance(callback, TensorBoardCallback) and callback.tb_writer is not None:
                # indented: TensorBoard renders text as Markdown, and this keeps it verbatim
                block = "\n".join("    " + line for line in text.splitlines())
                callback.tb_writer.add_text(TEXT_TAG, block)
                callback.tb_writer.flush()
            elif isinstance(callback, WandbCallback):
                run = getattr(getattr(callback, "_wandb", None), "run", None)
                if run is not None:
                    run.config.update({WANDB_KEY: self.section}, allow_val_change=True)


class LeaveOutUnjudgedMetrics(TrainerCallback):  # type: ignore[misc]
    """Removes metrics whose value is None before any reporting callback sees them.

    When every group of a step failed, ropd returns no reward (the step is masked, and ropd says
    so once), and TRL logs `reward`, `reward_std` and `rewards/<name>/*` as None. TensorBoard's
    callback would warn once per key that it "dropped" them; leaving them out says the same thing
    without the alarm. `state.log_history` keeps the None values (it is written before callbacks).
    Must run first: `leave_out_unjudged_metrics` puts it at the head of the callback list.
    """

    def on_log(self, args, state, control, logs=None, **kwargs):  # type: ignore[no-untyped-def]
        if logs:
            for key in [key for key, value in logs.items() if value is None]:
                del logs[key]


def log_ropd_config(trainer: Any, section: dict[str, Any]) -> None:
    """Have `trainer` log `section` with its run (TensorBoard text, W&B config)."""
    trainer.add_callback(LogRopdConfig(trainer, section))


def leave_out_unjudged_metrics(trainer: Any) -> None:
    """Have `trainer` leave None-valued metrics (masked steps) out of TensorBoard, W&B and the console."""
    trainer.callback_handler.callbacks.insert(0, LeaveOutUnjudgedMetrics())


__all__ = [
    "TEXT_TAG",
    "WANDB_KEY",
    "LeaveOutUnjudgedMetrics",
    "LogRopdConfig",
    "leave_out_unjudged_metrics",
    "log_ropd_config",
]
