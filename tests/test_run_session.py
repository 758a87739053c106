"""One run configuration, one loader, one session.

- K is answered in one place: the same `ropd.yaml` gives the same K to `ropd train`, verl and
  every command (`RunConfig.k`).
- Every file goes through one loader: errors name the file, the line and the field, for train,
  verl and `-c` alike; `--set` works the same way everywhere.
- `Session.open` is the opener: keys checked before anything, the teacher store locked for
  writing and refused for reading when missing, the trace store continued under the run id, and
  each endpoint probed once per command (`ropd score` no longer probes twice).
- Every command that calls a model takes `-c ropd.yaml --set ...`; flags typed win over the file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.inprocess import ropd_in_process

from ropd.errors import ConfigError
from ropd.integrations.verl.settings import read_section
from ropd.io.lock import FileLockedError
from ropd.reward.traces import TraceStore
from ropd.run_config import RunConfig
from ropd.session import Session
from ropd.testing import StubJudgeServer, scripted_judge
from ropd.train.config import load_config

K_UNSET = """\
ropd:
  teacher:
    store: teacher.db
    num_answers: 2
    build_missing: true
  scorer:
    num_teacher_refs: null
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_one_file_gives_one_k_to_train_verl_and_every_command(tmp_path: Path) -> None:
    config = write(tmp_path / "ropd.yaml", K_UNSET)
    assert RunConfig.load(config).k == 2
    assert read_section(config).k == 2  # verl used 4 here
    assert load_config(config, check_paths=False).ropd.k == 2  # ropd train
    assert RunConfig().k == 4 and RunConfig(method="tjudge").k == 0  # the defaults
    assert RunConfig.load(config, {"scorer.num_teacher_refs": 3}).k == 3


def test_every_loader_names_file_line_and_field(tmp_path: Path) -> None:
    config = write(
        tmp_path / "ropd.yaml",
        "ropd:\n  scorer:\n    blind: maybe\n  limits:\n    max_in_flight: 0\n",
    )
    for load in (RunConfig.load, read_section):
        with pytest.raises(ConfigError) as caught:
            load(config)
        text = str(caught.value)
        assert f"{config}:3: field 'ropd.scorer.blind'" in text
        assert f"{config}:5: field 'ropd.limits.max_in_flight'" in text
    with pytest.raises(ConfigError, match=r"overridden on the command line.*scorer.seed"):
        RunConfig.load(
            config, {"scorer.blind": True, "limits.max_in_flight": 2, "scorer.seed": "x"}
        )


def test_a_training_config_serves_the_commands_too(tmp_path: Path) -> None:
    """`-c` on a file with TRL fields and train-only keys reads the run part and no more."""
    config = write(
        tmp_path / "train.yaml",
        "learning_rate: 1e-5\nropd:\n  student: embedded\n  data: {source: sample}\n"
        "  limits: {max_in_flight: 3}\n",
    )
    assert RunConfig.load(config).limits.max_in_flight == 3


async def test_session_resolves_roles_and_opens_stores(tmp_path: Path) -> None:
    store = TraceStore(tmp_path / "traces.db", run_id="first")
    store.close()
    config = RunConfig(traces=tmp_path / "traces.db", run_id="first")
    async with Session.open(config, scripted_judge(), run_info={"command": "test"}) as session:
        assert session.run_id == "first"  # the trace store continues the named run
        assert [r.name for r in session.roles] == ["rubricator", "verifier"]
        assert session.teacher_store is None and session.references() is None


async def test_session_refuses_a_missing_teacher_store_and_locks_one_it_writes(
    tmp_path: Path,
) -> None:
    store = tmp_path / "teacher.db"
    config = RunConfig.model_validate({"teacher": {"store": str(store)}})
    with pytest.raises(ConfigError, match="does not exist"):
        async with Session.open(config, scripted_judge(), teacher="read"):
            pass
    async with Session.open(config, scripted_judge(), teacher="write") as writer:
        assert writer.teacher_store is not None and store.exists()
        with pytest.raises(FileLockedError, match="another teacher store"):
            async with Session.open(config, scripted_judge(), teacher="write"):
                pass
        assert writer.references(2) is not None  # K answers per prompt from the open store


async def test_unset_key_variable_fails_before_any_connection(monkeypatch) -> None:
    monkeypatch.delenv("ROPD_TEST_NO_SUCH_KEY", raising=False)
    config = RunConfig.model_validate(
        {
            "scorer": {
                "judge": {
                    "base_url": "http://127.0.0.1:9/v1",
                    "model": "m",
                    "api_key_env": "ROPD_TEST_NO_SUCH_KEY",
                }
            }
        }
    )
    with pytest.raises(Exception, match="ROPD_TEST_NO_SUCH_KEY"):
        async with Session.open(config):
            pass


def groups_file(path: Path) -> Path:
    row = {
        "id": "g1",
        "prompt": "What is 2+2?",
        "student_responses": ["4", "5"],
        "teacher_responses": ["4 because 2+2=4"],
    }
    return write(path, json.dumps(row) + "\n")


DEAD = "http://127.0.0.1:9/v1"  # nothing listens on the discard port


