"""The recording benchmark as a (slow) test: it runs, records every segment it closes, and
prints the figures.

    .venv/bin/python -m pytest tests/recordings/test_bench_record.py -m slow -s
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_record.py"


@pytest.mark.slow
@pytest.mark.req("B5")
def test_recording_benchmark_runs_and_loses_nothing():
    result = subprocess.run([sys.executable, str(BENCH), "--cameras", "2", "--seconds", "6", "--segment", "2",
                             "--width", "320", "--height", "240", "--bitrate", "500000"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    print(result.stdout)
    assert re.search(r"ratio recorder / ffmpeg: [\d.]+", result.stdout)
    assert "index = blobs: True" in result.stdout and "decodable 2/2" in result.stdout
    assert "fragments dropped 0" in result.stdout and "cameras short of it 0" in result.stdout


@pytest.mark.slow
def test_recording_benchmark_on_s3_with_copy_runs_and_loses_nothing():
    result = subprocess.run([sys.executable, str(BENCH), "--cameras", "2", "--seconds", "6", "--segment", "2",
                             "--width", "320", "--height", "240", "--bitrate", "500000", "--store", "s3", "--copy",
                             "--no-ffmpeg"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    print(result.stdout)
    assert "store s3, closed segments copied" in result.stdout and "cameras short of it 0" in result.stdout
    assert "index = blobs: True" in result.stdout and "decodable 2/2" in result.stdout
