"""Cold start: importing the app in a fresh interpreter, beside importing boto3 alone (paired runs)."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from typing import Any

from bench.deployed import ROOT, import_environment
from bench.report import progress

IMPORT_TIMER = "import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"


def cold_start(runs: int) -> dict[str, Any]:
    env = {**os.environ, **import_environment(), "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}

    def once(module: str) -> float:
        code = IMPORT_TIMER.format(module=module)
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
        )
        return float(out.stdout.strip())

    pairs = []
    for index in progress(range(runs), "cold start: paired imports"):
        # Alternate which goes first, so neither always meets a warmer file cache.
        if index % 2:
            app_seconds, boto_seconds = once("app"), once("boto3")
        else:
            boto_seconds, app_seconds = once("boto3"), once("app")
        pairs.append((boto_seconds, app_seconds))
    ratios = [app / boto for boto, app in pairs]
    return {
        "runs": runs,
        "import_boto3_ms_median": round(statistics.median(b for b, _ in pairs) * 1000, 1),
        "import_app_ms_median": round(statistics.median(a for _, a in pairs) * 1000, 1),
        "ratio_median": round(statistics.median(ratios), 3),
        "target_ratio": 1.25,
    }
