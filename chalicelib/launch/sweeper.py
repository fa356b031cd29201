"""The sweeper (every minute): drives forward every host waiting on our hook whose flow stalled.

A lost status event, a crashed invocation, or a retry with no queue to carry it leaves a host
in Pending:Wait; the sweeper finds it in the own and trusted accounts and runs the same step
as every event does. A run drives at most SWEEP_MAX_HOSTS hosts: the urgent ones first (nearest
heartbeat or budget deadline), then the ones it looked at longest ago, so that hosts stuck for good
cannot starve the others.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

from chalicelib.launch.budget import URGENT_WITHIN_SECONDS, SweepEntry, sweep_order
from chalicelib.launch.decision import WARM_POOL_WAIT
from chalicelib.launch.flow import LifecycleFlow
from chalicelib.launch.groups import Group, all_groups, warm_pool_waiting
from chalicelib.mount.commands import agents_online
from chalicelib.plumbing.accounts import AssumeRoleFailed, AwsAccess, AwsAccounts
from chalicelib.plumbing.events import EventOrigin
from chalicelib.plumbing.observability import count, logger
from chalicelib.plumbing.settings import Settings

# Hosts younger than this are left to their launch event, so the two never race to send a command.
GRACE_SECONDS = 60
# A run has the sweeper's Lambda timeout (60 s, .chalice/config.json). Listing every group of every served
# account and region (a DescribeWarmPool per warm-pool group, on every run) can take most of it with many
# accounts: past LISTING_SECONDS no further place is listed, so the hosts found are driven (the urgent first)
# instead of the run ending in a timeout with none driven; no host is driven past DRIVING_SECONDS. Each run
# begins its listing at another place, so every place comes first in turn.
LISTING_SECONDS = 25
DRIVING_SECONDS = 50


class ListingTimeUp(Exception):
    """The run's listing used its share of the time: what was found is driven."""


def elapsed_since(start: float) -> float:
    """Wall-clock seconds of this run (a seam for tests); a Lambda run is bounded in wall time, not in the
    flow's clock."""
    return time.monotonic() - start


@dataclass(frozen=True)
class Waiting:
    aws: AwsAccess
    group: Group
    instance_id: str


