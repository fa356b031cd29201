"""Auto Scaling groups beside the landscape's own, shaped as a test needs."""

from __future__ import annotations

from simulation.landscape import AMI_ID, Landscape

FILE_SYSTEM_TAG = "efs-automount:file-system-id"


def group_with_launch_configuration(land: Landscape, name: str) -> None:
    """A group tagged for the landscape's file system, launched from a launch configuration (not a template) whose
    hosts are in the hosts' security group; no hook of ours."""
    autoscaling = land.client("autoscaling")
    autoscaling.create_launch_configuration(
        LaunchConfigurationName=f"{name}-lc",
        ImageId=AMI_ID,
        InstanceType="t3.micro",
        SecurityGroups=[land.host_security_group_id],
    )
    tag = {"Key": FILE_SYSTEM_TAG, "Value": land.file_system_id, "PropagateAtLaunch": False}
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=name,
        LaunchConfigurationName=f"{name}-lc",
        MinSize=0,
        MaxSize=1,
        VPCZoneIdentifier=",".join(land.subnet_ids),
        Tags=[{**tag, "ResourceId": name, "ResourceType": "auto-scaling-group"}],
    )
