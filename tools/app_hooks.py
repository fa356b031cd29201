"""The app's launch lifecycle hooks in one account, for `make hooks`, `make uninstall` and `make stop`: which groups
have them, which would throw hosts away once the app no longer answers, and the stop's change of their default
result. Run with the credentials of the account whose groups they are (the app's, or a member's).

A hook whose default result is ABANDON, left on a group after the app is gone (or while it is stopped), abandons
every host that group launches: it waits the hook's heartbeat timeout, nobody completes it, and Auto Scaling
terminates it and launches another, which meets the same fate.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LAUNCHING = "autoscaling:EC2_INSTANCE_LAUNCHING"
# Where a host waits on a launch hook: launched into the group, or into its warm pool.
WAITING = ("Pending:Wait", "Warmed:Pending:Wait")


@dataclass(frozen=True)
class AppHook:
    """One group's hook of the app's name, as DescribeLifecycleHooks reports it, and the hosts waiting on it."""

    account: str
    region: str
    group: str
    hook: dict[str, Any]
    waiting: tuple[str, ...] = field(default=())

    @property
    def name(self) -> str:
        return str(self.hook["LifecycleHookName"])

    @property
    def default_result(self) -> str:
        return str(self.hook.get("DefaultResult", "ABANDON"))

    @property
    def abandons_unanswered(self) -> bool:
        return self.default_result == "ABANDON"

    def describe(self) -> str:
        waiting = f", {len(self.waiting)} host(s) waiting on it" if self.waiting else ""
        return (
            f"account {self.account}, region {self.region}: group {self.group!r}, hook {self.name!r}, "
            f"default result {self.default_result}, heartbeat timeout {self.hook.get('HeartbeatTimeout')} s{waiting}"
        )

    def delete_command(self) -> str:
        return shlex.join(
            [
                "aws", "autoscaling", "delete-lifecycle-hook", "--region", self.region,
                "--auto-scaling-group-name", self.group, "--lifecycle-hook-name", self.name,
            ]
        )  # fmt: skip

    def continue_command(self) -> str:
        return shlex.join(
            [
                "aws", "autoscaling", "put-lifecycle-hook", "--region", self.region,
                "--auto-scaling-group-name", self.group, "--lifecycle-hook-name", self.name,
                "--lifecycle-transition", LAUNCHING, "--default-result", "CONTINUE",
                "--heartbeat-timeout", str(self.hook.get("HeartbeatTimeout", 3600)),
            ]
        )  # fmt: skip


def find_app_hooks(session: Any, account: str, regions: Iterable[str], hook_name: str) -> list[AppHook]:
    """Every group of the account, in these regions, with a launch hook named `hook_name`, and its waiting hosts."""
    found = []
    for region in dict.fromkeys(regions):
        autoscaling = session.client("autoscaling", region_name=region)
        for page in autoscaling.get_paginator("describe_auto_scaling_groups").paginate():
            for group in page["AutoScalingGroups"]:
                name = group["AutoScalingGroupName"]
                hooks = autoscaling.describe_lifecycle_hooks(AutoScalingGroupName=name)["LifecycleHooks"]
                for hook in hooks:
                    if hook["LifecycleHookName"] == hook_name and hook["LifecycleTransition"] == LAUNCHING:
                        waiting = _waiting_hosts(autoscaling, group)
                        found.append(AppHook(account, region, name, hook, waiting))
    return found


def _waiting_hosts(autoscaling: Any, group: dict[str, Any]) -> tuple[str, ...]:
    hosts = [i["InstanceId"] for i in group.get("Instances", []) if i.get("LifecycleState") in WAITING]
    if group.get("WarmPoolConfiguration"):
        pool = autoscaling.describe_warm_pool(AutoScalingGroupName=group["AutoScalingGroupName"])
        hosts += [i["InstanceId"] for i in pool.get("Instances", []) if i.get("LifecycleState") in WAITING]
    return tuple(hosts)


def put_default_result(session: Any, hook: AppHook, result: str) -> None:
    """The hook as it is, with another default result (PutLifecycleHook takes the whole hook)."""
    settings = {
        key: hook.hook[key]
        for key in ("HeartbeatTimeout", "NotificationTargetARN", "RoleARN", "NotificationMetadata")
        if hook.hook.get(key)
    }
    session.client("autoscaling", region_name=hook.region).put_lifecycle_hook(
        AutoScalingGroupName=hook.group,
        LifecycleHookName=hook.name,
        LifecycleTransition=LAUNCHING,
        DefaultResult=result,
        **settings,
    )


def let_waiting_hosts_in(session: Any, hook: AppHook) -> list[str]:
    """Complete CONTINUE every host waiting on the hook; returns those completed. A host the app (or anyone) decided
    meanwhile is no longer waiting: AWS refuses it, and it is left as decided."""
    from botocore.exceptions import ClientError

    autoscaling = session.client("autoscaling", region_name=hook.region)
    completed = []
    for instance in hook.waiting:
        try:
            autoscaling.complete_lifecycle_action(
                AutoScalingGroupName=hook.group,
                LifecycleHookName=hook.name,
                InstanceId=instance,
                LifecycleActionResult="CONTINUE",
            )
        except ClientError as exc:
            print(f"  {instance}: not completed ({exc.response['Error'].get('Message', exc)})")
            continue
        completed.append(instance)
    return completed


class StoppedHooks:
    """The hooks `make stop` set to CONTINUE, and their result before, so that `make start` puts back exactly those
    (a hook someone left at CONTINUE on purpose stays so). A JSON file beside deploy.env, not committed."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> list[dict[str, str]]:
        return json.loads(self.path.read_text()) if self.path.exists() else []

    def add(self, hook: AppHook) -> None:
        entries = [e for e in self.read() if not self._same(e, hook.account, hook.region, hook.group, hook.name)]
        entries.append(
            {
                "account": hook.account,
                "region": hook.region,
                "group": hook.group,
                "hook": hook.name,
                "default_result": hook.default_result,
            }
        )
        self._write(entries)

    def of_account(self, account: str) -> list[dict[str, str]]:
        return [e for e in self.read() if e["account"] == account]

    def remove(self, entry: dict[str, str]) -> None:
        self._write([e for e in self.read() if e != entry])

    @staticmethod
    def _same(entry: dict[str, str], account: str, region: str, group: str, hook: str) -> bool:
        return (entry["account"], entry["region"], entry["group"], entry["hook"]) == (account, region, group, hook)

    def _write(self, entries: list[dict[str, str]]) -> None:
        if entries:
            self.path.write_text(json.dumps(entries, indent=2) + "\n")
        else:
            self.path.unlink(missing_ok=True)
