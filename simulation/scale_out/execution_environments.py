"""What a Lambda execution environment keeps between invocations (the app's functools caches), and the app's
clocks pointed at the simulated one."""

from __future__ import annotations

import functools
import sys
import time
import types
from dataclasses import dataclass, field
from typing import Any

from simulation.scale_out.clock import SimClock


class _TimeModule(types.ModuleType):
    """`time` as the app's modules see it: time() and monotonic() are the simulated clock."""

    def __init__(self, clock: SimClock) -> None:
        super().__init__("time")
        self._clock = clock

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    def time(self) -> float:
        return self._clock()

    def monotonic(self) -> float:
        return self._clock()


def _cached(value: Any) -> bool:
    return callable(value) and hasattr(value, "cache_clear") and hasattr(value, "__wrapped__")


class ContainerMemory:
    """What a Lambda execution environment keeps between invocations: the app's module-level functools caches
    (entrypoints' flows, settings, accounts, whatever the app caches so). Before an invocation, every module
    attribute bound to such a cached function (also where a module imported it by name) is pointed at the
    copy of the environment that runs it, so one environment's caches never serve another.

    Other module-level state (a plain global dict) would be shared by all: none in the app as written."""

    def __init__(self, clock: SimClock) -> None:
        self._clock = clock
        self._originals: dict[tuple[str, str], Any] = {}
        self._keys: dict[int, tuple[str, str]] = {}
        self._kept: list[Any] = []
        self._bindings: list[tuple[types.ModuleType, str, tuple[str, str]]] = []
        self._modules_seen = -1

    def _app_modules(self) -> list[types.ModuleType]:
        return [
            module
            for name, module in list(sys.modules.items())
            if module is not None and (name == "app" or name == "chalicelib" or name.startswith("chalicelib."))
        ]

    def scan(self) -> None:
        if len(sys.modules) == self._modules_seen:
            return
        self._modules_seen = len(sys.modules)
        bindings = []
        for module in self._app_modules():
            self._simulated_time(module)
            for attr, value in list(vars(module).items()):
                key = self._keys.get(id(value))
                if key is None and _cached(value):
                    wrapped = value.__wrapped__
                    key = (getattr(wrapped, "__module__", "") or "", getattr(wrapped, "__qualname__", attr))
                    if not key[0].startswith("chalicelib"):
                        continue
                    self._originals.setdefault(key, value)
                    self._keys[id(value)] = key
                    self._kept.append(value)
                if key is not None:
                    bindings.append((module, attr, key))
        self._bindings = bindings

    def _simulated_time(self, module: types.ModuleType) -> None:
        """The app's clocks go by the simulated time: its modules' `time`, and defaults bound to time.time or
        time.monotonic at definition (a TtlCache's clock)."""
        if vars(module).get("time") is time:
            module.time = _TimeModule(self._clock)  # type: ignore[attr-defined]
        real = (time.time, time.monotonic)
        for value in list(vars(module).values()):
            functions = [value] if isinstance(value, types.FunctionType) else []
            if isinstance(value, type) and value.__module__ == module.__name__:
                functions += [f for f in vars(value).values() if isinstance(f, types.FunctionType)]
            for function in functions:
                if function.__defaults__ and any(d in real for d in function.__defaults__):
                    function.__defaults__ = tuple(self._clock if d in real else d for d in function.__defaults__)
                if function.__kwdefaults__ and any(d in real for d in function.__kwdefaults__.values()):
                    function.__kwdefaults__ = {
                        k: self._clock if d in real else d for k, d in function.__kwdefaults__.items()
                    }

    def use(self, memory: dict[tuple[str, str], Any]) -> None:
        """Point the app's cached functions at this environment's `memory` (filled as needed)."""
        self.scan()
        for module, attr, key in self._bindings:
            function = memory.get(key)
            if function is None:
                original = self._originals[key]
                parameters = original.cache_parameters() if hasattr(original, "cache_parameters") else {}
                function = functools.lru_cache(maxsize=parameters.get("maxsize"), typed=parameters.get("typed", False))(
                    original.__wrapped__
                )
                memory[key] = function
                self._keys[id(function)] = key
                self._kept.append(function)
            setattr(module, attr, function)


@dataclass
class Environment:
    """One Lambda execution environment of a function."""

    memory: dict[tuple[str, str], Any] = field(default_factory=dict)
    busy_until: float = 0.0
    invocations: int = 0
