"""Running this checkout's make from a test, as a user at a shell would."""

from __future__ import annotations

import os
import subprocess

from tests.conftest import ROOT


def outside_make() -> dict[str, str]:
    """The environment without what an enclosing make passes down (`make test` runs this suite): a sub-make would
    print its directory and take the outer make's flags."""
    return {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")}


def make_dry_run(*arguments: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`make -n ARGUMENTS` in the checkout: the commands make would run, printed and not run."""
    return subprocess.run(
        ["make", "-n", *arguments], cwd=ROOT, env=outside_make(), capture_output=True, text=True, check=check
    )
