"""The model card names the student: the embedded model by its Hub id, a folder by its path."""

from __future__ import annotations

from pathlib import Path

import pytest

from ropd.integrations.trl.student import EMBEDDED_DIRNAME, EMBEDDED_HUB_ID
from ropd.integrations.trl.trainer import base_model_name


def test_the_embedded_students_cache_folder_is_named_by_its_hub_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROPD_CACHE_DIR", str(tmp_path))
    folder = tmp_path / "models" / EMBEDDED_DIRNAME
    folder.mkdir(parents=True)
    assert base_model_name(str(folder)) == EMBEDDED_HUB_ID
    assert base_model_name("Qwen/Qwen3-0.6B") == "Qwen/Qwen3-0.6B"
    assert base_model_name(str(tmp_path)) == str(tmp_path)  # another local folder: its path
