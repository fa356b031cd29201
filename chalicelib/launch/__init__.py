"""The launch of a host: the lifecycle hook's wait, the step that reads the facts, decides and acts, its retry
queue and the sweeper."""
