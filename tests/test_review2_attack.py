"""Adversarial review 2 (the attribute named after the path, the whole-mount rule, the deployment wiring): each
test reproduces a finding and fails on the code it was written against."""

from __future__ import annotations

import json

import boto3

from simulation import hosts
from simulation.landscape import (
    app_mount_parameters,
    lifecycle_state,
    mount_attribute,
    register_container_instance,
    scale_out,
)
from tests.conftest import deliver_outbox, reset_app_caches

FS_TAG = "efs-automount:file-system-id"


def _in_service_never_mounted(land, bus):
    """A host let in before its group was tagged: in service, registered, never mounted (as in test_repair)."""
    land.client("autoscaling").delete_tags(
        Tags=[{"ResourceId": land.group_name, "ResourceType": "auto-scaling-group", "Key": FS_TAG}]
    )
    reset_app_caches()
    (instance_id,) = scale_out(land, 1)
    hosts.boot_agents(land, [instance_id])
    deliver_outbox(bus)
    container_instance = register_container_instance(land, instance_id)
    deliver_outbox(bus)
    land.client("autoscaling").create_or_update_tags(
        Tags=[
            {
                "ResourceId": land.group_name,
                "ResourceType": "auto-scaling-group",
                "Key": FS_TAG,
                "Value": land.file_system_id,
                "PropagateAtLaunch": False,
            }
        ]
    )
    reset_app_caches()
    assert lifecycle_state(land, instance_id) == "InService"
    return instance_id, container_instance


def _planted_version(land):
    """Someone allowed ssm:UpdateDocument (not UpdateDocumentDefaultVersion) adds a version of the mount document
    whose script mounts nothing; the default version stays the app's."""
    ssm = land.client("ssm")
    content = json.loads(ssm.get_document(Name="efs-automount-mount")["Content"])
    content["mainSteps"][0]["inputs"]["runCommand"] = ["exit 0"]
    ssm.update_document(Name="efs-automount-mount", Content=json.dumps(content), DocumentVersion="$LATEST")


def test_a_command_on_a_non_default_document_version_does_not_mark_a_host_in_service(land, bus, lambda_):
    # Given a host in service that was never mounted (its group asks for the mount now)
    instance_id, container_instance = _in_service_never_mounted(land, bus)
    # When someone runs a planted version of the mount document with exactly the group's parameters: it "succeeds"
    # without mounting anything (the launch rule refuses such a command: not the default version)
    _planted_version(land)
    land.client("ssm").send_command(
        DocumentName="efs-automount-mount",
        DocumentVersion="$LATEST",
        InstanceIds=[instance_id],
        Parameters=app_mount_parameters(land, instance_id),
    )
    hosts.answer(land, "Success")
    outcomes = [o for _, o in deliver_outbox(bus)]
    # Then the host must not be marked: /mnt/efs/<fs> there is the root disk, and tasks bind-mounting it would
    # write there. The status step for a host in service (and registration, and repair: mount_on_record) ignore
    # DocumentVersion, which the launch rule checks.
    assert mount_attribute(land, container_instance) is None, f"marked on a planted document version: {outcomes}"


def _legacy_rewrite(ecs, source):
    """The revision a release before the path-id registered for `source`: the rewrite, with the constraint that
    ignores the host path (as tests/test_task_definition_flow.py builds it)."""
    from chalicelib.task_definitions.flow import register_input_fields
    from chalicelib.task_definitions.rewrite import rewrite_task_definition, tags_as_dict, task_mount_from_tags

    described = ecs.describe_task_definition(taskDefinition=source, include=["TAGS"])
    definition, tags = described["taskDefinition"], described["tags"]
    mount = task_mount_from_tags(tags_as_dict(tags), definition)
    request = rewrite_task_definition(definition, tags, mount, register_input_fields())
    legacy = f"attribute:efs-automount.{mount.file_system_id} exists"
    request["placementConstraints"] = [{"type": "memberOf", "expression": legacy}]
    return ecs.register_task_definition(**request)["taskDefinition"]["taskDefinitionArn"], legacy


def test_update_services_does_not_move_a_service_onto_a_revision_with_the_earlier_releases_constraint(tmp_path):
    from simulation import moto_gaps
    from tests.conftest import make_lambda

    # Given a tagged source whose service still runs it, and its rewrite by an earlier release (the constraint
    # `efs-automount.<fs> exists`, which hosts mounted from now on never carry; README: "register its source
    # again") -- or the same revision registered after the upgrade by anyone allowed RegisterTaskDefinition
    lambda_ = make_lambda(tmp_path, UPDATE_SERVICES="true")
    ecs = boto3.Session(region_name="us-east-1").client("ecs")
    ecs.create_cluster(clusterName="apps")
    fs = "fs-0123456789abcdef0"
    source = ecs.register_task_definition(
        family="uploads",
        containerDefinitions=[{"name": "web", "image": "public.ecr.aws/nginx/nginx:1.27", "memory": 256}],
        tags=[{"key": FS_TAG, "value": fs}, {"key": "efs-automount:host-path", "value": "/data/uploads"}],
    )["taskDefinition"]["taskDefinitionArn"]
    ecs.create_service(cluster="apps", serviceName="uploads", taskDefinition=source, desiredCount=0)
    (event, *_) = moto_gaps.WORLD.drain()
    legacy_arn, legacy = _legacy_rewrite(ecs, source)
    moto_gaps.WORLD.drain()

    # When the source's event is handled (a late CloudTrail delivery; repair's "still runs it" fix does the same)
    outcome = lambda_.invoke("on_task_definition", event)

    # Then the service must not be moved onto the legacy revision: its tasks bind-mount /data/uploads on any host
    # carrying `efs-automount.<fs>` (set for a mount at whatever path the group had), and find no host mounted after
    # the upgrade. The legacy form is accepted as "the rewrite" (is_rewrite_of) and the follow-ups run on it.
    (service,) = ecs.describe_services(cluster="apps", services=["uploads"])["services"]
    assert service["taskDefinition"] != legacy_arn, f"service moved onto {legacy}: {outcome}"


def test_a_non_default_document_version_does_not_mark_a_host_at_its_registration_either(land, bus, lambda_):
    # Given a host in service never mounted, and a planted version run on it with the group's parameters, whose
    # status event the app never acts on
    instance_id, first = _in_service_never_mounted(land, bus)
    _planted_version(land)
    land.client("ssm").send_command(
        DocumentName="efs-automount-mount",
        DocumentVersion="$LATEST",
        InstanceIds=[instance_id],
        Parameters=app_mount_parameters(land, instance_id),
    )
    hosts.answer(land, "Success", emit=False)
    # When the host's container instance registers again (mount_on_record, the rule repair uses as well)
    land.client("ecs").deregister_container_instance(cluster=land.cluster_name, containerInstance=first, force=True)
    second = register_container_instance(land, instance_id)
    outcomes = [o for _, o in deliver_outbox(bus)]
    # Then it must not be marked
    assert mount_attribute(land, second) is None, f"marked on a planted document version: {outcomes}"
