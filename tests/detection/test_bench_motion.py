"""The motion-detection benchmark (figure 0) at its tiny size: it runs, prints the cost per
camera-minute with its ratio to decoding every frame, and finds the truth.

    .venv/bin/python -m pytest tests/detection/test_bench_motion.py -m slow -s
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_motion.py"


@pytest.mark.slow
@pytest.mark.req("B11")
def test_motion_benchmark_runs_and_matches_the_truth(tmp_path):
    result = subprocess.run([sys.executable, str(BENCH), "--tiny"], capture_output=True, text=True, timeout=300,
                            env={"FAOYAM_MEDIA_CACHE": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    print(result.stdout)
    assert re.search(r"decode every frame of the main stream: [\d.]+ CPU-s", result.stdout)
    row = re.search(r"\| 2 \| keyframes of main \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| (\d+) / (\d+) \|",
                    result.stdout)
    assert row, result.stdout
    precision, recall, truth = float(row[3]), float(row[4]), int(row[6])
    assert truth >= 2 and precision >= 0.9 and recall >= 0.9
