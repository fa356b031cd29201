"""Adds compiled bytecode to the deployment package `chalice package` wrote.

Lambda's code directory is read-only, so a package without .pyc files compiles every module it
imports on every cold start; with boto3 and botocore shipped, that is most of the cold start
(`make bench`: "cold start, shipped"). The .pyc files are hash-based and unchecked (PEP 552): valid
however the zip's timestamps come out, and never compared with their source at import.

Bytecode is specific to the Python version, so the interpreter running this must be the runtime's
(the `Runtime` of the template beside the zip); it refuses otherwise.

    python tools/compile_package.py build/package
"""

from __future__ import annotations

import compileall
import json
import py_compile
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path


class RuntimeMismatch(RuntimeError):
    """This interpreter's bytecode would not load in the Lambda runtime of the template."""


def template_runtimes(package_dir: Path) -> set[str]:
    resources = json.loads((package_dir / "sam.json").read_text())["Resources"]
    return {
        resource["Properties"]["Runtime"]
        for resource in resources.values()
        if resource["Type"] == "AWS::Serverless::Function" and "Runtime" in resource.get("Properties", {})
    }


def compile_package(package_dir: Path) -> int:
    """Rewrites package_dir/deployment.zip with a .pyc beside every module; returns how many were added."""
    here = f"python{sys.version_info.major}.{sys.version_info.minor}"
    runtimes = template_runtimes(package_dir)
    if runtimes != {here}:
        raise RuntimeMismatch(f"the template's runtimes are {sorted(runtimes)}, this interpreter is {here}")
    archive = package_dir / "deployment.zip"
    with tempfile.TemporaryDirectory() as scratch:
        unpacked = Path(scratch) / "package"
        with zipfile.ZipFile(archive) as source:
            source.extractall(unpacked)
        before = set(unpacked.rglob("*.pyc"))
        compileall.compile_dir(
            unpacked, quiet=1, workers=0, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH
        )
        added = len(set(unpacked.rglob("*.pyc")) - before)
        rebuilt = Path(scratch) / "deployment.zip"
        with zipfile.ZipFile(rebuilt, "w", zipfile.ZIP_DEFLATED) as target:
            for path in sorted(unpacked.rglob("*")):
                if path.is_file():
                    target.write(path, path.relative_to(unpacked).as_posix())
        shutil.move(rebuilt, archive)
    return added


def main() -> None:
    package_dir = Path(sys.argv[1] if len(sys.argv) > 1 else "build/package")
    try:
        added = compile_package(package_dir)
    except RuntimeMismatch as exc:
        sys.exit(f"compile_package: {exc}; run it with the runtime's Python version")
    print(f"compiled {added} modules into {package_dir / 'deployment.zip'}")


if __name__ == "__main__":
    main()
