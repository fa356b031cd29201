"""How a task definition tagged for EFS changes: its tags read into a TaskMount, and the next revision built.

Pure functions over plain data (the DescribeTaskDefinition response shape), so the rewrite
is testable without AWS. The input fields come from the shipped botocore's model of
RegisterTaskDefinition, so output-only fields are dropped; a field newer than that model is
found by `unknown_fields` and refuses the rewrite instead of vanishing.
"""

from __future__ import annotations

import copy
import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chalicelib.mount.attribute import legacy_placement_expression, placement_expression
from chalicelib.mount.spec import (
    DEFAULT_MOUNT_ROOTS,
    MountConfigError,
    access_point_id_from_tags,
    default_mount_path,
    file_system_id_from_tags,
    validate_mount_path,
)

CONTAINER_PATH_TAG = "efs-automount:container-path"
CONTAINERS_TAG = "efs-automount:containers"
READ_ONLY_TAG = "efs-automount:read-only"
MODE_TAG = "efs-automount:mode"
HOST_PATH_TAG = "efs-automount:host-path"
SOURCE_TAG = "efs-automount:source"
DEFAULT_CONTAINER_PATH = "/mnt/efs"
# ECS limits: placement constraints per task definition, tags per resource.
MAX_PLACEMENT_CONSTRAINTS = 10
MAX_TAGS = 50
CONTAINER_PATH = re.compile(r"^/[A-Za-z0-9._/-]{0,255}$")
CONTAINER_NAME = re.compile(r"^[A-Za-z0-9_-]{1,255}$")


class TaskDefinitionClash(ValueError):
    """The revision cannot take the EFS additions without clobbering something; nothing is registered."""


@dataclass(frozen=True)
class TaskMount:
    """What a task definition's tags ask for."""

    file_system_id: str
    container_path: str = DEFAULT_CONTAINER_PATH
    containers: tuple[str, ...] | None = None  # None: every container
    read_only: bool = False
    mode: str = "host"
    host_path: str = ""
    access_point_id: str | None = None

    @property
    def volume_name(self) -> str:
        return f"efs-{self.file_system_id}"

    @property
    def placement_constraint(self) -> dict[str, str]:
        """Host mode: only hosts where the file system is mounted at the host path (the mount attribute)."""
        return {"type": "memberOf", "expression": placement_expression(self.file_system_id, self.host_path)}

    @property
    def legacy_placement_constraint(self) -> dict[str, str]:
        """The constraint releases before the path-id added, whatever the host path."""
        return {"type": "memberOf", "expression": legacy_placement_expression(self.file_system_id)}


def same_path(first: str, second: str) -> bool:
    """Two absolute paths name one directory: `/data/`, `/data//` and `/srv/../data` are all `/data`."""
    return _normalized(first) == _normalized(second)


def _normalized(path: str) -> str:
    # normpath keeps a leading "//" (POSIX leaves it implementation-defined); Linux treats it as "/".
    return posixpath.normpath("/" + path.lstrip("/")) if path.startswith("/") else posixpath.normpath(path)


def tags_as_dict(tags: Iterable[Mapping[str, str]]) -> dict[str, str]:
    return {tag["key"]: tag["value"] for tag in tags}


def default_mode(definition: Mapping[str, Any]) -> str:
    """native for Fargate or revisions EC2 cannot run; host otherwise (contract)."""
    requires = definition.get("requiresCompatibilities") or []
    compatibilities = definition.get("compatibilities")
    if "FARGATE" in requires or (compatibilities is not None and "EC2" not in compatibilities):
        return "native"
    return "host"


def task_mount_from_tags(
    tags: Mapping[str, str], definition: Mapping[str, Any], roots: Sequence[str] = DEFAULT_MOUNT_ROOTS
) -> TaskMount | None:
    """The mount a revision's tags ask for, None without the file system tag; raises MountConfigError.

    The host path follows the group tag's rule (strictly under `roots`, MOUNT_ROOTS), in native mode
    too: a later switch to host mode must not reach any other part of the host."""
    file_system_id = file_system_id_from_tags(tags)
    if file_system_id is None:
        return None
    container_path = tags.get(CONTAINER_PATH_TAG) or DEFAULT_CONTAINER_PATH
    if not CONTAINER_PATH.fullmatch(container_path) or ".." in container_path:
        raise MountConfigError(CONTAINER_PATH_TAG, f"{container_path[:80]!r} is not an absolute path without '..'")
    containers = None
    if tags.get(CONTAINERS_TAG, "").strip():
        containers = tuple(name.strip() for name in tags[CONTAINERS_TAG].split(",") if name.strip())
        bad = [name for name in containers if not CONTAINER_NAME.fullmatch(name)]
        if bad or not containers:
            raise MountConfigError(CONTAINERS_TAG, f"{bad[:3]!r} are not container names")
    read_only_text = tags.get(READ_ONLY_TAG, "false")
    if read_only_text not in ("true", "false"):
        raise MountConfigError(READ_ONLY_TAG, f"{read_only_text[:20]!r} is neither true nor false")
    mode = tags.get(MODE_TAG) or default_mode(definition)
    if mode not in ("host", "native"):
        raise MountConfigError(MODE_TAG, f"{mode[:20]!r} is neither host nor native")
    host_path = tags.get(HOST_PATH_TAG) or default_mount_path(file_system_id)
    validate_mount_path(host_path, HOST_PATH_TAG, roots)
    access_point_id = access_point_id_from_tags(tags)
    return TaskMount(
        file_system_id=file_system_id,
        container_path=container_path,
        containers=containers,
        read_only=read_only_text == "true",
        mode=mode,
        host_path=host_path,
        access_point_id=access_point_id,
    )


