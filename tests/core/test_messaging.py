"""Outgoing mail and SMS through real backends: an SMTP server and an HTTP SMS provider."""

import asyncio
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from aiosmtpd.controller import Controller

from faoyam.core.context import Context


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Collect:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.messages.append((envelope.rcpt_tos, envelope.content.decode()))
        return "250 OK"


@pytest.mark.req("B1a", "F2")
async def test_registration_code_goes_out_by_smtp(settings, client, ctx):
    handler = _Collect()
    port = _free_port()
    smtp = Controller(handler, hostname="127.0.0.1", port=port)
    smtp.start()
    try:
        ctx.settings.mail_backend = "smtp"
        ctx.settings.smtp_port = port
        body = {"email": "smtp@example.com", "country": "TH", "nickname": "S", "password": "violet-harbour-kettle-91",
                "age_confirmed": True}
        assert (await client.post("/api/v1/accounts/register", json=body)).status_code == 202
        for _ in range(50):
            if handler.messages:
                break
            await asyncio.sleep(0.05)
        (rcpt, content), = handler.messages
        assert rcpt == ["smtp@example.com"] and "Your faoyam code is" in content
        # Sent, not kept: no outbox file, but a record to the recipient (erasable, 7 days).
        assert [k async for k in ctx.blobs.keys("mail_outbox/")] == []
        (rec,) = await ctx.messenger.outbox("smtp@example.com")
        assert rec["text"] == "" and rec["template"] == "register"
    finally:
        smtp.stop()


@pytest.mark.req("B1a")
async def test_sms_goes_to_an_http_provider(settings, ctx: Context):
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            n = int(self.headers["content-length"])
            received.append((self.headers["authorization"], json.loads(self.rfile.read(n))))
            self.send_response(202)
            self.end_headers()

        def log_message(self, *a):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        ctx.settings.sms_backend = "http"
        ctx.settings.sms_http_url = f"http://127.0.0.1:{server.server_port}/send"
        ctx.settings.sms_http_token = "tok"
        await ctx.messenger.send_sms("+66812345678", "code 123456", template="register")
        assert received == [("Bearer tok", {"to": "+66812345678", "text": "code 123456"})]
    finally:
        server.shutdown()
