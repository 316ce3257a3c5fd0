"""TOTP against RFC 6238 appendix B, and the replay and window rules."""

from __future__ import annotations

import base64

import pytest

from faoyam.staff import totp

# RFC 6238 appendix B: (time, SHA1, SHA256, SHA512), 8 digits, keys "1234567890" repeated.
VECTORS = [
    (59, "94287082", "46119246", "90693936"),
    (1111111109, "07081804", "68084774", "25091201"),
    (1111111111, "14050471", "67062674", "99943326"),
    (1234567890, "89005924", "91819424", "93441116"),
    (2000000000, "69279037", "90698825", "38618901"),
    (20000000000, "65353130", "77737706", "47863826"),
]
KEYS = {"SHA1": b"12345678901234567890", "SHA256": b"12345678901234567890123456789012",
        "SHA512": b"1234567890123456789012345678901234567890123456789012345678901234"}


@pytest.mark.parametrize(("t", "sha1", "sha256", "sha512"), VECTORS)
def test_rfc6238_vectors(t, sha1, sha256, sha512):
    for algorithm, want in (("SHA1", sha1), ("SHA256", sha256), ("SHA512", sha512)):
        assert totp.hotp(KEYS[algorithm], t // 30, 8, algorithm) == want


def test_six_digit_codes_of_a_base32_secret_verify_within_one_step():
    secret = base64.b32encode(KEYS["SHA1"]).decode()
    t = 1111111111
    code = totp.code_at(secret, t)
    assert code == "050471"  # the last six digits of the RFC's 8-digit value
    assert totp.verify(secret, code, at=t) == t // 30
    assert totp.verify(secret, code, at=t + 30) == t // 30  # clock drift of one step
    assert totp.verify(secret, code, at=t + 90) is None  # too late
    assert totp.verify(secret, "000000", at=t) is None
    assert totp.verify(secret, "12345", at=t) is None and totp.verify(secret, "abcdef", at=t) is None


def test_a_used_step_is_refused():
    secret = totp.new_secret()
    t = 1_800_000_000
    step = totp.verify(secret, totp.code_at(secret, t), at=t)
    assert step is not None
    assert totp.verify(secret, totp.code_at(secret, t), at=t, after=step) is None  # replay
    assert totp.verify(secret, totp.code_at(secret, t + 30), at=t + 30, after=step) == step + 1


def test_otpauth_uri():
    uri = totp.otpauth_uri("JBSWY3DPEHPK3PXP", "dpo@operator.example", "faoyam back office")
    assert uri.startswith("otpauth://totp/faoyam%20back%20office:dpo@operator.example?secret=JBSWY3DPEHPK3PXP&")
    assert "issuer=faoyam+back+office" in uri and "period=30" in uri and "digits=6" in uri
