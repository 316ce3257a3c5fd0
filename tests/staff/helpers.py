"""Staff members for tests: created and enrolled through the service, signed in through the form."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx

from faoyam.core.context import Context
from faoyam.staff import service, totp

STAFF_PASSWORD = "quarry-lantern-velvet-62"


@dataclass
class Staff:
    id: str
    email: str
    role: str
    secret: str


async def enrolled(ctx: Context, email: str = "dpo@operator.example", role: str = "dpo") -> Staff:
    """Added and enrolled with the *previous* step's code, so a sign-in with the current
    step's code is not a replay."""
    new = await service.add_staff(ctx, email, role)
    await service.complete_enrolment(ctx, new.enrol_token, STAFF_PASSWORD, totp.code_at(new.secret, time.time() - 30))
    return Staff(new.id, new.email, role, new.secret)


def code(staff: Staff, offset: int = 0) -> str:
    return totp.code_at(staff.secret, time.time() + offset)


async def sign_in(client: httpx.AsyncClient, staff: Staff, *, code_: str | None = None,
                  password: str = STAFF_PASSWORD) -> httpx.Response:
    return await client.post("/staff/signin", data={"email": staff.email, "password": password,
                                                    "code": code_ if code_ is not None else code(staff),
                                                    "next": "/staff/customers"})


@contextlib.asynccontextmanager
async def signed_in(app, staff: Staff, *, offset: int = 0) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """A client of its own (its own cookie jar) signed in as ``staff``, and its CSRF token."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        r = await sign_in(client, staff, code_=code(staff, offset))
        assert r.status_code == 303, r.text
        page = await client.get("/staff/customers")
        assert page.status_code == 200
        token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        yield client, token
