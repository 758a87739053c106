"""Rows of the public reference implementation's teacher index (`ropd.teacher_index.v1/v2`).

Those rows carry `uid`, `raw_prompt_hash` (SHA-256 of `json.dumps(raw_prompt, ensure_ascii=False,
sort_keys=True)`, where the raw prompt is the dataset's prompt: a string or a message list),
`teacher_answer` (v1) or `teacher_answers` (v2), and `teacher_fingerprint` (a dict that also holds
transport details, which are dropped here).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from ropd.data.records import DataError
from ropd.teacher.fingerprint import TeacherFingerprint

V1 = "ropd.teacher_index.v1"
V2 = "ropd.teacher_index.v2"
VERSIONS = (V1, V2)
RAW_KEY_PREFIX = "rawsha256:"
PROMPT_FIELDS = ("raw_prompt", "prompt", "messages")
TRANSPORT_FIELDS = ("base_url", "timeout_seconds", "api_key", "api_key_env")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def raw_prompt_hash(raw_prompt: str | list[dict[str, Any]]) -> str:
    """The reference implementation's prompt hash (its JSON uses the default separators)."""
    text = json.dumps(raw_prompt, ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def raw_key(digest: str) -> str:
    """Store key of a row whose prompt text is unknown: the reference's own prompt hash."""
    return RAW_KEY_PREFIX + digest


def raw_candidates(messages: list[dict[str, Any]]) -> list[str]:
    """Keys under which a legacy row without prompt text could hold these messages.

    The reference hashed the dataset's raw prompt: either this exact message list (role and
    content only) or, for a single user message, the plain string.
    """
    keys = [raw_key(raw_prompt_hash(messages))]
    if (
        len(messages) == 1
        and messages[0]["role"] == "user"
        and isinstance(messages[0]["content"], str)
    ):
        keys.append(raw_key(raw_prompt_hash(messages[0]["content"])))
    return keys


@dataclass
class LegacyRow:
    uid: str
    digest: str
    answers: list[str]
    fingerprint: TeacherFingerprint
    origin: dict[str, Any]
    raw_prompt: str | list[dict[str, Any]] | None


def legacy_fingerprint(fields: dict[str, Any], where: str) -> TeacherFingerprint:
    """Map the reference's fingerprint dict onto ours (transport fields dropped)."""
    model = fields.get("model")
    if not isinstance(model, str) or not model:
        raise DataError(f"{where}: field 'teacher_fingerprint.model' must be a non-empty string")
    extra = {}
    if fields.get("reasoning_effort") is not None:
        extra["reasoning_effort"] = fields["reasoning_effort"]
    try:
        return TeacherFingerprint(
            model=model,
            temperature=fields.get("temperature"),
            top_p=fields.get("top_p"),
            max_tokens=fields.get("max_output_tokens"),
            template_version=str(fields.get("prompt_template_version") or "legacy"),
            extra=extra,
        )
    except ValueError as exc:
        raise DataError(f"{where}: field 'teacher_fingerprint': {exc}") from None


def parse_legacy_row(row: dict[str, Any], where: str) -> LegacyRow:
    """Validate one v1/v2 row; errors name the location and the field."""
    version = row.get("schema_version")
    for field in ("uid", "raw_prompt_hash", "teacher_fingerprint"):
        if field not in row:
            raise DataError(f"{where}: missing field {field!r} (schema {version})")
    digest = row["raw_prompt_hash"]
    if not isinstance(digest, str) or not _HEX64.match(digest):
        raise DataError(f"{where}: field 'raw_prompt_hash' must be 64 lowercase hex digits")
    if version == V1:
        answers = [row.get("teacher_answer")]
        field = "teacher_answer"
    else:
        answers = row.get("teacher_answers")
        field = "teacher_answers"
        if not isinstance(answers, list) or not answers:
            raise DataError(f"{where}: field 'teacher_answers' must be a non-empty list")
    for i, answer in enumerate(answers):
        if not isinstance(answer, str):
            suffix = f"[{i}]" if version == V2 else ""
            raise DataError(
                f"{where}: field '{field}{suffix}' must be a string, got {type(answer).__name__}"
            )
    fingerprint_fields = row["teacher_fingerprint"]
    if not isinstance(fingerprint_fields, dict):
        raise DataError(f"{where}: field 'teacher_fingerprint' must be an object")
    raw_prompt = None
    for name in PROMPT_FIELDS:
        if row.get(name) is not None:
            raw_prompt = row[name]
            if raw_prompt_hash(raw_prompt) != digest:
                raise DataError(
                    f"{where}: field {name!r} does not hash to 'raw_prompt_hash'; "
                    "remove the field to import the row under its hash only"
                )
            break
    origin = {k: v for k, v in fingerprint_fields.items() if k not in TRANSPORT_FIELDS}
    return LegacyRow(
        uid=str(row["uid"]),
        digest=digest,
        answers=list(answers),
        fingerprint=legacy_fingerprint(fingerprint_fields, where),
        origin={"schema_version": version, **origin},
        raw_prompt=raw_prompt,
    )
