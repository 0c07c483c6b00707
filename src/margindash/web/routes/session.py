"""`/login` and `/logout`."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import RedirectResponse, Response

from margindash.api.deps import ServicesDep
from margindash.users.login import LoginThrottled, sign_in
from margindash.users.sessions import end_session, load_session
from margindash.web.auth import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    PageError,
    check_login_csrf,
    login_csrf_token,
    safe_next,
    set_cookie,
    verify_csrf,
)
from margindash.web.render import render

router = APIRouter(include_in_schema=False)
_LOGIN_CSRF_MAX_AGE = 3600


def _login_page(
    request: Request,
    services: ServicesDep,
    *,
    next_url: str,
    error: str | None = None,
    email: str | None = None,
    status: int = 200,
) -> Response:
    token = login_csrf_token(request)
    response = render(
        request,
        None,
        "login.html",
        status=status,
        csrf_token=token,
        next_url=next_url,
        error=error,
        email=email,
    )
    set_cookie(
        response,
        request,
        services.settings,
        name=LOGIN_CSRF_COOKIE,
        value=token,
        max_age=_LOGIN_CSRF_MAX_AGE,
    )
    return response


@router.get("/login")
def login_form(request: Request, services: ServicesDep, next: str | None = None) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token and load_session(services.engine, token):
        return RedirectResponse(safe_next(next), status_code=303)
    return _login_page(request, services, next_url=safe_next(next))


@router.post("/login")
def login(
    request: Request,
    services: ServicesDep,
    email: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    csrf_token: Annotated[str, Form(max_length=128)] = "",
    next: Annotated[str, Form(max_length=2048)] = "/",
) -> Response:
    check_login_csrf(request, csrf_token)
    settings = services.settings
    try:
        signed_in = sign_in(
            services.engine,
            email=email,
            password=password,
            client=request.client.host if request.client else "unknown",
            max_failures=settings.login_max_failures,
            lifetime=timedelta(hours=settings.session_hours),
        )
    except LoginThrottled as exc:
        raise PageError(
            429,
            "Too many attempts",
            f"Too many failed logins. Try again in {exc.retry_after // 60 + 1} minutes.",
            headers={"Retry-After": str(exc.retry_after)},
        ) from None
    if signed_in is None:
        return _login_page(
            request,
            services,
            next_url=safe_next(next),
            error="Wrong e-mail or password.",
            email=email,
            status=401,
        )
    token, _session = signed_in
    response = RedirectResponse(safe_next(next), status_code=303)
    set_cookie(
        response,
        request,
        settings,
        name=SESSION_COOKIE,
        value=token,
        max_age=settings.session_hours * 3600,
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
    return response


@router.post("/logout", dependencies=[Depends(verify_csrf)])
def logout(request: Request, services: ServicesDep) -> Response:
    end_session(services.engine, request.cookies.get(SESSION_COOKIE, ""))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
