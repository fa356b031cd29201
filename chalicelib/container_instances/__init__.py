"""Container instances: finding a host's registration in ECS, and marking it with its mount."""
