"""Account logic. Routes (``api.py``) and pages call these; other domains call only the
functions documented as public here (``get_user_brief``, ``find_user_by_contact``,
``users_exist``) and ``deps.current_user``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.exc import IntegrityError

from faoyam.accounts import guessing
from faoyam.accounts.deps import forget_sessions
from faoyam.accounts import validation as v
from faoyam.accounts.models import ExternalIdentity, PendingRegistration, Session, SignInEvent, User, VerificationCode
from faoyam.accounts.photos import reencode_photo
from faoyam.accounts.schemas import RegisterIn, Terminal
from faoyam.core.context import Context
from faoyam.core.cpu import offload
from faoyam.core.database import utcnow
from faoyam.core.errors import Conflict, Forbidden, Gone, Invalid, NotFound, Problem, TooManyRequests, Unauthorized
from faoyam.core.i18n import LANGUAGES, gettext
from faoyam.core.ratelimit import Limit
from faoyam.core.security import hash_password, keyed_hash, new_token, numeric_code, password_needs_rehash, verify_password
from faoyam.privacy.blobrefs import blob_transaction
from faoyam.privacy.subjects import erase_subject, resolve_subject

log = logging.getLogger(__name__)

WINDOW = dt.timedelta(minutes=15)
HOUR = dt.timedelta(hours=1)


@dataclass(frozen=True)
class NewSession:
    token: str
    csrf_token: str
    user_id: str
    session_id: str
    expires_at: dt.datetime


def _code_hash(ctx: Context, scope: str, code: str) -> str:
    return keyed_hash(ctx.key, f"code:{scope}:{code}")


async def _send_code(ctx: Context, target: str, kind: str, code: str, purpose: str, lang: str, user_id: str | None = None) -> None:
    text = gettext(lang, "Your faoyam code is {code}. It expires in {minutes} minutes. If you did not ask for it, ignore this message.",
                   code=code, minutes=ctx.settings.code_ttl_minutes)
    if kind == "email":
        await ctx.messenger.send_email(target, gettext(lang, "Your faoyam code"), text, template=purpose, user_id=user_id)
    else:
        await ctx.messenger.send_sms(target, text, template=purpose, user_id=user_id)


def _language(lang: str | None) -> str:
    return lang if lang in LANGUAGES else "en"


# Registration (B1a, CH1) -----------------------------------------------------------


async def start_registration(ctx: Context, data: RegisterIn, ip: str) -> PendingRegistration:
    """Check everything, then keep the registration pending and send a one-time code.

    No account exists until the code is confirmed, so a failure at any step leaves none.
    """
    s = ctx.settings
    if not data.age_confirmed:
        raise Invalid("age_confirmed", f"faoyam is for people aged {s.minimum_age} or older. Please confirm your age.",
                      code="age-not-confirmed")
    if bool(data.email) == bool(data.phone):
        raise Invalid("email", "Register with an email address or a phone number (one of them).", code="contact-required")
    country = v.normalize_country(data.country)
    email = v.normalize_email(data.email) if data.email else None
    phone = v.normalize_phone(data.phone, country) if data.phone else None
    if phone and s.phone_signup_countries is not None and country not in s.phone_signup_countries:
        raise Invalid("phone", "Registration by phone is not offered in your country. Use an email address.",
                      code="phone-not-offered")
    nickname = v.normalize_nickname(data.nickname)
    await offload(v.check_password, data.password, min_score=s.password_min_score,
                  user_inputs=[email or "", phone or "", nickname])
    target = email or phone
    assert target is not None
    await ctx.limiter.hit("register-target", target, 5, HOUR)
    await ctx.limiter.hit("register-ip", ip, 30, HOUR)
    password_hash = await offload(hash_password, data.password)
    async with ctx.db.transaction() as session:
        taken = await session.scalar(select(func.count()).select_from(User).where(
            (User.email == email) if email else (User.phone == phone)))
        if taken:
            raise Conflict("An account with this address already exists. Sign in, or reset the password.",
                           code="already-registered")
        # A second registration for the same address replaces the first pending one.
        await session.execute(delete(PendingRegistration).where(
            (PendingRegistration.email == email) if email else (PendingRegistration.phone == phone)))
        code = numeric_code()
        pending = PendingRegistration(
            email=email, phone=phone, country=country, nickname=nickname,
            password_hash=password_hash, language=_language(data.language),
            age_confirmed_at=utcnow(), code_hash="", expires_at=utcnow() + dt.timedelta(minutes=s.code_ttl_minutes),
        )
        session.add(pending)
        await session.flush()
        pending.code_hash = _code_hash(ctx, pending.id, code)
    await _send_code(ctx, target, "email" if email else "sms", code, "register", pending.language)
    return pending


async def confirm_registration(ctx: Context, pending_id: str, code: str, terminal: Terminal, ip: str) -> NewSession:
    """Turn a pending registration into an account, once, with the right code in time."""
    failure: Exception | None = None
    async with ctx.db.transaction() as session:
        pending = await session.get(PendingRegistration, pending_id)
        if pending is None:
            raise Gone("This code was already used or has expired. Register again.", code="code-expired")
        if pending.expires_at < utcnow():
            await session.delete(pending)
            failure = Gone("This code has expired. Register again to get a new one.", code="code-expired")
        elif pending.attempts >= ctx.settings.code_max_attempts:
            await session.delete(pending)
            failure = Gone("Too many wrong codes. Register again to get a new one.", code="code-attempts")
        elif not hmac.compare_digest(pending.code_hash, _code_hash(ctx, pending.id, code.strip())):
            pending.attempts += 1
            left = ctx.settings.code_max_attempts - pending.attempts
            failure = Invalid("code", f"The code is not right. {left} tries left.", code="wrong-code", attempts_left=left)
        else:
            user = User(email=pending.email, phone=pending.phone, country=pending.country, nickname=pending.nickname,
                        password_hash=pending.password_hash, language=pending.language,
                        age_confirmed_at=pending.age_confirmed_at)
            session.add(user)
            await session.delete(pending)
            try:
                await session.flush()
            except IntegrityError:
                raise Conflict("An account with this address already exists.", code="already-registered") from None
            await ctx.messenger.claim(session, user.email or user.phone, user.id)
            new = await _open_session(ctx, session, user.id, "code", terminal, ip)
    # The failures above are raised after their bookkeeping (attempts, deletion) commits.
    if failure is not None:
        raise failure
    log.info("accounts.registered", extra={"user": user.id})
    return new


async def _open_session(ctx: Context, session, user_id: str, method: str, terminal: Terminal, ip: str) -> NewSession:
    token = new_token()
    csrf = new_token(24)
    now = utcnow()
    gps_ok = terminal.gps_permission and terminal.gps_lat is not None and terminal.gps_lon is not None
    row = Session(
        user_id=user_id, token_hash=keyed_hash(ctx.key, token), csrf_token=csrf, method=method,
        terminal_os=terminal.os, terminal_model=terminal.model, install_id=terminal.install_id,
        gps_lat=terminal.gps_lat if gps_ok else None, gps_lon=terminal.gps_lon if gps_ok else None,
        created_at=now, authenticated_at=now, last_seen_at=now,
        expires_at=now + dt.timedelta(days=ctx.settings.session_days),
    )
    session.add(row)
    session.add(SignInEvent(user_id=user_id, ip=ip, outcome="ok", method=method, success=True))
    await session.execute(update(User).where(User.id == user_id).values(last_active_at=now, inactivity_notice_at=None))
    await session.flush()
    return NewSession(token, csrf, user_id, row.id, row.expires_at)


# Sign-in (B2) ----------------------------------------------------------------------


def _login_key(login: str, country: str | None) -> tuple[str, str]:
    """('email'|'phone', normalised value) for what a person typed to sign in."""
    if "@" in login:
        return "email", v.normalize_email(login, "login")
    return "phone", v.normalize_phone(login, country, "login")


async def _find_by_login(session, kind: str, value: str) -> User | None:
    col = User.email if kind == "email" else User.phone
    return (await session.execute(select(User).where(col == value))).scalar_one_or_none()


class StepUpRequired(Unauthorized):
    """The account is under attack: the password alone does not sign in (see ``guessing``).

    The answer is the same whether the password was right or not, so it tells a guesser
    nothing; only when it was right does a code go to the account's own email or phone.
    """

    code, title = "step-up-required", "A code is needed as well"


Later = Callable[[], Awaitable[None]]


async def sign_in(ctx: Context, login: str, password: str, country: str | None, terminal: Terminal, ip: str,
                  code: str | None = None, later: Callable[[Later], None] | None = None) -> NewSession:
    """Sign in with a password (B2), under the guessing rules of ``accounts.guessing``.

    ``later`` schedules work to run after the answer is sent (the step-up code), so that
    the answer's time does not tell whether a code was sent.
    """
    kind, value = _login_key(login, country)
    reservation = await guessing.reserve(ctx, value, ip)
    step_up = await guessing.under_attack(ctx, value)
    new = None
    async with ctx.db.transaction() as session:
        user = await _find_by_login(session, kind, value)
        ok = await offload(verify_password, user.password_hash if user else None, password)
        if not ok:
            if user is not None:
                session.add(SignInEvent(user_id=user.id, ip=ip, outcome="bad_password", method="password"))
        elif step_up and not (code and await _use_code(ctx, session, user.id, guessing.STEP_UP, code, target=None,
                                                        quiet=True)):
            if not code:
                target, kind_ = (user.email, "email") if user.email else (user.phone, "sms")
                if target:
                    _schedule(later, _step_up_code(ctx, user.id, target, kind_, user.language))
            session.add(SignInEvent(user_id=user.id, ip=ip, outcome="step_up", method="password"))
        else:
            if user.password_hash and password_needs_rehash(user.password_hash):
                user.password_hash = await offload(hash_password, password)
            new = await _open_session(ctx, session, user.id, "password", terminal, ip)
    if not ok:
        await guessing.failed(ctx, value)
    if new is None:
        if step_up:
            raise StepUpRequired("Many wrong passwords were tried for this account lately. If the password is right, "
                                 "a code is on its way to the account's email or phone: enter it with the password.")
        raise Unauthorized("The email/phone or password is not right.", code="bad-credentials")
    await guessing.succeeded(ctx, value, reservation)
    return new


def _step_up_code(ctx: Context, user_id: str, target: str, kind: str, lang: str) -> Later:
    async def send() -> None:
        try:
            await _issue_code(ctx, user_id, guessing.STEP_UP, target, kind, lang)
        except TooManyRequests:
            log.info("accounts.step_up_code_limited")

    return send


def _schedule(later: Callable[[Later], None] | None, work: Later) -> None:
    """Run ``work`` after the answer (``later``), or now in a task when the caller has no way to."""
    if later is not None:
        later(work)
        return
    task = asyncio.get_running_loop().create_task(work())
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


_tasks: set[asyncio.Task] = set()


async def sign_out(ctx: Context, session_id: str) -> None:
    async with ctx.db.transaction() as session:
        await session.execute(delete(Session).where(Session.id == session_id))
    forget_sessions(ctx, session_id=session_id)


async def list_sessions(ctx: Context, user_id: str) -> list[Session]:
    async with ctx.db.session() as session:
        q = select(Session).where(Session.user_id == user_id, Session.expires_at > utcnow()).order_by(Session.last_seen_at.desc())
        return list((await session.execute(q)).scalars())


async def list_sign_ins(ctx: Context, user_id: str) -> list[SignInEvent]:
    async with ctx.db.session() as session:
        q = select(SignInEvent).where(SignInEvent.user_id == user_id).order_by(SignInEvent.at.desc()).limit(50)
        return list((await session.execute(q)).scalars())


async def revoke_session(ctx: Context, user_id: str, session_id: str) -> None:
    async with ctx.db.transaction() as session:
        res = await session.execute(delete(Session).where(Session.id == session_id, Session.user_id == user_id))
        if res.rowcount == 0:
            raise NotFound("No such session.", code="no-session")
    forget_sessions(ctx, user_id=user_id)


async def revoke_other_sessions(ctx: Context, user_id: str, keep_session_id: str | None) -> int:
    async with ctx.db.transaction() as session:
        q = delete(Session).where(Session.user_id == user_id)
        if keep_session_id:
            q = q.where(Session.id != keep_session_id)
        n = (await session.execute(q)).rowcount
    forget_sessions(ctx, user_id=user_id)
    return n


# Re-authentication (R8) ------------------------------------------------------------


async def reauthenticate(ctx: Context, user_id: str, session_id: str, password: str | None, code: str | None) -> None:
    """Refresh the session's authentication time after a password or a step-up code."""
    reservation = await ctx.limiter.reserve([Limit("reauth", user_id, ctx.settings.login_max_failures, WINDOW)])
    async with ctx.db.transaction() as session:
        user = await session.get(User, user_id)
        if user is None:
            raise Unauthorized("Sign in first.", code="signed-out")
        if password is not None and user.password_hash:
            ok = await offload(verify_password, user.password_hash, password)
        elif code is not None:
            ok = await _use_code(ctx, session, user_id, "step_up", code, target=None)
        else:
            await ctx.limiter.release(reservation)  # nothing was tried
            raise Invalid("password", "Enter your password, or ask for a code.", code="reauth-missing")
        if not ok:
            raise Unauthorized("That is not right.", code="bad-credentials")
        await session.execute(update(Session).where(Session.id == session_id).values(authenticated_at=utcnow()))
    await ctx.limiter.release(reservation)
    forget_sessions(ctx, user_id=user_id)


