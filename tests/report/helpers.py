"""The known trace store, analysis and eval files of the report tests (fixtures in conftest).

The store has two steps of one training run: step 1 two scored groups, step 2 one scored group
(whose student answer carries `</script>` markup) and one failed group. A second run in the same
store must stay out of the report of the first.
"""

from __future__ import annotations

from pathlib import Path

from ropd.reward.traces import TraceStore
from ropd.reward.types import AnswerVerdicts, Group, GroupResult
from ropd.rubric import Criterion, Rubric, weighted_score

RUN = "grpo-test-run"
OTHER_RUN = "score-other-run"
HOSTILE = "</script><script>alert(1)</script><b>bold?</b> & done"
ERROR = "verifier reply invalid after 2 re-asks: missing verdicts for answers 2, 3"
CRITERIA = [
    ("C1", "correctness", 5, "The final answer is 391."),
    ("C2", "Reasoning", 3, "Shows the multiplication steps."),
    ("C3", "formatting", 1, "Ends with the answer on its own line."),
]
POINTS = [p for _, _, p, _ in CRITERIA]
USAGE = {
    "rubricator": {"calls": 1, "failed_calls": 0, "prompt_tokens": 900, "completion_tokens": 210,
                   "latency_s": 1.5},
    "verifier": {"calls": 2, "failed_calls": 1, "prompt_tokens": 2400, "completion_tokens": 130,
                 "latency_s": 3.0},
}  # fmt: skip


def scored(gid: str, student: list[list[bool]], teacher: list[list[bool]]) -> GroupResult:
    """A scored group whose rewards are `weighted_score` of the given verdict rows."""
    rubric = Rubric(
        criteria=[Criterion(id=i, category=c, points=p, criterion=t) for i, c, p, t in CRITERIA]
    )
    verdicts = []
    for source, rows, offset in (("student", student, 0), ("teacher", teacher, len(student))):
        for index, row in enumerate(rows):
            verdicts.append(
                AnswerVerdicts(
                    source=source,
                    index=index,
                    verdicts={c[0]: ok for c, ok in zip(CRITERIA, row, strict=True)},
                    score=weighted_score(POINTS, row),
                    label=offset + index + 1,
                )
            )
    return GroupResult(
        id=gid,
        rewards=[v.score for v in verdicts if v.source == "student"],
        teacher_scores=[v.score for v in verdicts if v.source == "teacher"],
        rubrics=[rubric],
        verdicts=verdicts,
        usage=USAGE,
        failure_policy="nan",
    )


def group(gid: str, students: list[str], teachers: list[str]) -> Group:
    return Group(
        id=gid,
        prompt=[{"role": "user", "content": f"What is 17 * 23? ({gid})"}],
        student_responses=students,
        teacher_responses=teachers,
    )


def build_store(path: Path) -> Path:
    """The store described in the module doc; returns its path."""
    with TraceStore(path, run_id=RUN, run_info={"method": "ropd"}) as store:
        store.record(
            group("g-alpha", ["391, since 17*23 = 391", "It is 400"], ["391"]),
            scored("g-alpha", [[True, True, False], [False, True, True]], [[True, True, True]]),
            step=1,
        )
        store.record(
            group("g-beta", ["391", "391."], ["17*23 = 391"]),
            scored("g-beta", [[True, False, False], [True, False, True]], [[True, True, False]]),
            step=1,
        )
        store.record(
            group("g-hostile", [HOSTILE, "391"], ["391"]),
            scored("g-hostile", [[False, False, True], [True, True, True]], [[True, False, True]]),
            step=2,
        )
        store.record(
            group("g-failed", ["391", "12"], ["391"]),
            GroupResult(
                id="g-failed",
                rewards=[None, None],
                teacher_scores=[None],
                usage={
                    "verifier": {
                        "calls": 3,
                        "failed_calls": 3,
                        "prompt_tokens": 1000,
                        "completion_tokens": 0,
                        "latency_s": 9.0,
                    }
                },
                error=ERROR,
                failure_policy="nan",
            ),
            step=2,
        )
    with TraceStore(path, run_id=OTHER_RUN) as store:
        store.record(
            group("g-other", ["1"], []), scored("g-other", [[False, False, False]], []), step=None
        )
    return path


ANALYSIS = {
    "pool": {"path": "pool.jsonl", "groups": 12, "responses": 96, "correct": 41},
    "methods": {
        "ropd": {
            "auc": 0.8125, "auc_within_prompt": 0.7734, "prompts_with_both_classes": 9,
            "pair_accuracy": 0.7021, "pairs": 140, "reward_mean_correct": 0.8811,
            "reward_mean_incorrect": 0.4102, "groups": 12, "failed_groups": 1,
            "responses_scored": 88,
            "judge_usage": {
                "rubricator": {"calls": 12, "prompt_tokens": 30210, "completion_tokens": 5120},
                "verifier": {"calls": 24, "prompt_tokens": 51000, "completion_tokens": 4904},
            },
            "categories": {"correctness": {"pass_rate_correct": 0.9333}},
            "settings": {"shared_rubric": True, "num_teacher_refs": 2},
            "missing_groups": 0,
        },
        "tjudge": {
            "auc": 0.6543, "auc_within_prompt": 0.6011, "pair_accuracy": 0.5877,
            "reward_mean_correct": 0.7, "reward_mean_incorrect": 0.55, "failed_groups": 0,
            "judge_usage": {"tjudge": {"calls": 12, "prompt_tokens": 20400, "cost": 0.0123}},
            "settings": {"num_references": 2},
        },
    },
    "categories_method": "ropd",
    "categories": {"correctness": {"pass_rate_correct": 0.9333, "pass_rate_incorrect": 0.2667}},
}  # fmt: skip
SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="120" height="60" viewBox="0 0 120 60">'
    '<script>window.parent.document.title = "pwned"</script>'
    '<rect width="120" height="60" fill="#3a7"/><text x="10" y="35">ROC</text></svg>'
)


EVAL = {
    "model": "student-final",
    "model_fingerprint": "abc123",
    "generation_key": "k1",
    "settings": {"num_samples": 4, "temperature": 0.6, "limit": None},
    "tasks": {
        "math500": {"family": "math", "pass_at_1": 0.4567, "pass_at_1_std": 0.0123, "items": 500,
                    "n": 4, "failed": 2, "truncated": 7},
    },
}  # fmt: skip
