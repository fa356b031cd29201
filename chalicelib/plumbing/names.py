"""The shapes of AWS names and ids the app accepts, as the service APIs define them.

Match with `fullmatch`: in Python, `$` also matches before a trailing newline.
"""

import re

ACCOUNT_ID = re.compile(r"^\d{12}$")
REGION = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-\d{1,2}$")
INSTANCE_ID = re.compile(r"^i-(?:[0-9a-f]{8}|[0-9a-f]{17})$")
UUID = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
# Auto Scaling group names: 1 to 255 characters, none of them control characters.
GROUP_NAME = re.compile(r"^[^\x00-\x1f\x7f]{1,255}$")
HOOK_NAME = re.compile(r"^[A-Za-z0-9\-_/]{1,255}$")
ROLE_NAME = re.compile(r"^[\w+=,.@-]{1,64}$")
EXTERNAL_ID = re.compile(r"^[\w+=,.@:/-]{2,1224}$")
# https://sqs.<region>.amazonaws.com/<account>/<name> (any https or local endpoint, for tests and demos).
QUEUE_URL = re.compile(r"^https?://[A-Za-z0-9.:-]+/\d{12}/[A-Za-z0-9_-]{1,80}(?:\.fifo)?$")
TABLE_NAME = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")
DOCUMENT_NAME = re.compile(r"^[a-zA-Z0-9_\-.]{3,128}$")
_ARN = r"arn:aws(?:-[a-z]+)*"
CLUSTER_ARN = re.compile(rf"^{_ARN}:ecs:[a-z0-9-]+:\d{{12}}:cluster/[A-Za-z0-9_-]{{1,255}}$")
# Long format names the cluster; the old format does not. Ids are 32 hex digits or a UUID.
CONTAINER_INSTANCE_ARN = re.compile(
    rf"^{_ARN}:ecs:[a-z0-9-]+:\d{{12}}:container-instance/(?:[A-Za-z0-9_-]{{1,255}}/)?[0-9a-f-]{{32,36}}$"
)
TASK_DEFINITION_ARN = re.compile(rf"^{_ARN}:ecs:[a-z0-9-]+:\d{{12}}:task-definition/[A-Za-z0-9_-]{{1,255}}:\d{{1,9}}$")
TASK_DEFINITION_FAMILY = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
# A mount path component: never '.' or '..' nor containing '..'. Written without lookarounds, which
# not every regular expression engine (SSM's allowedPattern) has.
PATH_COMPONENT = r"\.?[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\.?"
# A directory mount paths must lie strictly under (the MOUNT_ROOTS setting), and the default ones.
MOUNT_ROOT = re.compile(rf"^(?:/{PATH_COMPONENT}){{1,16}}$")
DEFAULT_MOUNT_ROOTS = ("/mnt", "/srv", "/data", "/efs", "/media")
