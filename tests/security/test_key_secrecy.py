"""API keys are stored only as hashes and never logged: the plaintext appears neither in a full
dump of the database nor anywhere in a real server's output (ours and uvicorn's, at DEBUG)."""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from margindash.orgs.keys import create_api_key, hash_key
from tests.conftest import Tenant
from tests.live_server import LiveServer
from tests.test_cli_e2e import event


def database_dump(database_url: str) -> bytes:
    """Everything the database holds: pg_dump's output, or SQLite's dump plus its raw files."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        assert url.database
        with sqlite3.connect(url.database) as conn:
            text = "\n".join(conn.iterdump())
        raw = b"".join(
            Path(url.database + suffix).read_bytes()
            for suffix in ("", "-wal")
            if Path(url.database + suffix).exists()
        )
        return text.encode() + raw
    host, port, user = url.host or "127.0.0.1", str(url.port or 5432), url.username or "postgres"
    dumped = subprocess.run(
        ["pg_dump", "--data-only", "-h", host, "-p", port, "-U", user, url.database or ""],
        capture_output=True,
        timeout=60,
        check=True,
    )
    return dumped.stdout


def fragments(secret: str) -> list[bytes]:
    """The key and its random part (a log or dump might drop the `md_scope_` prefix)."""
    random_part = secret.split("_", 2)[2]
    return [secret.encode(), random_part.encode(), random_part[:16].encode()]


def test_keys_are_hashed_at_rest_and_absent_from_every_log_line(
    database_url: str,
    engine: Engine,
    tenant: Tenant,
    start_server: Callable[..., LiveServer],
) -> None:
    spare = create_api_key(engine, org_id=tenant.org.id, scope="read", name="spare")
    server = start_server(database_url, access_log=True, MARGINDASH_LOG_LEVEL="DEBUG")
    keys = {
        "admin": tenant.created.admin_key,
        "ingest": tenant.created.ingest_key,
        "read": tenant.read_key,
        "spare": spare,
    }
    unknown = "md_admin_" + "Z" * 32
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for secret in (*keys.values(), unknown):
            bearer = {"Authorization": f"Bearer {secret}"}
            client.post("/v1/usage", json=event(f"ev-{secret[-6:]}"), headers=bearer)
            client.post("/v1/usage", json=event("bad", prompt_tokens=-1), headers=bearer)
            client.get("/v1/pnl", headers=bearer)
            client.get("/v1/usage/ev-missing", headers=bearer)
            client.post("/v1/pricing/aliases", json={"alias": "a", "model": "b"}, headers=bearer)
            client.post("/v1/usage", content=b"{oops", headers=bearer)
        for secret in keys.values():  # every key worked: these requests were logged as 200s
            response = client.get("/v1/pnl", headers={"Authorization": f"Bearer {secret}"})
            assert response.status_code in (200, 403)
    server.stop()  # flushes and closes every log handler

    log = server.log()
    assert '"POST /v1/usage HTTP/1.1" 200' in log, "uvicorn's access log was not captured"
    assert '"GET /v1/pnl HTTP/1.1" 401' in log
    for name, secret in [*keys.items(), ("unknown", unknown)]:
        for fragment in fragments(secret):
            assert fragment.decode() not in log, f"the {name} key is in the server's log"

    dump = database_dump(database_url)
    for name, secret in keys.items():
        assert hash_key(secret).encode() in dump  # the dump does hold the keys, hashed
        for fragment in fragments(secret):
            assert fragment not in dump, f"the {name} key is stored in plaintext"
