"""A completed step's `ropd/*` metrics reach verl's tracking backends, at verl's step number.

verl's trainer does not turn training `reward_extra_info` into metrics, so the collector's process
writes them through verl's own `Tracking` adapters (console, TensorBoard) and beside verl's
`file` log; the TensorBoard event file is read back with TensorBoard's own reader. Rollouts are
driven through `load_reward_manager` and `run_single` with a scripted judge, as verl's V1 agent
loop hands them (`global_steps` in each row).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("verl")

import numpy as np
from tests.verl.conftest import (
    RUBRIC,
    group_answers,
    run_all,
    shuffled,
    traced_groups,
)
from tests.verl.test_reward_manager import G, ropd_row
from tests.verl.test_reward_manager import config as manager_config
from verl.trainer.ppo.reward import load_reward_manager

from ropd.integrations.verl.collector import EXTRA_KEYS
from ropd.integrations.verl.settings import VerlSettings
from ropd.integrations.verl.tracking import WANDB_STEP, StepTracking, file_path
from ropd.testing import make_client


def config(tmp_path: Path, tokenizer_dir: Path, *overrides: str) -> Any:
    """The reward-manager tests' config (G = 4, 2 groups a step), named for the tracking."""
    names = ("trainer.project_name=proj", "trainer.experiment_name=exp")
    return manager_config(tmp_path, tokenizer_dir, *names, *overrides)


def row(tokenizer: Any, g: int, text: str, *, step: int | None, split: str = "train") -> Any:
    data = ropd_row(tokenizer, g, text, split)
    if step is not None:  # verl's V1 agent loop puts the batch's global_steps into every row
        data.non_tensor_batch["global_steps"] = np.array([step])
    return data


def tensorboard_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)]
            for tag in events.Tags()["scalars"]}  # fmt: skip


