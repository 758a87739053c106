"""Training configs: TRL's own fields at the top level plus a `ropd:` section.

A user who knows TRL recognises the top level (`learning_rate`, `num_generations`, `loss_type`,
...): every key is checked against the real `GRPOConfig` / `SFTConfig` / `DistillationConfig`
dataclass fields and their types, and the `ropd:` section is a pydantic model. Everything is
validated before a model loads, and every error names the file, the line and the field.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from ropd.config_file import Locator, config_error, read_with_overrides
from ropd.errors import ConfigError
from ropd.llm.config import LOCAL, RoleConfig
from ropd.reward.config import OVDConfig, RaRConfig, ScorerConfig, TJudgeConfig
from ropd.run_config import RunConfig
from ropd.teacher.config import TeacherConfig

Method = Literal["ropd", "tjudge", "ovd", "rar", "sft", "lopd", "exopd", "gad"]
METHODS: tuple[str, ...] = typing.get_args(Method)
GRPO_METHODS = ("ropd", "tjudge", "ovd", "rar")  # trained by GRPO on a judge's rewards
TRL_CLASS_BY_METHOD = {
    "ropd": "GRPOConfig",
    "tjudge": "GRPOConfig",
    "ovd": "GRPOConfig",
    "rar": "GRPOConfig",
    "sft": "SFTConfig",
    "lopd": "DistillationConfig",
    "exopd": "DistillationConfig",  # TRL's on-policy distillation, with ExOPD's loss
    "gad": "GRPOConfig",  # GRPO on a trained discriminator's scores (no judge)
}
ADVERSARIAL_METHODS = ("gad",)  # GRPO on a discriminator trained alongside the student
WHITE_BOX_METHODS = ("lopd", "exopd")  # a local teacher model scores the student's tokens
# Fields whose meaning differs between trainers: never forwarded across them implicitly.
# (GRPO's `beta` is a KL coefficient; the distillation trainer's `beta` picks the divergence.)
NOT_SHARED = {"beta"}
DEFAULT_RUNS_DIR = "runs"  # where runs go when no output_dir is named: runs/<run id>


class DataConfig(BaseModel):
    """Where the training prompts come from and which fields hold what."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(
        default="sample",
        description="`sample` (bundled math set), a local .jsonl/.json/.parquet/.csv file, "
        "or a Hugging Face dataset id",
    )
    split: str = "train"
    subset: str | None = None
    prompt_field: str = "prompt"
    answer_field: str | None = "answer"
    id_field: str | None = "id"
    rubric_field: str = Field(
        default="rubric",
        description="The column holding each row's own rubric (RaR layout: items with "
        "title, description and weight); read by method rar only, which needs it on every row",
    )
    system_prompt: str | None = None
    limit: int | None = Field(default=None, ge=1)


class LopdConfig(BaseModel):
    """The logit-based baseline: a white-box local teacher sharing the student's tokenizer."""

    model_config = ConfigDict(extra="forbid")

    teacher_model: str | None = Field(
        default=None, description="HF id or folder (or `embedded`) of the white-box teacher"
    )


class ExopdConfig(BaseModel):
    """ExOPD (Yang et al., arXiv 2602.12125): on-policy distillation as KL-constrained RL with
    the per-token reward λ (log π_teacher − log π_ref), λ > 1 extrapolating past the teacher."""

    model_config = ConfigDict(extra="forbid")

    teacher_model: str | None = Field(
        default=None,
        description="HF id or folder (or `embedded`) of the white-box teacher; it must share "
        "the student's tokenizer",
    )
    lambda_: float = Field(
        default=1.25,
        gt=0,
        description="reward scale λ: 1 is plain on-policy distillation, above 1 extrapolates "
        "(the paper's ExOPD), between 0 and 1 interpolates toward the reference",
    )
    reference: str = Field(
        default="student_init",
        min_length=1,
        description="the reference model π_ref: `student_init` (the student's initial weights, "
        "frozen), `teacher` (no extrapolation), or an HF id / folder / `embedded`",
    )


