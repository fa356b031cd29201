"""The README's links into docs/ lead somewhere: `make docs` checks the links between the pages of docs/, but the
README is read on GitHub, outside the site. An anchor is a heading's slug as GitHub writes it."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import ROOT

LINK = re.compile(r"\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6} +(.+?) *#*$", re.M)
FENCE = re.compile(r"^ *```.*?^ *```", re.M | re.S)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, markup and punctuation dropped, each space a hyphen."""
    text = re.sub(r"[`*_]|<[^>]+>", "", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    return {_slug(h) for h in HEADING.findall(FENCE.sub("", page.read_text()))}


def _relative_links(page: Path) -> list[str]:
    text = FENCE.sub("", page.read_text())
    return [link for link in LINK.findall(text) if not re.match(r"[a-z]+:", link)]


def test_every_relative_link_of_the_readme_reaches_a_file_and_its_heading():
    readme = ROOT / "README.md"
    links = _relative_links(readme)
    assert any(link.startswith("docs/") for link in links), "the README links into docs/"
    broken = []
    for link in links:
        path, _, anchor = link.partition("#")
        target = (readme.parent / path).resolve() if path else readme
        if not target.is_file():
            broken.append(f"{link}: no file {target.relative_to(ROOT)}")
        elif anchor and anchor not in _anchors(target):
            broken.append(f"{link}: no heading {anchor!r} in {target.relative_to(ROOT)}")
    assert not broken, broken


def test_the_readme_stays_a_front_door():
    # Issue 21: what it does, whether it fits, how to deploy it, within a few screens; the rest lives in docs/.
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines; move detail into docs/"


def test_every_alarm_links_to_its_entry_in_the_operations_runbook():
    from tools.operations import alarms

    runbook = _anchors(ROOT / "docs" / "operations.md")
    for name, alarm in alarms({"OnLaunch": "efs-automount-prod-on_launch"}).items():
        description = alarm["Properties"]["AlarmDescription"]
        links = re.findall(r"docs/operations\.md#([a-z0-9-]+)", description)
        assert len(links) == 1 and links[0] in runbook, f"{name} links to no runbook entry: {description}"
