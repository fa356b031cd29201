"""One group's configuration checks, in the order a mount depends on them, and the hourly run over every tagged
group the app serves (CONTRACT "Configuration checks"). Reads only; changes nothing."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from chalicelib.checks.configuration import (
    check_agents,
    check_document,
    check_file_system,
    check_file_system_policy,
    check_hook,
    check_tags,
)
from chalicelib.checks.document_digest import MOUNT_DOCUMENT_DIGEST
from chalicelib.checks.findings import Findings
from chalicelib.checks.network import check_network
from chalicelib.checks.run_reads import RunReads
from chalicelib.mount.spec import FILE_SYSTEM_TAG, MountSpec
from chalicelib.plumbing.accounts import AssumeRoleFailed, AwsAccess, AwsAccounts
from chalicelib.plumbing.events import EventOrigin
from chalicelib.plumbing.observability import count, logger
from chalicelib.plumbing.settings import Settings

# The hourly run has its function's timeout (300 s, .chalice/config.json). Past CHECKING_SECONDS it lists no
# further account or region and checks no further group, and says so: a run ends with what it found counted,
# with a margin for the place or group under way (a slow one: retried reads).
CHECKING_SECONDS = 200


@dataclass(frozen=True)
class GroupReport:
    """What the checks found for one group (the repair report's `groups` item)."""

    group_name: str
    spec: MountSpec | None
    findings: Findings

    def as_item(self) -> dict[str, Any]:
        return {
            "auto_scaling_group": self.group_name,
            "file_system_id": self.spec.file_system_id if self.spec else None,
            "mount_path": self.spec.mount_path if self.spec else None,
            "problems": list(self.findings.problems),
            "actions": [],
        }


class GroupChecks:
    """The checks of groups in one run: what every group of an account and region shares (the mount document)
    is read once per place, and what groups of one file system share (its EFS reads) once per file system."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._documents: dict[tuple[str, str], Findings] = {}
        self._reads: dict[tuple[str, str], RunReads] = {}

    def check(self, place: AwsAccess, raw_group: dict[str, Any]) -> GroupReport:
        aws = self._reads.setdefault((place.account, place.region), RunReads(place))
        findings = Findings()
        name = raw_group["AutoScalingGroupName"]
        check_hook(aws, raw_group, self._settings.hook_name, findings)
        spec = check_tags(raw_group, self._settings, findings)
        if spec is not None and check_file_system(aws, spec, findings):
            check_network(aws, raw_group, spec, findings)
            check_file_system_policy(aws, spec, None, findings)
        document = self._document(aws)
        findings.problems += document.problems
        findings.unsure += document.unsure
        check_agents(aws, raw_group, findings)
        for what in findings.unsure:
            logger.info("a configuration check could not be sure; nothing reported", group=name, unsure=what)
        return GroupReport(name, spec, findings)

    def _document(self, aws: AwsAccess) -> Findings:
        key = (aws.account, aws.region)
        if key not in self._documents:
            findings = Findings()
            check_document(aws, self._settings.mount_document, MOUNT_DOCUMENT_DIGEST, findings)
            self._documents[key] = findings
        return self._documents[key]


def tagged_groups(aws: AwsAccess, group_name: str | None = None) -> list[dict[str, Any]]:
    """The raw descriptions of the groups tagged with the file system tag: the named one, or every group."""
    named = {"AutoScalingGroupNames": [group_name]} if group_name is not None else {}
    pages = (
        aws.client("autoscaling")
        .get_paginator("describe_auto_scaling_groups")
        .paginate(Filters=[{"Name": "tag-key", "Values": [FILE_SYSTEM_TAG]}], **named)
    )
    return [raw for page in pages for raw in page["AutoScalingGroups"]]


class ScheduledChecks:
    """Once an hour: every tagged group of every account and region the app serves; each problem counted in
    `ConfigurationProblems` (dimension `Rule`), on which an alarm fires."""

    def __init__(self, settings: Settings, accounts: AwsAccounts) -> None:
        self._settings = settings
        self._accounts = accounts

    def run(self) -> dict[str, Any]:
        started = time.monotonic()
        checks = GroupChecks(self._settings)
        report: dict[str, Any] = {"groups": [], "errors": [], "truncated": False}
        own = self._accounts.own_account()
        for account in [own, *sorted(self._settings.trusted_accounts - {own})]:
            for region in self._settings.sweep_regions:
                if self._out_of_time(started, report):
                    return report
                try:
                    aws = self._accounts.for_origin(EventOrigin(account, region))
                    groups = tagged_groups(aws)
                except AssumeRoleFailed as exc:
                    logger.error("checks cannot act in a trusted account", reason=str(exc), account=account)
                    report["errors"].append(str(exc))
                    continue
                except Exception as exc:  # noqa: BLE001 - one unreadable place must not stop the others
                    logger.exception("checks cannot list the groups of an account and region", account=account)
                    report["errors"].append(f"{account} {region}: {exc}")
                    continue
                for raw in groups:
                    if self._out_of_time(started, report):
                        return report
                    self._check(checks, aws, raw, report)
        return report

    @staticmethod
    def _out_of_time(started: float, report: dict[str, Any]) -> bool:
        if time.monotonic() - started <= CHECKING_SECONDS:
            return False
        report["truncated"] = True
        logger.error("configuration checks ran out of time; some accounts, regions or groups were not checked")
        count("ChecksTruncated")
        return True

    def _check(self, checks: GroupChecks, aws: AwsAccess, raw: dict[str, Any], report: dict[str, Any]) -> None:
        name = raw["AutoScalingGroupName"]
        with logger.append_context_keys(account=aws.account, region=aws.region, group=name):
            try:
                found = checks.check(aws, raw)
            except Exception as exc:  # noqa: BLE001 - one group's trouble must not stop the others
                logger.exception("configuration checks failed for a group")
                report["errors"].append(f"{aws.account} {aws.region} {name}: {exc}")
                return
            for problem in found.findings.problems:
                rule = problem.split(":", 1)[0]
                logger.warning("configuration problem", rule=rule, problem=problem)
                count("ConfigurationProblems", Rule=rule)
            report["groups"].append({"account": aws.account, "region": aws.region, **found.as_item()})
