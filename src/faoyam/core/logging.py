"""Structured logging that keeps personal data out of log files.

Logs are JSON lines (one object per record) to stderr and to ``data_dir/logs``, rotated
daily and kept seven days (RET5). Two things keep people out of them:

- **Pseudonyms for identifiers.** Extras that name a person (``user``, ``owner``,
  ``subject``, … see ``PERSON_KEYS``) are written as a keyed pseudonym, ``p-`` and the first
  12 hex digits of an HMAC with the service's secret key: the same account gives the same
  pseudonym in every line (requests can be followed), but the account id itself — which the
  database and an export carry — never lands in a log, and after erasure nothing in the
  logs leads back to the person.
- **Redaction.** Anything shaped like an email address, a phone number or an IP address is
  replaced by ``[redacted]`` in the message, in every extra — strings, numbers (a phone
  number logged as an int) and nested dicts and lists — and in tracebacks. Code should log
  ids, not people; this catches what slips through.

The server's own listening address in a start-up line (``Uvicorn running on
http://127.0.0.1:8093``) is not a person's and is kept, so the line stays useful.

**URLs** are redacted by their parts, not as one string of text. The user:password part is
always redacted (a pulled camera's ``rtsp://admin:pw@…``). The host of one of *our own*
service URLs (registered with :func:`own_url`, e.g. the RTMP URL devices push to) is not
personal data and is kept with its port, so ``rtmp://media.example.com:1935/live/[redacted]``
still says where devices push; any other URL's host is redacted like free text (an IP
address is a person's). In every URL, path segments that are not plain words (a stream
key, a signed token, an id) and the query are redacted.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import logging.handlers
import re
import secrets
import sys
from pathlib import Path
from typing import Any

_PATTERNS = [
    re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"),
    # Digits with separators, but not a run inside a hex id or another word.
    re.compile(r"(?<![0-9A-Za-z])\+?\d[\d \-]{7,}\d(?![0-9A-Za-z])"),
    re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b"),
    re.compile(r"\b(?:[0-9a-fA-F]{1,4}:){2,7}[0-9a-fA-F]{0,4}\b"),
]
_STD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName", "color_message"}
REDACTED = "[redacted]"

# Extras whose value identifies a person (an account id): logged as a pseudonym.
PERSON_KEYS = frozenset({"user", "user_id", "owner", "owner_id", "subject", "account", "reporter", "reported",
                         "invitee", "inviter", "by_user"})
# (logger prefix, message prefix) of lines that name the server's own address.
OWN_ADDRESS_LINES = (("uvicorn", "Uvicorn running on"),)

# The pseudonym key: the service's secret key once ``setup`` has it; until then a key of
# this process (pseudonyms still hide the id, they only do not match across restarts).
_key: bytes = secrets.token_bytes(32)


_URL = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]{1,15})://([^\s/?#\"'<>]*)([^\s?#\"'<>]*)(\?[^\s#\"'<>]*)?")
# A path segment kept in one of our own URLs: a plain word ("live", "media", "hls"); a
# token, a stream key or an id has digits, dots or length and is redacted.
_PLAIN_SEGMENT = re.compile(r"[A-Za-z_-]{1,24}")
# host[:port] (lower case) of the service's own URLs: see own_url().
_OWN_HOSTS: set[str] = set()


def own_url(url: str) -> None:
    """Declare ``url``'s host (and port) as one of this service's own endpoints, whose
    address stays readable in logs (its path's tokens and its query are still redacted)."""
    m = _URL.match(url)
    if m:
        _OWN_HOSTS.add(m.group(2).rpartition("@")[2].lower())


def _free_text(text: str) -> str:
    for p in _PATTERNS:
        text = p.sub(REDACTED, text)
    return text


def _url(m: re.Match) -> str:
    scheme, netloc, path, query = m.group(1), m.group(2), m.group(3), m.group(4)
    userinfo, at, host = netloc.rpartition("@")
    prefix = f"{scheme}://" + (REDACTED + "@" if at else "")
    segments = [seg if not seg or _PLAIN_SEGMENT.fullmatch(seg) else REDACTED for seg in path.split("/")]
    host = host if host.lower() in _OWN_HOSTS else _free_text(host)
    return prefix + host + "/".join(segments) + ("?" + REDACTED if query else "")


def redact(text: str) -> str:
    out, pos = [], 0
    for m in _URL.finditer(text):
        out.append(_free_text(text[pos:m.start()]))
        out.append(_url(m))
        pos = m.end()
    out.append(_free_text(text[pos:]))
    return "".join(out)


def pseudonym(value: object) -> str:
    """``p-`` and 12 hex digits of an HMAC of ``value``: stable for a key, not reversible."""
    digest = hmac.new(_key, f"log-subject:{value}".encode(), hashlib.sha256).hexdigest()
    return "p-" + digest[:12]


def redact_value(value: Any) -> Any:
    """Redact a log extra of any type: strings, numbers, and containers of them."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return value if redact(str(value)) == str(value) else REDACTED
    if isinstance(value, dict):
        return {redact(str(k)): _extra(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact_value(v) for v in value]
    return redact(str(value))  # anything else is written as its text: redact that


def _extra(key: str, value: Any) -> Any:
    if key in PERSON_KEYS and value is not None and value != "":
        return pseudonym(value)
    return redact_value(value)


def _own_address_line(record: logging.LogRecord, message: str) -> bool:
    return any(record.name.startswith(lg) and message.startswith(prefix) for lg, prefix in OWN_ADDRESS_LINES)


def _message(record: logging.LogRecord) -> str:
    message = record.getMessage()
    return message if _own_address_line(record, message) else redact(message)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        # The stderr and the file handler both write JSON lines: redact and encode a record once.
        done = record.__dict__.get("_faoyam_json")
        if done is not None:
            return done
        out = {
            "t": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "msg": _message(record),
        }
        for k, v in record.__dict__.items():
            if k not in _STD and not k.startswith("_"):
                out[k] = _extra(k, v)
        if record.exc_info:
            out["exc"] = redact(self.formatException(record.exc_info))
        record._faoyam_json = line = json.dumps(out, ensure_ascii=False, default=str)
        return line


class PlainFormatter(logging.Formatter):
    """``LEVEL logger message key=value …`` for a terminal, redacted like the JSON lines."""

    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(f"{k}={_extra(k, v)}" for k, v in record.__dict__.items()
                          if k not in _STD and not k.startswith("_"))
        line = f"{record.levelname} {record.name} {_message(record)}" + (f" {extras}" if extras else "")
        if record.exc_info:
            line += "\n" + redact(self.formatException(record.exc_info))
        return line


def setup(level: str = "INFO", log_dir: Path | None = None, json_lines: bool = True,
          pseudonym_key: bytes | None = None) -> None:
    """Install faoyam's handlers on the root logger (again: replaces the earlier ones).

    ``pseudonym_key`` (the service's secret key) makes pseudonyms stable across restarts
    and nodes."""
    global _key
    if pseudonym_key:
        _key = hashlib.sha256(b"faoyam-log-pseudonym\0" + pseudonym_key).digest()  # not the key itself
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_faoyam", False):
            root.removeHandler(h)
    fmt: logging.Formatter = JsonFormatter() if json_lines else PlainFormatter()
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.handlers.TimedRotatingFileHandler(log_dir / "faoyam.log", when="midnight", backupCount=7, utc=True))
        handlers[-1].setFormatter(JsonFormatter())
    handlers[0].setFormatter(fmt)
    for h in handlers:
        h._faoyam = True  # type: ignore[attr-defined]
        root.addHandler(h)
    root.setLevel(level)
    # Uvicorn's access log prints client addresses; our middleware logs requests instead.
    logging.getLogger("uvicorn.access").disabled = True
    for noisy in ("amqtt", "transitions", "aiosqlite", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
