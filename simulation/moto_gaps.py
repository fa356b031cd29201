"""What moto lacks for efs-automount, filled in as AWS documents it. Test and simulation code only.

`install()` extends moto in this process, so the in-process `mock_aws` of the tests and
the ThreadedMotoServer of the demo behave alike:

- Auto Scaling: a host launched into a group with a launch lifecycle hook waits in
  Pending:Wait and an `EC2 Instance-launch Lifecycle Action` event is emitted per hook;
  CompleteLifecycleAction (CONTINUE puts it in service, ABANDON terminates it; an action
  already decided raises ValidationError "No active Lifecycle Action found ...") and
  RecordLifecycleActionHeartbeat exist.
- SSM: SSM agents register per host (`register_agent`); DescribeInstanceInformation
  reports them; SendCommand checks the document, its parameters' allowedPattern and that
  every host is a managed instance (InvalidInstanceId), and leaves the command InProgress
  until `finish_invocation` answers as the host's agent would, which emits the
  `EC2 Command Invocation Status-change Notification`; ListCommandInvocations exists; a
  document's version may be named `$DEFAULT`.
- STS: AssumeRole needs the role to exist and its trust policy's sts:ExternalId to match.
- ECS: RegisterContainerInstance emits an `ECS Container Instance State Change` event, and
  RegisterTaskDefinition the `AWS API Call via CloudTrail` event a trail would;
  ListContainerInstances honours the `ec2InstanceId == i-...` filter.
- EFS: access point ids have AWS's shape (fsap- and 17 hex digits).
- Auto Scaling keeps a scaling activity per launch (DescribeScalingActivities, newest first,
  paginated), a lifecycle action times out into the hook's DefaultResult (`expire_actions`),
  and a host can be made to leave a warm pool (`leave_warm_pool`) or to launch into one
  (`enter_warm_pool`).

Time in this world is `WORLD.clock` (real time, or a test's clock that lets hours pass).

Events AWS would put on the default event bus are appended to `WORLD.outbox`.
"""

from __future__ import annotations

import datetime
import json
import re
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from moto.autoscaling import models as asg_models
from moto.autoscaling.exceptions import ValidationError as AsgValidationError
from moto.autoscaling.responses import AutoScalingResponse
from moto.core.exceptions import ServiceException
from moto.core.responses import ActionResult, EmptyResult
from moto.ecs import exceptions as ecs_exceptions
from moto.ecs import models as ecs_models
from moto.ecs.responses import EC2ContainerServiceResponse
from moto.efs import models as efs_models
from moto.iam.models import iam_backends
from moto.ssm import models as ssm_models
from moto.ssm.responses import SimpleSystemManagerResponse
from moto.sts import models as sts_models

LAUNCHING = "autoscaling:EC2_INSTANCE_LAUNCHING"
FINAL_STATUSES = ("Success", "Failed", "TimedOut", "Cancelled")


class SsmError(ServiceException):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)


@dataclass
class PendingAction:
    token: str
    hook_name: str
    group_name: str
    instance_id: str
    heartbeats: int = 0
    # WORLD.clock times: when the action began and when it was last heartbeated, for expire_actions.
    started_at: float = 0.0
    heartbeat_at: float = 0.0
    heartbeat_timeout: int = 3600
    default_result: str = "ABANDON"


@dataclass
class World:
    """The state moto does not keep, per (account, region, instance id)."""

    actions: dict[tuple[str, str, str], PendingAction] = field(default_factory=dict)
    decided: dict[tuple[str, str, str], str] = field(default_factory=dict)
    agents: dict[tuple[str, str, str], str] = field(default_factory=dict)
    outbox: list[dict[str, Any]] = field(default_factory=list)
    # Every lifecycle action completed, in order: (account, region, instance id, result).
    completions: list[tuple[str, str, str, str]] = field(default_factory=list)
    # Actions the hook's timeout decided (nobody completed them in time): (account, region, instance id).
    timed_out: list[tuple[str, str, str]] = field(default_factory=list)
    # Scaling activities per (account, region), oldest first, as DescribeScalingActivities reports them.
    activities: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    clock: Callable[[], float] = time.time
    lock: threading.RLock = field(default_factory=threading.RLock)

    def reset(self) -> None:
        with self.lock:
            self.clock = time.time
            self.timed_out.clear()
            self.activities.clear()
            self.actions.clear()
            self.decided.clear()
            self.agents.clear()
            self.outbox.clear()
            self.completions.clear()

    def emit(
        self, account: str, region: str, source: str, detail_type: str, detail: dict[str, Any], resources: list[str]
    ) -> None:
        with self.lock:
            self.outbox.append(
                {
                    "version": "0",
                    "id": str(uuid.uuid4()),
                    "detail-type": detail_type,
                    "source": source,
                    "account": account,
                    "time": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "region": region,
                    "resources": resources,
                    "detail": detail,
                }
            )

    def drain(self) -> list[dict[str, Any]]:
        with self.lock:
            events, self.outbox[:] = list(self.outbox), []
            return events


