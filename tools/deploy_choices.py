"""What `make deploy` and its siblings are told, remembered between runs in deploy.env: where the app goes (stack,
region, bucket), its settings (tools/stack_parameters.py), and where the member StackSet goes. Plain data only: no
AWS here.

A choice comes from, first to last: the make command line (`make deploy TRUSTED_ACCOUNTS=111122223333`), deploy.env
(written by the last run), the deployed stack's parameters (a checkout without deploy.env keeps what runs), the
default.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from chalicelib.plumbing.names import ACCOUNT_ID, REGION
from tools import stack_parameters

ROOT = Path(__file__).resolve().parent.parent
CHOICES_FILE = ROOT / "deploy.env"

_REGION = REGION.pattern.removeprefix("^").removesuffix("$")
_ACCOUNT = ACCOUNT_ID.pattern.removeprefix("^").removesuffix("$")
_OU = r"(?:ou-[a-z0-9]{4,32}-[a-z0-9]{8,32}|r-[a-z0-9]{4,32})"
_ROLE_ARN = r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=.@/-]+"


def _listed(item: str) -> str:
    return rf"^(?:{item})(?:,(?:{item}))*$"


@dataclass(frozen=True)
class Place:
    """A choice that is not a setting of the app: where things go."""

    variable: str
    default: str
    pattern: str
    meaning: str


# The packaged functions are named <stack>-<function>; the longest, -on_container_instance, leaves 42 characters
# of Lambda's 64 for the stack name (docs/getting-started.md).
STACK_NAME = r"^[A-Za-z][A-Za-z0-9-]{0,41}$"
PLACES = (
    Place("STACK", "efs-automount", STACK_NAME, "the app's stack"),
    Place("REGION", "", REGION.pattern, "the app's region (default: your AWS CLI's)"),
    Place("BUCKET", "", r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", "an S3 bucket in REGION for the package"),
    Place("PREFIX", "efs-automount", r"^[A-Za-z0-9!_.*'()/-]{1,200}$", "the package's key prefix in BUCKET"),
    Place("PROFILE", "", r"^$|^[\w.@+-]{1,64}$", "the AWS CLI profile of the app's account (default: yours)"),
    Place("STACK_SET", "efs-automount-member", STACK_NAME, "the member StackSet"),
    Place("OUS", "", rf"^$|{_listed(_OU)}", "organizational units (or the root r-...) of the member accounts"),
    Place("ACCOUNTS", "", rf"^$|{_listed(_ACCOUNT)}", "only these accounts of OUS (default: every one)"),
    Place("REGIONS", "", rf"^$|{_listed(_REGION)}", "the member accounts' regions"),
    Place("ROLE_REGION", "", rf"^$|{REGION.pattern}", "where the member role is made (default: first of REGIONS)"),
    Place("CALL_AS", "SELF", r"^(SELF|DELEGATED_ADMIN)$", "DELEGATED_ADMIN from a delegated administrator account"),
    Place("MEMBERS_PROFILE", "", r"^$|^[\w.@+-]{1,64}$", "the AWS CLI profile that manages the StackSet"),
    # Written by make deploy, read by make deploy-members where the app's stack cannot be read.
    Place("APP_ROLE_ARNS", "", rf"^$|{_listed(_ROLE_ARN)}", "the app's roles (default: its stack's AppRoleArns)"),
)
PLACES_BY_VARIABLE = {place.variable: place for place in PLACES}
SETTINGS = tuple(p.variable for p in stack_parameters.PARAMETERS)
# Not remembered: asked anew each time.
ONCE = ("FORCE",)
KNOWN = (*(p.variable for p in PLACES), *SETTINGS, *ONCE)


class ChoiceError(ValueError):
    """A choice is missing or has a value the deployment cannot take; the message names the variable."""


def parse_given(arguments: list[str]) -> dict[str, str]:
    """The command line's VARIABLE=value pairs (`make deploy` passes those given on its own command line)."""
    given = {}
    for argument in arguments:
        variable, equals, value = argument.partition("=")
        if not equals:
            raise ChoiceError(f"{argument!r} is not VARIABLE=value")
        if variable not in KNOWN:
            raise ChoiceError(f"unknown variable {variable}; known: {', '.join(KNOWN)}")
        given[variable] = value.strip()
    return given


