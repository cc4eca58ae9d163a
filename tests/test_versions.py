"""
The package metadata states only what the version matrix proves:
pyproject.toml's floors (Python's included) are exactly the pins of the
"oldest" entry of .ci/versions.toml, which .ci/run tests, and the Python
classifiers run from that entry's Python to the newest entry's.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent

# Extras that are tools around the project, not what it runs on: their
# floors are not claims about supported versions (the test extra's copies
# of runtime floors are still checked, see runtimeFloors).
TOOL_EXTRAS = {"test", "docs", "bench", "dev"}


def project() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]


def matrix() -> dict[str, dict]:
    with open(ROOT / ".ci" / "versions.toml", "rb") as f:
        return {entry["name"]: entry for entry in tomllib.load(f)["entry"]}


def floorOf(requirement: Requirement) -> Version | None:
    floors = [Version(s.version) for s in requirement.specifier if s.operator == ">="]
    return max(floors) if floors else None


def runtimeGroups(meta: dict) -> list[tuple[str, list[str]]]:
    """The dependencies and the extras that are not tools, as (extra, requirements)."""
    groups = [("", meta["dependencies"]), *meta["optional-dependencies"].items()]
    return [(extra, [r for r in items if not r.startswith("twisted_ws")])
            for extra, items in groups if extra not in TOOL_EXTRAS]


def runtimeFloors(meta: dict) -> dict[str, set[Version]]:
    """
    Every floor declared for a package we run on, by package: in the
    dependencies, the runtime extras and the tool extras' copies.
    """
    runtime = {canonicalize_name(Requirement(r).name) for _, items in runtimeGroups(meta) for r in items}
    everything = list(meta["dependencies"]) + [r for items in meta["optional-dependencies"].values() for r in items]
    floors: dict[str, set[Version]] = {}
    for text in everything:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        floor = floorOf(requirement)
        if name in runtime and floor is not None:
            floors.setdefault(name, set()).add(floor)
    return floors


def oldestPins() -> dict[str, Version]:
    pins = {}
    for text in matrix()["oldest"]["pins"]:
        requirement = Requirement(text)
        (spec,) = requirement.specifier
        assert spec.operator == "==", text
        pins[canonicalize_name(requirement.name)] = Version(spec.version)
    return pins


def pythonMinor(text: str) -> tuple[int, int]:
    major, minor = text.split(".")[:2]
    return int(major), int(minor)


def test_everyFloorIsThePinOfTheOldestEntry() -> None:
    floors = runtimeFloors(project())
    pins = oldestPins()
    assert set(floors) == set(pins), "floors without a pin, or pins without a floor"
    for name, declared in floors.items():
        assert declared == {pins[name]}, (name, declared, pins[name])


def test_runtimeRequirementsHaveFloors() -> None:
    """A runtime dependency without a floor would claim every version."""
    for extra, items in runtimeGroups(project()):
        for text in items:
            assert floorOf(Requirement(text)) is not None, (extra, text)


def test_pythonFloorAndClassifiersMatchTheMatrix() -> None:
    meta = project()
    entries = matrix()
    oldest = pythonMinor(entries["oldest"]["python"])
    newest = max(pythonMinor(e["python"]) for e in entries.values())
    (spec,) = Requirement("python" + meta["requires-python"]).specifier
    assert spec.operator == ">=" and pythonMinor(spec.version) == oldest
    classified = {
        pythonMinor(m.group(1))
        for c in meta["classifiers"]
        if (m := re.fullmatch(r"Programming Language :: Python :: (3\.\d+)", c))
    }
    assert classified == {(3, minor) for minor in range(oldest[1], newest[1] + 1)}


def test_newestEntryPinsNothing() -> None:
    assert matrix()["newest"]["pins"] == []


def test_ciRunsTheMatrix() -> None:
    assert ".ci/versions.toml" in (ROOT / ".ci" / "run").read_text()


def test_documentedFloorsAreTheMatrix() -> None:
    """
    The README's table and the docs' page give every floor the matrix
    proves: each name with its version on the same line (the README's
    table) or the next (the docs' list-table).
    """
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## Supported versions"):]
    table = table[: table.index("\n## ", 1)]
    page = (ROOT / "docs" / "reference" / "versions.rst").read_text()
    floors = {"python": matrix()["oldest"]["python"]}
    floors.update((name, str(version)) for name, version in oldestPins().items())
    for text, where in [(table, "README.md"), (page, "docs/reference/versions.rst")]:
        lines = text.lower().splitlines()
        pairs = list(zip(lines, lines[1:] + [""]))
        for name, version in floors.items():
            spellings = {name, name.replace("-", "_"), name.replace("-", ".")}
            assert any(
                any(s in line for s in spellings) and version in line + nextLine
                for line, nextLine in pairs
            ), (where, name, version)
