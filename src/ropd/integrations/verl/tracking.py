"""ropd's step metrics in verl's own tracking backends (`trainer.logger`), written by the collector.

Why not through verl's trainer: verl 0.9.1 turns a reward manager's per-sample
`reward_extra_info` into metrics only for validation (`val-aux/<source>/<key>/...`). Its training
step (V1 `PPOTrainer._compute_metrics`, V0 `RayPPOTrainer.fit`) logs rewards, lengths and timings
from the batch tensors and never reads the extra info, the agent loop returns no metrics to the
trainer, and no configuration hook hands a reward manager the trainer's `Tracking`. So the
process that owns the collector (the one reward worker, or the named actor) opens the backends of
`trainer.logger` itself, under the trainer's `project_name` / `experiment_name`, and logs each
completed step's `ropd/*` metrics at that step's number:

- `console`, `tensorboard`: verl's own `Tracking` adapters. The console line is printed in the
  collector's process (Ray forwards it to the driver); TensorBoard gets a second event file in the
  same run folder (`TENSORBOARD_DIR`, else `tensorboard_log/<project>/<experiment>` from the
  process's working directory), which TensorBoard merges with the trainer's.
- `file`: `<experiment>.ropd.jsonl` beside verl's `<experiment>.jsonl` (verl opens its own file
  for writing: a second writer there would truncate it), in verl's line format.
- `wandb`: W&B writes a run's history from one process and only at its current step, so ropd
  joins the trainer's run in W&B's shared mode when `WANDB_RUN_ID` names it (set it in the job's
  environment: the trainer's `wandb.init` reads it too), and logs against its own x-axis,
  `ropd/global_step` (verl's step number). Without `WANDB_RUN_ID` it warns once and skips W&B.
- other backends (mlflow, swanlab, ...) are not written; the log line still carries the numbers.

A backend that fails is warned about once and dropped: tracking never fails a reward.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ropd import redact

log = redact.logger(__name__)

VERL_ADAPTERS = ("console", "tensorboard")  # verl's own, safe to open in a second process
WANDB_STEP = "ropd/global_step"  # the W&B x-axis of ropd's metrics: verl's step number
WANDB_LABEL = "ropd"


class _Sink:
    """One backend: how to log a step's metrics and how to close it."""

    def __init__(self, name: str, write: Callable[[dict[str, float], int], None],
                 close: Callable[[], None]):  # fmt: skip
        self.name = name
        self.write = write
        self.close = close


def file_path(project: str, experiment: str, env: Mapping[str, str]) -> Path:
    """Where verl's `file` backend writes, with `.ropd.jsonl` instead of `.jsonl`."""
    given = env.get("VERL_FILE_LOGGER_PATH")
    if given:
        path = Path(given)
        return path.with_name(path.name.removesuffix(".jsonl") + ".ropd.jsonl")
    root = Path(os.path.expanduser(env.get("VERL_FILE_LOGGER_ROOT", ".")))
    return root / project / f"{experiment}.ropd.jsonl"


class StepTracking:
    """The backends of verl's `trainer.logger` as the collector's process writes them.

    Opened on the first step's metrics (in the process and thread that log), so a collector that
    never completes a step opens nothing.
    """

    def __init__(self, project: str, experiment: str, backends: Sequence[str],
                 env: Mapping[str, str] | None = None):  # fmt: skip
        self.project = project
        self.experiment = experiment
        self.backends = tuple(dict.fromkeys(backends))
        self.env = os.environ if env is None else env
        self._sinks: list[_Sink] | None = None

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        """Write one step's metrics to every open backend (a failing one is dropped)."""
        if self._sinks is None:
            self._sinks = self._open()
        data = {key: float(value) for key, value in metrics.items()}
        for sink in list(self._sinks):
            try:
                sink.write(data, step)
            except Exception as exc:  # noqa: BLE001 - tracking must never fail a reward
                log.warning(
                    "ropd: %s tracking failed (%s); ropd stops writing to it", sink.name, exc
                )
                self._sinks.remove(sink)

    def close(self) -> None:
        for sink in self._sinks or []:
            try:
                sink.close()
            except Exception as exc:  # noqa: BLE001 - closing is best effort
                log.warning("ropd: closing %s tracking failed: %s", sink.name, exc)
        self._sinks = []

    def _open(self) -> list[_Sink]:
        sinks: list[_Sink] = []
        openers = {"file": self._file, "wandb": self._wandb}
        verl_names = [name for name in self.backends if name in VERL_ADAPTERS]
        if verl_names:
            self._try("/".join(verl_names), lambda: self._verl(verl_names), sinks)
        for name in self.backends:
            if name in openers:
                self._try(name, openers[name], sinks)
            elif name not in VERL_ADAPTERS:
                log.warning(
                    "ropd: step metrics do not go to verl's %r logger; they are in the "
                    "`ropd step N metrics` log line and the trace store", name,
                )  # fmt: skip
        return sinks

    @staticmethod
    def _try(name: str, opener: Callable[[], _Sink | None], sinks: list[_Sink]) -> None:
        try:
            sink = opener()
        except Exception as exc:  # noqa: BLE001 - a backend that cannot open is skipped
            log.warning("ropd: cannot open %s tracking for the step metrics: %s", name, exc)
            return
        if sink is not None:
            sinks.append(sink)

    def _verl(self, names: list[str]) -> _Sink:
        from verl.utils.tracking import Tracking

        tracking = Tracking(self.project, self.experiment, default_backend=names)
        return _Sink("/".join(names), lambda data, step: tracking.log(data, step), tracking.finish)

    def _file(self) -> _Sink:
        path = file_path(self.project, self.experiment, self.env)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = path.open("a", encoding="utf-8")

        def write(data: dict[str, float], step: int) -> None:
            handle.write(json.dumps({"step": step, "data": data}) + "\n")
            handle.flush()

        return _Sink("file", write, handle.close)

    def _wandb(self) -> _Sink | None:
        run_id = self.env.get("WANDB_RUN_ID")
        if not run_id:
            log.warning(
                "ropd: step metrics skip W&B: set WANDB_RUN_ID in the job's environment so the "
                "trainer's run has a known id ropd can join (W&B shared mode)"
            )
            return None
        import wandb

        settings = wandb.Settings(mode="shared", x_primary=False, x_label=WANDB_LABEL,
                                  x_update_finish_state=False)  # fmt: skip
        run: Any = wandb.init(id=run_id, project=self.project, entity=self.env.get("WANDB_ENTITY"),
                              settings=settings)  # fmt: skip
        run.define_metric(WANDB_STEP)
        run.define_metric("ropd/*", step_metric=WANDB_STEP)
        return _Sink("wandb", lambda data, step: run.log({WANDB_STEP: step, **data}), run.finish)