async def test_a_steps_metrics_reach_verls_console_tensorboard_and_file_at_verls_step(
    tmp_path: Path, tokenizer_dir: Path, tokenizer: Any, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setenv("TENSORBOARD_DIR", str(tmp_path / "tb"))
    monkeypatch.setenv("VERL_FILE_LOGGER_ROOT", str(tmp_path / "files"))
    cfg = config(tmp_path, tokenizer_dir, "trainer.logger=[console,tensorboard,file]")
    manager = load_reward_manager(cfg, tokenizer, client=make_client(RUBRIC))
    # one verl step (global_steps = 7) of 2 groups: rewards 1.0 0.7 0.5 0.4 | 0.7 0.5 0.4 0.0
    keys = shuffled([(g, t) for g in range(2) for t, _ in group_answers(g, G)], seed=5)
    outputs = await run_all(manager, [row(tokenizer, g, t, step=7) for g, t in keys])

    assert {tuple(o["reward_extra_info"]) for o in outputs} == {EXTRA_KEYS}
    assert {o["reward_extra_info"]["ropd_step"] for o in outputs} == {7}
    assert sorted(step for _, step, _, _ in traced_groups(tmp_path / "traces.db")) == [7, 7]
    assert manager.collector is not None
    metrics = manager.collector.step_metrics[7]
    assert metrics["ropd/reward_mean"] == pytest.approx(4.2 / 8)  # hand-checked: 0.525
    assert metrics["ropd/groups"] == 2.0
    assert metrics["ropd/judge/verifier/calls"] == 2.0  # one verification per group
    assert metrics["ropd/judge/rubricator/calls"] == 2.0

    scalars = tensorboard_scalars(tmp_path / "tb")
    assert set(scalars) == set(metrics)  # the names TRL runs log, nothing else
    for name, value in metrics.items():
        assert scalars[name] == [(7, pytest.approx(value))], name
    assert "step:7 - " in capsys.readouterr().out  # verl's console line (its LocalLogger)
    lines = (tmp_path / "files" / "proj" / "exp.ropd.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [{"step": 7, "data": metrics}]


async def test_without_global_steps_the_collector_counts_and_validation_stays_unnumbered(
    tmp_path: Path, tokenizer_dir: Path, tokenizer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TENSORBOARD_DIR", str(tmp_path / "tb"))
    cfg = config(tmp_path, tokenizer_dir, "trainer.logger=[tensorboard]")  # val_kwargs.n = 2
    manager = load_reward_manager(cfg, tokenizer, client=make_client(RUBRIC))
    train = [row(tokenizer, g, t, step=None) for g in range(2) for t, _ in group_answers(g, G)]
    val = [row(tokenizer, 5, t, step=3, split="val") for t, _ in group_answers(5, 2)]
    outputs = await run_all(manager, [*train, *val])
    assert [o["reward_extra_info"]["ropd_step"] for o in outputs] == [1] * 8 + [-1] * 2
    assert sorted(map(str, (s for _, s, _, _ in traced_groups(tmp_path / "traces.db")))) == [
        "1", "1", "None",
    ]  # fmt: skip
    assert tensorboard_scalars(tmp_path / "tb")["ropd/groups"] == [(1, 2.0)]


def test_the_trainers_logger_names_and_the_switch_reach_the_settings(
    tmp_path: Path, tokenizer_dir: Path
) -> None:
    settings = VerlSettings.from_verl_config(config(tmp_path, tokenizer_dir))
    assert (settings.project_name, settings.experiment_name) == ("proj", "exp")
    assert settings.loggers == ("console", "wandb")  # verl's default trainer.logger
    off = config(tmp_path, tokenizer_dir, "+reward.reward_kwargs.ropd_tracking=false")
    assert VerlSettings.from_verl_config(off).loggers == ()


def test_wandb_joins_the_trainers_run_only_when_its_id_is_known(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, Any]] = []

    class Run:
        def define_metric(self, name: str, **kwargs: Any) -> None:
            calls.append(("define_metric", (name, kwargs)))

        def log(self, data: dict[str, float]) -> None:
            calls.append(("log", data))

        def finish(self) -> None:
            calls.append(("finish", None))

    def init(**kwargs: Any) -> Run:
        calls.append(("init", kwargs))
        return Run()

    fake = SimpleNamespace(init=init, Settings=lambda **kw: SimpleNamespace(**kw))
    monkeypatch.setitem(sys.modules, "wandb", fake)
    skipped = StepTracking("proj", "exp", ["wandb"], env={})
    skipped.log({"ropd/reward_mean": 0.5}, 3)
    assert calls == []  # no id: no second run next to the trainer's

    joined = StepTracking("proj", "exp", ["wandb"], env={"WANDB_RUN_ID": "abc"})
    joined.log({"ropd/reward_mean": 0.5}, 3)
    joined.close()
    init_kwargs = calls[0][1]
    assert init_kwargs["id"] == "abc" and init_kwargs["project"] == "proj"
    assert (init_kwargs["settings"].mode, init_kwargs["settings"].x_primary) == ("shared", False)
    assert ("define_metric", ("ropd/*", {"step_metric": WANDB_STEP})) in calls
    assert ("log", {WANDB_STEP: 3, "ropd/reward_mean": 0.5}) in calls
    assert calls[-1] == ("finish", None)


def test_a_backend_that_fails_is_dropped_and_the_others_still_log(tmp_path: Path) -> None:
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where a folder should be")
    tracking = StepTracking("proj", "exp", ["file", "mlflow"],
                            env={"VERL_FILE_LOGGER_ROOT": str(blocked)})  # fmt: skip
    tracking.log({"ropd/groups": 2.0}, 1)  # neither raises: no backend can fail a reward
    assert not file_path("proj", "exp", {"VERL_FILE_LOGGER_ROOT": str(blocked)}).exists()
    good = StepTracking(
        "proj", "exp", ["file"], env={"VERL_FILE_LOGGER_PATH": str(tmp_path / "m.jsonl")}
    )
    good.log({"ropd/groups": 2.0}, 1)
    good.log({"ropd/groups": 3.0}, 2)
    good.close()
    lines = (tmp_path / "m.ropd.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2]
