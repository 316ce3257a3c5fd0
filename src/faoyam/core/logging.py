"""Structured logging that keeps personal data out of log files.

Logs are JSON lines (one object per record) to stderr and to ``data_dir/logs``, rotated
daily and kept seven days (RET5). A redaction filter replaces anything shaped like an
email address, a phone number or an IP address before a record is written: code should
log ids, not people, and this catches what slips through.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import re
import sys
from pathlib import Path

_PATTERNS = [
    re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"),
    # Digits with separators, but not a run inside a hex id or another word.
    re.compile(r"(?<![0-9A-Za-z])\+?\d[\d \-]{7,}\d(?![0-9A-Za-z])"),
    re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b"),
    re.compile(r"\b(?:[0-9a-fA-F]{1,4}:){2,7}[0-9a-fA-F]{0,4}\b"),
]
_STD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName", "color_message"}


def redact(text: str) -> str:
    for p in _PATTERNS:
        text = p.sub("[redacted]", text)
    return text


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "t": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        for k, v in record.__dict__.items():
            if k not in _STD and not k.startswith("_"):
                out[k] = redact(str(v)) if isinstance(v, str) else v
        if record.exc_info:
            out["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(out, ensure_ascii=False, default=str)


def setup(level: str = "INFO", log_dir: Path | None = None, json_lines: bool = True) -> None:
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_faoyam", False):
            root.removeHandler(h)
    fmt: logging.Formatter = JsonFormatter() if json_lines else logging.Formatter("%(levelname)s %(name)s %(message)s")
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
