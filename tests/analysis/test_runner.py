"""`analyze` on the hand-made pool: exact figures, categories, rewards file, resume."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from tests.analysis.conftest import make_judge, read_jsonl

from ropd.analysis.runner import analyze
from ropd.reward.traces import TraceStore


def run(pool: Path, out: Path, **kwargs):  # type: ignore[no-untyped-def]
    options = {"methods": "ropd,tjudge", "client": make_judge(), "plots": False}
    return analyze(pool, out, **{**options, **kwargs})


def test_exact_figures_on_a_hand_made_pool(pool_file: Path, tmp_path: Path) -> None:
    state = run(pool_file, tmp_path / "out", plots=True)
    data = json.loads((tmp_path / "out" / "analysis.json").read_text())
    assert data["pool"] == {"path": str(pool_file), "groups": 3, "responses": 12, "correct": 3}
    ropd = data["methods"]["ropd"]
    # correct rewards .75 .5 .75; incorrect .375 .5 | 0 .125 .5 | .25 1 0 .125
    # pooled: 8 + (6 wins + 2 ties) + 8 = 23 of 27 pairs
    assert ropd["auc"] == pytest.approx(23 / 27)
    # g1: (1 + 1 + 1 + tie .5) / 4 = .875; g2: 3/3; g3 has no correct answer
    assert ropd["auc_within_prompt"] == pytest.approx((0.875 + 1.0) / 2)
    assert ropd["prompts_with_both_classes"] == 2
    assert ropd["pair_accuracy"] == pytest.approx(6.5 / 7)
    assert ropd["pairs"] == 7
    assert ropd["reward_mean_correct"] == pytest.approx(2 / 3)
    assert ropd["reward_mean_incorrect"] == pytest.approx(2.875 / 9)
    assert ropd["failed_groups"] == 0 and ropd["missing_groups"] == 0
    usage = ropd["judge_usage"]
    assert usage["rubricator"]["calls"] == 3 and usage["verifier"]["calls"] == 3
    assert usage["verifier"]["prompt_tokens"] == 30  # the scripted client books 10 per call
    tjudge = data["methods"]["tjudge"]  # 0.9 with MARK, else 0.2
    assert tjudge["auc"] == pytest.approx(24 / 27)
    assert tjudge["auc_within_prompt"] == pytest.approx((0.75 + 1.0) / 2)
    assert tjudge["pair_accuracy"] == pytest.approx(6 / 7)
    assert tjudge["judge_usage"]["tjudge"]["calls"] == 12
    # categories of the plain ropd method, per criterion verdict of the students
    assert data["categories_method"] == "ropd"
    cats = data["categories"]
    assert set(cats) == {"correctness", "reasoning", "clarity"}
    assert cats["correctness"]["pass_rate_correct"] == 1.0
    assert cats["correctness"]["pass_rate_incorrect"] == pytest.approx(2 / 9)
    assert cats["reasoning"]["pass_rate_correct"] == pytest.approx(1 / 3)
    assert cats["reasoning"]["pass_rate_incorrect"] == pytest.approx(4 / 9)
    assert cats["clarity"]["pass_rate_correct"] == pytest.approx(2 / 6)
    assert cats["clarity"]["pass_rate_incorrect"] == pytest.approx(7 / 18)
    rows = read_jsonl(tmp_path / "out" / "rewards.jsonl")
    assert len(rows) == 24
    assert {k: rows[0][k] for k in ("method", "group_id", "index", "correct", "reward")} == {
        "method": "ropd", "group_id": "g1", "index": 0, "correct": True, "reward": 0.75,
    }  # fmt: skip
    for name in ("roc.svg", "roc.png", "hist_ropd.svg", "hist_tjudge.svg"):
        assert (tmp_path / "out" / name).stat().st_size > 0, name
    with TraceStore(tmp_path / "out" / "traces.db", run_id="read") as store:
        runs = {r["info"]["method"]: r for r in store.runs()}
    assert set(runs) == {"ropd", "tjudge"}
    assert runs["ropd"]["groups"] == 3 and runs["tjudge"]["groups"] == 3
    assert state.run_ids == {name: runs[name]["run_id"] for name in runs}


def test_ablations_run_as_their_own_methods(pool_file: Path, tmp_path: Path) -> None:
    client = make_judge()
    run(pool_file, tmp_path / "out", methods="ropd,ropd:k=0+revealed", client=client)
    data = json.loads((tmp_path / "out" / "analysis.json").read_text())
    settings = data["methods"]["ropd:k=0+revealed"]["settings"]
    assert settings["num_teacher_refs"] == 0 and settings["blind"] is False
    assert data["methods"]["ropd:k=0+revealed"]["auc"] == pytest.approx(23 / 27)
    no_refs = [c for c in client.calls_for("rubricator") if "said the teacher" not in str(c)]
    assert len(no_refs) == 3  # the k=0 rubric requests carried no teacher answer


def test_failed_groups_are_left_out_of_the_figures(pool_file: Path, tmp_path: Path) -> None:
    client = make_judge()
    original = client.handlers["rubricator"]

    def fail_g3(messages, json_schema):  # type: ignore[no-untyped-def]
        return "not json" if "Question g3" in str(messages) else original(messages, json_schema)

    client.handlers["rubricator"] = fail_g3
    run(pool_file, tmp_path / "out", methods="ropd", client=client)
    ropd = json.loads((tmp_path / "out" / "analysis.json").read_text())["methods"]["ropd"]
    assert ropd["failed_groups"] == 1 and ropd["responses_scored"] == 8
    # without g3: correct .75 .5 .75 vs incorrect .375 .5 0 .125 .5 -> (5 + 4 + 5) / 15
    assert ropd["auc"] == pytest.approx(14 / 15)
    rows = [r for r in read_jsonl(tmp_path / "out" / "rewards.jsonl") if r["group_id"] == "g3"]
    assert all(r["failed"] and r["reward"] is None for r in rows)


def test_resume_scores_only_the_missing_groups(pool_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(pool_file, out)
    full = json.loads((out / "analysis.json").read_text())["methods"]
    lines = (out / "groups.jsonl").read_text().splitlines(keepends=True)
    kept = lines[:2] + lines[3:4]  # drop one ropd group and the tjudge groups after it
    dropped = len(lines) - len(kept)
    (out / "groups.jsonl").write_text("".join(kept) + lines[4][:25])  # a half-written line
    with pytest.raises(Exception, match="--resume"):
        run(pool_file, out)
    client = make_judge()
    state = run(pool_file, out, resume=True, client=client)
    assert state.skipped == 3 and state.scored == dropped == 3
    assert state.dropped_bytes == 25
    assert len(client.calls_for("rubricator")) == 1
    assert len(client.calls_for("tjudge")) == 8  # two groups of four answers
    again = json.loads((out / "analysis.json").read_text())["methods"]
    for name in ("ropd", "tjudge"):
        for key in ("auc", "auc_within_prompt", "pair_accuracy", "failed_groups"):
            assert again[name][key] == full[name][key], (name, key)
    assert len(read_jsonl(out / "groups.jsonl")) == 6
    with TraceStore(out / "traces.db", run_id="read") as store:
        assert len(store.runs()) == 2  # the resumed methods kept their runs


class FakeLogprobs:
    """Mean log-probability -len(text)/10 per token, one token per character."""

    def __init__(self) -> None:
        self.prefixes: list[str] = []

    async def continuation_logprobs(self, prefix: str, text: str, book=None) -> list[float]:  # type: ignore[no-untyped-def]
        self.prefixes.append(prefix)
        return [-len(text) / 10] * len(text)


def test_teacher_logprob_uses_the_template_and_the_stats(pool_file: Path, tmp_path: Path) -> None:
    fake = FakeLogprobs()
    run(pool_file, tmp_path / "out", methods="teacher_logprob", logprobs=fake,
        chat_template="plain")  # fmt: skip
    data = json.loads((tmp_path / "out" / "analysis.json").read_text())
    figures = data["methods"]["teacher_logprob"]
    assert figures["settings"] == {"chat_template": "plain"}
    assert set(fake.prefixes) == {f"Question g{n}: say the words.\n\n" for n in (1, 2, 3)}
    # shorter is better; lengths g1 correct 10 4 vs incorrect 11 4: 1 + 0 + 1 + tie .5;
    # g2 correct 15 vs incorrect 7 4 16: 1 win
    rewards = {(r["group_id"], r["index"]): r["reward"]
               for r in read_jsonl(tmp_path / "out" / "rewards.jsonl")}  # fmt: skip
    assert rewards[("g1", 1)] == pytest.approx(-0.4)
    assert math.isclose(figures["pair_accuracy"], (2.5 + 1) / 7)
    assert data["categories"] == {} and data["categories_method"] is None


class LateNoLogprobs:
    """Answers the up-front check, then finds the endpoint has no prompt log-probabilities."""

    def __init__(self) -> None:
        self.calls = 0

    async def continuation_logprobs(self, prefix: str, text: str, book=None) -> list[float]:  # type: ignore[no-untyped-def]
        from ropd.llm.logprobs import NoPromptLogprobs

        self.calls += 1
        if self.calls > 1:
            raise NoPromptLogprobs("no prompt log-probabilities here")
        return [-1.0]


def test_logprobs_lost_mid_run_still_write_the_other_methods(
    pool_file: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import gc

    from ropd.llm.logprobs import NoPromptLogprobs

    out = tmp_path / "out"
    with pytest.raises(NoPromptLogprobs, match="no prompt log-probabilities here"):
        run(pool_file, out, methods="teacher_logprob,ropd,tjudge", logprobs=LateNoLogprobs(),
            chat_template="plain")  # fmt: skip
    gc.collect()
    assert "never retrieved" not in caplog.text
    data = json.loads((out / "analysis.json").read_text())
    assert data["methods"]["ropd"]["auc"] == pytest.approx(23 / 27)
    assert data["methods"]["tjudge"]["missing_groups"] == 0
    assert data["methods"]["teacher_logprob"]["missing_groups"] == 3
    assert {r["method"] for r in read_jsonl(out / "rewards.jsonl")} == {"ropd", "tjudge"}


def test_no_prompt_logprobs_stops_before_any_group_is_judged(
    pool_file: Path, tmp_path: Path
) -> None:
    from ropd.llm.logprobs import NoPromptLogprobs

    class NoLogprobs:
        async def continuation_logprobs(self, prefix: str, text: str, book=None) -> list[float]:  # type: ignore[no-untyped-def]
            raise NoPromptLogprobs("no /v1/completions")

    judge = make_judge()
    with pytest.raises(NoPromptLogprobs):
        run(pool_file, tmp_path / "out", methods="ropd,teacher_logprob", client=judge,
            logprobs=NoLogprobs(), chat_template="plain")  # fmt: skip
    assert not (tmp_path / "out" / "analysis.json").exists()
    assert judge.calls == [] and read_jsonl(tmp_path / "out" / "groups.jsonl") == []
