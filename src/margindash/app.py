"""The FastAPI application: API routers, error handlers, and the writer's lifecycle."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.routing import Route

from margindash import __version__
from margindash.api.deps import Services
from margindash.api.errors import install_error_handlers
from margindash.api.routers import alerts, budgets, ops, pnl, pricing, revenue, usage
from margindash.api.routers import simulate as simulate_api
from margindash.api.routers import stripe as stripe_api
from margindash.budgets.evaluator import BudgetEvaluator
from margindash.config import Settings, get_settings
from margindash.db.engine import make_engine
from margindash.db.migrate import upgrade
from margindash.jobs.scheduler import JobContext, Scheduler
from margindash.ledger.events import UsageEventIn
from margindash.ledger.ingest import UsageIngestor, event_rules
from margindash.ledger.revenue import RevenueIn
from margindash.ledger.writer import LedgerWriter
from margindash.pricing.service import Pricer
from margindash.runtime import freeze_startup_objects, unfreeze_startup_objects
from margindash.simulator.request import SimulateIn
from margindash.web import install_dashboard


def build_services(settings: Settings) -> tuple[Services, LedgerWriter]:
    """Engine, pricer, writer and ingestor for one process."""
    engine = make_engine(settings.database_url)
    pricer = Pricer(engine)
    writer = LedgerWriter(engine)
    ingestor = UsageIngestor(
        engine=engine, pricer=pricer, rules=event_rules(settings), writer=writer
    )
    return Services(settings=settings, engine=engine, pricer=pricer, ingestor=ingestor), writer


def create_app(settings: Settings | None = None, *, run_jobs: bool = False) -> FastAPI:
    """The margindash web application; `run_jobs` also runs the periodic jobs in-process."""
    settings = settings or get_settings()
    services, writer = build_services(settings)
    budget_evaluator = BudgetEvaluator(engine=services.engine, settings=settings)
    writer.after_commit.append(budget_evaluator.on_commit)
    scheduler = Scheduler(JobContext(settings=settings, engine=services.engine))

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        upgrade(services.engine)
        writer.start()
        budget_evaluator.start()
        if run_jobs:
            scheduler.start()
        services.pricer.catalogue  # noqa: B018  (loaded now, so it is frozen with the rest)
        freeze_startup_objects()
        try:
            yield
        finally:
            unfreeze_startup_objects()
            scheduler.stop()
            writer.stop()
            budget_evaluator.stop()
            services.engine.dispose()

    app = FastAPI(
        title="margindash",
        version=__version__,
        summary="Per-customer P&L for AI products: usage events, prices, revenue.",
        lifespan=lifespan,
        # Metrics are Prometheus (`/metrics`) and logs are structured JSON; FastAPI's own
        # OpenTelemetry bridge would only cost a provider look-up on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.services = services
    app.state.writer = writer
    app.state.budget_evaluator = budget_evaluator
    install_error_handlers(app)
    # The busiest endpoint, matched first and served as a plain Starlette route: FastAPI's
    # routing through included routers and its per-request dependency solving cost more than
    # checking and pricing a single event. `usage.router` still documents it in the OpenAPI.
    ingest = Route("/v1/usage", usage.ingest_usage, methods=["POST"], include_in_schema=False)
    app.router.routes.insert(0, ingest)  # ahead of the docs routes FastAPI adds first
    for module in (usage, revenue, pnl, pricing, budgets, alerts, ops):
        app.include_router(module.router)
    app.include_router(simulate_api.router)
    app.include_router(stripe_api.router)
    install_dashboard(app)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    # Bodies read as raw JSON (for 400/413 control) are described here for clients and tools.
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, summary=app.summary, routes=app.routes
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (UsageEventIn, RevenueIn, SimulateIn):
            components[model.__name__] = model.model_json_schema(
                ref_template="#/components/schemas/{model}"
            )
        schema["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        schema["security"] = [{"bearer": []}]
        app.openapi_schema = schema
    return app.openapi_schema
