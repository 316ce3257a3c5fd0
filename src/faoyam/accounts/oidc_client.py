"""The relying-party side of external sign-in: providers, the code flow, ID tokens, photos.

Routes live in ``oidc.py``; this module speaks to the providers.

* **Providers** come from configuration (``Settings.oidc_providers``): an OpenID Connect
  issuer found through its discovery document (``server_metadata_url``), or a plain
  OAuth 2 provider (Facebook) given by ``authorize_url``/``access_token_url``/
  ``userinfo_url`` and a mapping of which userinfo fields hold the subject, the nickname
  and the photo. ``google`` and ``facebook`` have presets, so an operator only adds the
  client id and secret.
* **The flow** is the authorization code flow with PKCE (S256), ``state`` and, for OIDC,
  ``nonce``. The code is exchanged with Authlib's ``AsyncOAuth2Client``; the ID token is
  verified the way Authlib's own OIDC client does it: the signature against the
  provider's published keys (joserfc, Authlib's JOSE engine; asymmetric algorithms only),
  then the claims with ``authlib.oidc.core.CodeIDToken``: issuer, audience, expiry,
  issued-at, nonce, ``azp`` and ``at_hash``.
* **What is kept** (B1a): the external subject (to recognise the account next time), a
  nickname and a profile photo. Everything else a provider sends (email, name, locale,
  ...) is dropped here, before anything is stored or logged.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import time
import warnings
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
from authlib.integrations.base_client import OAuthError

with warnings.catch_warnings():
    # Authlib >= 1.7 prefers the "httpx2" package and warns once at import when it runs on
    # httpx, which is faoyam's HTTP client; the warning is for maintainers, not operators.
    warnings.simplefilter("ignore", DeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from faoyam.core.context import Context
from faoyam.core.errors import Problem

log = logging.getLogger(__name__)

HTTP_TIMEOUT = 10.0
METADATA_TTL = 3600.0  # seconds a discovery document or key set is reused
CLOCK_LEEWAY = 60  # seconds of clock skew tolerated on exp/iat
MAX_CLAIM_URL = 1500
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
RESERVED_NAMES = {"external"}  # /auth/external/... is the completion page

# Algorithms an ID token may be signed with: asymmetric only (never "none", never a MAC
# keyed with the client secret).
ASYMMETRIC = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA", "Ed25519"}

# Which claims hold the nickname, first non-empty wins. A value that looks like an email
# address is never taken as a nickname (some issuers put the email in preferred_username).
DEFAULT_NICKNAME_CLAIMS = ("nickname", "preferred_username", "given_name", "name")

PRESETS: dict[str, dict[str, Any]] = {
    "google": {
        "label": "Google",
        "server_metadata_url": "https://accounts.google.com/.well-known/openid-configuration",
        "scope": "openid profile",
        "claims": {"nickname": ["given_name", "name"], "picture": "picture"},
    },
    "facebook": {
        "label": "Facebook",
        "authorize_url": "https://www.facebook.com/v21.0/dialog/oauth",
        "access_token_url": "https://graph.facebook.com/v21.0/oauth/access_token",
        # Ask the Graph API for the id, the short name and the picture: nothing else.
        "userinfo_url": "https://graph.facebook.com/v21.0/me?fields=id,short_name,picture.width(512).height(512)",
        "scope": "public_profile",
        "token_endpoint_auth_method": "client_secret_post",
        "claims": {"subject": "id", "nickname": ["short_name", "first_name", "name"], "picture": "picture.data.url"},
    },
}


# What a person reads when a sign-in fails, by problem code. Each text is an English
# msgid that the web app's catalog translates (web/translations), {provider} filled in.
MESSAGES: dict[str, tuple[int, str]] = {
    "unknown-provider": (404, "There is no sign-in with this provider here."),
    "provider-unavailable": (503, "{provider} cannot be reached right now. Try again in a moment."),
    "provider-misconfigured": (503, "{provider} is not set up right on this server."),
    "provider-error": (502, "{provider} could not sign you in. Start again."),
    "no-code": (400, "{provider} could not sign you in. Start again."),
    "no-subject": (502, "{provider} did not say who you are. Start again."),
    "invalid-userinfo": (502, "{provider} answered about another account."),
    "invalid-id-token": (400, "The answer from {provider} could not be verified, so you were not signed in."),
    "issuer-mismatch": (400, "The answer did not come from {provider}."),
    "external-cancelled": (400, "Signing in with {provider} was cancelled."),
    "bad-state": (400, "This sign-in did not start here, or took too long. Start again."),
    "external-expired": (410, "This sign-up took too long or was already finished. Sign in again."),
    "already-linked": (409, "This {provider} account already has a faoyam account. Sign in with {provider}."),
}


class OidcProblem(Problem):
    """A sign-in that cannot go on; ``code`` says why (see docs/external-sign-in.md).

    ``msgid`` and ``fmt`` let a page show the message in the reader's language.
    """

    title = "External sign-in failed"

    def __init__(self, code: str, provider: Provider | None = None, **extensions: Any):
        status, msgid = MESSAGES[code]
        fmt = {"provider": provider.label} if provider is not None else {}
        super().__init__(msgid.format(**fmt), status=status, code=code, **extensions)
        self.msgid, self.fmt = msgid, fmt


@dataclass(frozen=True)
class Provider:
    name: str
    label: str
    client_id: str
    client_secret: str | None
    scope: str
    server_metadata_url: str | None = None
    issuer: str | None = None
    authorize_url: str | None = None
    access_token_url: str | None = None
    userinfo_url: str | None = None
    jwks_uri: str | None = None
    token_endpoint_auth_method: str = "client_secret_basic"
    redirect_uri: str | None = None
    subject_claim: str = "sub"
    nickname_claims: tuple[str, ...] = DEFAULT_NICKNAME_CLAIMS
    picture_claim: str | None = "picture"
    picture_hosts: tuple[str, ...] = ()
    authorize_params: dict[str, str] = field(default_factory=dict)

    @property
    def is_oidc(self) -> bool:
        return bool(self.server_metadata_url) or "openid" in self.scope.split()

    def callback_url(self, base_url: str) -> str:
        return self.redirect_uri or f"{base_url.rstrip('/')}/auth/{self.name}/callback"


def _as_tuple(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


def parse_provider(name: str, raw: dict[str, Any]) -> Provider:
    """One configured provider, with its preset filled in. Raises ValueError when wrong."""
    if not NAME_RE.match(name) or name in RESERVED_NAMES:
        raise ValueError(f"external sign-in provider name {name!r}: use a-z, 0-9, - and _ (at most 32), not 'external'")
    preset = dict(PRESETS.get(str(raw.get("preset") or name), {}))
    conf = {**preset, **{k: v for k, v in raw.items() if v is not None}}
    claims = {**preset.get("claims", {}), **(raw.get("claims") or {})}
    if not conf.get("client_id"):
        raise ValueError(f"external sign-in provider {name!r}: client_id is missing")
    has_discovery = bool(conf.get("server_metadata_url"))
    has_endpoints = bool(conf.get("authorize_url") and conf.get("access_token_url"))
    if not has_discovery and not has_endpoints:
        raise ValueError(f"external sign-in provider {name!r}: give server_metadata_url (OpenID Connect) or "
                         "authorize_url and access_token_url (OAuth 2)")
    scope = conf.get("scope") or ("openid profile" if has_discovery else "")
    if isinstance(scope, list | tuple):
        scope = " ".join(scope)
    p = Provider(
        name=name,
        label=str(conf.get("label") or name.capitalize()),
        client_id=str(conf["client_id"]),
        client_secret=conf.get("client_secret"),
        scope=scope,
        server_metadata_url=conf.get("server_metadata_url"),
        issuer=conf.get("issuer"),
        authorize_url=conf.get("authorize_url"),
        access_token_url=conf.get("access_token_url"),
        userinfo_url=conf.get("userinfo_url"),
        jwks_uri=conf.get("jwks_uri"),
        token_endpoint_auth_method=conf.get("token_endpoint_auth_method")
        or ("client_secret_basic" if conf.get("client_secret") else "none"),
        redirect_uri=conf.get("redirect_uri"),
        subject_claim=str(claims.get("subject") or "sub"),
        nickname_claims=_as_tuple(claims.get("nickname")) or DEFAULT_NICKNAME_CLAIMS,
        picture_claim=claims.get("picture", "picture") or None,
        picture_hosts=tuple(h.lower() for h in _as_tuple(conf.get("picture_hosts"))),
        authorize_params={str(k): str(v) for k, v in (conf.get("authorize_params") or {}).items()},
    )
    if p.is_oidc and not has_discovery and not (p.issuer and p.jwks_uri):
        raise ValueError(f"external sign-in provider {name!r}: an OpenID Connect provider without discovery needs "
                         "issuer and jwks_uri")
    return p


def providers(ctx: Context) -> dict[str, Provider]:
    """Every configured provider that is set up right; a wrong entry is logged and left out."""
    out = {}
    for name, raw in (ctx.settings.oidc_providers or {}).items():
        try:
            out[name] = parse_provider(name, dict(raw or {}))
        except ValueError as exc:
            log.error("oidc.provider_misconfigured", extra={"provider": name, "error": str(exc)})
    return out


def get_provider(ctx: Context, name: str) -> Provider:
    p = providers(ctx).get(name)
    if p is None:
        raise OidcProblem("unknown-provider")
    return p


# Provider metadata (discovery, keys) ------------------------------------------------


def _cache(ctx: Context) -> dict:
    return ctx.oidc_cache


async def _get_json(url: str) -> dict:
    async with httpx.AsyncClient(timeout=HTTP_TIMEOUT, follow_redirects=False) as c:
        r = await c.get(url, headers={"Accept": "application/json"})
    r.raise_for_status()
    data = r.json()
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


async def metadata(ctx: Context, p: Provider, *, force: bool = False) -> dict[str, Any]:
    """The provider's endpoints: its discovery document (cached an hour), or the configured ones."""
    explicit = {k: v for k, v in {
        "issuer": p.issuer, "authorization_endpoint": p.authorize_url, "token_endpoint": p.access_token_url,
        "userinfo_endpoint": p.userinfo_url, "jwks_uri": p.jwks_uri}.items() if v}
    if not p.server_metadata_url:
        return explicit
    key = ("meta", p.name, p.server_metadata_url)
    hit = _cache(ctx).get(key)
    if hit and not force and time.monotonic() - hit[0] < METADATA_TTL:
        return hit[1]
    try:
        doc = await _get_json(p.server_metadata_url)
    except (httpx.HTTPError, ValueError) as exc:
        log.warning("oidc.discovery_failed", extra={"provider": p.name, "error": type(exc).__name__})
        raise OidcProblem("provider-unavailable", p) from None
    issuer = doc.get("issuer")
    # OpenID Connect Discovery 1.0, 4.3: the document's issuer is the one it was found for.
    expected = p.issuer or p.server_metadata_url.split("/.well-known/", 1)[0]
    if not issuer or issuer.rstrip("/") != expected.rstrip("/"):
        log.error("oidc.issuer_mismatch", extra={"provider": p.name})
        raise OidcProblem("provider-misconfigured", p)
    meta = {**doc, **explicit, "issuer": issuer}
    _cache(ctx)[key] = (time.monotonic(), meta)
    return meta


