"""Fixtures of the dashboard tests: an app with an admin and a viewer of one org."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from margindash.app import create_app
from margindash.config import Settings
from margindash.users.accounts import create_user
from tests.conftest import Tenant
from tests.web.helpers import PASSWORD

ADMIN_EMAIL = "founder@example.com"
VIEWER_EMAIL = "finance@example.com"


@dataclass
class Dashboard:
    """A running app, its org (with API keys) and two dashboard users."""

    client: TestClient
    tenant: Tenant
    engine: Engine


@pytest.fixture
def dashboard(settings: Settings, engine: Engine, tenant: Tenant) -> Iterator[Dashboard]:
    for email, role in ((ADMIN_EMAIL, "admin"), (VIEWER_EMAIL, "viewer")):
        create_user(engine, org_id=tenant.org.id, email=email, password=PASSWORD, role=role)
    with TestClient(create_app(settings)) as client:
        yield Dashboard(client, tenant, engine)
