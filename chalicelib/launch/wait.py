"""When each waiting host's wait began, as Auto Scaling reports it, and this container's heartbeats for it.

The start of a host's launch activity is read from AWS (newest activities first, one read serving a whole
burst of a group) and remembered; when no activity can be read, the wait is measured from the first moment this
container saw AWS report the host waiting in this wait, never from an event, a message or a command that may be
of an earlier launch (docs/how-it-works.md).
"""

from __future__ import annotations

from collections.abc import Callable

from botocore.exceptions import ClientError

from chalicelib.launch.budget import heartbeat_due, implausible_time, latest, launch_starts
from chalicelib.launch.groups import Hook
from chalicelib.plumbing.accounts import AwsAccess
from chalicelib.plumbing.memory import MAX_REMEMBERED_HOSTS, BoundedMemory, HostKey, HostMemory
from chalicelib.plumbing.observability import count, logger

# A launch activity's start never changes; a new launch of the same host (a warm pool reused) is read
# afresh before any decision on it.
ACTIVITY_CACHE_SECONDS = 3600
# Pages of DescribeScalingActivities (100 each, newest first) searched for one host's launch.
MAX_ACTIVITY_PAGES = 20
# Shorter than any way out of a wait and into the next one of the same host (in service, back to a warm pool,
# out again): two sights of a host waiting this close together are of one wait. Farther apart, the later one
# may be of a new launch, and an unmeasured wait is measured afresh from it (lifecycle.WARM_POOL_ROUND_TRIP_SECONDS).
SAME_WAIT_SECONDS = 120
# An agent look does not read a group's activities again this soon for a host the last read did not find.
READ_AGAIN_SECONDS = 30


