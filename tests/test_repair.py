"""The repair function over moto: each kind of drift found and fixed through the handlers' own flows, a dry
run that changes nothing, a second run that finds nothing, scope, accounts, per-item errors, a clean stop."""

from __future__ import annotations

import copy
import json

import boto3
import pytest

from app import app
from chalicelib.mount.attribute import mount_attribute_name
from chalicelib.repair.request import RepairInputError
from simulation import hosts, moto_gaps
from simulation.eventbus import EventBus
from simulation.landscape import (
    build_landscape,
    create_member_role,
    lifecycle_state,
    mount_attribute,
    register_container_instance,
    scale_out,
    session_in_account,
)
from tests.conftest import OWN_ACCOUNT, deliver_outbox, make_lambda
from tests.support.launch import ACCESS_POINT, in_service_then_confined_to_an_access_point
from tests.support.repair import (
    FS_TAG,
    by_instance,
    changes,
    host_in_service_before_the_tag,
    mounted_hosts,
    task_definition_registered_while_down,
)

MEMBER = "210987654321"
STRANGER = "111122223333"

# Repair runs with its real 900 s context.
pytestmark = pytest.mark.usefixtures("repair_context")


def _reregistered_while_down(land, instance_id, old_arn):
    """The host's container instance registered again; its state change event was lost."""
    ecs = land.client("ecs")
    ecs.deregister_container_instance(cluster=land.cluster_name, containerInstance=old_arn, force=True)
    new_arn = register_container_instance(land, instance_id)
    moto_gaps.WORLD.drain()
    return new_arn


def _drifted(tmp_path, **env):
    lambda_ = make_lambda(tmp_path, **env)
    bus = EventBus(app, lambda_.invoke)
    land = build_landscape(boto3.Session(region_name="us-east-1"))
    container_instances = mounted_hosts(land, bus, 2)
    healthy, lost = sorted(container_instances)
    never, never_ci = host_in_service_before_the_tag(land, bus)
    new_ci = _reregistered_while_down(land, lost, container_instances[lost])
    task_definition = task_definition_registered_while_down(land)
    lambda_.calls.clear()
    return (
        lambda_,
        bus,
        land,
        {
            "healthy": healthy,
            "lost": lost,
            "lost_ci": new_ci,
            "never": never,
            "never_ci": never_ci,
            "task_definition": task_definition,
        },
    )


def _attribute(land):
    """The mount attribute of the landscape's file system at the group's default path."""
    return mount_attribute_name(land.file_system_id, f"/mnt/efs/{land.file_system_id}")


# --- input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "key"),
    [
        (["web"], "(input)"),
        ({}, "cluster"),
        ({"cluster": "web", "clustr": "x"}, "clustr"),
        ({"cluster": "web/../x"}, "cluster"),
        ({"cluster": 7}, "cluster"),
        ({"auto_scaling_group": "bad\nname"}, "auto_scaling_group"),
        ({"cluster": "web", "account": "12345"}, "account"),
        ({"cluster": "web", "region": "mars-1"}, "region"),
        ({"cluster": "web", "dry_run": "yes"}, "dry_run"),
        ({"cluster": f"arn:aws:ecs:us-east-1:{MEMBER}:cluster/web", "account": OWN_ACCOUNT}, "cluster"),
        ({"cluster": f"arn:aws:ecs:eu-west-1:{OWN_ACCOUNT}:cluster/web"}, "cluster"),
        ({"cluster": "web", "account": STRANGER}, "account"),
        ({"cluster": f"arn:aws:ecs:us-east-1:{STRANGER}:cluster/web"}, "account"),
    ],
)
def test_bad_input_fails_naming_the_key_before_any_aws_call(tmp_path, payload, key):
    lambda_ = make_lambda(tmp_path, TRUSTED_ACCOUNTS=MEMBER)

    with pytest.raises(RepairInputError) as raised:
        lambda_.invoke("repair", payload)

    assert raised.value.key == key
    assert f"`{key}`" in str(raised.value)
    assert lambda_.operations() == []


# --- finding and fixing ---------------------------------------------------------------------


