"""efs-automount: mount Amazon EFS on ECS hosts and in task definitions, automatically."""

# The one version number of the app. tools/build_deploy.py writes it into what is deployed (the stacks' Version output
# and descriptions, the mount document's description); CHANGELOG.md's newest release heading names it.
__version__ = "0.1.0"
