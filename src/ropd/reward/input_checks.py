"""What makes a group valid input: the checks `Group` runs on construction.

`Group` checks its input completely, for the command line and library users alike
(`Group.model_validate`, `ropd.reward.base.as_group`), so that a bad group fails at once with
the field named instead of later, inside a judge request:

- `id`: a non-empty string, or an integer (kept as its decimal string); booleans, floats, null
  and anything else are rejected (`true` must not silently become "True").
- `prompt`: a non-blank string, or a non-empty list of chat messages. A message is an object
  with `role` (one of system, user, assistant, developer, tool) and `content`: a string or a list
  of OpenAI content parts (objects with a string `type`; a `text` part needs a string `text`).
  `null` content is an error (it would reach the judges as "None"). Other keys of a message
  (`name`, `tool_call_id`, ...) are kept. At least one message must have some text. Parts that
  are not text (images, audio) are kept but the judges read only the text.
- `student_responses`: at least one string; `teacher_responses`: strings (may be empty lists
  here; whether K references are required is the caller's rule). Empty answers are allowed.
- Every string anywhere in a group must be valid Unicode that can be encoded as UTF-8: a lone
  UTF-16 surrogate (valid JSON `"\\ud800"`, often a cut emoji) is rejected naming the field,
  since no request containing it can be sent.
- A prompt message nested deeper than `MAX_PROMPT_DEPTH` levels is rejected.

Errors inside the prompt are `GroupFieldError`s whose `where` names the exact place
(`prompt[1].content[0].text`), so file readers can report it as the field.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator

from ropd.errors import InputError

CHAT_ROLES = ("system", "user", "assistant", "developer", "tool")
MAX_PROMPT_DEPTH = 32  # levels of objects and arrays inside one prompt message


class GroupFieldError(InputError):
    """A problem at a place inside a group field, e.g. `prompt[1].role` (a ValueError too)."""

    def __init__(self, where: str, message: str):
        self.where = where
        self.message = message
        super().__init__(f"{where}: {message}")


def json_type(value: object) -> str:
    """The JSON name of a value's type, for messages about parsed input."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def unicode_problem(text: str) -> str | None:
    """Why `text` cannot be encoded as UTF-8 (a lone surrogate), or None when it can."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(text[exc.start])
        return (
            f"not valid Unicode: lone surrogate U+{code:04X} at character {exc.start} "
            "(cannot be encoded as UTF-8; often an emoji cut in half)"
        )
    return None


def check_text(text: str) -> str:
    """`text` itself when it is valid Unicode, else ValueError (for field validators)."""
    problem = unicode_problem(text)
    if problem is not None:
        raise ValueError(problem)
    return text


Text = Annotated[str, AfterValidator(check_text)]


def _check_nested(value: object, where: str) -> None:
    """Every string (keys too) of a JSON-like value is valid Unicode; depth is bounded."""
    stack: list[tuple[object, str, int]] = [(value, where, 0)]
    while stack:
        item, at, depth = stack.pop()
        if isinstance(item, str):
            problem = unicode_problem(item)
            if problem is not None:
                raise GroupFieldError(at, problem)
        elif isinstance(item, dict | list | tuple):
            if depth >= MAX_PROMPT_DEPTH:
                raise GroupFieldError(at, f"nested deeper than {MAX_PROMPT_DEPTH} levels")
            if isinstance(item, dict):
                for key, sub in item.items():
                    if isinstance(key, str) and (problem := unicode_problem(key)) is not None:
                        raise GroupFieldError(at, f"key {problem}")
                    stack.append((sub, f"{at}.{key}", depth + 1))
            else:
                stack.extend((sub, f"{at}[{i}]", depth + 1) for i, sub in enumerate(item))


def _check_content(content: object, where: str) -> str:
    """A message's content; returns its text (for the no-text check)."""
    if isinstance(content, str):
        problem = unicode_problem(content)
        if problem is not None:
            raise GroupFieldError(where, problem)
        return content
    if not isinstance(content, list | tuple):
        raise GroupFieldError(
            where,
            "must be a string or a list of content parts "
            f"([{{'type': 'text', 'text': ...}}]), got {json_type(content)}",
        )
    texts = []
    for j, part in enumerate(content):
        at = f"{where}[{j}]"
        if not isinstance(part, dict):
            raise GroupFieldError(
                at,
                f"must be a content part object ({{'type': 'text', 'text': ...}}), got "
                f"{json_type(part)}",
            )
        kind = part.get("type")
        if not isinstance(kind, str) or not kind:
            raise GroupFieldError(
                f"{at}.type", f"a content part needs a string 'type', got {json_type(kind)}"
            )
        if kind == "text":
            text = part.get("text")
            if not isinstance(text, str):
                raise GroupFieldError(
                    f"{at}.text", f"a text part needs a string 'text', got {json_type(text)}"
                )
            texts.append(text)
        _check_nested(part, at)
    return "\n".join(texts)


def check_prompt(value: object) -> object:
    """Validate a prompt (see the module doc); GroupFieldError names the place."""
    if isinstance(value, str):
        problem = unicode_problem(value)
        if problem is not None:
            raise GroupFieldError("prompt", problem)
        if not value.strip():
            raise GroupFieldError("prompt", "prompt is empty")
        return value
    if not isinstance(value, list | tuple):
        raise GroupFieldError(
            "prompt",
            "must be a string or a list of chat messages ({'role', 'content'}), "
            f"got {json_type(value)}",
        )
    if not value:
        raise GroupFieldError("prompt", "prompt has no messages")
    has_text = False
    for i, message in enumerate(value):
        at = f"prompt[{i}]"
        if not isinstance(message, dict):
            raise GroupFieldError(at, "Input should be a valid dictionary")
        if "role" not in message or "content" not in message:
            raise GroupFieldError("prompt", f"message {i} needs 'role' and 'content'")
        role = message["role"]
        if not isinstance(role, str) or role not in CHAT_ROLES:
            shown = repr(role) if isinstance(role, str) else json_type(role)
            raise GroupFieldError(
                f"{at}.role", f"must be one of {', '.join(CHAT_ROLES)}; got {shown}"
            )
        text = _check_content(message["content"], f"{at}.content")
        has_text = has_text or bool(text.strip())
        _check_nested({k: v for k, v in message.items() if k != "content"}, at)
    if not has_text:
        raise GroupFieldError("prompt", "prompt is empty (no message has any text)")
    return list(value)


def check_id(value: object) -> str:
    """A group id: a non-empty string, or an integer as its decimal string."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        # ValueError, not TypeError: pydantic turns only ValueError into a validation error
        shown = json_type(value)
        if isinstance(value, bool | float):
            shown += f" {str(value).lower()}"  # e.g. "boolean true", "number 1.5"
        raise ValueError(f"must be a string or an integer, got {shown}")  # noqa: TRY004
    if isinstance(value, int):
        try:
            return str(value)
        except ValueError:  # more digits than Python converts by default
            raise ValueError("integer id has too many digits; give it as a string") from None
    if not value:
        raise ValueError("id is empty")
    return check_text(value)
