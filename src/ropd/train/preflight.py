"""Is this machine ready to run a training config? Every problem, found before anything loads.

A config can be valid and still unable to run here: `use_vllm: true` without vLLM installed,
`report_to: wandb` without wandb, an API-key variable that is not set, a judge endpoint that is
down. Each of these used to surface one at a time, minutes into a run (after the student loaded
and teacher answers were built). `--dry-run` and `ropd.train.runner.run` both collect them all
here and report them in one error.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Sequence
from pathlib import Path

from ropd.errors import ConfigError, RopdError
from ropd.llm.config import RoleConfig
from ropd.train.config import TrainConfig

TRAIN_EXTRA = 'pip install "ropd[train]"'
# report_to value -> (importable modules, any one will do; the install command)
REPORTERS: dict[str, tuple[tuple[str, ...], str]] = {
    "tensorboard": (("tensorboard", "tensorboardX"), "pip install tensorboard"),
    "wandb": (("wandb",), "pip install wandb"),
    "mlflow": (("mlflow",), "pip install mlflow"),
    "comet_ml": (("comet_ml",), "pip install comet_ml"),
    "clearml": (("clearml",), "pip install clearml"),
    "trackio": (("trackio",), "pip install trackio"),
    "swanlab": (("swanlab",), "pip install swanlab"),
    "dvclive": (("dvclive",), "pip install dvclive"),
    "neptune": (("neptune",), "pip install neptune"),
    "codecarbon": (("codecarbon",), "pip install codecarbon"),
    "azure_ml": (("azureml",), "pip install azureml-core"),
    "dagshub": (("dagshub",), "pip install dagshub"),
    "flyte": (("flytekit",), "pip install flytekit"),
}
# TRL field -> (module, install command) when the field is switched on
SWITCHES: dict[str, tuple[str, str]] = {
    "use_vllm": ("vllm", "pip install vllm"),
    "use_liger_kernel": ("liger_kernel", "pip install liger-kernel"),
}


def _importable(*modules: str) -> bool:
    for module in modules:
        try:
            if importlib.util.find_spec(module) is not None:
                return True
        except (ImportError, ValueError):  # a parent package missing, or a broken install
            continue
    return False


def used_roles(config: TrainConfig, *, teacher: bool = True) -> list[RoleConfig]:
    """The judge roles the configured method calls (and the teacher, when it builds answers)."""
    section = config.ropd
    roles: list[RoleConfig] = []
    if teacher and section.needs_teacher_store and section.teacher.build_missing:
        roles.append(section.teacher.role)
    if section.method == "ropd":
        roles.extend(section.scorer.roles())
    elif section.method in ("tjudge", "ovd", "rar"):
        roles.extend(section.judge_config.roles())
    return roles


def dependency_problems(config: TrainConfig, roles: Sequence[RoleConfig] = ()) -> list[str]:
    """Packages the configured options need that are not installed (with the install command)."""
    problems: list[str] = []
    trl = config.trl
    source = config.source
    for module in ("torch", "transformers", "accelerate", "datasets"):
        if not _importable(module):
            problems.append(f"{source}: training needs {module}: {TRAIN_EXTRA}")
    for field, (module, install) in SWITCHES.items():
        if trl.get(field) and not _importable(module):
            problems.append(f"{source}: field '{field}': true needs {module}: {install}")
    report_to = trl.get("report_to")
    names = [report_to] if isinstance(report_to, str) else list(report_to or [])
    for name in names:
        if name in ("none", "all"):
            continue
        known = REPORTERS.get(name)
        if known is not None and not _importable(*known[0]):
            problems.append(f"{source}: field 'report_to': {name} is not installed: {known[1]}")
    if trl.get("deepspeed") and not _importable("deepspeed"):
        problems.append(f"{source}: field 'deepspeed' needs deepspeed: pip install deepspeed")
    section = config.ropd
    if (
        section.method == "ovd"
        and section.ovd.outcome_weight > 0
        and not _importable("math_verify")
    ):
        problems.append(
            f"{source}: field 'ropd.ovd.outcome_weight' needs math-verify (the gold check): "
            "pip install 'ropd[eval]'"
        )
    if section.lora is not None and not _importable("peft"):
        problems.append(f"{source}: field 'ropd.lora' needs peft: {TRAIN_EXTRA}")
    models = [("ropd.student", section.student)]
    if section.method == "lopd" and section.lopd.teacher_model:
        models.append(("ropd.lopd.teacher_model", section.lopd.teacher_model))
    if section.method == "exopd" and section.exopd.teacher_model:
        models.append(("ropd.exopd.teacher_model", section.exopd.teacher_model))
        if section.exopd.reference not in ("student_init", "teacher"):
            models.append(("ropd.exopd.reference", section.exopd.reference))
    if section.method == "gad":
        if section.gad.discriminator_model:
            models.append(("ropd.gad.discriminator_model", section.gad.discriminator_model))
        if section.gad.lora and not _importable("peft"):
            problems.append(f"{source}: field 'ropd.gad.lora' needs peft: {TRAIN_EXTRA}")
        saved = section.gad.discriminator_checkpoint
        if saved and not (Path(saved) / "gad_state.json").is_file():
            problems.append(
                f"{source}: field 'ropd.gad.discriminator_checkpoint': {saved} holds no saved "
                "discriminator (gad_state.json)"
            )
    for field, name in models:
        problems.extend(_embedded_student_problems(source, field, name))
    if section.method == "exopd" and not problems:
        problems.extend(tokenizer_problems(config))
    if any(role.base_url is None for role in roles):
        problems.extend(_embedded_server_problems(source, roles))
    return problems


def tokenizer_problems(config: TrainConfig) -> list[str]:
    """ExOPD's teacher (and a named reference) must share the student's tokenizer: checked
    from folders and the Hugging Face cache only (nothing is downloaded; the run checks again)."""
    from ropd.integrations.trl import student as students
    from ropd.integrations.trl.exopd import tokenizer_mismatch

    section = config.ropd

    def local(name: str) -> str:
        embedded = students.cache_root() / "models" / students.EMBEDDED_DIRNAME
        return str(embedded) if name == students.EMBEDDED else name

    others = [("ropd.exopd.teacher_model", "teacher", section.exopd.teacher_model)]
    if section.exopd.reference not in ("student_init", "teacher"):
        others.append(("ropd.exopd.reference", "reference", section.exopd.reference))
    problems = []
    for field, role, name in others:
        if name is None or local(name) == local(section.student):
            continue
        mismatch = tokenizer_mismatch(local(section.student), local(name), role, local_only=True)
        if mismatch:
            problems.append(f"{config.source}: field '{field}': {mismatch}")
    return problems


def gad_line(config: TrainConfig) -> str:
    """GAD's dry-run line: the discriminator it trains (model, size, LoRA or not) and what it
    ranks (the stored teacher answers against the student's)."""
    section = config.ropd
    gad = section.gad
    if gad.discriminator_checkpoint:
        model = f"saved discriminator {gad.discriminator_checkpoint}"
        name = None
    else:
        name = gad.discriminator_model or section.student
        model = f"discriminator on {name}" + ("" if gad.discriminator_model else " (the student)")
    size = model_size(name) if name else None
    sized = f", {size / 1e6:,.1f}M parameters" if size else ""
    how = f"LoRA r={gad.lora_r} alpha={gad.lora_alpha}" if gad.lora else "full fine-tune"
    warm = (
        f"warm-up {gad.warmup_sft_steps} SFT steps, then {gad.warmup_discriminator_steps} "
        "discriminator-only steps (reward 0)"
    )
    max_steps = config.trl.get("max_steps")
    if isinstance(max_steps, int) and 0 < max_steps <= gad.warmup_discriminator_steps:
        warm += f" (all of max_steps={max_steps}: the student does not move)"
    return (
        f"gad         {model}{sized} ({how}, lr {gad.learning_rate:g}), trained by "
        f"Bradley-Terry: K={section.k} teacher answers from the store outrank each student "
        f"answer; reward = its score; {warm}; no judge"
    )


def model_size(name: str) -> int | None:
    """Parameters of a model (as a one-label sequence scorer), from its config alone (read from a
    folder or the Hugging Face cache; nothing downloaded, no weights loaded); None if unknown."""
    from ropd.integrations.trl import student as students

    if name == students.EMBEDDED:
        name = str(students.cache_root() / "models" / students.EMBEDDED_DIRNAME)
    try:
        from accelerate import init_empty_weights
        from transformers import AutoConfig, AutoModelForSequenceClassification

        model_config = AutoConfig.from_pretrained(name, local_files_only=True)
        model_config.num_labels = 1
        with init_empty_weights():
            model = AutoModelForSequenceClassification.from_config(model_config)
        return sum(p.numel() for p in model.parameters())
    except (OSError, ValueError, KeyError, ImportError):
        return None


def _embedded_student_problems(source: str, field: str, name: str) -> list[str]:
    from ropd.integrations.trl import student

    if name != student.EMBEDDED:
        return []
    if (student.cache_root() / "models" / student.EMBEDDED_DIRNAME / "config.json").is_file():
        return []  # converted before: nothing else is read
    problems = []
    try:
        student.embedded_gguf_path()
    except FileNotFoundError as error:
        problems.append(f"{source}: field '{field}': embedded: {error}")
    if not _importable("gguf"):
        problems.append(
            f"{source}: field '{field}': embedded needs gguf to read the model: {TRAIN_EXTRA}"
        )
    return problems


def _embedded_server_problems(source: str, roles: Sequence[RoleConfig]) -> list[str]:
    from ropd.llm.local_server import default_model_path, require_llama_server

    names = ", ".join(dict.fromkeys(role.name for role in roles if role.base_url is None))
    problems = []
    for check in (require_llama_server, default_model_path):
        try:
            check()
        except RopdError as error:
            problems.append(f"{source}: roles {names} use the embedded model: {error}")
    return problems


# a model name's size in billions of parameters (`Qwen/Qwen3-4B`, `Llama-3.1-8B-Instruct`)
_BILLIONS = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)[bB](?![a-zA-Z])")
CPU_BILLIONS = 1.0  # a student this large trains on a CPU at hours per step
CPU_COMPLETION_TOKENS = 2048  # completions this long take minutes each to sample on a CPU