def read_remembered(path: Path | None = None) -> dict[str, str]:
    """deploy.env's choices; those it does not know (an older or newer checkout's) are left out."""
    path = path or CHOICES_FILE
    if not path.exists():
        return {}
    remembered = {}
    for line in path.read_text().splitlines():
        variable, equals, value = line.partition("=")
        if equals and not line.startswith("#") and variable.strip() in KNOWN:
            remembered[variable.strip()] = value.strip()
    return remembered


def write_remembered(choices: Mapping[str, str], path: Path | None = None) -> None:
    """deploy.env, in a fixed order, every setting written out (what runs is readable here)."""
    path = path or CHOICES_FILE
    lines = [
        "# Written by make deploy / deploy-members: the choices the next run takes again.",
        "# Change one with `make deploy VARIABLE=value` (or edit here). Not committed: it names your accounts.",
    ]
    for variable in [p.variable for p in PLACES] + list(SETTINGS):
        if variable in choices and (variable in SETTINGS or choices[variable] != ""):
            lines.append(f"{variable}={choices[variable]}")
    path.write_text("\n".join(lines) + "\n")


def resolve(
    given: Mapping[str, str], remembered: Mapping[str, str], deployed: Mapping[str, str], defaults: Mapping[str, str]
) -> dict[str, str]:
    """Each known choice from the first of: the command line, deploy.env, the deployed stack, the default."""
    resolved = {}
    for variable in KNOWN:
        for source in (given, remembered, deployed, defaults):
            if variable in source:
                resolved[variable] = source[variable]
                break
    return resolved


def setting_defaults(mount_roots: tuple[str, ...]) -> dict[str, str]:
    """Every setting's default; MOUNT_ROOTS's is the roots deploy/ is built for (.chalice/config.json)."""
    defaults = {p.variable: p.default for p in stack_parameters.PARAMETERS}
    defaults[stack_parameters.MOUNT_ROOTS] = ",".join(mount_roots)
    return defaults


def place_defaults() -> dict[str, str]:
    return {place.variable: place.default for place in PLACES}


def settings_of_stack(parameters: Mapping[str, str]) -> dict[str, str]:
    """The settings a deployed stack runs with, by make variable, from its parameters (DescribeStacks)."""
    return {
        stack_parameters.BY_NAME[name].variable: value
        for name, value in parameters.items()
        if name in stack_parameters.BY_NAME
    }


def place_refusals(choices: Mapping[str, str], required: tuple[str, ...]) -> list[str]:
    """What is missing or malformed among the places, each naming its variable and what it is for."""
    problems = []
    for variable in required:
        if not choices.get(variable):
            place = PLACES_BY_VARIABLE[variable]
            problems.append(f"{variable} is missing: {place.meaning} ({variable}=...)")
    for place in PLACES:
        value = choices.get(place.variable, "")
        if value and not re.fullmatch(place.pattern, value):
            problems.append(f"{place.variable}={value!r} is not valid: expected {place.pattern}")
    return problems


def split(value: str) -> list[str]:
    return [item for item in value.split(",") if item]


def stack_parameter_values(choices: Mapping[str, str]) -> dict[str, str]:
    """The app stack's parameters for these choices."""
    return {p.name: choices[p.variable] for p in stack_parameters.PARAMETERS}


def changes(deployed: Mapping[str, str], choices: Mapping[str, str]) -> list[str]:
    """The settings that differ from what the stack runs now, one line each."""
    return [
        f"{variable}: {deployed[variable]!r} -> {choices[variable]!r}"
        for variable in SETTINGS
        if variable in deployed and deployed[variable] != choices[variable]
    ]
