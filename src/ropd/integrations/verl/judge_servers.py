"""The judge on the cluster: ropd's roles served by the reward-model servers a verl run launches.

With `reward.reward_model.enable=true`, verl starts inference servers for
`reward.reward_model.model_path` (vLLM or SGLang, `reward.reward_model.rollout.*`), puts one
router in front of them and hands the router's `host:port` to every reward manager. A role with
`base_url: verl` is sent there: its URL becomes `http://<router>/v1` and, unless the role names
its model, the model is the one the servers list on `/v1/models` (vLLM serves its local copy of
`model_path`, whose name ropd cannot guess). The judge then grows with the cluster, and the
white-box setting (an open teacher judging, the student trained) runs in one verl job.

Two verl behaviours make some configurations silently wrong, so they are refused here:
- reward models on, no `reward.custom_reward_function.path`: verl scores every rollout with the
  reward model's `/classify` and never calls ropd;
- a role on `base_url: verl` without reward models: there is no router to reach.
Reward models on with no role using them is allowed (an API judge next to a verl-served scorer
of other rows), with a warning.

The router holds at most 1024 connections, 256 to each server; ropd's in-flight limit is lowered
to what the servers can take at once, so requests queue in ropd (counted, traced) rather than
in the router.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ropd import redact
from ropd.errors import ConfigError
from ropd.integrations.verl.verl_config import flag, select
from ropd.llm.config import LOCAL, RoleConfig
from ropd.run_config import RunConfig, judge_field

log = redact.logger(__name__)

# verl's NaiveRouter (verl/experimental/reward_loop/router/naive_router.py): an aiohttp pool of
# 1024 connections in all, a quarter of them to any one server
ROUTER_CONNECTIONS = 1024
ROUTER_CONNECTIONS_PER_SERVER = ROUTER_CONNECTIONS // 4
# what `custom_reward_function.path` names so verl calls the reward manager at all
CUSTOM_FUNCTION_PATH = "pkg://ropd.integrations.verl.reward_manager"


@dataclass(frozen=True)
class JudgeServers:
    """verl's reward-model servers as ropd reaches them (picklable: it goes to the actor)."""

    model_path: str | None
    replicas: int
    router_address: str | None = None  # host:port, as verl hands it to the reward manager

    @property
    def base_url(self) -> str:
        if not self.router_address:
            raise ConfigError(
                "base_url: verl: verl handed the reward manager no reward router address "
                "(reward.reward_model.enable must be true in the run's config)"
            )
        address = self.router_address
        if not address.startswith(("http://", "https://")):
            address = "http://" + address
        return address.rstrip("/") + "/v1"

    @property
    def max_in_flight(self) -> int:
        """Requests the router passes on at once: 256 per server, 1024 in all."""
        return min(ROUTER_CONNECTIONS, ROUTER_CONNECTIONS_PER_SERVER * max(1, self.replicas))

    @classmethod
    def from_verl_config(cls, config: Any, router_address: str | None) -> JudgeServers | None:
        """The servers verl launches for this run (None: reward models are off)."""
        reward_model = select(config, "reward.reward_model")
        if reward_model is None or not flag(select(reward_model, "enable", False)):
            return None
        rollout = select(reward_model, "rollout", {})
        per_replica = 1
        for key in (
            "tensor_model_parallel_size",
            "data_parallel_size",
            "pipeline_model_parallel_size",
        ):
            per_replica *= int(select(rollout, key, 1) or 1)
        if flag(select(reward_model, "enable_resource_pool", False)):
            gpus = int(select(reward_model, "n_gpus_per_node", 0) or 0)
            gpus *= int(select(reward_model, "nnodes", 0) or 0)
        else:  # colocated: the reward model shares the training GPUs
            gpus = int(select(config, "trainer.n_gpus_per_node", 1) or 1)
            gpus *= int(select(config, "trainer.nnodes", 1) or 1)
        model_path = select(reward_model, "model_path")
        return cls(
            model_path=None if model_path is None else str(model_path),
            replicas=max(1, gpus // per_replica),
            router_address=router_address,
        )


def verl_roles(section: RunConfig) -> list[RoleConfig]:
    """The method's judge roles that `base_url: verl` sends to verl's servers."""
    return [role for role in section.judge_roles() if role.on_verl]


def check(section: RunConfig, config: Any, servers: JudgeServers | None) -> None:
    """Refuse the configurations in which verl's reward models and ropd would miss each other."""
    on_verl = verl_roles(section)
    if servers is None:
        if on_verl:
            names = ", ".join(sorted({role.name for role in on_verl}))
            raise ConfigError(
                f"ropd: role(s) {names} have base_url: verl, but this verl run launches no "
                "reward-model servers. Set reward.reward_model.enable=true, "
                "reward.reward_model.model_path=<the judge model>, "
                "reward.reward_model.rollout.name=vllm (and "
                f"+reward.custom_reward_function.path={CUSTOM_FUNCTION_PATH}), or give those "
                "roles an endpoint URL"
            )
        return
    if not select(config, "reward.custom_reward_function.path"):
        raise ConfigError(
            "ropd: reward.reward_model.enable=true without reward.custom_reward_function.path: "
            "verl would score every rollout with the reward model's /classify and never call "
            "ropd. Add +reward.custom_reward_function.path="
            f"{CUSTOM_FUNCTION_PATH} (verl then calls the reward manager, and ropd sends the "
            "roles with base_url: verl to the reward-model servers), or turn the reward model "
            "off"
        )
    if not on_verl:
        log.warning(
            "ropd: verl launches reward-model servers (%s) that no ropd role uses: set "
            "base_url: verl on the roles that should judge there, or "
            "reward.reward_model.enable=false to save their GPUs",
            servers.model_path,
        )


async def served_model(base_url: str) -> str:
    """The one model verl's servers list on `/v1/models` (through the router)."""
    from openai import AsyncOpenAI, OpenAIError

    from ropd.llm.transport import guarded_client

    client = AsyncOpenAI(  # redirects only within the origin, as for every ropd request
        base_url=base_url,
        api_key="EMPTY",
        max_retries=2,
        timeout=60.0,
        http_client=guarded_client(),
    )
    try:
        listed = [model.id async for model in client.models.list()]
    except OpenAIError as exc:
        raise ConfigError(
            f"base_url: verl: the reward-model router at {base_url} did not list its models: "
            f"{redact.scrub(str(exc))}"
        ) from exc
    finally:
        await client.close()
    if len(listed) != 1:
        raise ConfigError(
            f"base_url: verl: the reward-model servers at {base_url} list "
            f"{len(listed)} models ({', '.join(listed) or 'none'}); name the role's model"
        )
    return listed[0]


async def resolve(section: RunConfig, servers: JudgeServers | None) -> RunConfig:
    """`section` with every `base_url: verl` role pointed at verl's router, its model named and
    the in-flight limit held to what the servers take at once (unchanged without such roles)."""
    if servers is None or not verl_roles(section):
        return section
    base_url = servers.base_url
    model: str | None = None
    resolved = []
    for role in section.judge_roles():
        if not role.on_verl:
            resolved.append(role)
            continue
        named = "model" in role.model_fields_set and role.model != LOCAL
        if not named and model is None:
            model = await served_model(base_url)
        resolved.append(
            role.model_copy(update={"base_url": base_url, "model": role.model if named else model})
        )
    limits = section.limits
    if limits.max_in_flight > servers.max_in_flight:
        log.info(
            "ropd: %d requests in flight at most (verl's router takes %d per server, %d servers)",
            servers.max_in_flight, ROUTER_CONNECTIONS_PER_SERVER, servers.replicas,
        )  # fmt: skip
        limits = limits.model_copy(update={"max_in_flight": servers.max_in_flight})
    judge = section.judge_config.with_roles(resolved)  # type: ignore[arg-type]
    return section.model_copy(update={judge_field(section.method): judge, "limits": limits})