async def send_step_up_code(ctx: Context, user_id: str) -> str:
    """Send a step-up code to the account's email or phone; returns where (masked)."""
    async with ctx.db.session() as session:
        user = await session.get(User, user_id)
    target, kind = (user.email, "email") if user.email else (user.phone, "sms")
    if not target:
        raise Conflict("This account has no email or phone to send a code to.", code="no-contact")
    await _issue_code(ctx, user_id, "step_up", target, kind, user.language)
    return mask(target)


def mask(target: str) -> str:
    if "@" in target:
        name, _, domain = target.partition("@")
        return f"{name[:1]}***@{domain}"
    return f"{target[:3]}***{target[-2:]}"


async def _issue_code(ctx: Context, user_id: str | None, purpose: str, target: str, kind: str, lang: str) -> None:
    await ctx.limiter.hit(f"code-{purpose}", target, 5, HOUR)
    code = numeric_code()
    async with ctx.db.transaction() as session:
        # Only the newest code of a purpose counts: asking again voids the older ones.
        await session.execute(delete(VerificationCode).where(VerificationCode.user_id == user_id,
                                                             VerificationCode.purpose == purpose,
                                                             VerificationCode.target == target))
        row = VerificationCode(user_id=user_id, purpose=purpose, target=target, code_hash="",
                               expires_at=utcnow() + dt.timedelta(minutes=ctx.settings.code_ttl_minutes))
        session.add(row)
        await session.flush()
        row.code_hash = _code_hash(ctx, row.id, code)
    await _send_code(ctx, target, kind, code, purpose, lang, user_id)