def test_dry_run_reports_every_drift_and_makes_no_call_that_changes_anything(tmp_path):
    lambda_, _, land, drift = _drifted(tmp_path)
    commands_before = len(land.client("ssm").list_commands()["Commands"])

    report = lambda_.invoke("repair", {"cluster": land.cluster_name, "dry_run": True})

    assert changes(lambda_) == []
    assert report["dry_run"] is True and report["cluster"] == land.cluster_arn
    instances = by_instance(report)
    assert instances[drift["healthy"]]["problems"] == instances[drift["healthy"]]["actions"] == []
    assert instances[drift["never"]]["problems"] == ["never mounted"]
    assert instances[drift["never"]]["actions"] == [
        f"would send the mount command ({land.file_system_id} at /mnt/efs/{land.file_system_id})"
    ]
    assert instances[drift["lost"]]["container_instance"] == drift["lost_ci"]
    assert instances[drift["lost"]]["problems"] == [f"container instance lacks the attribute {_attribute(land)}"]
    assert instances[drift["lost"]]["actions"][0].startswith("would set the attribute")
    (task_definition,) = report["task_definitions"]
    assert task_definition["task_definition"] == drift["task_definition"]
    assert task_definition["problems"][0].startswith("tagged for EFS but never rewritten")
    assert task_definition["actions"] == ["would register the next revision with the EFS volume"]
    # the group (its configuration is as the README asks: no problem), two hosts, the task definition
    assert report["groups"] == [
        {
            "auto_scaling_group": land.group_name,
            "file_system_id": land.file_system_id,
            "mount_path": f"/mnt/efs/{land.file_system_id}",
            "problems": [],
            "actions": [],
        }
    ]
    assert report["summary"] == {"examined": 5, "with_problems": 3, "actions": 3, "errors": 0}
    # Nothing changed in AWS
    assert len(land.client("ssm").list_commands()["Commands"]) == commands_before
    assert mount_attribute(land, drift["lost_ci"]) is None
    assert len(land.client("ecs").list_task_definitions(familyPrefix="reports")["taskDefinitionArns"]) == 1


def test_repair_fixes_each_drift_and_a_second_run_finds_nothing_and_sends_nothing(tmp_path):
    # UPDATE_SERVICES on: otherwise the service left on the source revision stays reported (next test)
    lambda_, bus, land, drift = _drifted(tmp_path, UPDATE_SERVICES="true")

    report = lambda_.invoke("repair", {"cluster": land.cluster_arn})

    instances = by_instance(report)
    (sent,) = instances[drift["never"]]["actions"]
    assert sent.startswith("mount command sent: ")
    assert instances[drift["lost"]]["actions"] == [
        f"attribute {_attribute(land)} set to /mnt/efs/{land.file_system_id}"
    ]
    assert mount_attribute(land, drift["lost_ci"]) == f"/mnt/efs/{land.file_system_id}"
    (task_definition,) = report["task_definitions"]
    assert task_definition["actions"] == [f"registered arn:aws:ecs:us-east-1:{OWN_ACCOUNT}:task-definition/reports:2"]
    assert report["errors"] == []
    # The command is the launch step's: same document, parameters and mount target IP
    (command,) = land.client("ssm").list_commands(CommandId=sent.split(": ")[1])["Commands"]
    assert command["DocumentName"] == "efs-automount-mount"
    assert command["Parameters"]["FileSystemId"] == [land.file_system_id]
    assert command["Parameters"]["MountTargetIp"][0].startswith("10.0.")

    # The host's agent answers; the status event records the mount and sets the attribute
    hosts.answer(land, "Success")
    deliver_outbox(bus)
    assert mount_attribute(land, drift["never_ci"]) == f"/mnt/efs/{land.file_system_id}"
    assert lifecycle_state(land, drift["never"]) == "InService"
    # The app's own registration came back through CloudTrail and added nothing
    assert len(land.client("ecs").list_task_definitions(familyPrefix="reports")["taskDefinitionArns"]) == 2

    lambda_.calls.clear()
    again = lambda_.invoke("repair", {"cluster": land.cluster_arn})

    assert again["summary"]["with_problems"] == again["summary"]["actions"] == again["summary"]["errors"] == 0
    assert changes(lambda_) == []


