"""What a container remembers between invocations, bounded: forgetting only ever costs a call."""

from __future__ import annotations

from typing import TypeVar

# Hosts a container remembers (its own heartbeats and looks, hosts already decided): bounds its memory.
MAX_REMEMBERED_HOSTS = 10_000
HostKey = tuple[str, str, str]  # account, region, instance id
K = TypeVar("K")
V = TypeVar("V")


class BoundedMemory(dict[K, V]):
    """What this container remembers, at most MAX_REMEMBERED_HOSTS entries; forgetting only costs a call."""

    def remember(self, key: K, value: V) -> None:
        if key not in self and len(self) >= MAX_REMEMBERED_HOSTS:
            self.pop(next(iter(self)))
        self[key] = value


class HostMemory(BoundedMemory[HostKey, float]):
    """What this container saw of hosts (epoch seconds)."""
