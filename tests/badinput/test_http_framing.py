"""Requests whose framing lies (Content-Length, chunked encoding), sent byte by byte to a real
server: each is refused with a 4xx or dropped, nothing is stored, no error is logged, and the
server goes on serving."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable

import httpx
import pytest
from sqlalchemy import Engine

from tests.conftest import Tenant, db_state
from tests.live_server import LiveServer
from tests.test_cli_e2e import event

BODY = json.dumps(event("framing-1")).encode()


def exchange(port: int, data: bytes, *, half_close: bool = False) -> bytes:
    """Send raw bytes, then read until the server closes the connection (or 10 s pass)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    return received


def request(headers: dict[str, str], body: bytes, key: str) -> bytes:
    lines = ["POST /v1/usage HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"Authorization: Bearer {key}", "Content-Type: application/json"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def status_of(response: bytes) -> int | None:
    """The status of the first response, None if the server closed without one."""
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/1.1 ") else None


CASES = [
    # Shorter than the body: the JSON is cut, and the rest is no HTTP request at all.
    ("content-length too small", {"Content-Length": str(len(BODY) // 2)}, BODY, False, 400),
    # Longer than the body, then the client stops sending: the server must not wait forever.
    ("content-length too large", {"Content-Length": str(len(BODY) + 100)}, BODY, True, None),
    ("content-length over the limit", {"Content-Length": str(6 * 1024 * 1024)}, BODY, True, 413),
    ("content-length not a number", {"Content-Length": "12abc"}, BODY, False, 400),
    ("content-length negative", {"Content-Length": "-5"}, BODY, False, 400),
    (
        "content-length twice, differing",
        {"Content-Length": str(len(BODY)), "content-length": "3"},
        BODY,
        False,
        400,
    ),
    (
        "content-length and chunked",  # request smuggling's favourite
        {"Content-Length": "4", "Transfer-Encoding": "chunked"},
        b"%x\r\n" % len(BODY) + BODY + b"\r\n0\r\n\r\n",
        False,
        400,
    ),
    ("chunk size lies", {"Transfer-Encoding": "chunked"}, b"ffff\r\n" + BODY + b"\r\n", True, None),
    ("chunk size not hex", {"Transfer-Encoding": "chunked"}, b"zz\r\n" + BODY, False, 400),
]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_lying_framing_is_refused_and_leaves_nothing_behind(
    database_url: str,
    engine: Engine,
    tenant: Tenant,
    start_server: Callable[..., LiveServer],
) -> None:
    server = start_server(database_url)
    key = tenant.created.ingest_key
    before = db_state(engine)
    wrong = []
    for name, headers, body, half_close, expected in CASES:
        status = status_of(
            exchange(server.port, request(headers, body, key), half_close=half_close)
        )
        if status != expected:
            wrong.append(f"{name}: {status}, expected {expected}")
    assert wrong == []
    assert db_state(engine) == before
    # An honest request on a fresh connection still works, and nothing was logged as an error.
    response = httpx.post(f"{server.url}/v1/usage", content=BODY, headers=tenant.ingest)
    assert response.status_code == 200 and response.json()["accepted"] == 1
    assert server.server_errors() == []
