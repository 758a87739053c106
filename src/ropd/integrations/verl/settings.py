"""What the verl adapter needs to know: the `ropd:` section of `ropd.yaml` plus verl's own config.

verl hands a reward manager its whole Hydra config. Four things come from there: where the ropd
config is (`reward.reward_kwargs.ropd_config`), the group sizes (`actor_rollout_ref.rollout.n`
and `.val_kwargs.n`), the prompts per step (`data.train_batch_size`, which turns groups scored
into step numbers) and the reward workers (`reward.num_workers`, which decides where the one
collector lives); `trainer.project_name`, `.experiment_name` and `.logger` say where the step
metrics go (`tracking.py`). Optional `reward.reward_kwargs.ropd_*` keys tune the adapter itself.

The `ropd:` section is the one `ropd train` reads (`train/config.py` `RopdSection`); this module
sits a layer below it, so it validates the same parts with the same models (`ScorerConfig`,
`TeacherConfig`, ...) and accepts, unused, the keys only `ropd train` needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from ropd.config_file import load_section
from ropd.errors import ConfigError
from ropd.integrations.verl.judge_servers import JudgeServers
from ropd.integrations.verl.judge_servers import check as check_judge_servers
from ropd.integrations.verl.verl_config import flag, select
from ropd.run_config import TRAIN_ONLY_KEYS, RunConfig

DATA_SOURCE = "ropd"  # `data_source` of the rows ropd scores (`ropd verl prepare-data`)
VAL_SPLIT = "val"  # `extra_info.split` of validation rows
DEFAULT_GROUP_TIMEOUT_S = 900.0  # the ceiling of a group's wait for its siblings
DEFAULT_GROUP_TIMEOUT_FLOOR_S = 30.0  # the least a learned wait can be (collector.py)
# Ray's default `max_concurrency` of an async actor (verl's RewardLoopWorker keeps it)
RAY_ASYNC_CONCURRENCY = 1000
DEFAULT_ACTOR_CONCURRENCY = 100_000


class VerlSection(RunConfig):
    """The `ropd:` section as verl's reward manager reads it: the run configuration every
    command reads (same names, same models, same checks, the same K)."""

    method: Literal["ropd", "tjudge", "rar", "ovd"] = "ropd"  # type: ignore[assignment]
    traces: Path | None = Field(
        default=None, description="trace store; default <trainer.default_local_dir>/traces.db"
    )
    # Keys only `ropd train` reads (`TRAIN_ONLY_KEYS`: student, data, lora, the white-box and
    # GAD sections...) are left alone by `read_section`, so one file serves both.


def read_section(path: str | Path) -> VerlSection:
    """The validated `ropd:` section of a config file; every problem named with its field."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: ropd config file not found (reward.reward_kwargs.ropd_config)")
    return load_section(VerlSection, path, ignore=TRAIN_ONLY_KEYS)


def _loggers(config: Any) -> tuple[str, ...]:
    """`trainer.logger`: one backend name or a list of them (verl accepts both)."""
    value = select(config, "trainer.logger", ())
    names = [value] if isinstance(value, str) else list(value)
    return tuple(str(name) for name in names)


def _same_files(config: Any) -> bool:
    """`data.val_files` names the training files (verl's default recipe does)."""

    def names(key: str) -> list[str]:
        value = select(config, key)
        if value is None:
            return []
        return [str(value)] if isinstance(value, str) else [str(v) for v in value]

    train, val = names("data.train_files"), names("data.val_files")
    return bool(train) and sorted(train) == sorted(val)


