"""Log lines carry no person: identifiers become keyed pseudonyms, personal values are
redacted whatever their type, SQL errors hide their parameters — and the server's own
listening address stays readable."""

from __future__ import annotations

import json
import logging

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from faoyam.core import logging as flog
from faoyam.core.database import Database

UID = "4f1c9e2ab8d34c6f9a0e1b2c3d4e5f60"


def _json(msg="event", name="faoyam.test", args=None, **extra) -> dict:
    rec = logging.makeLogRecord({"msg": msg, "args": args, "levelname": "INFO", "name": name, **extra})
    return json.loads(flog.JsonFormatter().format(rec))


@pytest.fixture(autouse=True)
def _key():
    saved = flog._key
    flog.setup("INFO", None, True, pseudonym_key=b"the service's secret key")
    yield
    flog._key = saved


@pytest.mark.req("B17")
def test_a_user_id_is_logged_as_a_keyed_pseudonym():
    line = _json(user=UID, owner=UID, device="dev-1")
    assert line["user"] == line["owner"] == flog.pseudonym(UID)
    assert line["user"].startswith("p-") and len(line["user"]) == 14
    assert UID not in json.dumps(line) and line["device"] == "dev-1"
    assert _json(user=UID)["user"] == line["user"]  # the same account correlates across lines
    assert _json(user="someone-else")["user"] != line["user"]
    assert _json(user=None)["user"] is None
    flog.setup("INFO", None, True, pseudonym_key=b"another deployment's key")
    assert _json(user=UID)["user"] != line["user"]  # keyed: not a plain hash anyone can recompute


@pytest.mark.req("B17")
def test_personal_values_are_redacted_in_extras_of_any_type():
    line = _json(phone=66812345678, count=3, ms=12.5, ok=True,
                 detail={"to": "ann@example.com", "n": 4, "who": {"user": UID}},
                 peers=["203.0.113.9", "fine", 7], tags=("+66 81 234 5678",))
    assert line["phone"] == "[redacted]"
    assert line["count"] == 3 and line["ms"] == 12.5 and line["ok"] is True
    assert line["detail"] == {"to": "[redacted]", "n": 4, "who": {"user": flog.pseudonym(UID)}}
    assert line["peers"] == ["[redacted]", "fine", 7] and line["tags"] == ["[redacted]"]
    assert "example.com" not in json.dumps(line) and UID not in json.dumps(line)


def test_the_servers_own_listening_address_is_kept_in_start_up_lines():
    up = _json("Uvicorn running on %s://%s:%d (Press CTRL+C to quit)", name="uvicorn.error",
               args=("http", "192.0.2.10", 8093))
    assert up["msg"].startswith("Uvicorn running on http://192.0.2.10:8093")
    # Any other line with an address is still redacted, uvicorn's included.
    assert "192.0.2.10" not in _json("client 192.0.2.10 disconnected", name="uvicorn.error")["msg"]
    assert "192.0.2.10" not in _json("Uvicorn running on http://192.0.2.10", name="faoyam.x")["msg"]


def test_the_terminal_format_is_redacted_too():
    rec = logging.makeLogRecord({"msg": "mail to ann@example.com", "levelname": "INFO", "name": "t",
                                 "user": UID, "phone": 66812345678})
    line = flog.PlainFormatter().format(rec)
    assert "example.com" not in line and UID not in line and "66812345678" not in line
    assert f"user={flog.pseudonym(UID)}" in line


async def test_sql_errors_do_not_carry_their_parameters(tmp_path):
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    try:
        async with db.transaction() as s:
            await s.execute(text("CREATE TABLE people (email TEXT UNIQUE)"))
            await s.execute(text("INSERT INTO people VALUES (:e)"), {"e": "ann@example.com"})
        with pytest.raises(IntegrityError) as caught:
            async with db.transaction() as s:
                await s.execute(text("INSERT INTO people VALUES (:e)"), {"e": "ann@example.com"})
        assert "ann@example.com" not in str(caught.value)
        assert "parameters hidden" in str(caught.value)
    finally:
        await db.dispose()


@pytest.fixture
def _own_hosts():
    saved = set(flog._OWN_HOSTS)
    yield
    flog._OWN_HOSTS.clear()
    flog._OWN_HOSTS.update(saved)


@pytest.mark.req("B17")
def test_our_own_service_url_stays_readable_but_its_stream_key_does_not(_own_hosts):
    token = "a1b2c3d4e5f6.0.main.1764590000.0123456789abcdef0123456789abcdef"
    flog.own_url("rtmp://192.0.2.20:1935/live")
    line = _json("start_stream sent", url=f"rtmp://192.0.2.20:1935/live/{token}", base="rtmp://192.0.2.20:1935/live")
    assert line["url"] == "rtmp://192.0.2.20:1935/live/[redacted]"
    assert line["base"] == "rtmp://192.0.2.20:1935/live"
    assert token not in json.dumps(line) and "0123456789abcdef" not in json.dumps(line)
    # the same in the message, next to a person's address that is still redacted
    msg = _json(f"push rtmp://192.0.2.20:1935/live/{token} from 198.51.100.7")["msg"]
    assert msg == "push rtmp://192.0.2.20:1935/live/[redacted] from [redacted]"


@pytest.mark.req("B17")
def test_other_urls_lose_their_credentials_host_and_tokens(_own_hosts):
    flog.own_url("rtmp://192.0.2.20:1935/live")
    line = _json("pulling", src="rtsp://admin:hunter2@192.168.1.9:554/Streaming/Channels/101?token=s3cret",
                 other="rtmp://192.0.2.99:1935/live/key123")  # same scheme, not our host
    assert line["src"] == "rtsp://[redacted]@[redacted]:554/Streaming/Channels/[redacted]?[redacted]"
    assert line["other"] == "rtmp://[redacted]:1935/live/[redacted]"
    for secret in ("hunter2", "admin", "192.168.1.9", "s3cret", "192.0.2.99", "key123"):
        assert secret not in json.dumps(line)
    # credentials are redacted even in our own URL
    assert _json("x", u="rtmp://me:pw@192.0.2.20:1935/live")["u"] == "rtmp://[redacted]@192.0.2.20:1935/live"