def test_a_stalled_waiting_host_is_driven_by_the_launch_step(tmp_path, clock):
    lambda_ = make_lambda(tmp_path)
    bus = EventBus(app, lambda_.invoke)
    land = build_landscape(boto3.Session(region_name="us-east-1"))
    mounted_hosts(land, bus, 1)
    (waiting,) = scale_out(land, 1)
    hosts.boot_agents(land, [waiting])
    container_instance = register_container_instance(land, waiting)
    deliver_outbox(bus)  # mount sent, registration recorded...
    hosts.answer(land, "Success")
    moto_gaps.WORLD.drain()  # ...but the status event was lost
    clock.advance(120)

    dry = lambda_.invoke("repair", {"cluster": land.cluster_name, "dry_run": True})
    (item,) = dry["lifecycle_actions"]
    assert item["problems"][0].startswith("waiting on the efs-automount hook for ")
    assert item["actions"] == ["would drive its launch step (send the mount, complete or decide)"]
    assert lifecycle_state(land, waiting) == "Pending:Wait"

    report = lambda_.invoke("repair", {"cluster": land.cluster_name})

    (item,) = report["lifecycle_actions"]
    assert item["actions"] == ["launch step: completed CONTINUE"]
    assert lifecycle_state(land, waiting) == "InService"
    assert mount_attribute(land, container_instance) == f"/mnt/efs/{land.file_system_id}"
    assert lambda_.invoke("repair", {"cluster": land.cluster_name})["summary"]["with_problems"] == 0


def test_a_host_waiting_moments_ago_is_left_to_its_launch_event(tmp_path):
    lambda_ = make_lambda(tmp_path)
    land = build_landscape(boto3.Session(region_name="us-east-1"))
    (waiting,) = scale_out(land, 1)
    hosts.boot_agents(land, [waiting])
    register_container_instance(land, waiting)
    moto_gaps.WORLD.drain()

    report = lambda_.invoke("repair", {"cluster": land.cluster_name})

    (item,) = report["lifecycle_actions"]
    assert item["problems"] == item["actions"] == []
    assert land.client("ssm").list_commands()["Commands"] == []


def test_a_forged_mounted_tag_and_attribute_are_no_evidence_the_mount_is_verified_on_the_host(tmp_path):
    # Given a host never mounted whose EC2 tag claims the mount (anyone with ec2:CreateTags can write it), and
    # whose container instance carries another value of the attribute
    lambda_ = make_lambda(tmp_path)
    bus = EventBus(app, lambda_.invoke)
    land = build_landscape(boto3.Session(region_name="us-east-1"))
    instance_id, container_instance = host_in_service_before_the_tag(land, bus)
    path, attribute = f"/mnt/efs/{land.file_system_id}", _attribute(land)
    land.client("ec2").create_tags(
        Resources=[instance_id], Tags=[{"Key": f"efs-automount:mounted:{land.file_system_id}", "Value": path}]
    )
    land.client("ecs").put_attributes(
        cluster=land.cluster_name,
        attributes=[{"name": attribute, "value": "/mnt/efs/other", "targetId": container_instance}],
    )

    report = lambda_.invoke("repair", {"cluster": land.cluster_name})

    # Then SSM's record decides: not mounted, so the mount is sent, and the attribute waits for its status event
    (item,) = report["instances"]
    assert item["problems"] == [
        "never mounted",
        f"its container instance carries {attribute} without a confirmed mount",
    ]
    assert item["actions"][0].startswith("mount command sent: ")
    assert mount_attribute(land, container_instance) == "/mnt/efs/other"  # not on the tag's word
    hosts.answer(land, "Success")
    deliver_outbox(bus)
    assert mount_attribute(land, container_instance) == path


def test_superseded_source_is_reported_not_rewritten(tmp_path):
    lambda_ = make_lambda(tmp_path)
    land = build_landscape(boto3.Session(region_name="us-east-1"))
    source = task_definition_registered_while_down(land)
    ecs = land.client("ecs")
    newer = ecs.register_task_definition(
        family="reports", containerDefinitions=[{"name": "app", "image": "public.ecr.aws/app/reports:2", "memory": 1}]
    )["taskDefinition"]["taskDefinitionArn"]
    moto_gaps.WORLD.drain()

    report = lambda_.invoke("repair", {"cluster": land.cluster_name})

    (item,) = report["task_definitions"]
    assert item["task_definition"] == source
    assert item["problems"][0].startswith(f"superseded by {newer}, which is not its rewrite: not rewritten")
    assert item["actions"] == []
    assert len(ecs.list_task_definitions(familyPrefix="reports")["taskDefinitionArns"]) == 2


