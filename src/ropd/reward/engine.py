"""Deprecated location of the ROPD group scorer; use `ropd.GroupScorer` (`ropd.reward.group_scorer`).

Kept so that code written against ropd 0.1 keeps importing; the method's steps now live in
`reward/induction.py`, `reward/verification.py` and `reward/group_scorer.py`.
"""

from __future__ import annotations

import warnings

from ropd.reward.base import GroupInputError, GroupScoringError
from ropd.reward.group_scorer import GroupScorer
from ropd.reward.induction import FORMAT_CATEGORIES
from ropd.reward.verification import PoolEntry

warnings.warn(
    "ropd.reward.engine is deprecated; import GroupScorer from ropd (or ropd.reward.group_scorer)",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["FORMAT_CATEGORIES", "GroupInputError", "GroupScorer", "GroupScoringError", "PoolEntry"]