async def _use_code(ctx: Context, session, user_id: str | None, purpose: str, code: str, target: str | None,
                    quiet: bool = False) -> str | None:
    """Consume a code: returns its target when right; counts and refuses otherwise.

    ``quiet``: an expired, used or exhausted code is only "not right" (None), with no
    problem of its own that would tell something to whoever asks.
    """
    q = select(VerificationCode).where(VerificationCode.purpose == purpose, VerificationCode.used_at.is_(None))
    if user_id is not None:
        q = q.where(VerificationCode.user_id == user_id)
    if target is not None:
        q = q.where(VerificationCode.target == target)
    row = (await session.execute(q.order_by(VerificationCode.created_at.desc()).limit(1))).scalar_one_or_none()
    if row is None or row.expires_at < utcnow():
        if quiet:
            return None
        raise Gone("This code was already used or has expired. Ask for a new one.", code="code-expired")
    if row.attempts >= ctx.settings.code_max_attempts:
        if quiet:
            return None
        raise Gone("Too many wrong codes. Ask for a new one.", code="code-attempts")
    if not hmac.compare_digest(row.code_hash, _code_hash(ctx, row.id, code.strip())):
        # Count the miss in its own transaction: the caller's will roll back.
        async with ctx.db.transaction() as s2:
            await s2.execute(update(VerificationCode).where(VerificationCode.id == row.id)
                             .values(attempts=VerificationCode.attempts + 1))
        return None
    row.used_at = utcnow()
    return row.target