class Sweeper:
    def __init__(self, settings: Settings, accounts: AwsAccounts, flow: LifecycleFlow) -> None:
        self._settings = settings
        self._accounts = accounts
        self._flow = flow
        self._started = time.monotonic()

    def run(self) -> dict[str, Any]:
        self._started = time.monotonic()
        now = self._flow.clock()
        report: dict[str, Any] = {"hosts": {}, "errors": [], "truncated": False}
        hosts: dict[tuple[str, str, str], Waiting] = {}
        entries = []
        for host in self._waiting_hosts(report):
            key = (host.aws.account, host.aws.region, host.instance_id)
            try:
                due, started = self._flow.sweep_deadline(host.aws, host.group.name, host.instance_id, now)
            except Exception as exc:  # noqa: BLE001 - an unreadable host is looked at, not skipped
                logger.warning("sweeper could not time a host; looking at it now", reason=str(exc))
                due, started = now, None
            if started is not None and now - started < GRACE_SECONDS:
                report["hosts"][host.instance_id] = "skipped: launched moments ago"
                continue
            hosts[key] = host
            entries.append(SweepEntry(key, due, self._flow.looked_at(host.aws, host.instance_id)))
        ordered = sweep_order(entries, now)
        budget = self._settings.sweep_max_hosts
        if len(ordered) > budget:
            report["truncated"] = True
            urgent = sum(1 for e in ordered if e.deadline - now <= URGENT_WITHIN_SECONDS)
            if urgent > budget:
                logger.error(
                    "more hosts near their hook's timeout than SWEEP_MAX_HOSTS; raise it or set RETRY_QUEUE_URL",
                    urgent=urgent,
                    sweep_max_hosts=budget,
                )
                count("SweepOverloaded")
        chosen = ordered[:budget]
        # A host whose SSM agent is not online has nothing to send yet: driven only when a heartbeat or its
        # budget is due. One DescribeInstanceInformation per 50 hosts, instead of a step per host.
        relaxed = [hosts[e.key] for e in chosen if e.deadline - now > URGENT_WITHIN_SECONDS]
        offline = self._agents_offline(relaxed, report)
        for index, entry in enumerate(chosen):
            if elapsed_since(self._started) > DRIVING_SECONDS:
                logger.error("sweeper ran out of time; the hosts left are the next run's", left=len(chosen) - index)
                count("SweepOverloaded")
                report["truncated"] = True
                break
            host = hosts[entry.key]
            if entry.key in offline and host.group.instance_states.get(host.instance_id) == "Pending:Wait":
                report["hosts"][host.instance_id] = "waiting: SSM agent not online yet"
                self._flow.saw_waiting_for_agent(host.aws, host.instance_id)
                continue
            report["hosts"][host.instance_id] = self._drive(host)
        return report

    def _agents_offline(self, hosts: list[Waiting], report: dict[str, Any]) -> set[tuple[str, str, str]]:
        """Of the hosts, those whose SSM agent SSM does not report online (none when SSM cannot be asked:
        then every host is driven, as before)."""
        by_place: dict[tuple[str, str], list[Waiting]] = {}
        for host in hosts:
            by_place.setdefault((host.aws.account, host.aws.region), []).append(host)
        offline = set()
        for (account, region), waiting in by_place.items():
            try:
                online = agents_online(waiting[0].aws.client("ssm"), [h.instance_id for h in waiting])
            except Exception as exc:  # noqa: BLE001 - the hosts are driven one by one instead
                logger.warning("sweeper could not ask SSM which agents are online", reason=str(exc))
                report["errors"].append(f"{account} {region}: {exc}")
                continue
            offline |= {(account, region, h.instance_id) for h in waiting if h.instance_id not in online}
        return offline

    def _waiting_hosts(self, report: dict[str, Any]) -> list[Waiting]:
        """Hosts waiting on our hook (in Pending:Wait, or Warmed:Pending:Wait on the way into a warm pool) in
        groups with it, except those whose action we already decided. One account or region that cannot be
        read (not enabled, denied, throttled) is reported and skipped: the others are still swept."""
        found = []
        own = self._accounts.own_account()
        places = [
            (account, region)
            for account in [own, *sorted(self._settings.trusted_accounts - {own})]
            for region in self._settings.sweep_regions
        ]
        first = int(self._flow.clock() // 60) % len(places) if places else 0
        for index, (account, region) in enumerate(places[first:] + places[:first]):
            try:
                aws = self._accounts.for_origin(EventOrigin(account, region))
                self._waiting_in(aws, found)
            except ListingTimeUp:
                logger.error(
                    "sweeper listed only some accounts and regions in its time; the next runs begin with others",
                    listed=index,
                    places=len(places),
                )
                count("SweepOverloaded")
                report["truncated"] = True
                break
            except AssumeRoleFailed as exc:
                logger.error("sweeper cannot act in a trusted account", reason=str(exc), account=account)
                count("AssumeRoleFailures")
                report["errors"].append(str(exc))
            except Exception as exc:  # noqa: BLE001 - one unreadable place must not stop the sweep
                logger.exception(
                    "sweeper cannot list the groups of an account and region", account=account, region=region
                )
                count("SweepErrors")
                report["errors"].append(f"{account} {region}: {exc}")
        return found

    def _waiting_in(self, aws: AwsAccess, found: list[Waiting]) -> None:
        autoscaling = aws.client("autoscaling")
        for group in all_groups(autoscaling):
            if elapsed_since(self._started) > LISTING_SECONDS:
                raise ListingTimeUp
            waiting = sorted(i for i, state in group.instance_states.items() if state == "Pending:Wait")
            # Hosts held by other hooks are none of ours, and cost no part of the budget.
            if not (waiting or group.has_warm_pool) or not self._flow.has_our_hook(aws, group.name):
                continue
            if group.has_warm_pool:
                # DescribeAutoScalingGroups does not list a warm pool's hosts: DescribeWarmPool does.
                warmed = warm_pool_waiting(autoscaling, group.name)
                group = replace(
                    group,
                    instance_states={**group.instance_states, **dict.fromkeys(warmed, WARM_POOL_WAIT)},
                    instance_zones={**group.instance_zones, **warmed},
                )
                waiting += sorted(warmed)
            found += [Waiting(aws, group, i) for i in waiting if not self._flow.known_decided(aws, i)]

    def _drive(self, host: Waiting) -> str:
        aws, group, instance_id = host.aws, host.group, host.instance_id
        try:
            with logger.append_context_keys(account=aws.account, region=aws.region, instance_id=instance_id):
                return self._flow.drive(aws, group.name, instance_id, group=group)
        except Exception as exc:  # one host's trouble must not stop the sweep of the others
            logger.exception("sweeper could not drive a host", instance_id=instance_id, group=group.name)
            count("SweepErrors")
            return f"error: {exc}"
