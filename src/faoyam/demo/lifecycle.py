"""Start the demo when ``settings.demo`` is on: a demo account and simulated devices.

The account's password is generated once and kept in ``data_dir/demo-account.txt`` (mode
0600); it is printed at every start so a person can sign in at once.
"""

from __future__ import annotations

import logging
import os
import secrets

from faoyam.accounts import service
from faoyam.accounts.validation import check_password
from faoyam.agent.demo import resume_demo_devices
from faoyam.core.context import Context
from faoyam.core.errors import Invalid

log = logging.getLogger("faoyam.demo")
DEMO_EMAIL = "demo@example.com"  # a reserved domain for examples (RFC 2606); never delivered


def _demo_password(ctx: Context) -> tuple[str, bool]:
    path = ctx.settings.data_dir / "demo-account.txt"
    if path.exists():
        return path.read_text().strip(), False
    pw = _new_password(ctx.settings.password_min_score)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(pw + "\n")
    return pw, True


_WORDS = ("river", "lantern", "mango", "orbit", "harbour", "violet", "kettle", "monsoon", "temple", "falcon",
          "pepper", "glacier", "saffron", "meadow", "cobalt", "thunder", "walnut", "lagoon", "ember", "juniper")


def _new_password(min_score: int) -> str:
    """Three different words and a number: easy to type, and always strong enough for the
    account policy (a draw zxcvbn would refuse, such as a repeated word, is drawn again)."""
    rng = secrets.SystemRandom()
    while True:
        pw = "-".join(rng.sample(_WORDS, 3)) + f"-{rng.randrange(10, 100)}"
        try:
            check_password(pw, min_score=min_score, user_inputs=[DEMO_EMAIL])
        except Invalid:
            continue
        return pw


async def ensure_demo_account(ctx: Context) -> tuple[str, str, bool]:
    """(user id, password, created?) of the demo account."""
    password, fresh = _demo_password(ctx)
    found = await service.find_user_by_contact(ctx, DEMO_EMAIL)
    if found is not None:
        return found.id, password, False
    uid = await service.create_account(ctx, email=DEMO_EMAIL, phone=None, country="TH", nickname="Demo",
                                       password=password)
    return uid, password, True


async def start(ctx: Context) -> None:
    if not ctx.settings.demo:
        return
    uid, password, _created = await ensure_demo_account(ctx)
    print(f"\n  Demo account:  {DEMO_EMAIL}\n  Password:      {password}\n", flush=True)  # noqa: T201 - for the person
    if ctx.gateway is None:
        log.warning("demo devices need the device gateway (mqtt_mode embedded or external)")
        return
    # Same fleet as last time when there is one (same serials and credentials), else a new one.
    handle = await resume_demo_devices(ctx, uid, state_file=ctx.settings.data_dir / "demo-devices.json")
    print(f"  {len(handle.identities)} simulated devices are online.", flush=True)  # noqa: T201
    if handle.broker_port != 1883:  # not where an MQTT client looks first: say where it is
        print(f"  Their MQTT broker listens on port {handle.broker_port} (not 1883); "  # noqa: T201
              f"add more with: faoyam simulate --port {handle.broker_port}", flush=True)
    print(flush=True)  # noqa: T201


async def stop(ctx: Context) -> None:
    pass  # the devices lifecycle stops the demo devices
