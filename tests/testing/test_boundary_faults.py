"""The fault judge's boundary faults over raw HTTP: flaky refusals, a long Retry-After, a redirect
to another origin (whose trap server counts what reaches it)."""

from __future__ import annotations

import http.client
import json

from ropd_dev.faults import (
    ALL_FAULTS,
    BOUNDARY_FAULTS,
    HTTP_401,
    HTTP_403,
    HTTP_429_RETRY_AFTER_LONG,
    REDIRECT_OTHER_ORIGIN,
    FaultJudgeServer,
)

from .test_faults import exchange, request_body


def test_refusals_come_only_after_the_key_was_accepted_once() -> None:
    with FaultJudgeServer(fault_rate=0.0, script=[HTTP_401, None, HTTP_401, HTTP_403]) as server:
        statuses = [exchange(server, request_body(f"q{i}"))[0] for i in range(4)]
    assert statuses == [200, 200, 401, 403]  # the first 401 would mean "wrong key": not flaky
    assert server.faults == {HTTP_401: 1, HTTP_403: 1}


def test_a_long_retry_after_is_sent_as_configured() -> None:
    with FaultJudgeServer(fault_rate=0.0, script=[HTTP_429_RETRY_AFTER_LONG]) as server:
        status, headers, _ = exchange(server, request_body())
    assert (status, headers["retry-after"]) == (429, "600")


def test_a_redirect_points_at_another_origin_that_counts_its_visitors() -> None:
    with FaultJudgeServer(fault_rate=0.0, script=[REDIRECT_OTHER_ORIGIN]) as server:
        status, headers, _ = exchange(server, request_body())
        assert status == 307 and headers["location"] == server.trap_url
        assert server.trap_url.split("/")[2] != f"127.0.0.1:{server.port}"
        assert (server.trap_requests, server.trap_authorized) == (0, 0)
        port = int(server.trap_url.split(":")[2].split("/")[0])
        visit = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        visit.request("POST", "/v1/chat/completions", body=json.dumps({}).encode(),
                      headers={"Authorization": "Bearer k"})  # fmt: skip
        assert visit.getresponse().status == 200
        visit.close()
        assert (server.trap_requests, server.trap_authorized) == (1, 1)
        assert server.stats()["trap_requests"] == 1


def test_boundary_faults_stay_out_of_the_default_mix() -> None:
    assert not set(BOUNDARY_FAULTS) & set(ALL_FAULTS)
    server = FaultJudgeServer(fault_rate=1.0)
    assert set(server.weights) == set(ALL_FAULTS)
    assert set(FaultJudgeServer(faults=BOUNDARY_FAULTS).weights) == set(BOUNDARY_FAULTS)


def test_a_client_that_leaves_early_prints_no_socket_traceback(capfd) -> None:
    import socket
    import struct
    import time

    from ropd.testing import StubJudgeServer

    with StubJudgeServer(latency_s=0.3) as stub:
        for _ in range(3):
            body = json.dumps(request_body()).encode()
            sock = socket.create_connection(("127.0.0.1", stub.port))
            sock.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                + f"\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            # leave with a reset before the reply: the server's write fails
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
        time.sleep(1.0)  # the replies are written (and fail) after the latency
        assert stub.requests == 3
    assert "Traceback" not in capfd.readouterr().err
