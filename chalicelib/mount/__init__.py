"""The mount itself: what to mount (from a group's tags), the mount targets, the mount command's SSM record
and its result, and the ECS attribute that says a host has the mount."""