# Profile (B1b, R0, R2) -------------------------------------------------------------


async def get_user(ctx: Context, user_id: str) -> User:
    async with ctx.db.session() as session:
        user = await session.get(User, user_id)
    if user is None:
        raise NotFound("No such account.", code="no-user")
    return user


async def external_accounts(ctx: Context, user_id: str) -> list[dict]:
    async with ctx.db.session() as session:
        rows = (await session.execute(select(ExternalIdentity).where(ExternalIdentity.user_id == user_id))).scalars()
        return [{"provider": r.provider, "nickname": r.nickname, "has_photo": bool(r.photo_key)} for r in rows]


async def update_profile(ctx: Context, user_id: str, nickname: str | None, language: str | None, country: str | None) -> User:
    async with ctx.db.transaction() as session:
        user = await session.get(User, user_id)
        if nickname is not None:
            user.nickname = v.normalize_nickname(nickname)
        if language is not None:
            if language not in LANGUAGES:
                raise Invalid("language", "Choose English or Thai.", code="unknown-language")
            user.language = language
        if country is not None:
            user.country = v.normalize_country(country)
    forget_sessions(ctx, user_id=user_id)  # the language travels with the session
    return user


async def set_photo(ctx: Context, user_id: str, data: bytes) -> None:
    """Replace the profile photo; the old file is deleted, not kept (B1b).

    Through ``blob_transaction``: the old key is tombstoned with the change, and the new
    file is removed again if the change fails."""
    jpeg = await offload(reencode_photo, data, max_bytes=ctx.settings.max_photo_bytes, max_side=ctx.settings.photo_max_side)
    async with blob_transaction(ctx.db, ctx.blobs) as tx:
        key = await tx.put("profile_photo", jpeg)
        user = await tx.session.get(User, user_id)
        tx.drop(user.photo_key)
        user.photo_key = key


