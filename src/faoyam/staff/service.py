"""Staff accounts, sign-in with a password and a TOTP code, and the customer operations
of the back office — each one recorded in the audit log (``audit``).

Customer data is reached only through other domains' public service functions
(``accounts.service``, ``devices.service``) and the privacy engine (export, erasure);
this domain never reads their tables.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from faoyam.accounts import service as accounts
from faoyam.accounts import validation as v
from faoyam.core.context import Context
from faoyam.core.cpu import offload
from faoyam.core.database import utcnow
from faoyam.core.errors import Conflict, Gone, Invalid, NotFound, Problem, Unauthorized
from faoyam.core.ratelimit import Limit
from faoyam.core.security import hash_password, keyed_hash, new_token, verify_password
from faoyam.devices import service as devices
from faoyam.privacy import children
from faoyam.privacy.export import export_zip
from faoyam.privacy.subjects import erase_subject, resolve_subject
from faoyam.staff import audit, totp
from faoyam.staff.models import StaffAccount, StaffSession
from faoyam.staff.permissions import ROLES

log = logging.getLogger(__name__)

ISSUER = "faoyam back office"
WINDOW = dt.timedelta(minutes=15)
_SECRET_CONTEXT = "staff-totp"


@dataclass(frozen=True)
class NewStaff:
    id: str
    email: str
    role: str
    enrol_token: str
    secret: str
    otpauth_uri: str


@dataclass(frozen=True)
class StaffUser:
    """The signed-in staff member of a request (what ``deps.require_staff`` gives a route)."""

    id: str
    email: str
    role: str
    session_id: str
    csrf_token: str
    language: str | None = None  # pages follow ?lang=, the language cookie or the browser


@dataclass(frozen=True)
class NewStaffSession:
    token: str
    csrf_token: str
    staff_id: str
    expires_at: dt.datetime


def _token_hash(ctx: Context, kind: str, token: str) -> str:
    return keyed_hash(ctx.key, f"staff-{kind}:{token}")


# Accounts and enrolment ----------------------------------------------------------------


async def add_staff(ctx: Context, email: str, role: str) -> NewStaff:
    """A new staff account, waiting for its owner to enrol (password + authenticator app)."""
    if role not in ROLES:
        raise Invalid("role", f"Choose one of: {', '.join(ROLES)}.", code="unknown-role")
    email = v.normalize_email(email)
    secret = totp.new_secret()
    token = new_token()
    async with ctx.db.transaction() as s:
        row = StaffAccount(email=email, role=role, totp_secret=ctx.secrets.encrypt(secret, context=_SECRET_CONTEXT),
                           enrol_token_hash=_token_hash(ctx, "enrol", token),
                           enrol_expires_at=utcnow() + dt.timedelta(hours=ctx.settings.staff_enrol_hours))
        s.add(row)
        try:
            await s.flush()
        except IntegrityError:
            raise Conflict("A staff account with this address already exists.", code="staff-exists") from None
        audit.add(s, None, "staff.add", detail={"staff_id": row.id, "role": role})
    return NewStaff(row.id, email, role, token, secret, totp.otpauth_uri(secret, email, ISSUER))


async def _by_enrol_token(s, ctx: Context, token: str) -> StaffAccount:
    row = (await s.execute(select(StaffAccount).where(
        StaffAccount.enrol_token_hash == _token_hash(ctx, "enrol", token)))).scalar_one_or_none()
    if row is None or row.enrol_expires_at is None or row.enrol_expires_at < utcnow() or row.disabled_at:
        raise Gone("This enrolment link was used or has expired. Ask an administrator for a new one.",
                   code="enrol-expired")
    return row


async def enrolment(ctx: Context, token: str) -> tuple[str, str, str]:
    """(email, TOTP secret, otpauth URI) of a pending enrolment, to show its owner."""
    async with ctx.db.session() as s:
        row = await _by_enrol_token(s, ctx, token)
    secret = ctx.secrets.decrypt(row.totp_secret, context=_SECRET_CONTEXT)
    return row.email, secret, totp.otpauth_uri(secret, row.email, ISSUER)


async def complete_enrolment(ctx: Context, token: str, password: str, code: str) -> str:
    """Set the password and prove the authenticator app works (a first valid code)."""
    async with ctx.db.session() as s:
        row = await _by_enrol_token(s, ctx, token)
    await offload(v.check_password, password, min_score=ctx.settings.password_min_score, user_inputs=[row.email])
    secret = ctx.secrets.decrypt(row.totp_secret, context=_SECRET_CONTEXT)
    step = totp.verify(secret, code)
    if step is None:
        raise Invalid("code", "The code from the authenticator app is not right.", code="wrong-code")
    password_hash = await offload(hash_password, password)
    async with ctx.db.transaction() as s:
        res = await s.execute(update(StaffAccount).where(
            StaffAccount.id == row.id, StaffAccount.enrol_token_hash == row.enrol_token_hash).values(
            password_hash=password_hash, totp_last_step=step, enrolled_at=utcnow(), enrol_token_hash=None,
            enrol_expires_at=None))
        if res.rowcount != 1:
            raise Gone("This enrolment link was used or has expired.", code="enrol-expired")
        audit.add(s, row.id, "staff.enrol")
    return row.id


async def disable_staff(ctx: Context, email: str) -> None:
    """End a staff account: it cannot sign in again; its audit entries stay."""
    async with ctx.db.transaction() as s:
        row = (await s.execute(select(StaffAccount).where(StaffAccount.email == v.normalize_email(email)))).scalar_one_or_none()
        if row is None:
            raise NotFound("No such staff account.", code="no-staff")
        row.disabled_at = utcnow()
        await s.execute(delete(StaffSession).where(StaffSession.staff_id == row.id))
        audit.add(s, None, "staff.disable", detail={"staff_id": row.id})


# Sign-in --------------------------------------------------------------------------------


async def sign_in(ctx: Context, email: str, password: str, code: str, ip: str) -> NewStaffSession:
    """Password and TOTP code, both right, or nothing (and the same answer either way).

    Each attempt is counted before it is checked (per address and per client address) and
    forgotten only when it succeeds; an accepted code's time step is stored, so the same
    code cannot sign in twice."""
    try:
        email = v.normalize_email(email, "email")
    except Problem:
        email = (email or "").strip().lower()[:254]
    limits = [Limit("staff-signin", email, ctx.settings.login_max_failures, WINDOW),
              Limit("staff-signin-ip", ip, ctx.settings.login_max_failures * 4, WINDOW)]
    reservation = await ctx.limiter.reserve(limits)
    async with ctx.db.transaction() as s:
        row = (await s.execute(select(StaffAccount).where(StaffAccount.email == email))).scalar_one_or_none()
        usable = row is not None and row.enrolled_at is not None and row.disabled_at is None
        ok = await offload(verify_password, row.password_hash if usable else None, password)
        step = None
        if ok:
            secret = ctx.secrets.decrypt(row.totp_secret, context=_SECRET_CONTEXT)
            step = totp.verify(secret, code, after=row.totp_last_step)
        if step is None:
            if row is not None:
                audit.add(s, row.id, "staff.signin_failed", detail={"second_factor": ok})
            failure = Unauthorized("The email, password or code is not right.", code="staff-bad-credentials")
        else:
            # Only if no other sign-in used this step meanwhile (two requests with one code).
            res = await s.execute(update(StaffAccount).where(
                StaffAccount.id == row.id,
                (StaffAccount.totp_last_step.is_(None)) | (StaffAccount.totp_last_step < step)).values(totp_last_step=step))
            if res.rowcount != 1:
                failure = Unauthorized("The email, password or code is not right.", code="staff-bad-credentials")
            else:
                failure = None
                token, csrf, now = new_token(), new_token(24), utcnow()
                expires = now + dt.timedelta(hours=ctx.settings.staff_session_max_hours)
                s.add(StaffSession(staff_id=row.id, token_hash=_token_hash(ctx, "session", token), csrf_token=csrf,
                                   created_at=now, last_seen_at=now, expires_at=expires))
                audit.add(s, row.id, "staff.signin")
    if failure is not None:
        raise failure
    await ctx.limiter.release(reservation)
    return NewStaffSession(token, csrf, row.id, expires)


async def lookup_session(ctx: Context, token: str) -> StaffUser | None:
    """The staff member of a session token, if the session is live (idle and absolute limits)."""
    now = utcnow()
    idle = dt.timedelta(minutes=ctx.settings.staff_session_minutes)
    async with ctx.db.session() as s:
        row = (await s.execute(
            select(StaffSession, StaffAccount).join(StaffAccount, StaffAccount.id == StaffSession.staff_id)
            .where(StaffSession.token_hash == _token_hash(ctx, "session", token), StaffSession.expires_at > now)
        )).first()
        if row is None:
            return None
        sess, staff = row
        if staff.disabled_at is not None or now - sess.last_seen_at > idle:
            return None
        if now - sess.last_seen_at > dt.timedelta(seconds=30):
            await s.execute(update(StaffSession).where(StaffSession.id == sess.id).values(last_seen_at=now))
            await s.commit()
    return StaffUser(staff.id, staff.email, staff.role, sess.id, sess.csrf_token)


async def sign_out(ctx: Context, staff: StaffUser) -> None:
    async with ctx.db.transaction() as s:
        await s.execute(delete(StaffSession).where(StaffSession.id == staff.session_id))
        audit.add(s, staff.id, "staff.signout")


# Customers --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CustomerView:
    id: str
    nickname: str
    email: str | None
    phone: str | None
    country: str
    language: str
    devices_owned: int
    devices_shared_with: int
    # Open reports that the account belongs to a child (CH2): the requests about it so far.
    child_reports: tuple[tuple[str, dt.datetime], ...] = ()


async def find_customer(ctx: Context, staff: StaffUser, query: str, country: str | None) -> accounts.UserBrief | None:
    """The account whose email or phone is exactly ``query`` (normalised), audited.

    The entry names the account found, never what was typed (it may be anybody's address)."""
    try:
        brief = await accounts.find_user_by_contact(ctx, query.strip(), country or None)
    except Problem:
        brief = None
    await audit.record(ctx, staff.id, "customer.search", brief.id if brief else None,
                       detail={"by": "email" if "@" in query else "phone", "found": brief is not None})
    return brief


async def view_customer(ctx: Context, staff: StaffUser, user_id: str) -> CustomerView:
    """An account's basics and device counts: a read of customer data, audited."""
    brief = await accounts.get_user_brief(ctx, user_id)
    if brief is None:
        raise NotFound("No such customer.", code="no-customer")
    devs = await devices.list_devices(ctx, user_id)
    owned = sum(1 for d in devs if not d.shared)
    addresses = {a.lower() for a in (brief.email, brief.phone) if a}
    reports = tuple((r.id, r.created_at) for r in await children.list_reports(ctx, "open")
                    if (r.reported or "").strip().lower() in addresses)
    await audit.record(ctx, staff.id, "customer.view", user_id)
    return CustomerView(brief.id, brief.nickname, brief.email, brief.phone, brief.country, brief.language,
                        owned, len(devs) - owned, reports)


async def export_customer(ctx: Context, staff: StaffUser, user_id: str, reason: str) -> AsyncIterator[bytes]:
    """Everything held about the customer as a ZIP stream (R1, R6), audited with the reason
    before the first byte leaves."""
    if await accounts.get_user_brief(ctx, user_id) is None:
        raise NotFound("No such customer.", code="no-customer")
    async with ctx.db.transaction() as s:
        audit.add(s, staff.id, "customer.export", user_id, reason, {"format": "zip"})
    async with ctx.db.session() as s:
        subject = await resolve_subject(s, user_id)
    return export_zip(ctx.db, ctx.blobs, subject)


async def erase_customer(ctx: Context, staff: StaffUser, user_id: str, reason: str) -> dict:
    """Erase the account and everything about it through the privacy engine (R3).

    The request is recorded first (with the reason), then the outcome; the audit log is
    kept through the erasure (``on_erase="keep"``), so the record of it survives."""
    if await accounts.get_user_brief(ctx, user_id) is None:
        raise NotFound("No such customer.", code="no-customer")
    await audit.record(ctx, staff.id, "customer.erase", user_id, reason, {"stage": "requested"})
    async with ctx.db.session() as s:
        subject = await resolve_subject(s, user_id)
    try:
        report = await erase_subject(ctx.db, ctx.blobs, subject, reason="staff_erasure")
    except Exception:
        await audit.record(ctx, staff.id, "customer.erase_failed", user_id, reason)
        raise
    result = {"rows": report.rows, "blobs": report.blobs, "record": report.record_id}
    await audit.record(ctx, staff.id, "customer.erased", user_id, reason, result)
    log.info("staff.customer_erased", extra={"subject": user_id, "rows": report.rows})
    return result
