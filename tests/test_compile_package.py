"""The deployment package carries bytecode that Lambda's Python loads without compiling (tools/compile_package.py)."""

from __future__ import annotations

import importlib.util
import json
import sys
import zipfile
from pathlib import Path

import pytest

from tools.compile_package import RuntimeMismatch, compile_package

RUNTIME = f"python{sys.version_info.major}.{sys.version_info.minor}"


def _package(tmp_path: Path, runtime: str) -> Path:
    function = {"Type": "AWS::Serverless::Function", "Properties": {"Runtime": runtime}}
    (tmp_path / "sam.json").write_text(json.dumps({"Resources": {"OnLaunch": function}}))
    with zipfile.ZipFile(tmp_path / "deployment.zip", "w") as archive:
        archive.writestr("app.py", "VALUE = 42\n")
        archive.writestr("chalicelib/__init__.py", "")
        archive.writestr("chalicelib/mount/spec.py", "def f():\n    return 1\n")
    return tmp_path


def test_every_module_gets_unchecked_hash_bytecode_for_the_runtime(tmp_path):
    package = _package(tmp_path, RUNTIME)

    assert compile_package(package) == 3

    with zipfile.ZipFile(package / "deployment.zip") as archive:
        names = set(archive.namelist())
        tag = sys.implementation.cache_tag
        pyc = archive.read(f"chalicelib/mount/__pycache__/spec.{tag}.pyc")
    assert {"app.py", f"__pycache__/app.{tag}.pyc", f"chalicelib/__pycache__/__init__.{tag}.pyc"} <= names
    # PEP 552: the header's flags word 0b01 is hash-based and unchecked, so the zip's timestamps never matter.
    assert pyc[:4] == importlib.util.MAGIC_NUMBER
    assert int.from_bytes(pyc[4:8], "little") == 0b01


def test_bytecode_of_another_python_is_refused_and_the_package_left_as_it_was(tmp_path):
    package = _package(tmp_path, "python3.9" if RUNTIME != "python3.9" else "python3.12")
    before = (package / "deployment.zip").read_bytes()

    with pytest.raises(RuntimeMismatch, match="runtimes"):
        compile_package(package)

    assert (package / "deployment.zip").read_bytes() == before
