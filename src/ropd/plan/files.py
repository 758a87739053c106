"""The run folder's `plan.json`: the plan a run started with, for comparing with what it spent."""

from __future__ import annotations

from ropd import redact
from ropd.plan.build import build_plan
from ropd.plan.model import PLAN_FILE
from ropd.train.config import TrainConfig
from ropd.train.data import TrainPrompt

log = redact.logger(__name__)


def write_plan_file(config: TrainConfig, prompts: list[TrainPrompt]) -> None:
    """Write `<output_dir>/plan.json`; a plan that cannot be made never stops the run."""
    try:
        plan = build_plan(config, prompts=prompts)
        config.output_dir.mkdir(parents=True, exist_ok=True)
        (config.output_dir / PLAN_FILE).write_text(plan.model_dump_json(indent=2) + "\n")
    except Exception as error:  # noqa: BLE001 - the plan is a record, not a requirement
        log.warning("plan.json not written: %s", error)
