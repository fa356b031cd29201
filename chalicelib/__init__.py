"""efs-automount: mount Amazon EFS on ECS hosts and in task definitions, automatically."""
