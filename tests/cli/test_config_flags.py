"""Flags generated from the run configuration's fields (`cli/config_flags.py`)."""

from __future__ import annotations

from typing import Any

import typer
from tests.inprocess import ropd_in_process
from typer.testing import CliRunner

from ropd.cli.config_flags import Flag, config_flags, field_at
from ropd.cli.score import SCORER_FLAGS
from ropd.run_config import RunConfig

seen: list[dict[str, Any]] = []


@config_flags(
    Flag("scorer.num_teacher_refs", ("-k", "--num-teacher-refs")),
    "scorer.rubric_mode",
    "scorer.blind",
    "limits.max_in_flight",
    "scorer.prompts_dir",
)
def command(name: str = "x", config_overrides: dict[str, Any] | None = None) -> None:
    seen.append(dict(config_overrides or {}))


app = typer.Typer()
app.command()(command)


def run(*argv: str) -> Any:
    seen.clear()
    return CliRunner().invoke(app, list(argv))


def test_only_the_flags_typed_become_overrides_of_their_fields() -> None:
    assert run().exit_code == 0 and seen == [{}]
    result = run("-k", "2", "--rubric-mode", "per_pair", "--no-blind", "--max-in-flight", "7")
    assert result.exit_code == 0, result.output
    assert seen == [
        {
            "scorer.num_teacher_refs": 2,
            "scorer.rubric_mode": "per_pair",
            "scorer.blind": False,
            "limits.max_in_flight": 7,
        }
    ]
    # the overrides are exactly what RunConfig.load takes
    assert RunConfig.load(None, seen[0]).scorer.rubric_mode == "per_pair"


def test_a_value_outside_the_fields_choices_is_a_usage_error() -> None:
    result = run("--rubric-mode", "sometimes")
    assert result.exit_code == 2 and not seen
    assert "sometimes" in result.output


def test_score_help_is_the_fields_own_description() -> None:
    help_text = " ".join(
        ropd_in_process(["score", "--help"], env={"COLUMNS": "400"}).stdout.split()
    )
    for flag in SCORER_FLAGS:
        path = flag.path if isinstance(flag, Flag) else flag
        assert field_at(path).description in help_text, path
    assert "--keep-think" in help_text and "-k" in help_text  # the spellings users know stay
