"""Errors as RFC 9457 problem details.

Raise ``Problem`` (or a subclass) anywhere in a request; the handler renders
``application/problem+json`` with ``type``, ``title``, ``status``, ``detail`` and any
extension members (``errors`` for field-level validation problems, ``code`` for a stable
machine-readable reason). FastAPI's own validation errors are rendered the same way.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_BASE = "https://faoyam.dev/problems/"


class Problem(Exception):
    status: int = 400
    code: str = "bad-request"
    title: str = "Bad request"

    def __init__(self, detail: str = "", *, status: int | None = None, code: str | None = None,
                 title: str | None = None, **extensions: Any):
        super().__init__(detail or self.title)
        self.detail = detail
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        if title is not None:
            self.title = title
        self.extensions = extensions

    def body(self, instance: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": PROBLEM_BASE + self.code,
            "title": self.title,
            "status": self.status,
            "code": self.code,
        }
        if self.detail:
            out["detail"] = self.detail
        if instance:
            out["instance"] = instance
        out.update(self.extensions)
        return out


class BadRequest(Problem):
    status, code, title = 400, "bad-request", "Bad request"


class Invalid(Problem):
    """One or more fields are wrong: ``errors=[{"field": ..., "message": ...}]``."""

    status, code, title = 422, "invalid", "Some fields are not valid"

    def __init__(self, field: str, message: str, *, code: str | None = None, **ext: Any):
        super().__init__(message, code=code or "invalid", errors=[{"field": field, "message": message}], **ext)


class Unauthorized(Problem):
    status, code, title = 401, "unauthorized", "Sign-in required"


class Forbidden(Problem):
    status, code, title = 403, "forbidden", "Not allowed"


class NotFound(Problem):
    status, code, title = 404, "not-found", "Not found"


class Conflict(Problem):
    status, code, title = 409, "conflict", "Conflict"


class Gone(Problem):
    status, code, title = 410, "gone", "No longer valid"


class TooLarge(Problem):
    status, code, title = 413, "too-large", "Too large"


class Unsupported(Problem):
    status, code, title = 415, "unsupported-media-type", "Unsupported media type"


class TooManyRequests(Problem):
    status, code, title = 429, "rate-limited", "Too many attempts"


class Unavailable(Problem):
    status, code, title = 503, "unavailable", "Temporarily unavailable"


def problem_response(problem: Problem, request: Request | None = None) -> JSONResponse:
    headers = {}
    retry = problem.extensions.get("retry_after")
    if retry is not None:
        headers["Retry-After"] = str(int(retry))
    return JSONResponse(
        problem.body(str(request.url.path) if request else None),
        status_code=problem.status,
        media_type="application/problem+json",
        headers=headers,
    )


def install(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem):
        return problem_response(exc, request)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        errors = []
        for e in exc.errors():
            loc = [str(p) for p in e.get("loc", ()) if p not in ("body", "query", "path")]
            errors.append({"field": ".".join(loc) or "body", "message": e.get("msg", "invalid")})
        p = Problem("The request does not have the expected shape.", status=422, code="invalid",
                    title="Some fields are not valid", errors=errors)
        return problem_response(p, request)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        if 300 <= exc.status_code < 400 and exc.headers and "Location" in exc.headers:
            # A dependency may answer "go elsewhere" (a page that needs a sign-in).
            return RedirectResponse(exc.headers["Location"], status_code=exc.status_code)
        titles = {404: "Not found", 405: "Method not allowed", 401: "Sign-in required", 403: "Not allowed"}
        p = Problem(str(exc.detail) if exc.detail else "", status=exc.status_code,
                    code={404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error"),
                    title=titles.get(exc.status_code, "Error"))
        return problem_response(p, request)
