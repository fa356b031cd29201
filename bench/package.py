"""The package: deployment.zip with boto3 and botocore shipped against one without, its size, unpacking it and
importing the app from it as Lambda's cold start would."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.deployed import ROOT, import_environment
from bench.report import progress

# What a project needs for `chalice package` (tests, simulation and tooling are never packaged).
PACKAGED_PARTS = ("app.py", "chalicelib", ".chalice", "deploy", "requirements.txt")
SHIPPED_SDK = ("boto3", "botocore")
UNPACK_TIMER = (
    "import sys, time, zipfile; t = time.perf_counter(); "
    "zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2]); print(time.perf_counter() - t)"
)
PACKAGED_IMPORT_TIMER = (
    "import sys, time; t = time.perf_counter(); import app; elapsed = time.perf_counter() - t; "
    "import botocore; print(elapsed, botocore.__file__)"
)


def build_package(project: Path, out: Path) -> Path:
    chalice = Path(sys.executable).parent / "chalice"
    env = {
        **os.environ,
        "AWS_DEFAULT_REGION": "us-east-1",
        "RETRY_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/000000000000/efs-automount-retries",
    }
    command = [str(chalice), "package", "--stage", "prod", "--merge-template", "deploy/app-resources.json", str(out)]
    subprocess.run(command, cwd=project, env=env, check=True, capture_output=True)
    return out / "deployment.zip"


def project_without_sdk(work: Path) -> Path:
    """A copy of the project whose requirements.txt leaves boto3 and botocore to the Lambda runtime."""
    import shutil

    project = work / "project-without-sdk"
    for part in PACKAGED_PARTS:
        source = ROOT / part
        if source.is_dir():
            shutil.copytree(source, project / part, ignore=shutil.ignore_patterns("deployments", "__pycache__"))
        else:
            (project / part).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, project / part)
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    kept = [line for line in lines if line.split("==")[0].strip().lower() not in SHIPPED_SDK]
    (project / "requirements.txt").write_text("\n".join(kept) + "\n")
    return project


def package(runs: int) -> dict[str, Any]:
    """The package as shipped (boto3 and botocore pinned in it) against one that takes them from the
    runtime: size, the time to unpack it (Lambda unpacks the code on a cold start), and importing the
    app from the unpacked package in a fresh interpreter, the package first on the path as in Lambda.
    Without the SDK in the package, the venv's boto3 stands in for the runtime's."""
    env = {**os.environ, **import_environment(), "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        zips = {
            "shipped": build_package(ROOT, work / "shipped"),
            "without_sdk": build_package(project_without_sdk(work), work / "without-sdk"),
        }
        timings = unpack_and_import(zips, work, env, runs)
        sizes = {name: path.stat().st_size for name, path in zips.items()}
        files = {name: len(zipfile.ZipFile(path).namelist()) for name, path in zips.items()}
    return package_figures(runs, sizes, files, timings)


@dataclass
class Timings:
    """Seconds per run, by package: unpacking it, and importing the app from it; importing the app from the shipped
    package compiled at package time; and where each package's botocore was loaded from."""

    unpack: dict[str, list[float]]
    imports: dict[str, list[float]]
    precompiled: list[float] = field(default_factory=list)
    botocore_from: dict[str, str] = field(default_factory=dict)


def timed(code: str, *args: str, cwd: Path, env: dict[str, str]) -> list[str]:
    """What `code` prints, run in a fresh interpreter in `cwd`, `cwd` first on its path."""
    run_env = {**env, "PYTHONPATH": str(cwd)}
    out = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, env=run_env, capture_output=True, text=True, check=True
    )
    return out.stdout.split()


def unpack_and_import(zips: dict[str, Path], work: Path, env: dict[str, str], runs: int) -> Timings:
    """Each run: every package unpacked and the app imported from it (the order alternating), then the shipped one
    compiled and the app imported from it again."""
    timings = Timings({name: [] for name in zips}, {name: [] for name in zips})
    for index in progress(range(runs), "package: unpack and import"):
        # Alternate which goes first, so neither always meets a warmer file cache.
        for name in sorted(zips, reverse=bool(index % 2)):
            target = work / f"unpacked-{name}-{index}"
            timings.unpack[name].append(float(timed(UNPACK_TIMER, str(zips[name]), str(target), cwd=work, env=env)[0]))
            seconds, botocore_file = timed(PACKAGED_IMPORT_TIMER, cwd=target, env=env)
            timings.imports[name].append(float(seconds))
            timings.botocore_from[name] = "package" if botocore_file.startswith(str(target)) else "runtime"
        # The package holds no .pyc and Lambda's /var/task is read-only, so each cold start compiles
        # what it imports; the runtime's own boto3 comes compiled. What compiling at package time
        # would save:
        target = work / f"unpacked-precompiled-{index}"
        zipfile.ZipFile(zips["shipped"]).extractall(target)
        subprocess.run(
            [sys.executable, "-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash", str(target)],
            check=True,
            capture_output=True,
        )
        timings.precompiled.append(float(timed(PACKAGED_IMPORT_TIMER, cwd=target, env=env)[0]))
    return timings


def package_figures(runs: int, sizes: dict[str, int], files: dict[str, int], timings: Timings) -> dict[str, Any]:
    unpack, imports = timings.unpack, timings.imports

    def median_ms(values: list[float]) -> float:
        return round(statistics.median(values) * 1000, 1)

    return {
        "deployment_zip_kib": round(sizes["shipped"] / 1024, 1),
        "without_sdk_zip_kib": round(sizes["without_sdk"] / 1024, 1),
        "zip_ratio": round(sizes["shipped"] / sizes["without_sdk"], 1),
        "files": files,
        "botocore_loaded_from": timings.botocore_from,
        "runs": runs,
        "unpack_ms_median": {name: median_ms(values) for name, values in unpack.items()},
        "import_app_ms_median": {name: median_ms(values) for name, values in imports.items()}
        | {"shipped_precompiled": median_ms(timings.precompiled)},
        "import_ratio_shipped_to_without_sdk": round(
            statistics.median(s / w for s, w in zip(imports["shipped"], imports["without_sdk"], strict=True)), 3
        ),
        "cold_ratio_shipped_to_without_sdk": round(
            statistics.median(
                (us + s) / (uw + w)
                for us, s, uw, w in zip(
                    unpack["shipped"], imports["shipped"], unpack["without_sdk"], imports["without_sdk"], strict=True
                )
            ),
            3,
        ),
        "note": "unpacking stands in for Lambda fetching and unpacking the code, which grows with the "
        "package; importing from the unpacked package is what the init phase pays",
    }
