"""Who may publish and subscribe to what: the one rule both brokers enforce.

* the gateway (the privileged service client) may do anything under ``faoyam/``;
* a device signed in with per-device credentials (username = its serial) publishes only
  ``faoyam/d/{serial}/up/<kind>`` and subscribes only under ``faoyam/d/{serial}/down/``;
* a device signed in with factory credentials (``factory:{serial}``) may only publish its
  activation report and receive the answer.

The embedded broker asks ``allowed`` on every subscribe/publish/receive; for Mosquitto the
same rule is written as a dynamic-security role per device (``mosquitto.py``).
"""

from __future__ import annotations

from typing import Literal

from faoyam.devices.gateway import protocol as p

Action = Literal["publish", "subscribe", "receive"]


def _within(filter_or_topic: str, prefix: str) -> bool:
    """True if every topic the filter can match lies under ``prefix`` (which ends with '/')."""
    if not filter_or_topic.startswith(prefix):
        return False
    return True  # wildcards after a literal prefix only match below it


def allowed(stage: Literal["factory", "device"], serial: str, action: Action, t: str) -> bool:
    if stage == "factory":
        if action == "publish":
            return t == p.up(serial, p.ACTIVATE)
        return t == p.down(serial, p.ACTIVATED)
    if action == "publish":
        parsed = p.parse_topic(t)
        return parsed is not None and parsed[0] == serial and parsed[1] == "up" and parsed[2] in p.UP_KINDS \
            and parsed[2] != p.ACTIVATE
    return _within(t, f"{p.ROOT}/{serial}/down/")


def dynsec_acls(stage: Literal["factory", "device"], serial: str) -> list[dict]:
    """The same rule as Mosquitto dynamic-security ACL entries (literal topics: Mosquitto
    2.0's dynamic security does not substitute %u in ACLs, so each device gets a role)."""
    if stage == "factory":
        pub, sub = [p.up(serial, p.ACTIVATE)], [p.down(serial, p.ACTIVATED)]
    else:
        pub = [p.up(serial, k) for k in p.UP_KINDS if k != p.ACTIVATE]
        sub = [f"{p.ROOT}/{serial}/down/#"]
    acls = [{"acltype": "publishClientSend", "topic": t, "allow": True} for t in pub]
    for t in sub:
        acls.append({"acltype": "subscribePattern", "topic": t, "allow": True})
        acls.append({"acltype": "publishClientReceive", "topic": t, "allow": True})
    return acls
