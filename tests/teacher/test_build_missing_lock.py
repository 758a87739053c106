"""Training's `teacher.build_missing` takes the teacher store's lock, as `ropd teacher build` does."""

from __future__ import annotations

from pathlib import Path

import pytest

from ropd.io.lock import FileLockedError, OutputLock
from ropd.llm.config import LimitsConfig
from ropd.teacher.builder import build_missing
from ropd.teacher.config import TeacherConfig
from ropd.teacher.store import TeacherStore
from ropd.testing import scripted_judge

PROMPTS = [("a", [{"role": "user", "content": "What is 2 + 2?"}])]


def test_a_build_while_another_holds_the_store_refuses_and_writes_nothing(tmp_path: Path) -> None:
    teacher = TeacherConfig(store=tmp_path / "teacher.db", build_missing=True)
    client = scripted_judge(roles=("teacher",))
    # another build (or `ropd teacher build`) holds the store
    with OutputLock(teacher.store), pytest.raises(FileLockedError, match="teacher.db"):
        build_missing(teacher, PROMPTS, LimitsConfig(), 2, client=client)
    assert client.calls_for("teacher") == []
    report = build_missing(teacher, PROMPTS, LimitsConfig(), 2, client=client)
    assert report.failed_requests == 0
    with TeacherStore(teacher.store) as store:
        assert len(store.lookup(PROMPTS[0][1], k=2)) == 2
    with OutputLock(teacher.store):  # released after the build
        pass