def test_a_source_superseded_after_its_rewrite_is_classified_as_the_handler_does_and_its_service_left(tmp_path):
    # Given reports:1 rewritten as reports:2 by the app, then the user's own reports:3, and a service still on :1
    lambda_ = make_lambda(tmp_path, UPDATE_SERVICES="true")
    bus = EventBus(app, lambda_.invoke)
    land = build_landscape(boto3.Session(region_name="us-east-1"))
    ecs = land.client("ecs")
    source = ecs.register_task_definition(
        family="reports",
        containerDefinitions=[{"name": "app", "image": "public.ecr.aws/app/reports:1", "memory": 256}],
        tags=[{"key": FS_TAG, "value": land.file_system_id}],
    )["taskDefinition"]["taskDefinitionArn"]
    (source_event,) = moto_gaps.WORLD.drain()
    bus.deliver(copy.deepcopy(source_event))
    deliver_outbox(bus)  # rewritten as reports:2
    newer = ecs.register_task_definition(
        family="reports", containerDefinitions=[{"name": "app", "image": "public.ecr.aws/app/reports:3", "memory": 1}]
    )["taskDefinition"]["taskDefinitionArn"]
    moto_gaps.WORLD.drain()
    ecs.create_service(cluster=land.cluster_name, serviceName="reports", taskDefinition=source, desiredCount=0)

    # When the dry run, then the repair, look at it
    dry = lambda_.invoke("repair", {"cluster": land.cluster_name, "dry_run": True})
    real = lambda_.invoke("repair", {"cluster": land.cluster_name})

    # Then both say what the event handler says (superseded by reports:3), and the service stays where the user put it
    ((_, handled),) = bus.deliver(source_event)  # the same event delivered again now
    assert handled["outcome"] == f"ignored: superseded by {newer}"
    for report in (dry, real):
        (item,) = report["task_definitions"]
        assert item["problems"][0].startswith(f"superseded by {newer}")
        assert item["actions"] == []
    (service,) = ecs.describe_services(cluster=land.cluster_name, services=["reports"])["services"]
    assert service["taskDefinition"] == source
    assert len(ecs.list_task_definitions(familyPrefix="reports")["taskDefinitionArns"]) == 3


def test_a_tagged_revision_whose_family_has_no_active_revision_is_reported_alike_by_dry_run_and_repair(tmp_path):
    # Given a service still running a tagged revision that was deregistered, the family's only one
    lambda_ = make_lambda(tmp_path)
    land = build_landscape(boto3.Session(region_name="us-east-1"))
    source = task_definition_registered_while_down(land)
    land.client("ecs").deregister_task_definition(taskDefinition=source)
    moto_gaps.WORLD.drain()

    dry = lambda_.invoke("repair", {"cluster": land.cluster_name, "dry_run": True})
    real = lambda_.invoke("repair", {"cluster": land.cluster_name})

    # Then neither promises or registers a rewrite: the handler would not make one either
    for report in (dry, real):
        (item,) = report["task_definitions"]
        assert item["problems"] == ["its family has no ACTIVE revision: not rewritten"]
        assert item["actions"] == []
    assert lambda_.operations().count("ecs:RegisterTaskDefinition") == 0


