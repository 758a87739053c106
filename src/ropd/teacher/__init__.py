"""Offline teacher references: the store training looks answers up in, and its builder."""

from ropd.teacher.builder import BuildAborted, BuildReport, build_references, prompt_items
from ropd.teacher.fingerprint import TEMPLATE_VERSION, TeacherFingerprint, prompt_key
from ropd.teacher.store import (
    FingerprintMismatch,
    MissingReferences,
    TeacherStore,
    TeacherStoreError,
)

__all__ = [
    "TEMPLATE_VERSION",
    "BuildAborted",
    "BuildReport",
    "FingerprintMismatch",
    "MissingReferences",
    "TeacherFingerprint",
    "TeacherStore",
    "TeacherStoreError",
    "build_references",
    "prompt_items",
    "prompt_key",
]
