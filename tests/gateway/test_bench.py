"""The device benchmark (bench/bench_devices.py) runs: a small size always, 1,000 devices
only when slow tests are asked for. Figures are printed, never asserted."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.gateway.conftest import needs_mosquitto

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_devices.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_devices", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _check(result: dict, devices: int, killed: int) -> None:
    assert result["devices"] == devices and result["killed"] == killed
    for key in ("connect_s", "connect_bare_s", "mem_per_device_kib", "offline_s", "offline_bare_s"):
        assert key in result
    assert result["connect_ratio"] is not None and result["offline_ratio"] is not None


@pytest.mark.mosquitto
@needs_mosquitto
def test_bench_small():
    _check(_bench().main(["--devices", "12", "--kill", "4", "--runs", "1"]), 12, 4)


@pytest.mark.slow
@pytest.mark.mosquitto
@needs_mosquitto
def test_bench_1000_devices_kill_100():
    _check(_bench().main(["--devices", "1000", "--kill", "100", "--runs", "3"]), 1000, 100)
