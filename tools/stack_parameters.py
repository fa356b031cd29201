"""The packaged app stack's parameters: every setting of the app (docs/configuration.md) a deployer chooses, with its
default, its range, the Lambda environment variable it sets and the make variable that chooses it
(`make deploy TRUSTED_ACCOUNTS=111122223333`). tools/build_deploy.py renders them into the packaged template;
tools/deploy.py validates, remembers and passes the choices.

Not here: the settings the template wires to what it creates (IDEMPOTENCY_TABLE, RETRY_QUEUE_URL) and the ones the
alarms and dashboard depend on (POWERTOOLS_SERVICE_NAME, POWERTOOLS_METRICS_NAMESPACE).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chalicelib.plumbing.names import DOCUMENT_NAME, EXTERNAL_ID, HOOK_NAME, REGION, ROLE_NAME
from chalicelib.plumbing.settings import (
    DEFAULT_HOOK_NAME,
    DEFAULT_MEMBER_ROLE_NAME,
    DEFAULT_MOUNT_DOCUMENT,
    Settings,
    SettingsError,
)

# A region without its anchors, for a comma-separated list of them.
_REGION = REGION.pattern.removeprefix("^").removesuffix("$")


@dataclass(frozen=True)
class StackParameter:
    """One parameter of the app stack."""

    variable: str
    """The make variable that chooses it; also the Lambda environment variable it sets, unless `environment`."""
    name: str
    default: str
    description: str
    pattern: str | None = None
    values: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    environment: str | None = ""
    """The Lambda environment variable: "" for `variable` itself, None for none (a parameter of the stack only)."""
    functions: tuple[str, ...] | None = None
    """The functions (logical ids) whose environment it sets: None for every function."""

    @property
    def setting(self) -> str | None:
        return self.variable if self.environment == "" else self.environment

    def template(self, values: tuple[str, ...] | None = None, default: str | None = None) -> dict[str, Any]:
        """The template's parameter; `values` and `default` replace the allowed values and default (MOUNT_ROOTS)."""
        parameter: dict[str, Any] = {"Type": "Number" if self.minimum is not None else "String"}
        if values or self.values:
            parameter["AllowedValues"] = list(values or self.values)
        if self.pattern is not None:
            parameter["AllowedPattern"] = self.pattern
        if self.minimum is not None:
            parameter["MinValue"] = self.minimum
            parameter["MaxValue"] = self.maximum
        parameter["Default"] = self.default if default is None else default
        parameter["Description"] = self.description
        return parameter

    def refusal(self, value: str) -> str | None:
        """Why the template would refuse `value`, or None: the same constraints, checked before anything is sent."""
        if self.values and value not in self.values:
            return f"expected one of {', '.join(self.values)}"
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            return f"expected {self.pattern}"
        if self.minimum is not None and not (value.isdigit() and self.minimum <= int(value) <= (self.maximum or 0)):
            return f"expected a whole number from {self.minimum} to {self.maximum}"
        return None


# The functions that run the task definition rewrite's follow-ups (tools/build_deploy.py FOLLOW_UPS_FUNCTIONS).
FOLLOW_UPS = ("OnTaskDefinition", "Repair")
MOUNT_ROOTS = "MOUNT_ROOTS"

