"""Signed media URLs: bound to a channel stream, a permission and a viewer; short-lived; one use."""

from __future__ import annotations

import base64
import json

import pytest

from faoyam.media import ChannelId
from faoyam.media.tokens import ReplayGuard, TokenError, mint, verify

KEY = b"test-secret-key"
CAM = ChannelId("a" * 32, 0, "main")
NOW = 1_800_000_000.0


def reason(fn) -> str:
    with pytest.raises(TokenError) as exc:
        fn()
    return exc.value.reason


@pytest.mark.req("B4", "B9")
def test_a_token_carries_its_channel_stream_permission_and_viewer():
    token = mint(KEY, CAM, "user:u1", ttl=60, now=NOW)
    grant = verify(KEY, token, now=NOW + 59, channel=CAM)
    assert (grant.channel, grant.permission, grant.grant) == (CAM, "live", "user:u1")
    assert grant.expires == NOW + 60
    assert "/" not in token and "?" not in token and "#" not in token  # fits a URL path segment


@pytest.mark.req("B4")
def test_an_expired_token_is_refused():
    token = mint(KEY, CAM, "user:u1", ttl=60, now=NOW)
    assert reason(lambda: verify(KEY, token, now=NOW + 60)) == "expired"
    assert reason(lambda: verify(KEY, token, now=NOW + 3600)) == "expired"


@pytest.mark.req("B4")
@pytest.mark.parametrize("field, value", [("d", "b" * 32), ("c", 1), ("s", "sub"), ("g", "user:someone-else"),
                                          ("e", NOW + 10**6), ("p", "playback")])
def test_a_tampered_token_is_refused(field, value):
    token = mint(KEY, CAM, "user:u1", now=NOW)
    payload, sig = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert field in body
    body[field] = value
    forged = base64.urlsafe_b64encode(json.dumps(body, separators=(",", ":")).encode()).rstrip(b"=").decode()
    assert reason(lambda: verify(KEY, f"{forged}.{sig}", now=NOW)) == "bad-signature"


@pytest.mark.req("B4")
def test_a_token_signed_with_another_key_or_mangled_is_refused():
    token = mint(KEY, CAM, "user:u1", now=NOW)
    assert reason(lambda: verify(b"another-deployment", token, now=NOW)) == "bad-signature"
    for bad in ("", "abc", token + ".x", token[:-2], "x" * 5000, token.replace(".", "")):
        assert reason(lambda: verify(KEY, bad, now=NOW)) in ("malformed", "bad-signature"), bad


@pytest.mark.req("B4")
def test_a_token_for_another_channel_or_stream_opens_nothing_else():
    token = mint(KEY, CAM, "user:u1", now=NOW)
    assert reason(lambda: verify(KEY, token, now=NOW, channel=ChannelId(CAM.device_id, 1, "main"))) == "wrong-channel"
    assert reason(lambda: verify(KEY, token, now=NOW, channel=ChannelId(CAM.device_id, 0, "sub"))) == "wrong-channel"
    assert reason(lambda: verify(KEY, token, now=NOW, channel=ChannelId("b" * 32))) == "wrong-channel"


def test_a_live_token_is_not_a_playback_token():
    token = mint(KEY, CAM, "user:u1", now=NOW)
    assert reason(lambda: verify(KEY, token, now=NOW, permission="playback")) == "wrong-permission"


def test_each_token_opens_one_session():
    guard = ReplayGuard()
    first = verify(KEY, mint(KEY, CAM, "user:u1", now=NOW), now=NOW)
    second = verify(KEY, mint(KEY, CAM, "user:u1", now=NOW), now=NOW)
    assert guard.use(first, now=NOW) and not guard.use(first, now=NOW)
    assert guard.use(second, now=NOW)  # a fresh token for the same viewer works
    guard.prune(now=NOW + 120)  # expired tokens are refused by verify; their nonces can go
    assert len(guard) == 0


def test_a_flood_of_fresh_tokens_does_not_grow_the_replay_memory():
    guard = ReplayGuard(max_entries=10)
    grants = [verify(KEY, mint(KEY, CAM, "user:u1", now=NOW), now=NOW) for _ in range(20)]
    accepted = [guard.use(g, now=NOW) for g in grants]
    assert accepted == [True] * 10 + [False] * 10
    assert len(guard) == 10
