"""The embedded broker (``mqtt_mode = "embedded"``): amqtt, in the service's process.

Two plugins make it a device broker:

* ``DeviceAuthPlugin`` signs devices in through the registry
  (``devices.service.authenticate_device``), the gateway with a token made at start-up,
  and refuses a client id that is not the username, or a last will on a topic the client
  may not publish to;
* ``DeviceTopicPlugin`` applies ``acl.allowed`` to every subscribe, publish and delivery.

amqtt behaviours changed by subclassing the broker:

* a CONNECT with ``clean_session`` used to drop the existing session of that client id
  *before* authentication, so anyone could knock a device off its subscriptions by
  connecting with its serial as client id; here the old session is only replaced once the
  newcomer is authenticated (and the old connection is then taken over, as MQTT says);
* packets larger than ``protocol.MAX_PACKET`` close the connection before the broker
  reads them into memory;
* a published message was matched against *every* subscription filter (one per connected
  device, so the cost of each message grew with the fleet); ``_Subscriptions`` indexes the
  filters by their literal first levels, so a device's message is matched against its own
  filters and the few with wildcards there (the gateway's).

amqtt 0.12.1 has no shared subscriptions (``$share/...`` is taken as a literal topic), so
an embedded broker has one gateway; several gateway processes need Mosquitto.

amqtt speaks MQTT 3.1.1 only; devices that need MQTT 5 use Mosquitto (external mode).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
from dataclasses import dataclass
from typing import Any

from amqtt.adapters import ReaderAdapter, StreamReaderAdapter, StreamWriterAdapter
from amqtt.broker import Broker
from amqtt.errors import AMQTTError, MQTTError, NoDataError
from amqtt.mqtt.constants import QOS_1, QOS_2
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session
from amqtt.utils import gen_client_id

from faoyam.devices.gateway import acl
from faoyam.devices.gateway import protocol as p

log = logging.getLogger("faoyam.gateway.broker")

SERVICE = "service"


@dataclass(frozen=True)
class _Identity:
    stage: str  # "service", "factory", "device"
    serial: str | None = None


class Policy:
    """What the plugins consult; the gateway fills it in (``authenticate`` = the registry)."""

    def __init__(self, service_user: str, service_password: str, authenticate):
        self.service_user = service_user
        self.service_password = service_password
        self.authenticate = authenticate  # async (username, password) -> DeviceAuth | None
        self.on_factory_connect = None  # (serial, address): the gateway keeps it for activation (B6)

    async def identify(self, session: Session) -> _Identity | None:
        user, pw = session.username, session.password
        if not user or pw is None:
            return None
        if isinstance(pw, bytes):
            pw = pw.decode("utf-8", "replace")
        if hmac.compare_digest(user.encode(), self.service_user.encode()):
            ok = hmac.compare_digest(pw.encode(), self.service_password.encode())
            return _Identity(SERVICE) if ok else None
        if session.client_id != user:
            return None  # a device's client id is its username: one connection per credential
        try:
            auth = await self.authenticate(user, pw)
        except Exception:  # the registry failing must not crash the broker
            log.exception("device authentication failed")
            return None
        if auth is None:
            return None
        ident = _Identity(auth.stage, auth.serial)
        if session.will_flag and not self.may(ident, "publish", session.will_topic or ""):
            return None
        if auth.stage == "factory" and self.on_factory_connect and session.remote_address:
            self.on_factory_connect(auth.serial, session.remote_address)
        return ident

    @staticmethod
    def may(ident: _Identity | None, action: str, t: str) -> bool:
        if ident is None:
            return False
        if ident.stage == SERVICE:
            return True
        return acl.allowed(ident.stage, ident.serial, action, t)  # type: ignore[arg-type]


_POLICY: dict[int, Policy] = {}


class _Subscriptions(dict):
    """amqtt's ``filter -> [(session, qos)]`` map, with an index of the filters by their
    first ``DEPTH`` levels when those are literal. ``candidates(topic)`` lists the filters
    that can match a topic: the ones under its first levels, and the rest (wildcards in
    the first levels, or shorter filters), which are few. Kept in step by every way amqtt
    changes the keys (item set and delete, setdefault, pop, clear)."""

    DEPTH = 3

    def __init__(self) -> None:
        super().__init__()
        self._by_prefix: dict[tuple[str, ...], dict[str, None]] = {}
        self._other: dict[str, None] = {}

    @classmethod
    def _key(cls, levels: list[str]) -> tuple[str, ...] | None:
        if len(levels) <= cls.DEPTH:
            return None
        head = levels[: cls.DEPTH]
        return None if any("+" in x or "#" in x for x in head) else tuple(head)

    def _index(self, f: str) -> None:
        key = self._key(f.split("/", self.DEPTH))
        (self._other if key is None else self._by_prefix.setdefault(key, {}))[f] = None

    def _unindex(self, f: str) -> None:
        key = self._key(f.split("/", self.DEPTH))
        bucket = self._other if key is None else self._by_prefix.get(key, {})
        bucket.pop(f, None)
        if key is not None and not bucket:
            self._by_prefix.pop(key, None)

    def __setitem__(self, f, subs) -> None:
        if f not in self:
            self._index(f)
        super().__setitem__(f, subs)

    def setdefault(self, f, default=None):
        if f not in self:
            self[f] = default
        return self[f]

    def __delitem__(self, f) -> None:
        super().__delitem__(f)
        self._unindex(f)

    def pop(self, f, *default):
        if f in self:
            self._unindex(f)
        return super().pop(f, *default)

    def clear(self) -> None:
        super().clear()
        self._by_prefix.clear()
        self._other.clear()

    def candidates(self, topic: str) -> list[str]:
        key = self._key(topic.split("/", self.DEPTH))
        return [*(self._by_prefix.get(key, ()) if key is not None else ()), *self._other]


async def _identity(session: Session, policy: Policy) -> _Identity | None:
    if not hasattr(session, "faoyam_identity"):
        session.faoyam_identity = await policy.identify(session)  # type: ignore[attr-defined]
    return session.faoyam_identity  # type: ignore[attr-defined]


class DeviceAuthPlugin(BaseAuthPlugin):
    @dataclass
    class Config:
        policy: int = 0

    async def authenticate(self, *, session: Session) -> bool | None:
        return await _identity(session, _POLICY[self.config.policy]) is not None


class DeviceTopicPlugin(BaseTopicPlugin):
    @dataclass
    class Config:
        policy: int = 0

    async def topic_filtering(self, *, session: Session | None = None, topic: str | None = None,
                              action: Action | None = None) -> bool | None:
        if session is None or topic is None or action is None:
            return False
        ident = getattr(session, "faoyam_identity", None)
        return Policy.may(ident, str(action), topic)


class _LimitedReader(ReaderAdapter):
    """Refuses to read a packet body above the limit (one read per body in amqtt)."""

    def __init__(self, inner: ReaderAdapter, limit: int):
        self.inner, self.limit = inner, limit

    async def read(self, n: int = -1) -> bytes:
        if n > self.limit:
            log.warning("oversized packet refused", extra={"bytes": n})
            raise ConnectionError("packet too large")
        return await self.inner.read(n)

    def feed_eof(self) -> None:
        self.inner.feed_eof()


class _Broker(Broker):
    max_packet = p.MAX_PACKET

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self._subscriptions = _Subscriptions()

    async def stream_connected(self, reader, writer, listener_name: str) -> None:
        await self._client_connected(listener_name, _LimitedReader(StreamReaderAdapter(reader), self.max_packet),
                                     StreamWriterAdapter(writer))

    async def _initialize_client_session(self, reader, writer, remote_address, remote_port):
        """amqtt's version, with authentication *before* any existing session is touched."""
        try:
            handler, session = await BrokerProtocolHandler.init_from_connect(reader, writer, self.plugins_manager)
        except MQTTError as exc:
            await writer.close()
            raise MQTTError(exc) from exc
        except (AMQTTError, NoDataError) as exc:
            raise AMQTTError(exc) from exc
        ok = await self._authenticate(session, None)  # cached on the session for amqtt's own call
        if not ok or not session.client_id:
            session.client_id = gen_client_id()  # a refused client touches nobody's session
            session.clean_session = True
        if session.clean_session:
            old = self._sessions.get(session.client_id)
            if old is not None and old[0].transitions.is_connected():
                await old[1].handle_connection_closed()  # take-over: the old connection goes
            await self._delete_session(session.client_id)
            session.parent = 0
        elif session.client_id in self._sessions:
            existing, _ = self._sessions[session.client_id]
            for attr in ("will_flag", "will_message", "will_topic", "will_qos", "will_retain", "keep_alive",
                         "username", "password", "faoyam_identity"):
                setattr(existing, attr, getattr(session, attr))
            session = existing
            session.parent = 1
        else:
            session.parent = 0
        session.faoyam_refused = not ok  # type: ignore[attr-defined]
        return handler, session

    async def _publish_retained_messages_for_subscription(self, subscription, session) -> None:
        """amqtt sends a newly connected client the retained messages of *every* filter
        any client subscribed to, without asking the ACL: here only the client's own
        subscriptions, and only what it may receive."""
        topic_filter, qos = subscription
        if not any(s is session for s, _ in self._subscriptions.get(topic_filter, ())):
            return
        handler = self._get_handler(session)
        if handler is None:
            return
        sends = []
        for t, retained in list(self._retained_messages.items()):
            if self._matches(t, topic_filter) and await self._topic_filtering(session, t, Action.RECEIVE):
                sends.append(handler.mqtt_publish(retained.topic, retained.data, min(qos, retained.qos or qos), retain=True))
        if sends:
            await asyncio.gather(*sends, return_exceptions=True)

    async def _handle_client_session(self, reader, writer, client_session, handler, server, listener_name):
        try:
            await super()._handle_client_session(reader, writer, client_session, handler, server, listener_name)
        finally:
            if getattr(client_session, "faoyam_refused", False):
                self._sessions.pop(client_session.client_id, None)

    async def _run_broadcast(self, running_tasks) -> None:
        """amqtt's version, over the candidate filters only (``_Subscriptions``), as a
        snapshot.

        amqtt walks the live subscription dict and awaits inside the loop, so a client
        subscribing meanwhile (many devices reconnecting at once) raised "dictionary
        changed size during iteration" and the message being broadcast was lost."""
        broadcast = await self._broadcast_queue.get()
        for k_filter in self._subscriptions.candidates(broadcast["topic"]):
            subscriptions = self._subscriptions.get(k_filter)
            if not subscriptions or not self._matches(broadcast["topic"], k_filter):
                continue
            for target_session, sub_qos in list(subscriptions):
                qos = broadcast.get("qos", sub_qos)
                if not await self._topic_filtering(target_session, topic=broadcast["topic"], action=Action.RECEIVE):
                    continue
                connected = target_session.transitions.state == "connected"
                if (not connected and not target_session.clean_session and qos in (QOS_1, QOS_2)
                        and not target_session.is_anonymous):
                    await self._retain_broadcast_message(broadcast, qos, target_session)
                    continue
                if not connected:
                    continue
                handler = self._get_handler(target_session)
                if handler:
                    running_tasks.append(asyncio.ensure_future(
                        handler.mqtt_publish(broadcast["topic"], broadcast["data"], qos, retain=False)))

    def kick(self, client_id: str) -> bool:
        entry = self._sessions.get(client_id)
        if entry is None or not entry[0].transitions.is_connected():
            return False
        asyncio.ensure_future(entry[1].handle_connection_closed())
        return True


