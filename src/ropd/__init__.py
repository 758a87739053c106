"""ropd: Rubric-based On-Policy Distillation.

The public face: configs, groups and results, the scorers, the stores and the error base.

    import ropd
    config = ropd.ScorerConfig(judge=ropd.RoleConfig(base_url=..., model=...))
    results = ropd.score_groups([ropd.Group(...)], config)

Everything else is reachable (`ropd.reward`, `ropd.llm`, `ropd.teacher`, ...) but not promised.
Importing `ropd` is light: no torch, no TRL, no HTTP client until a judge is opened.
"""

from ropd.errors import (
    ConfigError,
    InputError,
    JudgeError,
    JudgeUnavailable,
    RopdError,
    RunStopped,
    StoreError,
)
from ropd.llm.config import LimitsConfig, RoleConfig
from ropd.reward.config import ScorerConfig
from ropd.reward.group_scorer import GroupScorer
from ropd.reward.sync import score_groups
from ropd.reward.tjudge import TJudgeConfig, TJudgeScorer
from ropd.reward.traces import TraceStore
from ropd.reward.types import AnswerVerdicts, Group, GroupResult
from ropd.rubric import Criterion, Rubric, weighted_score
from ropd.teacher.store import TeacherStore

__version__ = "0.2.0"

__all__ = [
    "AnswerVerdicts",
    "ConfigError",
    "Criterion",
    "Group",
    "GroupResult",
    "GroupScorer",
    "InputError",
    "JudgeError",
    "JudgeUnavailable",
    "LimitsConfig",
    "RoleConfig",
    "RopdError",
    "Rubric",
    "RunStopped",
    "ScorerConfig",
    "StoreError",
    "TJudgeConfig",
    "TJudgeScorer",
    "TeacherStore",
    "TraceStore",
    "__version__",
    "score_groups",
    "weighted_score",
]
