"""The judge/teacher client for OpenAI-compatible chat endpoints, and local servers.

`ropd.llm.client` (the OpenAI SDK) is imported lazily so that `import ropd.llm` stays cheap.
"""

from ropd.llm.config import LimitsConfig, RoleConfig
from ropd.llm.types import ChatClient, Completion, JudgeError, UsageTotals

__all__ = ["ChatClient", "Completion", "JudgeError", "LimitsConfig", "RoleConfig", "UsageTotals"]