def cpu_warnings(config: TrainConfig, *, has_gpu: bool | None = None) -> list[str]:
    """Why a config that starts here would not finish in useful time: no GPU, and a student of
    a billion parameters or more (by its name) or long completions. Not errors: a dry run says
    that it checked the run starts, not that it is fast."""
    if has_gpu is None:
        import torch

        has_gpu = torch.cuda.is_available()
    if has_gpu:
        return []
    warnings = []
    student = config.ropd.student
    size = _BILLIONS.search(student.rsplit("/", 1)[-1])
    if size is not None and float(size.group(1)) >= CPU_BILLIONS:
        warnings.append(
            f"no GPU here: the student {student} ({size.group(1)}B parameters) would train on the "
            "CPU, at hours per step; run it on a GPU machine (docs/training.md)"
        )
    length = config.trl.get("max_completion_length")
    if isinstance(length, int) and length >= CPU_COMPLETION_TOKENS:
        warnings.append(
            f"no GPU here: completions of up to {length} tokens (max_completion_length) take "
            "minutes each to sample on a CPU"
        )
    if config.trl.get("bf16") is True:
        warnings.append("no GPU here: bf16 training runs on the CPU only slowly, if at all")
    return warnings


def key_problems(roles: Sequence[RoleConfig]) -> list[str]:
    """Key variables of endpoint roles that are not set: one line per variable, naming its roles."""
    unset: dict[str, list[str]] = {}
    for role in roles:
        try:
            role.check_api_key()
        except ConfigError:
            unset.setdefault(str(role.key_variable), []).append(role.name)
    problems = []
    for variable, names in unset.items():
        noun = "role" if len(names) == 1 else "roles"
        problems.append(
            f"environment variable {variable} is not set ({noun} {', '.join(names)} read "
            "their API key from it)"
        )
    return problems


