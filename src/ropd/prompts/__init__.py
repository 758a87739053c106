"""Prompt templates for the judge roles, shipped as package data and overridable by folder.

Templates use `string.Template` placeholders (`$prompt`, `$answers`, ...): values are inserted
once and never re-parsed, so braces or dollar signs inside answers cannot break rendering.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    text: str
    source: str

    @property
    def version(self) -> str:
        """A short content hash: changes whenever the wording changes (recorded in traces)."""
        return hashlib.sha256(self.text.encode()).hexdigest()[:12]

    def render(self, **values: str) -> str:
        return Template(self.text).substitute(**values)


def load_template(name: str, prompts_dir: Path | None = None) -> PromptTemplate:
    """Load `<name>.md` from `prompts_dir` if it has one, else the packaged default."""
    if prompts_dir is not None:
        path = Path(prompts_dir) / f"{name}.md"
        if path.is_file():
            return PromptTemplate(name, path.read_text(encoding="utf-8"), str(path))
        if not Path(prompts_dir).is_dir():
            raise FileNotFoundError(f"prompts folder {prompts_dir} does not exist")
    resource = resources.files("ropd.prompts").joinpath(f"{name}.md")
    if not resource.is_file():
        raise FileNotFoundError(f"no packaged prompt template named {name!r}")
    return PromptTemplate(name, resource.read_text(encoding="utf-8"), f"ropd/prompts/{name}.md")
