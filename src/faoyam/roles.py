"""Process roles: what ``faoyam serve`` runs, in one process per role (docs/process-roles.md).

* ``web`` — the HTTP app (pages, API), the periodic jobs, the demo; it reaches devices
  through a gateway *client* (commands, online state) and never handles their uplink;
* ``gateway`` — the device gateway (and, with ``mqtt_mode = "embedded"``, the broker):
  activations, heartbeats, alarms, online and offline;
* ``media`` — the media engine (``faoyam.media.lifecycle``: ``start(ctx)``/``stop(ctx)``)
  when it is installed; until then the role runs its lifecycle with nothing in it.

``faoyam serve`` with several roles (all three by default) is a *supervisor*: it migrates
the database, makes the deployment's keys, then starts one child process per role
(``faoyam serve --role X``) and watches them. A child that dies is started again after a
short pause; one that keeps dying (``MAX_RESTARTS`` in ``RESTART_WINDOW_S``) stops the
whole service with a message saying which role and its exit code. SIGTERM or Ctrl-C
stops the children in order (web first, so no request reaches a stopped gateway).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from faoyam import models  # noqa: F401 - every role's privacy engine sees every table
from faoyam.core import logging as flog
from faoyam.core.config import Settings
from faoyam.core.context import ROLES, Context
from faoyam.devices import lifecycle as devices

log = logging.getLogger("faoyam.roles")

MEDIA_LIFECYCLE = "faoyam.media.lifecycle"  # the media engine's plug point
MAX_RESTARTS = 5
RESTART_WINDOW_S = 60.0
STOP_GRACE_S = 15.0


def parse_roles(values: Iterable[str] | None) -> list[str]:
    """``--role web --role gateway`` or ``--role web,gateway``; none: every role. Ordered
    as ``ROLES`` (the gateway starts before the web app that uses it)."""
    wanted = {r.strip().lower() for v in (values or []) for r in v.split(",") if r.strip()}
    unknown = wanted - set(ROLES)
    if unknown:
        raise ValueError(f"unknown role {', '.join(sorted(unknown))}; the roles are {', '.join(ROLES)}")
    return [r for r in ("gateway", "media", "web") if r in wanted or not wanted]


def media_lifecycle():
    """The media engine's lifecycle module, or None while it is not installed."""
    try:
        return importlib.import_module(MEDIA_LIFECYCLE)
    except ModuleNotFoundError as exc:
        if exc.name in (MEDIA_LIFECYCLE, "faoyam.media"):
            return None
        raise


# One role without the web app: the gateway and/or media services until SIGTERM ----------


async def run_workers(settings: Settings, roles: Iterable[str]) -> None:
    """Run the gateway and/or media role in this process until SIGTERM or SIGINT."""
    roles = frozenset(roles)
    flog.setup(settings.log_level, settings.log_path, settings.log_json)
    ctx = Context.build(settings, roles=roles)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    started = []
    try:
        if "gateway" in roles:
            await devices.start(ctx)
            started.append(devices)
            log.info("gateway role running", extra={"mqtt_port": ctx.mqtt_port})
        if "media" in roles:
            media = media_lifecycle()
            if media is None:
                log.info("media role running; no media engine is installed yet, so it has nothing to do")
            else:
                await media.start(ctx)
                started.append(media)
                log.info("media role running")
        await stopping.wait()
    finally:
        for lc in reversed(started):
            await lc.stop(ctx)
        await ctx.close()


# Several roles: one child process each, watched -----------------------------------------


@dataclass
class _Child:
    role: str
    proc: subprocess.Popen
    starts: list[float] = field(default_factory=list)


class Supervisor:
    """Starts ``argv(role)`` for each role and keeps it running (see the module docstring)."""

    def __init__(self, roles: list[str], argv, env: dict[str, str], *, out=sys.stderr,
                 restart_delay_s: float = 1.0):
        self.roles, self.argv, self.env, self.out = roles, argv, env, out
        self.restart_delay_s = restart_delay_s
        self.children: dict[str, _Child] = {}
        self._stop = False

    def say(self, text: str) -> None:
        print(f"faoyam: {text}", file=self.out, flush=True)  # noqa: T201 - for the operator

    def _spawn(self, role: str) -> subprocess.Popen:
        return subprocess.Popen(self.argv(role), env=self.env)

    def start(self) -> None:
        for role in self.roles:
            self.children[role] = _Child(role, self._spawn(role), [time.monotonic()])
            self.say(f"started the {role} role (pid {self.children[role].proc.pid})")

    def request_stop(self, *_):
        self._stop = True

    def run(self, poll_s: float = 0.2, *, signals: bool = True) -> int:
        """Watch until asked to stop (0) or a role keeps dying (1)."""
        if signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, self.request_stop)
        self.start()
        try:
            while not self._stop:
                time.sleep(poll_s)
                for child in list(self.children.values()):
                    code = child.proc.poll()
                    if code is None or self._stop:
                        continue
                    now = time.monotonic()
                    child.starts = [t for t in child.starts if now - t < RESTART_WINDOW_S]
                    if len(child.starts) >= MAX_RESTARTS:
                        self.say(f"the {child.role} role exited with code {code} {len(child.starts)} times in "
                                 f"{RESTART_WINDOW_S:.0f} s; stopping the service (see its log for why)")
                        return 1
                    self.say(f"the {child.role} role exited with code {code}; starting it again")
                    time.sleep(self.restart_delay_s)
                    child.proc = self._spawn(child.role)
                    child.starts.append(time.monotonic())
            return 0
        finally:
            self.stop_all()

    def stop_all(self) -> None:
        order = sorted(self.children.values(), key=lambda c: c.role != "web")  # web first
        for child in order:
            if child.proc.poll() is None:
                child.proc.terminate()
                try:
                    child.proc.wait(STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    child.proc.kill()
                    child.proc.wait()


def prepare(settings: Settings, env: dict[str, str]) -> dict[str, str]:
    """What every child must agree on, settled once before they start: the keys in the
    data directory, and a concrete MQTT port (port 0 means "any free one", which each
    child would pick differently)."""
    env = dict(env)
    _ = settings.resolved_secret_key, settings.resolved_device_keys  # created now, not by racing children
    if settings.mqtt_mode == "embedded" and settings.mqtt_port == 0:
        with socket.socket() as sock:
            sock.bind((settings.mqtt_host or "127.0.0.1", 0))
            env["FAOYAM_MQTT_PORT"] = str(sock.getsockname()[1])
    env.setdefault("FAOYAM_DATA_DIR", str(settings.data_dir.resolve()))
    return env


def child_argv(role: str, options: list[str]) -> list[str]:
    return [sys.executable, "-m", "faoyam", "serve", "--role", role, "--no-migrate", *options]


def run_supervised(settings: Settings, roles: list[str], options: list[str]) -> int:
    env = prepare(settings, dict(os.environ))
    return Supervisor(roles, lambda role: child_argv(role, options), env).run()
