"""What the launch step reads of a group and its file system, cached for one container: the hook, the group's
tags and the mount they ask for, the file system's mount targets and TLS rule, and the configuration problems
that explain a failure. A decision that throws a host away reads the tags of this moment, never the cache.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chalicelib.launch.decision import Asked
from chalicelib.launch.groups import Hook, describe_hook, group_tags
from chalicelib.mount.spec import MountConfigError, MountSpec, failure_result_from_tags, mount_command_parameters
from chalicelib.mount.spec import mount_spec_from_tags as spec_from_tags
from chalicelib.mount.targets import (
    MountTargetNotReady,
    NoMountTarget,
    describe_mount_targets,
    file_system_requires_tls,
    select_mount_target_ip,
)
from chalicelib.plumbing.accounts import AwsAccess
from chalicelib.plumbing.lifecycle_result import LifecycleResult
from chalicelib.plumbing.observability import count, logger
from chalicelib.plumbing.settings import Settings
from chalicelib.plumbing.ttl_cache import TtlCache

# Mount targets and policies change rarely; a scale-out burst asks about the same file system many times.
FILE_SYSTEM_CACHE_SECONDS = 60
HOOK_CACHE_SECONDS = 300
# A burst launches many hosts of one group at once; a tag fixed by an operator applies within a minute.
GROUP_TAG_CACHE_SECONDS = 60

Parameters = dict[str, list[str]]


@dataclass(frozen=True)
class FileSystemAccess:
    """How hosts reach a file system: its mount targets, and whether its policy demands TLS."""

    mount_targets: list[dict[str, Any]]
    requires_tls: bool


class LaunchReads:
    """One container's cached reads of groups and file systems (account, region and name are the keys)."""

    def __init__(self, settings: Settings, clock: Callable[[], float]) -> None:
        self._settings = settings
        self._file_systems: TtlCache[FileSystemAccess] = TtlCache(FILE_SYSTEM_CACHE_SECONDS, clock=clock)
        self._hooks: TtlCache[Hook | None] = TtlCache(HOOK_CACHE_SECONDS, clock=clock)
        self._tags: TtlCache[dict[str, str]] = TtlCache(GROUP_TAG_CACHE_SECONDS, clock=clock)
        self._problems: TtlCache[list[str]] = TtlCache(GROUP_TAG_CACHE_SECONDS, clock=clock)

    def hook(self, aws: AwsAccess, group_name: str) -> Hook | None:
        return self._hooks.get(
            (aws.account, aws.region, group_name),
            lambda: describe_hook(aws.client("autoscaling"), group_name, self._settings.hook_name),
        )

    def group_tags(self, aws: AwsAccess, group_name: str, fresh: bool = False) -> dict[str, str]:
        key = (aws.account, aws.region, group_name)
        if fresh:
            self._tags.forget(key)
        return self._tags.get(key, lambda: group_tags(aws.client("autoscaling"), group_name))

    def asked(self, tags: dict[str, str]) -> Asked:
        """What the tags ask for: the mount and the failure result, or the tag refused (with the failure result
        that applies then: the group's own when it is valid, else the app's)."""
        try:
            failure_result = failure_result_from_tags(tags, self._settings.on_failure)
            return Asked(spec_from_tags(tags, self._settings.mount_roots), failure_result)
        except MountConfigError as exc:
            return Asked(None, self.safe_failure_result(tags), refused=exc)

    def asks_for_a_mount(self, aws: AwsAccess, group_name: str) -> bool:
        """Whether the group's tags (cached) ask for a valid mount."""
        asked = self.asked(self.group_tags(aws, group_name))
        return asked.refused is None and asked.spec is not None

    def group_mount_spec(self, aws: AwsAccess, group_name: str) -> MountSpec | None:
        """The mount the group's tags (cached, as every step reads them) ask for now; None when they ask for none
        or a tag is refused. A host in service is marked only for a mount that is exactly this one."""
        try:
            return spec_from_tags(self.group_tags(aws, group_name), self._settings.mount_roots)
        except MountConfigError:
            return None

    def safe_failure_result(self, tags: dict[str, str]) -> LifecycleResult:
        try:
            return failure_result_from_tags(tags, self._settings.on_failure)
        except MountConfigError:
            return self._settings.on_failure

    def failure_result_now(self, aws: AwsAccess, group_name: str, cached: LifecycleResult) -> LifecycleResult:
        """The failure result the group's tags ask for as AWS reports them now (a cached value may be a
        minute old): a host is thrown away or let in unmounted only on the tag of this moment."""
        fresh = self.safe_failure_result(self.group_tags(aws, group_name, fresh=True))
        if fresh != cached:
            logger.warning("failure result changed since the group's tags were read", was=cached.value, now=fresh.value)
        return fresh

    def mount_parameters(self, aws: AwsAccess, spec: MountSpec, zone: str, fresh: bool = False) -> Parameters:
        """The parameters the app sends a host in `zone` for the mount: its zone's mount target, the file system's
        TLS rule (both cached a minute; `fresh`: read now). Raises NoMountTarget or MountTargetNotReady."""
        file_system = self._file_system(aws, spec.file_system_id, fresh)
        ip = select_mount_target_ip(file_system.mount_targets, spec.file_system_id, zone)
        return mount_command_parameters(spec, aws.region, ip, file_system.requires_tls)

    def parameters_now(
        self, aws: AwsAccess, spec: MountSpec, zone: str, fresh: bool = False
    ) -> Parameters | NoMountTarget | MountTargetNotReady:
        """What the app would send the host now, or why it would send nothing."""
        try:
            return self.mount_parameters(aws, spec, zone, fresh)
        except (NoMountTarget, MountTargetNotReady) as exc:
            return exc

    def problems_now(self, aws: AwsAccess, group_name: str) -> list[str]:
        """The group's configuration problems as the checks find them (cached a minute: a burst of hosts failing
        alike is checked once), so that a failure explains itself (each counted in ConfigurationProblems); none when
        they cannot be read. Only once a host is decided: the checks never hold a decision up."""
        from chalicelib.checks.group_checks import GroupChecks, tagged_groups

        def check() -> list[str]:
            described = tagged_groups(aws, group_name)
            return GroupChecks(self._settings).check(aws, described[0]).findings.problems if described else []

        try:
            problems = self._problems.get((aws.account, aws.region, group_name), check)
        except Exception as exc:  # noqa: BLE001 - the failure is decided either way; the checks only explain it
            logger.warning("could not check the group's configuration", error=str(exc))
            return []
        for problem in problems:
            count("ConfigurationProblems", Rule=problem.split(":", 1)[0])
        return problems

    def _file_system(self, aws: AwsAccess, file_system_id: str, fresh: bool = False) -> FileSystemAccess:
        def load() -> FileSystemAccess:
            efs = aws.client("efs")
            targets = describe_mount_targets(efs, file_system_id)
            return FileSystemAccess(targets, file_system_requires_tls(efs, file_system_id))

        key = (aws.account, aws.region, file_system_id)
        if fresh:
            self._file_systems.forget(key)
        return self._file_systems.get(key, load)
