"""`ropd bench train`'s judge-latency arms: how step times are summarised, and one small run."""

from __future__ import annotations

from pathlib import Path

import pytest
from ropd_dev.bench.train import build_teacher, generation_step_s, measure_latency
from typer.testing import CliRunner

from ropd.cli import app


def test_generation_step_s_counts_whole_generations_after_the_warmup() -> None:
    # spg 4: the first generation is warm-up, the judge waits in the first step of each
    times = [9.0, 1.0, 1.0, 1.0, 3.0, 1.0, 1.0, 1.0, 3.0, 1.0, 1.0, 1.0, 3.0]
    assert generation_step_s(times, 4) == 1.5  # the trailing partial generation is left out
    # one generation slowed by other load barely moves the figure, and never below the fastest
    assert generation_step_s([9.0, 3.0, 3.0, 3.0, 30.0], 1) == 3.0
    assert 2.0 <= generation_step_s([9.0, 2.0, 3.0], 1) < 2.5
    with pytest.raises(ValueError, match="no whole generation"):
        generation_step_s([9.0, 1.0, 1.0], 4)


def test_bad_steps_per_generation_is_refused_before_any_work() -> None:
    result = CliRunner().invoke(app, ["bench", "train", "--steps-per-generation", "1,x"])
    assert result.exit_code == 2
    assert "positive integers" in result.output


@pytest.mark.slow
def test_reusing_a_generation_hides_most_of_the_judge_wait(
    tiny_student: Path, tmp_path: Path
) -> None:
    from ropd.testing import StubJudgeServer

    work = tmp_path
    with StubJudgeServer() as fast:
        build_teacher(work, tiny_student, fast.base_url)
    # one reused generation (spg 2) against the constant-reward arm; the spg 1 arms add a
    # minute of training to the suite and nothing the test could check (`ropd bench train`
    # runs both)
    figures = measure_latency(work, tiny_student, latency_s=0.5, spgs=(2,), steps=2)
    assert set(figures) == {
        f"{key}_spg2" for key in ("step_s_constant", "step_s_latency", "latency_ratio")
    }
    # the 0.5 s judge is asked twice in a row per generation, one generation every 2 steps:
    # 0.5 s per step at least (only a lower bound: the other arm depends on the machine's load)
    assert figures["step_s_latency_spg2"] >= 0.5, figures
    for spg in (2,):
        ratio = figures[f"step_s_latency_spg{spg}"] / figures[f"step_s_constant_spg{spg}"]
        assert figures[f"latency_ratio_spg{spg}"] == pytest.approx(ratio, abs=1e-3)