async def delete_photo(ctx: Context, user_id: str) -> None:
    async with blob_transaction(ctx.db, ctx.blobs) as tx:
        user = await tx.session.get(User, user_id)
        tx.drop(user.photo_key)
        user.photo_key = None


async def get_photo(ctx: Context, user_id: str) -> bytes:
    user = await get_user(ctx, user_id)
    if not user.photo_key:
        raise NotFound("No profile photo.", code="no-photo")
    return await ctx.blobs.read(user.photo_key)


async def start_contact_change(ctx: Context, user_id: str, kind: str, value: str) -> str:
    """Send a code to the NEW email or phone; nothing changes until it is confirmed."""
    user = await get_user(ctx, user_id)
    new = v.normalize_email(value, "value") if kind == "email" else v.normalize_phone(value, user.country, "value")
    async with ctx.db.session() as session:
        col = User.email if kind == "email" else User.phone
        if await session.scalar(select(func.count()).select_from(User).where(col == new, User.id != user_id)):
            raise Conflict("Another account uses this address.", code="address-taken")
    await _issue_code(ctx, user_id, f"change_{kind}", new, "email" if kind == "email" else "sms", user.language)
    return mask(new)


async def confirm_contact_change(ctx: Context, user_id: str, kind: str, code: str) -> User:
    async with ctx.db.transaction() as session:
        target = await _use_code(ctx, session, user_id, f"change_{kind}", code, target=None)
        if target is None:
            raise Invalid("code", "The code is not right.", code="wrong-code")
        user = await session.get(User, user_id)
        # The new value replaces the old one; the old one is not kept anywhere (B1b).
        if kind == "email":
            user.email = target
        else:
            user.phone = target
        try:
            await session.flush()
        except IntegrityError:
            raise Conflict("Another account uses this address.", code="address-taken") from None
    return user