class GadConfig(BaseModel):
    """GAD (Ye et al., arXiv 2511.10643): a discriminator trained by a Bradley-Terry loss to rank
    the teacher's answer above the student's; the student's GRPO reward is its score.

    Defaults follow the paper's public scripts where they say (learning rate 1e-6, gradient
    clipping 0.2); the rest is chosen here and documented in docs/training.md."""

    model_config = ConfigDict(extra="forbid")

    discriminator_model: str | None = Field(
        default=None,
        description="HF id or folder (or `embedded`) the discriminator starts from (a scalar "
        "head on a causal LM's body); null: the student model, as in the paper",
    )
    discriminator_checkpoint: str | None = Field(
        default=None,
        description="a saved discriminator folder (`<checkpoint>/discriminator`) to start from "
        "instead (e.g. after a warm-up run); a resumed run takes its checkpoint's own",
    )
    lora: bool = Field(
        default=True,
        description="train LoRA adapters and the head only (false: the whole model, as the "
        "paper's full fine-tune)",
    )
    lora_r: int = Field(default=16, ge=1, description="LoRA rank of the discriminator")
    lora_alpha: int = Field(default=32, ge=1, description="LoRA alpha of the discriminator")
    learning_rate: float = Field(
        default=1e-6, gt=0, description="the discriminator's AdamW learning rate (paper: 1e-6)"
    )
    max_grad_norm: float | None = Field(
        default=0.2, gt=0, description="gradient clipping of the discriminator (paper: 0.2)"
    )
    max_length: int = Field(
        default=4096,
        ge=16,
        description="tokens of prompt + answer the discriminator reads "
        "(longer texts lose their beginning; the scored last token is kept)",
    )
    batch_size: int = Field(default=8, ge=1, description="texts per discriminator forward pass")
    warmup_sft_steps: int = Field(
        default=0,
        ge=0,
        description="student SFT steps on the teacher's answers before the adversarial stage "
        "(saved to <output_dir>/warmup-sft; 0: none, e.g. when `student` is already warmed up)",
    )
    warmup_discriminator_steps: int = Field(
        default=10,
        ge=0,
        description="first training steps whose reward is 0 (the student does not move) while "
        "the discriminator learns on the initial student's answers (paper's critic warm-up: 10)",
    )


class RopdSection(RunConfig):
    """The `ropd:` section of a training config: the run configuration (shared with every
    command and verl's reward manager) plus the student, data, baselines and LoRA."""

    method: Method = Field(  # type: ignore[assignment] - RunConfig's, narrowed to the eight
        default="ropd",
        description="What trains the student: ropd, tjudge, ovd, rar, sft, lopd, exopd or gad.",
    )
    student: str = Field(default="embedded", description="HF id, model folder, or `embedded`")
    data: DataConfig = Field(default_factory=DataConfig)
    lopd: LopdConfig = Field(default_factory=LopdConfig)
    exopd: ExopdConfig = Field(default_factory=ExopdConfig)
    gad: GadConfig = Field(default_factory=GadConfig)
    lora: dict[str, Any] | None = Field(
        default=None,
        description="train LoRA adapters: keyword arguments of peft.LoraConfig (e.g. {r: 16})",
    )
    traces: Path | None = Field(default=None, description="trace store; default <output_dir>")
    trl_overrides: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="TRL fields applied only when the named method runs, e.g. {lopd: {beta: 1}}",
    )

    @model_validator(mode="after")
    def _check(self) -> RopdSection:
        unknown = set(self.trl_overrides) - set(METHODS)
        if unknown:
            raise ValueError(f"trl_overrides: unknown method(s) {sorted(unknown)}; use {METHODS}")
        return self

    @property
    def needs_teacher_store(self) -> bool:
        if self.method in ("sft", "gad"):
            return True
        if self.method == "ropd":
            return self.scorer.num_teacher_refs != 0
        if self.method == "tjudge":
            return self.tjudge.num_references > 0
        if self.method == "rar":
            return self.rar.num_teacher_refs != 0
        return False


