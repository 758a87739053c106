"""Run one training job from a validated config: ROPD or one of the paper's baselines.

Output folder layout (`output_dir`; with none named, `runs/<run id>`, e.g.
`runs/ropd-20260101-120000-1a2b`, so every run has its own folder):
    checkpoint-<step>/   TRL/transformers checkpoints (`--resume` continues from the newest);
                         gad: with `discriminator/`, its discriminator at that step
    final/               the trained student (model + tokenizer) when the run ends (gad: and
                         `final/discriminator/`)
    warmup-sft/final/    gad with `warmup_sft_steps`: the student after the SFT warm-up
    runs/                TensorBoard logs (TRL's own logging; `report_to` chooses the backend)
    traces.db            every rubric, verdict and reward, keyed by run and step (ROPD/T-Judge)
    report.html          the run's report (ROPD/T-Judge), written when the run ends
    ropd_run.json        run id, method, resolved config; `finished` and `global_step` at the end

One folder holds one run: a new run into a folder that holds one is refused (`plan_run`)
unless it resumes that run (same run id, traces and report) or overwrites it (its artefacts
are removed and a fresh run id starts). The main process decides and the others are told
(`torch.distributed` broadcast), so every rank agrees on the folder and the run id.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ropd import redact
from ropd.errors import ConfigError, JudgeError, RopdError
from ropd.llm.client import endpoint_host
from ropd.llm.types import ChatClient
from ropd.train.config import DEFAULT_RUNS_DIR, GRPO_METHODS, TrainConfig
from ropd.train.data import TrainPrompt, load_prompts

log = redact.logger(__name__)

RUN_FILE = "ropd_run.json"
WARMUP_DIR = "warmup-sft"  # gad: the student after its SFT warm-up, in `<output_dir>/warmup-sft`


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
    nothing_to_do: bool = False  # `--resume` of a finished run: nothing was loaded or trained
    scoring: Any = None  # the run's `StepMetrics` over every traced group (ROPD/T-Judge)

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
        return out + self.scoring_lines()

    def scoring_lines(self) -> list[str]:
        """Groups scored and masked, mean reward, judge tokens (and cost when priced)."""
        m = self.scoring
        if m is None:
            return []
        reward = "n/a" if m.reward_mean is None else f"{m.reward_mean:.3f}"
        why = " (no judged reward: masked by default)" if m.failed_groups else ""
        groups = (
            f"groups          {m.groups} scored, {m.failed_groups} failed{why}; "
            f"mean reward {reward}"
        )
        tokens = (
            f"judge tokens    {m.judge_input_tokens:,.0f} in / {m.judge_output_tokens:,.0f} out"
        )
        if m.judge_cost is not None:
            tokens += f", cost {m.judge_cost:,.4f}"
        return [groups, tokens]


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


# -- the run folder ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunPlan:
    """Where a run goes and under which run id, decided once before anything loads."""

    config: TrainConfig  # `output_dir` is the run's folder
    run_id: str
    resume: bool = False  # continue the run found in the folder (same run id, traces, report)
    finished_at: int | None = None  # `--resume` of a run that finished at this step: no work
    replaces: str | None = None  # `--overwrite`: the run (id, or "a run") whose artefacts go
    notes: tuple[str, ...] = ()  # said before training (e.g. no run to resume)

    @property
    def nothing_to_do(self) -> bool:
        return self.finished_at is not None

    def finished_message(self) -> str:
        return (
            f"run {self.run_id} in {self.config.output_dir} finished at step "
            f"{self.finished_at}; nothing to do (raise --max-steps to train further)"
        )


def read_run_file(folder: Path) -> dict[str, Any] | None:
    """The folder's `ropd_run.json`, or None (absent or unreadable: not a ropd run file)."""
    try:
        body = json.loads((folder / RUN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return body if isinstance(body, dict) else None


def holds_run(folder: Path) -> bool:
    """Whether a run's artefacts are there: its run file, a checkpoint or a final model."""
    from ropd.integrations.trl.trainer import checkpoints

    return (folder / RUN_FILE).is_file() or (folder / "final").exists() or bool(checkpoints(folder))


def _new_run_id(config: TrainConfig) -> str:
    from ropd.reward.traces import new_run_id

    return config.ropd.run_id or new_run_id(config.method)


def _with_folder(config: TrainConfig, folder: Path) -> TrainConfig:
    trl = {**config.trl, "output_dir": str(folder)}
    return dataclasses.replace(config, trl=trl, output_dir_default=False)  # decided once


def latest_default_run(method: str, runs_dir: Path = Path(DEFAULT_RUNS_DIR)) -> Path | None:
    """The newest `runs/<method>-…` folder holding a run of `method` (what a bare `--resume`
    continues when the config names no output_dir); run ids sort by their timestamp."""
    if not runs_dir.is_dir():
        return None
    found = [
        folder
        for folder in runs_dir.glob(f"{method}-*")
        if (read_run_file(folder) or {}).get("method") == method
    ]
    return max(found, key=lambda folder: folder.name) if found else None


def _describe_run(folder: Path, info: dict[str, Any] | None) -> str:
    if info is None:
        return f"{folder} already holds a run (checkpoints or final/, no {RUN_FILE})"
    done = f", finished at step {info.get('global_step')}" if info.get("finished") else ""
    return f"{folder} already holds run {info.get('run_id')} (method {info.get('method')}{done})"


def _refusal(folder: Path, info: dict[str, Any] | None) -> ConfigError:
    return ConfigError(
        f"{_describe_run(folder, info)}; nothing was changed. Continue it with --resume, train "
        "a new run with --output-dir DIR (or leave output_dir unset: runs/<run id>), or "
        "replace it with --overwrite"
    )


def _wants_more_steps(config: TrainConfig, step: int) -> bool:
    """Whether `max_steps` asks for more than the `step` a run already reached."""
    return int(config.trl.get("max_steps", -1) or -1) > step


def _resume_plan(config: TrainConfig, folder: Path, fresh_id: str | None) -> RunPlan:
    info = read_run_file(folder)
    config = _with_folder(config, folder)
    if info is None:
        notes = () if holds_run(folder) else (f"no run in {folder} to resume: starting a new one",)
        return RunPlan(config, fresh_id or _new_run_id(config), resume=True, notes=notes)
    if info.get("method") != config.method:
        raise ConfigError(
            f"{_describe_run(folder, info)}, not a {config.method} run; resume it with "
            f"--method {info.get('method')}, or train {config.method} with --output-dir DIR"
        )
    run_id = str(info["run_id"])
    finished = int(info.get("global_step") or 0)
    if info.get("finished") and not _wants_more_steps(config, finished):
        return RunPlan(config, run_id, resume=True, finished_at=finished)
    saved = _checkpoint_step(folder)  # killed after its last save, or an older run file
    if saved is not None and not _wants_more_steps(config, saved):
        return RunPlan(config, run_id, resume=True, finished_at=saved)
    return RunPlan(config, run_id, resume=True)


def _checkpoint_step(folder: Path) -> int | None:
    """The newest checkpoint's step; resuming a checkpoint at max_steps would train one more."""
    from ropd.integrations.trl.trainer import last_checkpoint

    newest = last_checkpoint(folder)
    try:
        state = json.loads((newest / "trainer_state.json").read_text()) if newest else None
        return int(state["global_step"]) if state else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def decide_run(config: TrainConfig, *, resume: bool = False, overwrite: bool = False) -> RunPlan:
    """The folder and run id of this run (see the module docstring); raises `ConfigError` when
    the folder holds another run and neither `resume` nor `overwrite` says what to do with it."""
    if resume and overwrite:
        raise ConfigError("--resume continues the run in the folder and --overwrite replaces it")
    fresh_id: str | None = None
    if config.output_dir_default:
        found = latest_default_run(config.method) if resume else None
        if found is None:
            fresh_id = _new_run_id(config)
            folder = Path(DEFAULT_RUNS_DIR) / fresh_id
        else:
            folder = found
    else:
        folder = config.output_dir
    if resume:
        return _resume_plan(config, folder, fresh_id)
    config = _with_folder(config, folder)
    run_id = fresh_id or _new_run_id(config)
    if not holds_run(folder):
        return RunPlan(config, run_id)
    if not overwrite:
        raise _refusal(folder, read_run_file(folder))
    old = (read_run_file(folder) or {}).get("run_id") or "a run"
    note = f"--overwrite: removing {old} from {folder}; this run is {run_id}"
    return RunPlan(config, run_id, replaces=str(old), notes=(note,))


def _join_process_group(config: TrainConfig) -> bool:
    """Set the processes up exactly as the trainer will (from its own TRL arguments), so the
    plan can be broadcast before any trainer exists; the trainer then finds the group ready."""
    import torch.distributed as dist

    _ = config.trl_args().device  # transformers' _setup_devices: accelerate's PartialState
    return dist.is_available() and dist.is_initialized()


def plan_run(config: TrainConfig, *, resume: bool = False, overwrite: bool = False) -> RunPlan:
    """`decide_run` on the main process, sent to every other one (torchrun, accelerate): a
    folder name with a timestamp, or a refusal, must be the same on all ranks."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not _join_process_group(config):
        return decide_run(config, resume=resume, overwrite=overwrite)
    import torch.distributed as dist

    box: list[Any] = [None]
    if _is_main_process():
        try:
            box[0] = decide_run(config, resume=resume, overwrite=overwrite)
        except ConfigError as error:
            box[0] = str(error)
    dist.broadcast_object_list(box, src=0)
    if isinstance(box[0], str):
        raise ConfigError(box[0])
    return box[0]


def remove_run(config: TrainConfig) -> None:
    """`--overwrite`: the old run's artefacts go, so none of it (checkpoints, final model, its
    traces in the folder's trace store, its report) mixes into the new run."""
    from ropd.integrations.trl.trainer import checkpoints

    folder = config.output_dir
    for path in [*checkpoints(folder), folder / "final", folder / "runs", folder / WARMUP_DIR]:
        shutil.rmtree(path, ignore_errors=True)
    names = [RUN_FILE, "report.html"]
    if config.traces_path.parent == folder:  # a trace store shared with other runs stays
        names += [config.traces_path.name + suffix for suffix in ("", "-wal", "-shm")]
    for name in names:
        (folder / name).unlink(missing_ok=True)


def _scrubbed_section(config: TrainConfig) -> dict[str, Any]:
    """The resolved `ropd:` section without secrets (stored with the run and in the run file)."""
    from ropd.reward.traces import scrub_settings

    return scrub_settings(config.ropd.model_dump(mode="json"))


def _write_run_file(
    config: TrainConfig, run_id: str, *, finished: bool = False, global_step: int | None = None
) -> None:
    """Written before training (so a killed run resumes under its id) and again at the end with
    `finished` (so `--resume` of a finished run knows there is nothing to do)."""
    if not _is_main_process():
        return
    from ropd.reward.traces import scrub_settings

    config.output_dir.mkdir(parents=True, exist_ok=True)
    body = scrub_settings({
        "run_id": run_id,
        "method": config.method,
        "source": config.source,
        "finished": finished,
        "global_step": global_step,
        "trl": config.trl,
        "ropd": _scrubbed_section(config),
    })  # fmt: skip
    (config.output_dir / RUN_FILE).write_text(json.dumps(body, indent=2, default=str) + "\n")


def run_scoring(traces: Path, run_id: str) -> Any | None:
    """The run's numbers over every group it traced (`StepMetrics`, as `ropd inspect --stats`
    computes per step); None when the store cannot be read (the run itself is not affected)."""
    from ropd.reward.metrics import step_metrics
    from ropd.reward.traces import TraceStore

    if not traces.is_file():
        return None
    try:
        store = TraceStore(traces, run_id=run_id)
        try:
            steps = store.steps(run_id=run_id)
        finally:
            store.close()
    except (RopdError, OSError, sqlite3.Error) as error:
        log.warning("no scoring summary: %s (ropd inspect --stats %s)", error, traces)
        return None
    return step_metrics(r for step in steps for r in step.results)


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


def prepare_teacher(
    config: TrainConfig, prompts: list[TrainPrompt], client: ChatClient | None = None
) -> Any | None:
    """Open the teacher store, building missing answers first when configured."""
    from ropd.teacher import references
    from ropd.teacher.builder import build_missing
    from ropd.teacher.store import TeacherStore

    section = config.ropd
    if not section.needs_teacher_store:
        return None
    k = config.ropd.k
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
            report = build_missing(
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
    config: TrainConfig,
    run_id: str,
    store: Any | None,
    client: ChatClient | None = None,
) -> Any:
    """The TRL reward function for a GRPO method (ROPD, T-Judge, OVD or RaR), as configured (OVD's
    outcome reward reads each row's gold answer from the dataset's `answer` column)."""
    from ropd.integrations.trl import RopdReward

    return RopdReward.from_run_config(
        config.ropd,
        teacher_store=store,
        traces=config.traces_path,
        client=client,
        run_id=run_id,
        run_info={"ropd": _scrubbed_section(config)},
        probe=False,  # the judges were probed up front by `run` (or skipped with --no-probe)
    )


def build_trainer(
    config: TrainConfig,
    prompts: list[TrainPrompt],
    store: Any | None,
    run_id: str,
    client: ChatClient | None = None,
    resume_from: Path | None = None,
) -> tuple[Any, Any | None]:
    """The TRL trainer for the configured method (and the reward function, for GRPO methods);
    `resume_from` (the checkpoint a run continues) gives GAD its saved discriminator."""
    from ropd.integrations.trl import trainer as trl_trainer
    from ropd.integrations.trl.student import resolve_student

    section = config.ropd
    args = config.trl_args()
    if not args.run_name or args.run_name == args.output_dir:
        # the W&B / TensorBoard run is named like the trace store's run, so the two can be joined
        args.run_name = run_id
    student = resolve_student(section.student)
    if section.method in GRPO_METHODS:
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
    if section.method == "exopd":
        from ropd.integrations.trl.exopd import STUDENT_INIT, TEACHER, tokenizer_mismatch

        ex = section.exopd
        teacher = resolve_student(ex.teacher_model)  # type: ignore[arg-type]
        mismatch = tokenizer_mismatch(student, teacher)
        if mismatch:
            raise ConfigError(f"{config.source}: field 'ropd.exopd.teacher_model': {mismatch}")
        own = ex.reference in (STUDENT_INIT, TEACHER)
        reference = ex.reference if own else resolve_student(ex.reference)
        mismatch = None if own else tokenizer_mismatch(student, reference, "reference")
        if mismatch:
            raise ConfigError(f"{config.source}: field 'ropd.exopd.reference': {mismatch}")
        trainer = trl_trainer.exopd_trainer(
            student, teacher, args, prompts,
            lambda_=ex.lambda_, reference=reference, lora=section.lora,
        )  # fmt: skip
        return trainer, None
    if section.method == "gad":
        reward = make_gad_reward(config, store, resume_from)
        student = warmup_student(config, prompts, store, student)
        trainer = trl_trainer.gad_trainer(student, args, prompts, reward, lora=section.lora)
        return trainer, reward
    raise ConfigError(f"unknown method {section.method!r}")


# -- GAD ------------------------------------------------------------------------------------------


def make_gad_reward(config: TrainConfig, store: Any, resume_from: Path | None = None) -> Any:
    """GAD's discriminator reward: the resumed checkpoint's discriminator, else a saved one named
    by `gad.discriminator_checkpoint`, else a fresh one on `gad.discriminator_model` (default:
    the initial student). Teacher answers (K = `teacher.num_answers`) come from the store."""
    import torch

    from ropd.integrations.trl.gad import DISCRIMINATOR_DIR, Discriminator, GadReward
    from ropd.integrations.trl.student import resolve_student
    from ropd.teacher.references import StoreReferences

    section = config.ropd
    gad = section.gad
    dtype = torch.bfloat16 if config.trl.get("bf16") else torch.float32
    options = {
        "max_grad_norm": gad.max_grad_norm,
        "max_length": gad.max_length,
        "batch_size": gad.batch_size,
        "dtype": dtype,
    }
    saved = resume_from / DISCRIMINATOR_DIR if resume_from is not None else None
    if saved is None or not saved.is_dir():
        saved = Path(gad.discriminator_checkpoint) if gad.discriminator_checkpoint else None
    if saved is not None:
        if not saved.is_dir():
            raise ConfigError(
                f"{config.source}: field 'ropd.gad.discriminator_checkpoint': no folder {saved}"
            )
        discriminator = Discriminator.load(saved, learning_rate=gad.learning_rate, **options)
    else:
        lora = {"r": gad.lora_r, "lora_alpha": gad.lora_alpha} if gad.lora else None
        discriminator = Discriminator.build(
            resolve_student(gad.discriminator_model or section.student),
            lora=lora,
            learning_rate=gad.learning_rate,
            **options,
        )
    answers = StoreReferences.from_config(store, section.teacher, section.k)
    return GadReward(discriminator, answers.lookup, warmup_steps=gad.warmup_discriminator_steps)


# TRL fields of the main run that the warm-up SFT does not take over (its own folder, length
# and saving; GRPO-only meanings)
_WARMUP_OWN = {"output_dir", "max_steps", "num_train_epochs", "save_steps", "save_strategy",
               "run_name", "remove_unused_columns", "logging_dir"}  # fmt: skip


def warmup_student(
    config: TrainConfig, prompts: Sequence[TrainPrompt], store: Any, student: str
) -> str:
    """GAD's warm-up: `gad.warmup_sft_steps` of SFT on the teacher's answers, saved (merged, with
    LoRA) to `<output_dir>/warmup-sft/final` and used as the adversarial stage's student. A
    finished warm-up (a resumed run) is reused, never trained again."""
    steps = config.ropd.gad.warmup_sft_steps
    if steps == 0:
        return student
    final = config.output_dir / WARMUP_DIR / "final"
    if (final / "config.json").is_file():
        return str(final)
    import trl

    from ropd.integrations.trl import trainer as trl_trainer
    from ropd.teacher.references import StoreReferences
    from ropd.train.config import NOT_SHARED, trl_fields

    section = config.ropd
    sft_fields = trl_fields("sft")
    shared = {
        k: v for k, v in config.trl.items()
        if k in sft_fields and k not in _WARMUP_OWN and k not in NOT_SHARED
    }  # fmt: skip
    args = trl.SFTConfig(
        **shared,
        output_dir=str(config.output_dir / WARMUP_DIR),
        max_steps=steps,
        save_strategy="no",
    )
    answers = StoreReferences.from_config(store, section.teacher, section.k)
    pairs = [(p, answer) for p in prompts for answer in answers.lookup(p.messages)]
    if not pairs:
        raise ConfigError(f"{config.source}: GAD's warm-up SFT found no teacher answer to learn")
    trainer = trl_trainer.sft_trainer(student, args, pairs, lora=section.lora)
    trainer.train()
    model = trainer.model
    if section.lora is not None:
        model = model.merge_and_unload()
    if _is_main_process():
        model.save_pretrained(str(final))
        trainer.processing_class.save_pretrained(str(final))
    trainer.accelerator.wait_for_everyone()
    return str(final)


def _nothing_to_do(plan: RunPlan) -> RunReport:
    config = plan.config
    from ropd.integrations.trl.trainer import checkpoints

    final = config.output_dir / "final"
    page = config.output_dir / "report.html"
    return RunReport(
        method=config.method,
        output_dir=config.output_dir,
        run_id=plan.run_id,
        final_model=final if final.is_dir() else None,
        report=page if page.is_file() else None,
        checkpoints=checkpoints(config.output_dir),
        global_step=plan.finished_at or 0,
        nothing_to_do=True,
    )


def run(
    config: TrainConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    client: ChatClient | None = None,
    probe: bool = True,
    plan: RunPlan | None = None,
) -> RunReport:
    """Train as configured; returns where everything went. Finished checkpoints are never lost.

    The folder and run id come from `plan` (`plan_run`, which the CLI calls to print them
    first) or are planned here from `resume`/`overwrite`; a folder holding another run is
    refused with `ConfigError` before anything loads, and `--resume` of a finished run
    returns at once (`RunReport.nothing_to_do`).
    `client` answers every judge and teacher request instead of the configured endpoints
    (tests, custom transports). Before any model or data loads, every problem of the machine
    is collected and raised as one `ConfigError` (`train/preflight.py`: TRL's own checks,
    packages the options need, key variables, and with `probe` the judge endpoints).
    """
    from ropd.integrations.trl.trainer import checkpoints, close_reward, last_checkpoint
    from ropd.plan.files import write_plan_file
    from ropd.train.preflight import check_ready

    started = time.monotonic()
    if plan is None:
        plan = plan_run(config, resume=resume, overwrite=overwrite)
        for note in plan.notes if _is_main_process() else ():
            print(note)
    if plan.nothing_to_do:
        if _is_main_process():
            print(plan.finished_message())
        return _nothing_to_do(plan)
    config, run_id = plan.config, plan.run_id
    check_ready(config, probe=probe, teacher=False, endpoints=client is None)
    prompts = load_prompts(config.ropd.data, rubrics=config.method == "rar")
    from accelerate import PartialState

    with PartialState().main_process_first():  # the main process builds, the others wait
        if plan.replaces is not None and _is_main_process():
            remove_run(config)
        store = prepare_teacher(config, prompts, client)
    resume_from = last_checkpoint(config.output_dir) if plan.resume else None
    if plan.resume and resume_from is None and not plan.notes:
        print(f"no checkpoint in {config.output_dir}: run {run_id} starts from the beginning")
    _write_run_file(config, run_id)
    if _is_main_process():  # plan.json: what this run was planned to spend (`ropd plan`)
        write_plan_file(config, prompts)

    trainer, reward = build_trainer(config, prompts, store, run_id, client, resume_from)
    from ropd.integrations.trl.run_log import leave_out_unjudged_metrics, log_ropd_config

    log_ropd_config(trainer, {**_scrubbed_section(config), "run_id": run_id})
    leave_out_unjudged_metrics(trainer)
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
    if _is_main_process() and hasattr(reward, "discriminator"):  # GAD: its discriminator too
        from ropd.integrations.trl.gad import DISCRIMINATOR_DIR

        reward.discriminator.save(final / DISCRIMINATOR_DIR)
    stopped = reward.stop_message if reward is not None else None
    step = trainer.state.global_step
    _write_run_file(config, run_id, finished=stopped is None, global_step=step)
    logs = config.output_dir / "runs"
    traces = config.traces_path if config.method in GRPO_METHODS else None
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
        global_step=step,
        seconds=time.monotonic() - started,
        stopped=stopped,
        metrics=dict(trainer.state.log_history[-1]) if trainer.state.log_history else {},
        scoring=run_scoring(traces, run_id) if traces is not None and _is_main_process() else None,
    )