def test_a_service_on_the_unrewritten_revision_is_reported_and_updated_only_with_update_services(tmp_path):
    lambda_ = make_lambda(tmp_path)
    bus = EventBus(app, lambda_.invoke)
    land = build_landscape(boto3.Session(region_name="us-east-1"))
    ecs = land.client("ecs")
    source = ecs.register_task_definition(
        family="reports",
        containerDefinitions=[{"name": "app", "image": "public.ecr.aws/app/reports:1", "memory": 256}],
        tags=[{"key": FS_TAG, "value": land.file_system_id}],
    )["taskDefinition"]["taskDefinitionArn"]
    deliver_outbox(bus)  # rewritten as reports:2
    ecs.create_service(cluster=land.cluster_name, serviceName="reports", taskDefinition=source, desiredCount=0)
    rewrite = source.rsplit(":", 1)[0] + ":2"

    report = lambda_.invoke("repair", {"cluster": land.cluster_name})
    (item,) = report["task_definitions"]
    assert item["problems"][0] == f"service reports still runs it, not its rewrite {rewrite}"
    assert item["actions"] == []

    updating = make_lambda(tmp_path, UPDATE_SERVICES="true")
    report = updating.invoke("repair", {"cluster": land.cluster_name})
    (item,) = report["task_definitions"]
    assert item["actions"] == [f"service reports updated to {rewrite}"]
    (service,) = ecs.describe_services(cluster=land.cluster_name, services=["reports"])["services"]
    assert service["taskDefinition"] == rewrite
    again = updating.invoke("repair", {"cluster": land.cluster_name})
    assert [i["problems"] for i in again["task_definitions"]] == [[]]


def test_a_group_mount_path_outside_mount_roots_is_an_error_and_no_mount_is_sent(tmp_path):
    # Given MOUNT_ROOTS=/srv and a group whose mount path (the default /mnt/efs/<fs>) lies outside it
    lambda_ = make_lambda(tmp_path, MOUNT_ROOTS="/srv")
    bus = EventBus(app, lambda_.invoke)
    land = build_landscape(boto3.Session(region_name="us-east-1"))
    never, _ = host_in_service_before_the_tag(land, bus)
    lambda_.calls.clear()

    report = lambda_.invoke("repair", {"cluster": land.cluster_name})

    # Then the group is reported as the launch step would refuse it, and nothing is sent to its hosts
    (error,) = report["errors"]
    assert error["item"] == land.group_name
    assert "MOUNT_ROOTS" in error["error"]
    assert never not in by_instance(report)
    assert "ssm:SendCommand" not in lambda_.operations()


# --- scope, accounts, errors, time ----------------------------------------------------------


def test_auto_scaling_group_limits_the_scope_to_that_group(tmp_path):
    lambda_ = make_lambda(tmp_path)
    bus = EventBus(app, lambda_.invoke)
    land = build_landscape(boto3.Session(region_name="us-east-1"))
    (mine,) = mounted_hosts(land, bus, 1)
    autoscaling = land.client("autoscaling")
    (group,) = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[land.group_name])["AutoScalingGroups"]
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="batch-hosts",
        LaunchTemplate={"LaunchTemplateName": f"{land.group_name}-template", "Version": "$Latest"},
        MinSize=0,
        MaxSize=1,
        DesiredCapacity=1,
        VPCZoneIdentifier=group["VPCZoneIdentifier"],
        Tags=[
            {
                "ResourceId": "batch-hosts",
                "ResourceType": "auto-scaling-group",
                "Key": FS_TAG,
                "Value": land.file_system_id,
                "PropagateAtLaunch": False,
            }
        ],
    )
    (theirs,) = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=["batch-hosts"])["AutoScalingGroups"][0][
        "Instances"
    ]
    register_container_instance(land, theirs["InstanceId"])
    moto_gaps.WORLD.drain()

    whole = lambda_.invoke("repair", {"cluster": land.cluster_name, "dry_run": True})
    scoped = lambda_.invoke("repair", {"auto_scaling_group": land.group_name, "dry_run": True})

    assert sorted(i["instance_id"] for i in whole["instances"]) == sorted([mine, theirs["InstanceId"]])
    assert [i["instance_id"] for i in scoped["instances"]] == [mine]
    assert scoped["instances"][0]["container_instance"] is not None
    assert scoped["lifecycle_actions"] == [] and scoped["task_definitions"] == []


def _mounted_host_whose_attribute_was_lost(land, bus):
    """A host in service, mounted (SSM's record), whose container instance registered again while the app was
    down: registered in the cluster, without the attribute, and with no EC2 tag."""
    (instance_id, container_instance), *_ = mounted_hosts(land, bus, 1).items()
    return instance_id, _reregistered_while_down(land, instance_id, container_instance)