class EmbeddedBroker:
    """amqtt started in-process with the device plugins, on host:port (port 0: any free)."""

    def __init__(self, host: str, port: int, authenticate, *, max_packet: int = p.MAX_PACKET,
                 service_password: str | None = None):
        self.host, self.requested_port = host, port
        self.service_user = "faoyam-gateway"
        # Given: every process of the deployment can sign in (the web role's gateway client).
        self.service_password = service_password or secrets.token_urlsafe(32)
        self.policy = Policy(self.service_user, self.service_password, authenticate)
        self.max_packet = max_packet
        self.broker: _Broker | None = None
        self.port: int | None = None

    def _config(self, key: int) -> dict[str, Any]:
        return {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.requested_port}"}},
            "plugins": {
                f"{__name__}.DeviceAuthPlugin": {"policy": key},
                f"{__name__}.DeviceTopicPlugin": {"policy": key},
            },
        }

    async def start(self) -> None:
        key = id(self.policy)
        _POLICY[key] = self.policy
        self.broker = _Broker(self._config(key))
        self.broker.max_packet = self.max_packet
        try:
            await self.broker.start()
        except Exception as exc:
            _POLICY.pop(key, None)
            self.broker = None
            raise RuntimeError(f"the embedded MQTT broker cannot listen on {self.host}:{self.requested_port} ({exc}); "
                               "set FAOYAM_MQTT_PORT (0: any free port) or use mqtt_mode=external") from exc
        server = self.broker._servers["default"].instance
        self.port = server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.broker is not None:
            await self.broker.shutdown()
            self.broker = None
        _POLICY.pop(id(self.policy), None)

    def kick(self, client_id: str) -> bool:
        return self.broker.kick(client_id) if self.broker else False
