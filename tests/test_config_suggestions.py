"""An unknown key in a config's `ropd:` section gets the closest field name as a suggestion.

One place (`Locator.pydantic_problems`) serves every loader: `RunConfig.load` (`-c` of every
command, verl) and `ropd train`'s `load_config`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ropd.config_file import field_names
from ropd.errors import ConfigError
from ropd.run_config import RunConfig
from ropd.train.config import RopdSection, load_config

TEXT = """\
ropd:
  scorer:
    num_teacher_refs: 0
    min_critera: 3
  tjudge:
    judge: {modle: local}
  gate: {widow: 8, nothing_like_it: 1}
"""


def problems(path: Path, load) -> str:
    with pytest.raises(ConfigError) as info:
        load(path)
    return str(info.value)


@pytest.mark.parametrize(
    "load",
    [RunConfig.load, lambda path: load_config(path, {}, check_paths=False)],
    ids=["RunConfig.load", "train.load_config"],
)
def test_unknown_keys_get_the_closest_field(tmp_path: Path, load):
    path = tmp_path / "cfg.yaml"
    path.write_text(TEXT, encoding="utf-8")
    message = problems(path, load)
    extra = "Extra inputs are not permitted"
    assert f"{path}:4: field 'ropd.scorer.min_critera': {extra} (did you mean 'min_criteria'?)" in (
        message
    )
    assert f"{path}:6: field 'ropd.tjudge.judge.modle': {extra} (did you mean 'model'?)" in message
    assert f"{path}:7: field 'ropd.gate.widow': {extra} (did you mean 'window'?)" in message
    assert f"{path}:7: field 'ropd.gate.nothing_like_it': {extra}\n" in message + "\n"


def test_field_names_walk_the_models_along_the_location():
    assert "min_criteria" in field_names(RopdSection, ("scorer",))
    assert "model" in field_names(RopdSection, ("scorer", "rubricator"))
    assert "method" in field_names(RopdSection, ())