def readiness_problems(
    config: TrainConfig, *, probe: bool = True, teacher: bool = True, endpoints: bool = True
) -> list[str]:
    """Every reason the config cannot run here: TRL's own checks, packages, keys, endpoints.

    `teacher=False` leaves the teacher role out (the run probes it only when answers are
    missing, in the teacher build itself); `endpoints=False` leaves every role out (a client
    was passed in). Endpoints whose key variable is unset are not probed (the unset variable
    is already reported).
    """
    problems: list[str] = []
    try:
        config.trl_args()
    except ConfigError as error:
        problems.append(str(error))
    roles = used_roles(config, teacher=teacher) if endpoints else []
    every_role = used_roles(config) if endpoints else []  # the embedded model may serve any
    problems.extend(dependency_problems(config, every_role))
    keys = key_problems(roles)
    problems.extend(keys)
    if probe:
        from ropd.llm.probe import endpoint_problems
        from ropd.reward.sync import run_blocking

        ready = [role for role in roles if not key_problems([role])]
        problems.extend(run_blocking(endpoint_problems(ready)))
    return problems


def check_ready(
    config: TrainConfig, *, probe: bool = True, teacher: bool = True, endpoints: bool = True
) -> None:
    """Raise one `ConfigError` listing every problem `readiness_problems` finds."""
    problems = readiness_problems(config, probe=probe, teacher=teacher, endpoints=endpoints)
    if problems:
        probed = probe and endpoints and bool(used_roles(config, teacher=teacher))
        raise ConfigError(not_ready_message(config, problems, probe=probed))


def not_ready_message(config: TrainConfig, problems: Sequence[str], *, probe: bool) -> str:
    count = "1 problem" if len(problems) == 1 else f"{len(problems)} problems"
    lines = [f"{config.source} cannot run on this machine as it is ({count}):"]
    lines += [f"  - {problem}" for problem in problems]
    if probe:
        lines.append("  (--no-probe skips the endpoint checks)")
    return "\n".join(lines)