class LaunchWaits:
    """One container's knowledge of waiting hosts' launches: what AWS reported, and its own heartbeats."""

    def __init__(self, hook_name: str, clock: Callable[[], float]) -> None:
        self._hook_name = hook_name
        self._clock = clock
        # Launch activity starts (AWS's) and when they were read.
        self._starts = HostMemory()
        self._starts_read_at = HostMemory()
        # Per group: when its newest activities were last read down to ones already seen, and their ids.
        self._groups_read_at: BoundedMemory[tuple[str, str, str], float] = BoundedMemory()
        self._activities_seen: dict[tuple[str, str, str], set[str]] = {}
        self._heartbeats = HostMemory()
        # When this container first saw the host waiting in this wait, and last saw it waiting: the measure of
        # last resort (docs/how-it-works.md).
        self._first_seen = HostMemory()
        self._last_seen = HostMemory()
        # Hosts whose wait AWS does not measure for us: heartbeated on every look, looked at on every sweep.
        self._unmeasured = HostMemory()

    def first_sight(self, key: HostKey, current: float) -> None:
        """AWS reported the host waiting at `current`. A sight long after the last one may be of a new launch (a
        warm pool reused the host, decided by another container meanwhile): the measure starts again there."""
        last = self._last_seen.get(key)
        if key not in self._first_seen or last is None or current - last > SAME_WAIT_SECONDS:
            self._first_seen.remember(key, current)
        self._last_seen.remember(key, current)

    def since(self, key: HostKey) -> float | None:
        """The moment from which a command counts as one of this launch's: the start of the launch AWS reports,
        else this container's first sight of this wait (later than the true start: an attempt sent before it
        is not counted, and sent again, rather than an earlier launch's counted)."""
        start = self._starts.get(key)
        return start if start is not None else self._first_seen.get(key)

    def last_heartbeat(self, key: HostKey) -> float | None:
        return self._heartbeats.get(key)

    def unmeasured(self, key: HostKey) -> bool:
        return key in self._unmeasured

    def forget(self, key: HostKey) -> None:
        """The host was decided: a warm pool may launch it again, and that launch is measured afresh."""
        for memory in (self._starts, self._first_seen, self._last_seen, self._heartbeats):
            memory.pop(key, None)

    def started(
        self,
        aws: AwsAccess,
        group_name: str,
        instance_id: str,
        hook: Hook,
        fresh: bool = False,
        read_after: float | None = None,
        seen_waiting: bool = True,
    ) -> float | None:
        """When the host's wait began, as AWS reports it: the start of Auto Scaling's launch activity for it
        (which precedes the lifecycle action, so the wait is never under-counted), else this container's first
        sight of this wait. None when neither is known or believable.

        `seen_waiting`: AWS has just reported the host waiting (its group's listing, DescribeAutoScalingInstances).
        A step that has not asked (an agent look, on a hint) only reads the activity: it takes no sight of the
        host, and a host it cannot time raises no alarm (it may wait nowhere)."""
        key = (aws.account, aws.region, instance_id)
        current = self._clock()
        cached = self._starts.get(key)
        # A read of the group's newest activities, down to ones already seen, covers every host whose launch
        # this container knows: a relaunch would have shown on it. One read serves a whole burst.
        group_read_at = self._groups_read_at.get((aws.account, aws.region, group_name), 0) if cached else 0
        read_at = max(self._starts_read_at.get(key, 0), group_read_at)
        stale = current - read_at > ACTIVITY_CACHE_SECONDS or (read_after is not None and read_at < read_after)
        # A host a look cannot find in a group read moments ago is not read for again on every look.
        read_lately = current - self._groups_read_at.get((aws.account, aws.region, group_name), 0) < READ_AGAIN_SECONDS
        if fresh or (stale if cached is not None else seen_waiting or not read_lately):
            self._read_launch_activities(aws, group_name, instance_id, hook, current)
        start = self._starts.get(key)
        if start is None and not seen_waiting:
            return None
        if start is None:
            # Without the launch activity (the member role lacks autoscaling:DescribeScalingActivities, or it
            # is older than the pages read), the wait is measured from this container's first sight of the host
            # waiting in this wait: after the true start, so a wait is never over-counted. Never from a command:
            # the host's first command on record may be of an earlier launch (a warm pool reuses hosts). A lost
            # container restarts the measure, loudly (docs/how-it-works.md).
            self.first_sight(key, current)
            start = self._first_seen[key]
            self._unmeasured.remember(key, current)
            logger.error(
                "no launch activity found for the host; its wait is measured from our first sight of it",
                missing_permission="autoscaling:DescribeScalingActivities",
            )
            count("WaitUnmeasured")
        else:
            self._unmeasured.pop(key, None)
        why = implausible_time(start, current, hook.global_timeout)
        if why is not None:
            logger.warning("start of the host's wait is implausible; ignored", reason=why)
            return None
        return start

    def keep_alive(
        self, aws: AwsAccess, group_name: str, instance_id: str, hook: Hook, started: float | None, current: float
    ) -> None:
        """Heartbeat when due (heartbeat_due)."""
        key = (aws.account, aws.region, instance_id)
        if self.heartbeat_due(key, hook, started, current):
            self.heartbeat(aws, group_name, instance_id, current)

    def heartbeat_due(self, key: HostKey, hook: Hook, started: float | None, current: float) -> bool:
        """Whether the host needs a heartbeat now, by what we know: the launch AWS reports and this container's own
        heartbeats. Nothing a message says can skip one."""
        if key in self._unmeasured:
            started = None  # its action may have begun long before we first saw it
        return heartbeat_due(current, latest(started, self._heartbeats.get(key)), hook)

    def heartbeat(self, aws: AwsAccess, group_name: str, instance_id: str, current: float) -> None:
        key = (aws.account, aws.region, instance_id)
        try:
            aws.client("autoscaling").record_lifecycle_action_heartbeat(
                LifecycleHookName=self._hook_name, AutoScalingGroupName=group_name, InstanceId=instance_id
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ValidationError":
                raise
            return  # decided meanwhile; the next step sees it
        self._heartbeats.remember(key, current)
        logger.info("lifecycle action heartbeat recorded")
        count("HeartbeatsRecorded")

    def _read_launch_activities(
        self, aws: AwsAccess, group_name: str, instance_id: str, hook: Hook, current: float
    ) -> None:
        """Read the group's newest activities until the host's launch is found and every newer activity is one
        already seen (remembering every launch seen, for the other hosts of a burst), or they are older than
        any wait of it can be."""
        group_key = (aws.account, aws.region, group_name)
        seen = self._activities_seen.setdefault(group_key, set())
        if len(seen) > MAX_REMEMBERED_HOSTS:
            seen.clear()
        read_now: set[str] = set()
        # Newest first: once a page holds an activity seen before, every newer one has been read now.
        covered = not seen
        key = (aws.account, aws.region, instance_id)
        pages = aws.client("autoscaling").get_paginator("describe_scaling_activities")
        try:
            for page in pages.paginate(
                AutoScalingGroupName=group_name,
                PaginationConfig={"PageSize": 100, "MaxItems": 100 * MAX_ACTIVITY_PAGES},
            ):
                activities = page.get("Activities", [])
                for found, start in launch_starts(activities).items():
                    if found not in read_now:  # an older launch of the same host never wins over a newer one
                        read_now.add(found)
                        self._starts.remember((aws.account, aws.region, found), start)
                        self._starts_read_at.remember((aws.account, aws.region, found), current)
                ids = {str(a.get("ActivityId", "")) for a in activities}
                covered = covered or bool(ids & seen)
                seen |= ids
                starts = [a["StartTime"].timestamp() for a in activities if "StartTime" in a]
                if not starts or current - min(starts) > hook.global_timeout:
                    break
                if covered and (instance_id in read_now or key in self._starts):
                    break
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in (
                "AccessDenied",
                "AccessDeniedException",
                "UnauthorizedOperation",
            ):
                raise
            logger.error(
                "cannot read the group's scaling activities; deploy the member template again",
                missing_permission="autoscaling:DescribeScalingActivities",
                error=str(exc),
            )
            return
        self._groups_read_at.remember(group_key, current)
