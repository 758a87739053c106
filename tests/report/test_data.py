"""What a report collects: the trace store's own per-step numbers, one run, a capped browser."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.report.helpers import ERROR, HOSTILE, OTHER_RUN, RUN

from ropd.errors import InputError
from ropd.report.data import collect, select_groups, step_row
from ropd.reward.metrics import RoleUsage, StepMetrics
from ropd.reward.traces import GroupSummary, TraceStore


def test_step_numbers_are_the_trace_store_summary(run_dir: Path) -> None:
    data = collect(run_dir / "traces.db", run_dir=run_dir)
    with TraceStore(run_dir / "traces.db") as store:
        expected = store.summary(run_id=RUN)
    assert data.run_id == RUN and data.other_runs == [OTHER_RUN]
    assert [s["step"] for s in data.steps] == [1, 2]
    for row, summary in zip(data.steps, expected, strict=True):
        m = summary.metrics
        assert row["groups"] == m.groups and row["failed_groups"] == m.failed_groups
        assert row["failed_group_rate"] == m.failed_group_rate
        for name in (
            "reward_mean",
            "reward_std",
            "reward_std_within_group_mean",
            "teacher_score_mean",
            "beat_teacher_rate",
            "rubric_size",
        ):
            assert row[name] == getattr(m, name), name
        assert row["pass_rate"] == m.pass_rate
        for role, usage in m.judge.items():
            got = row["judge"][role]
            assert got["calls"] == usage.calls and got["failed_calls"] == usage.failed_calls
            assert got["input_tokens"] == usage.prompt_tokens
            assert got["output_tokens"] == usage.completion_tokens
            assert got["latency_s"] == usage.mean_latency_s
    # step 2: one scored group and one failed one, whose verifier calls still count
    assert data.steps[1]["failed_group_rate"] == 0.5
    assert data.steps[1]["judge"]["verifier"]["calls"] == 2 + 3
    assert data.categories == ["correctness", "reasoning", "format"]
    assert data.roles == ["rubricator", "verifier"]
    assert data.totals["groups"] == 4 and data.totals["failed_groups"] == 1
    assert data.totals["judge_cost"] is None and not data.has_cost


def test_the_browser_gets_every_group_of_the_run_with_verdicts_and_errors(run_dir: Path) -> None:
    data = collect(run_dir / "traces.db", run_dir=run_dir)
    by_id = {g["id"]: g for g in data.groups}
    assert set(by_id) == {"g-alpha", "g-beta", "g-hostile", "g-failed"}  # not the other run's
    assert data.groups_total == 4 and data.groups_note == ""
    assert by_id["g-failed"]["error"] == ERROR and by_id["g-failed"]["reward_mean"] is None
    hostile = by_id["g-hostile"]
    assert hostile["answers"][0]["text"] == HOSTILE
    assert [a["source"] for a in hostile["answers"]] == ["student", "student", "teacher"]
    assert hostile["answers"][1]["verdicts"] == {"C1": True, "C2": True, "C3": True}
    assert hostile["answers"][1]["reward"] == 1.0
    assert [c["metric_category"] for c in hostile["rubrics"][0]] == [
        "correctness",
        "reasoning",
        "format",
    ]
    assert hostile["prompt"] == "[user] What is 17 * 23? (g-hostile)"


def test_run_choice_follows_run_flag_then_run_file_then_newest(run_dir: Path) -> None:
    traces = run_dir / "traces.db"
    other = collect(traces, run_id=OTHER_RUN, run_dir=run_dir)
    assert other.run_id == OTHER_RUN and [s["step"] for s in other.steps] == [None]
    assert collect(traces).run_id == OTHER_RUN  # no run file: the newest run
    with pytest.raises(InputError, match="no run 'nope'.*grpo-test-run"):
        collect(traces, run_id="nope")


def test_the_group_cap_keeps_failed_first_then_the_newest_and_says_so(run_dir: Path) -> None:
    data = collect(run_dir / "traces.db", run_dir=run_dir, max_groups=2)
    assert [g["id"] for g in data.groups] == ["g-failed", "g-hostile"]
    assert data.groups_total == 4
    assert "2 of 4 groups embedded" in data.groups_note and "2 left out" in data.groups_note
    tiny = collect(run_dir / "traces.db", run_dir=run_dir, max_bytes=1)  # the budget: one group
    assert len(tiny.groups) == 1 and "MB of group data" in tiny.groups_note


def test_select_groups_gives_failed_groups_at_most_half_while_scored_ones_remain() -> None:
    def summary(i: int, failed: bool) -> GroupSummary:
        return GroupSummary(f"g{i}", "r", i, float(i), None, 1, 0, 1, "x" if failed else None)

    listing = [summary(i, failed=i % 2 == 0) for i in range(20)]
    chosen = select_groups(listing, 6)
    assert sum(g.error is not None for g in chosen) == 3 and len(chosen) == 6
    only_failed = [summary(i, failed=True) for i in range(5)]
    assert len(select_groups(only_failed, 4)) == 4
    assert select_groups(listing, 0) == []


def test_answers_are_clipped_in_the_middle(tmp_path: Path, run_dir: Path) -> None:
    data = collect(run_dir / "traces.db", run_dir=run_dir, max_answer_chars=10)
    hostile = next(g for g in data.groups if g["id"] == "g-hostile")
    assert hostile["answers"][0]["chars"] == len(HOSTILE)
    assert "characters omitted" in hostile["answers"][0]["text"]


def test_cost_is_shown_only_when_the_metrics_carry_one() -> None:
    priced = StepMetrics(
        groups=1,
        failed_groups=0,
        judge={"rubricator": RoleUsage(calls=1, cost=0.25), "verifier": RoleUsage(calls=2)},
    )
    row = step_row("r", 3, priced)
    assert row["judge"]["rubricator"]["cost"] == 0.25 and row["judge"]["verifier"]["cost"] is None
    assert row["judge_cost"] == 0.25
    plain = step_row("r", 3, StepMetrics(groups=1, failed_groups=0, judge={"v": RoleUsage()}))
    assert plain["judge_cost"] is None and plain["judge"]["v"]["cost"] is None


def test_eval_and_analysis_are_read_as_tables(
    run_dir: Path, eval_dir: Path, analysis_dir: Path
) -> None:
    data = collect(run_dir / "traces.db", evals=[eval_dir], analysis=analysis_dir)
    (summary,) = data.evals
    assert summary["model"] == "student-final"
    assert summary["tasks"][0] == {
        "task": "math500",
        "family": "math",
        "pass_at_1": "45.7",
        "std": "1.2",
        "items": 500,
        "n": 4,
        "failed": 2,
        "truncated": 7,
    }
    analysis = data.analysis
    assert analysis is not None
    methods = analysis["methods"]
    assert methods["columns"][:3] == ["auc", "auc_within_prompt", "pair_accuracy"]
    assert methods["rows"][0]["name"] == "ropd" and methods["rows"][0]["cells"][0] == "0.812"
    assert "judge_usage" not in methods["columns"] and "settings" not in methods["columns"]
    usage = analysis["usage"]
    assert [r["name"] for r in usage["rows"]] == ["ropd / rubricator", "ropd / verifier",
                                                  "tjudge / tjudge"]  # fmt: skip
    assert usage["columns"] == ["calls", "prompt_tokens", "completion_tokens", "cost"]
    assert usage["rows"][2]["cells"] == ["12", "20,400", "n/a", "0.0123"]  # 3 significant digits
    assert analysis["settings"]["ropd"] == {"shared_rubric": "True", "num_teacher_refs": "2"}
    assert analysis["categories_method"] == "ropd"
    assert analysis["pool"]["groups"] == "12" and analysis["pool"]["correct"] == "41"
    (image,) = analysis["images"]
    assert image["name"] == "roc.svg" and image["uri"].startswith("data:image/svg+xml;base64,")
    # the file itself works as well as its folder
    again = collect(run_dir / "traces.db", analysis=analysis_dir / "analysis.json")
    assert again.analysis == analysis


def test_unusable_inputs_are_input_errors(tmp_path: Path, run_dir: Path) -> None:
    traces = run_dir / "traces.db"
    with pytest.raises(InputError, match="no trace database"):
        collect(tmp_path / "missing.db")
    assert not (tmp_path / "missing.db").exists()  # not created by looking
    with pytest.raises(InputError, match="no analysis.json"):
        collect(traces, analysis=tmp_path)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        collect(traces, analysis=tmp_path / "bad.json")
    (tmp_path / "list.json").write_text(json.dumps([1, 2]))
    with pytest.raises(InputError, match="expected a JSON object"):
        collect(traces, analysis=tmp_path / "list.json")
    with pytest.raises(InputError, match="summary.json"):
        collect(traces, evals=[tmp_path])


def test_secrets_are_scrubbed_from_everything_shown(tmp_path: Path, run_dir: Path) -> None:
    from ropd import redact

    secret = "s3cret-value-of-a-key"
    folder = tmp_path / "an"
    folder.mkdir()
    (folder / "analysis.json").write_text(json.dumps({"pool": {"note": f"key {secret}"}}))
    redact.remember(secret)
    try:
        data = collect(run_dir / "traces.db", analysis=folder)
    finally:
        redact.forget_all()
    assert secret not in json.dumps(data.analysis)
