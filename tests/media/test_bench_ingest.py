"""The ingest benchmark as a (slow) test: a short run must drop nothing on either side.

    .venv/bin/python -m pytest tests/media/test_bench_ingest.py -m slow -s
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_ingest.py"


@pytest.mark.slow
@pytest.mark.req("B4")
@pytest.mark.skipif(not shutil.which("ffmpeg"), reason="the baseline needs Debian's ffmpeg")
def test_ingest_benchmark_drops_nothing_and_prints_its_ratio():
    result = subprocess.run([sys.executable, str(BENCH), "--cameras", "5", "--seconds", "10", "--warmup", "3"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    print(result.stdout)
    assert re.search(r"ratio hub / baseline\*\* \| \*\*\d+\.\d+", result.stdout)
    packets = re.search(r"sent (\d+) per side; hub in (\d+), hub out (\d+) \(dropped (-?\d+).*"
                        r"ffmpeg counted (\d+) \(dropped (-?\d+)\)", result.stdout)
    assert packets, result.stdout
    sent, hub_in, hub_out, _, ffmpeg, _ = map(int, packets.groups())
    assert sent > 0 and hub_in == hub_out == ffmpeg == sent
