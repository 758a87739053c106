"""Run one training job from a validated config: ROPD or one of the paper's baselines.

Output folder layout (`output_dir`):
    checkpoint-<step>/   TRL/transformers checkpoints (`--resume` continues from the newest)
    final/               the trained student (model + tokenizer) when the run ends
    runs/                TensorBoard logs (TRL's own logging; `report_to` chooses the backend)
    traces.db            every rubric, verdict and reward, keyed by run and step (ROPD/T-Judge)
    ropd_run.json        the run id and the resolved config (a resumed run keeps the run id)
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ropd import redact
from ropd.errors import ConfigError, JudgeError, RopdError
from ropd.llm.client import endpoint_host
from ropd.llm.types import ChatClient
from ropd.train.config import TrainConfig
from ropd.train.data import TrainPrompt, load_prompts

log = redact.logger(__name__)

RUN_FILE = "ropd_run.json"


@dataclass
class RunReport:
    """What a run produced and where (printed at the end of `ropd train`)."""

    method: str
    output_dir: Path
    run_id: str
    final_model: Path | None = None
    traces: Path | None = None
    report: Path | None = None
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
        if self.report:
            out.append(f"report          {self.report}  (open it in a browser)")
        return out


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _run_id(config: TrainConfig, resume: bool) -> str:
    from ropd.reward.traces import new_run_id

    run_file = config.output_dir / RUN_FILE
    if resume and run_file.is_file():
        return str(json.loads(run_file.read_text())["run_id"])
    return config.ropd.run_id or new_run_id(config.method)


def _scrubbed_section(config: TrainConfig) -> dict[str, Any]:
    """The resolved `ropd:` section without secrets (stored with the run and in the run file)."""
    from ropd.reward.traces import scrub_settings

    return scrub_settings(config.ropd.model_dump(mode="json"))


def _write_run_file(config: TrainConfig, run_id: str) -> None:
    if not _is_main_process():
        return
    from ropd.reward.traces import scrub_settings

    config.output_dir.mkdir(parents=True, exist_ok=True)
    body = scrub_settings({
        "run_id": run_id,
        "method": config.method,
        "source": config.source,
        "trl": config.trl,
        "ropd": _scrubbed_section(config),
    })  # fmt: skip
    (config.output_dir / RUN_FILE).write_text(json.dumps(body, indent=2, default=str) + "\n")


def _write_report(config: TrainConfig, run_id: str) -> Path | None:
    """The run's HTML report (`ropd report`); a report that cannot be made costs a warning, never
    the finished run."""
    try:
        from ropd.report import write_report

        return write_report(config.output_dir, traces=config.traces_path, run_id=run_id)
    except RopdError as error:
        log.warning(
            "no report written: %s (ropd report %s makes one later)", error, config.output_dir
        )
        return None


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
    config: TrainConfig, prompts: list[TrainPrompt], client: ChatClient | None = None
) -> Any | None:
    """Open the teacher store, building missing answers first when configured."""
    from ropd.teacher import references
    from ropd.teacher.store import TeacherStore

    section = config.ropd
    if not section.needs_teacher_store:
        return None
    k = _teacher_k(config)
    store_path = Path(section.teacher.store)  # type: ignore[arg-type]
    messages = [p.messages for p in prompts]
    report: Any = None
    if section.teacher.build_missing and _is_main_process():
        need = max(k, section.teacher.num_answers)
        missing = len(prompts)
        if store_path.exists():
            with TeacherStore(store_path) as store:
                lookup = references.StoreReferences.from_config(store, section.teacher, need)
                missing = lookup.coverage(messages)
        if missing:
            print(f"building teacher answers: {missing} of {len(prompts)} prompts need {need}")
            report = references.build_missing(
                section.teacher,
                [(p.id, p.messages) for p in prompts],
                section.limits,
                need,
                system_prompt=section.data.system_prompt,
                client=client,
            )
    store = TeacherStore(store_path)
    missing = references.StoreReferences.from_config(store, section.teacher, k).coverage(messages)
    if missing == len(prompts):
        store.close()
        raise no_answers_error(config, store_path, k, report)
    if missing:
        log.warning("%d of %d prompts have fewer than %d teacher answers", missing, len(prompts), k)
    return store


def no_answers_error(config: TrainConfig, store_path: Path, k: int, report: Any) -> RopdError:
    """Why no prompt has teacher answers: the teacher's own error when this run built them.

    "set build_missing: true" is only advice when it is false; when the build ran, what the
    teacher said (key refused, endpoint down, every answer refused or empty) is the message.
    """
    head = f"teacher store {store_path} has no usable answers for these prompts (need {k} each)"
    teacher = config.ropd.teacher
    if not teacher.build_missing:
        return ConfigError(
            f"{head}; build them with `ropd teacher build` or set ropd.teacher.build_missing: true"
        )
    if report is None:  # another process built them (torchrun, accelerate): see its output
        return JudgeError(f"{head}: the teacher build on the main process produced none")
    role = teacher.role
    where = f"teacher (model {role.model} at {endpoint_host(role.base_url)})"
    if report.errors:
        shown = "; ".join(report.errors[:3])
        rest = report.failed_requests - 3
        more = f" (and {rest} more failed requests)" if rest > 0 else ""
        return JudgeError(f"{head}: requests to the {where} failed: {shown}{more}")
    statuses = ", ".join(f"{n} {status}" for status, n in sorted(report.by_status.items()))
    got = f"it answered {statuses}" if statuses else "it was asked nothing"
    return JudgeError(
        f"{head}: the {where} gave no usable answer ({got}); check its max_tokens "
        "(truncated answers are not used) and the prompts"
    )


# -- trainers -----------------------------------------------------------------------------------


def make_reward(
    config: TrainConfig, run_id: str, store: Any | None, client: ChatClient | None = None
) -> Any:
    """The TRL reward function for a GRPO method (ROPD or T-Judge), as configured."""
    from ropd.integrations.trl import RopdReward

    section = config.ropd
    scorer = section.scorer if section.method == "ropd" else section.tjudge
    return RopdReward(
        scorer,
        teacher_store=store,
        limits=section.limits,
        traces=config.traces_path,
        gate=section.gate,
        teacher_fingerprint=section.teacher.fingerprint,
        accept_any_fingerprint=section.teacher.accept_any_fingerprint,
        teacher_answers=_teacher_k(config),
        client=client,
        run_id=run_id,
        name=section.method,
        run_info={"ropd": _scrubbed_section(config)},
        probe=False,  # the judges were probed up front by `run` (or skipped with --no-probe)
    )


def build_trainer(
    config: TrainConfig,
    prompts: list[TrainPrompt],
    store: Any | None,
    run_id: str,
    client: ChatClient | None = None,
) -> tuple[Any, Any | None]:
    """The TRL trainer for the configured method (and the reward function, for GRPO methods)."""
    from ropd.integrations.trl import trainer as trl_trainer
    from ropd.integrations.trl.student import resolve_student

    section = config.ropd
    args = config.trl_args()
    if not args.run_name or args.run_name == args.output_dir:
        # the W&B / TensorBoard run is named like the trace store's run, so the two can be joined
        args.run_name = run_id
    student = resolve_student(section.student)
    if section.method in ("ropd", "tjudge"):
        reward = make_reward(config, run_id, store, client)
        return trl_trainer.grpo_trainer(student, args, prompts, reward, lora=section.lora), reward
    if section.method == "sft":
        from ropd.teacher.references import StoreReferences

        answers = StoreReferences.from_config(store, section.teacher, section.teacher.num_answers)
        pairs = [(p, answer) for p in prompts for answer in answers.lookup(p.messages)]
        return trl_trainer.sft_trainer(student, args, pairs, lora=section.lora), None
    if section.method == "lopd":
        teacher = resolve_student(section.lopd.teacher_model)  # type: ignore[arg-type]
        trainer = trl_trainer.distillation_trainer(
            student, teacher, args, prompts, lora=section.lora
        )
        return trainer, None
    raise ConfigError(f"unknown method {section.method!r}")


def run(
    config: TrainConfig,
    *,
    resume: bool = False,
    client: ChatClient | None = None,
    probe: bool = True,
) -> RunReport:
    """Train as configured; returns where everything went. Finished checkpoints are never lost.

    `client` answers every judge and teacher request instead of the configured endpoints
    (tests, custom transports). Before any model or data loads, every problem of the machine
    is collected and raised as one `ConfigError` (`train/preflight.py`: TRL's own checks,
    packages the options need, key variables, and with `probe` the judge endpoints).
    """
    from ropd.integrations.trl.trainer import checkpoints, close_reward, last_checkpoint
    from ropd.train.preflight import check_ready

    started = time.monotonic()
    check_ready(config, probe=probe, teacher=False, endpoints=client is None)
    prompts = load_prompts(config.ropd.data)
    from accelerate import PartialState

    with PartialState().main_process_first():  # the main process builds, the others wait
        store = prepare_teacher(config, prompts, client)
    resume_from = last_checkpoint(config.output_dir) if resume else None
    if resume and resume_from is None:
        print(f"no checkpoint in {config.output_dir}: starting from the beginning")
    run_id = _run_id(config, resume)
    _write_run_file(config, run_id)

    trainer, reward = build_trainer(config, prompts, store, run_id, client)
    from ropd.integrations.trl.run_log import log_ropd_config

    log_ropd_config(trainer, {**_scrubbed_section(config), "run_id": run_id})
    try:
        trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    finally:
        close_reward(trainer, reward)
        if store is not None:
            store.close()
    final = config.output_dir / "final"
    trainer.save_model(str(final))
    if _is_main_process() and getattr(trainer, "processing_class", None) is not None:
        trainer.processing_class.save_pretrained(str(final))
    logs = config.output_dir / "runs"
    traces = config.traces_path if config.method in ("ropd", "tjudge") else None
    page = _write_report(config, run_id) if traces is not None and _is_main_process() else None
    return RunReport(
        method=config.method,
        output_dir=config.output_dir,
        run_id=run_id,
        final_model=final,
        traces=traces,
        report=page,
        logs=logs if logs.is_dir() else None,
        checkpoints=checkpoints(config.output_dir),
        global_step=trainer.state.global_step,
        seconds=time.monotonic() - started,
        stopped=reward.stop_message if reward is not None else None,
        metrics=dict(trainer.state.log_history[-1]) if trainer.state.log_history else {},
    )
