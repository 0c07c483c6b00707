"""The ingest baseline: a FastAPI endpoint that validates the same body and stores nothing.

Served exactly like `margindash serve` (uvicorn.run, access_log=False, log_config=None, uvloop
and httptools when installed), so the ratio margindash / baseline is the cost of margindash's
work (auth, checks, pricing, the durable write) over plain FastAPI + pydantic validation.

Usage: python bench/noop_app.py PORT
"""

from __future__ import annotations

import sys
from typing import Annotated

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel, Field

from margindash.ledger.events import UsageEventIn


class UsageBatchIn(BaseModel):
    """`{"events": [...]}`, as `POST /v1/usage` accepts it."""

    events: Annotated[list[UsageEventIn], Field(min_length=1, max_length=1000)]


app = FastAPI()


@app.post("/v1/usage")
async def ingest(body: UsageBatchIn | UsageEventIn) -> dict[str, int]:
    return {"accepted": len(body.events) if isinstance(body, UsageBatchIn) else 1}


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=False, log_config=None)
