"""The ASGI application: every domain's routes, pages and background services in one app."""

from __future__ import annotations

import importlib
import logging
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from faoyam import __version__
from faoyam import models  # noqa: F401 - every domain's tables, before anything uses the privacy engine
from faoyam.core import errors
from faoyam.core import logging as flog
from faoyam.core.config import Settings
from faoyam.core.context import Context
from faoyam.core.http import DOCS_CSP, security_headers
from faoyam.core.jobs import scheduler
from faoyam.web.templating import STATIC_DIR

log = logging.getLogger("faoyam.http")

# Each domain may have ``api`` (router), ``pages`` (router) and ``lifecycle``
# (``async start(ctx)`` / ``async stop(ctx)`` for background services).
DOMAINS = ["accounts", "privacy", "devices", "recordings", "detection", "web", "demo"]
# Domains whose background services are a process role of their own: their lifecycle runs
# only where the context has that role (docs/process-roles.md). In one process with every
# role (tests, ``create_app()`` alone) that is this one.
ROLE_LIFECYCLES = {"media": "media"}
# Further router modules, beyond ``<domain>.api`` and ``<domain>.pages``.
EXTRA_ROUTERS = ["faoyam.accounts.oidc", "faoyam.devices.share_links"]


def _optional(module: str):
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module or module.startswith(f"{exc.name}."):  # it, or its package, is absent
            return None
        raise


class RequestLogAndHeaders:
    """Logs each request (method, route, status, time) and adds the security headers.

    A plain ASGI middleware rather than ``@app.middleware("http")``: that one runs every
    request through an extra task and stream, a large share of a fast request's cost.
    """

    def __init__(self, app, settings: Settings):
        self.app = app
        self.headers = [(k.lower().encode(), v.encode()) for k, v in security_headers(settings).items()]
        docs = {**security_headers(settings), "Content-Security-Policy": DOCS_CSP}
        self.docs_headers = [(k.lower().encode(), v.encode()) for k, v in docs.items()]

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        status = 500
        extra = self.docs_headers if scope["path"] == "/api/docs" else self.headers

        async def send_with_headers(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                have = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []), *((k, v) for k, v in extra if k not in have)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            if log.isEnabledFor(logging.INFO):
                route = scope.get("route")
                state = scope.get("state") or {}
                user = state.get("user")
                log.info("request", extra={"method": scope["method"], "route": getattr(route, "path", "?"),
                                           "status": status, "ms": round((time.perf_counter() - t0) * 1000, 1),
                                           "user": user.id if user else None})  # written as a keyed pseudonym


def create_app(settings: Settings | None = None, *, ctx: Context | None = None,
               roles: frozenset[str] | None = None) -> FastAPI:
    """The app. ``roles``: what this process runs besides the web app (default: every
    role, so one process is the whole service); ``faoyam serve`` gives ``{"web"}``."""
    settings = settings or (ctx.settings if ctx else Settings())
    own_ctx = ctx is None

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        c: Context = app.state.ctx
        started = []
        for d in [*DOMAINS, *(x for x in ROLE_LIFECYCLES if x not in DOMAINS)]:
            if d in ROLE_LIFECYCLES and ROLE_LIFECYCLES[d] not in c.roles:
                continue
            lc = _optional(f"faoyam.{d}.lifecycle")
            if lc is not None and hasattr(lc, "start"):
                await lc.start(c)
                started.append(lc)
        sched = scheduler(c)
        if c.settings.jobs_enabled:
            sched.start()
        try:
            yield
        finally:
            await sched.stop()
            for lc in reversed(started):
                await lc.stop(c)
            if own_ctx:
                await c.close()

    app = FastAPI(title="faoyam", version=__version__, lifespan=lifespan, docs_url="/api/docs",
                  openapi_url="/api/openapi.json", redoc_url=None)
    app.state.ctx = ctx or Context.build(settings, roles=roles)
    errors.install(app)

    app.add_middleware(RequestLogAndHeaders, settings=settings)

    router_modules = [f"faoyam.{d}.{part}" for d in DOMAINS for part in ("api", "pages")] + EXTRA_ROUTERS
    for name in router_modules:
        mod = _optional(name)
        if mod is not None and hasattr(mod, "router"):
            app.include_router(mod.router)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/healthz", include_in_schema=False)
    async def healthz():
        return {"ok": True, "version": __version__}

    flog.setup(settings.log_level, settings.log_path, settings.log_json, pseudonym_key=settings.resolved_secret_key)
    return app