WORLD = World()
_installed = False


def register_agent(account: str, region: str, instance_id: str, ping_status: str = "Online") -> None:
    """The host's SSM agent has registered (or changed its ping status)."""
    with WORLD.lock:
        WORLD.agents[(account, region, instance_id)] = ping_status


def pending_action(account: str, region: str, instance_id: str) -> PendingAction | None:
    return WORLD.actions.get((account, region, instance_id))


def decided_result(account: str, region: str, instance_id: str) -> str | None:
    return WORLD.decided.get((account, region, instance_id))


# --- Auto Scaling -------------------------------------------------------------------------


def _launch_hooks(group: Any) -> list[Any]:
    backend = group.autoscaling_backend
    return [
        hook
        for hook in backend.lifecycle_hooks.values()
        if hook.auto_scaling_group_name == group.name and hook.lifecycle_transition == LAUNCHING
    ]


def _replace_instances(original: Any) -> Any:
    def replace_autoscaling_group_instances(self: Any, count_needed: int, propagated_tags: dict[str, str]) -> None:
        before = {state.instance.id for state in self.instance_states}
        original(self, count_needed, propagated_tags)
        hooks = _launch_hooks(self)
        if not hooks:
            return
        backend = self.autoscaling_backend
        for state in self.instance_states:
            if state.instance.id in before:
                continue
            state.lifecycle_state = "Pending:Wait"
            now = WORLD.clock()
            _record_activity(backend, self.name, f"Launching a new EC2 instance: {state.instance.id}", now)
            for hook in hooks:
                action = PendingAction(
                    str(uuid.uuid4()),
                    hook.name,
                    self.name,
                    state.instance.id,
                    started_at=now,
                    heartbeat_at=now,
                    heartbeat_timeout=int(hook.heartbeat_timeout or 3600),
                    default_result=hook.default_result or "ABANDON",
                )
                with WORLD.lock:
                    WORLD.actions[(backend.account_id, backend.region_name, state.instance.id)] = action
                WORLD.emit(
                    backend.account_id,
                    backend.region_name,
                    "aws.autoscaling",
                    "EC2 Instance-launch Lifecycle Action",
                    {
                        "Origin": "EC2",
                        "Destination": "AutoScalingGroup",
                        "LifecycleActionToken": action.token,
                        "AutoScalingGroupName": self.name,
                        "LifecycleHookName": hook.name,
                        "EC2InstanceId": state.instance.id,
                        "LifecycleTransition": LAUNCHING,
                    },
                    [self.arn],
                )

    return replace_autoscaling_group_instances


def _record_activity(backend: Any, group_name: str, description: str, start: float) -> None:
    # As AWS records one activity per launch, described "Launching a new EC2 instance: i-…" (and
    # "… into warm pool: i-…" / "… from warm pool: i-…" with a warm pool); its StartTime is when
    # Auto Scaling began the launch.
    activity = {
        "ActivityId": str(uuid.uuid4()),
        "AutoScalingGroupName": group_name,
        "Description": description,
        "Cause": f"At {_iso(start)} an instance was started in response to a difference between desired and "
        "actual capacity.",
        "StartTime": datetime.datetime.fromtimestamp(start, datetime.UTC),
        "StatusCode": "InProgress",
        "Progress": 30,
        "Details": "{}",
    }
    with WORLD.lock:
        WORLD.activities.setdefault((backend.account_id, backend.region_name), []).append(activity)


