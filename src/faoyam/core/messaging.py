"""Outgoing email and SMS, behind one interface with real backends.

``outbox`` (the embedded default) writes each message as an RFC 822 file into the blob
store and a row into ``outbound_messages``; ``smtp`` sends through an SMTP server;
SMS goes to the outbox or to an HTTP provider (``sms_backend = "http"``). Every message
is recorded with its recipient for seven days, so erasure and retention reach it.
"""

from __future__ import annotations

import asyncio
import smtplib
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import httpx

from faoyam.core.config import Settings
from faoyam.core.database import Database
from faoyam.core.models import OutboundMessage
from faoyam.core.storage import BlobStore


class Messenger:
    def __init__(self, settings: Settings, db: Database, blobs: BlobStore):
        self.settings = settings
        self.db = db
        self.blobs = blobs

    def _compose(self, to: str, subject: str, text: str,
                 attachments: list[tuple[str, bytes, str]] | None = None) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self.settings.mail_from
        msg["To"] = to
        msg["Subject"] = subject
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = make_msgid(domain="faoyam.local")
        msg.set_content(text)
        for filename, data, mime in attachments or ():  # (name, bytes, "image/jpeg")
            maintype, subtype = mime.split("/", 1)
            msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
        return msg

    async def send_email(self, to: str, subject: str, text: str, *, template: str, user_id: str | None = None,
                         attachments: list[tuple[str, bytes, str]] | None = None) -> str:
        """Send (or put in the outbox) one email; an SMTP failure raises, so a caller with
        an outbox of its own (alarms) retries it."""
        msg = self._compose(to, subject, text, attachments)
        backend = self.settings.mail_backend
        body_key = None
        if backend == "outbox":
            body_key = await self.blobs.put("mail_outbox", msg.as_bytes())
        else:
            await asyncio.to_thread(self._smtp_send, msg)
        return await self._record("email", to, template, body_key, backend, user_id)

    async def send_sms(self, to: str, text: str, *, template: str, user_id: str | None = None) -> str:
        backend = self.settings.sms_backend
        body_key = None
        if backend == "outbox":
            msg = EmailMessage()
            msg["To"] = to
            msg["Subject"] = "SMS"
            msg.set_content(text)
            body_key = await self.blobs.put("mail_outbox", msg.as_bytes())
        else:
            async with httpx.AsyncClient(timeout=10) as client:
                r = await client.post(
                    self.settings.sms_http_url or "",
                    json={"to": to, "text": text},
                    headers={"Authorization": f"Bearer {self.settings.sms_http_token or ''}"},
                )
                r.raise_for_status()
        return await self._record("sms", to, template, body_key, backend, user_id)

    def _smtp_send(self, msg: EmailMessage) -> None:
        s = self.settings
        with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=15) as smtp:
            if s.smtp_starttls:
                smtp.starttls()
            if s.smtp_user:
                smtp.login(s.smtp_user, s.smtp_password or "")
            smtp.send_message(msg)

    async def _record(self, channel, to, template, body_key, backend, user_id) -> str:
        async with self.db.transaction() as session:
            row = OutboundMessage(channel=channel, recipient=to, template=template, body_key=body_key,
                                  backend=backend, status="queued" if backend == "outbox" else "sent", user_id=user_id)
            session.add(row)
        return row.id

    async def claim(self, session, recipient: str, user_id: str) -> None:
        """Tie messages sent to an address before its account existed to that account, so
        that erasing the account reaches them even after the address changes."""
        from sqlalchemy import update

        await session.execute(update(OutboundMessage).where(OutboundMessage.recipient == recipient,
                                                            OutboundMessage.user_id.is_(None)).values(user_id=user_id))

    async def outbox(self, recipient: str | None = None) -> list[dict]:
        """Messages in the outbox, newest first, with their text (for operators and tests)."""
        from email import message_from_bytes, policy

        from sqlalchemy import select

        async with self.db.session() as session:
            q = select(OutboundMessage).order_by(OutboundMessage.created_at.desc())
            if recipient:
                q = q.where(OutboundMessage.recipient == recipient)
            rows = (await session.execute(q)).scalars().all()
        out = []
        for r in rows:
            text = ""
            subject = ""
            if r.body_key:
                m = message_from_bytes(await self.blobs.read(r.body_key), policy=policy.default)
                subject = str(m["Subject"] or "")
                body = m.get_body(("plain",)) if m.is_multipart() else m
                text = body.get_content() if body is not None else ""
            out.append({"id": r.id, "channel": r.channel, "to": r.recipient, "template": r.template,
                        "subject": subject, "text": text, "created_at": r.created_at.isoformat()})
        return out