async def _key_set(ctx: Context, p: Provider, meta: dict, *, force: bool = False) -> KeySet:
    uri = meta.get("jwks_uri")
    if not uri:
        raise OidcProblem("provider-misconfigured", p)
    key = ("jwks", p.name, uri)
    hit = _cache(ctx).get(key)
    if hit and not force and time.monotonic() - hit[0] < METADATA_TTL:
        return hit[1]
    try:
        ks = KeySet.import_key_set(await _get_json(uri))
    except (httpx.HTTPError, ValueError, JoseError) as exc:
        log.warning("oidc.jwks_failed", extra={"provider": p.name, "error": type(exc).__name__})
        raise OidcProblem("provider-unavailable", p) from None
    _cache(ctx)[key] = (time.monotonic(), ks)
    return ks


# The flow ---------------------------------------------------------------------------


def _client(p: Provider, redirect_uri: str, **kw) -> AsyncOAuth2Client:
    return AsyncOAuth2Client(
        client_id=p.client_id, client_secret=p.client_secret, scope=p.scope or None, redirect_uri=redirect_uri,
        code_challenge_method="S256", token_endpoint_auth_method=p.token_endpoint_auth_method,
        timeout=HTTP_TIMEOUT, follow_redirects=False, **kw)


async def authorization_url(ctx: Context, p: Provider, *, state: str, nonce: str, code_verifier: str) -> str:
    meta = await metadata(ctx, p)
    endpoint = meta.get("authorization_endpoint")
    if not endpoint:
        raise OidcProblem("provider-misconfigured", p)
    extra = dict(p.authorize_params)
    if p.is_oidc:
        extra["nonce"] = nonce
    async with _client(p, p.callback_url(ctx.settings.base_url)) as client:
        url, _ = client.create_authorization_url(endpoint, state=state, code_verifier=code_verifier, **extra)
    return url


