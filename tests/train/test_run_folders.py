"""One folder holds one run: default folders, `--method` next to the config's run, refusal,
`--overwrite`, `--resume` of a killed run (one run id, every step) and of a finished one."""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ropd.cli import app
from ropd.testing import scripted_judge
from ropd.train import runner
from ropd.train.config import load_config
from ropd.train.runner import RUN_FILE, decide_run, latest_default_run

CONFIG = """\
output_dir: {folder}
max_steps: 1
per_device_train_batch_size: 4
num_generations: 2
max_completion_length: 12
save_steps: 1
report_to: none
activation_checkpointing: false
ropd:
  method: ropd
  student: {student}
  data: {{source: sample, limit: 8}}
  teacher: {{store: {store}, build_missing: true, num_answers: 2}}
  scorer: {{num_teacher_refs: 2}}
  tjudge: {{num_references: 1}}
"""


def write_config(where: Path, folder: Path, student: Path, store: Path) -> Path:
    path = where / "cfg.yaml"
    path.write_text(CONFIG.format(folder=folder, student=student, store=store))
    return path


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under the folder with a hash of its bytes: "untouched" means equal."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.endswith(("-wal", "-shm"))
    }


def traced(folder: Path) -> set[tuple[str, int]]:
    with sqlite3.connect(folder / "traces.db") as db:
        return set(db.execute("SELECT DISTINCT run_id, step FROM groups").fetchall())


def run_file(folder: Path) -> dict[str, Any]:
    return json.loads((folder / RUN_FILE).read_text())


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> Any:
    """`ropd train` in process, every judge and teacher request answered by a scripted judge."""
    judge = scripted_judge()
    monkeypatch.setattr(runner, "run", functools.partial(runner.run, client=judge))

    def invoke(*args: str) -> Any:
        return CliRunner().invoke(app, ["train", *args, "--no-probe"])

    invoke.judge = judge  # type: ignore[attr-defined]
    return invoke