def source_standing(source_arn: str, latest_arn: str, latest_tags: Mapping[str, str]) -> str:
    """Where a tagged revision stands in its family, from the family's latest ACTIVE revision:

    - "latest": the source is what deploying by family name runs, so it is rewritten;
    - "rewritten": the latest is the app's rewrite of this very source (a repeated delivery);
    - "superseded": anything else is newer (the user's own revision, tagged or not, or the app's
      rewrite of a newer source); rewriting would make an older definition the latest.

    One look at the latest revision decides, however long the family's history.
    - "in-flight": the latest is the app's rewrite of an older source of the family, which that source's
      own delivery deregisters once it sees this source (a release racing the rewrite): not decided yet.
    """
    if latest_arn == source_arn:
        return "latest"
    rewritten_from = latest_tags.get(SOURCE_TAG)
    if rewritten_from == source_arn:
        return "rewritten"
    if rewritten_from and _same_family_older(rewritten_from, source_arn):
        return "in-flight"
    return "superseded"


def _same_family_older(arn: str, than: str) -> bool:
    try:
        family, revision = arn.rsplit("/", 1)[1].rsplit(":", 1)
        than_family, than_revision = than.rsplit("/", 1)[1].rsplit(":", 1)
        return family == than_family and int(revision) < int(than_revision)
    except (IndexError, ValueError):
        return False


def unknown_fields(raw: Any, parsed: Any, path: str = "") -> list[str]:
    """Keys of a raw JSON response that botocore's parse dropped, because its model does not know them.

    botocore keeps every modelled member and every map key, and leaves out nulls, so a non-null key
    in `raw` without a counterpart in `parsed` is a field the shipped model would lose.
    """
    found: list[str] = []
    if isinstance(raw, dict) and isinstance(parsed, dict):
        for key, value in raw.items():
            if value is None:
                continue
            where = f"{path}.{key}" if path else key
            if key not in parsed:
                found.append(where)
            else:
                found += unknown_fields(value, parsed[key], where)
    elif isinstance(raw, list) and isinstance(parsed, list):
        for index, (raw_item, parsed_item) in enumerate(zip(raw, parsed, strict=False)):
            found += unknown_fields(raw_item, parsed_item, f"{path}[{index}]")
    return found


def _volume(mount: TaskMount) -> dict[str, Any]:
    if mount.mode == "host":
        return {"name": mount.volume_name, "host": {"sourcePath": mount.host_path}}
    configuration: dict[str, Any] = {"fileSystemId": mount.file_system_id, "transitEncryption": "ENABLED"}
    if mount.access_point_id:
        configuration["authorizationConfig"] = {"accessPointId": mount.access_point_id, "iam": "ENABLED"}
    return {"name": mount.volume_name, "efsVolumeConfiguration": configuration}


def mounts_file_system(definition: Mapping[str, Any], mount: TaskMount) -> bool:
    """True when the revision already has a volume for the file system: such a revision is never rewritten."""
    for volume in definition.get("volumes") or []:
        efs = volume.get("efsVolumeConfiguration") or {}
        host = volume.get("host") or {}
        if efs.get("fileSystemId") == mount.file_system_id or (
            host.get("sourcePath") and same_path(host["sourcePath"], mount.host_path)
        ):
            return True
    return False


def rewrite_task_definition(
    definition: Mapping[str, Any],
    tags: list[dict[str, str]],
    mount: TaskMount,
    input_fields: Iterable[str],
) -> dict[str, Any]:
    """The RegisterTaskDefinition request for the next revision: the original plus the EFS additions.

    Raises TaskDefinitionClash when the additions would clobber something in the original.
    """
    return _rewrite(definition, tags, mount, input_fields, mount.placement_constraint)


