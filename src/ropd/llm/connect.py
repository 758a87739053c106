"""Opening a chat client for a set of roles: the one place the embedded server is started and
endpoints are probed.

Kept apart from `llm/client.py` so that the client (transport, retries) imports neither the
probe nor the local server, and the probe can use the client's error helpers without a cycle.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from ropd.llm.client import OpenAIChatClient
from ropd.llm.config import LimitsConfig, RoleConfig
from ropd.llm.local_server import LocalServer
from ropd.llm.probe import probe_endpoints

# The embedded server answers one request at a time; one waiting there would time out behind
# another, so its requests wait in the client instead (where no timeout runs).
LOCAL_SERVER_IN_FLIGHT = 1


@asynccontextmanager
async def open_chat_client(
    roles: Sequence[RoleConfig], limits: LimitsConfig | None = None, *, probe: bool = True
) -> AsyncIterator[tuple[OpenAIChatClient, list[RoleConfig]]]:
    """A client for `roles`, starting the embedded local server if any role needs it.

    Roles with `base_url=None` come back as copies pointing at one shared local server (its URL
    and model name filled in, their timeout raised to what their max_tokens needs there on a
    slow machine, `LocalServer.request_timeout_s`); its requests go one at a time
    (`LOCAL_SERVER_IN_FLIGHT`); the server is stopped when the block exits, also on errors and
    Ctrl-C. With `probe` (the default) every other endpoint is probed once before the block
    runs (`ropd.llm.probe`): unreachable, key rejected or model not served raise
    `JudgeUnavailable` before any paid request; a key the probe saw accepted counts as accepted
    by the client (`KeyAcceptance`).
    """
    server = None
    resolved = list(roles)
    remote = [role for role in roles if role.base_url is not None]
    if any(role.base_url is None for role in roles):
        server = LocalServer()
        await asyncio.to_thread(server.start)
        resolved = [
            role.model_copy(
                update={
                    "base_url": server.base_url,
                    "model": server.model,
                    "timeout_s": server.request_timeout_s(role.max_tokens, role.timeout_s),
                }
            )
            if role.base_url is None
            else role
            for role in roles
        ]
    client = OpenAIChatClient(limits)
    if server is not None:
        # llama-cpp-python takes {"type": "json_object", "schema": ...}, not json_schema
        client.set_format_mode(server.base_url, "json_object_schema")
        client.router.set_cap(server.base_url, LOCAL_SERVER_IN_FLIGHT)
    try:
        if probe and remote:
            await probe_endpoints(remote, keys=client.keys)
        yield client, resolved
    finally:
        await client.aclose()
        if server is not None:
            server.stop()


__all__ = ["LOCAL_SERVER_IN_FLIGHT", "open_chat_client"]
