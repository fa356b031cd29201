"""Each function's settings (environment variables, timeout, memory) as the packaged template gives them
(`make package`), so that the simulation and `make bench` run the configuration that is deployed, not a stage's.

Test and benchmark tooling only: never packaged (chalicelib/ is what Lambda gets).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# The queue URL `make package` gives chalice: it only names the queue on_retry subscribes to.
PACKAGE_QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/000000000000/efs-automount-retries"


def build_package(app_dir: Path, out: Path) -> Path:
    """`make package`'s chalice step for the app in `app_dir` (its own .chalice/ and deploy/); returns sam.json."""
    chalice = Path(sys.executable).parent / "chalice"
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1", "RETRY_QUEUE_URL": PACKAGE_QUEUE_URL}
    command = [str(chalice), "package", "--stage", "prod", "--merge-template", "deploy/app-resources.json", str(out)]
    subprocess.run(command, cwd=app_dir, env=env, check=True, capture_output=True, timeout=600)
    return out / "sam.json"


@dataclass(frozen=True)
class FunctionSettings:
    """What Lambda gives one function: its environment variables, its timeout and its memory."""

    environment: dict[str, str]
    timeout_s: int
    memory_mb: int


def function_settings(sam: dict[str, Any], made: dict[str, str]) -> dict[str, FunctionSettings]:
    """Each packaged function's settings, by its Chalice name (the handler app.<name>). A variable that refers to a
    resource (`{"Ref": "RetryQueue"}`) takes what `made` holds for it, what the caller made in its place (the queue's
    URL, the table's name); one that refers to a parameter, the parameter's default (what `aws cloudformation deploy`
    takes without an override)."""
    parameters = {name: p.get("Default") for name, p in sam.get("Parameters", {}).items()}
    functions = {}
    for logical_id, resource in sam["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        properties = resource["Properties"]
        environment = {}
        for variable, value in properties.get("Environment", {}).get("Variables", {}).items():
            if isinstance(value, dict) and set(value) == {"Ref"}:
                ref = value["Ref"]
                if ref in made:
                    value = made[ref]
                elif parameters.get(ref) is not None:
                    value = parameters[ref]
                else:
                    raise ValueError(f"{logical_id}: {variable} refers to {ref}, which nothing here makes")
            if not isinstance(value, str):
                raise ValueError(f"{logical_id}: {variable} is {value!r}, which only CloudFormation resolves")
            environment[variable] = value
        name = properties["Handler"].removeprefix("app.")
        functions[name] = FunctionSettings(environment, int(properties["Timeout"]), int(properties["MemorySize"]))
    return functions


def load(sam_path: Path, made: dict[str, str]) -> dict[str, FunctionSettings]:
    return function_settings(json.loads(sam_path.read_text()), made)