def _rewrite(
    definition: Mapping[str, Any],
    tags: list[dict[str, str]],
    mount: TaskMount,
    input_fields: Iterable[str],
    placement_constraint: dict[str, str],
) -> dict[str, Any]:
    request = {key: copy.deepcopy(definition[key]) for key in input_fields if key in definition and key != "tags"}
    volumes = list(request.get("volumes") or [])
    if any(volume.get("name") == mount.volume_name for volume in volumes):
        raise TaskDefinitionClash(f"a volume named {mount.volume_name} already exists for something else")
    request["volumes"] = [*volumes, _volume(mount)]

    containers = list(request.get("containerDefinitions") or [])
    names = [container.get("name") for container in containers]
    selected = set(mount.containers) if mount.containers is not None else set(names)
    unknown = sorted(selected - set(names))
    if unknown:
        raise TaskDefinitionClash(f"{CONTAINERS_TAG} names containers the task definition lacks: {unknown}")
    for container in containers:
        if container.get("name") not in selected:
            continue
        points = list(container.get("mountPoints") or [])
        taken = [p for p in points if same_path(p.get("containerPath") or "", mount.container_path)]
        if taken:
            name, volume = container.get("name"), taken[0].get("sourceVolume")
            raise TaskDefinitionClash(f"container {name} already mounts {volume} at {mount.container_path}")
        container["mountPoints"] = [
            *points,
            {"sourceVolume": mount.volume_name, "containerPath": mount.container_path, "readOnly": mount.read_only},
        ]
    request["containerDefinitions"] = containers

    if mount.mode == "host":
        constraints = list(request.get("placementConstraints") or [])
        if placement_constraint not in constraints:
            if len(constraints) >= MAX_PLACEMENT_CONSTRAINTS:
                raise TaskDefinitionClash(
                    f"the task definition already has {len(constraints)} placement constraints, ECS's limit"
                )
            constraints.append(placement_constraint)
        request["placementConstraints"] = constraints

    source_arn = definition["taskDefinitionArn"]
    new_tags = [dict(tag) for tag in tags if tag["key"] != SOURCE_TAG] + [{"key": SOURCE_TAG, "value": source_arn}]
    if len(new_tags) > MAX_TAGS:
        raise TaskDefinitionClash(f"adding {SOURCE_TAG} would exceed ECS's {MAX_TAGS} tags per task definition")
    request["tags"] = new_tags
    return request


def is_rewrite_of(
    candidate: Mapping[str, Any],
    candidate_tags: Mapping[str, str],
    source: Mapping[str, Any],
    source_tags: Mapping[str, str],
    mount: TaskMount,
    input_fields: Iterable[str],
) -> bool:
    """True only when `candidate` (a described revision) is exactly the rewrite `rewrite_task_definition` makes of
    `source` for `mount`, or made before the path-id (its placement constraint the legacy one): the same
    registrable fields and the same tags. Such a rewrite is done, and is never made again.

    The tag `efs-automount:source` alone proves nothing: anyone who may register a revision in the family can
    write it on any content. Before a service is moved from the source to "its rewrite", this is the check.
    Empty values are left out of the comparison, since ECS fills in empty lists (mountPoints, volumesFrom, ...)
    on registration; tags the user cannot set (`aws:`) are ignored.
    """
    if candidate_tags.get(SOURCE_TAG) != source.get("taskDefinitionArn") or candidate.get("family") != source.get(
        "family"
    ):
        return False
    fields = frozenset(input_fields) - {"tags"}
    registered = _without_empty({key: candidate[key] for key in fields if key in candidate})
    constraints = [mount.placement_constraint]
    if mount.mode == "host":
        constraints.append(mount.legacy_placement_constraint)
    for constraint in constraints:
        try:
            expected = _rewrite(
                source, [{"key": k, "value": v} for k, v in source_tags.items()], mount, fields, constraint
            )
        except TaskDefinitionClash:
            return False
        expected_tags = tags_as_dict(expected.pop("tags"))
        if registered == _without_empty(expected) and _settable(candidate_tags) == _settable(expected_tags):
            return True
    return False


def _without_empty(value: Any) -> Any:
    if isinstance(value, Mapping):
        kept = {key: _without_empty(item) for key, item in value.items()}
        return {key: item for key, item in kept.items() if item not in (None, [], {})}
    if isinstance(value, list):
        return [_without_empty(item) for item in value]
    return value


def _settable(tags: Mapping[str, str]) -> dict[str, str]:
    return {key: value for key, value in tags.items() if not key.startswith("aws:")}
