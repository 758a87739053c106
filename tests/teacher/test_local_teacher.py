"""The builder against the real embedded llama.cpp server (SmolLM2-135M) on the sample data."""

from __future__ import annotations

from pathlib import Path

import pytest

from ropd.data import load_records, sample_path
from ropd.llm.client import OpenAIChatClient
from ropd.llm.config import LimitsConfig, RoleConfig
from ropd.teacher import TeacherFingerprint, TeacherStore, build_references


@pytest.mark.slow
async def test_builds_references_with_the_local_model(local_server, tmp_path: Path) -> None:
    role = RoleConfig(
        name="teacher",
        base_url=local_server.base_url,
        model=local_server.model,
        temperature=1.0,
        max_tokens=24,
    )
    rows = load_records(sample_path(), limit=2)
    async with OpenAIChatClient(LimitsConfig(max_in_flight=2)) as client:
        with TeacherStore(tmp_path / "t.db") as store:
            report = await build_references(rows, store, role, client, 2, use_n=False)
            assert report.failed_requests == 0 and report.requests >= 4
            assert report.completion_tokens > 0
            fingerprint = TeacherFingerprint.from_role(role)
            stats = store.stats()
            assert stats["fingerprints"][0]["fields"]["model"] == local_server.model
            for row in rows:
                statuses = store.count_usable(
                    row.data["prompt"], fingerprint=fingerprint, usable={"ok", "truncated"}
                )
                assert statuses >= 2
                if not report.incomplete:
                    answers = store.lookup(row.data["prompt"], k=2, fingerprint=fingerprint)
                    assert all(isinstance(a, str) and a for a in answers)
            cut = [a for a in store.answers() if a.status == "truncated"]
            assert all(a.finish_reason == "length" for a in cut)
            if report.short_by_truncation:
                assert report.truncated_at == 24
            # a rebuild pays again only for what can change: nothing cut off at 24 is re-asked
            again = await build_references(rows, store, role, client, 2, use_n=False)
            if not report.to_retry:  # no empty or refused answers were left to replace
                assert again.requests == 0
                assert again.short_by_truncation == report.short_by_truncation