def _decoy_container_instance(land, cluster="decoy"):
    """Another cluster of the account, where a host outside the group registered."""
    ecs, ec2 = land.client("ecs"), land.client("ec2")
    cluster_arn = ecs.create_cluster(clusterName=cluster)["cluster"]["clusterArn"]
    (outsider,) = ec2.run_instances(
        LaunchTemplate={"LaunchTemplateName": f"{land.group_name}-template"}, MinCount=1, MaxCount=1
    )["Instances"]
    document = {
        "instanceId": outsider["InstanceId"],
        "region": land.region,
        "availabilityZone": outsider["Placement"]["AvailabilityZone"],
        "accountId": land.account,
    }
    registered = ecs.register_container_instance(cluster=cluster, instanceIdentityDocument=json.dumps(document))
    moto_gaps.WORLD.drain()
    return cluster_arn, registered["containerInstance"]["containerInstanceArn"]


def test_with_only_its_group_named_a_mounted_hosts_cluster_is_found_through_ecs_and_its_attribute_set(tmp_path):
    # Given a mounted host (SSM's record), registered, without any EC2 tag and without its attribute, and
    # another cluster in the account
    lambda_ = make_lambda(tmp_path)
    bus = EventBus(app, lambda_.invoke)
    land = build_landscape(boto3.Session(region_name="us-east-1"))
    _decoy_container_instance(land)
    instance_id, container_instance = _mounted_host_whose_attribute_was_lost(land, bus)
    attribute, path = _attribute(land), f"/mnt/efs/{land.file_system_id}"
    lambda_.calls.clear()

    # When repair is given only the group
    dry = lambda_.invoke("repair", {"auto_scaling_group": land.group_name, "dry_run": True})
    assert changes(lambda_) == []
    report = lambda_.invoke("repair", {"auto_scaling_group": land.group_name})

    # Then ECS names the host's cluster and container instance, SSM proves the mount, and the attribute is set
    for run in (dry, report):
        (item,) = run["instances"]
        assert item["instance_id"] == instance_id and item["container_instance"] == container_instance
        assert item["problems"] == [f"container instance lacks the attribute {attribute}"]
    assert dry["instances"][0]["actions"] == [f"would set the attribute {attribute} to {path}"]
    assert report["instances"][0]["actions"] == [f"attribute {attribute} set to {path}"]
    assert mount_attribute(land, container_instance) == path
    assert "ssm:SendCommand" not in lambda_.operations()
    assert not [op for op in lambda_.operations() if op.endswith("Tags")]  # no EC2 tag read or written
    lambda_.calls.clear()
    again = lambda_.invoke("repair", {"auto_scaling_group": land.group_name})
    assert again["summary"]["with_problems"] == again["summary"]["actions"] == 0
    assert changes(lambda_) == []


def test_a_forged_host_record_naming_another_cluster_and_container_instance_is_ignored(tmp_path):
    # Given a mounted host whose attribute was lost, and EC2 tags (anyone's to write) naming a container
    # instance of another host in another cluster of the account, and claiming the mount
    lambda_ = make_lambda(tmp_path)
    bus = EventBus(app, lambda_.invoke)
    land = build_landscape(boto3.Session(region_name="us-east-1"))
    decoy_cluster, decoy = _decoy_container_instance(land)
    instance_id, container_instance = _mounted_host_whose_attribute_was_lost(land, bus)
    land.client("ec2").create_tags(
        Resources=[instance_id],
        Tags=[
            {"Key": f"efs-automount:mounted:{land.file_system_id}", "Value": f"/mnt/efs/{land.file_system_id}"},
            {"Key": "efs-automount:ecs-cluster", "Value": decoy_cluster},
            {"Key": "efs-automount:container-instance", "Value": decoy},
        ],
    )

    report = lambda_.invoke("repair", {"auto_scaling_group": land.group_name})

    # Then the attribute goes on the container instance ECS reports on the host, never on the tag's
    (item,) = report["instances"]
    assert item["container_instance"] == container_instance
    assert mount_attribute(land, container_instance) == f"/mnt/efs/{land.file_system_id}"
    (described,) = land.client("ecs").describe_container_instances(cluster="decoy", containerInstances=[decoy])[
        "containerInstances"
    ]
    assert not [a for a in described.get("attributes", []) if a["name"].startswith("efs-automount.")]