@pytest.fixture(scope="module")
def finished_run(tiny_student: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One finished one-step ROPD run (checkpoint-1, final/, traces, report), trained once."""
    base = tmp_path_factory.mktemp("base")
    folder = base / "run"
    store = base / "teacher.sqlite"
    overrides = {"output_dir": str(folder), "ropd.teacher.store": str(store)}
    cfg = load_config(write_config(base, folder, tiny_student, store), overrides)
    report = runner.run(cfg, client=scripted_judge())
    assert report.global_step == 1 and (folder / "final").is_dir()
    return base


@pytest.fixture
def copied(finished_run: Path, tmp_path: Path, tiny_student: Path) -> tuple[Path, Path]:
    """A private copy of the finished run (folder F) and a config that names F."""
    folder = tmp_path / "F"
    shutil.copytree(finished_run / "run", folder)
    store = tmp_path / "teacher.sqlite"
    shutil.copy(finished_run / "teacher.sqlite", store)
    return write_config(tmp_path, folder, tiny_student, store), folder


def test_default_folder_is_the_run_id(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    store = {"ropd.teacher.store": "t.sqlite"}
    config = load_config(None, {**store, "ropd.method": "tjudge"}, check_paths=False)
    assert config.output_dir_default
    first, second = decide_run(config), decide_run(config)
    assert first.run_id.startswith("tjudge-")
    assert first.config.output_dir == Path("runs") / first.run_id
    assert second.config.output_dir != first.config.output_dir  # each run its own folder
    # a bare --resume continues the newest run of that method under runs/
    for name, method in [("tjudge-20260101-000000-aaaa", "tjudge"),
                         ("tjudge-20260102-000000-bbbb", "tjudge"),
                         ("tjudge-20260103-000000-cccc", "ropd")]:  # fmt: skip
        (tmp_path / "runs" / name).mkdir(parents=True)
        body = {"run_id": name, "method": method}
        (tmp_path / "runs" / name / RUN_FILE).write_text(json.dumps(body))
    assert latest_default_run("tjudge") == Path("runs/tjudge-20260102-000000-bbbb")
    resumed = decide_run(config, resume=True)
    assert resumed.resume and resumed.run_id == "tjudge-20260102-000000-bbbb"
    named = load_config(None, {**store, "output_dir": "somewhere"}, check_paths=False)
    assert not named.output_dir_default and decide_run(named).config.output_dir == Path("somewhere")


def test_method_override_gets_its_own_folder(copied: tuple[Path, Path], cli: Any) -> None:
    """The README line `--method tjudge` over a ROPD config: F-tjudge, F untouched."""
    cfg, folder = copied
    before = snapshot(folder)
    result = cli("--config", str(cfg), "--method", "tjudge")
    assert result.exit_code == 0, result.output
    moved = folder.parent / "F-tjudge"
    assert f"output_dir  {moved}" in result.output and "its own folder" in result.output
    assert run_file(moved)["method"] == "tjudge" and (moved / "final").is_dir()
    assert snapshot(folder) == before
    # an explicit folder wins over the rule
    elsewhere = folder.parent / "G"
    result = cli("--config", str(cfg), "--method", "tjudge", "--output-dir", str(elsewhere))
    assert result.exit_code == 0, result.output
    assert run_file(elsewhere)["method"] == "tjudge"


def test_a_folder_holding_a_run_is_refused_unless_overwritten(
    copied: tuple[Path, Path], cli: Any
) -> None:
    cfg, folder = copied
    old = run_file(folder)["run_id"]
    before = snapshot(folder)
    result = cli("--config", str(cfg))
    assert result.exit_code != 0
    message = " ".join(result.output.split())
    for part in (str(folder), old, "method ropd", "--resume", "--output-dir", "--overwrite"):
        assert part in message, message
    assert snapshot(folder) == before and not cli.judge.calls
    result = cli("--config", str(cfg), "--overwrite")
    assert result.exit_code == 0, result.output
    new = run_file(folder)["run_id"]
    assert new != old and run_file(folder)["finished"] is True
    assert {run_id for run_id, _ in traced(folder)} == {new}  # the old traces are gone


def test_a_killed_run_resumes_under_its_run_id(copied: tuple[Path, Path], cli: Any) -> None:
    cfg, folder = copied
    # what a kill after the first checkpoint leaves: the run file as written at the start
    body = {**run_file(folder), "finished": False, "global_step": None}
    (folder / RUN_FILE).write_text(json.dumps(body))
    shutil.rmtree(folder / "final")
    (folder / "report.html").unlink()
    result = cli("--config", str(cfg), "--resume", "--max-steps", "2")
    assert result.exit_code == 0, result.output
    assert f"run         {body['run_id']} (resumed)" in result.output
    assert traced(folder) == {(body["run_id"], 1), (body["run_id"], 2)}
    after = run_file(folder)
    assert after["run_id"] == body["run_id"] and after["finished"] is True
    assert after["global_step"] == 2
    from ropd.report.data import choose_run  # the report's run is the run file's: every step
    from ropd.reward.traces import TraceStore

    with TraceStore(folder / "traces.db", run_id="check") as store:
        chosen, *_ = choose_run(store, None, folder)
        assert [s.step for s in store.summary(run_id=chosen)] == [1, 2]
    assert (folder / "report.html").is_file()


def test_resuming_a_finished_run_does_nothing(
    copied: tuple[Path, Path], cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg, folder = copied
    before = snapshot(folder)

    def no_training(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a finished run must not train again")

    monkeypatch.setattr(runner, "run", no_training)
    result = cli("--config", str(cfg), "--resume")
    assert result.exit_code == 0, result.output
    run_id = run_file(folder)["run_id"]
    assert f"run {run_id} in {folder} finished at step 1; nothing to do" in " ".join(
        result.output.split()
    )
    assert snapshot(folder) == before
    # a run file written before `finished` was recorded: the newest checkpoint is at max_steps
    # (resuming it would train one step more)
    legacy = {k: v for k, v in run_file(folder).items() if k not in ("finished", "global_step")}
    (folder / RUN_FILE).write_text(json.dumps(legacy))
    result = cli("--config", str(cfg), "--resume")
    assert result.exit_code == 0 and "finished at step 1; nothing to do" in result.output


@pytest.mark.slow
def test_torchrun_ranks_agree_on_the_default_folder(tmp_path: Path, tiny_student: Path) -> None:
    """Two processes, no output_dir: one `runs/<run id>` folder (the main process's choice,
    broadcast), one run id in it; a second `--resume` finds that run finished."""
    import subprocess
    import sys

    from ropd.testing import StubJudgeServer

    with StubJudgeServer(latency_s=0.0) as stub:
        judge = f"{{base_url: '{stub.base_url}', model: stub}}"
        sets = {
            "per_device_train_batch_size": 2,
            "num_generations": 2,
            "max_completion_length": 8,
            "report_to": "none",
            "save_steps": 1,
            "activation_checkpointing": "false",
            "ropd.student": tiny_student,
            "ropd.data.limit": 4,
            "ropd.teacher.store": tmp_path / "teacher.sqlite",
            "ropd.teacher.build_missing": "true",
            "ropd.teacher.num_answers": 2,
            "ropd.teacher.role": judge,
            "ropd.scorer.num_teacher_refs": 2,
            "ropd.scorer.rubricator": judge,
            "ropd.scorer.verifier": judge,
        }
        args = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
        args += ["-m", "ropd", "train", "--max-steps", "1"]
        args += [item for key, value in sets.items() for item in ("--set", f"{key}={value}")]

        def train(*more: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [*args, *more],
                capture_output=True,
                text=True,
                timeout=600,
                cwd=tmp_path,
                check=False,
            )

        done = train()
        assert done.returncode == 0, done.stderr[-3000:]
        folders = list((tmp_path / "runs").iterdir())
        assert len(folders) == 1 and folders[0].name.startswith("ropd-"), folders
        run_id = run_file(folders[0])["run_id"]
        assert folders[0].name == run_id
        assert {r for r, _ in traced(folders[0])} == {run_id}
        done = train("--resume")
        assert done.returncode == 0, done.stderr[-3000:]
        assert "nothing to do" in done.stdout
        assert list((tmp_path / "runs").iterdir()) == folders
