"""The ECS attribute that marks a host's mount, and the placement constraint that asks for it: one name for
the host side (host_record, repair) and the task side (task_definition). Pure functions over plain data.

The name is `efs-automount.<file-system-id>.<path-id>`, `<path-id>` the first 12 hex digits of the SHA-256
of the mount path's UTF-8 bytes; the value is the path. ECS allows a name of 1 to 128 letters, digits,
hyphens, underscores, slashes, back slashes and periods
(https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_Attribute.html); this one uses letters,
digits, hyphens and periods, 47 characters at most. The cluster query language's subject is
`attribute:<attribute-name>` and `exists` takes no argument
(https://docs.aws.amazon.com/AmazonECS/latest/developerguide/cluster-query-language.html), and AWS's own
examples put names of these characters there as they are (`attribute:ecs.instance-type =~ t2.*`,
https://docs.aws.amazon.com/AmazonECS/latest/developerguide/constraint-examples.html). ECS documents no
character set for the literals an `==` compares, so the path is in the name, never an argument.
"""

from __future__ import annotations

import hashlib
import re

ATTRIBUTE_PREFIX = "efs-automount."
PATH_ID_HEX_DIGITS = 12
# The attribute as this release names it; an earlier release's `efs-automount.<fs>` does not match.
MOUNT_ATTRIBUTE_NAME = re.compile(r"efs-automount\.fs-(?:[0-9a-f]{8}|[0-9a-f]{17})\.[0-9a-f]{12}")


def path_id(mount_path: str) -> str:
    return hashlib.sha256(mount_path.encode("utf-8")).hexdigest()[:PATH_ID_HEX_DIGITS]


def mount_attribute_name(file_system_id: str, mount_path: str) -> str:
    """The attribute on a host where the file system is mounted at the path (its value: the path)."""
    return f"{ATTRIBUTE_PREFIX}{file_system_id}.{path_id(mount_path)}"


def placement_expression(file_system_id: str, host_path: str) -> str:
    """The memberOf expression of a host-mode task that bind-mounts the file system's mount at the host path."""
    return f"attribute:{mount_attribute_name(file_system_id, host_path)} exists"


def legacy_attribute_name(file_system_id: str) -> str:
    """The attribute releases before the path-id set, whatever the path: hosts mounted then still carry it, and
    the revisions they rewrote still ask for it (legacy_placement_expression)."""
    return f"{ATTRIBUTE_PREFIX}{file_system_id}"


def legacy_placement_expression(file_system_id: str) -> str:
    return f"attribute:{legacy_attribute_name(file_system_id)} exists"
