"""Task definitions for property tests: generated ones as ECS describes them, and a registration read back."""

from __future__ import annotations

import datetime

from hypothesis import strategies as st

FS = "fs-0123456789abcdef0"

names = st.from_regex(r"[a-z][a-z0-9-]{0,11}", fullmatch=True)
paths = st.from_regex(r"/(data|var/app|srv)/[a-z]{1,8}", fullmatch=True)


@st.composite
def task_definitions(draw):
    family = draw(names)
    volume_names = draw(st.lists(names.filter(lambda n: not n.startswith("efs-")), unique=True, max_size=3))
    volumes = [
        {"name": name, "host": {"sourcePath": f"/srv/{name}"}}
        if draw(st.booleans())
        else {"name": name, "dockerVolumeConfiguration": {"scope": "task", "driver": "local"}}
        for name in volume_names
    ]
    containers = []
    for name in draw(st.lists(names, unique=True, min_size=1, max_size=4)):
        container = {"name": name, "image": f"public.ecr.aws/app/{name}:1", "memory": draw(st.integers(64, 4096))}
        if draw(st.booleans()):
            container["essential"] = draw(st.booleans())
        if volume_names and draw(st.booleans()):
            container["mountPoints"] = [{"sourceVolume": volume_names[0], "containerPath": draw(paths)}]
        if draw(st.booleans()):
            container["environment"] = [{"name": "MODE", "value": draw(names)}]
        containers.append(container)
    requires = draw(st.sampled_from([None, ["EC2"], ["EC2", "FARGATE"], ["FARGATE"]]))
    definition = {
        "taskDefinitionArn": f"arn:aws:ecs:us-east-1:123456789012:task-definition/{family}:3",
        "family": family,
        "revision": 3,
        "status": "ACTIVE",
        "containerDefinitions": containers,
        "volumes": volumes,
        "placementConstraints": [
            {"type": "memberOf", "expression": f"attribute:zone-{i} exists"} for i in range(draw(st.integers(0, 9)))
        ],
        "compatibilities": ["EC2", "FARGATE"] if requires and "FARGATE" in requires else ["EC2"],
        "requiresAttributes": [{"name": "com.amazonaws.ecs.capability.docker-remote-api.1.18"}],
        "registeredAt": datetime.datetime(2026, 11, 21, tzinfo=datetime.UTC),
        "registeredBy": "arn:aws:sts::123456789012:assumed-role/deployer/ci",
    }
    if requires:
        definition["requiresCompatibilities"] = requires
        if "FARGATE" in requires:
            definition.update(networkMode="awsvpc", cpu="256", memory="512")
    tags = [{"key": "efs-automount:file-system-id", "value": FS}] + [
        {"key": f"team-{i}", "value": draw(names)} for i in range(draw(st.integers(0, 3)))
    ]
    return definition, tags


def registered(request, source, revision=4):
    """What DescribeTaskDefinition returns for a registered request: output fields added, empty lists filled in."""
    definition = {k: v for k, v in request.items() if k != "tags"}
    definition["containerDefinitions"] = [{"volumesFrom": [], **c} for c in definition["containerDefinitions"]]
    arn = source["taskDefinitionArn"].rsplit(":", 1)[0] + f":{revision}"
    return definition | {"taskDefinitionArn": arn, "revision": revision, "status": "ACTIVE"}, {
        t["key"]: t["value"] for t in request["tags"]
    }
