"""ROPD as a verl reward manager: `RopdRewardManager`, loaded by verl's reward loop, no fork.

    reward.reward_manager.source=importlib
    reward.reward_manager.name=RopdRewardManager
    reward.reward_manager.module.path=pkg://ropd.integrations.verl.reward_manager
    +reward.reward_kwargs.ropd_config=ropd.yaml

verl calls `run_single` once per rollout as it finishes, on a random reward worker. This module
only translates: it decodes the response, turns the row into a `reward.batch.Rollout` and hands
it to the run's one `GroupCollector` (in this worker when `reward.num_workers=1`, else in the
named actor of `actor.py`), which scores whole groups with ropd's engine. Rows whose
`data_source` is not ropd's go to verl's default scorer. Every rollout answers with the same
`reward_extra_info` keys (`collector.EXTRA_KEYS`). The row's `reward_model.ground_truth` becomes
the rollout's gold answer, which only the reward-health metrics read; under `method: rar` the
row's `extra_info.rubric` (`ropd verl prepare-data` copies a dataset's rubric there) is the
group's rubric. verl's `global_steps`
(V1 puts it into every rollout's row) becomes the step of the rollout's group.

With verl's reward-model servers on (`reward.reward_model.enable`, the judge on the cluster,
`judge_servers.py`), verl calls a reward manager only when a custom reward function is set:
`+reward.custom_reward_function.path=pkg://ropd.integrations.verl.reward_manager` names this
module, whose `compute_score` is verl's own default scorer (it scores the rows that are not
ropd's, as without the setting).
"""

from __future__ import annotations

from typing import Any

from verl import DataProto
from verl.experimental.reward_loop.reward_manager.base import RewardManagerBase
from verl.experimental.reward_loop.reward_manager.naive import NaiveRewardManager

from ropd import redact
from ropd.data.gold import gold_text
from ropd.data.rubrics import RUBRIC_FIELD
from ropd.errors import ConfigError
from ropd.integrations.verl.collector import GroupCollector, RolloutScore, VerlRollout
from ropd.integrations.verl.engine import group_collector
from ropd.integrations.verl.settings import VAL_SPLIT, VerlSettings
from ropd.llm.types import ChatClient
from ropd.reward.batch import Rollout

log = redact.logger(__name__)
NOT_SCORED_BY_ROPD = RolloutScore(reward=0.0)  # its extra info, beside verl's default score


def _plain(value: Any) -> Any:
    """numpy scalars and 0-d object arrays (how verl's batch carries row values) as Python."""
    return value.item() if hasattr(value, "item") and getattr(value, "ndim", 1) == 0 else value


def _messages(raw: Any) -> list[dict[str, Any]]:
    return [{"role": str(m["role"]), "content": m["content"]} for m in list(raw)]


def _gold(row: Any) -> str | None:
    """The row's `reward_model.ground_truth` as text (reward-health metrics only); None when the
    row has none (`ropd verl prepare-data` writes "" for a record without an answer)."""
    reward_model = _plain(row.get("reward_model"))
    truth = reward_model.get("ground_truth") if isinstance(reward_model, dict) else None
    text = gold_text(_plain(truth))
    return text if text and text.strip() else None


def _teacher(extra: dict[str, Any]) -> tuple[str, ...] | None:
    answers = extra.get("teacher_responses")
    return None if answers is None else tuple(str(a) for a in list(answers))


def compute_score(*args: Any, **kwargs: Any) -> Any:
    """verl's default scorer, under the name `reward.custom_reward_function` looks for: the
    setting only makes verl call the reward manager when reward-model servers are on."""
    from verl.utils.reward_score import default_compute_score

    return default_compute_score(*args, **kwargs)


def _started_actor(settings: VerlSettings) -> Any:
    """The run's scorer actor, started now (while verl sets its workers up) rather than by the
    first rollout: starting a Ray process and importing ropd takes seconds, which would
    otherwise hold the first step's rollouts. None outside a Ray job (then started on first use).
    """
    import ray

    if not ray.is_initialized():
        return None
    from ropd.integrations.verl.actor import scorer_actor

    actor = scorer_actor(settings)
    ray.get(actor.__ray_ready__.remote())
    return actor


class RopdRewardManager(RewardManagerBase):
    """verl's reward manager for ROPD: one reward per rollout, each group judged once, whole.

    `client` (keyword, for tests and custom transports) scores through that `ChatClient`; it
    only applies with one reward worker, where the collector lives in this process.
    """

    def __init__(
        self,
        config: Any,
        tokenizer: Any,
        compute_score: Any,
        reward_router_address: str | None = None,
        reward_model_tokenizer: Any = None,
        *,
        client: ChatClient | None = None,
    ):
        super().__init__(config, tokenizer, compute_score)
        self.settings = VerlSettings.from_verl_config(config, reward_router_address)
        if client is not None and self.settings.workers > 1:
            raise ConfigError("a `client` can only be passed with reward.num_workers=1")
        self.default = NaiveRewardManager(
            config, tokenizer, compute_score, reward_router_address, reward_model_tokenizer
        )
        self.collector: GroupCollector | None = None
        if self.settings.workers == 1:
            self.collector = group_collector(self.settings, client=client)
        self._actor: Any = None
        if self.settings.workers > 1:
            self._actor = _started_actor(self.settings)
        for warning in self.settings.warnings():
            log.warning("%s", warning)

    def rollout(self, data: DataProto) -> VerlRollout:
        """The last sequence of `data` as the collector's rollout (the response decoded)."""
        item = data[-1:][0]
        responses = item.batch["responses"]
        length = responses.shape[-1]
        valid = int(item.batch["attention_mask"][-length:].sum())
        text = self.tokenizer.decode(responses[:valid], skip_special_tokens=True)
        row = item.non_tensor_batch
        extra = _plain(row.get("extra_info")) or {}
        uid = str(_plain(row["uid"]))
        validation = extra.get("split") == VAL_SPLIT
        group_id = extra.get("id", extra.get("index"))
        step = _plain(row.get("global_steps", data.meta_info.get("global_steps")))
        return VerlRollout(
            uid=uid,
            rollout=Rollout(
                group_id=str(uid if group_id is None else _plain(group_id)),
                prompt=_messages(row["raw_prompt"]),
                completion=text,
                teacher_responses=_teacher(extra),
                gold=_gold(row),
                rubric=extra.get(RUBRIC_FIELD) if self.settings.section.method == "rar" else None,
            ),
            group_size=self.settings.val_group_size if validation else self.settings.group_size,
            validation=validation,
            global_step=int(step) if step is not None and int(step) > 0 else None,
        )

    async def run_single(self, data: DataProto) -> dict[str, Any]:
        source = _plain(data[-1:][0].non_tensor_batch.get("data_source"))
        if source != self.settings.data_source:
            result = await self.default.run_single(data)
            extra = NOT_SCORED_BY_ROPD.extra_info()
            return {"reward_score": result["reward_score"], "reward_extra_info": extra}
        item = self.rollout(data)
        if self.collector is not None:
            score = await self.collector.submit(item)
        else:
            if self._actor is None:
                from ropd.integrations.verl.actor import scorer_actor

                self._actor = scorer_actor(self.settings)
            score = await self._actor.submit.remote(item)
        return {"reward_score": score.reward, "reward_extra_info": score.extra_info()}

    async def aclose(self) -> None:
        """Close this worker's collector (judge, stores); the named actor closes with its owner."""
        if self.collector is not None:
            await self.collector.aclose()