@dataclass(frozen=True)
class ExternalProfile:
    """All that leaves this module about the person: B1a's list, and the subject."""

    subject: str
    nickname: str | None
    picture_url: str | None


def _claim(data: dict, path: str | None) -> Any:
    cur: Any = data
    for part in (path or "").split("."):
        if not part or not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def clean_nickname(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    nick = " ".join("".join(ch for ch in value if ch.isprintable()).split())[:64].strip()
    if not nick or "@" in nick:
        return None
    return nick


def profile_from_claims(p: Provider, claims: dict[str, Any], subject: str | None = None) -> ExternalProfile:
    """Pick the subject, the nickname and the photo URL; everything else is left behind."""
    sub = subject if subject is not None else _claim(claims, p.subject_claim)
    if isinstance(sub, int):
        sub = str(sub)
    if not isinstance(sub, str) or not sub or len(sub) > 255:
        raise OidcProblem("no-subject", p)
    nickname = next((n for n in (clean_nickname(_claim(claims, c)) for c in p.nickname_claims) if n), None)
    pic = _claim(claims, p.picture_claim) if p.picture_claim else None
    if not (isinstance(pic, str) and pic.startswith(("https://", "http://")) and len(pic) <= MAX_CLAIM_URL):
        pic = None
    return ExternalProfile(sub, nickname, pic)


async def validate_id_token(ctx: Context, p: Provider, meta: dict, id_token: str, *, nonce: str,
                            access_token: str | None) -> dict[str, Any]:
    """Verify the ID token's signature and claims; returns its claims or raises ``invalid-id-token``."""
    algs = [a for a in meta.get("id_token_signing_alg_values_supported") or ["RS256"] if a in ASYMMETRIC]
    if not algs:
        raise OidcProblem("invalid-id-token", p)
    keys = await _key_set(ctx, p, meta)
    try:
        try:
            token = jwt.decode(id_token, keys, algorithms=algs)
        except InvalidKeyIdError:
            # The provider rotated its keys since we fetched them: fetch once more.
            token = jwt.decode(id_token, await _key_set(ctx, p, meta, force=True), algorithms=algs)
        options = {
            "iss": {"essential": True, "value": meta["issuer"]},
            "aud": {"essential": True, "value": p.client_id},
            "exp": {"essential": True},
            "iat": {"essential": True},
            "sub": {"essential": True},
        }
        params = {"nonce": nonce, "client_id": p.client_id}
        if access_token:
            params["access_token"] = access_token
        claims = CodeIDToken(token.claims, token.header, options, params)
        claims.validate(leeway=CLOCK_LEEWAY)
        if "nonce" not in claims:  # we always send one; a token without it is not ours
            raise JoseError("nonce missing")
    except (JoseError, ValueError, TypeError) as exc:
        log.warning("oidc.id_token_refused", extra={"provider": p.name, "error": type(exc).__name__,
                                                    "claim": getattr(exc, "claim", None)})
        raise OidcProblem("invalid-id-token", p) from None
    return dict(claims)


async def finish(ctx: Context, p: Provider, *, code: str, code_verifier: str, nonce: str,
                 iss: str | None) -> ExternalProfile:
    """Exchange the code, check the ID token, read userinfo: the external profile."""
    meta = await metadata(ctx, p)
    if p.is_oidc and (iss is not None or meta.get("authorization_response_iss_parameter_supported")):
        # RFC 9207: the answer names its issuer; a different one is a mix-up attack.
        if iss != meta.get("issuer"):
            raise OidcProblem("issuer-mismatch", p)
    token_url = meta.get("token_endpoint")
    if not token_url:
        raise OidcProblem("provider-misconfigured", p)
    async with _client(p, p.callback_url(ctx.settings.base_url)) as client:
        try:
            token = await client.fetch_token(token_url, grant_type="authorization_code", code=code,
                                             code_verifier=code_verifier)
        except OAuthError as exc:
            log.warning("oidc.token_refused", extra={"provider": p.name, "error": exc.error})
            raise OidcProblem("provider-error", p) from None
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("oidc.token_failed", extra={"provider": p.name, "error": type(exc).__name__})
            raise OidcProblem("provider-unavailable", p) from None
        id_claims: dict[str, Any] = {}
        if p.is_oidc:
            if not token.get("id_token"):
                raise OidcProblem("invalid-id-token", p)
            id_claims = await validate_id_token(ctx, p, meta, token["id_token"], nonce=nonce,
                                                access_token=token.get("access_token"))
        userinfo = await read_userinfo(p, client, meta.get("userinfo_endpoint"))
    if p.is_oidc:
        if userinfo.get("sub") not in (None, id_claims["sub"]):
            # OIDC Core 5.3.2: userinfo about someone else must not be used.
            raise OidcProblem("invalid-userinfo", p)
        return profile_from_claims(p, {**id_claims, **userinfo}, subject=id_claims["sub"])
    return profile_from_claims(p, userinfo)


async def read_userinfo(p: Provider, client: AsyncOAuth2Client, url: str | None) -> dict[str, Any]:
    """The userinfo document (JSON), read with the access token; {} when there is none."""
    if not url:
        return {}
    try:
        r = await client.get(url, headers={"Accept": "application/json"})
        if r.status_code != 200 or "json" not in r.headers.get("content-type", ""):
            raise ValueError(f"status {r.status_code}")
        data = r.json()
        if not isinstance(data, dict):
            raise ValueError("not an object")
        return data
    except (httpx.HTTPError, ValueError, OAuthError) as exc:
        log.warning("oidc.userinfo_failed", extra={"provider": p.name, "error": type(exc).__name__})
        if p.is_oidc:
            return {}  # the ID token is enough to know who it is
        raise OidcProblem("no-subject", p) from None


# The profile photo ------------------------------------------------------------------

MAX_REDIRECTS = 3


def _host_allowed(host: str, allowed: tuple[str, ...]) -> bool:
    return any(host == a or (a.startswith(".") and host.endswith(a)) for a in allowed)


async def _check_picture_url(p: Provider, meta: dict, url: str) -> None:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("https", "http") or not host or parts.username or parts.password:
        raise ValueError("not a plain http(s) URL")
    if p.picture_hosts and not _host_allowed(host, p.picture_hosts):
        raise ValueError("host not in picture_hosts")
    # The provider's own hosts (and the configured picture hosts) may be on a private
    # network (a company or home identity server); any other host must be public.
    own = {(urlsplit(str(v)).hostname or "").lower() for k, v in meta.items()
           if k in ("issuer", "authorization_endpoint", "token_endpoint", "userinfo_endpoint") and v}
    trusted = host in own or bool(p.picture_hosts)
    infos = await asyncio.get_running_loop().getaddrinfo(host, parts.port or (443 if parts.scheme == "https" else 80))
    for info in infos:
        ip = ipaddress.ip_address(info[4][0])
        if ip.is_link_local or ip.is_multicast or ip.is_unspecified or ip.is_reserved:
            raise ValueError("address not allowed")
        if (ip.is_loopback or ip.is_private) and not trusted:
            raise ValueError("private address not allowed")


async def fetch_picture(ctx: Context, p: Provider, url: str) -> bytes | None:
    """Download the provider's photo once, at most ``max_photo_bytes``; None if it cannot be had.

    A photo is optional (B1a): any problem here means "no photo", never a failed sign-up.
    """
    limit = ctx.settings.max_photo_bytes
    try:
        meta = await metadata(ctx, p)
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT, follow_redirects=False) as c:
            for _ in range(MAX_REDIRECTS + 1):
                await _check_picture_url(p, meta, url)
                async with c.stream("GET", url, headers={"Accept": "image/*"}) as r:
                    if r.is_redirect and r.headers.get("location"):
                        url = urljoin(url, r.headers["location"])
                        continue
                    if r.status_code != 200:
                        raise ValueError(f"status {r.status_code}")
                    declared = r.headers.get("content-length")
                    if declared and declared.isdigit() and int(declared) > limit:
                        raise ValueError("too large")
                    chunks, size = [], 0
                    async for chunk in r.aiter_bytes():
                        size += len(chunk)
                        if size > limit:
                            raise ValueError("too large")
                        chunks.append(chunk)
                    return b"".join(chunks)
            raise ValueError("too many redirects")
    except (httpx.HTTPError, ValueError, OSError, Problem) as exc:
        # Only fixed texts and type names: an URL or an address may say who the person is.
        why = str(exc) if type(exc) is ValueError else type(exc).__name__
        log.warning("oidc.picture_skipped", extra={"provider": p.name, "error": why})
        return None


__all__ = [
    "ExternalProfile", "OidcProblem", "Provider", "authorization_url", "fetch_picture", "finish",
    "get_provider", "metadata", "parse_provider", "profile_from_claims", "providers", "validate_id_token",
]
