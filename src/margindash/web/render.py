"""What every page gets (user, org, period) and how a page becomes HTML or a CSV download."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from starlette.responses import Response

from margindash.api.deps import Services, ServicesDep
from margindash.orgs.service import Org
from margindash.users.sessions import Session
from margindash.web.auth import AdminDep, PageError, SessionDep
from margindash.web.period import PRESETS, Period, choose_period
from margindash.web.tables import DataTable
from margindash.web.templating import TEMPLATES

# Everything is served from this origin: no CDN, no inline scripts (works air-gapped).
HTML_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}

_UNSAFE_IN_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")

NAV = (
    ("overview", "Overview", "/"),
    ("customers", "Customers", "/customers"),
    ("features", "Features", "/features"),
    ("models", "Models", "/models"),
    ("simulator", "Simulator", "/simulator"),
    ("budgets", "Budgets & alerts", "/budgets"),
    ("pricing", "Pricing", "/pricing"),
    ("settings", "Settings", "/settings"),
)


@dataclass(frozen=True, slots=True)
class PageScope:
    """The signed-in user, their org, the app's services and the chosen period."""

    session: Session
    org: Org
    services: Services
    period: Period


def page_scope(
    session: SessionDep,
    services: ServicesDep,
    period: Annotated[str | None, Query(max_length=20)] = None,
    date_from: Annotated[str | None, Query(alias="from", max_length=10)] = None,
    date_to: Annotated[str | None, Query(alias="to", max_length=10)] = None,
) -> PageScope:
    org = services.org(session.user.org_id)
    today = datetime.now(org.zone).date()
    chosen = choose_period(today=today, preset=period, date_from=date_from, date_to=date_to)
    return PageScope(session=session, org=org, services=services, period=chosen)


PageDep = Annotated[PageScope, Depends(page_scope)]


def admin_page_scope(page: PageDep, _admin: AdminDep) -> PageScope:
    """The page scope of an admin; 403 for viewers."""
    return page


AdminPageDep = Annotated[PageScope, Depends(admin_page_scope)]


def render(
    request: Request,
    scope: PageScope | None,
    template: str,
    *,
    active: str | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> Response:
    """An HTML page; with a scope, the page has the navigation and the period picker."""
    values: dict[str, Any] = {"active": active, "scope": scope, "presets": PRESETS, **context}
    if scope is not None:
        values.update(
            user=scope.session.user,
            org=scope.org,
            period=scope.period,
            currency=scope.org.currency,
            csrf_token=scope.session.csrf_token,
            nav=[item for item in NAV if item[0] != "settings" or scope.session.user.is_admin],
        )
    return TEMPLATES.TemplateResponse(
        request, template, values, status_code=status, headers={**HTML_HEADERS, **(headers or {})}
    )


def respond(
    request: Request,
    scope: PageScope,
    template: str,
    *,
    active: str,
    tables: dict[str, DataTable],
    export: str | None,
    **context: Any,
) -> Response:
    """The page, or with `?export=NAME` the CSV of one of its tables."""
    if export is not None:
        return csv_download(scope, tables, export)
    return render(request, scope, template, active=active, tables=tables, **context)


def csv_download(scope: PageScope, tables: dict[str, DataTable], name: str) -> Response:
    """One of a page's tables as a CSV attachment; 404 when the page has no such table."""
    table = tables.get(name)
    if table is None:
        raise PageError(404, "No such table", f"This page has no table named {name!r}.")
    period = scope.period
    stem = f"{scope.org.name}-{table.name}-{period.date_from}-{period.date_to}"
    filename = _UNSAFE_IN_FILENAME.sub("_", stem) + ".csv"
    return Response(
        table.to_csv(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )
