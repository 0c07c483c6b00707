"""`/settings` (admins only): API keys, users, Stripe, e-mail, time zone and currency."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from starlette.responses import RedirectResponse, Response

from margindash.budgets.notifiers import DeliveryFailed
from margindash.orgs.keys import create_api_key, revoke_api_key
from margindash.orgs.service import update_org
from margindash.stripe_sync.configure import configure_stripe
from margindash.users.accounts import UserExists, create_user, generate_password
from margindash.web.auth import PageError, verify_csrf
from margindash.web.pages.settings import NOTICES, build_settings, send_test_email
from margindash.web.render import AdminPageDep, PageScope, csv_download, render

router = APIRouter(include_in_schema=False, dependencies=[Depends(verify_csrf)])


def _page(request: Request, page: PageScope, *, status: int = 200, **context: Any) -> Response:
    view = build_settings(page.services.engine, page.services.settings, org=page.org)
    return render(
        request, page, "settings.html", active="settings", status=status, view=view, **context
    )


def _done(page: PageScope, notice: str) -> Response:
    return RedirectResponse(f"/settings?done={notice}&{page.period.query}", status_code=303)


@router.get("/settings")
def settings_page(
    request: Request,
    page: AdminPageDep,
    done: Annotated[str | None, Query(max_length=40)] = None,
    export: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    if export is not None:
        view = build_settings(page.services.engine, page.services.settings, org=page.org)
        return csv_download(page, view.tables, export)
    return _page(request, page, notice=NOTICES.get(done or ""))


@router.post("/settings/keys")
def create_key(
    request: Request,
    page: AdminPageDep,
    scope: Annotated[str, Form(max_length=16)] = "",
    name: Annotated[str, Form(max_length=255)] = "",
) -> Response:
    try:
        secret = create_api_key(
            page.services.engine, org_id=page.org.id, scope=scope, name=name.strip() or None
        )
    except ValueError as exc:
        return _page(request, page, status=422, error=str(exc))
    return _page(request, page, new_key=secret, new_key_scope=scope)


@router.post("/settings/keys/{key_id}/revoke")
def revoke_key(key_id: str, page: AdminPageDep) -> Response:
    if not revoke_api_key(page.services.engine, org_id=page.org.id, key_id=key_id):
        raise PageError(404, "No such key", "That API key does not exist or is already revoked.")
    return _done(page, "key-revoked")


@router.post("/settings/users")
def add_user(
    request: Request,
    page: AdminPageDep,
    email: Annotated[str, Form(max_length=320)] = "",
    role: Annotated[str, Form(max_length=16)] = "viewer",
    password: Annotated[str, Form(max_length=1024)] = "",
) -> Response:
    chosen = password or generate_password()
    try:
        user = create_user(
            page.services.engine, org_id=page.org.id, email=email, password=chosen, role=role
        )
    except (UserExists, ValueError) as exc:
        return _page(request, page, status=422, error=str(exc))
    return _page(request, page, new_user=user, new_password=None if password else chosen)


@router.post("/settings/org")
def save_org(
    request: Request,
    page: AdminPageDep,
    timezone: Annotated[str, Form(max_length=64)] = "",
    currency: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    try:
        update_org(
            page.services.engine,
            org_id=page.org.id,
            timezone=timezone or None,
            currency=currency or None,
        )
    except ValueError as exc:
        return _page(request, page, status=422, error=str(exc))
    page.services.forget_org(page.org.id)
    return _done(page, "org-saved")


@router.post("/settings/smtp-test")
def smtp_test(
    request: Request, page: AdminPageDep, to: Annotated[str, Form(max_length=320)] = ""
) -> Response:
    address = to.strip() or page.session.user.email
    try:
        send_test_email(page.services.settings, org=page.org, to=address)
    except DeliveryFailed as exc:
        return _page(request, page, status=502, error=f"The test e-mail to {address} failed: {exc}")
    return _done(page, "email-sent")


@router.post("/settings/stripe")
def save_stripe(
    request: Request,
    page: AdminPageDep,
    webhook_secret: Annotated[str, Form(max_length=1100)] = "",
    mode: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    secrets = [part.strip() for part in webhook_secret.split(",") if part.strip()]
    try:
        configure_stripe(
            page.services.engine,
            settings=page.services.settings,
            org=page.org,
            webhook_secrets=secrets or None,
            mode=mode or None,
        )
    except ValueError as exc:
        return _page(request, page, status=422, error=str(exc))
    return _done(page, "stripe-saved")
