"""The sweeper (every minute): drives forward every host waiting on our hook whose flow stalled.

A lost status event, a crashed invocation, or a retry with no queue to carry it leaves a host
in Pending:Wait; the sweeper finds it in the own and trusted accounts and runs the same step
as every event does. A run drives at most SWEEP_MAX_HOSTS hosts.
"""

from __future__ import annotations

from typing import Any

from chalicelib.accounts import AssumeRoleFailed, AwsAccounts
from chalicelib.events import EventOrigin
from chalicelib.groups import all_groups
from chalicelib.lifecycle import LifecycleFlow
from chalicelib.observability import count, logger
from chalicelib.settings import Settings

# Hosts younger than this are left to their launch event, so the two never race to send a command.
GRACE_SECONDS = 60


class Sweeper:
    def __init__(self, settings: Settings, accounts: AwsAccounts, flow: LifecycleFlow) -> None:
        self._settings = settings
        self._accounts = accounts
        self._flow = flow

    def run(self) -> dict[str, Any]:
        now = self._flow.clock()
        report: dict[str, Any] = {"hosts": {}, "errors": [], "truncated": False}
        left = self._settings.sweep_max_hosts
        own = self._accounts.own_account()
        for account in [own, *sorted(self._settings.trusted_accounts - {own})]:
            for region in self._settings.sweep_regions:
                try:
                    aws = self._accounts.for_origin(EventOrigin(account, region))
                except AssumeRoleFailed as exc:
                    logger.error("sweeper cannot act in a trusted account", reason=str(exc), account=account)
                    count("AssumeRoleFailures")
                    report["errors"].append(str(exc))
                    continue
                for group in all_groups(aws.client("autoscaling")):
                    waiting = sorted(i for i, state in group.instance_states.items() if state == "Pending:Wait")
                    # Hosts held by other hooks are none of ours, and cost no part of the budget.
                    if not waiting or not self._flow.has_our_hook(aws, group.name):
                        continue
                    for instance_id in waiting:
                        if left == 0:
                            report["truncated"] = True
                            return report
                        left -= 1
                        report["hosts"][instance_id] = self._drive(aws, group, instance_id, now)
        return report

    def _drive(self, aws: Any, group: Any, instance_id: str, now: float) -> str:
        try:
            waiting = self._flow.waiting_since_launch(aws, instance_id)
            if now - waiting.started_at < GRACE_SECONDS:
                return "skipped: launched moments ago"
            with logger.append_context_keys(account=aws.account, region=aws.region, instance_id=instance_id):
                return self._flow.drive(aws, group.name, instance_id, waiting, group=group)
        except Exception as exc:  # one host's trouble must not stop the sweep of the others
            logger.exception("sweeper could not drive a host", instance_id=instance_id, group=group.name)
            count("SweepErrors")
            return f"error: {exc}"