@dataclasses.dataclass
class TrainConfig:
    """A validated config: the `ropd:` section and the TRL fields for the chosen method."""

    ropd: RopdSection
    trl: dict[str, Any]
    dropped: dict[str, str]
    source: str
    # no output_dir was named: the runner files the run under `runs/<run id>` (train/runner.py)
    output_dir_default: bool = False

    @property
    def method(self) -> str:
        return self.ropd.method

    @property
    def output_dir(self) -> Path:
        return Path(self.trl["output_dir"])

    @property
    def traces_path(self) -> Path:
        return self.ropd.traces or self.output_dir / "traces.db"

    def trl_args(self) -> Any:
        """Build the real TRL config object (its own `__post_init__` checks run here)."""
        cls = trl_class(self.method)
        try:
            return cls(**self.trl)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{self.source}: TRL rejected the settings: {exc}") from exc


# -- TRL field checks ---------------------------------------------------------------------------


def trl_class(method: str) -> type:
    import trl

    return getattr(trl, TRL_CLASS_BY_METHOD[method])


@functools.cache
def trl_fields(method: str) -> dict[str, Any]:
    """Field name -> resolved type of the TRL config dataclass used by `method`."""
    cls = trl_class(method)
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 - unresolvable annotations: fall back to names only
        hints = {}
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(cls) if f.init}


@functools.cache
def _adapter(tp: Any) -> TypeAdapter[Any] | None:
    try:
        return TypeAdapter(tp)
    except Exception:  # noqa: BLE001 - a type pydantic cannot check is left to TRL itself
        return None


def check_trl_value(method: str, name: str, value: Any) -> Any:
    """Validate one TRL field against its dataclass annotation; returns the (coerced) value."""
    adapter = _adapter(trl_fields(method)[name])
    if adapter is None or value is None:
        return value
    coerced = adapter.validate_python(value)
    # Keep the user's original value unless pydantic had to convert it (e.g. "1e-6" -> float).
    return value if type(coerced) is type(value) else coerced


# -- loading ------------------------------------------------------------------------------------


def load_config(
    path: str | Path | None,
    overrides: dict[str, Any] | None = None,
    *,
    check_paths: bool = True,
) -> TrainConfig:
    """Read, override and validate a training config. Nothing heavy is loaded here.

    `overrides` maps dotted keys to values (`{"ropd.method": "sft", "max_steps": 2}`).
    """
    data, loc = read_with_overrides(path, overrides)
    return validate(data, loc, check_paths=check_paths)


def _trl_problem(loc: Locator, path: tuple[str, ...], value: Any, exc: ValidationError) -> str:
    return str(loc.error(path, f"{exc.errors()[0]['msg']} (got {value!r})"))


