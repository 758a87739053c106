"""What a group must be (`Group`), and how the groups reader reports each bad line and file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from ropd.errors import InputError
from ropd.io import GroupsFileError, read_groups
from ropd.reward.base import as_group
from ropd.reward.input_checks import MAX_PROMPT_DEPTH
from ropd.reward.types import Group

SURROGATE = json.loads('"half an emoji \\ud83d"')  # valid JSON, not valid Unicode
BASE = {"id": "g", "prompt": "q", "student_responses": ["a"], "teacher_responses": ["t"]}


def invalid(**changes: object) -> tuple[tuple, str]:
    """(loc, msg) of the single validation error of BASE with `changes`."""
    with pytest.raises(ValidationError) as caught:
        Group.model_validate({**BASE, **changes})
    (error,) = caught.value.errors()
    return tuple(error["loc"]), error["msg"].removeprefix("Value error, ")


def user(content: object, **extra: object) -> list[dict]:
    return [{"role": "user", "content": content, **extra}]


# -- Group: valid Unicode everywhere --------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "loc", "where"),
    [
        ({"student_responses": ["a", "b", SURROGATE]}, ("student_responses", 2), None),
        ({"teacher_responses": [SURROGATE]}, ("teacher_responses", 0), None),
        ({"id": SURROGATE}, ("id",), None),
        ({"prompt": SURROGATE}, ("prompt",), "prompt"),
        ({"prompt": user(SURROGATE)}, ("prompt",), "prompt[0].content"),
        (
            {"prompt": user([{"type": "text", "text": "ok"}, {"type": "text", "text": SURROGATE}])},
            ("prompt",),
            "prompt[0].content[1].text",
        ),
        ({"prompt": user("q", name=SURROGATE)}, ("prompt",), "prompt[0].name"),
    ],
)
def test_a_lone_surrogate_is_rejected_naming_the_field(changes, loc, where):
    got_loc, msg = invalid(**changes)
    assert got_loc == loc
    if where is not None:
        assert msg.startswith(f"{where}: ")
    assert "not valid Unicode: lone surrogate U+D83D at character 14" in msg


def test_valid_unicode_and_empty_answers_are_accepted():
    emoji = json.loads('"\\ud83d\\ude00 ok"')  # a proper surrogate pair: one code point
    group = Group.model_validate(
        {**BASE, "student_responses": [emoji, ""], "teacher_responses": [""], "id": emoji}
    )
    assert group.student_responses == ["\U0001f600 ok", ""]


def test_library_users_get_the_same_checks_through_as_group():
    with pytest.raises(InputError, match=r"student_responses\.0\n.*lone surrogate"):
        as_group({**BASE, "student_responses": [SURROGATE]})
    with pytest.raises(ValidationError, match="prompt\\[0\\].role"):
        Group(id="x", prompt=[{"role": "robot", "content": "q"}], student_responses=["a"])


# -- Group: ids -------------------------------------------------------------------------------


def test_ids_are_strings_or_integers():
    assert Group.model_validate({**BASE, "id": 7}).id == "7"
    assert Group.model_validate({**BASE, "id": -3}).id == "-3"
    assert invalid(id=True) == (("id",), "must be a string or an integer, got boolean true")
    assert invalid(id=False)[1].endswith("got boolean false")
    assert invalid(id=1.5) == (("id",), "must be a string or an integer, got number 1.5")
    assert invalid(id=2.0)[1].endswith("got number 2.0")
    assert invalid(id=None)[1].endswith("got null")
    assert invalid(id=["a"])[1].endswith("got array")
    assert invalid(id={"a": 1})[1].endswith("got object")
    assert invalid(id="") == (("id",), "id is empty")
    assert invalid(id=10**5000)[1] == "integer id has too many digits; give it as a string"


# -- Group: prompts -----------------------------------------------------------------------------


def test_chat_messages_accept_every_openai_role_and_text_parts():
    prompt = [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": ""},
        {"role": "user", "content": [{"type": "text", "text": "17*23?"}]},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "type": "function"}]},
        {"role": "tool", "content": "391", "tool_call_id": "c1"},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]},
    ]
    group = Group.model_validate({**BASE, "prompt": prompt})
    assert group.prompt == prompt  # other keys and non-text parts are kept as given


@pytest.mark.parametrize(
    ("prompt", "message"),
    [
        ([], "prompt: prompt has no messages"),
        ("  \n", "prompt: prompt is empty"),
        (
            7,
            (
                "prompt: must be a string or a list of chat messages ({'role', 'content'}), got "
                "integer"
            ),
        ),
        (
            None,
            "prompt: must be a string or a list of chat messages ({'role', 'content'}), got null",
        ),
        (["hi"], "prompt[0]: Input should be a valid dictionary"),
        ([{"role": "user"}], "prompt: message 0 needs 'role' and 'content'"),
        (
            user("q") + [{"role": "bot", "content": "x"}],
            "prompt[1].role: must be one of system, user, assistant, developer, tool; got 'bot'",
        ),
        (
            [{"role": 3, "content": "x"}],
            "prompt[0].role: must be one of system, user, assistant, developer, tool; got integer",
        ),
        (
            user(None),
            (
                "prompt[0].content: must be a string or a list of content parts "
                "([{'type': 'text', 'text': ...}]), got null"
            ),
        ),
        (user(5), "prompt[0].content: must be a string or a list of content parts"),
        (user(["hi"]), "prompt[0].content[0]: must be a content part object"),
        (user([{"text": "hi"}]), "prompt[0].content[0].type: a content part needs a string"),
        (
            user([{"type": "text", "text": None}]),
            "prompt[0].content[0].text: a text part needs a string 'text', got null",
        ),
        (user(" "), "prompt: prompt is empty (no message has any text)"),
        (user([]), "prompt: prompt is empty (no message has any text)"),
    ],
)
def test_bad_prompts_name_the_place(prompt, message):
    loc, msg = invalid(prompt=prompt)
    assert loc == ("prompt",)
    assert msg.startswith(message)


def test_prompt_nesting_is_bounded():
    deep: object = "x"
    for _ in range(MAX_PROMPT_DEPTH + 1):
        deep = [deep]
    _, msg = invalid(prompt=user("q", metadata=deep))
    assert msg.startswith("prompt[0].metadata") and f"deeper than {MAX_PROMPT_DEPTH}" in msg
    shallow: object = "x"
    for _ in range(MAX_PROMPT_DEPTH - 2):
        shallow = [shallow]
    assert Group.model_validate({**BASE, "prompt": user("q", metadata=shallow)})


def test_answers_must_be_strings_and_students_non_empty():
    assert invalid(student_responses=[]) == (
        ("student_responses",),
        "List should have at least 1 item after validation, not 0",
    )
    assert invalid(student_responses=["a", None])[0] == ("student_responses", 1)
    assert invalid(teacher_responses=[1])[0] == ("teacher_responses", 0)
    assert invalid(teacher_responses="t")[0] == ("teacher_responses",)


# -- the reader: each rule as file:line: field ----------------------------------------------


def write(path: Path, lines: list[str | dict | bytes]) -> Path:
    chunks = []
    for line in lines:
        if isinstance(line, bytes):
            chunks.append(line)
        else:
            text = line if isinstance(line, str) else json.dumps(line)
            chunks.append(text.encode("utf-8") + b"\n")
    path.write_bytes(b"".join(chunks))
    return path


def errors_of(path: Path, **kw: object) -> list[str]:
    with pytest.raises(GroupsFileError) as caught:
        read_groups(path, **kw)
    return [str(e) for e in caught.value.errors]


def test_reader_reports_every_group_rule_by_line_and_field(tmp_path: Path):
    path = write(
        tmp_path / "g.jsonl",
        [
            {**BASE, "id": "ok"},
            {**BASE, "id": "s", "student_responses": ["a", "b", SURROGATE]},
            {**BASE, "id": True},
            {**BASE, "id": ""},
            {**BASE, "id": "r", "prompt": user("q") + [{"role": "bot", "content": "x"}]},
            {**BASE, "id": "n", "prompt": user(None)},
            {**BASE, "id": "p", "prompt": user([{"type": "text", "text": SURROGATE}])},
            {**BASE, "id": "t", "teacher_responses": []},
            {**BASE, "id": 2.5},
        ],
    )
    p = str(path)
    errors = errors_of(path)
    assert errors == [
        (
            f"{p}:2: field 'student_responses[2]': not valid Unicode: lone surrogate U+D83D at "
            "character 14 (cannot be encoded as UTF-8; often an emoji cut in half)"
        ),
        f"{p}:3: field 'id': must be a string or an integer, got boolean true",
        f"{p}:4: field 'id': id is empty",
        (
            f"{p}:5: field 'prompt[1].role': must be one of system, user, assistant, developer, "
            "tool; got 'bot'"
        ),
        (
            f"{p}:6: field 'prompt[0].content': must be a string or a list of content parts "
            "([{'type': 'text', 'text': ...}]), got null"
        ),
        (
            f"{p}:7: field 'prompt[0].content[0].text': not valid Unicode: lone surrogate "
            "U+D83D at character 14 (cannot be encoded as UTF-8; often an emoji cut in half)"
        ),
        (
            f"{p}:8: field 'teacher_responses': no teacher answers; give at least one, or score "
            "without references (num_teacher_refs=0, `-k 0`)"
        ),
        f"{p}:9: field 'id': must be a string or an integer, got number 2.5",
    ]


def test_empty_teacher_lists_are_fine_when_not_required(tmp_path: Path):
    path = write(tmp_path / "g.jsonl", [{**BASE, "teacher_responses": []}])
    assert read_groups(path, require_teacher=False)[0].teacher_responses == []


def test_json_level_problems(tmp_path: Path):
    path = write(
        tmp_path / "g.jsonl",
        [
            '{"id": "a", "id": "b", "prompt": "q", "student_responses": ["x"]}',
            '{"id": "d", "prompt": ' + "[" * 50_000 + "]" * 50_000 + "}",
            '{"id": ' + "9" * 5000 + "}",
            '{"id": "n", "prompt": {"role": "user", "role": "x"}}',
            {**BASE, "id": 10**40},  # a long but convertible integer id is fine
        ],
    )
    p = str(path)
    errors = errors_of(path)
    assert errors[:2] == [
        f"{p}:1: invalid JSON: the key 'id' appears twice in one object",
        f"{p}:2: invalid JSON: nested too deeply",
    ]
    assert errors[2].startswith(f"{p}:3: invalid JSON: Exceeds the limit (4300 digits)")
    assert errors[3] == f"{p}:4: invalid JSON: the key 'role' appears twice in one object"
    assert len(errors) == 4


def test_byte_order_marks(tmp_path: Path):
    line = json.dumps(BASE)
    bom = write(tmp_path / "bom.jsonl", [b"\xef\xbb\xbf" + line.encode() + b"\n"])
    assert [g.id for g in read_groups(bom)] == ["g"]
    # concatenated BOM files: a mark at the start of a later line is ignored as well
    two = write(tmp_path / "two.jsonl", [line, "\ufeff" + json.dumps({**BASE, "id": "h"})])
    assert [g.id for g in read_groups(two)] == ["g", "h"]
    utf16 = tmp_path / "utf16.jsonl"
    utf16.write_bytes(("\ufeff" + line + "\n" + line + "\n").encode("utf-16-le"))
    assert errors_of(utf16) == [
        f"{utf16}: encoded as UTF-16 or UTF-32 (byte order mark at the start); save it as UTF-8"
    ]


def test_input_path_problems_are_named(tmp_path: Path):
    (tmp_path / "dir.jsonl").mkdir()
    assert errors_of(tmp_path / "dir.jsonl") == [
        f"{tmp_path / 'dir.jsonl'}: is a directory, not a groups file"
    ]
    assert errors_of(tmp_path / "no.jsonl") == [f"{tmp_path / 'no.jsonl'}: file not found"]


def test_unreadable_input_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = write(tmp_path / "g.jsonl", [BASE])

    def refuse(self: Path, *args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "open", refuse)
    assert errors_of(path) == [f"{path}: cannot read the file (Permission denied)"]