PARAMETERS = (
    StackParameter(
        "HOOK_NAME",
        "HookName",
        DEFAULT_HOOK_NAME,
        "The launch lifecycle hook the app owns (HOOK_NAME); the launch rule matches it. Hooks of any other name are "
        "never touched.",
        pattern=HOOK_NAME.pattern,
    ),
    StackParameter(
        "TRUSTED_ACCOUNTS",
        "TrustedAccounts",
        "",
        "Comma-separated account ids whose forwarded events the app acts on, besides its own (TRUSTED_ACCOUNTS).",
        pattern=r"^$|^\d{12}(,\d{12})*$",
    ),
    StackParameter(
        "MEMBER_ROLE_NAME",
        "MemberRoleName",
        DEFAULT_MEMBER_ROLE_NAME,
        "The role the app assumes in a trusted account (MEMBER_ROLE_NAME): the member template's MemberRoleName.",
        pattern=ROLE_NAME.pattern,
    ),
    StackParameter(
        "EXTERNAL_ID",
        "ExternalId",
        "",
        "Sent as ExternalId when the app assumes a member role (EXTERNAL_ID): the member template's ExternalId. "
        "Empty: none.",
        pattern=f"^$|{EXTERNAL_ID.pattern}",
    ),
    StackParameter(
        "ON_FAILURE",
        "OnFailure",
        "ABANDON",
        "The lifecycle result when mounting fails for good (ON_FAILURE); a group's efs-automount:on-failure tag "
        "overrides it.",
        values=("ABANDON", "CONTINUE"),
    ),
    StackParameter(
        "MOUNT_DOCUMENT",
        "MountDocumentName",
        DEFAULT_MOUNT_DOCUMENT,
        "The name of the SSM Command document the stack creates and the app runs (MOUNT_DOCUMENT).",
        pattern=DOCUMENT_NAME.pattern,
    ),
    StackParameter(
        MOUNT_ROOTS,
        "MountRoots",
        "",
        "Comma-separated directories a host mount path must lie under (MOUNT_ROOTS). Built into the mount "
        "document's script and pattern: this package takes only the roots it was built for (make deploy "
        "MOUNT_ROOTS=... builds another).",
    ),
    StackParameter(
        "COMMAND_TIMEOUT_SECONDS",
        "CommandTimeoutSeconds",
        "600",
        "How long SSM may try to deliver the mount command to a host's agent before the command times out "
        "undelivered (SendCommand's TimeoutSeconds, COMMAND_TIMEOUT_SECONDS). The script's own run is limited "
        "by the mount document (600 s).",
        minimum=30,
        maximum=2880,
    ),
    StackParameter(
        "MOUNT_ATTEMPTS",
        "MountAttempts",
        "3",
        "Mount attempts per host when failures are transient (MOUNT_ATTEMPTS).",
        minimum=1,
        maximum=10,
    ),
    StackParameter(
        "MAX_WAIT_SECONDS",
        "MaxWaitSeconds",
        "1800",
        "How long a host may wait in all before the failure result (MAX_WAIT_SECONDS); keep it short of the "
        "hook's global timeout.",
        minimum=120,
        maximum=172800,
    ),
    StackParameter(
        "SWEEP_REGIONS",
        "SweepRegions",
        "",
        "Comma-separated regions the sweeper and the hourly checks look in besides the app's own (SWEEP_REGIONS): "
        "the member stacks' other regions.",
        pattern=f"^$|^{_REGION}(,{_REGION})*$",
    ),
    StackParameter(
        "SWEEP_MAX_HOSTS",
        "SweepMaxHosts",
        "50",
        "Hosts the sweeper drives per run (SWEEP_MAX_HOSTS).",
        minimum=1,
        maximum=1000,
    ),
    StackParameter(
        "UPDATE_SERVICES",
        "UpdateServices",
        "false",
        "The app's UPDATE_SERVICES setting: true grants the permissions it needs, and only then.",
        values=("true", "false"),
        functions=FOLLOW_UPS,
    ),
    StackParameter(
        "DEREGISTER_SOURCE",
        "DeregisterSource",
        "false",
        "The app's DEREGISTER_SOURCE setting: true grants the permissions it needs, and only then.",
        values=("true", "false"),
        functions=FOLLOW_UPS,
    ),
    StackParameter(
        "LOG_LEVEL",
        "LogLevel",
        "INFO",
        "The functions' log level (POWERTOOLS_LOG_LEVEL).",
        values=("DEBUG", "INFO", "WARNING", "ERROR"),
        environment="POWERTOOLS_LOG_LEVEL",
    ),
    StackParameter(
        "ORGANIZATION_ID",
        "OrganizationId",
        "",
        "Your AWS Organizations id (o-...): every account of it may forward the app's events to this account's "
        "default bus. The app still acts only on TRUSTED_ACCOUNTS. Empty: grant nothing.",
        pattern=r"^$|^o-[a-z0-9]{10,32}$",
        environment=None,
    ),
    StackParameter(
        "ALARM_TOPIC_ARN",
        "AlarmTopicArn",
        "",
        "An SNS topic the alarms notify (alarm and back to OK). Empty: the alarms notify no one.",
        pattern=r"^$|^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$",
        environment=None,
    ),
)
BY_VARIABLE = {parameter.variable: parameter for parameter in PARAMETERS}
BY_NAME = {parameter.name: parameter for parameter in PARAMETERS}


def ref(parameter: str) -> Any:
    """A reference to a template parameter, where the code expects the value it stands for."""
    return {"Ref": parameter}


def template_parameters(roots: tuple[str, ...]) -> dict[str, Any]:
    """Every parameter as the packaged template declares it, for a package built for these mount roots."""
    built = ",".join(roots)
    return {p.name: p.template((built,), built) if p.variable == MOUNT_ROOTS else p.template() for p in PARAMETERS}


def function_variables(function: str) -> dict[str, Any]:
    """The environment variables these parameters set on one function (its logical id)."""
    return {
        p.setting: ref(p.name)
        for p in PARAMETERS
        if p.setting is not None and (p.functions is None or function in p.functions)
    }


def refusals(choices: Mapping[str, str]) -> list[str]:
    """Every choice the stack or the app would refuse, each naming its variable; empty when all are good. The app's
    own parser (chalicelib Settings) reads the settings too, so nothing the functions would refuse is deployed.
    (MOUNT_ROOTS is not checked against a package here: the package is built for the roots chosen.)"""
    problems = []
    for variable, value in choices.items():
        reason = BY_VARIABLE[variable].refusal(value)
        if reason:
            problems.append(f"{variable}={value!r} is not valid: {reason}")
    if not problems:
        try:
            Settings.from_environ({BY_VARIABLE[v].setting or v: value for v, value in choices.items()})
        except SettingsError as exc:
            problems.append(str(exc))
    return problems