async def change_password(ctx: Context, user_id: str, session_id: str, current: str | None, new: str) -> None:
    reservation = await ctx.limiter.reserve([Limit("reauth", user_id, ctx.settings.login_max_failures, WINDOW)])
    async with ctx.db.transaction() as session:
        user = await session.get(User, user_id)
        if user.password_hash and not await offload(verify_password, user.password_hash, current or ""):
            raise Unauthorized("The current password is not right.", code="bad-credentials")
        await ctx.limiter.release(reservation)
        await offload(v.check_password, new, min_score=ctx.settings.password_min_score,
                      user_inputs=[user.email or "", user.phone or "", user.nickname], field="new_password")
        user.password_hash = await offload(hash_password, new)
        user.password_changed_at = utcnow()
        # Other terminals must sign in again with the new password.
        await session.execute(delete(Session).where(Session.user_id == user_id, Session.id != session_id))
    forget_sessions(ctx, user_id=user_id)


async def start_password_reset(ctx: Context, login: str, country: str | None, ip: str) -> Later:
    """Ask for a reset code. Returns the work that sends it, to run after the answer.

    The answer must not tell whether an account has this address: the request does the
    same work either way (read the address, count the asking address) and the look-up,
    the per-address code limit and the sending happen afterwards, where neither the answer
    nor its time can show them.
    """
    kind, value = _login_key(login, country)
    await ctx.limiter.hit("reset-ip", ip, 20, HOUR)

    async def send() -> None:
        async with ctx.db.session() as session:
            user = await _find_by_login(session, kind, value)
        if user is None:
            return
        try:
            await _issue_code(ctx, user.id, "reset_password", value, "email" if kind == "email" else "sms", user.language)
        except TooManyRequests:
            log.info("accounts.reset_code_limited")

    return send


async def finish_password_reset(ctx: Context, login: str, country: str | None, code: str, new_password: str) -> None:
    kind, value = _login_key(login, country)
    async with ctx.db.transaction() as session:
        user = await _find_by_login(session, kind, value)
        if user is None:
            raise Gone("This code was already used or has expired. Ask for a new one.", code="code-expired")
        await offload(v.check_password, new_password, min_score=ctx.settings.password_min_score,
                      user_inputs=[user.email or "", user.phone or "", user.nickname], field="new_password")
        target = await _use_code(ctx, session, user.id, "reset_password", code, target=value)
        if target is None:
            raise Invalid("code", "The code is not right.", code="wrong-code")
        user.password_hash = await offload(hash_password, new_password)
        user.password_changed_at = utcnow()
        await session.execute(delete(Session).where(Session.user_id == user.id))
    forget_sessions(ctx, user_id=user.id)


# External sign-in (B1a) ------------------------------------------------------------


async def find_external(ctx: Context, provider: str, external_subject: str) -> str | None:
    async with ctx.db.session() as session:
        return await session.scalar(select(ExternalIdentity.user_id).where(
            ExternalIdentity.provider == provider, ExternalIdentity.external_subject == external_subject))


async def sign_in_external(ctx: Context, user_id: str, provider: str, terminal: Terminal, ip: str) -> NewSession:
    async with ctx.db.transaction() as session:
        return await _open_session(ctx, session, user_id, f"oidc:{provider}", terminal, ip)


async def create_external_account(
    ctx: Context, *, provider: str, external_subject: str, nickname: str | None, photo: bytes | None,
    country: str, language: str, age_confirmed: bool, terminal: Terminal, ip: str,
) -> NewSession:
    """First sign-in with an external account: keep only its nickname and photo (B1a)."""
    if not age_confirmed:
        raise Invalid("age_confirmed", f"faoyam is for people aged {ctx.settings.minimum_age} or older.",
                      code="age-not-confirmed")
    country = v.normalize_country(country)
    nick = v.normalize_nickname((nickname or provider)[:64])
    jpeg = None
    if photo:
        try:
            jpeg = await offload(reencode_photo, photo, max_bytes=ctx.settings.max_photo_bytes,
                                 max_side=ctx.settings.photo_max_side)
        except Exception:  # noqa: BLE001 - a bad provider photo must not block sign-up
            log.warning("accounts.external_photo_refused", extra={"provider": provider})
    async with blob_transaction(ctx.db, ctx.blobs) as tx:  # the photo goes again if the sign-up fails
        photo_key = await tx.put("external_photo", jpeg) if jpeg else None
        session = tx.session
        if await session.scalar(select(ExternalIdentity.id).where(
                ExternalIdentity.provider == provider, ExternalIdentity.external_subject == external_subject)):
            raise Conflict("This external account is already linked.", code="already-linked")
        user = User(country=country, nickname=nick, language=_language(language), age_confirmed_at=utcnow())
        session.add(user)
        await session.flush()
        session.add(ExternalIdentity(user_id=user.id, provider=provider, external_subject=external_subject,
                                     nickname=nickname, photo_key=photo_key))
        return await _open_session(ctx, session, user.id, f"oidc:{provider}", terminal, ip)