def validate(data: dict[str, Any], loc: Locator, *, check_paths: bool = True) -> TrainConfig:
    """The validated config, or one `ConfigError` listing every problem of the file at once.

    The `ropd:` section, each TRL field and the cross-field checks are all looked at before
    anything is reported: fixing a config should take one run, not one run per mistake.
    """
    problems: list[str] = []
    raw_ropd = data.pop("ropd", None) or {}
    section: RopdSection | None = None
    if not isinstance(raw_ropd, dict):
        problems.append(str(loc.error(("ropd",), "must be a mapping")))
        raw_ropd = {}
    else:
        try:
            section = RopdSection.model_validate(raw_ropd)
        except ValidationError as exc:
            problems.extend(loc.pydantic_problems(("ropd",), exc, RopdSection))
    if section is not None:
        method: str = section.method
        overrides: Any = section.trl_overrides
    else:  # keep checking the TRL fields against the trainer the file most likely means
        raw_method = raw_ropd.get("method")
        method = raw_method if raw_method in METHODS else "ropd"
        overrides = raw_ropd.get("trl_overrides")
        overrides = overrides if isinstance(overrides, dict) else {}

    known_any = set().union(*(trl_fields(m) for m in ("ropd", "sft", *WHITE_BOX_METHODS)))
    target = trl_fields(method)
    trl_values: dict[str, Any] = {}
    dropped: dict[str, str] = {}
    for name, value in data.items():
        if name not in known_any:
            close = difflib.get_close_matches(name, sorted(known_any) + ["ropd"], n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            message = f"unknown field: not a TRL training field nor 'ropd'{hint}"
            problems.append(str(loc.error((name,), message)))
            continue
        if name not in target or (name in NOT_SHARED and method in ("sft", *WHITE_BOX_METHODS)):
            dropped[name] = f"not used by {TRL_CLASS_BY_METHOD[method]}"
            continue
        try:
            trl_values[name] = check_trl_value(method, name, value)
        except ValidationError as exc:
            problems.append(_trl_problem(loc, (name,), value, exc))
    method_overrides = overrides.get(method) or {}
    if isinstance(method_overrides, dict):
        for name, value in method_overrides.items():
            path = ("ropd", "trl_overrides", method, name)
            if name not in target:
                message = f"unknown field for {TRL_CLASS_BY_METHOD[method]}"
                problems.append(str(loc.error(path, message)))
                continue
            try:
                trl_values[name] = check_trl_value(method, name, value)
            except ValidationError as exc:
                problems.append(_trl_problem(loc, path, value, exc))

    if method in (*GRPO_METHODS, *ADVERSARIAL_METHODS):
        g = trl_values.get("num_generations", 8)
        if isinstance(g, int) and g < 2:
            message = "GRPO needs at least 2 generations per prompt"
            problems.append(str(loc.error(("num_generations",), message)))
    if section is None:
        problems.extend(_role_problems(_valid_parts(raw_ropd), raw_ropd, loc))
        raise config_error(loc.source, problems)
    named_dir = "output_dir" in trl_values
    _apply_defaults(method, trl_values)
    config = TrainConfig(
        ropd=section,
        trl=trl_values,
        dropped=dropped,
        source=loc.source,
        output_dir_default=not named_dir,
    )
    problems.extend(_consistency_problems(config, loc, check_paths=check_paths))
    problems.extend(_role_problems(section, raw_ropd, loc))
    if problems:
        raise config_error(loc.source, problems)
    return config


def _apply_defaults(method: str, values: dict[str, Any]) -> None:
    """Defaults that make a CPU laptop run sensible without changing TRL's meaning elsewhere."""
    import importlib.util

    import torch

    # a placeholder: with no output_dir named, each run gets its own `runs/<run id>` folder
    values.setdefault("output_dir", f"{DEFAULT_RUNS_DIR}/{method}")
    values.setdefault("logging_steps", 1)
    if "report_to" not in values:
        has_tb = importlib.util.find_spec("tensorboard") is not None
        values["report_to"] = ["tensorboard"] if has_tb else "none"
    if not torch.cuda.is_available():
        values.setdefault("use_cpu", True)
        values.setdefault("bf16", False)
    if method == "lopd":
        values.setdefault("beta", 1.0)  # reverse KL: LOPD's per-token objective
    if method in (*GRPO_METHODS, *ADVERSARIAL_METHODS, *WHITE_BOX_METHODS):
        values.setdefault("remove_unused_columns", False)


class _Parts(BaseModel):
    """The role-holding parts of a `ropd:` section that validated on their own."""

    teacher: TeacherConfig | None = None
    scorer: ScorerConfig | None = None
    tjudge: TJudgeConfig | None = None
    ovd: OVDConfig | None = None
    rar: RaRConfig | None = None


def _valid_parts(raw: dict[str, Any]) -> _Parts:
    """Each role-holding part that validates, so its roles are checked even when the section
    as a whole has errors elsewhere (every problem in one run)."""
    parts = _Parts()
    for name, model in (("teacher", TeacherConfig), ("scorer", ScorerConfig),
                        ("tjudge", TJudgeConfig), ("ovd", OVDConfig),
                        ("rar", RaRConfig)):  # fmt: skip
        try:
            setattr(parts, name, model.model_validate(raw.get(name) or {}))
        except ValidationError:
            pass  # already reported by the section's own validation
    return parts


def roles_by_path(section: RopdSection | _Parts) -> list[tuple[tuple[str, ...], RoleConfig]]:
    """Every role of the section with where it sits in the YAML (used or not by the method)."""
    out: list[tuple[tuple[str, ...], RoleConfig]] = []
    if section.teacher is not None:
        out.append((("ropd", "teacher", "role"), section.teacher.role))
    if section.scorer is not None:
        out.append((("ropd", "scorer", "rubricator"), section.scorer.rubricator))
        out.append((("ropd", "scorer", "verifier"), section.scorer.verifier))
    if section.tjudge is not None:
        out.append((("ropd", "tjudge", "judge"), section.tjudge.judge))
    if section.ovd is not None:
        out.append((("ropd", "ovd", "judge"), section.ovd.judge))
    if section.rar is not None:
        out.append((("ropd", "rar", "rubricator"), section.rar.rubricator))
        out.append((("ropd", "rar", "verifier"), section.rar.verifier))
    return out


def model_without_endpoint(role: RoleConfig) -> bool:
    """A model named with no endpoint, and the embedded model not asked for (`base_url: local`).

    Such a role would silently be served by the embedded 135M model under the configured name.
    """
    named = "model" in role.model_fields_set and role.model != LOCAL
    return named and role.base_url is None and "base_url" not in role.model_fields_set


def _role_problems(section: RopdSection | _Parts, raw: dict[str, Any], loc: Locator) -> list[str]:
    problems = []
    for path, role in roles_by_path(section):
        if not model_without_endpoint(role):
            continue
        where = (*path, "model")
        two_roles = path[1] in ("scorer", "rar")  # sections whose `judge` sets both roles
        part = raw.get(path[1]) if two_roles and isinstance(raw.get(path[1]), dict) else {}
        own = part.get(path[-1]) if two_roles else None
        if two_roles and not (isinstance(own, dict) and "model" in own):
            where = ("ropd", path[1], "judge", "model")  # set through `judge`
        problems.append(
            str(
                loc.error(
                    where,
                    f"model {role.model!r} needs a base_url (the endpoint serving it); for the "
                    "embedded local model leave model out (base_url: local names no model)",
                )
            )
        )
    return list(dict.fromkeys(problems))  # a `judge` mistake is reported once, not per role


def _consistency_problems(config: TrainConfig, loc: Locator, *, check_paths: bool) -> list[str]:
    section = config.ropd
    problems: list[ConfigError] = []
    if section.method == "lopd" and not section.lopd.teacher_model:
        problems.append(
            loc.error(
                ("ropd", "lopd", "teacher_model"),
                "the lopd baseline needs a white-box teacher model (HF id, folder or `embedded`)",
            )
        )
    if section.method == "exopd" and not section.exopd.teacher_model:
        problems.append(
            loc.error(
                ("ropd", "exopd", "teacher_model"),
                "exopd needs a white-box teacher model sharing the student's tokenizer "
                "(HF id, folder or `embedded`)",
            )
        )
    if section.needs_teacher_store:
        store = section.teacher.store
        if store is None:
            problems.append(
                loc.error(
                    ("ropd", "teacher", "store"),
                    f"method {section.method!r} needs a teacher store path",
                )
            )
        elif check_paths and not section.teacher.build_missing and not Path(store).exists():
            problems.append(
                loc.error(
                    ("ropd", "teacher", "store"),
                    f"teacher store {store} does not exist; build it with `ropd teacher build` "
                    "or set ropd.teacher.build_missing: true",
                )
            )
    if check_paths:
        source = section.data.source
        looks_like_file = source.endswith((".jsonl", ".json", ".parquet", ".csv"))
        if looks_like_file and not Path(source).is_file():
            problems.append(
                loc.error(("ropd", "data", "source"), f"data file {source} does not exist")
            )
    return [str(problem) for problem in problems]