@dataclass(frozen=True)
class VerlSettings:
    """Everything the adapter reads, resolved once per process (picklable: it goes to the actor)."""

    section: VerlSection
    config_path: str
    group_size: int  # actor_rollout_ref.rollout.n
    val_group_size: int  # actor_rollout_ref.rollout.val_kwargs.n
    groups_per_step: int  # data.train_batch_size
    workers: int  # reward.num_workers
    traces: Path | None
    group_timeout_s: float = DEFAULT_GROUP_TIMEOUT_S
    group_timeout_floor_s: float = DEFAULT_GROUP_TIMEOUT_FLOOR_S
    # `data.val_files` is `data.train_files`: validation rows say split=train (see warnings())
    validates_on_training_rows: bool = False
    data_source: str = DATA_SOURCE
    actor_concurrency: int = DEFAULT_ACTOR_CONCURRENCY
    # verl's tracking (`trainer.project_name`, `.experiment_name`, `.logger`): where the step
    # metrics go besides the log line; `+reward.reward_kwargs.ropd_tracking=false` turns it off
    project_name: str = "ropd"
    experiment_name: str = "ropd"
    loggers: tuple[str, ...] = ()
    # verl's reward-model servers when the run launches them (roles with `base_url: verl`)
    judge_servers: JudgeServers | None = None

    @classmethod
    def from_verl_config(cls, config: Any, router_address: str | None = None) -> VerlSettings:
        """Read and check; `router_address` is the reward router verl hands the manager."""
        kwargs = select(config, "reward.reward_kwargs", {}) or {}
        path = kwargs.get("ropd_config")
        if not path:
            raise ConfigError(
                "RopdRewardManager needs the ropd config: add "
                "+reward.reward_kwargs.ropd_config=ropd.yaml to the verl command"
            )
        section = read_section(path)
        servers = JudgeServers.from_verl_config(config, router_address)
        check_judge_servers(section, config, servers)
        traces = section.traces
        if traces is None:
            run_dir = select(config, "trainer.default_local_dir")
            traces = Path(run_dir) / "traces.db" if run_dir else Path("traces.db")
        return cls(
            section=section,
            config_path=str(path),
            group_size=int(select(config, "actor_rollout_ref.rollout.n", 1)),
            val_group_size=int(select(config, "actor_rollout_ref.rollout.val_kwargs.n", 1)),
            groups_per_step=int(select(config, "data.train_batch_size", 1)),
            workers=int(select(config, "reward.num_workers", 1)),
            traces=traces,
            group_timeout_s=float(kwargs.get("ropd_group_timeout_s", DEFAULT_GROUP_TIMEOUT_S)),
            group_timeout_floor_s=float(
                kwargs.get("ropd_group_timeout_floor_s", DEFAULT_GROUP_TIMEOUT_FLOOR_S)
            ),
            validates_on_training_rows=_same_files(config),
            data_source=str(kwargs.get("ropd_data_source", DATA_SOURCE)),
            actor_concurrency=int(kwargs.get("ropd_actor_concurrency", DEFAULT_ACTOR_CONCURRENCY)),
            project_name=str(select(config, "trainer.project_name", "ropd")),
            experiment_name=str(select(config, "trainer.experiment_name", "ropd")),
            loggers=_loggers(config) if flag(kwargs.get("ropd_tracking", True)) else (),
            judge_servers=servers,
        )

    @property
    def rollouts_per_step(self) -> int:
        return self.groups_per_step * self.group_size

    def warnings(self) -> list[str]:
        """What the reward manager warns about once, at start."""
        found = [w for w in (self.concurrency_warning(),) if w is not None]
        if self.validates_on_training_rows:
            found.append(
                "ropd: data.val_files is data.train_files: validation rows carry split=train, so "
                "ropd groups them as training groups of actor_rollout_ref.rollout.n and traces "
                "them as training. Write a validation split (`ropd verl prepare-data "
                "--val-output val.parquet --val-size N`) and set data.val_files to it."
            )
        return found

    def concurrency_warning(self) -> str | None:
        """Why rollouts of one step might not all be able to wait for their siblings at once.

        A rollout waiting for its group holds one slot of a Ray async actor. With one reward
        worker, that is verl's worker (Ray's default limit); with several, each worker holds its
        share while the named actor holds them all.
        """
        total = self.rollouts_per_step
        if self.workers == 1 and total > RAY_ASYNC_CONCURRENCY:
            return (
                f"ropd: data.train_batch_size x rollout.n = {total} rollouts can wait for their "
                f"groups at once, more than the {RAY_ASYNC_CONCURRENCY} concurrent calls Ray "
                "allows verl's one reward worker; groups would then be cut by "
                "ropd_group_timeout_s. Set reward.num_workers > 1 (ropd then collects groups in "
                "one named actor with a higher limit)."
            )
        if self.workers > 1 and total > min(
            self.actor_concurrency, RAY_ASYNC_CONCURRENCY * self.workers // 2
        ):
            return (
                f"ropd: data.train_batch_size x rollout.n = {total} rollouts can wait for their "
                f"groups at once; the named actor allows {self.actor_concurrency} concurrent "
                f"calls and the {self.workers} reward workers about "
                f"{RAY_ASYNC_CONCURRENCY * self.workers // 2} (Ray's {RAY_ASYNC_CONCURRENCY} "
                "each, halved for random routing). Raise reward.num_workers or "
                "+reward.reward_kwargs.ropd_actor_concurrency, or groups may be cut by "
                "ropd_group_timeout_s."
            )
        return None
