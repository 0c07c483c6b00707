"""The dashboard: server-rendered pages from the same app, every asset served locally."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import FastAPI, Request
from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from margindash import __version__
from margindash.web.auth import LoginRequired, PageError
from margindash.web.render import render
from margindash.web.routes import budgets, pricing, reports, session, settings, simulator
from margindash.web.templating import STATIC_DIR, globals_for


def install_dashboard(app: FastAPI) -> None:
    """Mount the static files, the page routes and the pages' error handlers on `app`."""
    globals_for(version=__version__)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for module in (session, reports, simulator, budgets, pricing, settings):
        app.include_router(module.router)

    @app.exception_handler(LoginRequired)
    async def _login_required(_request: Request, exc: LoginRequired) -> Response:
        return RedirectResponse(f"/login?next={quote(exc.next_url, safe='/')}", status_code=303)

    @app.exception_handler(PageError)
    async def _page_error(request: Request, exc: PageError) -> Response:
        return render(
            request,
            None,
            "error.html",
            status=exc.status,
            headers=exc.headers,
            title=exc.title,
            message=exc.message,
        )
