"""Who is looking at a page: the session cookie, roles, and CSRF checks on every form."""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated

from fastapi import Depends, Request
from starlette.responses import Response

from margindash.api.deps import ServicesDep
from margindash.config import Settings
from margindash.users.sessions import Session, load_session

SESSION_COOKIE = "margindash_session"
LOGIN_CSRF_COOKIE = "margindash_login_csrf"
CSRF_FIELD = "csrf_token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class LoginRequired(Exception):
    """The page needs a signed-in user; answered with a redirect to the login page."""

    def __init__(self, next_url: str):
        super().__init__(next_url)
        self.next_url = next_url


class PageError(Exception):
    """An error answered with an HTML page."""

    def __init__(
        self, status: int, title: str, message: str, headers: dict[str, str] | None = None
    ):
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message
        self.headers = headers or {}


def current_session(request: Request, services: ServicesDep) -> Session:
    """The signed-in user's session; LoginRequired without a live one."""
    token = request.cookies.get(SESSION_COOKIE)
    session = load_session(services.engine, token) if token else None
    if session is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(target if request.method == "GET" else "/")
    return session


SessionDep = Annotated[Session, Depends(current_session)]


def admin_session(session: SessionDep) -> Session:
    """The session of an admin; 403 for viewers."""
    if not session.user.is_admin:
        raise PageError(
            403,
            "Admins only",
            "Your account can read reports but not change settings. Ask an admin of your "
            "organisation for access.",
        )
    return session


AdminDep = Annotated[Session, Depends(admin_session)]


async def verify_csrf(request: Request, session: SessionDep) -> None:
    """Refuse a form that does not carry the session's CSRF token (every unsafe method)."""
    if request.method in _SAFE_METHODS:
        return
    form = await request.form()
    sent = form.get(CSRF_FIELD)
    if not isinstance(sent, str) or not hmac.compare_digest(sent, session.csrf_token):
        raise csrf_refused()


def csrf_refused() -> PageError:
    return PageError(
        403,
        "Form expired",
        "This form was missing its security token or came from another site. Go back, reload "
        "the page and submit it again.",
    )


def login_csrf_token(request: Request) -> str:
    """The token of the login form: kept in a cookie until a session exists (double submit)."""
    return request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)


def check_login_csrf(request: Request, sent: str) -> None:
    expected = request.cookies.get(LOGIN_CSRF_COOKIE)
    if not expected or not hmac.compare_digest(sent, expected):
        raise csrf_refused()


def secure_cookies(request: Request, settings: Settings) -> bool:
    """Cookies are `Secure` when the dashboard is reached over https (also behind a proxy)."""
    return request.url.scheme == "https" or settings.dashboard_url.startswith("https://")


def set_cookie(
    response: Response,
    request: Request,
    settings: Settings,
    *,
    name: str,
    value: str,
    max_age: int | None,
) -> None:
    """An HttpOnly, SameSite=Lax cookie for the whole site."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="lax",
        secure=secure_cookies(request, settings),
    )


def safe_next(url: str | None) -> str:
    """A local path to go to after login; never another site."""
    if not url or not url.startswith("/") or url.startswith("//") or "\\" in url:
        return "/"
    return url
