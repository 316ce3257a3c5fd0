"""The services a request or a job works with, built once per process from Settings.

Every long-lived helper is a named, typed attribute, so a reader sees what a request may
use. The domains' lifecycles fill the optional ones in at start-up (``devices.lifecycle``:
broker, gateway, MQTT port, erasure hook; the demo: its devices) and clear them at stop.
``core`` imports no domain, not even for type checking (tests/test_layers.py), so the
domain-typed attributes are ``Any`` with their type named in the comment above them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request

from faoyam.core.config import Settings
from faoyam.core.database import Database
from faoyam.core.jobs import Scheduler
from faoyam.core.messaging import Messenger
from faoyam.core.ratelimit import RateLimiter
from faoyam.core.security import SecretBox
from faoyam.core.blobstores import make_blob_store
from faoyam.core.storage import BlobStore

# The process roles (docs/process-roles.md). A context built for tests or one process
# that runs everything has all of them.
ROLES = ("web", "gateway", "media")

ErasureHook = Callable[[Any], Awaitable[Callable[[], Awaitable[None]] | None]]


@dataclass
class Context:
    settings: Settings
    db: Database
    blobs: BlobStore
    messenger: Messenger
    limiter: RateLimiter
    secrets: SecretBox
    # Which roles this process plays: "gateway" runs the device gateway (and the embedded
    # broker); without it a process reaches devices through a gateway client.
    roles: frozenset[str] = frozenset(ROLES)
    # Periodic jobs of this process (retention, sweeps); started with the web role.
    scheduler: Scheduler = field(default_factory=Scheduler)
    # Reaching devices (``devices.ports.Gateway``): the gateway, or a client of remote ones.
    gateway: Any = None  # devices.ports.Gateway
    # The in-process MQTT broker (``mqtt_mode = "embedded"``, gateway role only).
    broker: Any = None  # devices.gateway.embedded.EmbeddedBroker
    # The port devices connect to (the embedded broker's bound one, or the external one's).
    mqtt_port: int | None = None
    # The devices domain's erasure hook, registered while the gateway link runs.
    erasure_hook: ErasureHook | None = None
    # The media role's engine (``media.lifecycle``): one hub per channel stream, the RTMP
    # server devices push to, and the devices domain's start/stop-on-demand.
    media_hubs: Any = None  # media.hub.StreamHubs
    rtmp_server: Any = None  # media.rtmp_server.RtmpServer
    stream_demand: Any = None  # devices.streaming.StreamDemand
    # The media worker's live WebSocket server: (media.live_http.LiveServer, uvicorn.Server, task).
    live_server: Any = None
    # The alarms domain's per-process state (``alarms.runtime.AlarmRuntime``): the flood
    # guard, the live listeners, the dispatcher's wake-up.
    alarms: Any = None
    # ``faoyam demo``: the simulated devices running in this process.
    demo_devices: Any = None  # agent.demo.DemoDevices
    # The accounts domain's erasure hook (forgets rate-limit rows and cached sessions).
    accounts_erasure_hook: ErasureHook | None = None
    # The back office's erasure hook (records every erasure in the audit log, staff.lifecycle).
    staff_erasure_hook: ErasureHook | None = None
    # Signed-in sessions this node recently checked (accounts.deps, ``session_cache_seconds``).
    session_cache: Any = None  # accounts.deps.SessionCache
    # External sign-in: provider metadata and keys, by URL (accounts.oidc_client).
    oidc_cache: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> bytes:
        return self.settings.resolved_secret_key

    @classmethod
    def build(cls, settings: Settings, *, roles: frozenset[str] | None = None) -> Context:
        settings.ensure_dirs()
        db = Database(settings.db_url)
        blobs = make_blob_store(settings)
        return cls(
            settings=settings,
            db=db,
            blobs=blobs,
            messenger=Messenger(settings, db, blobs),
            limiter=RateLimiter(db, settings.resolved_secret_key, settings.rate_limit_enabled),
            secrets=SecretBox(settings.resolved_device_keys),
            roles=frozenset(ROLES) if roles is None else frozenset(roles),
        )

    async def close(self) -> None:
        await self.db.dispose()


async def get_ctx(request: Request) -> Context:
    # async: FastAPI runs a plain ``def`` dependency in a worker thread, a thread hop on
    # every request for a dictionary look-up.
    return request.app.state.ctx
