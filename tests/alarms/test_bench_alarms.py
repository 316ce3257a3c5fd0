"""The alarms benchmark as a (slow) smoke test: a tiny run of every figure, nothing lost.

    .venv/bin/python -m pytest tests/alarms/test_bench_alarms.py -m slow -s
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_alarms.py"


@pytest.mark.slow
@pytest.mark.req("B11", "RET5")
def test_alarm_benchmark_runs_and_loses_nothing():
    result = subprocess.run([sys.executable, str(BENCH), "--tiny"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    print(result.stdout)
    assert re.search(r"end to end \(3 deliveries sent\)\s+[\d,]+ alarms/s\s+[\d.]+x baseline", result.stdout)
    assert re.search(r"count in (\d+) = events \1, deliveries sent \d+ / 3 = \1: True", result.stdout)
    assert re.search(r"alarm -> push request\s+p50\s+[\d.]+ ms\s+p99\s+[\d.]+ ms", result.stdout)
    assert "300 expired alarms" in result.stdout
