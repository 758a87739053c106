"""How a prompt is laid out before a response when the teacher's log-probabilities are read.

The mean log-probability of a response means most under the layout the model was trained on:
its chat template, ending with the assistant's turn. The completions endpoint takes raw text,
so the template is rendered here, with Jinja2 as Hugging Face tokenizers do it:

- `embedded`: the template stored in the embedded model's GGUF file (`auto` picks it when the
  teacher is the embedded model, the one case where ropd knows the model's file);
- a path: a Jinja template file, or a tokenizer folder (`chat_template.jinja`, or
  `chat_template` in `tokenizer_config.json`), for a model served elsewhere;
- `plain`: the prompt as text, a blank line, then the response. A remote endpoint does not say
  which template it uses, so `auto` falls back to this and the analysis records it: numbers are
  then comparable between responses, but less telling than under the real template.

BOS tokens are left to the server (it adds them as the model's tokenizer says).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ropd.errors import ConfigError
from ropd.reward.render import render_prompt
from ropd.reward.types import Prompt

AUTO, PLAIN, EMBEDDED = "auto", "plain", "embedded"


@dataclass(frozen=True)
class ChatTemplate:
    """Renders a prompt as the text preceding the response; `name` is what analyses record."""

    name: str
    source: str | None = None  # the Jinja template; None = plain

    def prefix(self, prompt: Prompt) -> str:
        """The text the response follows: the chat with the assistant's turn opened."""
        if self.source is None:
            return render_prompt(prompt) + "\n\n"
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        return (
            _environment()
            .from_string(self.source)
            .render(messages=messages, add_generation_prompt=True, bos_token="", eos_token="")
        )


def _environment() -> Any:
    try:
        import jinja2
        from jinja2.sandbox import ImmutableSandboxedEnvironment
    except ImportError as exc:
        raise ConfigError(
            "rendering a chat template needs jinja2 (pip install jinja2), or use "
            "--chat-template plain"
        ) from exc

    def raise_exception(message: str) -> None:
        raise jinja2.TemplateError(message)

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
    )
    env.globals["raise_exception"] = raise_exception
    env.filters["tojson"] = lambda value, **kw: json.dumps(value, ensure_ascii=False, **kw)
    return env


def resolve_template(choice: str, *, teacher_is_embedded: bool) -> ChatTemplate:
    """The template for `--chat-template` (`auto`, `plain`, `embedded` or a path)."""
    if choice == PLAIN or (choice == AUTO and not teacher_is_embedded):
        return ChatTemplate(PLAIN)
    if choice in (AUTO, EMBEDDED):
        return ChatTemplate(EMBEDDED, embedded_template())
    path = Path(choice)
    if path.is_dir():
        jinja = path / "chat_template.jinja"
        if jinja.is_file():
            return ChatTemplate(str(jinja), jinja.read_text(encoding="utf-8"))
        config = path / "tokenizer_config.json"
        if config.is_file():
            template = json.loads(config.read_text(encoding="utf-8")).get("chat_template")
            if isinstance(template, str):
                return ChatTemplate(str(config), template)
        raise ConfigError(
            f"--chat-template {path}: no chat_template.jinja and no chat_template in "
            "tokenizer_config.json there"
        )
    if path.is_file():
        return ChatTemplate(str(path), path.read_text(encoding="utf-8"))
    raise ConfigError(
        f"--chat-template {choice!r}: not auto, plain, embedded, a template file or a "
        "tokenizer folder"
    )


def embedded_template() -> str:
    """The chat template stored in the embedded model's GGUF (read without loading weights)."""
    from ropd.llm.local_server import default_model_path, require_llama_server

    require_llama_server()
    from llama_cpp import Llama

    model = Llama(str(default_model_path()), vocab_only=True, verbose=False)
    template = model.metadata.get("tokenizer.chat_template")
    if not template:
        raise ConfigError("the embedded model's file holds no chat template; use plain")
    return str(template)
