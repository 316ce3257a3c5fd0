"""The transcode benchmark as a (slow) test: it runs, the transcode keeps up with a small
camera at real-time rate, and every figure and ratio is printed.

    .venv/bin/python -m pytest tests/media/test_transcode_bench.py -m slow -s
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_transcode.py"


@pytest.mark.slow
@pytest.mark.req("B4")
def test_transcode_benchmark_prints_cost_and_ratios():
    result = subprocess.run([sys.executable, str(BENCH), "--sizes", "640x360", "--seconds", "3"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    print(result.stdout)
    ours = re.search(r"^ours, 640 wide\s+([\d.]+)\s+(-?[\d.]+)\s+([\d.]+)\s+([\d.]+).*?(\d+)/(\d+)/(\d+)$",
                     result.stdout, re.M)
    assert ours is not None, result.stdout
    assert float(ours.group(1)) > 0 and float(ours.group(3)) > 0, "a cost and a ratio to the baseline"
    assert int(ours.group(6)) > 50, "frames came out"
    assert re.search(r"^ffmpeg \(as specified\)\s+[\d.]+$", result.stdout, re.M)