def test_a_trusted_account_is_repaired_through_its_member_role(tmp_path):
    session = session_in_account(MEMBER)
    create_member_role(session, OWN_ACCOUNT)
    land = build_landscape(session)
    lambda_ = make_lambda(tmp_path, TRUSTED_ACCOUNTS=MEMBER)
    bus = EventBus(app, lambda_.invoke)
    never, never_ci = host_in_service_before_the_tag(land, bus)

    report = lambda_.invoke("repair", {"cluster": land.cluster_name, "account": MEMBER})

    assert report["account"] == MEMBER
    assert report["cluster"] == f"arn:aws:ecs:us-east-1:{MEMBER}:cluster/{land.cluster_name}"
    assert by_instance(report)[never]["actions"][0].startswith("mount command sent: ")
    assert "sts:AssumeRole" in lambda_.operations()
    hosts.answer(land, "Success")
    deliver_outbox(bus)
    assert mount_attribute(land, never_ci) == f"/mnt/efs/{land.file_system_id}"


def test_one_failing_host_is_an_error_item_and_the_others_are_still_repaired(tmp_path, monkeypatch):
    lambda_ = make_lambda(tmp_path)
    bus = EventBus(app, lambda_.invoke)
    land = build_landscape(boto3.Session(region_name="us-east-1"))
    first, _ = host_in_service_before_the_tag(land, bus)
    second, _ = host_in_service_before_the_tag(land, bus)
    from chalicelib.launch.flow import LifecycleFlow

    original = LifecycleFlow.mount_in_service
    failed = []

    def flaky(self, aws, instance_id, zone, spec):
        if instance_id == first:
            failed.append(instance_id)
            raise RuntimeError("SSM is having a bad day")
        return original(self, aws, instance_id, zone, spec)

    monkeypatch.setattr(LifecycleFlow, "mount_in_service", flaky)

    report = lambda_.invoke("repair", {"cluster": land.cluster_name})

    assert report["errors"] == [{"item": first, "error": "SSM is having a bad day"}]
    assert by_instance(report)[second]["actions"][0].startswith("mount command sent: ")
    assert report["summary"]["errors"] == 1
    assert failed == [first]


def test_when_time_runs_out_it_stops_cleanly_and_says_where_and_how_to_go_on(tmp_path, repair_context):
    lambda_, _, land, drift = _drifted(tmp_path)
    repair_context.remaining_millis = 10_000

    report = lambda_.invoke("repair", {"cluster": land.cluster_name})

    # (less than the margin from the start: it stops before its first read, between discovery reads too)
    assert report["stopped"]["where"] == "discovering the cluster's groups: stopped before finding the cluster"
    assert "invoke repair again" in report["stopped"]["how_to_go_on"]
    assert changes(lambda_) == []


def test_a_capacity_provider_group_is_examined_before_any_host_registered(tmp_path):
    lambda_ = make_lambda(tmp_path)
    bus = EventBus(app, lambda_.invoke)
    land = build_landscape(boto3.Session(region_name="us-east-1"))
    never, _ = host_in_service_before_the_tag(land, bus)
    ecs = land.client("ecs")
    ecs.deregister_container_instance(
        cluster=land.cluster_name,
        containerInstance=ecs.list_container_instances(cluster=land.cluster_name)["containerInstanceArns"][0],
        force=True,
    )
    (group,) = land.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[land.group_name])[
        "AutoScalingGroups"
    ]
    ecs.create_capacity_provider(
        name="ecs-hosts", autoScalingGroupProvider={"autoScalingGroupArn": group["AutoScalingGroupARN"]}
    )
    ecs.put_cluster_capacity_providers(
        cluster=land.cluster_name, capacityProviders=["ecs-hosts"], defaultCapacityProviderStrategy=[]
    )

    report = lambda_.invoke("repair", {"cluster": land.cluster_name, "dry_run": True})

    (item,) = report["instances"]
    assert item["instance_id"] == never and item["container_instance"] is None
    assert item["problems"] == ["never mounted"]


