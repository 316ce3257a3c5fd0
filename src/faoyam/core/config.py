"""Settings, read from the environment (``FAOYAM_*``) and an optional TOML file.

Every setting has an embedded default that needs nothing installed: a SQLite file, a
local blob directory, an in-process MQTT broker, outbox directories for mail and SMS.
Pointing a setting at a real service (PostgreSQL, S3, Mosquitto, SMTP) is how one
machine grows into a cloud; the code paths are the same.

The config file is found through ``FAOYAM_CONFIG`` (a path); environment variables win
over the file, which wins over the defaults.
"""

from __future__ import annotations

import os
import secrets
import tomllib
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict


class _TomlSource(PydanticBaseSettingsSource):
    """Reads the file named by FAOYAM_CONFIG, if any."""

    def get_field_value(self, field, field_name):  # pragma: no cover - unused by pydantic here
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = os.environ.get("FAOYAM_CONFIG")
        if not path:
            return {}
        with open(path, "rb") as fh:
            return tomllib.load(fh)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FAOYAM_", env_nested_delimiter="__", extra="ignore")

    # Where the embedded defaults keep their state.
    data_dir: Path = Path("faoyam-data")
    database_url: str | None = None  # default: sqlite file in data_dir
    blob_dir: Path | None = None  # default: data_dir / "blobs"
    # Blobs: "local" keeps files under blob_dir; "s3" uses an S3-compatible server.
    blob_backend: Literal["local", "s3"] = "local"
    s3_endpoint: str | None = None  # e.g. http://127.0.0.1:8333; None: AWS for s3_region
    s3_bucket: str | None = None  # must exist; required for the s3 backend
    s3_prefix: str = ""  # object names start with this (a folder), to share a bucket
    s3_region: str = "us-east-1"
    s3_access_key: str | None = None  # None: the AWS chain (AWS_* variables, instance role)
    s3_secret_key: str | None = None
    s3_part_size: int = Field(8 * 1024 * 1024, ge=5 * 1024 * 1024)  # multipart part (bytes)
    s3_max_concurrency: int = Field(4, ge=1)  # parts in flight per upload
    s3_timeout_seconds: float = 60.0
    base_url: str = "http://127.0.0.1:8080"
    host: str = "127.0.0.1"
    port: int = 8080

    # Secrets. When unset they are generated once and kept in data_dir (mode 0600).
    secret_key: str | None = None
    # Device-secret encryption keys, newest first: "id:base64key,id:base64key".
    device_keys: str | None = None

    # Outgoing messages: "outbox" writes files an operator can read; "smtp" sends.
    mail_backend: Literal["outbox", "smtp"] = "outbox"
    mail_from: str = "faoyam <no-reply@faoyam.local>"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    sms_backend: Literal["outbox", "http"] = "outbox"
    sms_http_url: str | None = None  # provider endpoint for the "http" backend
    sms_http_token: str | None = None

    # Device broker: "embedded" starts amqtt in-process; "external" uses mqtt_host/port.
    mqtt_mode: Literal["embedded", "external", "off"] = "embedded"
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    mqtt_ws_port: int | None = None
    mqtt_username: str | None = None
    mqtt_password: str | None = None

    # Media worker (live video). Browsers open its WebSocket at media_public_url (default:
    # ws:// or wss:// on the page's own host name, port media_http_port); media URLs are
    # signed with secret_key and must be opened within media_token_seconds.
    media_http_host: str = "127.0.0.1"
    media_http_port: int = 8081
    media_public_url: str | None = None  # e.g. "wss://media.example.com"
    media_token_seconds: int = 60
    # LL-HLS (docs/live-view.md): a stream's HLS output stops this long after its last
    # request; an HLS token, once used, stays valid while requests keep coming this often.
    media_hls_idle_seconds: float = Field(30.0, gt=0)
    # Home's card pictures: a running channel's latest keyframe is kept at most this often
    # (0: never).
    media_snapshot_seconds: float = Field(180.0, ge=0)
    # Longest clip one download may cover (docs/playback.md); longer asks get 413 clip-too-long.
    media_clip_max_seconds: float = Field(6 * 3600.0, gt=0)
    # How soon a changed motion-detection setting reaches the media worker's detectors.
    media_motion_sync_seconds: float = Field(10.0, gt=0)
    # Live video (media role, docs/device-protocol.md "Media connection"): the RTMP port
    # devices push to (0: any free port), and the URL they are told to push to; unset, it
    # is rtmp://<media_rtmp_host or 127.0.0.1>:<bound port>/live.
    media_rtmp_host: str = "127.0.0.1"
    media_rtmp_port: int = 1935
    media_rtmp_public_url: str | None = None
    # Ingest reads every pushing camera in batches (media/rtmp_server.py): this often while
    # someone watches the stream live, and this often while only the recorder or a detector
    # reads it — longer batches cost less CPU; nobody waits on them.
    media_read_interval_seconds: float = Field(0.1, ge=0, le=1)
    media_background_read_interval_seconds: float = Field(0.5, ge=0, le=5)
    # How long a stream nobody watches keeps coming before the device is told to stop.
    media_stream_linger_seconds: float = Field(10.0, ge=0)
    # How long a publish token sent with start_stream may be used to start pushing.
    media_publish_token_seconds: float = Field(120.0, gt=0)
    # The recorder (docs/recording.md): segments end at the first keyframe after
    # recording_segment_seconds of media; a camera silent for more than
    # recording_gap_seconds leaves a gap; the spool is appended about every
    # recording_flush_seconds (what a kill -9 can lose).
    recording_segment_seconds: float = Field(60.0, ge=1, le=3600)
    recording_gap_seconds: float = Field(3.0, gt=0)
    recording_flush_seconds: float = Field(0.75, gt=0, le=10)
    # The cloud store of recordings whose channel keeps them in the cloud or in both places
    # (an S3 bucket beside the deployment's own store). Unset: every recording goes to the
    # deployment's store, whatever the channel's destination says.
    recording_cloud_endpoint: str | None = None
    recording_cloud_bucket: str | None = None
    recording_cloud_prefix: str = ""
    recording_cloud_region: str = "us-east-1"
    recording_cloud_access_key: str | None = None
    recording_cloud_secret_key: str | None = None

    # Accounts and security.
    session_days: int = 30
    recent_auth_minutes: int = 10  # R8: how fresh a sign-in must be for sensitive actions
    code_ttl_minutes: int = 15
    code_max_attempts: int = 5
    password_min_score: int = 3
    # Password guessing (docs/decisions/sign-in-guessing.md): wrong passwords per account
    # *and* address, per window; an address gets 6x that over all accounts; past
    # ``login_step_up_failures`` wrong passwords for one account from anywhere, a sign-in
    # also needs a code sent to the account's own email or phone (nobody is locked out).
    login_max_failures: int = 5
    login_window_minutes: int = 15
    login_step_up_failures: int = 10
    # The back office (docs/staff-back-office.md): staff sessions end after this long
    # without use, and after staff_session_max_hours in any case; the audit log is kept
    # this long (then the hourly job deletes older entries; legal basis: legal obligation).
    staff_session_minutes: int = 30
    staff_session_max_hours: int = 8
    staff_enrol_hours: int = 72
    audit_retention_days: int = 3 * 365
    max_photo_bytes: int = 5 * 1024 * 1024
    photo_max_side: int = 512
    minimum_age: int = 16  # CH1
    # How long a node may answer *reads* from its cache of sessions (accounts/deps.py); 0: off.
    session_cache_seconds: float = 5.0
    # Cookies carry ``Secure`` when the public address is https, unless set explicitly.
    cookie_secure: bool | None = None
    # Reverse proxies whose X-Forwarded-For is believed (addresses or networks, e.g.
    # "10.0.0.0/8"). Empty: the peer address is the client, whatever headers say.
    trusted_proxies: list[str] = Field(default_factory=list)

    # Country lists are policy, not code (B9): sharing by phone is offered only here.
    phone_share_countries: list[str] = Field(default_factory=lambda: ["KH", "VN", "TH", "SA"])
    phone_signup_countries: list[str] | None = None  # None: every country

    # External sign-in providers (OIDC / OAuth2), by name. Each entry:
    # {"client_id", "client_secret", "server_metadata_url" (OIDC) or
    #  "authorize_url"/"access_token_url"/"userinfo_url" (OAuth2), "scope", "label"}
    oidc_providers: dict[str, dict[str, Any]] = Field(default_factory=dict)

    # The operator: who runs this deployment (names the controller in notices).
    operator_name: str = "faoyam demo operator"
    dpo_email: str = "dpo@faoyam.local"
    dpo_phone: str = "+66 2 000 0000"
    dpo_address: str = "—"

    # The published notice (CHG1, SH3, XB1, R9): when it last changed, who hosts data where,
    # and where people may complain.
    policy_updated: str = "2026-11-24"
    sub_processors: list[dict[str, str]] = Field(default_factory=lambda: [
        {"name": "(the operator's hosting provider)", "service": "servers for the app and cloud", "country": "TH"},
    ])
    transfer_safeguards: str = "standard contractual clauses"
    supervisory_authority: str = "Personal Data Protection Committee (PDPC), Thailand — www.pdpc.or.th"

    demo: bool = False
    log_level: str = "INFO"
    log_json: bool = True
    rate_limit_enabled: bool = True
    jobs_enabled: bool = True  # periodic retention/notice jobs in this process

    @model_validator(mode="after")
    def _derived_security_defaults(self) -> Settings:
        if self.cookie_secure is None:
            self.cookie_secure = self.base_url.lower().startswith("https://")
        return self

    @property
    def https(self) -> bool:
        """Served over HTTPS (the public address says so): HSTS and secure cookies."""
        return self.base_url.lower().startswith("https://")

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings):
        return (init_settings, env_settings, _TomlSource(settings_cls), file_secret_settings)

    # Derived paths ------------------------------------------------------------------
    @property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'faoyam.db').resolve()}"

    @property
    def blobs_path(self) -> Path:
        return self.blob_dir or self.data_dir / "blobs"

    @property
    def outbox_path(self) -> Path:
        return self.data_dir / "outbox"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "logs"

    @cached_property
    def resolved_secret_key(self) -> bytes:
        if self.secret_key:
            return self.secret_key.encode()
        return _load_or_create(self.data_dir / "secret.key", lambda: secrets.token_urlsafe(48).encode())

    @cached_property
    def resolved_device_keys(self) -> list[tuple[str, bytes]]:
        """(key id, 32-byte key) pairs, newest first. The first one encrypts."""
        import base64

        if self.device_keys:
            out = []
            for part in self.device_keys.split(","):
                kid, _, b64 = part.strip().partition(":")
                key = base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4))
                if len(key) != 32:
                    raise ValueError(f"device key {kid!r} must be 32 bytes")
                out.append((kid, key))
            return out
        raw = _load_or_create(self.data_dir / "device.key", lambda: secrets.token_bytes(32))
        return [("k1", raw)]

    def ensure_dirs(self) -> None:
        for p in (self.data_dir, self.blobs_path, self.outbox_path, self.log_path):
            p.mkdir(parents=True, exist_ok=True)


def _load_or_create(path: Path, make) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        return path.read_bytes()
    value = make()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(value)
    return value