# Deregistration (B17) --------------------------------------------------------------


async def deregister(ctx: Context, user_id: str) -> dict:
    """Erase everything about the account through the generic erasure (B17, R3)."""
    async with ctx.db.session() as session:
        subject = await resolve_subject(session, user_id)
    report = await erase_subject(ctx.db, ctx.blobs, subject, reason="deregistration")
    forget_sessions(ctx, user_id=user_id)
    return {"rows": report.rows, "blobs": report.blobs, "record": report.record_id}


# For other domains -----------------------------------------------------------------


@dataclass(frozen=True)
class UserBrief:
    id: str
    nickname: str
    email: str | None
    phone: str | None
    country: str
    language: str


def _brief(u: User) -> UserBrief:
    return UserBrief(u.id, u.nickname, u.email, u.phone, u.country, u.language)


async def get_user_brief(ctx: Context, user_id: str) -> UserBrief | None:
    async with ctx.db.session() as session:
        u = await session.get(User, user_id)
    return None if u is None else _brief(u)


async def user_briefs(session, user_ids: Iterable[str]) -> dict[str, UserBrief]:
    """Briefs of several accounts in one query, in the caller's session (lists of devices
    shared by several people must not open a session per person)."""
    ids = sorted(set(user_ids))
    if not ids:
        return {}
    rows = await session.execute(_BRIEFS, {"ids": ids})
    return {r.id: UserBrief(*r) for r in rows}


# Only the columns of a brief, as plain rows: no ORM identity map or attribute loading on
# the hot device-list path (bench/bench_api.py). Built once so its compiled form is reused.
_BRIEFS = select(User.id, User.nickname, User.email, User.phone, User.country, User.language).where(
    User.id.in_(bindparam("ids", expanding=True)))


async def find_user_by_contact(ctx: Context, value: str, country: str | None = None) -> UserBrief | None:
    """The account registered with this email or phone, if any (for sharing, B9)."""
    kind, norm = _login_key(value, country)
    async with ctx.db.session() as session:
        u = await _find_by_login(session, kind, norm)
    return None if u is None else _brief(u)


async def find_user_id(ctx: Context, value: str) -> str | None:
    """The id of the account registered with this email or +phone; None when there is
    none, or when the value is not an address at all (operator tools, reports)."""
    try:
        u = await find_user_by_contact(ctx, value)
    except Problem:
        return None
    return u.id if u else None


async def require_user(ctx: Context, user_id: str) -> None:
    if await get_user_brief(ctx, user_id) is None:
        raise Forbidden("No such account.", code="no-user")


async def create_account(ctx: Context, *, email: str | None, phone: str | None, country: str, nickname: str,
                         password: str, language: str = "en") -> str:
    """Create a confirmed account directly (operators and the demo; people register with a code).

    The same checks as registration apply; the operator vouches for the address and for
    the person being 16 or older.
    """
    country = v.normalize_country(country)
    email = v.normalize_email(email) if email else None
    phone = v.normalize_phone(phone, country) if phone else None
    if not email and not phone:
        raise Invalid("email", "An email address or a phone number is needed.", code="contact-required")
    await offload(v.check_password, password, min_score=ctx.settings.password_min_score,
                  user_inputs=[email or "", phone or "", nickname])
    password_hash = await offload(hash_password, password)
    async with ctx.db.transaction() as session:
        user = User(email=email, phone=phone, country=country, nickname=v.normalize_nickname(nickname),
                    password_hash=password_hash, language=_language(language), age_confirmed_at=utcnow())
        session.add(user)
        try:
            await session.flush()
        except IntegrityError:
            raise Conflict("An account with this address already exists.", code="already-registered") from None
    return user.id