def test_repair_sets_the_attribute_on_a_mount_without_the_groups_access_point(tmp_path, clock):
    from simulation.landscape import container_instance_attributes

    # Given a host mounted without the access point its group now asks for, whose container instance registered
    # anew while its event was lost (EventBridge is best effort): repair's job
    lambda_ = make_lambda(tmp_path)
    bus = EventBus(app, lambda_.invoke)
    land = build_landscape(boto3.Session(region_name="us-east-1"))
    instance_id = in_service_then_confined_to_an_access_point(land, bus)
    clock.advance(120)
    container_instance = register_container_instance(land, instance_id)
    moto_gaps.WORLD.drain()

    dry_run = lambda_.invoke("repair", {"cluster": land.cluster_name, "dry_run": True})
    report = lambda_.invoke("repair", {"cluster": land.cluster_name})

    # Then it is reported as mounted otherwise, and neither marked nor sent a mount (which the host would refuse:
    # the path holds this file system mounted otherwise, exit 3)
    marks = {n: v for n, v in container_instance_attributes(land, container_instance).items() if "efs-automount" in n}
    assert marks == {}, f"repair marked a host whose mount lacks the group's access point: {report['instances']}"
    for run in (dry_run, report):
        (item,) = run["instances"]
        assert item["problems"] == [
            f"mounted otherwise: without the group's access point {ACCESS_POINT}; not marked: replace the host, "
            "or unmount it there and run repair again"
        ]
        assert item["actions"] == []


def test_an_earlier_releases_host_and_rewrite_get_the_new_attribute_and_a_report_and_keep_their_placement(tmp_path):
    # Given a host mounted and marked by an earlier release (only `efs-automount.<fs>`, whatever the path), and a
    # service running the revision that release rewrote, whose constraint asks for that attribute
    lambda_ = make_lambda(tmp_path)
    bus = EventBus(app, lambda_.invoke)
    land = build_landscape(boto3.Session(region_name="us-east-1"))
    instance_id, container_instance = _mounted_host_whose_attribute_was_lost(land, bus)
    fs, path = land.file_system_id, f"/mnt/efs/{land.file_system_id}"
    legacy, legacy_expression = f"efs-automount.{fs}", f"attribute:efs-automount.{fs} exists"
    ecs = land.client("ecs")
    ecs.put_attributes(
        cluster=land.cluster_name, attributes=[{"name": legacy, "value": path, "targetId": container_instance}]
    )
    old_rewrite = ecs.register_task_definition(
        family="reports",
        containerDefinitions=[{"name": "app", "image": "public.ecr.aws/app/reports:1", "memory": 256}],
        volumes=[{"name": f"efs-{fs}", "host": {"sourcePath": path}}],
        placementConstraints=[{"type": "memberOf", "expression": legacy_expression}],
        tags=[
            {"key": FS_TAG, "value": fs},
            {"key": "efs-automount:source", "value": f"arn:aws:ecs:us-east-1:{OWN_ACCOUNT}:task-definition/reports:1"},
        ],
    )["taskDefinition"]["taskDefinitionArn"]
    moto_gaps.WORLD.drain()
    ecs.create_service(cluster=land.cluster_name, serviceName="reports", taskDefinition=old_rewrite, desiredCount=0)

    report = lambda_.invoke("repair", {"cluster": land.cluster_name})

    # Then the host gets the attribute named after its path (on SSM's proof, as any mount) and keeps the old one,
    # so the service's tasks can still be placed there; the revision is reported, with the way out
    (item,) = report["instances"]
    assert item["actions"] == [f"attribute {_attribute(land)} set to {path}"]
    assert mount_attribute(land, container_instance) == path
    (described,) = ecs.describe_container_instances(cluster=land.cluster_name, containerInstances=[container_instance])[
        "containerInstances"
    ]
    assert {a["name"]: a.get("value") for a in described["attributes"]}[legacy] == path
    (revision,) = report["task_definitions"]
    assert revision["problems"] == [
        f"its placement constraint {legacy_expression} is an earlier release's: it ignores the host path, and only "
        "hosts mounted before the upgrade carry that attribute; register its source again (same tags) for a "
        "rewrite that asks for the mount at its host path"
    ]
    assert revision["actions"] == []
    again = lambda_.invoke("repair", {"cluster": land.cluster_name})
    assert again["instances"][0]["problems"] == again["instances"][0]["actions"] == []
