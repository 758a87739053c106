"""Run one training job from a validated config: ROPD or one of the paper's baselines.

Output folder layout (`output_dir`):
    checkpoint-<step>/   TRL/transformers checkpoints (`--resume` continues from the newest)
    final/               the trained student (model + tokenizer) when the run ends
    runs/                TensorBoard logs (TRL's own logging; `report_to` chooses the backend)
    traces.sqlite        every rubric, verdict and reward, keyed by run and step (ROPD/T-Judge)
    ropd_run.json        the run id and the resolved config (a resumed run keeps the run id)
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ropd.llm.config import LimitsConfig, RoleConfig
from ropd.llm.types import ChatClient
from ropd.train.config import ConfigError, TrainConfig
from ropd.train.data import TrainPrompt, load_prompts, rl_dataset, sft_dataset
from ropd.train.gate import QualityGate
from ropd.train.scoring import BatchScorer, ReferenceSource, Scorer

log = logging.getLogger(__name__)

ClientFactory = Callable[
    [list[RoleConfig], LimitsConfig],
    AbstractAsyncContextManager[tuple[ChatClient, list[RoleConfig]]],
]
RUN_FILE = "ropd_run.json"


@dataclass
class RunReport:
    """What a run produced and where (printed at the end of `ropd train`)."""

    method: str
    output_dir: Path
    run_id: str
    final_model: Path | None = None
    traces: Path | None = None
    logs: Path | None = None
    checkpoints: list[Path] = field(default_factory=list)
    global_step: int = 0
    seconds: float = 0.0
    stopped: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)

    def lines(self) -> list[str]:
        summary = f"({self.run_id}, {self.global_step} steps, {self.seconds:.0f}s)"
        out = [f"method          {self.method}  {summary}", f"output folder   {self.output_dir}"]
        if self.final_model:
            out.append(f"trained model   {self.final_model}")
        if self.checkpoints:
            out.append(f"last checkpoint {self.checkpoints[-1]}")
        if self.logs:
            out.append(f"logs            {self.logs}  (tensorboard --logdir {self.logs})")
        if self.traces:
            out.append(f"trace store     {self.traces}  (ropd inspect --traces {self.traces})")
        return out


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


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


def _run_id(config: TrainConfig, resume: bool) -> str:
    from ropd.traces import new_run_id

    run_file = config.output_dir / RUN_FILE
    if resume and run_file.is_file():
        return str(json.loads(run_file.read_text())["run_id"])
    return config.ropd.run_id or new_run_id(config.method)


def _write_run_file(config: TrainConfig, run_id: str) -> None:
    if not _is_main_process():
        return
    from ropd.traces import scrub_settings

    config.output_dir.mkdir(parents=True, exist_ok=True)
    body = scrub_settings({
        "run_id": run_id,
        "method": config.method,
        "source": config.source,
        "trl": config.trl,
        "ropd": config.ropd.model_dump(mode="json"),
    })  # fmt: skip
    (config.output_dir / RUN_FILE).write_text(json.dumps(body, indent=2, default=str) + "\n")


# -- teacher answers ----------------------------------------------------------------------------


def _teacher_k(config: TrainConfig) -> int:
    section = config.ropd
    if section.method == "ropd":
        k = section.scorer.num_teacher_refs
        return section.teacher.num_answers if k is None else k
    if section.method == "tjudge":
        return section.tjudge.num_references
    return section.teacher.num_answers  # sft: every stored answer is a training example


def prepare_teacher(
    config: TrainConfig, prompts: list[TrainPrompt], client_factory: ClientFactory | None = None
) -> Any | None:
    """Open the teacher store, building missing answers first when configured."""
    from ropd.train import references

    section = config.ropd
    if not section.needs_teacher_store:
        return None
    k = _teacher_k(config)
    store_path = Path(section.teacher.store)  # type: ignore[arg-type]
    if section.teacher.build_missing and _is_main_process():
        need = max(k, section.teacher.num_answers)
        store = references.open_store(store_path) if store_path.exists() else None
        missing = (
            len(prompts)
            if store is None
            else references.coverage(store, section.teacher, prompts, need)
        )
        if store is not None:
            store.close()
        if missing:
            print(f"building teacher answers: {missing} of {len(prompts)} prompts need {need}")
            references.build_missing(
                section.teacher,
                prompts,
                section.limits,
                need,
                system_prompt=section.data.system_prompt,
                client_factory=client_factory,
            )
    store = references.open_store(store_path)
    missing = references.coverage(store, section.teacher, prompts, k)
    if missing == len(prompts):
        raise ConfigError(
            f"teacher store {store_path} has no usable answers for these prompts (need {k} each); "
            "build them with `ropd teacher build` or set ropd.teacher.build_missing: true"
        )
    if missing:
        log.warning("%d of %d prompts have fewer than %d teacher answers", missing, len(prompts), k)
    return store


# -- scorers ------------------------------------------------------------------------------------


def _default_client_factory() -> ClientFactory:
    from ropd.llm.client import open_chat_client

    return open_chat_client


def make_opener(
    config: TrainConfig,
    run_id: str,
    store: Any | None,
    client_factory: ClientFactory | None = None,
):
    """The coroutine that opens the judge client, the trace store and the scorer (main only)."""
    from ropd.train.references import StoreReferences

    section = config.ropd
    factory = client_factory or _default_client_factory()
    traces_path = config.traces_path

    async def opener(stack: AsyncExitStack) -> tuple[Scorer, ReferenceSource | None]:
        from ropd.traces import TraceStore

        traces = TraceStore(
            traces_path,
            run_id=run_id,
            run_info={"method": section.method, "output_dir": str(config.output_dir)},
        )
        stack.callback(traces.close)
        if section.method == "ropd":
            from ropd.reward.engine import GroupScorer

            cfg = section.scorer
            client, roles = await stack.enter_async_context(
                factory([cfg.rubricator, cfg.verifier], section.limits)
            )
            cfg = cfg.model_copy(update={"rubricator": roles[0], "verifier": roles[1]})
            scorer: Scorer = GroupScorer(cfg, client, traces, run_id=run_id)
            strip = cfg.strip_think
        else:
            from ropd.reward.tjudge import TJudgeScorer

            tcfg = section.tjudge
            client, roles = await stack.enter_async_context(factory([tcfg.judge], section.limits))
            tcfg = tcfg.model_copy(update={"judge": roles[0]})
            scorer = TJudgeScorer(tcfg, client, traces, run_id=run_id)
            strip = tcfg.strip_think
        refs = StoreReferences(store, section.teacher, _teacher_k(config), strip_think=strip)
        return scorer, (refs if store is not None else None)

    return opener


# -- trainers -----------------------------------------------------------------------------------


def build_trainer(
    config: TrainConfig,
    prompts: list[TrainPrompt],
    store: Any | None,
    run_id: str,
    client_factory: ClientFactory | None = None,
) -> tuple[Any, Any | None]:
    """The TRL trainer for the configured method (and the reward function, for GRPO methods)."""
    from ropd.train.student import resolve_student

    section = config.ropd
    args = config.trl_args()
    student = resolve_student(section.student)
    peft: dict[str, Any] = {}
    if section.lora is not None:
        from peft import LoraConfig

        peft["peft_config"] = LoraConfig(task_type="CAUSAL_LM", **section.lora)
    if section.method in ("ropd", "tjudge"):
        from trl import GRPOTrainer

        from ropd.integrations.trl import RopdRewardFunction, StopOnGateCallback

        gate = QualityGate(section.gate.window, section.gate.threshold, section.gate.min_groups)
        batch_scorer = BatchScorer(make_opener(config, run_id, store, client_factory), gate)
        reward = RopdRewardFunction(batch_scorer, args.num_generations, name=section.method)
        trainer = GRPOTrainer(
            model=student,
            reward_funcs=[reward],
            args=args,
            train_dataset=rl_dataset(prompts),
            callbacks=[StopOnGateCallback(reward)],
            **peft,
        )
        return trainer, reward
    if section.method == "sft":
        from trl import SFTTrainer

        from ropd.train.references import lookup

        pairs = [
            (p, answer)
            for p in prompts
            for answer in lookup(store, section.teacher, p.messages, section.teacher.num_answers)
        ]
        trainer = SFTTrainer(model=student, args=args, train_dataset=sft_dataset(pairs), **peft)
        return trainer, None
    if section.method == "lopd":
        from trl import DistillationTrainer

        teacher = resolve_student(section.lopd.teacher_model)  # type: ignore[arg-type]
        trainer = DistillationTrainer(
            model=student,
            teacher_model=teacher,
            args=args,
            train_dataset=rl_dataset(prompts),
            **peft,
        )
        return trainer, None
    raise ConfigError(f"unknown method {section.method!r}")


def _close_reward(trainer: Any, reward: Any | None) -> None:
    if reward is None:
        return
    loop = getattr(trainer, "async_loop", None)
    if loop is not None and loop.is_running():
        asyncio.run_coroutine_threadsafe(reward.batch_scorer.aclose(), loop).result(timeout=60)


def run(
    config: TrainConfig,
    *,
    resume: bool = False,
    client_factory: ClientFactory | None = None,
) -> RunReport:
    """Train as configured; returns where everything went. Finished checkpoints are never lost."""
    started = time.monotonic()
    config.trl_args()  # TRL's own checks, before any model or data loads
    prompts = load_prompts(config.ropd.data)
    from accelerate import PartialState

    with PartialState().main_process_first():  # the main process builds, the others wait
        store = prepare_teacher(config, prompts, client_factory)
    resume_from = last_checkpoint(config.output_dir) if resume else None
    if resume and resume_from is None:
        print(f"no checkpoint in {config.output_dir}: starting from the beginning")
    run_id = _run_id(config, resume)
    _write_run_file(config, run_id)

    trainer, reward = build_trainer(config, prompts, store, run_id, client_factory)
    try:
        trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    finally:
        _close_reward(trainer, reward)
        if store is not None:
            store.close()
    final = config.output_dir / "final"
    trainer.save_model(str(final))
    if _is_main_process() and getattr(trainer, "processing_class", None) is not None:
        trainer.processing_class.save_pretrained(str(final))
    logs = config.output_dir / "runs"
    return RunReport(
        method=config.method,
        output_dir=config.output_dir,
        run_id=run_id,
        final_model=final,
        traces=config.traces_path if config.method in ("ropd", "tjudge") else None,
        logs=logs if logs.is_dir() else None,
        checkpoints=checkpoints(config.output_dir),
        global_step=trainer.state.global_step,
        seconds=time.monotonic() - started,
        stopped=reward.stop_message if reward is not None else None,
        metrics=dict(trainer.state.log_history[-1]) if trainer.state.log_history else {},
    )
