"""HLS and snapshot tokens: many requests per token, a session that outlives the token
while it is used, revocation re-checked on the requests (cached briefly), refusals as
problems that say why. The clock is the test's, so nothing here waits."""

from __future__ import annotations

import pytest

from faoyam.core.errors import Forbidden, Gone, Unauthorized
from faoyam.media import ChannelId
from faoyam.media.hls_access import MediaAccess
from faoyam.media.tokens import mint

KEY = b"k" * 32
CAM = ChannelId("cam1")


class Clock:
    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


class Grants:
    """The devices domain's answer, counted."""

    def __init__(self):
        self.revoked: set[str] = set()
        self.asked: list = []
        self.broken = False

    async def __call__(self, grant) -> bool:
        self.asked.append(grant)
        if self.broken:
            raise ConnectionError("database away")
        return grant.grant in self.revoked


def access(**kw) -> tuple[MediaAccess, Clock, Grants]:
    clock, grants = Clock(), Grants()
    return MediaAccess(KEY, revoked=grants, clock=clock, **kw), clock, grants


def token(clock: Clock, permission: str = "hls", ttl: float = 60, grant: str = "user:u1", channel=CAM) -> str:
    return mint(KEY, channel, grant, permission=permission, ttl=ttl, now=clock.now)


@pytest.mark.req("B4")
async def test_a_token_is_used_many_times_and_its_session_outlives_it_while_used():
    media, clock, _ = access(session_idle=30)
    t = token(clock, ttl=60)
    for _ in range(100):  # playlist reloads and parts
        assert await media.hls(t) == CAM
        clock.now += 5
    assert clock.now > 1_800_000_000 + 60, "well past the token's expiry, still playing"
    clock.now += 31  # the player stopped for longer than a session's idle time
    with pytest.raises(Gone) as exc:
        await media.hls(t)
    assert exc.value.code == "media-token-expired"
    late = token(clock, ttl=60)
    clock.now += 61
    with pytest.raises(Gone):
        await media.hls(late)  # never used before its expiry: opens nothing


@pytest.mark.req("B4")
async def test_tokens_for_another_use_or_tampered_are_refused():
    media, clock, _ = access()
    with pytest.raises(Forbidden) as exc:
        await media.hls(token(clock, permission="live"))
    assert exc.value.code == "media-token-forbidden"
    with pytest.raises(Forbidden):
        await media.snapshot(token(clock, permission="hls"))
    assert await media.snapshot(token(clock, permission="snapshot")) == CAM
    t = token(clock)
    for bad in (t[:-2], "x" + t, "", t.replace(".", ".."), mint(b"other" * 8, CAM, "user:u1", permission="hls")):
        with pytest.raises(Unauthorized) as exc:
            await media.hls(bad)
        assert exc.value.code == "media-token-bad"


@pytest.mark.req("B4", "B9")
async def test_revocation_is_rechecked_every_half_second_and_ends_the_session():
    media, clock, grants = access(recheck=0.5)
    mine, theirs = token(clock), token(clock, grant="user:u2")
    for _ in range(10):  # ten requests in the same instant: one question to the devices domain
        await media.hls(mine)
    assert len(grants.asked) == 1 and grants.asked[0].permission == "live", "HLS is live view"
    grants.revoked.add("user:u1")
    await media.hls(mine)  # answered from the cache for up to recheck seconds
    clock.now += 0.6
    with pytest.raises(Forbidden) as exc:
        await media.hls(mine)
    assert exc.value.code == "media-revoked"
    assert await media.hls(theirs) == CAM, "another viewer's grant is not affected"
    grants.revoked.clear()  # even if allowed again, this token's session is over once its time is
    clock.now += 61
    with pytest.raises(Gone):
        await media.hls(mine)


async def test_a_failing_check_keeps_players_playing():
    media, clock, grants = access()
    grants.broken = True
    assert await media.hls(token(clock)) == CAM


async def test_ended_sessions_are_forgotten():
    media, clock, _ = access(session_idle=30)
    for _ in range(50):
        await media.hls(token(clock))
    assert len(media.sessions) == 50
    clock.now += 31
    media.prune()
    assert media.sessions == {}