@pytest.mark.parametrize("typed_url", [False, True])
def test_score_probes_each_endpoint_once_and_reads_c_and_set(
    tmp_path: Path, typed_url: bool
) -> None:
    """The file names the judge (or a dead one that the typed --base-url replaces)."""
    with StubJudgeServer() as stub:
        url = DEAD if typed_url else stub.base_url
        config = write(
            tmp_path / "ropd.yaml",
            f"ropd:\n  scorer:\n    judge: {{base_url: '{url}', model: stub, "
            "api_key_env: STUB_KEY}\n    min_criteria: 1\n    verifier: {max_tokens: 300}\n"
            "  limits:\n    max_in_flight: 3\n",
        )
        out = tmp_path / "scores.jsonl"
        args = ["score", groups_file(tmp_path / "g.jsonl"), "-o", out, "-c", config]
        if typed_url:
            args += ["--base-url", stub.base_url, "--model", "stub"]
        result = ropd_in_process(
            [*args, "--set", "run_id=from-set", "--max-retries", "1"], env={"STUB_KEY": "x"}
        )
        assert result.returncode == 0, result.stderr
        assert stub.models_requests == 1  # one probe, by the session (it was two)
        assert stub.requests >= 2  # rubric and verdicts, from the file's endpoint
        with TraceStore(tmp_path / "scores.traces.db", run_id="look") as traces:
            assert [run["run_id"] for run in traces.runs()] == ["from-set"]


def test_flags_typed_win_over_the_file_and_defaults_do_not(tmp_path: Path) -> None:
    config = write(tmp_path / "ropd.yaml", "ropd:\n  limits: {max_in_flight: 3}\n")
    from ropd.cli.run_options import run_config

    flagged = RunConfig()  # what the flags alone say (max_in_flight at its default)
    ctx = _context(["--config", str(config)])
    assert run_config(ctx, config, None, flagged, {"max_in_flight": "limits.max_in_flight"}) == (
        RunConfig.load(config)
    )
    typed = RunConfig.model_validate({"limits": {"max_in_flight": 9}})
    ctx = _context(["--config", str(config), "--max-in-flight", "9"])
    merged = run_config(ctx, config, None, typed, {"max_in_flight": "limits.max_in_flight"})
    assert merged.limits.max_in_flight == 9


def _context(argv: list[str]):
    """A click context of a tiny command with `--config` and `--max-in-flight`, parsed."""
    import click

    @click.command()
    @click.option("--config")
    @click.option("--max-in-flight", type=int, default=8)
    def command(config: str, max_in_flight: int) -> None:
        pass

    return command.make_context("command", argv)


def test_one_file_serves_teacher_build_score_and_verl_rows(tmp_path: Path) -> None:
    with StubJudgeServer() as stub:
        store = tmp_path / "teacher.db"
        config = write(
            tmp_path / "ropd.yaml",
            f"ropd:\n  teacher:\n    store: {store}\n    num_answers: 2\n    role: "
            f"{{base_url: '{stub.base_url}', model: stub, api_key_env: STUB_KEY}}\n",
        )
        prompts = write(tmp_path / "p.jsonl", json.dumps({"id": "a", "prompt": "Say hi"}) + "\n")
        result = ropd_in_process(
            ["teacher", "build", prompts, "-c", config, "--json", "--no-progress"],
            env={"STUB_KEY": "x"},
        )
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout.strip().splitlines()[-1])["answers_stored"] == 2
        assert stub.models_requests == 1
        # `ropd score` on the same file: K is null there, so the store's 2 answers are K (not 4)
        row = {"id": "a", "prompt": "Say hi", "student_responses": ["hi", "hello"]}
        groups = write(tmp_path / "g.jsonl", json.dumps(row) + "\n")
        scored = ropd_in_process(
            ["score", groups, "-o", tmp_path / "s.jsonl", "-c", config, "--no-progress",
             "--set", "scorer.num_teacher_refs=null", "--base-url", stub.base_url,
             "--model", "stub", "--api-key-env", "STUB_KEY", "--min-criteria", "1"],
            env={"STUB_KEY": "x"},
        )  # fmt: skip
        assert scored.returncode == 0, scored.stderr
        assert "fewer teacher answers than" not in scored.stderr
        line = json.loads((tmp_path / "s.jsonl").read_text())
        assert line["error"] is None and len(line["teacher_scores"]) == 2
    # verl's rows from the same file carry the same K
    rows = tmp_path / "rows.parquet"
    prepared = ropd_in_process(
        ["verl", "prepare-data", prompts, "-o", rows, "-c", config,
         "--set", "scorer.num_teacher_refs=null"]
    )  # fmt: skip
    assert prepared.returncode == 0, prepared.stderr
    assert json.loads(prepared.stdout.strip().splitlines()[-1])["with_teacher_responses"] == 1
    assert "fewer than" not in prepared.stderr


def test_every_model_command_takes_config_and_set() -> None:
    commands = (["score"], ["teacher", "build"], ["eval"], ["analyze", "run"], ["train"],
                ["verl", "prepare-data"])  # fmt: skip
    for command in commands:
        result = ropd_in_process([*command, "--help"], env={"COLUMNS": "200"})
        assert result.returncode == 0
        assert "--config" in result.stdout and "--set" in result.stdout, command


def test_a_bad_set_names_itself(tmp_path: Path) -> None:
    result = ropd_in_process(
        ["score", "missing.jsonl", "-o", tmp_path / "o.jsonl", "--set", "no-equals-sign"]
    )
    assert result.returncode != 0
    assert "--set 'no-equals-sign': expected key=value" in result.stderr


async def test_base_url_verl_is_refused_outside_a_verl_run(tmp_path: Path) -> None:
    config = RunConfig.model_validate({"scorer": {"judge": {"base_url": "verl"}}})
    with pytest.raises(ConfigError, match="base_url: verl .* only works inside one"):
        async with Session.open(config, scripted_judge()):
            pass
    with pytest.raises(ValueError, match="list no base_urls"):
        RunConfig.model_validate({"scorer": {"judge": {"base_url": "verl,http://a/v1"}}})