def _iso(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def describe_scaling_activities(self: AutoScalingResponse) -> ActionResult:
    """DescribeScalingActivities (moto returns none). AWS: "Activities are sorted by start time.
    Activities still in progress are described first"; MaxRecords defaults to 100 (at most 100), and a
    NextToken pages on (https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_DescribeScalingActivities.html)."""
    backend = self.autoscaling_backend
    group_name = self._get_param("AutoScalingGroupName")
    wanted_ids = set(self._get_param("ActivityIds") or [])
    size = min(int(self._get_param("MaxRecords") or 100), 100)
    offset = int(self._get_param("NextToken") or 0)
    with WORLD.lock:
        activities = [
            dict(a)
            for a in WORLD.activities.get((backend.account_id, backend.region_name), [])
            if (group_name is None or a["AutoScalingGroupName"] == group_name)
            and (not wanted_ids or a["ActivityId"] in wanted_ids)
        ]
    activities.sort(key=lambda a: a["StartTime"], reverse=True)
    page = activities[offset : offset + size]
    result: dict[str, Any] = {"Activities": page}
    if offset + size < len(activities):
        result["NextToken"] = str(offset + size)
    return ActionResult(result)


def leave_warm_pool(account: str, region: str, instance_id: str, warmed_at: float) -> None:
    """Make a just-launched host one that was launched into the warm pool at `warmed_at` and now leaves it:
    its EC2 launch time and an "into warm pool" activity lie back then, the "from warm pool" activity and
    its launch action begin now, and its launch event says Origin WarmPool."""
    backend = asg_models.autoscaling_backends[account][region]
    with WORLD.lock:
        for activity in WORLD.activities.get((account, region), []):
            if activity["Description"].endswith(f": {instance_id}"):
                activity["Description"] = f"Launching a new EC2 instance from warm pool: {instance_id}"
                group_name = activity["AutoScalingGroupName"]
        for event in WORLD.outbox:
            if event["detail"].get("EC2InstanceId") == instance_id:
                event["detail"]["Origin"] = "WarmPool"
    _record_activity(backend, group_name, f"Launching a new EC2 instance into warm pool: {instance_id}", warmed_at)
    instance = backend.ec2_backend.get_instance(instance_id)
    # moto keeps a naive UTC datetime here.
    instance.launch_time = datetime.datetime.fromtimestamp(warmed_at, datetime.UTC).replace(tzinfo=None)


def enter_warm_pool(account: str, region: str, instance_id: str) -> None:
    """Make a just-launched host one that launches into the group's warm pool: with a launch hook it waits
    in Warmed:Pending:Wait ("When you add a launch lifecycle hook, Amazon EC2 Auto Scaling pauses an
    instance that transitions to the Warmed:Pending:Wait state and the Pending:Wait state",
    https://docs.aws.amazon.com/autoscaling/ec2/userguide/warm-pool-instance-lifecycle.html), which
    DescribeAutoScalingInstances reports (AutoScalingInstanceDetails.LifecycleState, "Warmed:Pending:Wait",
    https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_AutoScalingInstanceDetails.html), and its
    launch event says Destination WarmPool. CONTINUE then leaves it stopped in the pool (Warmed:Stopped)."""
    backend = asg_models.autoscaling_backends[account][region]
    for group in backend.autoscaling_groups.values():
        for state in group.instance_states:
            if state.instance.id == instance_id:
                state.lifecycle_state = "Warmed:Pending:Wait"
                if group.warm_pool is None:
                    group.put_warm_pool(None, 0, "Stopped", None)
    with WORLD.lock:
        for event in WORLD.outbox:
            if event["detail"].get("EC2InstanceId") == instance_id:
                event["detail"]["Destination"] = "WarmPool"


def hold_by_another_hook(account: str, region: str, instance_id: str) -> None:
    """After our hook's action was decided, another launch hook of the group still holds the host in
    Pending:Wait (each hook has its own action; the host moves on when all are complete)."""
    backend = asg_models.autoscaling_backends[account][region]
    for group in backend.autoscaling_groups.values():
        for state in group.instance_states:
            if state.instance.id == instance_id:
                state.lifecycle_state = "Pending:Wait"


def expire_actions() -> list[tuple[str, str, str]]:
    """Let the hook's timeouts act: "If the lifecycle hook times out, Amazon EC2 Auto Scaling performs the
    action that you specified in the DefaultResult property" after HeartbeatTimeout seconds without a
    heartbeat (https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_LifecycleHook.html).
    Returns the actions that timed out now."""
    now = WORLD.clock()
    with WORLD.lock:
        expired = [
            (key, action)
            for key, action in WORLD.actions.items()
            if now - action.heartbeat_at > action.heartbeat_timeout
        ]
    for key, action in expired:
        backend = asg_models.autoscaling_backends[key[0]][key[1]]
        _decide(backend, action, action.default_result)
        WORLD.timed_out.append(key)
    return [key for key, _ in expired]


def _active_instances(self: Any) -> list[Any]:
    # Hosts waiting on a hook count toward the desired capacity, as in AWS.
    return [x for x in self.instance_states if x.lifecycle_state in ("InService", "Pending", "Pending:Wait")]


def _find_action(backend: Any, params: dict[str, Any], operation: str) -> PendingAction:
    instance_id = params.get("InstanceId")
    token = params.get("LifecycleActionToken")
    with WORLD.lock:
        candidates = [
            (key, action)
            for key, action in WORLD.actions.items()
            if key[:2] == (backend.account_id, backend.region_name)
            and (instance_id is None or action.instance_id == instance_id)
            and (token is None or action.token == token)
            and action.hook_name == params.get("LifecycleHookName")
            and action.group_name == params.get("AutoScalingGroupName")
        ]
    if not instance_id and not token:
        raise AsgValidationError("InstanceId or LifecycleActionToken is required")
    if not candidates:
        what = f"instance ID {instance_id}" if instance_id else f"token {token}"
        raise AsgValidationError(f"No active Lifecycle Action found with {what}")
    return candidates[0][1]


def complete_lifecycle_action(self: AutoScalingResponse) -> EmptyResult:
    params = self._get_params()
    backend = self.autoscaling_backend
    result = params.get("LifecycleActionResult")
    if result not in ("CONTINUE", "ABANDON"):
        raise AsgValidationError("LifecycleActionResult must be CONTINUE or ABANDON")
    action = _find_action(backend, params, "CompleteLifecycleAction")
    _decide(backend, action, result)
    return EmptyResult()


def _decide(backend: Any, action: PendingAction, result: str) -> None:
    key = (backend.account_id, backend.region_name, action.instance_id)
    with WORLD.lock:
        del WORLD.actions[key]
        WORLD.decided[key] = result
        WORLD.completions.append((*key, result))
    group = backend.autoscaling_groups[action.group_name]
    state = next(s for s in group.instance_states if s.instance.id == action.instance_id)
    if result == "CONTINUE":
        warmed = state.lifecycle_state.startswith("Warmed:")
        state.lifecycle_state = "Warmed:Stopped" if warmed else "InService"
    else:
        group.instance_states.remove(state)
        backend.ec2_backend.terminate_instances([action.instance_id])


def record_lifecycle_action_heartbeat(self: AutoScalingResponse) -> EmptyResult:
    action = _find_action(self.autoscaling_backend, self._get_params(), "RecordLifecycleActionHeartbeat")
    action.heartbeats += 1
    action.heartbeat_at = WORLD.clock()
    return EmptyResult()


# --- SSM ------------------------------------------------------------------------------------


# A document version may be named $DEFAULT as well as $LATEST or a number (GetDocument's DocumentVersion, pattern
# ([$]LATEST|[$]DEFAULT|^[1-9][0-9]*$), https://docs.aws.amazon.com/systems-manager/latest/APIReference/
# API_GetDocument.html); moto looks $DEFAULT up as a version number and finds none.
def _find_document(original: Any) -> Any:
    def find(self: Any, document_version: str | None = None, *args: Any, **kwargs: Any) -> Any:
        return original(self, None if document_version == "$DEFAULT" else document_version, *args, **kwargs)

    return find


def describe_instance_information(self: SimpleSystemManagerResponse) -> ActionResult:
    wanted: set[str] | None = None
    filters = (self._get_param("Filters") or []) + (self._get_param("InstanceInformationFilterList") or [])
    for item in filters:
        if item.get("Key") in ("InstanceIds", "InstanceId"):
            wanted = set(item.get("Values") or item.get("valueSet") or [])
    backend = self.ssm_backend
    with WORLD.lock:
        agents = [
            (key[2], status)
            for key, status in WORLD.agents.items()
            if key[:2] == (backend.account_id, backend.region_name) and (wanted is None or key[2] in wanted)
        ]
    info = [
        {
            "InstanceId": instance_id,
            "PingStatus": status,
            "PlatformType": "Linux",
            "PlatformName": "Amazon Linux",
            "AgentVersion": "3.3.2746.0",
            "ResourceType": "EC2Instance",
        }
        for instance_id, status in sorted(agents)
    ]
    return ActionResult({"InstanceInformationList": info})


def _check_parameters(document: Any, parameters: dict[str, list[str]]) -> None:
    declared = json.loads(document.content).get("parameters", {}) if document.document_format == "JSON" else {}
    for name in parameters:
        if name not in declared:
            raise SsmError("InvalidParameters", f"Parameter {name} is not declared by document {document.name}")
    for name, spec in declared.items():
        values = parameters.get(name)
        if values is None:
            if "default" not in spec:
                raise SsmError("InvalidParameters", f"Parameter {name} is required by document {document.name}")
            continue
        pattern = spec.get("allowedPattern")
        for value in values:
            if pattern is not None and not re.search(pattern, value):
                raise SsmError("InvalidParameters", f"Parameter {name} value fails allowedPattern {pattern}")


# SendCommand's DocumentVersion: "$DEFAULT, $LATEST, or a specific version number"
# (https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_SendCommand.html); the Command that
# ListCommands returns carries it (Command.DocumentVersion, "The Systems Manager document (SSM document) version",
# https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_Command.html). moto drops it: the response
# hands it to the backend here, and a command that named none reports "$DEFAULT" (the app accepts "" too).
_requested_version = threading.local()


def _send_command_response(original: Any) -> Any:
    def send_command(self: SimpleSystemManagerResponse) -> Any:
        _requested_version.value = self._get_param("DocumentVersion")
        try:
            return original(self)
        finally:
            _requested_version.value = None

    return send_command


def _command_response_object(original: Any) -> Any:
    def response_object(self: Any) -> dict[str, Any]:
        return {**original(self), "DocumentVersion": getattr(self, "document_version", "$DEFAULT")}

    return response_object


def _send_command(original: Any) -> Any:
    def send_command(self: Any, **kwargs: Any) -> Any:
        document_name = kwargs.get("document_name")
        documents = self._documents.get(document_name)
        if documents is None:
            raise SsmError("InvalidDocument", f"Document {document_name} does not exist in this account and region")
        version = getattr(_requested_version, "value", None) or "$DEFAULT"
        document = documents.get_default_version() if version == "$DEFAULT" else documents.find(version)
        _check_parameters(document, kwargs.get("parameters") or {})
        with WORLD.lock:
            for instance_id in kwargs.get("instance_ids") or []:
                if (self.account_id, self.region_name, instance_id) not in WORLD.agents:
                    raise SsmError("InvalidInstanceId", f"Instances [[{instance_id}]] not in a valid state for account")
        requested = list(dict.fromkeys(kwargs.get("instance_ids") or []))
        command = original(self, **kwargs)
        command.document_version = version
        # SSM stamps a command with the time it was requested: in this world, WORLD.clock (moto uses real time).
        expires_in = command.expires_after - command.requested_date_time
        command.requested_date_time = datetime.datetime.fromtimestamp(WORLD.clock(), datetime.UTC).replace(tzinfo=None)
        command.expires_after = command.requested_date_time + expires_in
        if requested:
            # moto adds every instance in the region when Targets is empty; AWS runs on InstanceIds only.
            command.instance_ids = requested
            command.invocations = [command.invocation_response(i, "mountEfs") for i in command.instance_ids]
            command.target_count = len(command.instance_ids)
        command.status = "InProgress"
        command.status_details = "InProgress"
        command.completed_count = 0
        for invocation in command.invocations:
            invocation.update(Status="InProgress", StatusDetails="InProgress", ResponseCode=-1, PluginName="mountEfs")
        return command

    return send_command


def finish_invocation(
    account: str,
    region: str,
    command_id: str,
    instance_id: str,
    status: str,
    response_code: int = 0,
    output: str = "",
    emit: bool = True,
) -> None:
    """Answer a command as the host's SSM agent would: the invocation ends, and SSM emits its event."""
    assert status in FINAL_STATUSES, status
    backend = ssm_models.ssm_backends[account][region]
    command = backend.get_command_by_id(command_id)
    invocation = command.get_invocation(instance_id, None)
    invocation.update(Status=status, StatusDetails=status, ResponseCode=response_code, StandardOutputContent=output)
    if all(i["Status"] in FINAL_STATUSES for i in command.invocations):
        statuses = {i["Status"] for i in command.invocations}
        command.status = "Success" if statuses == {"Success"} else next(iter(statuses - {"Success"}))
        command.status_details = command.status
        command.completed_count = len(command.invocations)
        command.error_count = sum(1 for i in command.invocations if i["Status"] != "Success")
    if emit:
        WORLD.emit(
            account,
            region,
            "aws.ssm",
            "EC2 Command Invocation Status-change Notification",
            {
                "command-id": command_id,
                "document-name": command.document_name,
                "instance-id": instance_id,
                "requested-date-time": command.requested_date_time.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "status": status,
                "status-details": status,
            },
            [f"arn:aws:ec2:{region}:{account}:instance/{instance_id}"],
        )


def list_command_invocations(self: SimpleSystemManagerResponse) -> ActionResult:
    command_id, instance_id = self._get_param("CommandId"), self._get_param("InstanceId")
    commands = self.ssm_backend.list_commands(command_id, None)
    invocations = [
        dict(invocation)
        for command in commands
        for invocation in command.invocations
        if instance_id is None or invocation["InstanceId"] == instance_id
    ]
    return ActionResult({"CommandInvocations": invocations})


def cancel_command(self: SimpleSystemManagerResponse) -> ActionResult:
    """CancelCommand: "Attempts to cancel the command specified by the Command ID. There is no guarantee that
    the command will be terminated" (https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_CancelCommand.html);
    InstanceIds: "If not provided, the command is canceled on every instance on which it was requested". Here an
    invocation still running ends Cancelled (with its status event), a finished one is left as it ended."""
    command_id, instance_ids = self._get_param("CommandId"), self._get_param("InstanceIds")
    command = self.ssm_backend.get_command_by_id(command_id)
    for invocation in list(command.invocations):
        if (not instance_ids or invocation["InstanceId"] in instance_ids) and invocation[
            "Status"
        ] not in FINAL_STATUSES:
            finish_invocation(self.current_account, self.region, command_id, invocation["InstanceId"], "Cancelled", -1)
    return EmptyResult()


# A warm pool's hosts are the pool's, not the group's: DescribeWarmPool "Gets information about a warm pool and
# its instances" (https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_DescribeWarmPool.html), while the
# group's description counts them apart (AutoScalingGroup.WarmPoolSize, "The current size of the warm pool",
# https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_AutoScalingGroup.html) and its Instances hold the
# group's own. moto lists every host under the group and none under the pool.
def _group_instances(group: Any) -> list[Any]:
    return [s for s in group.instance_states if not s.lifecycle_state.startswith("Warmed:")]


def describe_warm_pool(self: AutoScalingResponse) -> ActionResult:
    group_name = self._get_param("AutoScalingGroupName")
    group = self.autoscaling_backend.describe_auto_scaling_groups([group_name])[0]
    warmed = [s for s in group.instance_states if s.lifecycle_state.startswith("Warmed:")]
    return ActionResult({"WarmPoolConfiguration": group.get_warm_pool(), "Instances": warmed})


# --- EFS ------------------------------------------------------------------------------------


# AWS creates access point ids of fsap- and 17 hex digits, the shape the group tag efs-automount:access-point-id
# accepts (the API allows 8 to 40: DescribeAccessPoints' AccessPointId pattern,
# https://docs.aws.amazon.com/efs/latest/ug/API_DescribeAccessPoints.html); moto makes fsap- and 8, which no group
# could name. Renamed before moto files the access point under its id.
def _access_point_init(original: Any) -> Any:
    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        aws_id = f"fsap-{uuid.uuid4().hex[:17]}"
        self.access_point_arn = self.access_point_arn.replace(self.access_point_id, aws_id)
        self.access_point_id = aws_id

    return init


# --- STS ------------------------------------------------------------------------------------


class AccessDenied(ServiceException):
    code = "AccessDenied"


def _required_external_ids(trust_policy: dict[str, Any]) -> set[str] | None:
    required: set[str] = set()
    for statement in trust_policy.get("Statement", []):
        values = statement.get("Condition", {}).get("StringEquals", {}).get("sts:ExternalId")
        if values is not None:
            required |= {values} if isinstance(values, str) else set(values)
    return required or None


def _assume_role(original: Any) -> Any:
    # moto lets anyone assume any role, existing or not; AWS needs the role and its trust conditions.
    def assume_role(self: Any, **kwargs: Any) -> Any:
        role_arn = kwargs["role_arn"]
        account, name = role_arn.split(":")[4], role_arn.split("/")[-1]
        denied = AccessDenied(f"User is not authorized to perform: sts:AssumeRole on resource: {role_arn}")
        try:
            role = iam_backends[account]["aws"].get_role(name)
        except Exception:
            raise denied from None
        document = role.assume_role_policy_document
        trust = json.loads(document if document.lstrip().startswith("{") else urllib.parse.unquote(document))
        required = _required_external_ids(trust)
        if required is not None and kwargs.get("external_id") not in required:
            raise denied
        return original(self, **kwargs)

    return assume_role


# --- ECS ------------------------------------------------------------------------------------


def _register_container_instance(original: Any) -> Any:
    def register_container_instance(self: Any, cluster_name: str, ec2_instance_id: str) -> Any:
        container_instance = original(self, cluster_name, ec2_instance_id)
        cluster = self.clusters[cluster_name.split("/")[-1]]
        WORLD.emit(
            self.account_id,
            self.region_name,
            "aws.ecs",
            "ECS Container Instance State Change",
            {
                "agentConnected": True,
                "attributes": [{"name": k, "value": v} for k, v in container_instance.attributes.items()],
                "clusterArn": cluster.arn,
                "containerInstanceArn": container_instance.container_instance_arn,
                "ec2InstanceId": ec2_instance_id,
                "registeredResources": [],
                "remainingResources": [],
                "status": "ACTIVE",
                "version": 1,
                "versionInfo": {},
                "updatedAt": datetime.datetime.now(datetime.UTC).isoformat(),
            },
            [container_instance.container_instance_arn],
        )
        return container_instance

    return register_container_instance


EC2_INSTANCE_FILTER = re.compile(r"\s*ec2InstanceId\s*==\s*(i-[0-9a-f]+)\s*")
# `attribute:<name> exists`, the placement constraint a host-mode rewrite adds; a name of the characters ECS
# allows in attribute names (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_Attribute.html).
ATTRIBUTE_EXISTS_FILTER = re.compile(r"\s*attribute:([A-Za-z0-9_./\\-]{1,128})\s+exists\s*")


def _list_container_instances(original: Any) -> Any:
    # moto ignores `filter`. AWS evaluates it as cluster query language, where `ec2InstanceId` is an
    # attribute a container instance can be matched on ("ec2InstanceId == i-…"):
    # https://docs.aws.amazon.com/AmazonECS/latest/developerguide/cluster-query-language.html. Only that
    # expression and `attribute:<name> exists` (what placement asks of a host, for the tests to read back which
    # hosts ECS would place a task on) are needed here; any other filter is refused rather than silently ignored.
    def list_container_instances(self: Any, cluster_str: str, status: str | None = None, filter: str | None = None):
        arns = original(self, cluster_str, status=status)
        if not filter:
            return arns
        by_instance, by_attribute = EC2_INSTANCE_FILTER.fullmatch(filter), ATTRIBUTE_EXISTS_FILTER.fullmatch(filter)
        if by_instance is None and by_attribute is None:
            raise NotImplementedError(f"cluster query language filter {filter!r} is not simulated")
        cluster = cluster_str.split("/")[-1]
        instances = self.container_instances.get(cluster, {})

        def admitted(instance: Any) -> bool:
            if by_instance is not None:
                return bool(instance.ec2_instance_id == by_instance.group(1))
            return by_attribute.group(1) in instance.attributes

        return [
            arn
            for arn in arns
            if instances.get(arn.split("/")[-1]) is not None and admitted(instances[arn.split("/")[-1]])
        ]

    return list_container_instances


def _list_container_instances_response(self: Any) -> ActionResult:
    cluster_str = self._get_param("cluster", "default")
    arns = self.ecs_backend.list_container_instances(cluster_str, self._get_param("status"), self._get_param("filter"))
    return ActionResult({"containerInstanceArns": arns})


def _register_task_definition(original: Any) -> Any:
    # As with a CloudTrail trail recording management events: every registration reaches EventBridge.
    def register_task_definition(self: Any, family: str, container_definitions: list[dict[str, Any]], **kwargs: Any):
        definition = original(self, family, container_definitions, **kwargs)
        WORLD.emit(
            self.account_id,
            self.region_name,
            "aws.ecs",
            "AWS API Call via CloudTrail",
            {
                "eventVersion": "1.08",
                "userIdentity": {"type": "AssumedRole", "accountId": self.account_id},
                "eventTime": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "eventSource": "ecs.amazonaws.com",
                "eventName": "RegisterTaskDefinition",
                "awsRegion": self.region_name,
                "requestParameters": {"family": family, "tags": kwargs.get("tags") or []},
                "responseElements": {
                    "taskDefinition": {
                        "taskDefinitionArn": definition.arn,
                        "family": family,
                        "revision": definition.revision,
                    }
                },
                "requestID": str(uuid.uuid4()),
                "eventID": str(uuid.uuid4()),
                "readOnly": False,
                "eventType": "AwsApiCall",
                "managementEvent": True,
                "recipientAccountId": self.account_id,
                "eventCategory": "Management",
            },
            [],
        )
        return definition

    return register_task_definition


def _describe_task_definition(original: Any) -> Any:
    # AWS: DescribeTaskDefinition's taskDefinition is "The family for the latest ACTIVE revision,
    # family and revision (family:revision) for a specific revision in the family, or full ARN"
    # (ECS API reference, DescribeTaskDefinition). moto answers a bare family with its highest
    # revision even when that one is INACTIVE.
    def describe_task_definition(self: Any, task_definition_str: str) -> Any:
        name = task_definition_str.split("/")[-1]
        if ":" in name:
            return original(self, task_definition_str)
        active = [r for r, d in (self.task_definitions.get(name) or {}).items() if d.status == "ACTIVE"]
        if not active:
            raise ecs_exceptions.TaskDefinitionNotFoundException()
        return original(self, f"{name}:{max(active)}")

    return describe_task_definition


def install() -> None:
    """Extend moto in this process; safe to call more than once."""
    global _installed
    if _installed:
        return
    group = asg_models.FakeAutoScalingGroup
    group.replace_autoscaling_group_instances = _replace_instances(group.replace_autoscaling_group_instances)
    group.active_instances = _active_instances
    AutoScalingResponse.complete_lifecycle_action = complete_lifecycle_action
    AutoScalingResponse.record_lifecycle_action_heartbeat = record_lifecycle_action_heartbeat
    AutoScalingResponse.describe_scaling_activities = describe_scaling_activities
    SimpleSystemManagerResponse.describe_instance_information = describe_instance_information
    ssm_models.Documents.find = _find_document(ssm_models.Documents.find)  # type: ignore[method-assign]
    SimpleSystemManagerResponse.list_command_invocations = list_command_invocations
    SimpleSystemManagerResponse.cancel_command = cancel_command
    AutoScalingResponse.describe_warm_pool = describe_warm_pool
    efs_models.AccessPoint.__init__ = _access_point_init(efs_models.AccessPoint.__init__)  # type: ignore[method-assign]
    asg_models.FakeAutoScalingGroup.instances = property(_group_instances)  # type: ignore[method-assign,assignment]
    ssm_backend = ssm_models.SimpleSystemManagerBackend
    ssm_backend.send_command = _send_command(ssm_backend.send_command)
    SimpleSystemManagerResponse.send_command = _send_command_response(SimpleSystemManagerResponse.send_command)
    ssm_models.Command.response_object = _command_response_object(ssm_models.Command.response_object)
    ecs_backend = ecs_models.EC2ContainerServiceBackend
    ecs_backend.register_container_instance = _register_container_instance(ecs_backend.register_container_instance)
    ecs_backend.register_task_definition = _register_task_definition(ecs_backend.register_task_definition)
    ecs_backend.list_container_instances = _list_container_instances(ecs_backend.list_container_instances)
    EC2ContainerServiceResponse.list_container_instances = _list_container_instances_response
    ecs_backend.describe_task_definition = _describe_task_definition(ecs_backend.describe_task_definition)
    sts_backend = sts_models.STSBackend
    sts_backend.assume_role = _assume_role(sts_backend.assume_role)
    _installed = True
