"""The playback benchmark, tiny: it runs and prints every figure with its ratio.

    .venv/bin/python -m pytest tests/playback/test_bench_playback.py -m slow -s
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_playback.py"


@pytest.mark.slow
@pytest.mark.req("B5")
def test_playback_benchmark_runs_and_prints_its_figures():
    result = subprocess.run([sys.executable, str(BENCH), "--cameras", "2", "--days", "1", "--minutes", "0.2",
                             "--seeks", "3", "--runs", "1", "--queries", "3", "--width", "320", "--height", "240",
                             "--bitrate", "300000"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    print(result.stdout)
    out = result.stdout
    assert re.search(r"seek and start \(3 random instants\): p50 [\d.]+ ms, p99 [\d.]+ ms", out)
    assert re.search(r"ratio clip / raw: [\d.]+", out)
    assert "warning" not in out  # every frame recorded
    assert re.search(r"17,280 rows, one channel over +day: p50 +[\d.]+ ms", out)
    assert re.search(r"ratio 2x rows / 1x, over 30 days: p99 [\d.]+", out)
